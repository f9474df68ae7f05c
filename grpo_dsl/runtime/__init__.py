"""The runtime: the learning loop and every LLM call it makes.

`build_client` (which imports `openai`) is loaded on first use, so importing a
runtime module that never calls an LLM stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .accounting import Budget, Usage
from .client import (
    BudgetExceeded,
    ChatRequest,
    ChatResponse,
    EndpointError,
    LLMClient,
    RetriesExhausted,
    StructuredOutputError,
    derive_seed,
)
from .structured import complete_json

if TYPE_CHECKING:
    from .stack import ClientStack, build_client

__all__ = [
    "Budget",
    "BudgetExceeded",
    "ChatRequest",
    "ChatResponse",
    "ClientStack",
    "EndpointError",
    "LLMClient",
    "RetriesExhausted",
    "StructuredOutputError",
    "Usage",
    "build_client",
    "complete_json",
    "derive_seed",
]


def __getattr__(name: str) -> Any:
    if name in ("build_client", "ClientStack"):
        from . import stack

        return getattr(stack, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
