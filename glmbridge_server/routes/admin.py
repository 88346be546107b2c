"""Operational endpoints: ``/health``, ``GET``/``HEAD /`` and a sink for client telemetry."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from glmbridge._version import __version__
from glmbridge_server.settings import Settings

__all__ = ["routes"]


async def health(request: Request) -> Response:
    """Liveness plus a secret-free summary: upstream label, key count, mode, version."""
    settings: Settings = request.app.state.settings
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
        }
    )


async def root(request: Request) -> Response:
    """``GET /`` and ``HEAD /`` (Claude Code probes the base URL)."""
    return JSONResponse({"service": "glmbridge", "version": __version__, "health": "/health"})


async def event_logging(request: Request) -> Response:
    """Claude Code posts telemetry batches here; accept and drop them (never forwarded)."""
    return JSONResponse({})


routes = [
    Route("/", root, methods=["GET", "HEAD"]),
    Route("/health", health, methods=["GET", "HEAD"]),
    Route("/api/event_logging/batch", event_logging, methods=["POST"]),
]
