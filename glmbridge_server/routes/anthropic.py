"""The Anthropic front door: ``/v1/messages``, ``/v1/messages/count_tokens``, ``/v1/models``.

Flow of one ``POST /v1/messages``: read the body (bounded) → ``anthropic.decode_request``
→ ``resolve_route`` → ``openai.request_from_ir`` → upstream. A non-streamed answer is
converted whole. A streamed answer is read until the first upstream event has produced
client bytes; only then are the ``200`` and the ``text/event-stream`` headers sent, so an
upstream error before that point is still a real HTTP status. After it, failures become
an Anthropic ``error`` event. :class:`AnthropicStreamResponse` relays the rest, sends
``ping`` frames while the upstream is idle, and closes the upstream response the moment the
client goes away.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpx2
import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from glmbridge import ir
from glmbridge.errors import (
    ClientRequestError,
    ErrorKind,
    GlmbridgeError,
    UpstreamError,
    UpstreamProtocolError,
)
from glmbridge.pipeline import GlmToAnthropicStream
from glmbridge.protocols import anthropic
from glmbridge.protocols import openai as glm_wire
from glmbridge.routing import Route as ModelRoute
from glmbridge.routing import RouteTable, resolve_route
from glmbridge_server.keypool import session_id_from
from glmbridge_server.routes import error_response, read_body, request_id, runtime
from glmbridge_server.settings import MOCK_UPSTREAM_PATH
from glmbridge_server.upstream import (
    UpstreamClient,
    UpstreamReply,
    backoff_delay,
    map_upstream_errors,
)

__all__ = ["AnthropicStreamResponse", "build_model_catalog", "routes"]

logger = logging.getLogger("glmbridge.server")

_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_TOKENIZER_TIMEOUT = httpx2.Timeout(5.0, read=15.0)


class _Prepared(msgspec.Struct, kw_only=True):
    """A decoded, routed request ready for the upstream."""

    request: ir.Request
    route: ModelRoute
    payload: bytes
    session_id: str | None


async def _prepare(request: Request, *, count_only: bool = False) -> _Prepared:
    current = runtime(request)
    settings = current.settings
    body = await read_body(request, settings.max_body_bytes)
    if count_only:
        req = anthropic.decode_count_tokens_request(body)
    else:
        req = anthropic.decode_request(body)
    if req.thinking is None and settings.thinking != "auto":
        req = msgspec.structs.replace(req, thinking=ir.Thinking(type=settings.thinking))
    override = request.headers.get("x-glmbridge-model") or None
    route = resolve_route(req, current.route_table, override=override)
    wire = glm_wire.request_from_ir(req, model=route.model, spec=route.spec)
    state = request.scope.setdefault("state", {})
    state.update(client_model=req.model, routed_model=route.model, stream=req.stream)
    logger.debug("route %s -> %s (%s)", req.model, route.model, route.reason)
    # Prompts are for debugging only: never above DEBUG.
    logger.debug("request %s body: %s", state.get("request_id"), _preview(body))
    session = session_id_from(request.headers.get("x-claude-code-session-id"), req.user_id)
    return _Prepared(
        request=req, route=route, payload=glm_wire.encode_request(wire), session_id=session
    )


def _upstream_base(request: Request) -> str | None:
    """In mock mode the upstream is this very server's ``/_mock`` mount."""
    if not runtime(request).settings.mock:
        return None
    host, port = request.scope.get("server") or ("127.0.0.1", 80)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{MOCK_UPSTREAM_PATH}"


async def messages(request: Request) -> Response:
    """``POST /v1/messages`` (``?beta=true`` accepted and ignored)."""
    try:
        prepared = await _prepare(request)
        answer = _open_stream if prepared.request.stream else _complete
        return await _unless_disconnected(request, answer, prepared)
    except GlmbridgeError as err:
        return error_response(err, request)


