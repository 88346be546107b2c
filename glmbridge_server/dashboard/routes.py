"""The dashboard's HTTP endpoints: the page, the login, static assets, the JSON API, events.

Open without the token (the security middleware lets them through): ``GET /dashboard``
(the app, or the login form when ``auth_token`` is set and there is no session),
``POST /dashboard/login`` and the static assets (our own code, nothing secret). Everything
under ``/dashboard/api/`` needs the session cookie or the token, like the rest of the API.
Settings are changed through ``POST /config`` itself (its validation, its atomic swap).

Every answer carries a strict Content-Security-Policy (no inline script or style, nothing
from another origin), ``nosniff`` and ``frame-ancestors 'none'``.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
import sqlite3
import time
from collections.abc import AsyncIterator
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
import msgspec
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from glmbridge._version import __version__
from glmbridge.errors import GlmbridgeError
from glmbridge_server.call.record import Runtime
from glmbridge_server.dashboard.session import COOKIE, cookie_value, has_session, token_matches
from glmbridge_server.dashboard.views import RANGES, settings_view, usage_view
from glmbridge_server.edge.bodies import read_body
from glmbridge_server.edge.routes import error_response, record_of
from glmbridge_server.edge.routes.admin import server_mode, status_data
from glmbridge_server.edge.routes.config import ConfigUpdate
from glmbridge_server.traffic.usage_store import open_readonly

__all__ = ["SECURITY_HEADERS", "routes"]

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


def runtime(request: Request) -> Runtime:
    """The configuration this request runs with (its record's snapshot)."""
    return record_of(request).runtime


def _json(data: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status, _NO_STORE, "application/json")


def _page(name: str, status: int = 200, error: str = "") -> Response:
    body = _assets()[name].body
    if error:  # our own fixed messages, escaped anyway
        body = body.replace(b"<!--error-->", html.escape(error).encode())
    return Response(body, status, _NO_STORE, "text/html; charset=utf-8")


def _needs_login(request: Request) -> bool:
    return bool(runtime(request).settings.auth_token) and not has_session(request.scope)


async def page(request: Request) -> Response:
    """``GET /dashboard``: the app, or the login form."""
    if _needs_login(request):
        return _page("login.html")
    return _page("index.html")


async def login(request: Request) -> Response:
    """``POST /dashboard/login`` (a form with one ``token`` field): a session cookie."""
    settings = runtime(request).settings
    dashboard = request.app.state.dashboard
    if not settings.auth_token:
        return RedirectResponse("/dashboard", 303, headers=_NO_STORE)
    wait = dashboard.throttle.blocked()
    if wait > 0:
        response = _page("login.html", 429, "Too many failed attempts; try again in a minute.")
        response.headers["retry-after"] = str(int(wait) + 1)
        return response
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    token = ""
    if media == "application/x-www-form-urlencoded":
        try:
            body = await read_body(request, _LOGIN_BODY)
        except GlmbridgeError as err:  # too large, or a bad content-encoding
            return error_response(err, request)
        given = [v for k, v in parse_qsl(body.decode("latin-1")) if k == "token"]
        token = given[0] if len(given) == 1 else ""  # exactly one token field
    if not token or not token_matches(token.strip(), settings.auth_token):
        dashboard.throttle.failed()
        return _page("login.html", 401, "That is not the server's auth token.")
    response = RedirectResponse("/dashboard", 303, headers=_NO_STORE)
    response.set_cookie(
        COOKIE,
        dashboard.sessions.create(),
        max_age=int(dashboard.sessions.lifetime),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def login_page(request: Request) -> Response:
    """``GET /dashboard/login`` (a bookmark, a reload after a failed login): the page."""
    return RedirectResponse("/dashboard", 303, headers=_NO_STORE)


async def logout(request: Request) -> Response:
    """``POST /dashboard/logout``: end the session and clear the cookie."""
    request.app.state.dashboard.sessions.revoke(cookie_value(request.scope["headers"]))
    response = RedirectResponse("/dashboard", 303, headers=_NO_STORE)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def asset(request: Request) -> Response:
    """``GET /dashboard/static/…``: one of our own files, or 404."""
    found = _assets().get(request.path_params["name"])
    if found is None or found.media_type.startswith("text/html"):
        return Response(b"not found", 404, SECURITY_HEADERS, "text/plain")
    headers = {**SECURITY_HEADERS, "etag": found.etag, "cache-control": "no-cache"}
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, 200, headers, found.media_type)


async def overview(request: Request) -> Response:
    """``GET /dashboard/api/overview``: what the page needs to start, plus ``/status``."""
    current = runtime(request)
    settings = current.settings
    dashboard = request.app.state.dashboard
    return _json({
        "version": __version__,
        "mode": server_mode(settings),
        "upstream": settings.upstream_name,
        "plan": settings.effective_plan,
        "auth": bool(settings.auth_token),
        "inspector": settings.inspector,
        "tracing": dashboard.tracing is not None,
        "usage_store": request.app.state.usage_store is not None,
        "models": sorted(current.route_table.models),
        "default_model": current.route_table.default_model,
        "status": await status_data(request.app.state, settings),
    })  # fmt: skip


async def usage(request: Request) -> Response:
    """``GET /dashboard/api/usage?range=day|week|month``: usage from the SQLite store."""
    store = request.app.state.usage_store
    range_name = request.query_params.get("range", "day")
    if range_name not in RANGES:
        return _json({"error": f"range: one of {', '.join(RANGES)}"}, 400)
    if store is None:
        return _json({"error": "the usage store is off (usage_store = false, or --mock)"}, 404)
    plan = runtime(request).settings.effective_plan

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


async def settings_table(request: Request) -> Response:
    """``GET /dashboard/api/settings``: every setting, its source and restart flag."""
    dashboard = request.app.state.dashboard
    rows = settings_view(runtime(request).settings, dashboard.startup, ConfigUpdate)
    return _json({"settings": rows})


async def inspector_list(request: Request) -> Response:
    """``GET /dashboard/api/inspector``: whether it is on, what it holds, the newest."""
    inspector = request.app.state.dashboard.inspector
    return _json({
        "enabled": runtime(request).settings.inspector,
        "stats": inspector.stats(),
        "exchanges": inspector.recent(),
    })  # fmt: skip


async def inspector_detail(request: Request) -> Response:
    """``GET /dashboard/api/inspector/{request_id}``: one exchange with its four panes."""
    found = request.app.state.dashboard.inspector.detail(request.path_params["request_id"])
    if found is None:
        return _json({"error": "no such exchange (never recorded, or already dropped)"}, 404)
    return _json(found)


async def inspector_clear(request: Request) -> Response:
    """``POST /dashboard/api/inspector/clear``: forget every recorded exchange."""
    inspector = request.app.state.dashboard.inspector
    inspector.clear()
    return _json({"stats": inspector.stats()})


async def events(request: Request) -> Response:
    """``GET /dashboard/api/events``: server-sent events, ``exchange`` as they happen and
    ``live`` (slots, queue, quota) every two seconds."""
    app = request.app
    subscription = app.state.dashboard.inspector.subscribe()
    if subscription is None:
        return _json({"error": "too many open dashboards"}, 429)

    async def stream() -> AsyncIterator[bytes]:
        stopping: anyio.Event | None = getattr(app.state, "stopping", None)
        last = 0.0
        try:
            yield b"retry: 3000\n\n"
            while stopping is None or not stopping.is_set():
                if time.monotonic() - last >= _LIVE_EVERY:
                    last = time.monotonic()
                    live = await status_data(app.state, app.state.settings)
                    live["inspector"] = app.state.settings.inspector
                    live["inspector_stats"] = app.state.dashboard.inspector.stats()
                    yield b"event: live\ndata: %s\n\n" % msgspec.json.encode(live)
                for event in await subscription.next(_LIVE_EVERY):
                    yield event
        finally:
            subscription.close()

    headers = {**_NO_STORE, "x-accel-buffering": "no"}
    return StreamingResponse(stream(), headers=headers, media_type="text/event-stream")


routes = [
    Route("/dashboard", page, methods=["GET", "HEAD"]),
    Route("/dashboard/login", login, methods=["POST"]),
    Route("/dashboard/login", login_page, methods=["GET", "HEAD"]),
    Route("/dashboard/logout", logout, methods=["POST"]),
    Route("/dashboard/static/{name:path}", asset, methods=["GET", "HEAD"]),
    Route("/dashboard/api/overview", overview, methods=["GET"]),
    Route("/dashboard/api/usage", usage, methods=["GET"]),
    Route("/dashboard/api/settings", settings_table, methods=["GET"]),
    Route("/dashboard/api/inspector", inspector_list, methods=["GET"]),
    Route("/dashboard/api/inspector/clear", inspector_clear, methods=["POST"]),
    Route("/dashboard/api/inspector/{request_id}", inspector_detail, methods=["GET"]),
    Route("/dashboard/api/events", events, methods=["GET"]),
]
