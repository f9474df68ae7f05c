"""Write support_train.jsonl (40 tickets) and support_heldout.jsonl (20 more).

Each customer ticket belongs to one team: billing, shipping, technical or account.
The prompt asks which team should handle it; the reward expects the team's exact
one-word name, a convention the learner can discover from group contrast. Run:

    python programs/data/make_support.py
"""

from __future__ import annotations

import random
from pathlib import Path

from rows import write_jsonl

TEAMS: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice for my {item} this month.",
        "My invoice for the {item} shows the wrong amount.",
        "Can I get a refund for the {item} I cancelled?",
        "Why did my card get declined when paying for the {item}?",
    ),
    "shipping": (
        "My {item} has not arrived and the tracking has not moved for a week.",
        "The {item} was delivered to the wrong address.",
        "Can I change the delivery date of my {item}?",
        "The box with my {item} arrived crushed.",
    ),
    "technical": (
        "The {item} app crashes every time I open it.",
        "My {item} will not connect to Wi-Fi after the update.",
        "The {item} shows error code 42 when it starts.",
        "The battery of my {item} drains within an hour.",
    ),
    "account": (
        "I cannot log in to the account I use for my {item}.",
        "How do I change the email address linked to my {item} order?",
        "Please delete my account; I no longer use the {item}.",
        "I never received the password reset email for my {item} account.",
    ),
}
ITEMS = ("headphones", "smart watch", "coffee machine", "e-reader", "router", "camera", "speaker", "tablet")


def tickets(count: int, seed: int, exclude: set[str]) -> list[dict[str, str]]:
    """`count` distinct tickets, none in `exclude`, cycling through the teams."""
    r = random.Random(seed)
    rows: list[dict[str, str]] = []
    seen = set(exclude)
    teams = list(TEAMS)
    while len(rows) < count:
        team = teams[len(rows) % len(teams)]
        text = r.choice(TEAMS[team]).format(item=r.choice(ITEMS))
        if text not in seen:
            seen.add(text)
            rows.append({"ticket": text, "team": team})
    return rows


def main() -> None:
    here = Path(__file__).resolve().parent
    train = tickets(40, seed=31, exclude=set())
    heldout = tickets(20, seed=32, exclude={row["ticket"] for row in train})
    write_jsonl(here / "support_train.jsonl", train, "train-")
    write_jsonl(here / "support_heldout.jsonl", heldout, "heldout-")


if __name__ == "__main__":
    main()
