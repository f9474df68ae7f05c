"""`grpo eval` of 1,600 calls end to end, against the ideal.

    .venv/bin/python benchmarks/bench_eval.py [--questions 400] [--samples 4] [--in-flight 64] [--latency-ms 50]

Writes an `evaluate` program (the questions x samples answers of one task, scored
by an expression reward) into a temporary folder and runs `grpo eval` on it as a
user does, in a fresh process, against the test endpoint (its own process) with
the given latency, answering right 70 % of the time (`worlds.sums_world`). The ideal is `calls * latency / in-flight`: the endpoint's
time alone, as if the client cost nothing. Reported, each in its own cache folder
and run directory:

- `grpo eval`: the first evaluation, every call paid (aim: at most 2x the ideal);
- `grpo eval, rerun`: the same evaluation again in a fresh directory, every answer
  from the shared cache;
- `grpo --version`: the interpreter's start and the command's imports, the floor
  under any verb.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests")]

from support.endpoint import Endpoint, running_endpoint  # noqa: E402

PROGRAM = """grpo 1

model m {{
  base_url    = "{base_url}"
  api_key     = "bench"
  name        = "bench-model"
  concurrency = {in_flight}
}}

dataset qa {{
  source = "qa.jsonl"
}}

task add {{
  model      = m
  prompt     = "What is {{{{ a }}}} + {{{{ b }}}}? Reply with the number only."
  max_tokens = 16
}}

reward correct = exact(strip(output), answer)

evaluate sums {{
  task    = add
  data    = qa
  reward  = correct
  samples = {samples}
}}
"""


def _write(folder: Path, endpoint: Endpoint, questions: int, samples: int, in_flight: int) -> Path:
    rows = [{"id": f"q{i}", "a": i, "b": 7 * i, "answer": str(8 * i)} for i in range(questions)]
    (folder / "qa.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    program = folder / "sums.grpo"
    program.write_text(PROGRAM.format(base_url=endpoint.base_url, in_flight=in_flight, samples=samples))
    return program


def _grpo(args: list[str], cache: Path) -> float:
    env = {**os.environ, "GRPO_CACHE_DIR": str(cache)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "grpo_dsl.cli", *args], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"grpo {' '.join(args)} failed:\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--questions", type=int, default=400)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    calls = args.questions * args.samples
    ideal = calls * args.latency_ms / 1000 / args.in_flight
    with tempfile.TemporaryDirectory() as tmp, running_endpoint(
        script="support.worlds:sums_world", faults={"latency_ms": args.latency_ms}
    ) as endpoint:
        folder = Path(tmp)
        program = _write(folder, endpoint, args.questions, args.samples, args.in_flight)
        evaluate = ["eval", str(program), "--format", "json"]
        print(f"grpo eval: {calls} calls, {args.in_flight} in flight, latency {args.latency_ms:.0f} ms: ideal {ideal:.2f} s")
        print(f"{'run':<22}{'wall s':>8}{'vs ideal':>10}{'endpoint calls':>16}")
        for name, extra, cache in (
            ("grpo eval", ["--runs", str(folder / "first")], folder / "cache"),
            ("grpo eval, rerun", ["--runs", str(folder / "again")], folder / "cache"),
        ):
            endpoint.reset()
            wall = _grpo(evaluate + extra, cache)
            print(f"{name:<22}{wall:>8.2f}{wall / ideal:>9.2f}x{endpoint.stats()['total']:>16}")
        wall = _grpo(["--version"], folder / "cache")
        print(f"{'grpo --version':<22}{wall:>8.2f}")


if __name__ == "__main__":
    main()
