"""Write math100.jsonl (100 training problems) and math_heldout.jsonl (30 more).

Competition-style problems with integer answers, generated from seeded templates and
solved by computation here, so every answer is exact. Run from anywhere:

    python programs/data/make_math.py
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

from rows import write_jsonl

Problem = tuple[str, int]


def remainder_of_power(r: random.Random) -> Problem:
    base, exponent, modulus = r.randint(2, 19), r.randint(50, 2025), r.choice([7, 9, 11, 13, 17, 100, 1000])
    return f"Find the remainder when ${base}^{{{exponent}}}$ is divided by ${modulus}$.", pow(base, exponent, modulus)


def count_divisors(r: random.Random) -> Problem:
    a, b, c = r.randint(1, 5), r.randint(1, 3), r.randint(0, 1)
    n = r.choice([2, 3, 5]) ** a * r.choice([7, 11, 13]) ** b * r.choice([17, 19]) ** c
    return f"How many positive divisors does ${n}$ have?", (a + 1) * (b + 1) * (c + 1)


def sum_of_divisors(r: random.Random) -> Problem:
    n = r.randint(60, 999)
    return f"What is the sum of all positive divisors of ${n}$?", sum(d for d in range(1, n + 1) if n % d == 0)


def lattice_points(r: random.Random) -> Problem:
    radius = r.randint(3, 40)
    count = sum(1 for x in range(-radius, radius + 1) for y in range(-radius, radius + 1) if x * x + y * y <= radius * radius)
    return f"How many points $(x, y)$ with integer coordinates satisfy $x^2 + y^2 \\le {radius * radius}$?", count


def committees(r: random.Random) -> Problem:
    men, women, size = r.randint(5, 9), r.randint(4, 8), r.randint(3, 5)
    total = sum(math.comb(women, w) * math.comb(men, size - w) for w in range(1, size + 1))
    return (
        f"A club has {men} men and {women} women. In how many ways can a committee of {size} people "
        "be chosen so that it contains at least one woman?",
        total,
    )


def arithmetic_sequence(r: random.Random) -> Problem:
    first, step, terms = r.randint(-20, 30), r.randint(2, 9), r.randint(20, 80)
    return (
        f"The first term of an arithmetic sequence is ${first}$ and each term is ${step}$ more than the previous one. "
        f"What is the sum of the first ${terms}$ terms?",
        terms * (2 * first + (terms - 1) * step) // 2,
    )


def digit_sum_count(r: random.Random) -> Problem:
    target, digits = r.randint(5, 20), r.choice([3, 4])
    low = 10 ** (digits - 1)
    count = sum(1 for n in range(low, 10 * low) if sum(map(int, str(n))) == target)
    return f"How many {digits}-digit positive integers have digits that sum to ${target}$?", count


def linear_solutions(r: random.Random) -> Problem:
    a, b = r.sample([3, 4, 5, 7, 8, 9, 11], 2)
    n = r.randint(60, 300)
    count = sum(1 for x in range(1, n) for y in range(1, n) if a * x + b * y == n)
    return f"How many ordered pairs of positive integers $(x, y)$ satisfy ${a}x + {b}y = {n}$?", count


def lcm_gcd(r: random.Random) -> Problem:
    a, b = r.randint(12, 240), r.randint(12, 240)
    return f"What is $\\operatorname{{lcm}}({a}, {b}) - \\gcd({a}, {b})$?", math.lcm(a, b) - math.gcd(a, b)


def trailing_zeros(r: random.Random) -> Problem:
    n = r.randint(30, 2025)
    zeros, power = 0, 5
    while power <= n:
        zeros += n // power
        power *= 5
    return f"How many zeros are at the end of the decimal representation of ${n}!$?", zeros


def quadratic_roots(r: random.Random) -> Problem:
    p, q = r.randint(-12, 12), r.randint(-12, 12)
    b, c = -(p + q), p * q
    return (
        f"The roots of $x^2 {'+' if b >= 0 else '-'} {abs(b)}x {'+' if c >= 0 else '-'} {abs(c)} = 0$ are $p$ and $q$. "
        "What is $p^2 + q^2$?",
        p * p + q * q,
    )


def paths_in_grid(r: random.Random) -> Problem:
    width, height = r.randint(3, 9), r.randint(3, 9)
    return (
        f"A path on a grid goes from $(0, 0)$ to $({width}, {height})$ using unit steps right or up. "
        "How many such paths are there?",
        math.comb(width + height, width),
    )


GENERATORS: tuple[Callable[[random.Random], Problem], ...] = (
    remainder_of_power,
    count_divisors,
    sum_of_divisors,
    lattice_points,
    committees,
    arithmetic_sequence,
    digit_sum_count,
    linear_solutions,
    lcm_gcd,
    trailing_zeros,
    quadratic_roots,
    paths_in_grid,
)


def problems(count: int, seed: int, exclude: set[str]) -> list[dict[str, object]]:
    """`count` distinct problems, cycling through the generators, none in `exclude`."""
    r = random.Random(seed)
    rows: list[dict[str, object]] = []
    seen = set(exclude)
    while len(rows) < count:
        generate = GENERATORS[len(rows) % len(GENERATORS)]
        text, answer = generate(r)
        if text in seen:
            continue
        seen.add(text)
        rows.append({"problem": text, "answer": str(answer), "topic": generate.__name__})
    return rows


def main() -> None:
    here = Path(__file__).resolve().parent
    train = problems(100, seed=2510, exclude=set())
    heldout = problems(30, seed=8191, exclude={str(row["problem"]) for row in train})
    write_jsonl(here / "math100.jsonl", train, "train-")
    write_jsonl(here / "math_heldout.jsonl", heldout, "heldout-")


if __name__ == "__main__":
    main()