async def _unless_disconnected(
    request: Request,
    answer: Callable[[Request, _Prepared], Awaitable[Response]],
    prepared: _Prepared,
) -> Response:
    """Run ``answer`` (upstream call up to the first output), cancelling it the moment the
    client disconnects, so a queued or slow upstream request is dropped at once too.

    The body has been read, so the next ASGI message can only be ``http.disconnect``.
    """
    result: Response | None = None
    error: GlmbridgeError | None = None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            request.scope.setdefault("state", {})["disconnected"] = True
            tg.cancel_scope.cancel()

        async def run() -> None:
            nonlocal result, error
            try:
                result = await answer(request, prepared)
            except GlmbridgeError as exc:  # carried out of the task group unwrapped
                error = exc
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        tg.start_soon(run)
    if error is not None:
        raise error
    return result if result is not None else Response(status_code=499)


async def _retry_in_band(request: Request, err: UpstreamError, attempt: int) -> bool:
    """Whether to retry an error found in a 200 body before anything reached the client.

    ``UpstreamClient`` retries failed HTTP exchanges; this covers answers that fail in-band
    (``finish_reason: network_error`` with no output yet), with the same budget and backoff.
    """
    upstream: UpstreamClient = request.app.state.upstream
    if not err.retryable or attempt > runtime(request).settings.max_retries:
        return False
    delay = backoff_delay(attempt, upstream.rng, err.retry_after)
    if upstream.metrics is not None:
        upstream.metrics.retry("in_band")
    logger.warning(
        "upstream answer failed before any output (%s); retrying in %.2f s", err.message, delay
    )
    await upstream.sleep(delay)
    return True


async def _complete(request: Request, prepared: _Prepared) -> Response:
    """The non-streamed answer."""
    attempt = 0
    while True:
        attempt += 1
        reply = await _send_chat(request, prepared, stream=False)
        try:
            response = glm_wire.response_to_ir(reply.response.content, model=prepared.request.model)
        except UpstreamError as err:
            if await _retry_in_band(request, err, attempt):
                continue
            raise
        _record_usage(request, response.usage)
        body = anthropic.encode_response(response)
        logger.debug("request %s answer: %s", request_id(request), _preview(body))
        return Response(body, media_type="application/json")


async def _send_chat(request: Request, prepared: _Prepared, *, stream: bool) -> UpstreamReply:
    """One upstream chat call with this request's settings; notes key and status for the log."""
    upstream: UpstreamClient = request.app.state.upstream
    reply = await upstream.send(
        "/chat/completions",
        prepared.payload,
        stream=stream,
        session_id=prepared.session_id,
        base_url=_upstream_base(request),
        settings=runtime(request).settings,
    )
    state = request.scope["state"]
    state.update(key_index=reply.key_index, upstream_status=reply.response.status_code)
    state["upstream_attempts"] = state.get("upstream_attempts", 0) + reply.attempts
    return reply


def _preview(data: bytes, limit: int = 4096) -> str:
    """The start of a body for a DEBUG line (prompts and answers are never logged above it)."""
    text = data[:limit].decode("utf-8", "replace")
    return text if len(data) <= limit else f"{text}… ({len(data)} bytes)"


async def _open_stream(request: Request, prepared: _Prepared) -> Response:
    """Open the upstream stream and read it until the client would see output."""
    estimate = request.app.state.token_estimator.request_tokens(prepared.request)
    attempt = 0
    while True:
        attempt += 1
        reply = await _send_chat(request, prepared, stream=True)
        pipeline = GlmToAnthropicStream(
            model=prepared.request.model, input_tokens_estimate=estimate
        )
        # One iterator for the whole body: the relay continues where this read stopped.
        # We ask for identity encoding; the raw iterator skips httpx2's decoder layer
        # on every chunk unless the upstream compressed anyway.
        encoding = reply.response.headers.get("content-encoding", "identity").lower()
        response = reply.response
        chunks = response.aiter_raw() if encoding == "identity" else response.aiter_bytes()
        try:
            first = await _read_first_output(chunks, pipeline)
        except UpstreamError as err:
            await _close_quietly(reply.response, chunks)
            if await _retry_in_band(request, err, attempt):
                continue
            raise
        except BaseException:
            await _close_quietly(reply.response, chunks)
            raise
        return AnthropicStreamResponse(
            first,
            reply.response,
            chunks,
            pipeline,
            ping_interval=runtime(request).settings.ping_interval,
        )


