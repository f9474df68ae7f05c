"""Usage and cost per stage and model, and the budgets checked before every call.

`Usage` counts calls, cached calls, batched calls, prompt and completion tokens and
USD (from each model's price per million tokens; an answer from a batch job at the
model's batch price, the price less its `batch_discount`) by stage and model;
`to_json` is `usage.json`.
`Metered` records every answered call and, before making one, refuses it with
`BudgetExceeded` if its worst case (estimated prompt tokens plus `max_tokens`) could
take spent-plus-in-flight over a limit. Cached answers cost nothing and are allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from grpo_dsl.clients.protocol import (
    BudgetExceeded,
    ChatRequest,
    ChatResponse,
    LLMClient,
    estimated_tokens,
)

__all__ = ["Budget", "Metered", "Price", "Tally", "Usage"]

USAGE_SCHEMA = "grpo-usage/1"
DEFAULT_BATCH_DISCOUNT = 0.5


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price: USD per million prompt and completion tokens, and the share a
    batch job takes off both."""

    input: float = 0.0
    output: float = 0.0
    batch_discount: float = DEFAULT_BATCH_DISCOUNT

    @classmethod
    def from_json(cls, price: Mapping[str, Any]) -> Price:
        """Read a plan's `price` block (or `usage.json`'s), absent values as defaults."""
        discount = price.get("batch_discount")
        return cls(
            float(price.get("input") or 0.0),
            float(price.get("output") or 0.0),
            DEFAULT_BATCH_DISCOUNT if discount is None else float(discount),
        )

    def to_json(self) -> dict[str, float]:
        return {"input": self.input, "output": self.output, "batch_discount": self.batch_discount}


FREE = Price()


@dataclass(slots=True)
class Tally:
    """Counters of one (stage, model) pair, or a sum of them."""

    calls: int = 0
    cached_calls: int = 0
    batched_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Tally) -> None:
        self.calls += other.calls
        self.cached_calls += other.cached_calls
        self.batched_calls += other.batched_calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.usd += other.usd

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "cached_calls": self.cached_calls,
            "batched_calls": self.batched_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens": self.tokens,
            "usd": round(self.usd, 10),
        }


def _sum(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total


class Usage:
    """Everything the LLM calls of a run cost, by stage and model.

    `models` is the plan's `models` object; only each model's `price` is read.
    """

    def __init__(self, models: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.prices: dict[str, Price] = {name: Price.from_json(model.get("price") or {}) for name, model in (models or {}).items()}
        self.tallies: dict[tuple[str, str], Tally] = {}
        self.total = Tally()

    def usd(self, model: str, prompt_tokens: int, completion_tokens: int, *, batched: bool = False) -> float:
        """The price of that many tokens on `model` (0 for a model without a price), at its
        batch price when `batched`."""
        price = self.prices.get(model, FREE)
        usd = (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000
        return usd * (1.0 - price.batch_discount) if batched else usd

    def record(self, request: ChatRequest, response: ChatResponse) -> None:
        """Count one answered request: a call with its tokens and cost, or a free cached answer."""
        if response.cached:
            change = Tally(cached_calls=1)
        else:
            change = Tally(
                calls=1,
                batched_calls=int(response.batched),
                prompt_tokens=response.prompt_tokens,
                completion_tokens=response.completion_tokens,
                usd=self.usd(request.model, response.prompt_tokens, response.completion_tokens, batched=response.batched),
            )
        self.tallies.setdefault((request.stage, request.model), Tally()).add(change)
        self.total.add(change)

    @property
    def total_usd(self) -> float:
        return self.total.usd

    @property
    def total_tokens(self) -> int:
        return self.total.tokens

    @property
    def total_calls(self) -> int:
        return self.total.calls

    def to_json(self) -> dict[str, Any]:
        """The `usage.json` document: totals, by stage, by model, and every (stage, model) pair."""
        stages = sorted({stage for stage, _ in self.tallies})
        models = sorted({model for _, model in self.tallies})
        return {
            "schema": USAGE_SCHEMA,
            "prices": {name: price.to_json() for name, price in sorted(self.prices.items())},
            "total": self.total.to_json(),
            "by_stage": {s: _sum(t for (stage, _), t in self.tallies.items() if stage == s).to_json() for s in stages},
            "by_model": {m: _sum(t for (_, model), t in self.tallies.items() if model == m).to_json() for m in models},
            "entries": [
                {"stage": stage, "model": model, **tally.to_json()} for (stage, model), tally in sorted(self.tallies.items())
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Usage:
        """Read back a `to_json` document, e.g. to resume a run with its spending so far."""
        usage = cls({name: {"price": price} for name, price in (data.get("prices") or {}).items()})
        for entry in data.get("entries") or []:
            tally = Tally(
                calls=int(entry["calls"]),
                cached_calls=int(entry["cached_calls"]),
                batched_calls=int(entry.get("batched_calls") or 0),
                prompt_tokens=int(entry["prompt_tokens"]),
                completion_tokens=int(entry["completion_tokens"]),
                usd=float(entry["usd"]),
            )
            usage.tallies[(str(entry["stage"]), str(entry["model"]))] = tally
            usage.total.add(tally)
        return usage


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits on a run's spending; None means no limit."""

    usd: float | None = None
    tokens: int | None = None
    calls: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Budget:
        """Read a plan's `budget` object (`{"usd": ..., "tokens": ..., "calls": ...}`)."""
        return cls(
            usd=None if data.get("usd") is None else float(data["usd"]),
            tokens=None if data.get("tokens") is None else int(data["tokens"]),
            calls=None if data.get("calls") is None else int(data["calls"]),
        )


class Metered:
    """Checks the budget before each call of `inner` and records each answer in `usage`."""

    def __init__(self, inner: LLMClient, usage: Usage, budget: Budget | None = None) -> None:
        self.inner = inner
        self.usage = usage
        self.budget = budget or Budget()
        self.reserved = Tally()

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Refuse the call if it could exceed the budget; otherwise make it and record it."""
        reservation = self._reserve(request)
        try:
            response = await self.inner.complete(request)
        finally:
            self.reserved.add(_negated(reservation))
        self.usage.record(request, response)
        return response

    def _reserve(self, request: ChatRequest) -> Tally:
        completion = request.max_tokens or 0
        prompt = estimated_tokens(request) - completion
        worst = Tally(calls=1, prompt_tokens=prompt, completion_tokens=completion, usd=self.usage.usd(request.model, prompt, completion))
        spent = self.usage.total
        reserved = self.reserved
        budget = self.budget
        if budget.calls is not None and spent.calls + reserved.calls + 1 > budget.calls:
            raise BudgetExceeded("calls", spent.calls + reserved.calls, budget.calls, 1)
        if budget.tokens is not None and spent.tokens + reserved.tokens + worst.tokens > budget.tokens:
            raise BudgetExceeded("tokens", spent.tokens + reserved.tokens, budget.tokens, worst.tokens)
        if budget.usd is not None and spent.usd + reserved.usd + worst.usd > budget.usd:
            raise BudgetExceeded("usd", spent.usd + reserved.usd, budget.usd, worst.usd)
        reserved.add(worst)
        return worst


def _negated(tally: Tally) -> Tally:
    return Tally(-tally.calls, -tally.cached_calls, -tally.batched_calls, -tally.prompt_tokens, -tally.completion_tokens, -tally.usd)
