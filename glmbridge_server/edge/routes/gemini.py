"""The Gemini front door: ``/v1beta/models/{model}:generateContent``,
``:streamGenerateContent`` (``?alt=sse``, else a JSON array), ``:countTokens``, and
``GET /v1beta/models[/{model}]``; the same under ``/v1``.

Thin by design: the model comes from the path, the stream form from ``alt``; the
request is decoded by :mod:`glmbridge.protocols.gemini` and answered by
:func:`glmbridge_server.call.relay.answer`. Every error, 404 included, is Google-shaped.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from glmbridge import ir
from glmbridge.errors import ClientRequestError, ErrorKind, GlmbridgeError
from glmbridge.media.gemini import wants_image  # media (issue 21)
from glmbridge.protocols import gemini
from glmbridge.routing import RouteTable, offered, resolve_route
from glmbridge_server.call.asgi import Answer
from glmbridge_server.edge.bodies import off_loop, read_model_body
from glmbridge_server.edge.routes import answer, app_state, error_response, prepare, record_of
from glmbridge_server.media import endpoints as media  # media (issue 21)
from glmbridge_server.upstream.model_follower import live_models

__all__ = ["model_catalog", "routes"]

_ACTIONS = ("generateContent", "streamGenerateContent", "countTokens")


def _split(request: Request) -> tuple[str, str]:
    """``models/<model>:<action>`` from the path (``tunedModels`` are not served)."""
    rest = request.path_params["rest"]
    model, sep, action = rest.rpartition(":")
    if not sep or action not in _ACTIONS or not model:
        raise ClientRequestError(f"{request.url.path}: no such method", kind=ErrorKind.NOT_FOUND)
    return model, action


async def model_method(request: Request) -> Response | Answer:
    """``POST …/models/{model}:{generateContent|streamGenerateContent|countTokens}``."""
    door = gemini.GEMINI_DOOR
    try:
        model, action = _split(request)
        if action == "countTokens":
            return await _count_tokens(request, model)
        stream = action == "streamGenerateContent"
        if stream and request.query_params.get("alt", "").lower() != "sse":
            door = gemini.GEMINI_ARRAY_DOOR

        def decode(body: bytes) -> ir.Request:
            if wants_image(model, body):  # media (issue 21): image output, not GLM
                raise media.ForMedia(body)
            return gemini.decode_request(body, model=model, stream=stream)

        try:
            exchange = await prepare(request, door, decode)
        except media.ForMedia as wanted:  # media (issue 21)
            sse = request.query_params.get("alt", "").lower() == "sse"
            return await media.gemini_image(app_state(request), record_of(request), model,
                                            wanted.body, door, sse=sse)  # fmt: skip
        return await answer(request, exchange)
    except GlmbridgeError as err:
        return error_response(err, request, door)


async def _count_tokens(request: Request, model: str) -> Response:
    """A local estimate (``{"totalTokens": n}``), for any upstream."""
    body = await read_model_body(request, record_of(request).settings)
    estimator = app_state(request).token_estimator
    count = await off_loop(
        body, lambda: estimator.request_tokens(gemini.decode_request(body, model=model))
    )
    return JSONResponse({"totalTokens": count})


def model_catalog(table: RouteTable) -> dict[str, dict[str, Any]]:
    """Gemini ``Model`` objects for the GLM models of the routing table, by id."""
    out: dict[str, dict[str, Any]] = {}
    for model_id, spec in table.models.items():
        out[model_id] = {
            "name": f"models/{model_id}",
            "baseModelId": model_id,
            "version": "glmbridge",
            "displayName": spec.display_name or model_id.upper(),
            "description": f"Z.ai {spec.display_name or model_id} through glmbridge",
            # The whole window: a prompt may fill it when little output is asked for
            # (window - max_output is 0 for glm-5v-turbo, whose cap equals its window).
            "inputTokenLimit": spec.context_window,
            "outputTokenLimit": spec.max_output,
            "supportedGenerationMethods": [
                "generateContent",
                "streamGenerateContent",
                "countTokens",
            ],  # fmt: skip
            "thinking": spec.thinking != "none",
        }
    return out


def _offered(request: Request, table: RouteTable) -> RouteTable:
    profile = record_of(request).settings.upstream_profile
    return offered(table, profile, live_models(app_state(request), profile))


async def models_index(request: Request) -> Response:
    """``GET /v1beta/models`` (one page: the catalog is small)."""
    current = record_of(request).runtime
    catalog = model_catalog(_offered(request, current.route_table))
    return JSONResponse({"models": list(catalog.values())})


async def models_show(request: Request) -> Response:
    """``GET /v1beta/models/{model}``; a Gemini name shows the GLM model it routes to."""
    name = request.path_params["rest"].removeprefix("models/")
    current = record_of(request).runtime
    table = current.route_table
    catalog = model_catalog(_offered(request, table))
    info = catalog.get(name)
    if info is None:
        target = resolve_route(ir.Request(model=name, messages=[]), table).model
        info = catalog.get(target)
        if info is None:
            err = ClientRequestError(f"models/{name} is not found", kind=ErrorKind.NOT_FOUND)
            return error_response(err, request, gemini.GEMINI_DOOR)
        info = {**info, "name": f"models/{name}", "baseModelId": name}
    return JSONResponse(info)


routes = [
    *(Route(f"/{v}/models", models_index, methods=["GET"]) for v in ("v1beta", "v1beta1")),
    *(
        Route(f"/{v}/models/{{rest:path}}", models_show, methods=["GET"])
        for v in ("v1beta", "v1beta1")
    ),  # fmt: skip
    *(
        Route(f"/{v}/models/{{rest:path}}", model_method, methods=["POST"])
        for v in ("v1beta", "v1beta1", "v1")
    ),  # fmt: skip
]
