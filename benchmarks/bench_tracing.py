"""What tracing costs: one learning step (B = 16 questions, G = 8 rollouts) against the test
endpoint, untraced and traced to a real OTLP/HTTP receiver on loopback.

Reports the client CPU per LLM call of both (the process's CPU time, the exporter's
thread included), their ratio, and the spans the receiver got; the best of `--repeats`
runs of each, measured in this run after a warm-up step.

    python benchmarks/bench_tracing.py [--latency-ms 0] [--batch 16] [--group 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests"), str(Path(__file__).resolve().parent)]

from bench_learn_step import one_step  # noqa: E402
from support.endpoint import running_endpoint  # noqa: E402
from support.otlp import Receiver  # noqa: E402

from grpo_dsl.runs.tracing import ENDPOINT_VARIABLE  # noqa: E402


def measured(base_url: str, batch: int, group: int, receiver: Receiver | None) -> dict[str, float]:
    """One step in a fresh folder, traced to `receiver` when given."""
    if receiver is not None:
        os.environ[ENDPOINT_VARIABLE] = receiver.endpoint
    try:
        with tempfile.TemporaryDirectory() as folder:
            return one_step(base_url, Path(folder), batch, group, True)
    finally:
        os.environ.pop(ENDPOINT_VARIABLE, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="the best of this many runs of each")
    args = parser.parse_args()
    with running_endpoint(script="support.worlds:date_world", faults={"latency_ms": args.latency_ms}) as endpoint, Receiver() as receiver:
        measured(endpoint.base_url, 2, 2, receiver)  # warm-up: imports, connections, the exporter
        received = len(receiver.spans())
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.repeats):
            for name, target in (("untraced", None), ("traced", receiver)):
                result = measured(endpoint.base_url, args.batch, args.group, target)
                per_call = result["cpu"] / result["calls"]
                if name not in best or per_call < best[name]["cpu_per_call"]:
                    best[name] = {**result, "cpu_per_call": per_call}
        spans = (len(receiver.spans()) - received) / args.repeats
    untraced, traced = best["untraced"], best["traced"]
    print(f"one step, B={args.batch} G={args.group}, {int(untraced['calls'])} calls, latency {args.latency_ms:g} ms")
    print(f"untraced: {untraced['cpu_per_call'] * 1000:.2f} ms CPU per call, wall {untraced['wall']:.2f} s")
    print(f"traced:   {traced['cpu_per_call'] * 1000:.2f} ms CPU per call, wall {traced['wall']:.2f} s, {spans:.0f} spans per run")
    print(f"CPU per call, traced / untraced: {traced['cpu_per_call'] / untraced['cpu_per_call']:.3f}")


if __name__ == "__main__":
    main()
