"""Deadlines and the preflight: a slow or absent endpoint fails in seconds, with the real cause."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from typing import Any

import pytest
from support.endpoint import Endpoint

from grpo_dsl.clients import (
    ChatRequest,
    EndpointError,
    RetriesExhausted,
    Usage,
    build_client,
)
from grpo_dsl.clients.stack import ClientStack


def _stack(models: Mapping[str, Mapping[str, Any]], events: list[dict[str, Any]] | None = None) -> ClientStack:
    return build_client(models, usage=Usage(models), on_event=events.append if events is not None else None)


def _model(base_url: str, **overrides: Any) -> dict[str, Any]:
    return {"name": "test-model", "base_url": base_url, "api_key": "secret", **overrides}


def _closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _complete(client: ClientStack, limit: float) -> str | None:
    async with client:
        response = await asyncio.wait_for(
            client.complete(ChatRequest(model="m", messages=({"role": "user", "content": "hi"},))), limit
        )
        return response.content


async def _preflight(client: ClientStack) -> None:
    async with client:
        await asyncio.wait_for(client.preflight(), 30)


def huge_retry_after_once(body: Mapping[str, Any], number: int) -> str | dict[str, Any]:
    """Endpoint script: a 429 asking for a pause of eleven days, then an answer."""
    return {"error_status": 429, "retry_after": 999999} if number == 1 else "after the capped wait"


class TestDeadlines:
    def test_a_body_trickled_a_byte_at_a_time_trips_the_total_deadline(self, endpoint: Endpoint) -> None:
        endpoint.configure(faults={"trickle_ms": 500})
        started = time.monotonic()

        with pytest.raises(RetriesExhausted, match=r"no complete answer from http://127\.0\.0\.1:\d+/v1 within 2 s"):
            asyncio.run(_complete(_stack({"m": _model(endpoint.base_url, timeout=2.0, max_retries=0)}), 60))

        assert time.monotonic() - started < 8

    def test_a_retry_after_of_days_waits_no_longer_than_the_timeout(self, endpoint: Endpoint) -> None:
        endpoint.configure(script="clients.test_client_deadlines:huge_retry_after_once")
        events: list[dict[str, Any]] = []
        started = time.monotonic()

        content = asyncio.run(_complete(_stack({"m": _model(endpoint.base_url, timeout=1.5)}, events), 30))

        assert content == "after the capped wait"
        assert time.monotonic() - started < 10
        assert [e["event"] for e in events] == ["llm_retry"] and events[0]["delay"] <= 1.5

    def test_a_refused_connection_says_so(self) -> None:
        url = f"http://127.0.0.1:{_closed_port()}/v1"
        with pytest.raises(RetriesExhausted, match=f"last error: connection refused at {url}"):
            asyncio.run(_complete(_stack({"m": _model(url, max_retries=1)}), 30))


class TestPreflight:
    def test_a_refused_connection_fails_at_once_naming_the_block(self) -> None:
        url = f"http://127.0.0.1:{_closed_port()}/v1"
        started = time.monotonic()

        with pytest.raises(EndpointError, match=rf"model `m` \(test-model\): connection refused at {url}; check `base_url` of model `m`"):
            asyncio.run(_preflight(_stack({"m": _model(url)})))

        assert time.monotonic() - started < 5

    def test_an_unknown_host_is_named(self) -> None:
        with pytest.raises(EndpointError, match=r"cannot resolve the host of http://no-such-host\.invalid/v1"):
            asyncio.run(_preflight(_stack({"m": _model("http://no-such-host.invalid/v1")})))

    def test_a_model_the_endpoint_does_not_serve(self, endpoint: Endpoint) -> None:
        endpoint.configure(models=["deepseek-chat", "deepseek-reasoner"])
        with pytest.raises(EndpointError, match=r"model `m`: `deepseek-chatt` is not served at .* \(it serves `deepseek-chat`, `deepseek-reasoner`\)"):
            asyncio.run(_preflight(_stack({"m": _model(endpoint.base_url, name="deepseek-chatt")})))
        assert endpoint.stats()["total"] == 0

    def test_a_wrong_key(self, endpoint: Endpoint) -> None:
        endpoint.configure(api_key="the-right-key")
        with pytest.raises(EndpointError, match=r"HTTP 401.*check `api_key` of model `m`"):
            asyncio.run(_preflight(_stack({"m": _model(endpoint.base_url, api_key="a-wrong-key")})))

    def test_a_served_model_passes_without_a_chat_call(self, endpoint: Endpoint) -> None:
        endpoint.configure(models=["test-model"])
        asyncio.run(_preflight(_stack({"m": _model(endpoint.base_url)})))
        assert endpoint.stats()["total"] == 0

    def test_without_a_model_listing_one_token_is_asked_for(self, endpoint: Endpoint) -> None:
        endpoint.configure(faults={"no_model_list": 1})
        asyncio.run(_preflight(_stack({"m": _model(endpoint.base_url)})))
        (sent,) = endpoint.stats()["requests"]
        assert sent["body"]["max_tokens"] == 1

    def test_without_a_model_listing_an_unknown_model_is_named(self, endpoint: Endpoint) -> None:
        endpoint.configure(faults={"no_model_list": 1}, models=["deepseek-chat"])
        with pytest.raises(EndpointError, match=r"HTTP 404.*check `name` \(the model id\)"):
            asyncio.run(_preflight(_stack({"m": _model(endpoint.base_url, name="nope")})))
