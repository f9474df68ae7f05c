"""Opt-in OpenTelemetry traces of learning runs: run -> step -> group -> call spans.

When `OTEL_EXPORTER_OTLP_ENDPOINT` is set as a run starts, the run's spans are sent
over OTLP/HTTP (protobuf) to that endpoint, and sent off before the run returns.
When it is not set, this module imports nothing from OpenTelemetry and every span
below is a no-op. The OpenTelemetry side lives in `runs/otel.py`, imported only then,
from the `otel` extra. docs/tracing.md lists the spans and their attributes.

The current tracer and span travel in context variables, so the group tasks a step
gathers, and the calls they make, nest under the span that was current when they
were created.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextvars import ContextVar
from typing import Protocol
from urllib.parse import urlsplit

from grpo_dsl.clients.protocol import ChatRequest, ChatResponse, LLMClient, ModelConfig
from grpo_dsl.core.errors import GrpoError

__all__ = ["ENDPOINT_VARIABLE", "Span", "Tracer", "TracedClient", "span", "traced_run"]

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"

AttributeValue = str | bool | int | float | list[str] | list[float]


class Span(Protocol):
    """What the code sees of a span: attributes can be added until it ends."""

    def set(self, attributes: Mapping[str, AttributeValue | None]) -> None: ...


class Tracer(Protocol):
    """Starts spans under the current one and sends them off at `shutdown`."""

    def span(self, name: str, attributes: Mapping[str, AttributeValue | None], *, client: bool = False) -> contextlib.AbstractContextManager[Span]: ...

    def shutdown(self) -> None: ...


class _NoSpan:
    def set(self, attributes: Mapping[str, AttributeValue | None]) -> None:
        """Drop the attributes: nothing is traced."""


_NO_SPAN = _NoSpan()
_TRACER: ContextVar[Tracer | None] = ContextVar("grpo_dsl_tracer", default=None)


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, AttributeValue | None], *, client: bool = False) -> Iterator[Span]:
    """A span under the current one, when the run is traced; otherwise a no-op.

    `client` marks a call to another service (an LLM call). None values are left out.
    An exception that leaves the block is recorded on the span and marks it failed.
    """
    tracer = _TRACER.get()
    if tracer is None:
        yield _NO_SPAN
        return
    with tracer.span(name, attributes, client=client) as current:
        yield current


@contextlib.asynccontextmanager
async def traced_run(name: str, attributes: Mapping[str, AttributeValue | None]) -> AsyncIterator[Span]:
    """The root span of a run, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

    Every span opened inside it (in this task or in tasks it creates) joins its trace;
    when it ends, the spans are exported before it returns.
    """
    if not os.environ.get(ENDPOINT_VARIABLE):
        yield _NO_SPAN
        return
    try:
        from grpo_dsl.runs.otel import OtlpTracer
    except ImportError:
        raise GrpoError(
            f"{ENDPOINT_VARIABLE} is set, and tracing needs the `otel` extra: pip install 'grpo-dsl[otel]' "
            f"(or unset {ENDPOINT_VARIABLE})"
        ) from None
    tracer = OtlpTracer()
    token = _TRACER.set(tracer)
    try:
        with tracer.span(name, attributes) as root:
            yield root
    finally:
        _TRACER.reset(token)
        tracer.shutdown()


class TracedClient:
    """An `LLMClient` that wraps each call in a GenAI `chat` span, when the run is traced.

    `models` are the client stack's model blocks, for the name sent to the endpoint,
    its address and the price of a call.
    """

    def __init__(self, inner: LLMClient, models: Mapping[str, ModelConfig]):
        self.inner = inner
        self.models = models

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Forward `request` inside a span carrying the request, the tokens, the cost and whether the cache answered."""
        if _TRACER.get() is None:
            return await self.inner.complete(request)
        config = self.models.get(request.model)
        name = config.name if config is not None else request.model
        with span(f"chat {name}", _request_attributes(request, name, config), client=True) as current:
            response = await self.inner.complete(request)
            cost = 0.0 if response.cached or config is None else config.usd(response.prompt_tokens, response.completion_tokens)
            current.set(
                {
                    "gen_ai.usage.input_tokens": response.prompt_tokens,
                    "gen_ai.usage.output_tokens": response.completion_tokens,
                    "gen_ai.response.finish_reasons": [response.finish_reason] if response.finish_reason else None,
                    "grpo.cache_hit": response.cached,
                    "grpo.cost_usd": cost,
                }
            )
        return response


def _request_attributes(request: ChatRequest, name: str, config: ModelConfig | None) -> dict[str, AttributeValue | None]:
    address = urlsplit(config.base_url) if config is not None and config.base_url else None
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": name,
        "gen_ai.request.temperature": request.temperature,
        "gen_ai.request.top_p": request.top_p,
        "gen_ai.request.max_tokens": request.max_tokens,
        "gen_ai.request.seed": request.seed,
        "server.address": address.hostname if address else None,
        "server.port": address.port if address else None,
        "grpo.stage": request.stage,
        "grpo.model_block": request.model,
        "grpo.sample_key": request.sample_key,
    }

