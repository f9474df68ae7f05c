"""What the Python API costs: importing the package, and scoring with a reward function.

    .venv/bin/python benchmarks/bench_api.py [--repeats 7] [--rollouts 2000]

1. Import: the median wall time of a fresh interpreter running `import grpo_dsl`,
   beside one importing what the package root imported before it became lazy (the
   host API, the builders, the plan, the modules: the parser with them), and one
   importing the runtime that the first `learn` loads. The baseline is a fresh
   interpreter that imports nothing.
2. Scoring: `RewardScorer.score` on `--rollouts` rollouts, all at once, with the same
   reward `answer == strip(output)` written three ways: an expression, a
   `python("file.py:function")` reward (worker processes), and a Python function
   given from Python (a thread per call). Reports rollouts per second and the
   ratio of each to the expression.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from grpo_dsl.rewards.scorer import RewardScorer

ROOT = Path(__file__).resolve().parents[1]

IMPORTS = {
    "nothing (python -c pass)": "pass",
    "import grpo_dsl": "import grpo_dsl",
    "what the root imported before (api, builders, plan, modules)": (
        "import grpo_dsl.api, grpo_dsl.language.builders, grpo_dsl.plan, grpo_dsl.modules, grpo_dsl.core.env"
    ),
    "the runtime of the first learn (learning.run, evaluation)": "import grpo_dsl.api, grpo_dsl.learning.run, grpo_dsl.evaluation.evaluate",
}

EXPRESSION = {
    "node": "binary",
    "op": "==",
    "left": {"node": "name", "name": "answer"},
    "right": {"node": "call", "function": "strip", "args": [{"node": "name", "name": "output"}]},
}


def _seconds(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - started


def bench_imports(repeats: int) -> None:
    print(f"import, median of {repeats} fresh interpreters:")
    baseline = None
    for label, code in IMPORTS.items():
        median = statistics.median(_seconds(code) for _ in range(repeats))
        baseline = median if baseline is None else baseline
        print(f"  {label:<62} {1000 * median:7.1f} ms   ({1000 * (median - baseline):+7.1f} ms over nothing)")


def correct(output: str, row: dict[str, Any]) -> bool:
    return row["answer"] == output.strip()


async def _score(scorer: RewardScorer, rollouts: int) -> float:
    rows = [{"answer": str(i)} for i in range(rollouts)]
    await scorer.score("correct", " 0 ", rows[0], tokens=1, tool_calls=0)  # start a worker before the clock
    started = time.perf_counter()
    results = await asyncio.gather(*(scorer.score("correct", f" {i} ", row, tokens=1, tool_calls=0) for i, row in enumerate(rows)))
    elapsed = time.perf_counter() - started
    assert all(r.value == 1.0 and r.error is None for r in results), [r for r in results if r.error][:3]
    return elapsed


def bench_scoring(rollouts: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "rewards.py").write_text("def correct(output, row):\n    return row['answer'] == output.strip()\n")
        kinds = {
            "expression": ({"correct": {"kind": "expression", "expression": EXPRESSION, "reads": ["answer"]}}, None),
            "python file (worker processes)": ({"correct": {"kind": "python", "path": "rewards.py", "function": "correct"}}, None),
            "Python function (a thread per call)": (
                {"correct": {"kind": "expression", "expression": EXPRESSION, "reads": ["answer"]}},
                {"correct": correct},
            ),
        }
        print(f"scoring {rollouts} rollouts at once:")
        first = None
        for label, (rewards, functions) in kinds.items():

            async def run(rewards: Any = rewards, functions: Any = functions) -> float:
                async with RewardScorer(rewards, base_dir=Path(folder), functions=functions) as scorer:
                    return await _score(scorer, rollouts)

            elapsed = asyncio.run(run())
            first = elapsed if first is None else first
            print(f"  {label:<38} {rollouts / elapsed:10.0f} rollouts/s   {elapsed / first:6.1f} x the expression's time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rollouts", type=int, default=2000)
    args = parser.parse_args()
    bench_imports(args.repeats)
    bench_scoring(args.rollouts)


if __name__ == "__main__":
    main()
