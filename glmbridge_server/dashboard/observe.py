"""The edge's observer: feeds the live inspector and the traces from each model request.

:class:`ObserveMiddleware` (pure ASGI, inside the security middleware, so refused requests
are not recorded) does nothing for a request unless the inspector is on (the ``inspector``
setting, or ``x-glmbridge-inspect: on`` on that request; ``x-glmbridge-inspect: off`` opts a
request out) or tracing is configured. When it is, it copies what the client sent and what
the client received into the inspector's bounded panes as the bytes pass, hands the drivers
a :class:`~glmbridge_server.dashboard.inspector.Capture` on the call's record for the
upstream side, and when the exchange is over builds the summary and the trace from the
record.
"""

from __future__ import annotations

import time
from typing import Any

from glmbridge_server.call.asgi import ASGIApp, Message, Receive, Scope, Send
from glmbridge_server.call.record import CallRecord
from glmbridge_server.dashboard.inspector import Capture, Entry, Inspector, Summary, redact_headers
from glmbridge_server.dashboard.otel import ChildSpan, SpanFacts
from glmbridge_server.edge.state import record_in

__all__ = ["INSPECT_HEADER", "ObserveMiddleware", "span_facts", "summary_of"]

#: ``on``: record this request even when the inspector is off; ``off``: never record it.
INSPECT_HEADER = b"x-glmbridge-inspect"
_MODEL_DOORS = frozenset({"anthropic", "openai", "gemini"})


class ObserveMiddleware:
    """Records model requests for the inspector and the tracer (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        record = record_in(scope)
        dashboard = getattr(scope["app"].state, "dashboard", None)
        if dashboard is None or record.protocol not in _MODEL_DOORS:
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        wish = next((v.strip().lower() for k, v in headers if k == INSPECT_HEADER), b"")
        capture = wish == b"on" or (record.settings.inspector and wish != b"off")
        if not capture and dashboard.tracing is None:
            await self.app(scope, receive, send)
            return
        await self._observe(scope, receive, send, record, dashboard, capture)

    async def _observe(self, scope: Scope, receive: Receive, send: Send, record: CallRecord,
                       dashboard: Any, capture: bool) -> None:  # fmt: skip
        inspector: Inspector = dashboard.inspector
        entry: Entry | None = None
        status = 0
        if capture:
            text = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
            entry = inspector.begin(summary_of(record, status, done=False), redact_headers(text))
            record.capture = Capture(inspector, entry)

        async def tap_receive() -> Message:
            message = await receive()
            if entry is not None and message["type"] == "http.request":
                inspector.append(entry, "client_request", message.get("body", b""))
            return message

        async def tap_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if entry is not None:
                    pairs = [(k.decode("latin-1"), v.decode("latin-1"))
                             for k, v in message.get("headers", ())]  # fmt: skip
                    inspector.set_headers(entry, "client_response", dict(pairs))
            elif message["type"] == "http.response.body" and entry is not None:
                inspector.append(entry, "client_response", message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, tap_receive, tap_send)
        finally:
            summary = summary_of(record, status, done=True)
            if entry is not None:
                inspector.finish(entry, summary)
            if dashboard.tracing is not None:
                dashboard.tracing.export(span_facts(record, summary))


def _wall(record: CallRecord, perf: float) -> float:
    """A ``time.perf_counter()`` value of this process as Unix time."""
    return time.time() - (time.perf_counter() - perf)


def summary_of(record: CallRecord, status: int, *, done: bool) -> Summary:
    """The exchange as its record has it so far."""
    usage = record.usage
    ttft = record.ttft
    attempts = record.upstream_attempts
    return Summary(
        request_id=record.request_id,
        started=_wall(record, record.received),
        method=record.method,
        path=record.path,
        door=record.protocol,
        client=record.client,
        priority=record.priority,
        requested_model=_text(record.client_model),
        served_model=_text(record.served_model or record.routed_model),
        upstream=record.upstream,
        key_index=record.key_index,
        stream=record.stream,
        status=status or record.status or None,
        queue_ms=record.queue_wait_ms,
        ttft_ms=round(ttft * 1000, 1) if ttft is not None else None,
        total_ms=round((time.perf_counter() - record.received) * 1000, 1) if done else None,
        input_tokens=usage.input_tokens + usage.cache_read_input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        cached_tokens=usage.cache_read_input_tokens if usage else None,
        finish_reason=record.finish_reason,
        retries=max(0, attempts - 1) if attempts else 0,
        fallbacks=[record.fallback] if record.fallback else [],
        error_kind=record.error_type,
    )


def _text(value: object) -> str | None:
    """Client-chosen names, bounded (they are shown and exported, never interpreted)."""
    return value[:200] if isinstance(value, str) else None


def span_facts(record: CallRecord, summary: Summary) -> SpanFacts:
    """The trace of one exchange (GenAI semantic-convention attributes): its span, and a
    child for each wait for a slot, upstream attempt and server-tool round."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "z.ai",
        "http.request.method": summary.method,
        "url.path": summary.path,
        "glmbridge.request_id": summary.request_id,
        "glmbridge.retries": summary.retries,
    }
    optional = {
        "gen_ai.request.model": summary.requested_model,
        "gen_ai.response.model": summary.served_model,
        "gen_ai.usage.input_tokens": summary.input_tokens,
        "gen_ai.usage.output_tokens": summary.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": summary.cached_tokens,
        "http.response.status_code": summary.status,
        "glmbridge.door": summary.door,
        "glmbridge.client": summary.client,
        "glmbridge.priority": summary.priority,
        "glmbridge.upstream": summary.upstream,
        "glmbridge.key_index": summary.key_index,
        "glmbridge.queue_ms": summary.queue_ms,
        "glmbridge.ttft_ms": summary.ttft_ms,
    }
    attributes.update({k: v for k, v in optional.items() if v is not None})
    if summary.fallbacks:
        attributes["glmbridge.fallbacks"] = list(summary.fallbacks)
    if summary.finish_reason:
        attributes["gen_ai.response.finish_reasons"] = [summary.finish_reason]
    children = [
        ChildSpan(
            step.name,
            _wall(record, step.start),
            _wall(record, step.end),
            dict(step.attributes),
            client=step.name == "upstream attempt",
            error=step.error,
        )  # fmt: skip
        for step in record.steps
    ]
    failed = (summary.status or 0) >= 400 or summary.error_kind is not None
    headers = record.headers
    return SpanFacts(
        name=f"chat {summary.requested_model or 'unknown'}",
        start=summary.started,
        end=summary.started + (summary.total_ms or 0.0) / 1000,
        attributes=attributes,
        children=children,
        error=(summary.error_kind or f"http_{summary.status}") if failed else None,
        traceparent=headers.traceparent,
        tracestate=headers.tracestate,
    )
