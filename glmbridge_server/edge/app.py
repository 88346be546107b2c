"""The Starlette application factory.

``create_app(settings)`` composes the routes, a request-context middleware (it builds the
call's :class:`~glmbridge_server.call.record.CallRecord`, adds the ``request-id`` header,
and once the request is done writes one access-log line, the metrics and the usage row from
that record; it is also the catch-all error handler), the security middleware (Host, Origin,
token, body size; see :mod:`glmbridge_server.edge.security`), the HTTP error handlers and a
lifespan that owns the shared upstream client. All state lives in one typed
:class:`~glmbridge_server.edge.state.AppState`, which is ``app.state``; nothing here is a
module-level mutable global.

Shutdown: :func:`begin_shutdown` (called by the CLI's server as it starts to stop, on
Ctrl-C or SIGTERM) sets the state's ``stopping`` event; every open answer then ends at once
with its protocol's error (an error event in a stream), so the server exits within moments
instead of waiting out the graceful-shutdown timeout and cancelling them with tracebacks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
import httpx2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from glmbridge.doors import protocol_for_path
from glmbridge.errors import ClientRequestError, ErrorKind, UpstreamError
from glmbridge.ids import new_request_id
from glmbridge.routing import offered
from glmbridge.tokens import TokenEstimator
from glmbridge_server.call.asgi import Answer, HttpMiddleware, Message, Receive, Scope, Send
from glmbridge_server.call.record import CallRecord
from glmbridge_server.call.shutdown import Shutdown
from glmbridge_server.dashboard import Dashboard
from glmbridge_server.dashboard import routes as dashboard
from glmbridge_server.dashboard.observe import ObserveMiddleware
from glmbridge_server.edge.access import log_access, observe_request, record_usage
from glmbridge_server.edge.routes import admin, door_for, error_response, record_of
from glmbridge_server.edge.routes import anthropic as anthropic_routes
from glmbridge_server.edge.routes import config as config_routes
from glmbridge_server.edge.routes import gemini as gemini_routes
from glmbridge_server.edge.routes import openai as openai_routes
from glmbridge_server.edge.security import SecurityMiddleware
from glmbridge_server.edge.state import RECORD, AppState
from glmbridge_server.media import endpoints as media  # media (issue 21)
from glmbridge_server.settings import MOCK_MOUNT, Settings, route_table
from glmbridge_server.simulator import mount as mount_simulator
from glmbridge_server.tools.responses_store import ResponseStore
from glmbridge_server.traffic.metrics import Metrics
from glmbridge_server.traffic.scheduler import Scheduler
from glmbridge_server.traffic.usage_store import UsageStore, key_id
from glmbridge_server.upstream.client import UpstreamClient
from glmbridge_server.upstream.keypool import KeyPool
from glmbridge_server.upstream.model_follower import (
    follow_models,
    learned_store,
    refresh_interval,
)

__all__ = ["begin_shutdown", "create_app"]

logger = logging.getLogger("glmbridge.server")


class RequestContextMiddleware(HttpMiddleware):
    """Per request: the call's record, a ``request-id`` header, one access-log line, the
    request metrics, the usage row, and the last-resort handler.

    The last-resort handler logs an unexpected exception with its traceback and answers
    ``500 api_error`` without any of the traceback text (or, if the response had already
    started, just ends it): no input can make the server leak internals.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = new_request_id()
        app_state: AppState = scope["app"].state
        record = CallRecord.arriving(scope, rid, protocol_for_path(scope["path"]), app_state)
        scope.setdefault("state", {})[RECORD] = record
        metrics = app_state.metrics
        metrics.in_progress.inc()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                record.first_byte = time.perf_counter()
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
            record.disconnected = True
            record.error_type = "client_disconnected"
            record.status = record.status or 499
            logger.info("client disconnected during the request body (%s)", rid)
        except Exception:
            logger.exception("unhandled error in %s %s (%s)", scope["method"], scope["path"], rid)
            record.error_type = ErrorKind.API_ERROR.value
            if record.status == 0:
                err = UpstreamError("internal server error", kind=ErrorKind.API_ERROR)
                code, body = door_for(Request(scope)).encode_error(err, request_id=rid)
                await Response(body, code, media_type="application/json")(
                    scope, receive, send_with_id
                )
        finally:
            record.done = time.perf_counter()
            elapsed = record.done - record.received
            observe_request(metrics, record, elapsed)
            log_access(record, elapsed)
            record_usage(app_state, record, elapsed)
            metrics.in_progress.dec()  # last: "0 in progress" means everything is recorded


