"""HTTP routes, one module per front door, plus the helpers they share.

The helpers here are deliberately few: the call's record (built by the request-context
middleware), preparing an exchange for any front door, and rendering a glmbridge error in the
shape of the path's protocol (Anthropic's for the admin endpoints).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from glmbridge import ir
from glmbridge.doors import door_for_protocol
from glmbridge.errors import GlmbridgeError, UpstreamError
from glmbridge.exchange import Exchange, FrontDoor
from glmbridge_server.call import relay
from glmbridge_server.call.asgi import Answer
from glmbridge_server.call.record import CallRecord
from glmbridge_server.edge.bodies import off_loop, read_model_body
from glmbridge_server.edge.state import AppState, record_in
from glmbridge_server.tools.video_paths import attach_videos

__all__ = [
    "anthropic_client",
    "answer",
    "app_state",
    "door_for",
    "error_response",
    "gemini_client",
    "prepare",
    "record_of",
]

logger = logging.getLogger("glmbridge.server")


def app_state(request: Request) -> AppState:
    """The app's typed state."""
    state: AppState = request.app.state
    return state


async def answer(request: Request, exchange: Exchange) -> Answer:
    """The call's answer to ``exchange`` (the relay drives it; see :func:`relay.answer`)."""
    return await relay.answer(record_of(request), exchange, request.receive)


def record_of(request: Request) -> CallRecord:
    """This request's record (the request-context middleware built it as it arrived)."""
    return record_in(request.scope)


def anthropic_client(request: Request) -> bool:
    """Whether the client identifies as an Anthropic one (``anthropic-version`` or
    ``x-api-key``): what decides the shape on paths the doors share (``/v1/models``,
    an unknown ``/v1/…`` path)."""
    headers = request.headers
    return "anthropic-version" in headers or "x-api-key" in headers


def gemini_client(request: Request) -> bool:
    """Whether the client is a Google one (``x-goog-api-key``/``x-goog-api-client`` or
    ``?key=``): google-genai lists models under ``/v1`` when its api_version is v1."""
    headers = request.headers
    return (
        "x-goog-api-key" in headers
        or "x-goog-api-client" in headers
        or "key" in request.query_params
    )


def door_for(request: Request) -> FrontDoor:
    """The front door whose error shape a path's clients understand: the path's protocol,
    and for shared or unknown ``/v1/`` paths the client's headers."""
    protocol = record_of(request).protocol
    shared = protocol == "anthropic" and not request.url.path.startswith("/v1/messages")
    if shared and not anthropic_client(request):
        protocol = "openai"
    return door_for_protocol(protocol)


def error_response(
    err: GlmbridgeError, request: Request, door: FrontDoor | None = None
) -> Response:
    """An error body in ``door``'s shape (by default the path's protocol; Anthropic's for
    admin endpoints) with the right status and retry headers."""
    door = door or door_for(request)
    record = record_of(request)
    status, body = door.encode_error(err, request_id=record.request_id or None)
    headers = door.error_headers(err)
    record.failed(err.kind.value, err.status if isinstance(err, UpstreamError) else None)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def prepare(
    request: Request, door: FrontDoor, decode: Callable[[bytes], ir.Request] | None = None
) -> Exchange:
    """Read the body (bounded) and prepare the :class:`Exchange` for ``door`` with this
    request's configuration: routing table, default upstream profile, thinking default,
    the ``x-glmbridge-model`` override and the shared token estimator. ``decode`` replaces
    the door's own request decoding (the Responses store amends requests).
    """
    record = record_of(request)
    current = record.runtime
    settings = current.settings
    body = await read_model_body(request, settings)
    thinking = None if settings.thinking == "auto" else ir.Thinking(type=settings.thinking)
    learned = app_state(request).served_as

    def build() -> Exchange:
        req = (decode or door.decode_request)(body)
        if settings.video_dirs:  # opt-in: videos named by path in the turn (video_paths.py)
            req = attach_videos(req, settings.video_dirs, settings.video_max_bytes)
        exchange = Exchange.from_request(
            door,
            req,
            table=current.route_table,
            upstream=settings.upstream_profile,
            override=record.headers.model_override or None,
            thinking=thinking,
            estimator=record.app.token_estimator,
            learned=learned,
        )
        if req.thinking is None and thinking is None and not settings.reasoning_content:
            exchange.show_reasoning = False  # reasoning_content = false: only when asked
        return exchange

    exchange = await off_loop(body, build, force=bool(settings.video_dirs))
    note_route(record, exchange)
    # Prompts are for debugging only: never above DEBUG.
    if logger.isEnabledFor(logging.DEBUG):
        text = body[:4096].decode("utf-8", "replace")
        logger.debug("request %s body: %s", record.request_id, text)
    return exchange


def note_route(record: CallRecord, exchange: Exchange) -> None:
    """Record the routing decision for the access log and metrics."""
    record.route_noted(exchange)
    route = exchange.route
    logger.debug("route %s -> %s via %s (%s)", exchange.request.model, route.model,
                 route.upstream.name, route.reason)  # fmt: skip
