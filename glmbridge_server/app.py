"""The Starlette application factory.

``create_app(settings)`` composes the routes, a request-context middleware (``request-id``
header, the configuration snapshot, one access-log line and the metrics per request, the
catch-all error handler), the security middleware (Host, Origin, token, body size; see
:mod:`glmbridge_server.security`), the HTTP error handlers and a lifespan that owns the
shared upstream client. All state lives on
``app.state``; nothing here is a module-level mutable global.

Shutdown: :func:`begin_shutdown` (called by the CLI's server as it starts to stop, on
Ctrl-C or SIGTERM) sets ``app.state.stopping``; every open answer then ends at once with
its protocol's error (an error event in a stream), so the server exits within moments
instead of waiting out the graceful-shutdown timeout and cancelling them with tracebacks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread
import httpx2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glmbridge.errors import ClientRequestError, ErrorKind, UpstreamError
from glmbridge.ids import new_request_id
from glmbridge.pricing import is_peak
from glmbridge.routing import offered
from glmbridge.tokens import TokenEstimator
from glmbridge_server.keypool import KeyPool
from glmbridge_server.media import routes as media_routes  # media (issue 21)
from glmbridge_server.metrics import Metrics
from glmbridge_server.responses_store import ResponseStore
from glmbridge_server.routes import admin, door_for, error_response, snapshot
from glmbridge_server.routes import anthropic as anthropic_routes
from glmbridge_server.routes import config as config_routes
from glmbridge_server.routes import gemini as gemini_routes
from glmbridge_server.routes import openai as openai_routes
from glmbridge_server.scheduler import Scheduler
from glmbridge_server.security import SecurityMiddleware, protocol_for_path
from glmbridge_server.settings import MOCK_MOUNT, Settings, route_table
from glmbridge_server.simulator import mount as mount_simulator
from glmbridge_server.upstream import UpstreamClient
from glmbridge_server.usage_store import UsageRow, UsageStore, key_id

__all__ = ["begin_shutdown", "create_app"]

access_log = logging.getLogger("glmbridge.access")
logger = logging.getLogger("glmbridge.server")


class RequestContextMiddleware:
    """Per request: a ``request-id`` header, the configuration snapshot, one access-log line,
    the request metrics, and the last-resort handler.

    The last-resort handler logs an unexpected exception with its traceback and answers
    ``500 api_error`` without any of the traceback text (or, if the response had already
    started, just ends it): no input can make the server leak internals.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id()
        state: dict[str, Any] = scope.setdefault("state", {})
        started = time.perf_counter()
        app = scope["app"]
        state.update(request_id=rid, started=started, runtime=snapshot(app))
        state["protocol"] = protocol_for_path(scope["path"])
        metrics: Metrics = app.state.metrics
        metrics.in_progress.inc()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # request-id for the anthropic SDK, x-request-id for openai's (and Codex's
                # error messages)
                raw = rid.encode()
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"request-id", raw),
                    (b"x-request-id", raw),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client left while sending its body: its event, not a server error.
            state["disconnected"] = True
            state["error_type"] = "client_disconnected"
            status = status or 499
            logger.info("client disconnected during the request body (%s)", rid)
        except Exception:
            logger.exception("unhandled error in %s %s (%s)", scope["method"], scope["path"], rid)
            state["error_type"] = ErrorKind.API_ERROR.value
            if status == 0:
                err = UpstreamError("internal server error", kind=ErrorKind.API_ERROR)
                code, body = door_for(Request(scope)).encode_error(err, request_id=rid)
                await Response(body, code, media_type="application/json")(
                    scope, receive, send_with_id
                )
        finally:
            elapsed = time.perf_counter() - started
            metrics.observe_request(scope["path"], state["protocol"], status, elapsed, state)
            _log_access(scope, state, status, elapsed)
            _record_usage(app, scope, state, status, elapsed)
            metrics.in_progress.dec()  # last: "0 in progress" means everything is recorded


def _log_access(scope: Scope, state: dict[str, Any], status: int, elapsed: float) -> None:
    path: str = scope["path"]
    # The built-in simulator's own traffic (--mock) is only interesting when debugging.
    level = logging.DEBUG if path.startswith(MOCK_MOUNT + "/") else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    fields: dict[str, Any] = {
        "request_id": state.get("request_id"),
        "method": scope["method"],
        "path": path,
        "status": status,
        "protocol": state.get("protocol"),
        "latency_ms": round(elapsed * 1000, 1),
    }
    for name in (
        "client_model",
        "routed_model",
        "upstream",
        "stream",
        "upstream_status",
        "upstream_attempts",
        "key_index",
        "priority",
        "queue_wait_ms",
        "fallback",
        "error_type",
    ):
        if state.get(name) is not None:
            fields[name] = state[name]
    if state.get("ttft") is not None:
        fields["ttft_ms"] = round(state["ttft"] * 1000, 1)
    usage = state.get("usage")
    if usage is not None:
        fields["input_tokens"] = usage.input_tokens + usage.cache_read_input_tokens
        fields["output_tokens"] = usage.output_tokens
        fields["cached_tokens"] = usage.cache_read_input_tokens
    if state.get("disconnected"):
        fields["client_disconnected"] = True
    text = " ".join(f"{k}={v}" for k, v in fields.items() if k not in ("method", "path", "status"))
    access_log.log(
        level, "%s %s %s %s", scope["method"], path, status, text, extra={"fields": fields}
    )


def _bounded(text: object) -> str | None:
    """Client-chosen names (models pass through) are stored at most 200 characters long."""
    return text[:200] if isinstance(text, str) else None


