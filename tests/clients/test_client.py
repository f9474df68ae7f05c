"""The client stack over HTTP against the test endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from support.endpoint import Endpoint

from grpo_dsl.clients import (
    Budget,
    BudgetExceeded,
    ChatRequest,
    ChatResponse,
    EndpointError,
    RetriesExhausted,
    Usage,
    build_client,
)
from grpo_dsl.clients.cache import cache_info
from grpo_dsl.clients.stack import ClientStack

FAULT_MIX = {"rate_429": 0.10, "rate_500": 0.05, "rate_drop": 0.02, "rate_malformed": 0.05, "retry_after": 0.01, "latency_ms": 2, "seed": 3}


def model(endpoint: Endpoint, **overrides: Any) -> dict[str, Any]:
    return {"name": "test-model", "base_url": endpoint.base_url, "api_key": "secret", "concurrency": 8, **overrides}


def stack(
    models: Mapping[str, Mapping[str, Any]],
    cache_dir: Path | None,
    *,
    usage: Usage | None = None,
    budget: Budget | None = None,
    events: list[dict[str, Any]] | None = None,
) -> ClientStack:
    return build_client(
        models,
        cache_dirs=dict.fromkeys(models, cache_dir) if cache_dir is not None else {},
        usage=usage if usage is not None else Usage(models),
        budget=budget,
        on_event=events.append if events is not None else None,
        retry_base_delay=0.01,
    )


def request(text: str, *, model_block: str = "deepseek", sample_key: str | None = None, **fields: Any) -> ChatRequest:
    return ChatRequest(model=model_block, messages=({"role": "user", "content": text},), sample_key=sample_key, **fields)


def cache_entries(directory: Path) -> int:
    info = cache_info(directory)
    return info.entries if info is not None else 0


async def complete_all(client: ClientStack, requests: list[ChatRequest]) -> list[ChatResponse]:
    async with client:
        return list(await asyncio.gather(*(client.complete(r) for r in requests)))


class TestFaults:
    def test_every_call_completes_once_under_the_fault_mix(self, endpoint: Endpoint, tmp_path: Path) -> None:
        endpoint.configure(faults=FAULT_MIX)
        models = {"deepseek": model(endpoint, concurrency=16, max_retries=12)}
        usage = Usage(models)
        events: list[dict[str, Any]] = []
        requests = [request(f"question {i}", sample_key=f"1/q{i}/0") for i in range(500)]

        responses = asyncio.run(complete_all(stack(models, tmp_path, usage=usage, events=events), requests))

        assert [r.content for r in responses] == [f"echo: question {i}" for i in range(500)]
        assert not any(r.cached for r in responses)
        stats = endpoint.stats()
        outcomes = stats["outcomes"]
        assert outcomes["ok"] == 500
        assert all(outcomes.get(fault, 0) > 0 for fault in ("429", "500", "dropped", "malformed"))
        assert stats["total"] == 500 + sum(outcomes.get(f, 0) for f in ("429", "500", "dropped", "malformed"))
        assert len([e for e in events if e["event"] == "llm_retry"]) == stats["total"] - 500
        assert usage.total.calls == 500
        assert usage.total.prompt_tokens == 2 * 500
        assert usage.to_json()["by_stage"]["rollout"]["calls"] == 500
        assert cache_entries(tmp_path) == 500
        assert stats["peak_in_flight"] <= 16

    def test_peak_in_flight_never_exceeds_the_declared_concurrency(self, endpoint: Endpoint, tmp_path: Path) -> None:
        endpoint.configure(faults={"latency_ms": 20, "rate_500": 0.2, "seed": 1})
        models = {"deepseek": model(endpoint, concurrency=5, max_retries=20)}

        asyncio.run(complete_all(stack(models, None), [request(f"q{i}", sample_key=str(i)) for i in range(60)]))

        stats = endpoint.stats()
        assert stats["outcomes"]["ok"] == 60
        assert 1 < stats["peak_in_flight"] <= 5

    def test_rpm_paces_requests(self, endpoint: Endpoint) -> None:
        models = {"deepseek": model(endpoint, concurrency=64, rpm=1200)}
        started = time.monotonic()

        asyncio.run(complete_all(stack(models, None), [request(f"q{i}", sample_key=str(i)) for i in range(40)]))

        # 20 a second with a one-second bucket: the first 20 may go at once, the next 20 take a second
        assert time.monotonic() - started >= 1.0
        assert endpoint.stats()["outcomes"]["ok"] == 40

    def test_retries_exhausted_raise_and_are_not_cached(self, endpoint: Endpoint, tmp_path: Path) -> None:
        endpoint.configure(faults={"rate_500": 1.0})
        models = {"deepseek": model(endpoint, max_retries=2)}
        events: list[dict[str, Any]] = []
        usage = Usage(models)

        with pytest.raises(RetriesExhausted, match=r"model `deepseek`: the call failed 3 times; last error: HTTP 500"):
            asyncio.run(complete_all(stack(models, tmp_path, usage=usage, events=events), [request("hi", sample_key="a")]))

        assert endpoint.stats()["total"] == 3
        assert [e["event"] for e in events] == ["llm_retry", "llm_retry", "llm_call_failed"]
        assert cache_entries(tmp_path) == 0
        assert usage.total.calls == 0
        endpoint.configure()
        [response] = asyncio.run(complete_all(stack(models, tmp_path), [request("hi", sample_key="a")]))
        assert not response.cached
        assert endpoint.stats()["total"] == 1

    def test_retry_after_is_honoured(self, endpoint: Endpoint) -> None:
        endpoint.configure(script="clients.test_client:rate_limited_once")
        events: list[dict[str, Any]] = []

        [response] = asyncio.run(complete_all(stack({"deepseek": model(endpoint)}, None, events=events), [request("hi")]))

        assert response.content == "after the wait"
        first, second = sorted(endpoint.stats()["requests"], key=lambda r: r["number"])
        assert second["received_at"] - first["received_at"] >= 1.0
        assert events[0]["event"] == "llm_retry" and events[0]["delay"] >= 1.0


def rate_limited_once(body: Mapping[str, Any], number: int) -> str | dict[str, Any]:
    """Endpoint script: 429 with `Retry-After: 1` on the first request, then an answer."""
    return {"error_status": 429, "retry_after": 1} if number == 1 else "after the wait"


def quota_exhausted(body: Mapping[str, Any], number: int) -> dict[str, Any]:
    """Endpoint script: OpenAI's answer when the account has no quota left."""
    return {"error_status": 429, "code": "insufficient_quota", "message": "You exceeded your current quota."}


