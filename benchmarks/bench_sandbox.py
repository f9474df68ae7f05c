"""The python tool's start-up cost per call: bubblewrap beside the plain child process.

    .venv/bin/python benchmarks/bench_sandbox.py [--calls 40] [--concurrency 8] [--file-mb 1]

Times `run_python("print(1)")`, one call after another (each way in turn) and
`--concurrency` at a time, in each isolation: `bubblewrap` (the default) and `unsafe-process` (the child
process with an audit hook and `unshare -n` that was the python tool before
bubblewrap). The ideal beside them is starting the same interpreter bare (`python
-I -S -B -c pass`, measured in the same run), so the ratio is what isolation adds.
A last row mounts a file of `--file-mb` MB, which bubblewrap copies in per call.
Then it times one prompt render (48 experiences) in the budgeted Jinja environment
beside a plain sandboxed one. Prints medians; the machine is shared, so the load
average is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from grpo_dsl.core.templating import sandbox
from grpo_dsl.prompts.messages import EXPERIENCES_BLOCK
from grpo_dsl.rollout.sandbox import (
    ISOLATIONS,
    Isolation,
    bubblewrap_problem,
    run_python,
)


def _one_after_another(calls: int, data: Path) -> dict[str, list[float]]:
    """Seconds per call of each way, taken in turns (so a change in the machine's load
    falls on every way alike)."""
    bare = [os.path.realpath(sys.executable), "-I", "-S", "-B", "-c", "pass"]
    ways: dict[str, Callable[[], Awaitable[object]]] = {
        "bare interpreter (ideal)": lambda: asyncio.to_thread(subprocess.run, bare, check=True),
        **{f"run_python, {isolation}": functools.partial(_print_one, isolation, []) for isolation in ISOLATIONS},
        f"bubblewrap + a {data.stat().st_size / 2**20:g} MB file": functools.partial(_print_one, "bubblewrap", [data]),
    }

    async def measure() -> dict[str, list[float]]:
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(calls):
            for name, way in ways.items():
                start = time.perf_counter()
                await way()
                times[name].append(time.perf_counter() - start)
        return times

    return asyncio.run(measure())


async def _print_one(isolation: Isolation, files: list[Path]) -> None:
    result = await run_python("print(1)", isolation=isolation, files=files)
    assert result.stdout == "1\n", result


def _concurrent(calls: int, concurrency: int, isolation: Isolation) -> float:
    """Seconds per call with `concurrency` calls in flight."""

    async def all_calls() -> None:
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with semaphore:
                await _print_one(isolation, [])

        await asyncio.gather(*(one() for _ in range(calls)))

    start = time.perf_counter()
    asyncio.run(all_calls())
    return (time.perf_counter() - start) / calls


def _row(name: str, times: list[float], ideal: float) -> None:
    median = statistics.median(times)
    print(f"{name:<34}{1000 * median:>10.1f}{1000 * min(times):>10.1f}{median / ideal:>10.2f}x")


def _render(environment: Callable[[], SandboxedEnvironment], repeats: int) -> float:
    source = "You are a careful solver.\n\n" + EXPERIENCES_BLOCK + "\nQuestion: {{ question }}\nAnswer with the number only."
    experiences = [{"id": f"E{i}", "text": "Write every date in the numeric form YYYY-MM-DD, padded."} for i in range(48)]
    template = environment().from_string(source)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        template.render(question="What is 2 + 2?", experiences=experiences)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--file-mb", type=float, default=1.0)
    args = parser.parse_args()
    problem = bubblewrap_problem()
    if problem is not None:
        sys.exit(f"bubblewrap cannot run here: {problem}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.calls} calls each")
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data.bin"
        data.write_bytes(os.urandom(int(args.file_mb * 2**20)))
        times = _one_after_another(args.calls, data)
    ideal = statistics.median(times["bare interpreter (ideal)"])
    print(f"{'one call after another':<34}{'median ms':>10}{'min ms':>10}{'vs bare':>11}")
    for name, measured in times.items():
        _row(name, measured, ideal)
    print(f"\n{args.concurrency} calls in flight: ms per call")
    for isolation in ISOLATIONS:
        print(f"{'run_python, ' + isolation:<34}{1000 * _concurrent(args.calls, args.concurrency, isolation):>10.1f}")
    plain = _render(lambda: SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False), 2000)
    budgeted = _render(sandbox, 2000)
    print(f"\none prompt render, 48 experiences: plain sandbox {1e6 * plain:.0f} us, with the budget {1e6 * budgeted:.0f} us ({budgeted / plain:.2f}x)")


if __name__ == "__main__":
    main()
