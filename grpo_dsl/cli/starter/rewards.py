"""The starter's reward: how good one reply is, from 0 to 1.

`grpo` calls `score(output, row)` with the model's reply and the dataset row it
answered (here `row["question"]` and `row["answer"]`). Change it to score what your
task needs; a reward can also be an expression in the program (docs/language.md).
"""

import re


def score(output: str, row: dict[str, str]) -> float:
    """1 for a reply that is only the right number, 0.5 for the right number among other words."""
    reply = output.strip().rstrip(".")
    if reply == row["answer"]:
        return 1.0
    if row["answer"] in re.findall(r"-?\d+", output.replace(",", "")):
        return 0.5
    return 0.0
