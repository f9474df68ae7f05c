"""The OpenTelemetry side of `runs.tracing`, imported only when a run is traced.

One `TracerProvider` per run, with its own batch processor and OTLP/HTTP exporter
(which reads `OTEL_EXPORTER_OTLP_ENDPOINT` and the other `OTEL_EXPORTER_OTLP_*`
variables itself); the global provider of an application is left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind

from grpo_dsl._version import __version__
from grpo_dsl.runs.tracing import AttributeValue

__all__ = ["OtlpTracer"]


def _present(attributes: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    return {key: value for key, value in attributes.items() if value is not None}


class _Span:
    def __init__(self, span: Span):
        self._span = span

    def set(self, attributes: Mapping[str, AttributeValue | None]) -> None:
        """Add `attributes` (None values left out) to the span."""
        self._span.set_attributes(_present(attributes))


class OtlpTracer:
    """Spans of one run, exported over OTLP/HTTP as the `grpo-dsl` service."""

    def __init__(self) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": "grpo-dsl", "service.version": __version__}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer = self.provider.get_tracer("grpo_dsl", __version__)

    @contextlib.contextmanager
    def span(self, name: str, attributes: Mapping[str, AttributeValue | None], *, client: bool = False) -> Iterator[_Span]:
        """A span under the current one (a CLIENT span when `client`), current while the block runs."""
        kind = SpanKind.CLIENT if client else SpanKind.INTERNAL
        with self.tracer.start_as_current_span(name, kind=kind, attributes=_present(attributes)) as current:
            yield _Span(current)

    def shutdown(self) -> None:
        """Export the spans still queued and close the exporter."""
        self.provider.shutdown()
