"""A run settles the tasks it started, and only those: two runs in one event loop, and
the loop owner's own tasks, do not cancel each other."""

from __future__ import annotations

import asyncio

from grpo_dsl.core.tasks import gather_tasks, owning_tasks, settle_tasks


async def _fail_soon() -> None:
    await asyncio.sleep(0.01)
    raise RuntimeError("endpoint down")


def test_a_failing_run_cancels_its_own_siblings_and_no_other_runs_tasks() -> None:
    async def failing_run(siblings: list[asyncio.Task[None]], gate: asyncio.Event) -> str:
        with owning_tasks():
            async def sibling() -> None:
                siblings.append(asyncio.current_task())  # type: ignore[arg-type]
                await gate.wait()

            try:
                await gather_tasks(sibling(), sibling(), _fail_soon())
            except RuntimeError as error:
                return str(error)
            finally:
                await settle_tasks()
        return "completed"

    async def other_run(gate: asyncio.Event) -> list[int]:
        with owning_tasks():
            async def work(n: int) -> int:
                await gate.wait()
                return n

            try:
                return await gather_tasks(work(1), work(2))
            finally:
                await settle_tasks()

    async def loop_owner() -> tuple[str, list[bool], list[int], bool]:
        gate = asyncio.Event()
        own = asyncio.create_task(gate.wait())  # the loop owner's task, outside every run
        siblings: list[asyncio.Task[None]] = []
        other = asyncio.create_task(other_run(gate))
        ended = await failing_run(siblings, gate)
        still_going = not other.done() and not own.done()
        gate.set()
        return ended, [s.cancelled() for s in siblings], await other, still_going and await own

    ended, cancelled, other, untouched = asyncio.run(loop_owner())
    assert ended == "endpoint down"
    assert cancelled == [True, True]
    assert other == [1, 2]
    assert untouched


def test_settling_without_cancelling_lets_the_runs_calls_in_flight_finish() -> None:
    async def run() -> list[str]:
        finished: list[str] = []

        async def call(name: str) -> None:
            await asyncio.sleep(0.05)
            finished.append(name)

        with owning_tasks():
            try:
                await gather_tasks(call("a"), call("b"), _fail_soon())  # as a budget stop raises in one call
            except RuntimeError:
                assert finished == []
                await settle_tasks(cancel=False)
        return sorted(finished)

    assert asyncio.run(run()) == ["a", "b"]