class HotRoutes:
    """The POST endpoints at fixed paths (``/v1/messages``, ``/v1/chat/completions``, …),
    called straight from a table: no route matching over every route and no per-route
    wrapper on the path every model request takes (issue 22). Everything else, and any
    other method on those paths (a 405), goes on to Starlette's exception handling and
    router. The endpoints render their own errors; anything unexpected reaches the
    request-context middleware, the last resort."""

    def __init__(self, app: Any, routes: list[BaseRoute]) -> None:
        self.app = app
        self.table: dict[str, Callable[[Request], Awaitable[Any]]] = {
            route.path: route.endpoint
            for route in routes
            if isinstance(route, Route) and not route.param_convertors and route.methods == {"POST"}
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.table.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


class _App(Starlette):
    """Starlette with the edge's own middleware stack (see :func:`create_app`)."""

    def build_middleware_stack(self) -> Any:
        # The request-context middleware is the last-resort handler (a 500 in the path's
        # protocol), so Starlette's ServerErrorMiddleware, one more wrapper of every send,
        # is left out; its exception middleware stays for the router's 404 and 405.
        handlers = {k: v for k, v in self.exception_handlers.items() if k not in (500, Exception)}
        routed = ExceptionMiddleware(self.router, handlers=handlers)
        observed = ObserveMiddleware(HotRoutes(routed, self.router.routes))
        return RequestContextMiddleware(SecurityMiddleware(observed))


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


def _media_routes() -> list[BaseRoute]:
    """media (issue 21): the media wing's endpoints, given the call's record."""

    def bind(endpoint: media.Endpoint) -> Callable[[Request], Awaitable[Answer]]:
        async def route(request: Request) -> Answer:
            state: AppState = request.app.state
            return await endpoint(state, record_of(request), request)

        return route

    return [Route(path, bind(fn), methods=[method]) for method, path, fn in media.ENDPOINTS]


def begin_shutdown(app: object) -> None:
    """Tell every open answer of a glmbridge app that the server is stopping (see the module
    docstring); any other ASGI app is left alone."""
    state = getattr(app, "state", None)
    if isinstance(state, AppState) and state.stopping is not None:
        state.stopping.set()


def _app_state(settings: Settings) -> AppState:
    """The state of a new app (the lifespan completes it)."""
    key_pool = KeyPool(settings.api_keys)
    scheduler = Scheduler(
        key_pool,
        settings.slot_limits(),
        aging=settings.queue_aging,
        learning=settings.slot_learning,
    )
    table = route_table(settings.models, settings.upstreams)
    store = settings.responses_store
    return AppState(
        settings=settings,
        route_table=table,
        model_catalog=anthropic_routes.build_model_catalog(
            offered(table, settings.upstream_profile)
        ),
        key_pool=key_pool,
        scheduler=scheduler,
        metrics=Metrics(table.models),
        key_ids=[key_id(k) for k in settings.api_keys],
        # Claude Code resends the same prompt, tools and history every turn: remember them.
        token_estimator=TokenEstimator(),
        responses_store=ResponseStore(store) if store > 0 else None,
        served_as=learned_store(settings),  # which model answers which id (learned)
        dashboard=Dashboard(settings),
    )


def _background_tasks(tg: anyio.abc.TaskGroup, state: AppState, upstream: UpstreamClient) -> None:
    """Start the optional background work: Redis shared state, the quota poller (or, without
    it, the quota estimate from the usage store)."""
    settings, key_pool, scheduler = state.settings, state.key_pool, state.scheduler
    # Supervised: a failing loop is restarted, and never ends this task group (nor closes the
    # shared clients); /health shows each loop's state.
    run = state.supervisor.run
    if refresh_interval(settings) > 0:  # GET {base}/models now and every few hours
        tg.start_soon(run, "model_follower", follow_models, state, upstream.http,
                      anthropic_routes.build_model_catalog)  # fmt: skip
    if scheduler.remote is not None:
        tg.start_soon(run, "redis", scheduler.remote.run, key_pool)
    if settings.quota_poll > 0 and len(key_pool) and not settings.mock:
        from glmbridge_server.traffic.quota_poller import poll_quotas  # optional: lazily

        tg.start_soon(
            run, "quota_poller", poll_quotas, state, settings, key_pool, scheduler, upstream.http
        )
    elif settings.usage_db is not None and settings.plan in ("lite", "pro", "max"):
        from glmbridge_server.traffic.quota_poller import estimate_quotas  # optional: lazily

        tg.start_soon(
            run, "quota_estimate", estimate_quotas, settings, scheduler, settings.usage_db,
            state.key_ids,
        )  # fmt: skip


def _lifespan(state: AppState, transport: httpx2.AsyncBaseTransport | None) -> Any:
    """The app's lifespan: the upstream client, the usage store's writer thread, Redis and
    the quota work, for as long as the app serves."""
    settings = state.settings  # the settings the app started with (not POST /config's)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        upstream = UpstreamClient(settings, state.key_pool, transport=transport,
                                  metrics=state.metrics, scheduler=state.scheduler)  # fmt: skip
        state.upstream, state.stopping = upstream, Shutdown()
        usage_db = settings.usage_db  # the writer thread lives as long as the app serves
        if usage_db is not None:
            state.usage_store = UsageStore(usage_db, retention_days=settings.usage_retention_days)
        if settings.redis_url and len(state.key_pool):
            from glmbridge_server.traffic.redis_state import RedisState  # optional: lazily

            state.scheduler.remote = RedisState(settings.redis_url, state.key_ids)
        async with AsyncExitStack() as stack:
            stack.push_async_callback(_close, state, upstream)
            async with anyio.create_task_group() as tg:
                _background_tasks(tg, state, upstream)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()

    return lifespan