class TestFatalErrors:
    def test_401_fails_fast_naming_the_model_block(self, endpoint: Endpoint) -> None:
        endpoint.configure(api_key="the-right-key")
        models = {"deepseek": model(endpoint, api_key={"env": "GRPO_TEST_KEY_UNSET", "default": "a-wrong-key"})}

        with pytest.raises(EndpointError) as caught:
            asyncio.run(complete_all(stack(models, None), [request("hi")]))

        message = str(caught.value)
        assert "model `deepseek`" in message and "HTTP 401" in message
        assert 'check `api_key` of model `deepseek` (from env("GRPO_TEST_KEY_UNSET"))' in message
        assert caught.value.status == 401
        assert endpoint.stats()["total"] == 1

    def test_missing_api_key_is_named(self, endpoint: Endpoint) -> None:
        endpoint.configure(api_key="the-right-key")
        models = {"deepseek": model(endpoint, api_key={"env": "GRPO_TEST_KEY_UNSET", "default": None})}

        with pytest.raises(EndpointError, match=r'model `deepseek` has no api_key: set `api_key` \(from env\("GRPO_TEST_KEY_UNSET"\)\)'):
            asyncio.run(complete_all(stack(models, None), [request("hi")]))

    def test_404_fails_fast_naming_the_model_block(self, endpoint: Endpoint) -> None:
        endpoint.configure(models=["deepseek-chat"])

        with pytest.raises(EndpointError) as caught:
            asyncio.run(complete_all(stack({"deepseek": model(endpoint, name="deepseek-chatt")}, None), [request("hi")]))

        message = str(caught.value)
        assert "model `deepseek` (deepseek-chatt at http://127.0.0.1:" in message and "HTTP 404" in message
        assert "check `name` (the model id) and `base_url`" in message
        assert endpoint.stats()["total"] == 1

    def test_insufficient_quota_is_fatal(self, endpoint: Endpoint) -> None:
        endpoint.configure(script="clients.test_client:quota_exhausted")

        with pytest.raises(EndpointError, match="has no quota left"):
            asyncio.run(complete_all(stack({"deepseek": model(endpoint)}, None), [request("hi")]))

        assert endpoint.stats()["total"] == 1

    def test_unknown_model_block(self, endpoint: Endpoint) -> None:
        with pytest.raises(EndpointError, match=r"no model block named `judge` \(known: `deepseek`\)"):
            asyncio.run(complete_all(stack({"deepseek": model(endpoint)}, None), [request("hi", model_block="judge")]))

    def test_missing_base_url(self) -> None:
        with pytest.raises(EndpointError, match="model `deepseek` has no base_url"):
            build_client({"deepseek": {"name": "m", "base_url": {"env": "GRPO_TEST_URL_UNSET", "default": None}}}, usage=Usage())


