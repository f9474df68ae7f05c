"""`build_client`: the production client stack, from the outside in.

```
ResponseCache        a hit is free: no budget check, no call, counted as cached
Metered              budget check before the call, usage and cost after it
Router               request.model picks the model block's own chain:
  ConcurrencyLimit     at most `concurrency` calls in flight, retries included
  Retrying             backoff with jitter, Retry-After (at most the model's timeout), fail fast on fatal errors
  RateLimit            `rpm` / `tpm` token buckets, per attempt
  OpenAIAdapter        one HTTP attempt through openai.AsyncOpenAI
```
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grpo_dsl.clients.accounting import Budget, Metered, Usage
from grpo_dsl.clients.cache import ResponseCache
from grpo_dsl.clients.limits import ConcurrencyLimit, RateLimit
from grpo_dsl.clients.protocol import (
    ChatRequest,
    ChatResponse,
    EndpointError,
    LLMClient,
    ModelConfig,
)
from grpo_dsl.clients.retry import MAX_RETRY_WAIT_S, Retrying

if TYPE_CHECKING:
    from grpo_dsl.clients.openai_adapter import OpenAIAdapter

__all__ = ["ClientStack", "Router", "build_client"]


class Router:
    """Sends each request to the client of the model block it names."""

    def __init__(self, clients: Mapping[str, LLMClient]) -> None:
        self.clients = dict(clients)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """The answer of `request.model`'s client."""
        client = self.clients.get(request.model)
        if client is None:
            known = ", ".join(f"`{name}`" for name in sorted(self.clients)) or "none"
            raise EndpointError(f"no model block named `{request.model}` (known: {known})", model=request.model)
        return await client.complete(request)


class ClientStack:
    """The composed client: `complete` for calls, `aclose` to close every connection pool."""

    def __init__(self, outer: LLMClient, adapters: list[OpenAIAdapter], models: Mapping[str, ModelConfig]) -> None:
        self.outer = outer
        self.adapters = adapters
        self.models = dict(models)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Answer `request` through every layer."""
        return await self.outer.complete(request)

    async def preflight(self) -> None:
        """Check every endpoint at once (`OpenAIAdapter.preflight`); raise the first `EndpointError`."""
        await asyncio.gather(*(adapter.preflight() for adapter in self.adapters))

    async def aclose(self) -> None:
        """Close the connections of every endpoint."""
        await asyncio.gather(*(adapter.aclose() for adapter in self.adapters))


def build_client(
    models: Mapping[str, Mapping[str, Any]],
    *,
    cache_dir: Path | None,
    usage: Usage,
    budget: Budget | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    retry_base_delay: float = 0.25,
) -> ClientStack:
    """Compose the client stack for the plan's `models` (block name -> plan model JSON).

    `env(...)` values are resolved now. Without `cache_dir` nothing is cached.
    Retries, final failures and structured-output repairs are reported to `on_event`.
    """
    # `openai` takes a few hundred milliseconds to import: only a command that calls a model pays for it
    from grpo_dsl.clients.openai_adapter import OpenAIAdapter

    configs = {block: ModelConfig.from_plan(block, model) for block, model in models.items()}
    adapters: list[OpenAIAdapter] = []
    chains: dict[str, LLMClient] = {}
    for block, config in configs.items():
        adapter = OpenAIAdapter(config)
        adapters.append(adapter)
        limited = RateLimit(adapter, rpm=config.rpm, tpm=config.tpm)
        retrying = Retrying(
            limited,
            model=block,
            max_retries=config.max_retries,
            base_delay=retry_base_delay,
            max_wait=min(MAX_RETRY_WAIT_S, config.timeout),
            on_event=on_event,
        )
        chains[block] = ConcurrencyLimit(retrying, config.concurrency)
    outer: LLMClient = Metered(Router(chains), usage, budget)
    if cache_dir is not None:
        outer = ResponseCache(outer, cache_dir, {block: config.name for block, config in configs.items()}, on_hit=usage.record)
    return ClientStack(outer, adapters, configs)
