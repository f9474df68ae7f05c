"""Parse and check time of a 10,000-line program, against the 1-second target.

    .venv/bin/python benchmarks/bench_parse_check.py [--lines 10000] [--repeats 5]

Generates a valid program of about `--lines` lines (models, datasets with a small
data file, tasks whose prompts differ, rewards, policies, learns, evaluates), then
times `parse` alone and `check_path` (parse + load + every semantic check) over
several repeats, and prints min and median seconds, wall-clock and CPU, their ratio
to the target, and the load average (the machine is shared: CPU time is steadier).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from grpo_dsl.language.checks import check_path
from grpo_dsl.language.parser import parse

TARGET_SECONDS = 1.0

UNIT = """\
model m{i} {{
  name        = "model-{i}"
  base_url    = env("GRPO_BASE_URL", "http://127.0.0.1:8000/v1")
  concurrency = 8
  price {{ input = 0.28  output = 0.42 }}  # USD per million tokens
}}

dataset d{i} {{
  source = "data.jsonl"
  fields {{ question = "problem"  answer = "answer" }}
  limit  = 10
}}

task t{i} {{
  model       = m{i}
  system      = "You are careful."
  prompt      = \"\"\"
    Solve problem {i}. Put the final answer in \\boxed{{}}.

    {{{{ question }}}}
    \"\"\"
  temperature = 0.3
}}

reward r{i} = math_equal(boxed(output), answer)
reward s{i} = 0.9 * r{i} + 0.1 * (length(output) < 4000)

policy p{i} {{
  ops           = [add, modify, delete]
  max_per_group = 2
  capacity      = 48
}}

learn l{i} {{
  task         = t{i}
  data         = d{i}
  reward       = s{i}
  group_size   = 5
  epochs       = 2
  policy       = p{i}
  budget {{ usd = 20 }}
}}

evaluate e{i} {{
  task    = t{i}
  data    = d{i}
  reward  = r{i}
  samples = 4
  metrics = [mean, pass@4]
  compare = [none, l{i}]
}}

emit o{i} {{
  library = l{i}
  path    = "prompts/p{i}"
}}
"""


def program(lines: int) -> str:
    unit_lines = UNIT.count("\n") + 1
    return "grpo 1\n\n" + "\n".join(UNIT.format(i=i) for i in range(max(1, lines // unit_lines)))


@contextlib.contextmanager
def program_folder(lines: int) -> Iterator[tuple[Path, str]]:
    """A temporary folder with the program of about `lines` lines (`big.grpo`) and
    its small data file: the program's path and text."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.grpo"
        text = program(lines)
        path.write_text(text)
        (Path(folder) / "data.jsonl").write_text('{"problem": "1 + 1", "answer": "2"}\n')
        yield path, text


def timings(run: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of each run (CPU time is steadier on a shared machine)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def report(what: str, measured: tuple[list[float], list[float]]) -> None:
    for clock, seconds in zip(("wall", "cpu"), measured):
        low, median = min(seconds), statistics.median(seconds)
        print(
            f"{what:<12} {clock:<5} min {low:7.3f} s   median {median:7.3f} s   "
            f"min / target {low / TARGET_SECONDS:5.2f}   median / target {median / TARGET_SECONDS:5.2f}"
        )


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg()) + f" (1, 5, 15 min; {os.cpu_count()} CPUs)"


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--lines", type=int, default=10_000)
    options.add_argument("--repeats", type=int, default=5)
    args = options.parse_args()
    with program_folder(args.lines) as (path, text):
        parse(text, str(path))
        result = check_path(str(path))
        errors = [d for d in result.diagnostics if d.severity == "error"]
        if errors:
            raise SystemExit(f"the generated program has errors: {errors[:3]}")
        lines, size = text.count("\n") + 1, len(text.encode("utf-8"))
        print(f"program: {lines:,} lines, {size:,} bytes, {len(result.diagnostics)} warnings")
        print(f"target: {TARGET_SECONDS:.1f} s for parse + check; {args.repeats} repeats")
        print(f"load average before: {load_average()}")
        report("parse", timings(lambda: parse(text, str(path)), args.repeats))
        report("parse+check", timings(lambda: check_path(str(path)), args.repeats))
        print(f"load average after:  {load_average()}")


if __name__ == "__main__":
    main()
