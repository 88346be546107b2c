"""The media endpoints (the wing's one module that speaks HTTP).

* ``POST /v1/images/generations`` (OpenAI): images on ``glm-image`` / ``cogview-4-250304``.
* ``POST /v1/videos`` (JSON or multipart), ``GET /v1/videos/{id}``,
  ``GET /v1/videos/{id}/content[?variant=thumbnail]``: CogVideoX-3 tasks in OpenAI's shape.
* Gemini image output: :func:`gemini_image`, called by the Gemini route for image requests.

Without a pay-as-you-go media key every one of them is a 403 in the client's protocol that
says to set ``ZAI_MEDIA_API_KEY``, and nothing is sent upstream
(:mod:`glmbridge_server.media.access`).
"""

from __future__ import annotations

import logging
import time
from contextlib import AsyncExitStack
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from glmbridge import ir
from glmbridge.errors import GlmbridgeError
from glmbridge.exchange import Exchange
from glmbridge.media.forms import decode_form, decode_object
from glmbridge.media.gemini import gemini_image_answer, gemini_image_job
from glmbridge.media.images import (
    IMAGE_MODELS,
    ImageJob,
    decode_image_request,
    openai_images_body,
    snap_size,
)
from glmbridge.media.responses import ImageToolPlan
from glmbridge.media.videos import decode_video_request, video_object
from glmbridge.roles import FrontDoor
from glmbridge_server import relay
from glmbridge_server.media.access import media_access, media_state, no_media_key
from glmbridge_server.media.client import MediaClient
from glmbridge_server.media.image_tool import ImageToolRun
from glmbridge_server.media.images import make_images, record_images
from glmbridge_server.media.tasks import Task
from glmbridge_server.media.videos import create_task, not_found, open_content, poll_task
from glmbridge_server.routes import (
    error_response,
    note_route,
    off_loop,
    read_model_body,
    request_id,
    runtime,
)

__all__ = ["gemini_image", "media_client", "responses_with_images", "routes", "serves_media"]

logger = logging.getLogger("glmbridge.media")
_encode = msgspec.json.encode


def media_client(request: Request) -> MediaClient:
    """A client for this request's media upstream; the 403 when no key may serve media."""
    settings = runtime(request).settings
    access = media_access(settings, request.scope.get("server"))
    if access is None:
        raise no_media_key()
    pool = media_state(request.app.state).pool_for(access.keys)
    return MediaClient(request.app.state.upstream.http, access, pool, settings.auth_cooldown)


def _note(request: Request, model: str, client: MediaClient) -> None:
    state = request.scope.setdefault("state", {})
    state.update(client_model=model[:200], upstream=f"media:{client.access.label}")


def _json(body: Any, status: int = 200) -> Response:
    return Response(body if isinstance(body, bytes) else _encode(body), status,
                    media_type="application/json")  # fmt: skip


async def images_generations(request: Request) -> Response:
    """``POST /v1/images/generations``."""
    try:
        settings = runtime(request).settings
        body = await read_model_body(request)
        job = await off_loop(body, lambda: decode_image_request(body, settings.models))
        client = media_client(request)
        _note(request, job.client_model, client)
        started = time.perf_counter()
        images = await make_images(client, job)  # round robin over the media keys
        record_images(request.app.state.usage_store, job, images, client.access.keys,
                      client="openai", route=request.url.path,
                      latency=time.perf_counter() - started)  # fmt: skip
        logger.info("request %s: %d image(s) on %s (%s), $%.3f each", request_id(request),
                    len(images), job.model.id, job.size, job.price_usd)  # fmt: skip
        items = [{"b64_json": i.b64} if i.b64 is not None else {"url": i.url} for i in images]
        filters = [f for i in images for f in i.content_filter]
        return _json(openai_images_body(items, filters, job=job))
    except GlmbridgeError as err:
        return error_response(err, request)


async def _video_fields(request: Request) -> dict[str, Any]:
    body = await read_model_body(request)
    ctype = request.headers.get("content-type", "")
    if ctype.lower().startswith("multipart/form-data"):
        return await off_loop(body, lambda: decode_form(body, ctype))
    return decode_object(body)


async def videos_create(request: Request) -> Response:
    """``POST /v1/videos``: the job, ``queued``."""
    try:
        job = decode_video_request(await _video_fields(request))
        client = media_client(request)
        _note(request, job.client_model, client)
        task = await create_task(client, media_state(request.app.state).tasks, job)
        logger.info("request %s: video task %s created", request_id(request), task.id)
        return _json(video_object(task.id, job, created=task.created, expires=task.expires,
                                  result=None))  # fmt: skip
    except GlmbridgeError as err:
        return error_response(err, request)


def _task(request: Request) -> Task:
    """The task the path names; a 404 for an id this gateway does not know."""
    video_id = request.path_params["video_id"]
    task = media_state(request.app.state).tasks.get(video_id)
    if task is None:
        raise not_found(video_id)
    return task