class TestCache:
    def test_a_rerun_costs_no_endpoint_call(self, endpoint: Endpoint, tmp_path: Path) -> None:
        models = {"deepseek": model(endpoint)}
        requests = [request(f"q{i}", sample_key=f"1/q{i}/0", temperature=0.7, seed=i) for i in range(40)]
        first = asyncio.run(complete_all(stack(models, tmp_path), requests))
        endpoint.reset()
        usage = Usage(models)

        again = asyncio.run(complete_all(stack(models, tmp_path, usage=usage), requests))

        assert endpoint.stats()["total"] == 0
        assert [r.content for r in again] == [r.content for r in first]
        assert all(r.cached for r in again)
        assert (usage.total.calls, usage.total.cached_calls, usage.total.usd) == (0, 40, 0.0)

    def test_group_samples_are_distinct_entries(self, endpoint: Endpoint, tmp_path: Path) -> None:
        samples = [request("the same prompt", sample_key=f"3/q17/{i}") for i in range(5)]

        asyncio.run(complete_all(stack({"deepseek": model(endpoint)}, tmp_path), samples + samples))

        assert endpoint.stats()["total"] == 5
        assert cache_entries(tmp_path) == 5

    def test_stages_of_one_purpose_share_entries_and_purposes_do_not(self, endpoint: Endpoint, tmp_path: Path) -> None:
        models = {"deepseek": model(endpoint)}
        usage = Usage(models)
        same = dict(sample_key="k", split="train")

        asyncio.run(
            complete_all(
                stack(models, tmp_path, usage=usage),
                [request("q", stage="summary", **same), request("q", stage="advantage", **same), request("q", stage="validate", **same)],
            )
        )

        assert endpoint.stats()["total"] == 2
        by_stage = usage.to_json()["by_stage"]
        assert by_stage["summary"]["calls"] + by_stage["advantage"]["calls"] == 1
        assert by_stage["summary"]["cached_calls"] + by_stage["advantage"]["cached_calls"] == 1
        assert by_stage["validate"]["calls"] == 1

    def test_renaming_a_block_keeps_its_entries(self, endpoint: Endpoint, tmp_path: Path) -> None:
        asyncio.run(complete_all(stack({"deepseek": model(endpoint)}, tmp_path), [request("q", sample_key="k")]))
        endpoint.reset()

        [response] = asyncio.run(complete_all(stack({"ds": model(endpoint)}, tmp_path), [request("q", model_block="ds", sample_key="k")]))

        assert response.cached and endpoint.stats()["total"] == 0


