"""The OpenAI front doors: ``/v1/chat/completions`` and ``/v1/responses``, and the OpenAI
shape of the model list that ``/v1/models`` shares with the Anthropic door.

Thin by design: each route prepares an :class:`~glmbridge.exchange.Exchange` for its door
and hands it to :func:`glmbridge_server.call.relay.answer`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from glmbridge import ir
from glmbridge.errors import GlmbridgeError
from glmbridge.media.responses import has_image_tool  # media (issue 21)
from glmbridge.protocols.openai import CHAT_DOOR
from glmbridge.protocols.responses import RESPONSES_DOOR
from glmbridge_server.call.asgi import Answer
from glmbridge_server.edge.routes import answer, app_state, error_response, prepare, record_of
from glmbridge_server.media import endpoints as media  # media (issue 21)
from glmbridge_server.tools.responses_store import ResponseStore

__all__ = ["model_list", "model_object", "routes"]

logger = logging.getLogger("glmbridge.server")


async def chat_completions(request: Request) -> Response | Answer:
    """``POST /v1/chat/completions``."""
    try:
        return await answer(request, await prepare(request, CHAT_DOOR))
    except GlmbridgeError as err:
        return error_response(err, request, CHAT_DOOR)


async def responses(request: Request) -> Response | Answer:
    """``POST /v1/responses`` (``previous_response_id`` needs ``responses_store``)."""
    store: ResponseStore | None = app_state(request).responses_store

    def decode(body: bytes) -> ir.Request:
        # media (issue 21): the hosted image tool, run by the gateway when a key may serve it
        if has_image_tool(body) and media.serves_media(record_of(request)):
            raise media.ForMedia(body)
        return (store.decode if store is not None else RESPONSES_DOOR.decode_request)(body)

    try:
        try:
            exchange = await prepare(request, RESPONSES_DOOR, decode)
        except media.ForMedia as wanted:  # media (issue 21)
            record = record_of(request)
            return await media.responses_with_images(app_state(request), record,
                                                     request.receive, wanted.body,
                                                     RESPONSES_DOOR)  # fmt: skip
        if store is not None:
            store.keep(exchange)
        return await answer(request, exchange)
    except GlmbridgeError as err:
        return error_response(err, request, RESPONSES_DOOR)


def model_object(info: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI ``Model`` for one catalog entry (built for the Anthropic shape)."""
    created = datetime.fromisoformat(info["created_at"]) if "created_at" in info else None
    return {
        "id": info["id"],
        "object": "model",
        "created": int(created.timestamp()) if created is not None else 0,
        "owned_by": "glmbridge",
    }


def model_list(catalog: dict[str, dict[str, Any]]) -> Response:
    """``GET /v1/models`` in OpenAI's shape."""
    data = [model_object(info) for info in catalog.values()]
    return JSONResponse({"object": "list", "data": data})


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/responses", responses, methods=["POST"]),
]
