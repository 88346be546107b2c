"""The edge's observer: feeds the live inspector and the traces from each model request.

:class:`ObserveMiddleware` (pure ASGI, inside the security middleware, so refused requests
are not recorded) does nothing for a request unless the inspector is on (the ``inspector``
setting, or ``x-glmbridge-inspect: on`` on that request; ``x-glmbridge-inspect: off`` opts a
request out) or tracing is configured. When it is, it copies what the client sent and what
the client received into the inspector's bounded panes as the bytes pass, and when the
exchange is over it builds the summary and the trace from what the request recorded.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from glmbridge_server.dashboard.inspector import Entry, Inspector, Summary, redact_headers
from glmbridge_server.dashboard.otel import SpanFacts

__all__ = ["INSPECT_HEADER", "ObserveMiddleware", "client_name", "span_facts"]

# The ASGI types, spelled out: only the dashboard's routes module imports Starlette.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: ``on``: record this request even when the inspector is off; ``off``: never record it.
INSPECT_HEADER = b"x-glmbridge-inspect"
_MODEL_DOORS = frozenset({"anthropic", "openai", "gemini"})
# User-Agent fragments of the clients people ask about by name.
_CLIENTS = (
    ("claude-cli", "Claude Code"),
    ("claude-code", "Claude Code"),
    ("codex", "Codex"),
    ("geminicli", "gemini-cli"),
    ("gemini-cli", "gemini-cli"),
)


def client_name(user_agent: str) -> str:
    """Which client sent a request, by its User-Agent: Claude Code, Codex, gemini-cli, else
    ``SDK`` (any other program)."""
    agent = user_agent.lower()
    return next((name for part, name in _CLIENTS if part in agent), "SDK")


class ObserveMiddleware:
    """Records model requests for the inspector and the tracer (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: dict[str, Any] = scope.get("state", {})
        dashboard = getattr(scope["app"].state, "dashboard", None)
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or dashboard is None
            or state.get("protocol") not in _MODEL_DOORS
        ):
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        wish = next((v.strip().lower() for k, v in headers if k == INSPECT_HEADER), b"")
        runtime = state.get("runtime")
        enabled = bool(runtime is not None and runtime.settings.inspector)
        capture = wish == b"on" or (enabled and wish != b"off")
        if not capture and dashboard.tracing is None:
            await self.app(scope, receive, send)
            return
        await self._observe(scope, receive, send, dashboard, capture)

    async def _observe(
        self, scope: Scope, receive: Receive, send: Send, dashboard: Any, capture: bool
    ) -> None:
        state: dict[str, Any] = scope["state"]
        started = time.time()
        text_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        inspector: Inspector = dashboard.inspector
        entry: Entry | None = None
        status = 0
        if capture:
            first = _summary(scope, state, started, status, done=False)
            entry = inspector.begin(first, redact_headers(text_headers))

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
            summary = _summary(scope, state, started, status, done=True)
            if entry is not None:
                inspector.finish(entry, summary)
            if dashboard.tracing is not None:
                dashboard.tracing.export(span_facts(summary, dict(text_headers)))


def _summary(
    scope: Scope, state: dict[str, Any], started: float, status: int, *, done: bool
) -> Summary:
    """The exchange as the request recorded it so far."""
    agent = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"user-agent"), "")
    usage = state.get("usage")
    ttft = state.get("ttft")
    attempts = state.get("upstream_attempts")
    fallback = state.get("fallback")
    return Summary(
        request_id=str(state.get("request_id") or ""),
        started=started,
        method=scope["method"],
        path=scope["path"],
        door=state.get("protocol"),
        client=client_name(agent),
        priority=state.get("priority"),
        requested_model=_text(state.get("client_model")),
        served_model=_text(state.get("routed_model")),
        upstream=state.get("upstream"),
        key_index=state.get("key_index"),
        stream=state.get("stream"),
        status=status or None,
        queue_ms=state.get("queue_wait_ms"),
        ttft_ms=round(ttft * 1000, 1) if ttft is not None else None,
        total_ms=round((time.time() - started) * 1000, 1) if done else None,
        input_tokens=usage.input_tokens + usage.cache_read_input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        cached_tokens=usage.cache_read_input_tokens if usage else None,
        retries=max(0, attempts - 1) if isinstance(attempts, int) else 0,
        fallbacks=[str(fallback)] if fallback else [],
        error_kind=state.get("error_type"),
    )


def _text(value: object) -> str | None:
    """Client-chosen names, bounded (they are shown and exported, never interpreted)."""
    return value[:200] if isinstance(value, str) else None


def span_facts(summary: Summary, headers: dict[str, str]) -> SpanFacts:
    """The trace of one exchange (GenAI semantic-convention attributes)."""
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
    end = summary.started + (summary.total_ms or 0.0) / 1000
    return SpanFacts(
        name=f"chat {summary.requested_model or 'unknown'}",
        start=summary.started,
        end=end,
        attributes=attributes,
        error=summary.error_kind if (summary.status or 0) >= 400 or summary.error_kind else None,
        traceparent=headers.get("traceparent"),
        tracestate=headers.get("tracestate"),
    )
