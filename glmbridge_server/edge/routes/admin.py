"""Operational endpoints: ``/health``, ``GET``/``HEAD /``, ``/metrics`` and a telemetry sink.

``/health`` and ``/`` are the only endpoints open without the auth token; they say that
this is glmbridge and whether it is healthy, and nothing secret (key counts, never keys).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from glmbridge._version import __version__
from glmbridge_server.edge.routes import app_state, record_of
from glmbridge_server.settings import Settings, redact_url
from glmbridge_server.traffic.metrics import CONTENT_TYPE
from glmbridge_server.traffic.usage_report import window_usage
from glmbridge_server.traffic.usage_store import open_readonly

__all__ = ["routes", "status_data"]


async def health(request: Request) -> Response:
    """Liveness plus a secret-free summary: mode, upstream, key count, version, pid.

    The pid lets ``glmbridge-server stop`` check that the process it is about to signal is
    the server answering on the port (with ``workers`` > 1: their supervisor; ``worker``
    names the process that answered); the mode, upstream URL (without user info or query)
    and key count let ``glmbridge-server claude`` see whether this server is the one the
    caller's environment asks for.
    """
    settings = record_of(request).settings
    keys = app_state(request).key_pool
    supervisor = app_state(request).supervisor
    return JSONResponse(
        {
            # "degraded": a background task (Redis, the quota poller) failed or stopped
            "status": "ok" if supervisor.healthy else "degraded",
            "background": supervisor.status(),
            "service": "glmbridge",
            "version": __version__,
            "mode": server_mode(settings),
            "upstream": settings.upstream_name,
            "upstream_url": None if settings.mock else redact_url(settings.upstream_base_url),
            "keys": len(keys),
            "keys_healthy": keys.healthy_count(),
            "mock": settings.mock,
            "pid": app_state(request).worker.server_pid,
            "worker": app_state(request).worker.view(),
        }
    )


def server_mode(settings: Settings) -> str:
    """``"mock"`` (the built-in simulator), ``"keys"`` (GLM with API keys) or ``"keyless"``."""
    if settings.mock:
        return "mock"
    return "keys" if settings.api_keys else "keyless"


async def root(request: Request) -> Response:
    """``GET /`` and ``HEAD /`` (Claude Code probes the base URL)."""
    return JSONResponse({"service": "glmbridge", "version": __version__, "health": "/health"})


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text exposition."""
    state = app_state(request)
    keys = state.key_pool
    worker = state.worker.view() if state.worker.count > 1 else None
    body = state.metrics.render(
        len(keys), keys.healthy_count(), state.scheduler, usage_rows=_usage_rows(state),
        worker=worker,
    )  # fmt: skip
    return Response(body, media_type=CONTENT_TYPE)


def _usage_rows(state: Any) -> dict[str, int] | None:
    store = getattr(state, "usage_store", None)
    return None if store is None else store.stats()


async def status(request: Request) -> Response:
    """``GET /status``: slots, the queue, quota windows and usage today, as JSON (no key
    material: keys are indices and short hashes). Read by ``glmbridge-server statusline``."""
    return JSONResponse(await status_data(app_state(request), record_of(request).settings))


async def status_data(state: Any, settings: Settings) -> dict[str, Any]:
    """What ``/status`` shows (the dashboard's quota view reads the same)."""
    scheduler = state.scheduler
    pool = state.key_pool
    slots = scheduler.status()
    keys = [
        {
            **health,
            **slots[i],
            "key_id": state.key_ids[i],
            "windows": state.quota_windows.get(i),
            "near_exhaustion": i in scheduler.near_exhaustion,
        }
        for i, health in enumerate(pool.status())
    ]
    out: dict[str, Any] = {
        "service": "glmbridge",
        "version": __version__,
        "upstream": settings.upstream_name,
        "plan": settings.effective_plan,
        "keys": keys,
        "slots": {
            "in_use": sum(k["in_use"] for k in slots),
            "limit": sum(k["limit"] for k in slots),
        },  # fmt: skip
        "queue": {p.name.lower(): n for p, n in scheduler.queue_lengths().items()},
        "scheduled": {
            "granted": scheduler.granted,
            "queued": scheduler.queued,
            "timed_out": scheduler.timeouts,
        },  # fmt: skip
        "last_served": state.last_served,
        # the process that answered: with workers > 1, slots, queue, counters and
        # last_served above are its own (docs/configuration.md)
        "worker": state.worker.view(),
        "usage": None,
        "usage_rows": None,
    }
    remote = scheduler.remote
    if remote is not None:  # across every instance and worker sharing Redis (None: down)
        shared = await remote.shared_status()
        out["shared_slots"] = None if shared is None else {
            "in_use": sum(k["in_use"] or 0 for k in shared),
            "queued": sum(k["queued"] or 0 for k in shared),
        }  # fmt: skip
        for key, across in zip(keys, shared or [{}] * len(keys), strict=True):
            key["shared"] = across or None
    store = state.usage_store
    if store is not None:
        out["usage_rows"] = store.stats()  # written, lost (exactly) and queued since start
        out["usage"] = await _cached_usage(state, store.path, settings.effective_plan)
    return out


_USAGE_TTL = 2.0  # seconds: the statusline asks after every message


async def _cached_usage(state: Any, path: Path, plan: str) -> dict[str, Any]:
    """Usage from the store, computed at most every ``_USAGE_TTL`` seconds (off the loop)."""
    cached = getattr(state, "usage_cache", None)
    now = time.monotonic()
    if cached is not None and now - cached[0] < _USAGE_TTL:
        return cached[1]  # type: ignore[no-any-return]
    try:
        usage = await anyio.to_thread.run_sync(_usage_now, path, plan)
    except (sqlite3.Error, OSError) as exc:
        return {"error": f"usage store unreadable: {type(exc).__name__}"}
    state.usage_cache = (now, usage)
    return usage


def _usage_now(path: Path, plan: str) -> dict[str, Any]:
    conn = open_readonly(path)
    try:
        return window_usage(conn, plan)
    finally:
        conn.close()


async def event_logging(request: Request) -> Response:
    """Claude Code posts telemetry batches here; accept and drop them (never forwarded)."""
    return JSONResponse({})


routes = [
    Route("/", root, methods=["GET", "HEAD"]),
    Route("/health", health, methods=["GET", "HEAD"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/status", status, methods=["GET"]),
    Route("/api/event_logging/batch", event_logging, methods=["POST"]),
]