async def _close(state: AppState, upstream: UpstreamClient) -> None:
    remote = state.scheduler.remote
    if remote is not None:
        await remote.aclose()
    await upstream.aclose()
    if state.usage_store is not None:
        await anyio.to_thread.run_sync(state.usage_store.close)
    if state.dashboard is not None:
        await anyio.to_thread.run_sync(state.dashboard.close)


def create_app(
    settings: Settings | None = None, *, transport: httpx2.AsyncBaseTransport | None = None
) -> Starlette:
    """Build the glmbridge ASGI app.

    Parameters:
        settings: the configuration (defaults when omitted).
        transport: an httpx2 transport for the upstream client instead of the network
            (tests pass ``httpx2.MockTransport``).
    """
    state = _app_state(settings or Settings())
    routes: list[BaseRoute] = [
        *admin.routes,
        *config_routes.routes,
        *anthropic_routes.routes,
        *openai_routes.routes,
        *gemini_routes.routes,
        *_media_routes(),  # media (issue 21)
        # the dashboard: one plain ASGI app for its page, files and API (dashboard/routes.py)
        Route(dashboard.PREFIX, dashboard.app),
        Route(dashboard.PREFIX + "/{rest:path}", dashboard.app),
    ]
    if state.settings.mock:
        state.simulator = mount_simulator(routes, MOCK_MOUNT)
    # The middleware, outermost first: the request context (the call's record, the
    # request id, the access log, metrics and usage row, the last-resort handler), security
    # (Host, Origin, token, body size), the dashboard's inspector and traces, then the hot
    # routes (_App.build_middleware_stack).
    app = _App(
        routes=routes,
        exception_handlers={HTTPException: _http_exception},
        lifespan=_lifespan(state, transport),
    )
    app.state = state  # type: ignore[assignment]  # typed state instead of Starlette's bag
    return app
