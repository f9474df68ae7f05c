"""`grpo ablate` against the test endpoint with 200 ms latency: wall time against the ideal, and a second run.

The library is a module version of `--items` lessons (the two lessons of the date world
and fillers) ablated on the date world's 12 held-out questions x 4 samples, by
leave-one-out and by Shapley values (exact when 2^items <= `--subsets`, sampled
otherwise). For each, it reports the calls paid against the calls a permutation
sampler without the cache would make, the wall time against the ideal (the longer of the paid calls in waves of
the model's concurrency, one latency a wave, and the client's CPU time, which overlap),
and the same ablation run a second time: its wall time against the first, its client
CPU, and its calls (all from the cache).

    python benchmarks/bench_ablation.py [--latency-ms 200] [--items 6] [--subsets 64] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests")]

from support.endpoint import running_endpoint  # noqa: E402
from support.eval_world import date_module, write_program  # noqa: E402
from support.worlds import LESSONS  # noqa: E402

from grpo_dsl.evaluation.ablation import start_ablation  # noqa: E402
from grpo_dsl.library import Experience, Library, ProvenanceEntry  # noqa: E402
from grpo_dsl.plan import load_plan  # noqa: E402

QUESTIONS, SAMPLES = 12, 4


def module_of(folder: Path, items: int) -> str:
    texts = [*LESSONS, *(f"Filler lesson number {i} says nothing useful." for i in range(items))][:items]
    added = (ProvenanceEntry("add", 0),)
    library = Library(version=1, experiences=tuple(Experience(f"E{i + 1}", t, added, 0) for i, t in enumerate(texts)), next_id=items + 1)
    return date_module(folder, library, "bench")


class _Url:
    def __init__(self, base_url: str):
        self.base_url = base_url


def ablate(folder: Path, base_url: str, method: str, items: int, subsets: int, concurrency: int) -> list[dict[str, Any]]:
    program = write_program(folder, _Url(base_url))  # type: ignore[arg-type]
    text = program.read_text().replace("concurrency = 16", f"concurrency = {concurrency}")
    program.write_text(text.replace("  compare = [none, date_lessons]", f"  compare = [none]\n  ablate  = {method}\n  subsets = {subsets}"))
    reference = module_of(folder, items)
    plan = load_plan(program)
    measured = []
    for _ in range(2):
        started, cpu = time.perf_counter(), time.process_time()
        result = start_ablation(plan, "date_eval", library=reference, base_dir=folder, runs_root=folder / "runs")
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert result.status == "completed", result.message
        document = result.to_json()
        measured.append(
            {
                "wall": wall,
                "cpu": cpu,
                "paid": document["usage"]["total"]["calls"],
                "cached": document["usage"]["total"]["cached_calls"],
                "subsets": len(document["subsets"]),
                "permutations": document["permutations"],
                "exact": document["exact"],
            }
        )
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--subsets", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    report: dict[str, Any] = {}
    with running_endpoint(script="support.worlds:date_world", faults={"latency_ms": args.latency_ms}) as endpoint:
        for method in ("loo", "shapley"):
            endpoint.reset()
            with tempfile.TemporaryDirectory() as folder:
                first, second = ablate(Path(folder), endpoint.base_url, method, args.items, args.subsets, args.concurrency)
            report[method] = {"first": first, "second": second, "endpoint_calls": endpoint.stats()["total"]}
    print(f"ablation of {args.items} lessons on {QUESTIONS} questions x {SAMPLES} samples, latency {args.latency_ms:.0f} ms, concurrency {args.concurrency}")
    for method, r in report.items():
        first, second = r["first"], r["second"]
        waves = math.ceil(first["paid"] / args.concurrency) * latency
        ideal = max(waves, first["cpu"])
        if method == "loo":
            naive = "leave-one-out scores each subset once"
        else:
            permutations = first["permutations"] or math.factorial(args.items)
            naive = (
                f"a permutation sampler without the cache would pay {permutations * (args.items + 1) * QUESTIONS * SAMPLES} calls "
                f"for the same {permutations} permutations ({first['paid'] / (permutations * (args.items + 1) * QUESTIONS * SAMPLES):.3f}x)"
                if first["permutations"]
                else "exact: every subset once"
            )
        print(f"  {method}: {first['subsets']} subsets, {first['paid']} calls paid ({naive})")
        print(
            f"    first run  wall {first['wall']:.2f} s, ideal {ideal:.2f} s = the longer of {waves:.2f} s of latency waves and "
            f"client CPU {first['cpu']:.2f} s ({first['wall'] / ideal:.2f}x the ideal)"
        )
        print(
            f"    second run wall {second['wall']:.2f} s ({second['wall'] / first['wall']:.2f}x the first, client CPU {second['cpu']:.2f} s), "
            f"{second['paid']} calls paid, {second['cached']} from the cache; the endpoint answered {r['endpoint_calls']} in all"
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
