"""Concurrency and rate limits of one model: a semaphore and token buckets.

`ConcurrencyLimit` wraps a whole call, retries included, so no more than
`concurrency` requests of a model are ever in flight. `RateLimit` wraps each attempt
and paces requests (`rpm`) and estimated tokens (`tpm`); once the answer is known,
the token bucket is corrected by the real token count.
"""

from __future__ import annotations

import asyncio
import time

from grpo_dsl.clients.protocol import (
    ChatRequest,
    ChatResponse,
    LLMClient,
    estimated_tokens,
)

__all__ = ["ConcurrencyLimit", "RateLimit", "TokenBucket"]


class ConcurrencyLimit:
    """At most `limit` calls of `inner` at a time."""

    def __init__(self, inner: LLMClient, limit: int) -> None:
        self.inner = inner
        self._semaphore = asyncio.Semaphore(max(1, limit))

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Wait for a free slot, then call `inner`."""
        async with self._semaphore:
            return await self.inner.complete(request)


class TokenBucket:
    """Refills at `per_minute / 60` units a second and holds at most one second's worth (at least 1).

    A take larger than the bucket waits for a full bucket and leaves it in debt, so
    over any minute no more than `per_minute` units (plus one bucket) go through.
    """

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60
        self.capacity = max(self.rate, 1.0)
        self.level = self.capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self._updated) * self.rate)
        self._updated = now

    async def take(self, amount: float) -> None:
        """Wait until `amount` units may go, then take them."""
        async with self._lock:
            needed = min(amount, self.capacity)
            self._refill()
            while self.level < needed:
                await asyncio.sleep((needed - self.level) / self.rate)
                self._refill()
            self.level -= amount

    def give_back(self, amount: float) -> None:
        """Correct an earlier take by `amount` units (negative to take more)."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)


class RateLimit:
    """Paces the attempts sent to `inner` to `rpm` requests and `tpm` tokens a minute (either may be None)."""

    def __init__(self, inner: LLMClient, *, rpm: int | None, tpm: int | None) -> None:
        self.inner = inner
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Wait for the buckets, then call `inner`."""
        if self.requests is not None:
            await self.requests.take(1)
        if self.tokens is None:
            return await self.inner.complete(request)
        estimate = estimated_tokens(request)
        await self.tokens.take(estimate)
        response = await self.inner.complete(request)
        self.tokens.give_back(estimate - response.prompt_tokens - response.completion_tokens)
        return response
