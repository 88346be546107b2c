"""Operational endpoints: ``/health``, ``GET``/``HEAD /``, ``/metrics`` and a telemetry sink.

``/health`` and ``/`` are the only endpoints open without the auth token; they say that
this is glmbridge and whether it is healthy, and nothing secret (key counts, never keys).
"""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from glmbridge._version import __version__
from glmbridge_server.metrics import CONTENT_TYPE
from glmbridge_server.routes import runtime
from glmbridge_server.settings import Settings, redact_url

__all__ = ["routes"]


async def health(request: Request) -> Response:
    """Liveness plus a secret-free summary: mode, upstream, key count, version, pid.

    The pid lets ``glmbridge-server stop`` check that the process it is about to signal is
    the server answering on the port; the mode, upstream URL (without user info or query)
    and key count let ``glmbridge-server claude`` see whether this server is the one the
    caller's environment asks for.
    """
    settings = runtime(request).settings
    keys = request.app.state.key_pool
    return JSONResponse(
        {
            "status": "ok",
            "service": "glmbridge",
            "version": __version__,
            "mode": server_mode(settings),
            "upstream": settings.upstream_name,
            "upstream_url": None if settings.mock else redact_url(settings.upstream_base_url),
            "keys": len(keys),
            "keys_healthy": keys.healthy_count(),
            "mock": settings.mock,
            "pid": os.getpid(),
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
    keys = request.app.state.key_pool
    body = request.app.state.metrics.render(len(keys), keys.healthy_count())
    return Response(body, media_type=CONTENT_TYPE)


async def event_logging(request: Request) -> Response:
    """Claude Code posts telemetry batches here; accept and drop them (never forwarded)."""
    return JSONResponse({})


routes = [
    Route("/", root, methods=["GET", "HEAD"]),
    Route("/health", health, methods=["GET", "HEAD"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/api/event_logging/batch", event_logging, methods=["POST"]),
]
