"""Does one lesson raise the embedded local model's reward on a date-convention task?

Questions give a date in words and ask for it "in standard numeric form"; the reward
is 1 when the reply contains the date as YYYY-MM-DD. Each question is sampled
`--samples` times without a library (bare) and with the one-experience library
"Write dates as YYYY-MM-DD." placed in the system turn the way the runtime places
it. Prints both match rates, the paired difference over questions with a bootstrap
95 % interval, how many bare groups mix right and wrong answers, and the speed.

    python benchmarks/local_dates_probe.py --questions 20 --samples 4
"""

from __future__ import annotations

import argparse
import datetime
import random
import re
import statistics
import time
from dataclasses import dataclass

from openai import OpenAI

from grpo_dsl.clients.local import LocalServer, model_path
from grpo_dsl.prompts.messages import compose_templates, render_messages

LESSON = "Write dates as YYYY-MM-DD."
PROMPT = "Write the date {{ written }} in standard numeric form. Reply with only the date."
WRITTEN_FORMS = ("{month} {day}, {year}", "{day} {month} {year}", "the {ordinal} of {month}, {year}", "{month} {ordinal}, {year}")


@dataclass(frozen=True, slots=True)
class Question:
    written: str
    iso: str


def questions(count: int, seed: int) -> list[Question]:
    """`count` distinct dates between 1950 and 2049, each written out in words."""
    rng = random.Random(seed)
    start = datetime.date(1950, 1, 1).toordinal()
    end = datetime.date(2049, 12, 31).toordinal()
    dates = list(dict.fromkeys(datetime.date.fromordinal(rng.randint(start, end)) for _ in range(count * 2)))
    return [
        Question(
            written=rng.choice(WRITTEN_FORMS).format(
                month=d.strftime("%B"), day=d.day, year=d.year, ordinal=_ordinal(d.day)
            ),
            iso=d.isoformat(),
        )
        for d in dates[:count]
    ]


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def reward(reply: str, iso: str) -> float:
    """1.0 when the reply contains the date as YYYY-MM-DD."""
    return 1.0 if re.search(rf"(?<!\d){iso}(?!\d)", reply) else 0.0


def bootstrap_interval(values: list[float], seed: int, resamples: int = 10_000) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of the mean of `values`."""
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(values, k=len(values))) for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--temperature", type=float, default=0.9)
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    templates = compose_templates(None, PROMPT, "system")
    libraries = {"bare": [], "lesson": [{"id": "E1", "text": LESSON}]}
    items = questions(args.questions, args.seed)
    scores: dict[str, list[list[float]]] = {name: [] for name in libraries}
    completion_tokens = truncated = calls = 0
    started = time.monotonic()
    with LocalServer(model_path()) as server:
        ready = time.monotonic() - started
        client = OpenAI(base_url=server.base_url, api_key="local")
        generation_started = time.monotonic()
        for index, question in enumerate(items):
            for name, library in libraries.items():
                messages = render_messages(templates, {"written": question.written}, library)
                group = []
                for sample in range(args.samples):
                    response = client.chat.completions.create(
                        model="local",
                        messages=messages,  # type: ignore[arg-type]
                        temperature=args.temperature,
                        max_tokens=args.max_tokens,
                        seed=args.seed * 1_000_003 + index * 1009 + sample,
                    )
                    choice = response.choices[0]
                    group.append(reward(choice.message.content or "", question.iso))
                    completion_tokens += response.usage.completion_tokens if response.usage else 0
                    truncated += choice.finish_reason == "length"
                    calls += 1
                scores[name].append(group)
        elapsed = time.monotonic() - generation_started

    means = {name: [statistics.fmean(group) for group in groups] for name, groups in scores.items()}
    differences = [lesson - bare for bare, lesson in zip(means["bare"], means["lesson"])]
    low, high = bootstrap_interval(differences, args.seed)
    mixed = sum(0 < statistics.fmean(group) < 1 for group in scores["bare"])
    print(f"questions {len(items)} x samples {args.samples}, temperature {args.temperature}, max_tokens {args.max_tokens}")
    print(f"server ready in {ready:.1f} s; {calls} calls in {elapsed:.1f} s ({calls / elapsed:.2f} calls/s, {completion_tokens / elapsed:.1f} completion tokens/s); {truncated} replies hit max_tokens")
    print(f"bare   match rate {statistics.fmean(means['bare']):.3f}")
    print(f"lesson match rate {statistics.fmean(means['lesson']):.3f}   (lesson: {LESSON!r})")
    print(f"paired difference {statistics.fmean(differences):+.3f}, 95 % bootstrap CI [{low:+.3f}, {high:+.3f}]")
    print(f"questions better {sum(d > 0 for d in differences)}, worse {sum(d < 0 for d in differences)}, equal {sum(d == 0 for d in differences)}")
    print(f"bare groups mixing right and wrong: {mixed}/{len(items)} ({mixed / len(items):.0%}); ideal for learning: all")


if __name__ == "__main__":
    main()
