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

__all__ = ["routes"]


async def health(request: Request) -> Response:
    """Liveness plus a secret-free summary: upstream label, key count, mode, version, pid.

    The pid lets ``glmbridge-server stop`` check that the process it is about to signal is
    the server answering on the port.
    """
    settings = runtime(request).settings
    keys = request.app.state.key_pool
    return JSONResponse(
        {
            "status": "ok",
            "service": "glmbridge",
            "version": __version__,
            "upstream": settings.upstream_name,
            "keys": len(keys),
            "keys_healthy": keys.healthy_count(),
            "mock": settings.mock,
            "pid": os.getpid(),
        }
    )


async def root(request: Request) -> Response:
    """``GET /`` and ``HEAD /`` (Claude Code probes the base URL)."""
    return JSONResponse({"service": "glmbridge", "version": __version__, "health": "/health"})


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text exposition."""
    keys = request.app.state.key_pool
    state = request.app.state
    body = state.metrics.render(len(keys), keys.healthy_count(), state.scheduler)
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