def _record_usage(
    app: Any, scope: Scope, state: dict[str, Any], status: int, elapsed: float
) -> None:
    """One usage row per model request (not token counts, not the simulator's own)."""
    store: UsageStore | None = app.state.usage_store
    path: str = scope["path"]
    if state.get("routed_model") is None or path.endswith("/count_tokens"):
        return
    if 200 <= status < 300:  # for the statusline: what answered last
        app.state.last_served = {"model": state["routed_model"], "upstream": state.get("upstream")}
    if store is None:
        return
    usage = state.get("usage")
    index = state.get("key_index")
    ids = app.state.key_ids
    now = time.time()
    ttft = state.get("ttft")
    store.record(UsageRow(
        ts=now,
        client=str(state.get("protocol")),
        route=path,
        key_id=ids[index] if isinstance(index, int) and index < len(ids) else None,
        model=_bounded(state.get("routed_model")),
        client_model=_bounded(state.get("client_model")),
        upstream=state.get("upstream"),
        input_tokens=usage.input_tokens if usage else 0,
        cached_tokens=usage.cache_read_input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        latency_ms=round(elapsed * 1000, 1),
        ttft_ms=round(ttft * 1000, 1) if ttft is not None else None,
        status=status,
        fallback=state.get("fallback"),
        priority=state.get("priority"),
        queue_wait_ms=state.get("queue_wait_ms"),
        peak=is_peak(datetime.fromtimestamp(now, UTC)),
    ))  # fmt: skip


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Routing errors (404, 405) in the error shape of the path's protocol."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err = ClientRequestError(f"{request.url.path}: no such endpoint", kind=ErrorKind.NOT_FOUND)
    else:
        err = ClientRequestError(str(exc.detail), status_hint=exc.status_code)
    response = error_response(err, request)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def begin_shutdown(app: Starlette) -> None:
    """Tell every open answer that the server is stopping (see the module docstring)."""
    stopping = getattr(app.state, "stopping", None)
    if stopping is not None:
        stopping.set()


def create_app(
    settings: Settings | None = None, *, transport: httpx2.AsyncBaseTransport | None = None
) -> Starlette:
    """Build the glmbridge ASGI app.

    Parameters:
        settings: the configuration (defaults when omitted).
        transport: an httpx2 transport for the upstream client instead of the network
            (tests pass ``httpx2.MockTransport``).
    """
    settings = settings or Settings()
    key_pool = KeyPool(settings.api_keys)
    scheduler = Scheduler(
        key_pool,
        settings.slot_limits(),
        aging=settings.queue_aging,
        learning=settings.slot_learning,
    )
    table = route_table(settings.models, settings.upstreams)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        upstream = UpstreamClient(
            settings,
            key_pool,
            transport=transport,
            metrics=app.state.metrics,
            scheduler=scheduler,
        )
        app.state.upstream = upstream
        app.state.stopping = anyio.Event()
        usage_db = settings.usage_db  # the writer thread lives as long as the app serves
        usage_store = None
        if usage_db is not None:
            usage_store = UsageStore(usage_db, retention_days=settings.usage_retention_days)
        app.state.usage_store = usage_store
        remote = None
        if settings.redis_url and len(key_pool):
            from glmbridge_server.redis_state import RedisState

            remote = RedisState(settings.redis_url, app.state.key_ids)
        scheduler.remote = remote
        try:
            async with anyio.create_task_group() as tg:
                if remote is not None:
                    tg.start_soon(remote.run, key_pool)
                if settings.quota_poll > 0 and len(key_pool) and not settings.mock:
                    from glmbridge_server.quota_poller import poll_quotas

                    tg.start_soon(
                        poll_quotas, app.state, settings, key_pool, scheduler, upstream.http
                    )
                elif usage_db is not None and settings.plan in ("lite", "pro", "max"):
                    from glmbridge_server.quota_poller import estimate_quotas

                    tg.start_soon(
                        estimate_quotas, settings, scheduler, usage_db, app.state.key_ids
                    )
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
        finally:
            if remote is not None:
                await remote.aclose()
            await upstream.aclose()
            if usage_store is not None:
                await anyio.to_thread.run_sync(usage_store.close)

    routes: list[BaseRoute] = [
        *admin.routes,
        *config_routes.routes,
        *anthropic_routes.routes,
        *openai_routes.routes,
        *gemini_routes.routes,
        *media_routes.routes,  # media (issue 21)
    ]
    simulator = mount_simulator(routes, MOCK_MOUNT) if settings.mock else None
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestContextMiddleware), Middleware(SecurityMiddleware)],
        exception_handlers={HTTPException: _http_exception},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.key_pool = key_pool
    app.state.scheduler = scheduler
    app.state.usage_store = None  # opened by the lifespan
    app.state.last_served = None
    app.state.quota_windows = {}  # key index -> windows, from the optional quota poller
    app.state.key_ids = [key_id(k) for k in settings.api_keys]
    app.state.route_table = table
    app.state.simulator = simulator
    app.state.metrics = Metrics(table.models)
    app.state.tokenizer_unavailable = {}  # tokenizer URL -> monotonic time to ask again
    # Claude Code resends the same prompt, tools and history every turn: remember them.
    app.state.token_estimator = TokenEstimator()
    store = settings.responses_store
    app.state.responses_store = ResponseStore(store) if store > 0 else None
    app.state.model_catalog = anthropic_routes.build_model_catalog(
        offered(table, settings.upstream_profile)
    )
    return app