async def _read_first_output(chunks: AsyncIterator[bytes], pipeline: GlmToAnthropicStream) -> bytes:
    """Feed upstream bytes to the pipeline until it produces client bytes (or ends)."""
    with map_upstream_errors():
        async for chunk in chunks:
            out = pipeline.feed(chunk)
            if pipeline.started:
                return out
    out = pipeline.flush()
    if not pipeline.started:
        raise UpstreamProtocolError("the upstream closed the stream without any event")
    return out


async def _close_quietly(
    response: httpx2.Response, chunks: AsyncIterator[bytes] | None = None
) -> None:
    """Close the upstream response (and its body iterator) at once, even when cancelled."""
    # Shielded: this runs while the request is being cancelled (client gone).
    with anyio.CancelScope(shield=True), contextlib.suppress(httpx2.HTTPError):
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        await response.aclose()  # the connection is being discarded anyway


class AnthropicStreamResponse(Response):
    """Relays a started GLM stream to the client as Anthropic SSE.

    Three concurrent duties, one task group: relay upstream chunks through the pipeline,
    send a ``ping`` frame whenever nothing was sent for ``ping_interval`` seconds, and
    watch for the client disconnecting (which cancels everything and closes the upstream).
    """

    media_type = "text/event-stream"
    charset = "utf-8"

    def __init__(
        self,
        first: bytes,
        upstream: httpx2.Response,
        chunks: AsyncIterator[bytes],
        pipeline: GlmToAnthropicStream,
        *,
        ping_interval: float,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers(_SSE_HEADERS)  # no body attribute: no content-length
        self._first = first
        self._upstream = upstream
        self._chunks = chunks
        self._pipeline = pipeline
        self._ping_interval = ping_interval
        # Relay and pinger share `send`. The event loop only switches tasks at an await,
        # so two flags replace a lock on the hot path: the pinger skips while the relay is
        # sending, and the relay waits (rarely) for a ping that is being sent.
        self._relay_sending = False
        self._ping_sent: anyio.Event | None = None
        self._last_send = time.monotonic()
        self._complete = False
        self._first_token_seen = False

    def _note_first_token(self, state: dict[str, Any]) -> None:
        """Record the time to the first content token (once) for the log and metrics."""
        if self._pipeline.first_output and not self._first_token_seen:
            self._first_token_seen = True
            started = state.get("started")
            if started is not None:
                state["ttft"] = time.perf_counter() - started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_disconnect, receive, tg.cancel_scope, state)
                await send(
                    {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                )
                await self._send(send, self._first)
                self._note_first_token(state)
                tg.start_soon(self._ping, send)
                await self._relay(send, state)
                self._complete = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        except* OSError:
            state["disconnected"] = True  # ASGI >= 2.4 servers report a gone client this way
        finally:
            await _close_quietly(self._upstream, self._chunks)
            if self._pipeline.usage is not None:
                state["usage"] = self._pipeline.usage

    async def _send(self, send: Send, data: bytes) -> None:
        while self._ping_sent is not None:
            await self._ping_sent.wait()
        self._relay_sending = True
        try:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        finally:
            self._relay_sending = False
        self._last_send = time.monotonic()

    async def _relay(self, send: Send, state: dict[str, Any]) -> None:
        pipeline = self._pipeline
        try:
            with map_upstream_errors():
                async for chunk in self._chunks:
                    out = pipeline.feed(chunk)
                    if out:
                        await self._send(send, out)
                        if not self._first_token_seen:
                            self._note_first_token(state)
                    if pipeline.error is not None:
                        break  # an error event is terminal; stop reading
            if pipeline.error is None:
                await self._send(send, pipeline.flush())
        except GlmbridgeError as err:
            logger.warning("upstream stream failed after the response started: %s", err.message)
            await self._send(send, anthropic.error_event(err))
            state["error_type"] = err.kind.value
            return
        if pipeline.error is not None:
            state["error_type"] = pipeline.error.kind.value

    async def _ping(self, send: Send) -> None:
        interval = self._ping_interval
        while True:
            await anyio.sleep(max(0.0, self._last_send + interval - time.monotonic()))
            if self._relay_sending or time.monotonic() - self._last_send < interval:
                continue  # data went out meanwhile (or is going out now): no ping needed
            done = self._ping_sent = anyio.Event()
            try:
                await send({"type": "http.response.body", "body": _PING, "more_body": True})
            finally:
                self._ping_sent = None
                done.set()
            self._last_send = time.monotonic()

    async def _watch_disconnect(
        self, receive: Receive, scope: anyio.CancelScope, state: dict[str, Any]
    ) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self._complete:
            state["disconnected"] = True
            scope.cancel()


def _record_usage(request: Request, usage: ir.Usage | None) -> None:
    if usage is not None:
        request.scope.setdefault("state", {})["usage"] = usage


async def count_tokens(request: Request) -> Response:
    """``POST /v1/messages/count_tokens``: Z.ai's tokenizer when available, else an estimate."""
    try:
        prepared = await _prepare(request, count_only=True)
        count = await _upstream_token_count(request, prepared)
        if count is None:
            count = request.app.state.token_estimator.request_tokens(prepared.request)
        return JSONResponse({"input_tokens": count})
    except GlmbridgeError as err:
        return error_response(err, request)


async def _upstream_token_count(request: Request, prepared: _Prepared) -> int | None:
    """Ask ``{base}/tokenizer``; ``None`` means "use the local estimate"."""
    state = request.app.state
    settings = runtime(request).settings
    upstream: UpstreamClient = state.upstream
    base = _upstream_base(request) or settings.upstream_base_url
    mode = settings.count_tokens
    if mode == "local" or (mode == "auto" and (base in state.tokenizer_unavailable)):
        return None
    if mode == "auto" and not settings.mock and len(upstream.keys) == 0:
        return None
    wire = msgspec.json.decode(prepared.payload)
    body = {k: wire[k] for k in ("model", "messages", "tools") if k in wire}
    try:
        reply = await upstream.send(
            "/tokenizer",
            msgspec.json.encode(body),
            stream=False,
            session_id=prepared.session_id,
            base_url=base,
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
    if isinstance(failure, UpstreamError) and failure.status in (404, 405):
        state.tokenizer_unavailable.add(base)  # this upstream has no tokenizer: stop asking
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


def build_model_catalog(table: RouteTable) -> dict[str, dict[str, str]]:
    """Anthropic ``ModelInfo`` objects for the claude aliases and the GLM models, by id.

    A claude alias's display name says which GLM model it is routed to, so a model picker
    shows the truth.
    """
    catalog: dict[str, dict[str, str]] = {}
    for model_id, name, released in _CLAUDE_MODELS:
        try:
            target = resolve_route(ir.Request(model=model_id, messages=[]), table).model
            name = f"{name} (GLM: {target})"
        except GlmbridgeError:
            pass
        catalog[model_id] = _model_info(model_id, name, released)
    glm_ids = [*table.models, table.default_model, *(target for _, target in table.aliases)]
    for model_id in glm_ids:
        spec = table.models.get(model_id)
        name = (spec.display_name if spec else None) or model_id.upper()
        catalog.setdefault(model_id, _model_info(model_id, name, _GLM_RELEASED))
    return catalog


def _model_info(model_id: str, name: str, released: str) -> dict[str, str]:
    return {
        "type": "model",
        "id": model_id,
        "display_name": name,
        "created_at": f"{released}T00:00:00Z",
    }


def _page(catalog: dict[str, dict[str, str]], params: Any) -> dict[str, Any]:
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
    """``GET /v1/models`` in Anthropic's paginated list shape."""
    try:
        return JSONResponse(_page(runtime(request).model_catalog, request.query_params))
    except ClientRequestError as err:
        return error_response(err, request)


async def models_show(request: Request) -> Response:
    """``GET /v1/models/{model_id}``; unknown ids get ``404 not_found_error``."""
    model_id = request.path_params["model_id"]
    info = runtime(request).model_catalog.get(model_id)
    if info is None:
        err = ClientRequestError(f"model: {model_id!r} not found", kind=ErrorKind.NOT_FOUND)
        return error_response(err, request)
    return JSONResponse(info)


routes = [
    Route("/v1/messages", messages, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    Route("/v1/models", models_index, methods=["GET"]),
    Route("/v1/models/{model_id:path}", models_show, methods=["GET"]),
]