async def videos_retrieve(request: Request) -> Response:
    """``GET /v1/videos/{id}``: the job's state, polled on Z.ai with the key that made it."""
    try:
        client = media_client(request)
        task = await poll_task(client, _task(request))
        return _json(video_object(task.id, task.job, created=task.created,
                                  expires=task.expires, result=task.result))  # fmt: skip
    except GlmbridgeError as err:
        return error_response(err, request)


async def videos_content(request: Request) -> Response:
    """``GET /v1/videos/{id}/content[?variant=thumbnail]``: the MP4 (or cover), streamed."""
    stack = AsyncExitStack()
    try:
        client = media_client(request)
        task = _task(request)
        variant = request.query_params.get("variant", "video")
        ctype, chunks = await open_content(client, task, variant, stack)
    except GlmbridgeError as err:
        await stack.aclose()
        return error_response(err, request)
    except BaseException:
        await stack.aclose()
        raise

    async def body() -> Any:
        async with stack:
            async for chunk in chunks:
                yield chunk

    return StreamingResponse(body(), media_type=ctype)


async def gemini_image(request: Request, model: str, body: bytes, door: FrontDoor) -> Response:
    """A Gemini ``generateContent`` / ``streamGenerateContent`` that wants an image: one
    ``inlineData`` part (the stream is that one chunk, as SSE or a JSON array per ``door``)."""
    try:
        job = gemini_image_job(body)
        client = media_client(request)
        _note(request, model, client)
        started = time.perf_counter()
        images = await make_images(client, job, download=True)
        record_images(request.app.state.usage_store, job, images, client.access.keys,
                      client="gemini", route=request.url.path,
                      latency=time.perf_counter() - started)  # fmt: skip
        image = images[0]
        answer = gemini_image_answer(model, image.b64 or "", image.mime)
    except GlmbridgeError as err:
        return error_response(err, request, door)
    action = request.url.path.rpartition(":")[2]
    if action != "streamGenerateContent":
        return _json(answer)
    if request.query_params.get("alt", "").lower() == "sse":
        return Response(b"data: " + _encode(answer) + b"\r\n\r\n", media_type="text/event-stream")
    return _json([answer])


def serves_media(request: Request) -> bool:
    """Whether this request's configuration has a key that may serve media."""
    return media_access(runtime(request).settings, request.scope.get("server")) is not None


_HD = {"high": "hd", "medium": "standard"}


async def responses_with_images(request: Request, raw: bytes, door: FrontDoor) -> Response:
    """``POST /v1/responses`` offering the hosted ``image_generation`` tool: the gateway runs
    it (:mod:`glmbridge_server.media.image_tool`); rounds go through the relay unchanged."""
    current = runtime(request)
    settings = current.settings
    model = IMAGE_MODELS["glm-image"]
    try:
        plan = ImageToolPlan.from_body(raw)
        client = media_client(request)
    except GlmbridgeError as err:
        return error_response(err, request, door)
    thinking = None if settings.thinking == "auto" else ir.Thinking(type=settings.thinking)

    async def answer_round(body: bytes) -> bytes:
        store = request.app.state.responses_store  # it resolves previous_response_id
        decode = store.decode if store is not None else door.decode_request
        exchange = Exchange.from_request(
            door, decode(body), table=current.route_table,
            upstream=settings.upstream_profile,
            override=request.headers.get("x-glmbridge-model") or None,
            thinking=thinking, estimator=request.app.state.token_estimator,
        )  # fmt: skip
        note_route(request, exchange)
        answer = await relay.answer(request, exchange)
        return bytes(answer.body)

    async def make_image(prompt: str, size: str | None) -> tuple[str, str]:
        job = ImageJob(prompt=prompt, model=model, client_model="image_generation",
                       size=snap_size(size, model),
                       quality=_HD.get(plan.quality, model.default_quality),  # type: ignore[arg-type]
                       response_format="b64_json")  # fmt: skip
        started = time.perf_counter()
        (image,) = await make_images(client, job, download=True)
        record_images(request.app.state.usage_store, job, [image], client.access.keys,
                      client="responses", route=request.url.path,
                      latency=time.perf_counter() - started)  # fmt: skip
        return image.b64 or "", job.size

    def done(finished: ImageToolPlan) -> None:  # one usage row: every round's tokens
        uncached, cached, output = finished.totals()
        state = request.scope.setdefault("state", {})
        state["usage"] = ir.Usage(input_tokens=uncached, cache_read_input_tokens=cached,
                                  output_tokens=output)  # fmt: skip

    run = ImageToolRun(plan, answer_round, make_image, done)
    try:
        await run.first_round()
        if not plan.stream:
            return _json(await run.whole())
    except GlmbridgeError as err:
        return error_response(err, request, door)
    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(run.events(), media_type="text/event-stream", headers=headers)


routes = [
    Route("/v1/images/generations", images_generations, methods=["POST"]),
    Route("/v1/videos", videos_create, methods=["POST"]),
    Route("/v1/videos/{video_id}", videos_retrieve, methods=["GET"]),
    Route("/v1/videos/{video_id}/content", videos_content, methods=["GET"]),
]
