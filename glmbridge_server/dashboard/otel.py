"""OpenTelemetry traces: one span per exchange, children for the queue, each upstream
attempt and each server-tool round (the optional ``glmbridge[otel]`` extra).

On when the OpenTelemetry SDK and its OTLP/HTTP exporter are installed and
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set; the
standard ``OTEL_*`` variables configure the exporter (headers, timeout, compression) and the
resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``; the service is ``glmbridge``
unless they say otherwise). ``OTEL_SDK_DISABLED=true`` turns it off.

Spans are built when an exchange is over, from its facts (:class:`SpanFacts`, filled from
the per-call record), with their real start and end times; nothing is traced while the
request runs, so tracing costs the request path nothing. An inbound W3C ``traceparent``
(Claude Code can send one) makes the exchange's span its child. Attributes follow the
GenAI semantic conventions (``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.usage.*``, ``gen_ai.response.finish_reasons``). The SDK exports from its own
thread (a batch processor), so a slow collector never blocks a request. Prompts are never
put in spans.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from glmbridge._version import __version__

__all__ = ["ChildSpan", "SpanFacts", "Tracing"]

logger = logging.getLogger("glmbridge.otel")

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
Attributes = dict[str, str | int | float | bool | list[str]]


@dataclass(slots=True)
class ChildSpan:
    """A part of the exchange: ``queue``, ``upstream attempt``, ``server tool``."""

    name: str
    start: float  # Unix time, seconds
    end: float
    attributes: Attributes = field(default_factory=dict)
    client: bool = False  # a call out of the server (span kind CLIENT)
    error: str | None = None


@dataclass(slots=True)
class SpanFacts:
    """One exchange as a trace: its span's name, times and attributes, and its parts."""

    name: str
    start: float
    end: float
    attributes: Attributes
    children: list[ChildSpan] = field(default_factory=list)
    error: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None


class Tracing:
    """An OTLP/HTTP trace exporter and the tracer that feeds it (not the global one)."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = provider
        self._tracer = provider.get_tracer("glmbridge", __version__)
        self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Tracing | None:
        """A tracer when the extra is installed and an OTLP endpoint is configured."""
        env = os.environ if environ is None else environ
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        if not any(env.get(name, "").strip() for name in _ENDPOINTS):
            return None
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            logger.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry SDK is "
                           "not installed: pip install 'glmbridge[otel]'")  # fmt: skip
            return None
        own = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": "glmbridge"}
        provider = TracerProvider(resource=Resource.create(own))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        logger.info("OpenTelemetry traces are exported over OTLP/HTTP")
        return cls(provider)

    def export(self, facts: SpanFacts) -> None:
        """Build the exchange's spans (queued for export; never raises into the caller)."""
        try:
            self._export(facts)
        except Exception:  # a tracing bug must not fail a request
            logger.exception("could not build the trace of an exchange")

    def _export(self, facts: SpanFacts) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        carrier = {}
        if facts.traceparent:
            carrier["traceparent"] = facts.traceparent
            if facts.tracestate:
                carrier["tracestate"] = facts.tracestate
        parent = self._propagator.extract(carrier)
        span = self._tracer.start_span(
            facts.name, context=parent, kind=SpanKind.SERVER, attributes=facts.attributes,
            start_time=_ns(facts.start),
        )  # fmt: skip
        inside = trace.set_span_in_context(span)
        for child in facts.children:
            kind = SpanKind.CLIENT if child.client else SpanKind.INTERNAL
            part = self._tracer.start_span(child.name, context=inside, kind=kind,
                                           attributes=child.attributes,
                                           start_time=_ns(child.start))  # fmt: skip
            if child.error:
                part.set_attribute("error.type", child.error)
                part.set_status(Status(StatusCode.ERROR))
            part.end(end_time=_ns(max(child.end, child.start)))
        if facts.error:
            span.set_attribute("error.type", facts.error)
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=_ns(max(facts.end, facts.start)))

    def flush(self, timeout: float = 5.0) -> bool:
        """Export what is queued now (tests; shutdown)."""
        return bool(self._provider.force_flush(int(timeout * 1000)))

    def shutdown(self) -> None:
        """Flush and stop the exporter."""
        self._provider.shutdown()


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)
