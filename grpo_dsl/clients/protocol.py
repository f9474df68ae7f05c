"""The one interface every LLM call goes through, and the values and errors it speaks.

A `ChatRequest` names a model block of the program; `LLMClient.complete` answers it
with a `ChatResponse`. `build_client` (in `stack.py`) composes the production client
from layers that each implement `LLMClient`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from grpo_dsl.core.env import resolve_env
from grpo_dsl.core.errors import GrpoError

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "LLMClient",
    "ModelConfig",
    "EndpointError",
    "TransientError",
    "RetriesExhausted",
    "StorageError",
    "BudgetExceeded",
    "StructuredOutputError",
    "derive_seed",
    "estimated_tokens",
    "namespace",
]

PURPOSES: Mapping[str, str] = {
    "rollout": "rollout",
    "summary": "learner",
    "contrast": "learner",
    "advantage": "learner",
    "consolidate": "learner",
    "validate": "gate",
    "prune": "gate",
    "rank": "gate",
    "evaluate": "evaluation",
    "ablate": "ablation",
    "judge": "judge",
}
"""The purpose of each stage: the first half of a request's cache namespace. Pruning
and the ranking of repeats sample the validation set as the gate does, so they share
its answers."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion request, addressed to a model block by its name in the program.

    `stage` says what the call is for (rollout, summary, contrast, advantage,
    consolidate, evaluate, judge, validate); `split` names the dataset the question
    comes from. Together they give the cache namespace (`namespace`), so a validation
    sample never answers a training rollout. `sample_key` (e.g. `"3/q17/2"`) is part
    of the cache key, so G samples of one prompt are G entries.
    """

    model: str
    messages: tuple[Mapping[str, Any], ...]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    response_format: Mapping[str, Any] | None = None
    tools: tuple[Mapping[str, Any], ...] = ()
    stage: str = "rollout"
    sample_key: str | None = None
    split: str | None = None
    wire: tuple[str, bytes] | None = field(default=None, init=False, repr=False, compare=False)
    """The request's JSON body for one model id, made once and shared by the cache key
    and the HTTP call (see `clients.wire`); never set by callers."""


def namespace(request: ChatRequest) -> str:
    """The cache namespace of a request: its stage's purpose and its dataset split."""
    return f"{PURPOSES.get(request.stage, request.stage)}/{request.split or '-'}"


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """The first choice of a chat completion and its token usage.

    `cached` when no call was made (the answer came from a cache); `batched` when it
    came from a provider batch job, priced at the model's batch price.
    """

    content: str | None
    tool_calls: tuple[Mapping[str, Any], ...]
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False
    batched: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "tool_calls": list(self.tool_calls),
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, cached: bool = False) -> ChatResponse:
        return cls(
            content=data["content"],
            tool_calls=tuple(data["tool_calls"]),
            finish_reason=data["finish_reason"],
            prompt_tokens=int(data["prompt_tokens"]),
            completion_tokens=int(data["completion_tokens"]),
            cached=cached,
        )


class LLMClient(Protocol):
    """Anything that answers chat requests: the adapter, each layer, the whole stack."""

    async def complete(self, request: ChatRequest) -> ChatResponse: ...


def _describe_source(value: Any) -> str:
    if isinstance(value, Mapping) and "env" in value:
        return f'env("{value["env"]}")'
    return "the program"


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """A model block of the plan with its `env(...)` values resolved.

    `block` is the block's name in the program, `name` the model id sent to the
    endpoint. `api_key_source` says where the key comes from, for error messages.
    """

    block: str
    name: str
    base_url: str | None
    api_key: str | None
    api_key_source: str
    concurrency: int = 8
    rpm: int | None = None
    tpm: int | None = None
    timeout: float = 600.0
    max_retries: int = 6
    structured: str = "json_schema"
    batch: bool = False
    cache: str | bool | None = None
    """Where the shared cache lives: None for the default place, False for none, or a
    folder (relative to the program's folder, as in the plan)."""
    weights: str | None = None
    """What names the model's weights when `name` does not: set for the embedded local
    model (its GGUF file) by `local.local_endpoints`, and part of every cache key."""

    @classmethod
    def from_plan(cls, block: str, model: Mapping[str, Any]) -> ModelConfig:
        """Read a plan's model JSON (docs/plan.md "Model"), resolving `env` references now."""
        return cls(
            block=block,
            name=str(resolve_env(model["name"])),
            base_url=resolve_env(model.get("base_url")),
            api_key=resolve_env(model.get("api_key")),
            api_key_source=_describe_source(model.get("api_key")),
            concurrency=int(model.get("concurrency") or 8),
            rpm=model.get("rpm"),
            tpm=model.get("tpm"),
            timeout=float(model.get("timeout") or 600.0),
            max_retries=int(model["max_retries"] if model.get("max_retries") is not None else 6),
            structured=str(model.get("structured") or "json_schema"),
            batch=bool(model.get("batch")),
            cache=model.get("cache"),
            weights=model.get("weights"),
        )


class EndpointError(GrpoError):
    """A fatal answer from an endpoint (400, 401, 403, 404, ...): retrying cannot help.

    The message names the model block and says what to check.
    """

    def __init__(self, message: str, *, model: str, status: int | None = None) -> None:
        super().__init__(message)
        self.model = model
        self.status = status


class TransientError(GrpoError):
    """A failure worth retrying: 429, 5xx, a timeout, a dropped connection, a malformed body.

    `status` is the HTTP status when the endpoint answered with one (None when it was not reached).
    """

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class StorageError(GrpoError):
    """An answer cannot be kept: the run's record or the shared cache cannot be written
    (a full disk, a file size limit). The run cannot go on without paying twice, so it stops."""


class RetriesExhausted(GrpoError):
    """A call still failed after the model's `max_retries`; the last error is its cause."""

    def __init__(self, message: str, *, model: str, attempts: int) -> None:
        super().__init__(message)
        self.model = model
        self.attempts = attempts


class BudgetExceeded(GrpoError):
    """A call would take a budget (`usd`, `tokens` or `calls`) over its limit; it was not made."""

    def __init__(self, limit: str, spent: float, allowed: float, needed: float) -> None:
        super().__init__(
            f"the {limit} budget would be exceeded: {_amount(limit, spent)} spent or reserved of "
            f"{_amount(limit, allowed)}, and the next call may need {_amount(limit, needed)}"
        )
        self.limit = limit
        self.spent = spent
        self.allowed = allowed


def _amount(limit: str, value: float) -> str:
    return f"${value:.4f}" if limit == "usd" else f"{int(value)}"


class StructuredOutputError(GrpoError):
    """The model's reply was not JSON matching the schema, even after one repair request."""

    def __init__(self, message: str, *, raw: str, errors: tuple[str, ...]) -> None:
        super().__init__(message)
        self.raw = raw
        self.errors = errors


def derive_seed(run_seed: int, question_id: str | int, rollout_index: int) -> int:
    """A stable 31-bit sampling seed for one rollout: the same inputs give the same seed on every machine."""
    digest = hashlib.sha256(f"{run_seed}\x1f{question_id}\x1f{rollout_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def estimated_tokens(request: ChatRequest) -> int:
    """An upper-leaning guess of a call's tokens before it is made: prompt characters / 4 plus `max_tokens`."""
    characters = 0
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, str):
            characters += len(content)
        elif isinstance(content, list):
            characters += sum(len(str(part.get("text", ""))) for part in content if isinstance(part, Mapping))
    return math.ceil(characters / 4) + (request.max_tokens or 0)
