"""Every LLM call: one protocol, one HTTP adapter, and the layers around it.

It owns the `LLMClient` protocol with its request, response and errors (`protocol`),
a request's JSON body and cache key and an answer's parsing (`wire`), the HTTP adapter (`transport`), the
shared response cache and each run's record (`cache`), batch execution (`batch`,
and `batch_api`, the only importer of `openai`), rate and concurrency limits,
retries, usage and budgets (`accounting`), structured outputs, the embedded local
model (`local`) and the `stack` that composes them. It imports only `core`.
`build_client` is loaded on first use and imports the HTTP client (`aiohttp`, in
`transport`) when it builds a client, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from grpo_dsl.clients.accounting import Budget, Usage
from grpo_dsl.clients.protocol import (
    BudgetExceeded,
    ChatRequest,
    ChatResponse,
    EndpointError,
    LLMClient,
    RetriesExhausted,
    StorageError,
    StructuredOutputError,
    derive_seed,
)
from grpo_dsl.clients.structured import complete_json

if TYPE_CHECKING:
    from grpo_dsl.clients.stack import ClientStack, build_client

__all__ = [
    "Budget",
    "BudgetExceeded",
    "ChatRequest",
    "ChatResponse",
    "ClientStack",
    "EndpointError",
    "LLMClient",
    "RetriesExhausted",
    "StorageError",
    "StructuredOutputError",
    "Usage",
    "build_client",
    "complete_json",
    "derive_seed",
]


def __getattr__(name: str) -> Any:
    if name in ("build_client", "ClientStack"):
        from grpo_dsl.clients import stack

        return getattr(stack, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
