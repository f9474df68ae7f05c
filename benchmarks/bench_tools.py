"""The cost of one tool call, by kind, beside the same function called in process.

    .venv/bin/python benchmarks/bench_tools.py [--calls 200] [--concurrency 8]

Calls the agent world's glossary (`tests/support/glossary.py`) through an opened
`ToolBox`: as a Python function tool (the reward scorer's worker processes, JSON
lines over pipes) and as the tool of an MCP server started over stdio
(`tests/support/glossary_server.py`, the `mcp` package on both sides). The baseline
is the bare function called in this process, measured in the same run. Reports the
mean wall time per call (concurrent calls, so per-call wall is total / calls) and
its ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests")]

from support.glossary import define  # noqa: E402

from grpo_dsl.plan.views import ToolView  # noqa: E402
from grpo_dsl.rewards.scorer import WorkerPool  # noqa: E402
from grpo_dsl.rollout.tools import Tools  # noqa: E402
from grpo_dsl.language.toolschema import function_schema  # noqa: E402

SUPPORT = Path(__file__).resolve().parents[1] / "tests" / "support"


def _views(folder: Path) -> dict[str, ToolView]:
    schema = function_schema(folder / "glossary.py", "define")
    common = {"timeout": 30.0, "sha256": None, "hash": "0" * 64}
    return {
        "python function": ToolView("lookup", "python", path="glossary.py", function="define", schema=schema, command=None, url=None, **common),
        "MCP server (stdio)": ToolView(
            "lookup", "mcp", path=None, function=None, schema=None, command=(sys.executable, "glossary_server.py"), url=None, **common
        ),
    }


async def _timed(view: ToolView, folder: Path, calls: int, concurrency: int) -> float:
    pool = WorkerPool(concurrency)
    try:
        async with Tools(declared=(view,)).opened(folder, pool) as box:
            slots = asyncio.Semaphore(concurrency)
            warm = {"function": {"name": "lookup", "arguments": json.dumps({"term": "zorp0"})}}
            await asyncio.gather(*(box.call(warm) for _ in range(concurrency)))  # start the workers

            async def one(i: int) -> None:
                async with slots:
                    answer = await box.call({"function": {"name": "lookup", "arguments": json.dumps({"term": f"zorp{i}"})}})
                    assert answer == define(f"zorp{i}"), answer

            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(calls)))
            return (time.perf_counter() - started) / calls
    finally:
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        for name in ("glossary.py", "glossary_server.py"):
            shutil.copy(SUPPORT / name, folder / name)
        started = time.perf_counter()
        for i in range(args.calls):
            define(f"zorp{i}")
        baseline = (time.perf_counter() - started) / args.calls
        print(f"{args.calls} calls, {args.concurrency} at a time")
        print(f"{'in process (baseline)':<22} {baseline * 1e6:10.1f} µs/call")
        for name, view in _views(folder).items():
            per_call = asyncio.run(_timed(view, folder, args.calls, args.concurrency))
            print(f"{name:<22} {per_call * 1e6:10.1f} µs/call  ({per_call / baseline:,.0f} x the baseline)")


if __name__ == "__main__":
    main()
