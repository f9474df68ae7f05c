"""Start-up time of the `grpo` command, against the 0.3-second target.

    .venv/bin/python benchmarks/bench_startup.py [--repeats 20]

Times, as new processes, `python -c pass` (the interpreter alone, the baseline measured
in the same run), `grpo --version` (the installed console script), and `grpo check` of
the quick start, and prints min and median wall-clock seconds, the ratio of
`grpo --version` to the target and to the baseline, and the load average (the machine
is shared, so the minimum is the steadier figure).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 0.3
PROGRAM = Path(__file__).resolve().parents[1] / "programs" / "quickstart.grpo"


def _grpo() -> list[str]:
    """The installed `grpo` script beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("grpo")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "grpo_dsl.cli"]


def _times(command: list[str], repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    grpo = _grpo()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "grpo --version": [*grpo, "--version"],
        "grpo check quickstart": [*grpo, "check", "-q", str(PROGRAM)],
    }
    results = {name: _times(command, args.repeats) for name, command in commands.items()}
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores, {args.repeats} runs each")
    print(f"{'command':<24} {'min s':>7} {'median s':>9}")
    for name, seconds in results.items():
        print(f"{name:<24} {min(seconds):7.3f} {statistics.median(seconds):9.3f}")
    version = min(results["grpo --version"])
    baseline = min(results["python -c pass"])
    print(f"grpo --version: {version / TARGET_SECONDS:.2f} x the {TARGET_SECONDS} s target, {version / baseline:.1f} x the bare interpreter")


if __name__ == "__main__":
    main()
