"""The media endpoints, without a web framework: each takes the call's record and the HTTP
request (as :class:`MediaRequest`) and returns an ASGI answer. The edge routes them
(:data:`ENDPOINTS`) and calls :func:`gemini_image` and :func:`responses_with_images` from
the Gemini and Responses doors.

* ``POST /v1/images/generations`` (OpenAI): images on ``glm-image`` / ``cogview-4-250304``.
* ``POST /v1/videos`` (JSON or multipart), ``GET /v1/videos/{id}``,
  ``GET /v1/videos/{id}/content[?variant=thumbnail]``: CogVideoX-3 tasks in OpenAI's shape.

Without a pay-as-you-go media key every one of them is a 403 in the client's protocol that
says to set ``ZAI_MEDIA_API_KEY``, and nothing is sent upstream
(:mod:`glmbridge_server.media.access`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any, Protocol

import msgspec

from glmbridge import ir
from glmbridge.doors import door_for_protocol
from glmbridge.errors import ClientRequestError, ErrorKind, GlmbridgeError, UpstreamError
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
from glmbridge.tokens import TokenEstimator
from glmbridge_server.asgi_types import RequestView
from glmbridge_server.call import relay
from glmbridge_server.call.asgi import Answer, Receive, Scope, Send, WholeAnswer
from glmbridge_server.call.driver import unless_disconnected
from glmbridge_server.call.record import CallRecord
from glmbridge_server.edge.bodies import off_loop, read_model_body
from glmbridge_server.media.access import MediaState, media_access, no_media_key
from glmbridge_server.media.client import MediaClient
from glmbridge_server.media.image_tool import ImageToolRun, ImageToolStream
from glmbridge_server.media.images import make_images, record_images
from glmbridge_server.media.tasks import Task
from glmbridge_server.media.videos import create_task, not_found, open_content, poll_task
from glmbridge_server.tools.responses_store import ResponseStore
from glmbridge_server.traffic.usage_store import UsageStore
from glmbridge_server.upstream.client import UpstreamClient

__all__ = [
    "ENDPOINTS",
    "ForMedia",
    "MediaRequest",
    "MediaServices",
    "gemini_image",
    "responses_with_images",
    "serves_media",
]

logger = logging.getLogger("glmbridge.media")
_encode = msgspec.json.encode


class ForMedia(Exception):
    """Raised by a door's decode hook in the edge's routes for a request that this wing
    answers instead of GLM (image output, the hosted image tool); ``body`` is what it said."""

    def __init__(self, body: bytes) -> None:
        super().__init__("media request")
        self.body = body


class MediaRequest(RequestView, Protocol):
    """What the media endpoints read of an HTTP request (Starlette's request has it)."""

    @property
    def path_params(self) -> Mapping[str, Any]: ...
    def stream(self) -> AsyncIterator[bytes]: ...


class MediaServices(Protocol):
    """What the media endpoints use of the app (the edge's ``AppState`` has it all)."""

    usage_store: UsageStore | None
    responses_store: ResponseStore | None
    media: MediaState
    token_estimator: TokenEstimator

    def client(self) -> UpstreamClient:
        """The upstream client (its HTTP pool serves the media calls too)."""
        ...


Endpoint = Callable[[MediaServices, CallRecord, MediaRequest], Awaitable[Answer]]


def _client(app: MediaServices, record: CallRecord) -> MediaClient:
    """A client for this call's media upstream; the 403 when no key may serve media."""
    access = media_access(record.settings, record.server)
    if access is None:
        raise no_media_key()
    pool = app.media.pool_for(access.keys)
    return MediaClient(app.client().http, access, pool, record.settings.auth_cooldown)


def serves_media(record: CallRecord) -> bool:
    """Whether this call's configuration has a key that may serve media."""
    return media_access(record.settings, record.server) is not None


def _note(record: CallRecord, model: str, client: MediaClient) -> None:
    record.client_model = model[:200]
    record.upstream = f"media:{client.access.label}"


def _json(body: Any) -> WholeAnswer:
    return WholeAnswer(body if isinstance(body, bytes) else _encode(body))


def error_answer(record: CallRecord, err: GlmbridgeError, door: FrontDoor | None = None) -> Answer:
    """``err`` in ``door``'s shape (OpenAI's by default), noted in the record."""
    door = door or door_for_protocol("openai")
    status, body = door.encode_error(err, request_id=record.request_id or None)
    headers = [(k.encode(), v.encode()) for k, v in door.error_headers(err).items()]
    record.failed(err.kind.value, err.status if isinstance(err, UpstreamError) else None)
    return WholeAnswer(body, status, headers)


async def _answered(
    record: CallRecord, request: MediaRequest, work: Callable[[], Awaitable[Answer]]
) -> Answer:
    """``work()``'s answer (cancelled if the client leaves; the body must have been read), or
    its error in OpenAI's shape."""
    try:
        return await unless_disconnected(record, request.receive, work)
    except GlmbridgeError as err:
        return error_answer(record, err)


async def images_generations(
    app: MediaServices, record: CallRecord, request: MediaRequest
) -> Answer:
    """``POST /v1/images/generations``."""
    settings = record.settings
    try:
        body = await read_model_body(request, settings)
        job = await off_loop(body, lambda: decode_image_request(body, settings.models))
        client = _client(app, record)
    except GlmbridgeError as err:
        return error_answer(record, err)

    async def work() -> Answer:
        _note(record, job.client_model, client)
        started = time.perf_counter()
        images = await make_images(client, job)  # round robin over the media keys
        record_images(app.usage_store, job, images, client.access.keys,
                      client="openai", route=record.path,
                      latency=time.perf_counter() - started)  # fmt: skip
        logger.info("request %s: %d image(s) on %s (%s), $%.3f each", record.request_id,
                    len(images), job.model.id, job.size, job.price_usd)  # fmt: skip
        items = [{"b64_json": i.b64} if i.b64 is not None else {"url": i.url} for i in images]
        filters = [f for i in images for f in i.content_filter]
        return _json(openai_images_body(items, filters, job=job))

    return await _answered(record, request, work)


async def images_edits(app: MediaServices, record: CallRecord, request: MediaRequest) -> Answer:
    """``POST /v1/images/edits`` (Codex's image tool sends edits here): a clear 400, since
    Z.ai's image models only generate from text."""
    err = ClientRequestError(
        "image editing is not supported: Z.ai's image models (glm-image, cogview-4) generate "
        "from text only; describe the whole image in a new prompt instead",
        kind=ErrorKind.INVALID_REQUEST,
    )
    return error_answer(record, err)


async def _video_fields(record: CallRecord, request: MediaRequest) -> dict[str, Any]:
    body = await read_model_body(request, record.settings)
    ctype = request.headers.get("content-type", "")
    if ctype.lower().startswith("multipart/form-data"):
        return await off_loop(body, lambda: decode_form(body, ctype))
    return decode_object(body)


async def videos_create(app: MediaServices, record: CallRecord, request: MediaRequest) -> Answer:
    """``POST /v1/videos``: the job, ``queued``."""
    try:
        job = decode_video_request(await _video_fields(record, request))
        client = _client(app, record)
    except GlmbridgeError as err:
        return error_answer(record, err)

    async def work() -> Answer:
        _note(record, job.client_model, client)
        task = await create_task(client, app.media.tasks, job)
        logger.info("request %s: video task %s created", record.request_id, task.id)
        return _json(video_object(task.id, job, created=task.created, expires=task.expires,
                                  result=None))  # fmt: skip

    return await _answered(record, request, work)


def _task(app: MediaServices, request: MediaRequest) -> Task:
    """The task the path names; a 404 for an id this gateway does not know."""
    video_id = str(request.path_params["video_id"])
    task: Task | None = app.media.tasks.get(video_id)
    if task is None:
        raise not_found(video_id)
    return task


async def videos_retrieve(app: MediaServices, record: CallRecord, request: MediaRequest) -> Answer:
    """``GET /v1/videos/{id}``: the job's state, polled on Z.ai with the key that made it."""

    async def work() -> Answer:
        client = _client(app, record)
        task = await poll_task(client, _task(app, request))
        return _json(video_object(task.id, task.job, created=task.created,
                                  expires=task.expires, result=task.result))  # fmt: skip

    return await _answered(record, request, work)


class FileAnswer:
    """A downloaded file relayed as it arrives; the download closes when it ends or the
    client leaves."""

    def __init__(self, ctype: str, chunks: AsyncIterator[bytes], stack: AsyncExitStack) -> None:
        self.ctype, self.chunks, self.stack = ctype, chunks, stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self.stack:
            headers = [(b"content-type", self.ctype.encode("latin-1"))]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            try:
                async for chunk in self.chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (GlmbridgeError, OSError):  # the upstream broke off, or the client left
                logger.info("a media download ended early")
                return
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def videos_content(app: MediaServices, record: CallRecord, request: MediaRequest) -> Answer:
    """``GET /v1/videos/{id}/content[?variant=thumbnail]``: the MP4 (or cover), streamed."""
    stack = AsyncExitStack()
    try:
        client = _client(app, record)
        task = _task(app, request)
        variant = request.query_params.get("variant", "video")
        ctype, chunks = await open_content(client, task, variant, stack)
    except GlmbridgeError as err:
        await stack.aclose()
        return error_answer(record, err)
    except BaseException:
        await stack.aclose()
        raise
    return FileAnswer(ctype, chunks, stack)


async def gemini_image(
    app: MediaServices, record: CallRecord, model: str, body: bytes, door: FrontDoor, *, sse: bool
) -> Answer:
    """A Gemini ``generateContent`` / ``streamGenerateContent`` that wants an image: one
    ``inlineData`` part (a stream is that one chunk, as SSE or a JSON array)."""
    try:
        job = gemini_image_job(body)
        client = _client(app, record)
        _note(record, model, client)
        started = time.perf_counter()
        images = await make_images(client, job, download=True)
        record_images(app.usage_store, job, images, client.access.keys,
                      client="gemini", route=record.path,
                      latency=time.perf_counter() - started)  # fmt: skip
        answer = gemini_image_answer(model, images[0].b64 or "", images[0].mime)
    except GlmbridgeError as err:
        return error_answer(record, err, door)
    if not record.path.endswith(":streamGenerateContent"):
        return _json(answer)
    if sse:
        return WholeAnswer(
            b"data: " + _encode(answer) + b"\r\n\r\n", media_type="text/event-stream"
        )
    return _json([answer])


_HD = {"high": "hd", "medium": "standard"}


async def responses_with_images(
    app: MediaServices, record: CallRecord, receive: Receive, raw: bytes, door: FrontDoor
) -> Answer:
    """``POST /v1/responses`` offering the hosted ``image_generation`` tool: the gateway runs
    it (:mod:`glmbridge_server.media.image_tool`); rounds go through the relay unchanged."""
    current = record.runtime
    settings = current.settings
    model = IMAGE_MODELS["glm-image"]
    try:
        plan = ImageToolPlan.from_body(raw)
        client = _client(app, record)
    except GlmbridgeError as err:
        return error_answer(record, err, door)
    thinking = None if settings.thinking == "auto" else ir.Thinking(type=settings.thinking)
    store = app.responses_store  # it resolves previous_response_id

    async def answer_round(body: bytes) -> bytes:
        decode = store.decode if store is not None else door.decode_request
        exchange = Exchange.from_request(
            door, decode(body), table=current.route_table, upstream=settings.upstream_profile,
            override=record.headers.model_override or None, thinking=thinking,
            estimator=app.token_estimator,
        )  # fmt: skip
        record.route_noted(exchange)
        answer = await relay.answer(record, exchange, receive)
        if not isinstance(answer, WholeAnswer) or answer.status_code != 200:
            raise UpstreamError("the client left during the turn", status_hint=499)
        return answer.body

    async def make_image(prompt: str, size: str | None) -> tuple[str, str]:
        job = ImageJob(prompt=prompt, model=model, client_model="image_generation",
                       size=snap_size(size, model),
                       quality=_HD.get(plan.quality, model.default_quality),  # type: ignore[arg-type]
                       response_format="b64_json")  # fmt: skip
        started = time.perf_counter()
        (image,) = await make_images(client, job, download=True)
        record_images(app.usage_store, job, [image], client.access.keys,
                      client="responses", route=record.path,
                      latency=time.perf_counter() - started)  # fmt: skip
        return image.b64 or "", job.size

    def done(finished: ImageToolPlan) -> None:  # one usage row: every round's tokens
        uncached, cached, output = finished.totals()
        record.usage = ir.Usage(input_tokens=uncached, cache_read_input_tokens=cached,
                                output_tokens=output)  # fmt: skip

    run = ImageToolRun(plan, answer_round, make_image, done)
    try:
        await run.first_round()
        if not plan.stream:
            return _json(await run.whole())
    except GlmbridgeError as err:
        return error_answer(record, err, door)
    return ImageToolStream(record, run, door)


#: The media endpoints: (method, path, endpoint); the edge routes them.
ENDPOINTS: tuple[tuple[str, str, Endpoint], ...] = (
    ("POST", "/v1/images/generations", images_generations),
    ("POST", "/v1/images/edits", images_edits),
    ("POST", "/v1/videos", videos_create),
    ("GET", "/v1/videos/{video_id}", videos_retrieve),
    ("GET", "/v1/videos/{video_id}/content", videos_content),
)
