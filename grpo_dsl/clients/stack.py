"""`build_client`: the production client stack, from the outside in.

```
ResponseCache        the run's record, then the model's shared cache: a hit is free
Metered              budget check before the call, usage and cost after it
Router               request.model picks the model block's own chain:
  Batching             (batch = true) one batch job per stage, the rest falls through
  ConcurrencyLimit     at most `concurrency` calls in flight, retries included
  Retrying             backoff with jitter, Retry-After (at most the model's timeout), fail fast on fatal errors
  RateLimit            `rpm` / `tpm` token buckets, per attempt
  HTTPAdapter          one HTTP attempt on the model's connection pool
```
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from grpo_dsl.clients.accounting import Budget, Metered, Usage
from grpo_dsl.clients.batch import Batching, SubmittedBatch
from grpo_dsl.clients.cache import ResponseCache, RunRecord, SharedCache
from grpo_dsl.clients.limits import ConcurrencyLimit, RateLimit
from grpo_dsl.clients.protocol import (
    ChatRequest,
    ChatResponse,
    EndpointError,
    LLMClient,
    ModelConfig,
)
from grpo_dsl.clients.retry import MAX_RETRY_WAIT_S, Retrying
from grpo_dsl.core.tasks import gather_tasks

if TYPE_CHECKING:
    from grpo_dsl.clients.transport import HTTPAdapter

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
    """The composed client: `complete` for calls inside `async with stack:`, which opens
    every connection pool and, on the way out, ends batch waits, writes and closes the
    caches and closes every pool (each of them, even when another fails to close)."""

    def __init__(
        self,
        outer: LLMClient,
        adapters: Sequence[HTTPAdapter],
        models: Mapping[str, ModelConfig],
        *,
        cache: ResponseCache | None = None,
        batching: Sequence[Batching] = (),
    ) -> None:
        self.outer = outer
        self.adapters = list(adapters)
        self.models = dict(models)
        self.cache = cache
        self.batching = list(batching)
        self._open: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> ClientStack:
        """Open every model's connection pool; the stack is closed by leaving the block."""
        async with contextlib.AsyncExitStack() as opened:
            for adapter in self.adapters:
                await opened.enter_async_context(adapter)
            if self.cache is not None:
                opened.callback(self.cache.close)
            for layer in self.batching:
                opened.push_async_callback(layer.aclose)
            self._open = opened.pop_all()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Stop waiting for batch jobs, write and close the caches, close every connection."""
        opened, self._open = self._open, None
        if opened is not None:
            await opened.aclose()

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Answer `request` through every layer."""
        return await self.outer.complete(request)

    async def preflight(self) -> None:
        """Check every endpoint at once (`HTTPAdapter.preflight`); raise the first `EndpointError`."""
        await gather_tasks(*(adapter.preflight() for adapter in self.adapters))


def build_client(
    models: Mapping[str, Mapping[str, Any]],
    *,
    usage: Usage,
    cache_dirs: Mapping[str, Path] | None = None,
    record: RunRecord | None = None,
    budget: Budget | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    retry_base_delay: float = 0.25,
    submitted: Sequence[SubmittedBatch] = (),
) -> ClientStack:
    """Compose the client stack for the plan's `models` (block name -> plan model JSON);
    use it inside `async with`, which opens and closes its connections.

    `cache_dirs` maps model blocks to their shared cache folder (a block without
    one shares nothing); `record` is the run's own record of answers. Without
    either nothing is cached. `submitted` are the batch jobs an earlier life of the
    run submitted (from its event log), waited for instead of submitted again.
    `env(...)` values are resolved now. Retries, final failures, structured-output
    repairs and batch jobs are reported to `on_event`.
    """
    # The HTTP client (`aiohttp`, a fifth of a second to import) comes with the first
    # client built, so the runtime imports fast for the verbs that call no model.
    from grpo_dsl.clients.transport import HTTPAdapter

    configs = {block: ModelConfig.from_plan(block, model) for block, model in models.items()}
    adapters: list[HTTPAdapter] = []
    batching: list[Batching] = []
    chains: dict[str, LLMClient] = {}
    for block, config in configs.items():
        adapter = HTTPAdapter(config)
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
        if config.batch:
            # Imported only here: the `openai` package is needed for the Batch API alone.
            from grpo_dsl.clients.batch_api import OpenAIBatchAPI

            layer = Batching(
                chains[block],
                config,
                OpenAIBatchAPI(config),
                on_event=on_event,
                submitted=[job for job in submitted if job.model == block],
            )
            batching.append(layer)
            chains[block] = layer
    outer: LLMClient = Metered(Router(chains), usage, budget)
    cache = None
    if record is not None or cache_dirs:
        stores: dict[Path, SharedCache] = {}
        shared: dict[str, SharedCache] = {}
        for block, folder in (cache_dirs or {}).items():
            where = folder.resolve()
            if where not in stores:
                stores[where] = SharedCache(where)
            shared[block] = stores[where]
        cache = ResponseCache(outer, configs, record=record, shared=shared, on_hit=usage.record)
        outer = cache
    return ClientStack(outer, adapters, configs, cache=cache, batching=batching)
