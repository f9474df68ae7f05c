"""One learning step (B = 32 questions, G = 8 rollouts) against the test endpoint with 200 ms latency.

Reports the step's wall time against its critical path (one rollout + one summary +
one advantage + one consolidation latency, plus the client CPU of all its calls) and
against the same step run stage by stage (every stage waiting for the whole batch),
both measured in this run (the best of `--repeats` each, after a warm-up step).

    python benchmarks/bench_learn_step.py [--latency-ms 200] [--batch 32] [--group 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests")]

from support.endpoint import running_endpoint  # noqa: E402
from support.learn_world import write_world  # noqa: E402

from grpo_dsl.learning.run import start_run  # noqa: E402
from grpo_dsl.learning.step import Learner  # noqa: E402
from grpo_dsl.plan import load_plan  # noqa: E402
from grpo_dsl.runs.directory import read_events  # noqa: E402

STAGES = ("rollout", "summary", "advantage", "consolidate")


def one_step(base_url: str, folder: Path, batch: int, group: int, pipelined: bool) -> dict[str, float]:
    program = write_world(folder, base_url, questions=batch, batch_size=batch, group_size=group)
    program.write_text(program.read_text().replace("concurrency = 16", f"concurrency = {batch * group}"))
    plan = load_plan(program)
    Learner.pipelined = pipelined
    cpu = time.process_time()
    result = start_run(plan, "date_lessons", base_dir=folder, runs_root=folder / "runs", stream=None)
    cpu = time.process_time() - cpu
    events = read_events(result.run_dir / "events.jsonl")
    started = next(e["time"] for e in events if e["event"] == "step_started")
    finished = next(e["time"] for e in events if e["event"] == "step_completed")
    calls = sum(e["event"] == "call" for e in events)
    stages = {stage for e in events if e["event"] == "call" for stage in [e["stage"]]}
    return {"wall": finished - started, "cpu": cpu, "calls": calls, "stages": len(stages & set(STAGES))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="the best of this many runs of each")
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    with running_endpoint(script="support.worlds:date_world", faults={"latency_ms": args.latency_ms}) as endpoint:
        with tempfile.TemporaryDirectory() as folder:
            one_step(endpoint.base_url, Path(folder), 2, 2, True)  # warm-up: imports, connections
        results: dict[str, dict[str, float]] = {}
        for _ in range(args.repeats):
            for name, pipelined in (("pipelined", True), ("stage by stage", False)):
                endpoint.reset()
                with tempfile.TemporaryDirectory() as folder:
                    measured = one_step(endpoint.base_url, Path(folder), args.batch, args.group, pipelined)
                if name not in results or measured["wall"] < results[name]["wall"]:
                    results[name] = measured
    ours = results["pipelined"]
    critical = ours["stages"] * latency + ours["cpu"]
    print(f"one step, B = {args.batch}, G = {args.group}, latency {args.latency_ms:.0f} ms, {ours['calls']:.0f} calls")
    print(f"  critical path: {ours['stages']:.0f} stage latencies + client CPU {ours['cpu']:.2f} s = {critical:.2f} s")
    for name, r in results.items():
        print(
            f"  {name:<15} wall {r['wall']:.2f} s  ({r['wall'] / critical:.2f}x the critical path, "
            f"client CPU {r['cpu']:.2f} s, {1000 * r['cpu'] / r['calls']:.2f} ms per call)"
        )
    print(f"  pipelined / stage by stage: {ours['wall'] / results['stage by stage']['wall']:.2f}")


if __name__ == "__main__":
    main()
