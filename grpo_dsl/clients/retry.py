"""Retries with exponential backoff and jitter, honouring `Retry-After` up to a cap.

Only `TransientError`s are retried (429, 5xx, timeouts, dropped connections,
malformed bodies); an `EndpointError` goes straight up. A `Retry-After` longer than
`max_wait` is cut to it: a server asking for a day's pause would otherwise hold the
run for a day. Each retry and each final failure is reported to `on_event`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from grpo_dsl.clients.protocol import (
    ChatRequest,
    ChatResponse,
    LLMClient,
    RetriesExhausted,
    TransientError,
)

__all__ = ["MAX_RETRY_WAIT_S", "Retrying", "backoff_delay"]

MAX_RETRY_WAIT_S = 60.0
"""The longest wait before a retry, whatever the server's `Retry-After` says."""

EventSink = Callable[[dict[str, Any]], None]


def backoff_delay(retry: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait before retry number `retry` (from 0): the server's `Retry-After` when it
    gave one (plus up to 10 % jitter), else `base * 2**retry` capped at `cap`, half of it jittered."""
    if retry_after is not None:
        return retry_after * (1 + 0.1 * rng.random())
    ceiling = min(cap, base * 2.0**retry)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class Retrying:
    """Calls `inner` up to `1 + max_retries` times while it fails transiently."""

    def __init__(
        self,
        inner: LLMClient,
        *,
        model: str,
        max_retries: int,
        base_delay: float = 0.25,
        max_delay: float = 10.0,
        max_wait: float = MAX_RETRY_WAIT_S,
        on_event: EventSink | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.model = model
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_wait = max_wait
        self.on_event = on_event
        self.rng = rng or random.Random()

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """The inner client's answer, retrying transient failures with backoff."""
        retry = 0
        while True:
            try:
                return await self.inner.complete(request)
            except TransientError as exc:
                if retry == self.max_retries:
                    self._emit("llm_call_failed", request, attempts=retry + 1, error=str(exc))
                    raise RetriesExhausted(
                        f"model `{self.model}`: the call failed {retry + 1} times; last error: {exc}",
                        model=self.model,
                        attempts=retry + 1,
                    ) from exc
                retry_after = min(exc.retry_after, self.max_wait) if exc.retry_after is not None else None
                delay = min(
                    backoff_delay(retry, base=self.base_delay, cap=self.max_delay, retry_after=retry_after, rng=self.rng),
                    self.max_wait,
                )
                self._emit("llm_retry", request, attempt=retry + 1, delay=round(delay, 3), error=str(exc))
                await asyncio.sleep(delay)
                retry += 1

    def _emit(self, event: str, request: ChatRequest, **fields: Any) -> None:
        if self.on_event is not None:
            self.on_event({"event": event, "model": self.model, "stage": request.stage, "sample_key": request.sample_key, **fields})
