"""Batch execution through the real `openai` package against the test endpoint's Batch API."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from support.endpoint import Endpoint

from grpo_dsl.clients import ChatRequest, ChatResponse, Usage, build_client
from grpo_dsl.clients.batch import SubmittedBatch, submitted_batches
from grpo_dsl.clients.batch_api import OpenAIBatchAPI
from grpo_dsl.clients.protocol import ModelConfig
from grpo_dsl.clients.wire import request_key


def batch_model(endpoint: Endpoint, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "test-model",
        "base_url": endpoint.base_url,
        "api_key": "secret",
        "concurrency": 8,
        "batch": True,
        "price": {"input": 1.0, "output": 2.0, "batch_discount": 0.5},
        **overrides,
    }


def requests(count: int, stage: str = "rollout") -> list[ChatRequest]:
    return [
        ChatRequest("m", ({"role": "user", "content": f"question {i} of {stage}"},), stage=stage, sample_key=f"1/q{i}/0", split="train")
        for i in range(count)
    ]


def run(
    endpoint: Endpoint,
    batch: Sequence[ChatRequest],
    *,
    usage: Usage | None = None,
    events: list[dict[str, Any]] | None = None,
    submitted: Sequence[SubmittedBatch] = (),
    **model: Any,
) -> list[ChatResponse]:
    models = {"m": batch_model(endpoint, **model)}

    async def go() -> list[ChatResponse]:
        client = build_client(
            models,
            usage=usage if usage is not None else Usage(models),
            on_event=events.append if events is not None else None,
            retry_base_delay=0.01,
            submitted=submitted,
        )
        async with client:
            return list(await asyncio.gather(*(client.complete(r) for r in batch)))

    return asyncio.run(go())


def test_a_stage_goes_as_one_job_at_the_batch_price(endpoint: Endpoint) -> None:
    models = {"m": batch_model(endpoint)}
    usage = Usage(models)
    events: list[dict[str, Any]] = []

    answers = run(endpoint, requests(40), usage=usage, events=events)

    assert [a.content for a in answers] == [f"echo: question {i} of rollout" for i in range(40)]
    assert all(a.batched for a in answers)
    stats = endpoint.stats()
    assert stats["total"] == 0, "no ordinary call"
    assert stats["batches"]["created"] == 1 and stats["batches"]["lines"] == 40
    assert [e["event"] for e in events] == ["batch_file", "batch_submitted", "batch_finished"]
    assert events[-1]["answered"] == 40 and events[-1]["missing"] == 0
    assert usage.total.batched_calls == 40
    tokens = usage.total
    assert usage.total_usd == pytest.approx((tokens.prompt_tokens * 1.0 + tokens.completion_tokens * 2.0) / 1e6 * 0.5)


def test_each_stage_is_its_own_job(endpoint: Endpoint) -> None:
    events: list[dict[str, Any]] = []

    run(endpoint, requests(5, "summary") + requests(3, "advantage"), events=events)

    jobs = {e["stage"]: e["requests"] for e in events if e["event"] == "batch_file"}
    assert jobs == {"summary": 5, "advantage": 3}
    assert endpoint.stats()["batches"]["created"] == 2


def test_requests_failing_inside_a_job_fall_back_to_ordinary_calls(endpoint: Endpoint) -> None:
    endpoint.configure(batch={"fail_every": 4})
    usage = Usage({"m": batch_model(endpoint)})

    answers = run(endpoint, requests(20), usage=usage)

    assert [a.content for a in answers] == [f"echo: question {i} of rollout" for i in range(20)]
    assert sum(a.batched for a in answers) == 15
    assert endpoint.stats()["total"] == 5
    assert (usage.total.calls, usage.total.batched_calls) == (20, 15)


def test_an_expired_job_answers_what_it_did_and_the_rest_falls_back(endpoint: Endpoint) -> None:
    endpoint.configure(batch={"expire": [1]})
    events: list[dict[str, Any]] = []

    answers = run(endpoint, requests(10), events=events)

    assert [a.content for a in answers] == [f"echo: question {i} of rollout" for i in range(10)]
    assert sum(a.batched for a in answers) == 5
    assert endpoint.stats()["total"] == 5
    finished = next(e for e in events if e["event"] == "batch_finished")
    assert (finished["status"], finished["answered"], finished["missing"]) == ("expired", 5, 5)


def test_an_endpoint_without_a_batch_api_is_called_as_usual(endpoint: Endpoint) -> None:
    endpoint.configure(batch={"available": False})
    models = {"m": batch_model(endpoint)}
    events: list[dict[str, Any]] = []

    async def two_stages() -> list[ChatResponse]:
        client = build_client(models, usage=Usage(models), on_event=events.append)
        async with client:
            first = await asyncio.gather(*(client.complete(r) for r in requests(6, "summary")))
            second = await asyncio.gather(*(client.complete(r) for r in requests(4, "advantage")))
        return [*first, *second]

    answers = asyncio.run(two_stages())

    assert not any(a.batched for a in answers)
    assert endpoint.stats()["total"] == 10
    assert [e["event"] for e in events] == ["batch_unavailable"], "the second stage is not tried as a job"
    assert "HTTP 404" in events[0]["error"]


def test_a_resumed_run_waits_for_its_job_and_submits_nothing(endpoint: Endpoint) -> None:
    endpoint.configure(batch={"delay": 0.5})
    first: list[dict[str, Any]] = []
    batch = requests(12)

    async def submit_then_stop() -> None:
        async with build_client({"m": batch_model(endpoint)}, usage=Usage(), on_event=first.append) as client:
            tasks = [asyncio.create_task(client.complete(r)) for r in batch]
            while not any(e["event"] == "batch_submitted" for e in first):
                await asyncio.sleep(0.01)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(submit_then_stop())
    assert endpoint.stats()["batches"]["created"] == 1
    later: list[dict[str, Any]] = []

    answers = run(endpoint, batch, events=later, submitted=submitted_batches(first))

    assert [a.content for a in answers] == [f"echo: question {i} of rollout" for i in range(12)]
    assert all(a.batched for a in answers)
    stats = endpoint.stats()
    assert (stats["batches"]["created"], stats["batches"]["repeated_lines"], stats["total"]) == (1, 0, 0)
    assert [e["event"] for e in later] == ["batch_resumed", "batch_finished"]


def upload_only(endpoint: Endpoint, batch: Sequence[ChatRequest], *, start: bool) -> SubmittedBatch:
    """What a run killed right after uploading its file leaves: the file, and (with `start`) a job made from it."""
    config = ModelConfig.from_plan("m", batch_model(endpoint))
    keys = [request_key(r, config.name) for r in batch]
    lines = b"".join(
        b'{"custom_id":"%s","method":"POST","url":"/v1/chat/completions","body":{"model":"test-model","messages":[{"role":"user","content":"%s"}]}}\n'
        % (key.encode(), str(r.messages[0]["content"]).encode())
        for key, r in zip(keys, batch)
    )

    async def go() -> str:
        api = OpenAIBatchAPI(config)
        try:
            file = await api.upload("killed.jsonl", lines)
            if start:
                await api.create(file, {})
            return file
        finally:
            await api.aclose()

    return SubmittedBatch("m", "rollout", asyncio.run(go()), None, tuple(keys))


@pytest.mark.parametrize("started", [True, False])
def test_a_run_killed_after_its_upload_finds_its_job_by_the_file(endpoint: Endpoint, started: bool) -> None:
    batch = requests(6)
    earlier = upload_only(endpoint, batch, start=started)
    events: list[dict[str, Any]] = []

    answers = run(endpoint, batch, events=events, submitted=[earlier])

    assert all(a.batched for a in answers)
    stats = endpoint.stats()
    assert (stats["batches"]["created"], stats["batches"]["repeated_lines"], stats["total"]) == (1, 0, 0)
    assert events[0]["event"] == ("batch_resumed" if started else "batch_submitted")
    assert events[0]["file"] == earlier.file


def test_the_jobs_of_an_event_log_are_read_back() -> None:
    events = [
        {"event": "batch_file", "model": "m", "stage": "rollout", "file": "file-1", "keys": ["a", "b"]},
        {"event": "call", "stage": "rollout"},
        {"event": "batch_submitted", "model": "m", "stage": "rollout", "file": "file-1", "batch": "batch_1"},
        {"event": "batch_file", "model": "m", "stage": "summary", "file": "file-2", "keys": ["c"]},
    ]

    assert submitted_batches(events) == [
        SubmittedBatch("m", "rollout", "file-1", "batch_1", ("a", "b")),
        SubmittedBatch("m", "summary", "file-2", None, ("c",)),
    ]


def test_batched_answers_are_cached_like_any_other(endpoint: Endpoint, tmp_path: Path) -> None:
    models = {"m": batch_model(endpoint)}

    async def twice() -> list[ChatResponse]:
        answers = []
        for _ in range(2):
            client = build_client(models, usage=Usage(models), cache_dirs={"m": tmp_path})
            async with client:
                answers = list(await asyncio.gather(*(client.complete(r) for r in requests(8))))
        return answers

    again = asyncio.run(twice())

    assert all(a.cached for a in again)
    assert endpoint.stats()["batches"]["created"] == 1
