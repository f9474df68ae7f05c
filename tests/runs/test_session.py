"""The run's client stack (`runs.session.client_stack`) opens its connections and closes
them on every way out: a call still in flight when the run ends, and a call made after,
open no connection pool that nobody closes (aiohttp warns about such a pool, later and
from wherever the garbage collector finds it).
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import aiohttp
import pytest
from support.endpoint import Endpoint
from support.learn_world import write_world

from grpo_dsl.clients import ChatRequest, EndpointError, Usage, build_client
from grpo_dsl.core.tasks import start_task
from grpo_dsl.plan import load_plan
from grpo_dsl.runs.directory import EventLog, RunDirectory
from grpo_dsl.runs.progress import Progress
from grpo_dsl.runs.session import client_stack, model_documents


def open_sessions() -> set[int]:
    """The aiohttp sessions of this process that are not closed."""
    gc.collect()
    return {id(o) for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession) and not o.closed}


def ask(text: str) -> ChatRequest:
    return ChatRequest(model="world", messages=({"role": "user", "content": text},), sample_key=text)


class Boom(Exception):
    """The error that ends the run in these tests."""


def test_a_call_waiting_when_the_run_fails_is_settled_before_the_connections_close(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.configure(script="support.worlds:date_world")
    plan = load_plan(write_world(tmp_path, endpoint.base_url))
    run = RunDirectory.create(tmp_path / "runs", "date_lessons", plan.to_json(), {})
    before = open_sessions()
    late: list[asyncio.Task[object]] = []

    async def failing_run() -> None:
        usage = Usage(model_documents(plan))
        events = EventLog(run.events_path)
        try:
            async with client_stack(plan, tmp_path, run, usage, None, events, Progress(None)) as (client, _):

                async def straggler() -> object:
                    await asyncio.sleep(0.2)  # as a call waiting out a retry's backoff
                    return await client.complete(ask("late"))

                late.append(start_task(straggler()))  # as the run starts its calls
                await asyncio.sleep(0)
                raise Boom("the run failed while a call was still waiting")
        finally:
            await asyncio.sleep(0.5)  # the loop goes on after the stack has closed (the run's own ending)
            await asyncio.gather(*late, return_exceptions=True)

    with pytest.raises(Boom):
        asyncio.run(failing_run())

    (task,) = late
    assert task.cancelled(), "the waiting call ended with the run"
    assert open_sessions() <= before, "no connection pool is left open"
    assert endpoint.stats()["total"] == 0


def test_a_call_after_the_stack_closed_is_refused_and_opens_no_pool(endpoint: Endpoint) -> None:
    models = {"world": {"name": "world", "base_url": endpoint.base_url, "api_key": "k"}}
    before = open_sessions()

    async def after_close() -> None:
        async with build_client(models, usage=Usage(models)) as client:
            assert (await client.complete(ask("in time"))).content
        with pytest.raises(EndpointError, match="model `world`: its connections are closed"):
            await client.complete(ask("too late"))

    asyncio.run(after_close())

    assert open_sessions() <= before
    assert endpoint.stats()["total"] == 1
