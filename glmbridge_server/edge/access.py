"""What a finished request leaves behind, read from its record: the request metrics, one
access-log line and one usage row."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from glmbridge.pricing import is_peak
from glmbridge_server.call.record import CallRecord
from glmbridge_server.edge.state import AppState
from glmbridge_server.settings import MOCK_MOUNT
from glmbridge_server.traffic.metrics import Metrics, route_label
from glmbridge_server.traffic.usage_store import UsageRow

__all__ = ["log_access", "observe_request", "record_usage"]

access_log = logging.getLogger("glmbridge.access")

#: Record fields the access line shows when set, in this order.
_FIELDS = (
    "client_model",
    "routed_model",
    "served_model",
    "upstream",
    "stream",
    "upstream_status",
    "upstream_attempts",
    "key_index",
    "priority",
    "queue_wait_ms",
    "fallback",
    "error_type",
)


def observe_request(metrics: Metrics, record: CallRecord, elapsed: float) -> None:
    """Count one finished request in ``metrics``."""
    route = route_label(record.path)
    protocol = record.protocol
    child = metrics.child
    child(metrics.requests, route, protocol, str(record.status)).inc()
    child(metrics.latency, route, protocol).observe(elapsed)
    if record.error_type:
        child(metrics.errors, record.error_type).inc()
    priority = record.priority
    if priority is not None and record.queue_wait_ms is not None:
        child(metrics.queue_wait, priority).observe(record.queue_wait_ms / 1000)
    if priority is not None and record.queue_timeout:
        child(metrics.queue_timeouts, priority).inc()
    model = metrics.model_label(record.served_model or record.routed_model)
    ttft = record.ttft
    if ttft is not None:
        child(metrics.ttft, model).observe(ttft)
    usage = record.usage
    if usage is not None:
        cached = usage.cache_read_input_tokens
        child(metrics.tokens, "input", model).inc(usage.input_tokens + cached)
        child(metrics.tokens, "output", model).inc(usage.output_tokens)
        child(metrics.tokens, "cached", model).inc(cached)


def log_access(record: CallRecord, elapsed: float) -> None:
    """One access-log line (INFO; DEBUG for the built-in simulator's own traffic).

    At the default level this runs once per request, so it is built in one pass and handed
    to the logger as a finished record: ``Logger.log`` would also walk the stack for a
    caller nobody prints (``findCaller``), ~20% of the line's cost."""
    path = record.path
    # The built-in simulator's own traffic (--mock) is only interesting when debugging.
    level = logging.DEBUG if path.startswith(MOCK_MOUNT + "/") else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    latency_ms = round(elapsed * 1000, 1)
    fields: dict[str, Any] = {
        "request_id": record.request_id,
        "method": record.method,
        "path": path,
        "status": record.status,
        "protocol": record.protocol,
        "latency_ms": latency_ms,
    }
    parts = [f"request_id={record.request_id} protocol={record.protocol} latency_ms={latency_ms}"]
    for name in _FIELDS:
        value = getattr(record, name)
        if value is not None:
            fields[name] = value
            parts.append(f"{name}={value}")
    ttft = record.ttft
    if ttft is not None:
        fields["ttft_ms"] = value = round(ttft * 1000, 1)
        parts.append(f"ttft_ms={value}")
    usage = record.usage
    if usage is not None:
        cached = usage.cache_read_input_tokens
        fields["input_tokens"] = total = usage.input_tokens + cached
        fields["output_tokens"] = usage.output_tokens
        fields["cached_tokens"] = cached
        parts.append(
            f"input_tokens={total} output_tokens={usage.output_tokens} cached_tokens={cached}"
        )
    if record.disconnected:
        fields["client_disconnected"] = True
        parts.append("client_disconnected=True")
    args = (record.method, path, record.status, " ".join(parts))
    line = access_log.makeRecord(
        access_log.name, level, __file__, 0, "%s %s %s %s", args, None, "log_access",
        {"fields": fields},
    )  # fmt: skip
    access_log.handle(line)


def _bounded(text: object) -> str | None:
    """Client-chosen names (models pass through) are stored at most 200 characters long."""
    return text[:200] if isinstance(text, str) else None


def record_usage(app: AppState, record: CallRecord, elapsed: float) -> None:
    """One usage row per model request (not token counts, not the simulator's own)."""
    if record.routed_model is None or record.path.endswith("/count_tokens"):
        return
    status = record.status
    if 200 <= status < 300:  # for the statusline: what answered last (the answer's model)
        served = record.served_model or record.routed_model
        app.last_served = {"model": served, "routed_model": record.routed_model,
                           "upstream": record.upstream}  # fmt: skip
    store = app.usage_store
    if store is None:
        return
    usage = record.usage
    index = record.key_index
    ids = app.key_ids
    now = time.time()
    ttft = record.ttft
    store.record(UsageRow(
        ts=now,
        client=record.client,  # Claude Code, Codex, gemini-cli or SDK (the dashboard groups by it)
        route=record.path,
        key_id=ids[index] if index is not None and index < len(ids) else None,
        model=_bounded(record.routed_model),
        served_model=_bounded(record.served_model),
        client_model=_bounded(record.client_model),
        upstream=record.upstream,
        input_tokens=usage.input_tokens if usage else 0,
        cached_tokens=usage.cache_read_input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        latency_ms=round(elapsed * 1000, 1),
        ttft_ms=round(ttft * 1000, 1) if ttft is not None else None,
        status=status,
        fallback=record.fallback,
        priority=record.priority,
        queue_wait_ms=record.queue_wait_ms,
        peak=is_peak(datetime.fromtimestamp(now, UTC)),
        error_kind=record.error_type,
    ))  # fmt: skip