class TestBudget:
    def test_stops_before_the_call_that_could_exceed_usd(self, endpoint: Endpoint, tmp_path: Path) -> None:
        models = {"deepseek": model(endpoint, price={"input": 0.0, "output": 1_000_000.0})}
        usage = Usage(models)
        client = stack(models, tmp_path, usage=usage, budget=Budget(usd=12.0))

        async def sequentially() -> int:
            made = 0
            async with client:
                for i in range(10):
                    await client.complete(request(f"q{i}", sample_key=str(i), max_tokens=5))
                    made += 1
            return made

        with pytest.raises(BudgetExceeded, match=r"the usd budget would be exceeded: \$8\.0000 spent or reserved of \$12\.0000"):
            asyncio.run(sequentially())

        # each answer "echo: qN" costs 2 output tokens = $2; a call may cost $5 (max_tokens)
        assert endpoint.stats()["total"] == 4
        assert usage.total_usd == 8.0

    def test_concurrent_calls_never_pass_the_calls_budget(self, endpoint: Endpoint, tmp_path: Path) -> None:
        endpoint.configure(faults={"latency_ms": 10})
        models = {"deepseek": model(endpoint)}
        client = stack(models, tmp_path, budget=Budget(calls=10))

        async def all_of_them() -> list[Any]:
            async with client:
                return list(await asyncio.gather(*(client.complete(request(f"q{i}", sample_key=str(i))) for i in range(30)), return_exceptions=True))

        results = asyncio.run(all_of_them())

        assert sum(isinstance(r, ChatResponse) for r in results) == 10
        assert all(isinstance(r, BudgetExceeded) for r in results if not isinstance(r, ChatResponse))
        assert endpoint.stats()["total"] == 10

    def test_cached_answers_are_free_after_the_budget_is_spent(self, endpoint: Endpoint, tmp_path: Path) -> None:
        models = {"deepseek": model(endpoint)}
        requests = [request(f"q{i}", sample_key=str(i)) for i in range(3)]
        usage = Usage(models)
        asyncio.run(complete_all(stack(models, tmp_path, usage=usage, budget=Budget(calls=3)), requests))

        again = asyncio.run(complete_all(stack(models, tmp_path, usage=usage, budget=Budget(calls=3)), requests))

        assert all(r.cached for r in again)
        with pytest.raises(BudgetExceeded, match="calls"):
            asyncio.run(complete_all(stack(models, tmp_path, usage=usage, budget=Budget(calls=3)), [request("new")]))
        assert endpoint.stats()["total"] == 3


class TestUsage:
    def test_usage_json_round_trips_with_prices(self, endpoint: Endpoint) -> None:
        models = {"deepseek": model(endpoint, price={"input": 0.28, "output": 0.42}), "judge": model(endpoint, name="judge-model")}
        usage = Usage(models)
        requests = [request("a b c", stage="rollout"), request("d e", stage="summary"), request("f", model_block="judge", stage="judge")]

        asyncio.run(complete_all(stack(models, None, usage=usage), requests))
        data = usage.to_json()

        assert data["by_model"]["deepseek"]["prompt_tokens"] == 5
        assert data["by_model"]["judge"]["usd"] == 0.0
        assert data["by_stage"]["summary"]["completion_tokens"] == 3
        assert data["total"]["calls"] == 3
        expected_usd = (5 * 0.28 + (4 + 3) * 0.42) / 1_000_000
        assert data["by_model"]["deepseek"]["usd"] == pytest.approx(expected_usd)
        restored = Usage.from_json(data)
        assert restored.to_json() == data
        assert restored.usd("deepseek", 1_000_000, 0) == pytest.approx(0.28)
