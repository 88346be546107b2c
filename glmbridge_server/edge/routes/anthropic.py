"""The Anthropic front door: ``/v1/messages``, ``/v1/messages/count_tokens``, ``/v1/models``.

Thin by design: read the body (bounded), prepare an :class:`~glmbridge.exchange.Exchange`
for the Anthropic door and the configured upstream profile, and hand it to
:func:`glmbridge_server.call.relay.answer`, the server's one relay for every door and upstream.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import httpx2
import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from glmbridge import ir
from glmbridge.errors import (
    ClientRequestError,
    ErrorKind,
    GlmbridgeError,
    UpstreamError,
    UpstreamProtocolError,
)
from glmbridge.exchange import Exchange
from glmbridge.protocols import anthropic
from glmbridge.protocols.openai.tokenizer import tokenizer_body, tokenizer_url
from glmbridge.routing import ModelSpec, RouteTable, model_info, offered, resolve_route
from glmbridge.upstream_errors import scrub
from glmbridge_server.call.asgi import Answer
from glmbridge_server.call.driver import upstream_url
from glmbridge_server.edge.bodies import off_loop, read_model_body
from glmbridge_server.edge.routes import (
    answer,
    anthropic_client,
    app_state,
    error_response,
    gemini_client,
    note_route,
    prepare,
    record_of,
)
from glmbridge_server.edge.routes import gemini as gemini_routes
from glmbridge_server.edge.routes import openai as openai_routes
from glmbridge_server.launch.codex import codex_catalog
from glmbridge_server.upstream.model_follower import live_models

__all__ = ["build_model_catalog", "routes"]

logger = logging.getLogger("glmbridge.server")

_TOKENIZER_TIMEOUT = httpx2.Timeout(5.0, read=15.0)
_TOKENIZER_RETRY_AFTER = 600.0  # seconds a failing tokenizer is not asked again
_DOOR = anthropic.DOOR


async def _count_exchange(request: Request) -> Exchange:
    record = record_of(request)
    current = record.runtime
    settings = current.settings
    body = await read_model_body(request, settings)

    def build() -> Exchange:
        req = anthropic.decode_count_tokens_request(body)
        route = resolve_route(
            req,
            current.route_table,
            override=request.headers.get("x-glmbridge-model") or None,
            upstream=settings.upstream_profile,
        )
        estimate = app_state(request).token_estimator.request_tokens(req)
        return Exchange(_DOOR, req, route, input_estimate=estimate)

    exchange = await off_loop(body, build)
    note_route(record, exchange)
    return exchange


async def messages(request: Request) -> Response | Answer:
    """``POST /v1/messages`` (``?beta=true`` accepted and ignored)."""
    try:
        return await answer(request, await prepare(request, _DOOR))
    except GlmbridgeError as err:
        return error_response(err, request)


async def count_tokens(request: Request) -> Response:
    """``POST /v1/messages/count_tokens``: Z.ai's tokenizer when available, else an estimate.

    Routes to an upstream without a tokenizer (Z.ai's Anthropic endpoint answers 0:
    kolega-ai/kolega-code PR#613) always get the local estimate.
    """
    try:
        exchange = await _count_exchange(request)
        count = await _upstream_token_count(request, exchange)
        if count is None:
            count = exchange.input_estimate
        return JSONResponse({"input_tokens": count})
    except GlmbridgeError as err:
        return error_response(err, request)


async def _upstream_token_count(request: Request, exchange: Exchange) -> int | None:
    """Ask GLM's tokenizer; ``None`` means "use the local estimate".

    The documented path and a model it accepts (``glmbridge.protocols.openai.tokenizer``);
    a failure is remembered (a 404/405 for good, anything else for
    ``_TOKENIZER_RETRY_AFTER``), so ``count_tokens`` does not pay a failing round trip each
    time, and it never cools a key: the tokenizer's answer says nothing about the key's
    use for chat (a Coding-Plan key on the general path gets 1113 there).
    """
    state = app_state(request)
    record = record_of(request)
    settings = record.settings
    profile = exchange.route.upstream
    mode = settings.count_tokens
    url = tokenizer_url(upstream_url(record, exchange).removesuffix(exchange.codec.path))
    if not profile.tokenizer or mode == "local":
        return None
    unavailable: dict[str, float] = state.tokenizer_unavailable
    if mode == "auto" and unavailable.get(url, 0.0) > time.monotonic():
        return None
    if mode == "auto" and not settings.mock and len(state.client().keys) == 0:
        return None

    def decode_error(status: int, data: bytes, retry: float | None) -> UpstreamError:
        err = exchange.codec.decode_error(status, data, retry_after=retry)
        err.spares_key = True  # never cool a key for the tokenizer's sake
        return scrub(err, exchange.secrets)

    try:
        reply = await state.client().send(
            url,
            tokenizer_body(exchange.body),
            headers=lambda key: {**profile.auth_headers(key), "content-type": "application/json"},
            decode_error=decode_error,
            stream=False,
            session_id=None,
            max_retries=0,
            timeout=_TOKENIZER_TIMEOUT,
            settings=settings,
        )
        usage = msgspec.json.decode(reply.response.content).get("usage") or {}
        total = usage.get("total_tokens", usage.get("prompt_tokens"))
        if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
            return total
        raise UpstreamProtocolError("tokenizer answer has no usage.total_tokens")
    except (msgspec.DecodeError, AttributeError) as exc:
        failure: GlmbridgeError = UpstreamProtocolError("tokenizer answer is not valid JSON")
        failure.__cause__ = exc
    except GlmbridgeError as exc:
        failure = exc
    if mode == "upstream":
        raise failure
    gone = isinstance(failure, UpstreamError) and failure.status in (404, 405)
    # no tokenizer there: stop asking; another failure: ask again after a while
    unavailable[url] = math.inf if gone else time.monotonic() + _TOKENIZER_RETRY_AFTER
    logger.info("tokenizer unavailable (%s); using the local estimate", failure.message)
    return None


# --- models ------------------------------------------------------------------------------

# (id, display name, date): the names Claude Code and the SDKs ask for, newest first. The
# dates only fill ``created_at`` (and order the list); they are not authoritative.
_CLAUDE_MODELS: tuple[tuple[str, str, str], ...] = (
    ("claude-opus-4-8", "Claude Opus 4.8", "2026-09-01"),  # Claude Code 2.1's default
    ("claude-sonnet-5", "Claude Sonnet 5", "2026-09-01"),  # Claude Code's "--model sonnet"
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17"),
    ("claude-haiku-4-6", "Claude Haiku 4.6", "2026-02-17"),
    ("claude-opus-4-5", "Claude Opus 4.5", "2025-11-24"),
    ("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24"),
    ("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-15"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15"),
    ("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29"),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29"),
    ("claude-opus-4-1", "Claude Opus 4.1", "2025-08-05"),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05"),
    ("claude-opus-4-20250514", "Claude Opus 4", "2025-05-22"),
    ("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22"),
    ("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-24"),
    ("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22"),
)
_GLM_RELEASED = "2025-07-28"


def build_model_catalog(table: RouteTable) -> dict[str, dict[str, Any]]:
    """Anthropic ``ModelInfo`` objects for the claude aliases and the GLM models, by id.

    A claude alias's display name says which GLM model it is routed to, so a model picker
    shows the truth; ``max_input_tokens`` and ``max_tokens`` are that GLM model's real
    window and output cap (GLM shares the window between input and output, so the input
    limit is the whole window, as in the Gemini door's ``inputTokenLimit``).
    """
    catalog: dict[str, dict[str, Any]] = {}
    for model_id, name, released in _CLAUDE_MODELS:
        target = table.default_model
        try:
            target = resolve_route(ir.Request(model=model_id, messages=[]), table).model
            name = f"{name} (GLM: {target})"
        except GlmbridgeError:
            pass
        catalog[model_id] = _model_info(model_id, name, released, model_info(target, table))
    glm_ids = [*table.models, table.default_model, *(target for _, target in table.aliases)]
    for model_id in glm_ids:
        spec = model_info(model_id, table)
        name = spec.display_name or model_id.upper()
        catalog.setdefault(model_id, _model_info(model_id, name, _GLM_RELEASED, spec))
    return catalog


def _model_info(model_id: str, name: str, released: str, spec: ModelSpec) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model_id,
        "display_name": name,
        "created_at": f"{released}T00:00:00Z",
        "max_input_tokens": spec.context_window,
        "max_tokens": spec.max_output,
    }


def _page(catalog: dict[str, dict[str, Any]], params: Any) -> dict[str, Any]:
    ids = list(catalog)
    limit_text = params.get("limit", "20")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        raise ClientRequestError("limit: must be an integer between 1 and 1000")
    limit = int(limit_text)
    start, stop = 0, len(ids)
    for name in ("after_id", "before_id"):
        anchor = params.get(name)
        if anchor is None:
            continue
        if anchor not in catalog:
            raise ClientRequestError(f"{name}: unknown model id {anchor!r}")
        if name == "after_id":
            start = ids.index(anchor) + 1
        else:
            stop = ids.index(anchor)
    window = ids[start:stop]
    page = window[-limit:] if "before_id" in params and "after_id" not in params else window[:limit]
    return {
        "data": [catalog[i] for i in page],
        "has_more": len(page) < len(window),
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
    }


async def models_index(request: Request) -> Response:
    """``GET /v1/models``: Anthropic's paginated list for Anthropic clients (see
    :func:`~glmbridge_server.edge.routes.anthropic_client`), else OpenAI's list."""
    if "client_version" in request.query_params:  # Codex CLI (model_catalog_url)
        current = record_of(request).runtime
        profile = current.settings.upstream_profile
        live = live_models(app_state(request), profile)  # what Z.ai lists now
        return JSONResponse(codex_catalog(offered(current.route_table, profile, live)))
    if gemini_client(request):  # google-genai on /v1 (its api_version "v1")
        return await gemini_routes.models_index(request)
    if not anthropic_client(request):
        return openai_routes.model_list(record_of(request).runtime.model_catalog)
    try:
        return JSONResponse(_page(record_of(request).runtime.model_catalog, request.query_params))
    except ClientRequestError as err:
        return error_response(err, request)


async def models_show(request: Request) -> Response:
    """``GET /v1/models/{model_id}``; unknown ids get ``404 not_found_error``."""
    if gemini_client(request):
        request.path_params["rest"] = request.path_params["model_id"]
        return await gemini_routes.models_show(request)
    model_id = request.path_params["model_id"]
    info = record_of(request).runtime.model_catalog.get(model_id)
    if info is None:
        err = ClientRequestError(f"model: {model_id!r} not found", kind=ErrorKind.NOT_FOUND)
        return error_response(err, request)
    if not anthropic_client(request):
        return JSONResponse(openai_routes.model_object(info))
    return JSONResponse(info)


routes = [
    Route("/v1/messages", messages, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    Route("/v1/models", models_index, methods=["GET"]),
    Route("/v1/models/{model_id:path}", models_show, methods=["GET"]),
]
