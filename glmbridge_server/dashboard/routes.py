"""The dashboard's HTTP endpoints: the page, the login, static assets, the JSON API, events.

Open without the token (the security middleware lets them through): ``GET /dashboard``
(the app, or the login form when ``auth_token`` is set and there is no session),
``POST /dashboard/login`` and the static assets (our own code, nothing secret). Everything
under ``/dashboard/api/`` needs the session cookie or the token, like the rest of the API.
Settings are changed through ``POST /config`` itself (its validation, its atomic swap).

Every answer carries a strict Content-Security-Policy (no inline script or style, nothing
from another origin), ``nosniff`` and ``frame-ancestors 'none'``.

Plain ASGI, no web framework: :data:`app` is one ASGI application for every path under
``/dashboard`` (the edge routes them here), with a small table of its own routes.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
import msgspec

from glmbridge._version import __version__
from glmbridge.errors import GlmbridgeError
from glmbridge_server.call.asgi import Answer, Message, Receive, Scope, Send, WholeAnswer
from glmbridge_server.call.record import Runtime
from glmbridge_server.call.shutdown import Shutdown
from glmbridge_server.dashboard.session import COOKIE, cookie_value, has_session, token_matches
from glmbridge_server.dashboard.views import RANGES, settings_view, usage_view
from glmbridge_server.edge.bodies import read_body
from glmbridge_server.edge.routes.admin import server_mode, status_data
from glmbridge_server.edge.routes.config import ConfigUpdate
from glmbridge_server.edge.state import record_in
from glmbridge_server.traffic.usage_store import open_readonly

__all__ = ["PREFIX", "SECURITY_HEADERS", "DashboardApp", "app"]

#: Where the dashboard lives.
PREFIX = "/dashboard"
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # "no-referrer" would make the form's Origin "null"
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
_NO_STORE = {**SECURITY_HEADERS, "cache-control": "no-store"}
_LIVE_EVERY = 2.0  # seconds between the event stream's slot/queue snapshots
_LOGIN_BODY = 4096


class Request:
    """One request to the dashboard: what its endpoints read of the ASGI scope."""

    __slots__ = ("headers", "method", "path", "query", "receive", "scope", "state")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope, self.receive = scope, receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers: dict[str, str] = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
        }
        self.query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        self.state: Any = scope["app"].state

    @property
    def runtime(self) -> Runtime:
        """The configuration this request runs with (its record's snapshot)."""
        return record_in(self.scope).runtime

    async def stream(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk (for :func:`~glmbridge_server.edge.bodies.read_body`)."""
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                return
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return


def _reply(body: bytes, status: int = 200, media_type: str = "application/json",
           headers: Mapping[str, str] = _NO_STORE) -> Answer:  # fmt: skip
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return WholeAnswer(body, status, raw, media_type)


def _redirect(*cookies: str) -> Answer:
    """``303`` to the page (after a login or a logout), setting ``cookies``."""
    raw = [(k.encode(), v.encode()) for k, v in _NO_STORE.items()]
    raw.append((b"location", PREFIX.encode()))
    raw += [(b"set-cookie", c.encode("latin-1")) for c in cookies]
    return WholeAnswer(b"", 303, raw, None)


class _Asset(msgspec.Struct, frozen=True):
    body: bytes
    media_type: str
    etag: str


@cache
def _assets() -> dict[str, _Asset]:
    """Every file under ``static/`` by relative path (read once; nothing else is served)."""
    root = files("glmbridge_server.dashboard") / "static"
    out: dict[str, _Asset] = {}
    stack = [("", root)]
    while stack:
        prefix, folder = stack.pop()
        for item in folder.iterdir():
            name = f"{prefix}{item.name}"
            if item.is_dir():
                stack.append((f"{name}/", item))
                continue
            body = item.read_bytes()
            media = {".js": "text/javascript", ".svg": "image/svg+xml"}.get(
                name[name.rfind(".") :], mimetypes.guess_type(name)[0] or "application/octet-stream"
            )
            if media.startswith("text/") or media.endswith("svg+xml"):
                media += "; charset=utf-8"
            out[name] = _Asset(body, media, f'"{hashlib.sha256(body).hexdigest()[:20]}"')
    return out


def _json(data: Any, status: int = 200) -> Answer:
    return _reply(msgspec.json.encode(data), status)


@cache
def _html(name: str) -> bytes:
    """A page with the ``head.html`` partial (what every page's head opens with) in place of
    its ``<!--head-->`` line."""
    assets = _assets()
    return assets[name].body.replace(b"<!--head-->\n", assets["head.html"].body, 1)


def _page(name: str, status: int = 200, error: str = "", **extra: str) -> Answer:
    body = _html(name)
    if error:  # our own fixed messages, escaped anyway
        body = body.replace(b"<!--error-->", html.escape(error).encode())
    return _reply(body, status, "text/html; charset=utf-8", {**_NO_STORE, **extra})


def _cookie(value: str, max_age: int, secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{COOKIE}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{flags}"


async def page(request: Request) -> Answer:
    """``GET /dashboard``: the app, or the login form."""
    if request.runtime.settings.auth_token and not has_session(request.scope):
        return _page("login.html")
    return _page("index.html")


async def login(request: Request) -> Answer:
    """``POST /dashboard/login`` (a form with one ``token`` field): a session cookie."""
    settings = request.runtime.settings
    dashboard = request.state.dashboard
    if not settings.auth_token:
        return _redirect()
    wait = dashboard.throttle.blocked()
    if wait > 0:
        message = "Too many failed attempts; try again in a minute."
        return _page("login.html", 429, message, **{"retry-after": str(int(wait) + 1)})
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    token = ""
    if media == "application/x-www-form-urlencoded":
        try:
            body = await read_body(request, _LOGIN_BODY)
        except GlmbridgeError as err:  # too large, or a bad content-encoding
            return _page("login.html", err.status_hint, err.message)
        given = [v for k, v in parse_qsl(body.decode("latin-1")) if k == "token"]
        token = given[0] if len(given) == 1 else ""  # exactly one token field
    if not token or not token_matches(token.strip(), settings.auth_token):
        dashboard.throttle.failed()
        return _page("login.html", 401, "That is not the server's auth token.")
    sessions = dashboard.sessions
    secure = request.scope.get("scheme") == "https"
    return _redirect(_cookie(sessions.create(), int(sessions.lifetime), secure))


async def to_page(request: Request) -> Answer:
    """``GET /dashboard/login`` (a bookmark, a reload after a failed login): the page."""
    return _redirect()


async def logout(request: Request) -> Answer:
    """``POST /dashboard/logout``: end the session and clear the cookie."""
    request.state.dashboard.sessions.revoke(cookie_value(request.scope["headers"]))
    return _redirect(_cookie("", 0, request.scope.get("scheme") == "https"))


async def asset(request: Request) -> Answer:
    """``GET /dashboard/static/…``: one of our own files, or 404."""
    found = _assets().get(request.path.removeprefix(f"{PREFIX}/static/"))
    if found is None or found.media_type.startswith("text/html"):
        return _reply(b"not found", 404, "text/plain", SECURITY_HEADERS)
    headers = {**SECURITY_HEADERS, "etag": found.etag, "cache-control": "no-cache"}
    if request.headers.get("if-none-match") == found.etag:
        return _reply(b"", 304, found.media_type, headers)
    return _reply(found.body, 200, found.media_type, headers)


async def overview(request: Request) -> Answer:
    """``GET /dashboard/api/overview``: what the page needs to start, plus ``/status``."""
    current = request.runtime
    settings = current.settings
    state = request.state
    return _json({
        "version": __version__,
        "mode": server_mode(settings),
        "upstream": settings.upstream_name,
        "plan": settings.effective_plan,
        "auth": bool(settings.auth_token),
        "inspector": settings.inspector,
        "tracing": state.dashboard.tracing is not None,
        "usage_store": state.usage_store is not None,
        "models": sorted(current.route_table.models),
        "default_model": current.route_table.default_model,
        "status": await status_data(state, settings),
    })  # fmt: skip


async def usage(request: Request) -> Answer:
    """``GET /dashboard/api/usage?range=day|week|month``: usage from the SQLite store."""
    store = request.state.usage_store
    range_name = request.query.get("range", "day")
    if range_name not in RANGES:
        return _json({"error": f"range: one of {', '.join(RANGES)}"}, 400)
    if store is None:
        return _json({"error": "the usage store is off (usage_store = false, or --mock)"}, 404)
    plan = request.runtime.settings.effective_plan

    def read() -> dict[str, Any]:
        conn = open_readonly(store.path)
        try:
            return usage_view(conn, range_name=range_name, plan=plan)
        finally:
            conn.close()

    try:
        return _json(await anyio.to_thread.run_sync(read))
    except (sqlite3.Error, OSError) as exc:
        return _json({"error": f"usage store unreadable: {type(exc).__name__}"}, 503)


async def settings_table(request: Request) -> Answer:
    """``GET /dashboard/api/settings``: every setting, its source and restart flag."""
    startup = request.state.dashboard.startup
    return _json({"settings": settings_view(request.runtime.settings, startup, ConfigUpdate)})


async def inspector_list(request: Request) -> Answer:
    """``GET /dashboard/api/inspector``: whether it is on, what it holds, the newest."""
    inspector = request.state.dashboard.inspector
    return _json({
        "enabled": request.runtime.settings.inspector,
        "stats": inspector.stats(),
        "exchanges": inspector.recent(),
    })  # fmt: skip


async def inspector_detail(request: Request) -> Answer:
    """``GET /dashboard/api/inspector/{request_id}``: one exchange with its four panes."""
    request_id = request.path.removeprefix(f"{PREFIX}/api/inspector/")
    found = request.state.dashboard.inspector.detail(request_id)
    if found is None:
        return _json({"error": "no such exchange (never recorded, or already dropped)"}, 404)
    return _json(found)


async def inspector_clear(request: Request) -> Answer:
    """``POST /dashboard/api/inspector/clear``: forget every recorded exchange."""
    inspector = request.state.dashboard.inspector
    inspector.clear()
    return _json({"stats": inspector.stats()})


async def events(request: Request) -> Answer:
    """``GET /dashboard/api/events``: server-sent events, ``exchange`` as they happen and
    ``live`` (slots, queue, quota) every two seconds."""
    subscription = request.state.dashboard.inspector.subscribe()
    if subscription is None:
        return _json({"error": "too many open dashboards"}, 429)
    return _EventStream(request.state, subscription)


class _EventStream:
    """The event stream's answer: until the client leaves or the server stops."""

    def __init__(self, state: Any, subscription: Any) -> None:
        self.state, self.subscription = state, subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = [(k.encode(), v.encode()) for k, v in _NO_STORE.items()]
        raw += [(b"content-type", b"text/event-stream"), (b"x-accel-buffering", b"no")]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._until_gone, receive, tg.cancel_scope)
                await self._events(send)
                tg.cancel_scope.cancel()
        finally:
            self.subscription.close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _until_gone(self, receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async def _events(self, send: Send) -> None:
        state = self.state
        stopping: Shutdown | None = getattr(state, "stopping", None)
        await _chunk(send, b"retry: 3000\n\n")
        last = 0.0
        while stopping is None or not stopping.is_set():
            if time.monotonic() - last >= _LIVE_EVERY:
                last = time.monotonic()
                live = await status_data(state, state.settings)
                live["inspector"] = state.settings.inspector
                live["inspector_stats"] = state.dashboard.inspector.stats()
                await _chunk(send, b"event: live\ndata: %s\n\n" % msgspec.json.encode(live))
            for event in await self.subscription.next(_LIVE_EVERY):
                await _chunk(send, event)


async def _chunk(send: Send, data: bytes) -> None:
    message: Message = {"type": "http.response.body", "body": data, "more_body": True}
    await send(message)


Handler = Callable[[Request], Awaitable[Answer]]
#: (method, path) -> endpoint; paths under a ``…/`` prefix are matched by their prefix.
_ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", PREFIX): page,
    ("POST", f"{PREFIX}/login"): login,
    ("GET", f"{PREFIX}/login"): to_page,
    ("POST", f"{PREFIX}/logout"): logout,
    ("GET", f"{PREFIX}/static/"): asset,
    ("GET", f"{PREFIX}/api/overview"): overview,
    ("GET", f"{PREFIX}/api/usage"): usage,
    ("GET", f"{PREFIX}/api/settings"): settings_table,
    ("GET", f"{PREFIX}/api/inspector"): inspector_list,
    ("POST", f"{PREFIX}/api/inspector/clear"): inspector_clear,
    ("GET", f"{PREFIX}/api/inspector/"): inspector_detail,
    ("GET", f"{PREFIX}/api/events"): events,
}


def _route(method: str, path: str) -> tuple[Handler | None, bool]:
    """The endpoint for a request, and whether the path exists for another method."""
    method = "GET" if method == "HEAD" else method
    paths = {p for _, p in _ROUTES}
    match = path if path in paths else next(
        (p for p in paths if p.endswith("/") and path.startswith(p) and len(path) > len(p)), None
    )  # fmt: skip
    if match is None:
        return None, False
    return _ROUTES.get((method, match)), True


class DashboardApp:
    """Every path under ``/dashboard``, as one plain ASGI application."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        handler, exists = _route(request.method, request.path)
        if request.path == f"{PREFIX}/":
            answer = _redirect()
        elif handler is None:
            status = 405 if exists else 404
            answer = _json({"error": f"{request.path[:200]}: no such endpoint"}, status)
        else:
            answer = await handler(request)
        await answer(scope, receive, send)


#: The dashboard's ASGI application (the edge routes ``/dashboard`` and below to it).
app = DashboardApp()
