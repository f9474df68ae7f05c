"""Pure parts of the client stack: seeds, cache keys, backoff, tolerant JSON parsing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import subprocess
import sys
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grpo_dsl.clients import ChatRequest, derive_seed
from grpo_dsl.clients.accounting import Budget
from grpo_dsl.clients.wire import body, request_key
from grpo_dsl.clients.limits import TokenBucket
from grpo_dsl.clients.protocol import ModelConfig, estimated_tokens
from grpo_dsl.clients.retry import backoff_delay
from grpo_dsl.clients.structured import parse_json_reply, response_format


class TestDeriveSeed:
    def test_is_the_same_in_another_process(self) -> None:
        code = "from grpo_dsl.clients import derive_seed; print(derive_seed(7, 'q17', 3))"
        other = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "123"}
        )
        assert int(other.stdout) == derive_seed(7, "q17", 3)

    @given(st.integers(0, 2**32), st.text(max_size=20) | st.integers(), st.integers(0, 1000))
    def test_fits_every_server_seed_type(self, run_seed: int, question: str | int, index: int) -> None:
        assert 0 <= derive_seed(run_seed, question, index) < 2**31

    def test_differs_per_rollout_question_and_run(self) -> None:
        seeds = {derive_seed(run, f"q{q}", i) for run in range(3) for q in range(10) for i in range(8)}
        assert len(seeds) == 3 * 10 * 8


def request(**fields: Any) -> ChatRequest:
    return ChatRequest(**{"model": "m", "messages": ({"role": "user", "content": "hi"},), **fields})


class TestCacheKey:
    def test_sample_key_makes_distinct_entries(self) -> None:
        assert request_key(request(sample_key="1/q/0"), "id") != request_key(request(sample_key="1/q/1"), "id")

    def test_block_name_and_stage_within_a_purpose_do_not_matter(self) -> None:
        assert request_key(request(stage="summary"), "id") == request_key(request(stage="advantage", model="other"), "id")

    def test_purpose_and_split_are_namespaces(self) -> None:
        keys = {
            request_key(request(stage=stage, split=split), "id")
            for stage in ("rollout", "summary", "validate", "evaluate", "judge")
            for split in ("train", "held_out")
        }
        assert len(keys) == 10

    def test_model_id_and_sampling_matter(self) -> None:
        base = request_key(request(), "id")
        assert base != request_key(request(), "other-id")
        assert base != request_key(request(temperature=0.7), "id")
        assert base != request_key(request(seed=1), "id")

    def test_numbers_are_normalised(self) -> None:
        assert request_key(request(temperature=1), "id") == request_key(request(temperature=1.0), "id")

    def test_weights_a_model_id_does_not_name_are_part_of_the_key(self) -> None:
        keys = {request_key(request(), "id", weights) for weights in (None, "gguf:a.gguf:1:2", "gguf:b.gguf:1:2")}
        assert len(keys) == 3

    def test_the_body_is_made_once_per_model_id(self) -> None:
        made = request(temperature=0.5)
        first = body(made, "id")
        assert body(made, "id") is first
        assert json.loads(first) == {"model": "id", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}
        assert json.loads(body(made, "other"))["model"] == "other"

    def test_a_replaced_request_gets_its_own_body(self) -> None:
        made = request(temperature=0.5)
        body(made, "id")
        changed = dataclasses.replace(made, temperature=0.9)
        assert json.loads(body(changed, "id"))["temperature"] == 0.9


class TestTokenBucket:
    def test_never_lets_more_through_than_one_bucket_plus_the_rate(self) -> None:
        async def take_all() -> float:
            bucket = TokenBucket(per_minute=6000)
            started = time.monotonic()
            for _ in range(150):
                await bucket.take(1)
            return time.monotonic() - started

        assert asyncio.run(take_all()) >= (150 - 100) / 100 - 1e-3

    def test_a_take_larger_than_the_bucket_waits_for_a_full_bucket(self) -> None:
        async def take() -> float:
            bucket = TokenBucket(per_minute=6000)
            await bucket.take(130)
            started = time.monotonic()
            await bucket.take(1)
            return time.monotonic() - started

        assert asyncio.run(take()) >= (1 + 30) / 100 - 1e-3


class TestBackoff:
    @given(st.integers(0, 12), st.floats(0.01, 2.0), st.floats(1.0, 60.0))
    def test_exponential_with_jitter_within_bounds(self, retry: int, base: float, cap: float) -> None:
        ceiling = min(cap, base * 2**retry)
        delay = backoff_delay(retry, base=base, cap=cap, retry_after=None, rng=random.Random(retry))
        assert ceiling / 2 <= delay <= ceiling

    @given(st.integers(0, 12), st.floats(0.0, 120.0))
    def test_retry_after_is_a_floor(self, retry: int, retry_after: float) -> None:
        delay = backoff_delay(retry, base=0.25, cap=10.0, retry_after=retry_after, rng=random.Random(retry))
        assert retry_after <= delay <= retry_after * 1.1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="abcxyz 019.:-_!?'", max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(alphabet="abcxyz_", min_size=1, max_size=6), children, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(alphabet="abcxyz_", min_size=1, max_size=6), json_values, min_size=1, max_size=4)


def with_trailing_commas(text: str) -> str:
    lines = text.split("\n")
    return "\n".join(
        line + "," if i + 1 < len(lines) and lines[i + 1].strip()[:1] in ("}", "]") and line.rstrip()[-1:] not in ("{", "[", ",") else line
        for i, line in enumerate(lines)
    )


class TestParseJsonReply:
    @given(json_objects, st.sampled_from(["", "Here it is:\n", "Sure.\n\n"]), st.booleans(), st.booleans())
    def test_recovers_the_object_from_a_chatty_reply(self, value: dict[str, Any], prose: str, fenced: bool, trailing: bool) -> None:
        text = json.dumps(value, indent=2)
        if trailing:
            text = with_trailing_commas(text)
        if fenced:
            text = f"```json\n{text}\n```\nAnything else?"
        assert parse_json_reply(prose + text) == value

    def test_comments_of_both_kinds(self) -> None:
        reply = '{\n  "a": 1, // one\n  # a note\n  "b": "x // y # z"\n}'
        assert parse_json_reply(reply) == {"a": 1, "b": "x // y # z"}

    @pytest.mark.parametrize("reply", ["", "no json here", "42"])
    def test_no_object_is_an_error(self, reply: str) -> None:
        with pytest.raises(ValueError, match="no JSON object"):
            parse_json_reply(reply)

    def test_unknown_structured_setting(self) -> None:
        with pytest.raises(ValueError, match="unknown structured setting 'xml'"):
            response_format({}, "xml")


class TestConfig:
    def test_env_values_are_resolved_at_run_time(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GRPO_TEST_BASE_URL", "http://example.invalid/v1")
        monkeypatch.delenv("GRPO_TEST_API_KEY", raising=False)
        config = ModelConfig.from_plan(
            "deepseek",
            {
                "name": "deepseek-chat",
                "base_url": {"env": "GRPO_TEST_BASE_URL", "default": "http://default/v1"},
                "api_key": {"env": "GRPO_TEST_API_KEY", "default": None},
                "price": {"input": 0.28, "output": 0.42},
            },
        )
        assert (config.base_url, config.api_key, config.api_key_source) == ("http://example.invalid/v1", None, 'env("GRPO_TEST_API_KEY")')
        assert (config.batch, config.cache) == (False, None)

    def test_budget_from_plan(self) -> None:
        assert Budget.from_json({"usd": 20, "tokens": None}) == Budget(usd=20.0)

    def test_token_estimate_counts_prompt_characters_and_max_tokens(self) -> None:
        assert estimated_tokens(request(messages=({"role": "user", "content": "x" * 10},), max_tokens=7)) == 3 + 7


def test_a_model_name_from_the_environment_is_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    model = {"name": {"env": "GRPO_TEST_MODEL_NAME", "default": "fallback-model"}, "base_url": "http://127.0.0.1:1/v1"}
    assert ModelConfig.from_plan("m", model).name == "fallback-model"
    monkeypatch.setenv("GRPO_TEST_MODEL_NAME", "chosen-model")
    assert ModelConfig.from_plan("m", model).name == "chosen-model"
