"""The simulator's ASGI app and its one mount in the server (``--mock``).

The only simulator module that imports Starlette: it routes Z.ai's paths to the endpoints
(:mod:`~.chat`, :mod:`~.anthropic`, :mod:`~.search`, :mod:`~.media`), wraps them in the
per-key limits (:mod:`~.limits`) and keeps the state tests steer on ``app.state``.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from glmbridge_server.simulator.anthropic import MESSAGES_PATH, count_tokens, messages
from glmbridge_server.simulator.asgi import Reply, json_reply
from glmbridge_server.simulator.catalog import CODING_SERVED_AS
from glmbridge_server.simulator.chat import chat, chat_coding, model_list, tokenizer
from glmbridge_server.simulator.limits import KeyLimits, init_limits
from glmbridge_server.simulator.media import ENDPOINTS as MEDIA_ENDPOINTS  # media (issue 21)
from glmbridge_server.simulator.media import init_media
from glmbridge_server.simulator.scripts import Script
from glmbridge_server.simulator.search import search

__all__ = ["PREFIXES", "create_simulator_app", "mount"]

#: The chat API's path prefixes (the Coding Plan's is ``/api/coding/paas/v4``).
PREFIXES = ("", "/v4", "/paas/v4", "/api/paas/v4", "/api/coding/paas/v4")
_INTERNAL = "Internal error, please try again later."


async def _health(request: Request) -> Reply:
    return Reply(b'{"status":"ok"}')


async def _sim_requests(request: Request) -> Reply:
    st = request.app.state
    if request.method == "DELETE":
        n = len(st.requests)
        st.requests.clear()
        return json_reply({"cleared": n})
    return json_reply(st.requests)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    body: dict[str, Any] = {"error": {"code": "500", "message": _INTERNAL}}
    if status in (404, 405):
        # An unknown path is a plain Spring-style body, no business code:
        # {"timestamp":…,"status":404,"error":"Not Found","path":"/v4/v1/messages"}
        # (Wei-Shaw/sub2api#5892, 2026-08; zai-fidelity 4.11).
        body = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime()),
            "status": status,
            "error": "Not Found" if status == 404 else "Method Not Allowed",
            "path": request.url.path,
        }
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def _routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/health", _health, methods=["GET"]),
        Route("/_sim/requests", _sim_requests, methods=["GET", "DELETE"]),
    ]
    for prefix in PREFIXES:
        answer = chat_coding if "/coding/" in prefix else chat
        routes.append(Route(f"{prefix}/chat/completions", answer, methods=["POST"]))
        routes.append(Route(f"{prefix}/tokenizer", tokenizer, methods=["POST"]))
        routes.append(Route(f"{prefix}/web_search", search, methods=["POST"]))
        for method, path, endpoint in MEDIA_ENDPOINTS:  # media (issue 21)
            routes.append(Route(f"{prefix}{path}", endpoint, methods=[method]))
        routes.append(Route(f"{prefix}/models", model_list, methods=["GET"]))
    routes.append(Route(MESSAGES_PATH, messages, methods=["POST"]))
    routes.append(Route(f"{MESSAGES_PATH}/count_tokens", count_tokens, methods=["POST"]))
    routes.append(Route("/api/anthropic/v1/models", model_list, methods=["GET"]))
    return routes


def create_simulator_app(
    *,
    default_script: Script | None = None,
    latency: float = 0.0,
    invalid_keys: Iterable[str] = (),
    quota_keys: Iterable[str] = (),
    max_recorded_requests: int = 200,
) -> Starlette:
    """Build the GLM simulator ASGI app.

    ``default_script`` replaces the built-in default behaviour; ``latency`` is slept before every
    chat answer (time to first byte); requests with a key in ``invalid_keys`` get 401/1002, keys in
    ``quota_keys`` 429/1113. State for tests on ``app.state``: ``requests`` (last received bodies),
    ``script_queue`` (deque of :class:`Script`, popped FIFO), ``cancelled`` and ``active_streams``,
    ``thinking_signatures`` (Anthropic mode: hex signatures on thinking blocks, ``False``: none),
    ``served_as`` (which model answers a legacy id on the Coding Plan), ``gated_keys`` (keys
    whose tier includes the tier-gated ids), ``search_host`` (``"bigmodel"``: BigModel's Web
    Search rules);
    per-key concurrency and spent quota windows: :mod:`glmbridge_server.simulator.limits`.
    """
    app = Starlette(
        routes=_routes(),
        exception_handlers={HTTPException: _http_error},
        middleware=[Middleware(KeyLimits)],  # 1302 / 1308 / 1310 per key (limits)
    )
    st = app.state
    init_limits(st)
    st.default_script, st.latency = default_script, latency
    st.invalid_keys, st.quota_keys = set(invalid_keys), set(quota_keys)
    st.requests, st.max_recorded_requests = [], max(1, max_recorded_requests)
    st.script_queue = collections.deque()
    st.prefix_cache = collections.OrderedDict()
    st.cancelled = st.active_streams = 0
    st.thinking_signatures = True  # Anthropic mode: thinking blocks carry a hex signature
    st.search_quota, st.search_calls = None, 0  # the Web Search API (search)
    init_media(st)  # media (issue 21)
    st.search_host = "zai"  # "bigmodel": BigModel's engines, search_intent, 70 characters
    st.served_as = dict(CODING_SERVED_AS)  # the Coding Plan's rerouting (catalog)
    st.gated_keys = set()  # keys whose tier includes glm-5.3-highspeed
    st.model_lists = {}  # GET …/models: "coding" / "general" / "anthropic" -> ids
    return app


def mount(routes: list[BaseRoute], path: str) -> Starlette:
    """Build a simulator and mount it under ``path`` in ``routes`` (the server's ``--mock``);
    the simulator app is returned so tests can steer it."""
    simulator = create_simulator_app()
    routes.append(Mount(path, app=simulator))
    return simulator
