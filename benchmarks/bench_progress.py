"""What the progress display costs: a learning run drawn live on a terminal, against the
same run with no display, and the CPU of one event.

    python benchmarks/bench_progress.py [--questions 32] [--group 8] [--latency-ms 20] [--repeats 3]

The run (one step of the date world against the test endpoint, every response fresh)
is made with the display off (`stream=None`) and drawn live on a pseudo-terminal
(`interactive`, redrawn four times a second by rich); the best of `--repeats` each
is reported, and their ratio. Then 20,000 `call` events are fed to a live display
(drawing to the pseudo-terminal) and to one with no stream: CPU per event.
"""

from __future__ import annotations

import argparse
import os
import pty
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TextIO

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests")]

from support.endpoint import running_endpoint  # noqa: E402
from support.learn_world import write_world  # noqa: E402

from grpo_dsl.learning.run import start_run  # noqa: E402
from grpo_dsl.plan import load_plan  # noqa: E402
from grpo_dsl.runs.progress import Progress  # noqa: E402

EVENTS = 20_000


def terminal() -> TextIO:
    """The writing end of a pseudo-terminal whose output is read and dropped by a thread."""
    controller, child = pty.openpty()

    def drain() -> None:
        while True:
            try:
                if not os.read(controller, 65536):
                    return
            except OSError:
                return

    threading.Thread(target=drain, daemon=True).start()
    return os.fdopen(child, "w", encoding="utf-8")


def one_run(base_url: str, questions: int, group: int, stream: TextIO | None) -> float:
    with tempfile.TemporaryDirectory() as folder:
        program = write_world(Path(folder), base_url, questions=questions, batch_size=questions, group_size=group)
        program.write_text(program.read_text().replace("concurrency = 16", f"concurrency = {questions * group}"))
        plan = load_plan(program)
        start = time.perf_counter()
        result = start_run(plan, "date_lessons", base_dir=Path(folder), runs_root=Path(folder) / "runs", stream=stream)
        wall = time.perf_counter() - start
        assert result.status == "completed", result.message
        return wall


def per_event(stream: TextIO | None) -> float:
    progress = Progress(stream, title="bench", interactive=stream is not None)
    progress.expect({"stages": [{"stage": "rollout", "expected": {"calls": EVENTS}}]}, units=1)
    start = time.process_time()
    for _ in range(EVENTS):
        progress.event("call", {"stage": "rollout", "cached": False})
    cpu = time.process_time() - start
    progress.close()
    return cpu / EVENTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    screen = terminal()
    with running_endpoint(script="support.worlds:date_world", faults={"latency_ms": args.latency_ms}) as endpoint:
        one_run(endpoint.base_url, args.questions, args.group, None)  # warm-up
        off = min(one_run(endpoint.base_url, args.questions, args.group, None) for _ in range(args.repeats))
        live = min(one_run(endpoint.base_url, args.questions, args.group, screen) for _ in range(args.repeats))
    print(f"one step, {args.questions} questions x {args.group} rollouts, {args.latency_ms} ms latency (best of {args.repeats})")
    print(f"  no display        {off:7.3f} s")
    print(f"  live display      {live:7.3f} s   ratio {live / off:.3f}")
    quiet, drawn = per_event(None), per_event(screen)
    print(f"CPU per call event: no stream {quiet * 1e6:.1f} µs, live display {drawn * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
