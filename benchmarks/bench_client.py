"""Client stack throughput and CPU against the test endpoint, beside a bare AsyncOpenAI loop.

    .venv/bin/python benchmarks/bench_client.py [--calls 4000] [--in-flight 64 512] [--latency-ms 50]

The endpoint runs in its own process, so `time.process_time()` here is the client's
CPU alone. For each number of calls in flight (the model's `concurrency`), in the
same run:

- `grpo stack`: `build_client` without a cache;
- `grpo stack + cache`: with a shared cache and a run record, as a run has them;
- `bare AsyncOpenAI`: a semaphore around `chat.completions.create`, default settings;

each reported as wall time against the ideal `calls * latency / in-flight`, calls a
second, and client CPU per call (aim: at most 0.8 ms; at 512 in flight, at least
1,000 calls a second). Then the stack answers the same calls from its cache, and
the stack and the bare loop run under a fault mix (10 % 429, 5 % 500, 2 % dropped
connections, 5 % malformed bodies) and report the calls they lost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests")]

from support.endpoint import Endpoint, running_endpoint  # noqa: E402

from grpo_dsl.clients import ChatRequest, Usage, build_client  # noqa: E402
from grpo_dsl.clients.cache import RunRecord  # noqa: E402

FAULT_MIX = {"rate_429": 0.10, "rate_500": 0.05, "rate_drop": 0.02, "rate_malformed": 0.05, "retry_after": 0.05, "seed": 7}
MODEL_ID = "bench-model"


@dataclass(frozen=True)
class Result:
    name: str
    calls: int
    lost: int
    wall: float
    cpu: float
    peak_in_flight: int
    requests: int


def _messages(index: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You solve arithmetic problems. Reply with the number only."},
        {"role": "user", "content": f"Question {index}: what is {index} + {index * 7}?"},
    ]


async def _run_all(calls: int, one: Callable[[int], Awaitable[Any]]) -> int:
    results = await asyncio.gather(*(one(i) for i in range(calls)), return_exceptions=True)
    return sum(isinstance(r, BaseException) for r in results)


async def _stack(endpoint: Endpoint, calls: int, in_flight: int, cache: Path | None) -> int:
    models = {"bench": {"name": MODEL_ID, "base_url": endpoint.base_url, "api_key": "bench", "concurrency": in_flight}}
    client = build_client(
        models,
        usage=Usage(models),
        cache_dirs={"bench": cache} if cache is not None else {},
        record=RunRecord(cache / f"run-{in_flight}.jsonl") if cache is not None else None,
    )

    async def one(index: int) -> Any:
        return await client.complete(ChatRequest("bench", tuple(_messages(index)), temperature=0.7, max_tokens=64, sample_key=str(index)))

    async with client:
        return await _run_all(calls, one)


async def _bare(endpoint: Endpoint, calls: int, in_flight: int) -> int:
    client = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key="bench")
    semaphore = asyncio.Semaphore(in_flight)

    async def one(index: int) -> Any:
        async with semaphore:
            return await client.chat.completions.create(
                model=MODEL_ID, messages=_messages(index), temperature=0.7, max_tokens=64  # type: ignore[arg-type]
            )

    try:
        return await _run_all(calls, one)
    finally:
        await client.close()


def _measure(name: str, endpoint: Endpoint, run: Callable[[], Coroutine[Any, Any, int]], calls: int) -> Result:
    endpoint.reset()
    wall, cpu = time.perf_counter(), time.process_time()
    lost = asyncio.run(run())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stats = endpoint.stats()
    return Result(name, calls, lost, wall, cpu, stats["peak_in_flight"], stats["total"])


def _report(results: list[Result], ideal: float | None) -> None:
    print(f"{'client':<22}{'wall s':>8}{'vs ideal':>10}{'calls/s':>9}{'CPU ms/call':>13}{'lost':>6}{'requests':>10}{'peak':>6}")
    for r in results:
        ratio = f"{r.wall / ideal:.2f}x" if ideal else "-"
        print(
            f"{r.name:<22}{r.wall:>8.2f}{ratio:>10}{r.calls / r.wall:>9.0f}{1000 * r.cpu / r.calls:>13.3f}"
            f"{r.lost:>6}{r.requests:>10}{r.peak_in_flight:>6}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    calls = args.calls
    with tempfile.TemporaryDirectory() as tmp, running_endpoint(faults={"latency_ms": args.latency_ms}) as endpoint:
        for in_flight in args.in_flight:
            ideal = calls * args.latency_ms / 1000 / in_flight
            cache = Path(tmp, f"cache-{in_flight}")
            print(f"\n{calls} calls, {in_flight} in flight, latency {args.latency_ms:.0f} ms: ideal wall {ideal:.2f} s")
            results = [
                _measure("grpo stack", endpoint, lambda: _stack(endpoint, calls, in_flight, None), calls),
                _measure("grpo stack + cache", endpoint, lambda: _stack(endpoint, calls, in_flight, cache), calls),
                _measure("bare AsyncOpenAI", endpoint, lambda: _bare(endpoint, calls, in_flight), calls),
            ]
            _report(results, ideal)
            stack, _, bare = results
            print(f"stack / bare: wall {stack.wall / bare.wall:.2f}, CPU {stack.cpu / bare.cpu:.2f}")
            replay = _measure("grpo stack, cached", endpoint, lambda: _stack(endpoint, calls, in_flight, cache), calls)
            _report([replay], None)
        in_flight = args.in_flight[0]
        ideal = calls * args.latency_ms / 1000 / in_flight
        endpoint.configure(faults={"latency_ms": args.latency_ms, **FAULT_MIX})
        print(f"\nfault mix at {in_flight} in flight: 10 % 429, 5 % 500, 2 % dropped, 5 % malformed")
        faulty = [
            _measure("grpo stack", endpoint, lambda: _stack(endpoint, calls, in_flight, None), calls),
            _measure("bare AsyncOpenAI", endpoint, lambda: _bare(endpoint, calls, in_flight), calls),
        ]
        _report(faulty, ideal)


if __name__ == "__main__":
    main()
