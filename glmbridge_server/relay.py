"""The server's one driver of :class:`glmbridge.exchange.Exchange`: every front door's
answer goes through here, whatever upstream the route names.

Non-streamed: the upstream call (with :class:`~glmbridge_server.upstream.UpstreamClient`'s
retries and key failover), in-band errors retried with the same budget, the client's body
from :meth:`Exchange.complete`; the whole wait is bounded by ``first_output_timeout``.

Streamed (:class:`StreamRelay`, an ASGI response that owns the whole exchange):

* **Late commit, bounded.** The ``200`` and the stream headers go out with the first
  client bytes, so an upstream failure before them is still a real HTTP status. But a
  client is never left in silence: if no output has come after ``commit_after``
  seconds, or as soon as the request has to wait in the key-slot queue (traffic
  control), the relay commits anyway, sends the door's start event
  (:meth:`ExchangeStream.preamble`; Anthropic's own API sends ``message_start`` at once)
  and keep-alives every ``ping_interval``; later failures become error events.
* **First output within ``first_output_timeout``** of the request, separate from the
  idle timeout between chunks (httpx2's read timeout). A timeout is never retried: the
  upstream may already be generating, and billing, that answer.
* **Retries before content.** An error the upstream reports in-band before any content
  (``network_error``, an ``error`` event) is retried like a failed HTTP exchange; after
  an early commit the retry continues the same client stream.
* **A finished answer stays finished.** Once the door's final event has gone out the
  response ends at once, without waiting for the upstream's EOF; whatever the upstream
  does next (reset, timeout, garbage) is logged at debug and dropped. Only then is the
  rest of the upstream body read, for at most ``_DRAIN_SECONDS`` and ``_DRAIN_BYTES``,
  so that its connection can go back to the pool (a TLS handshake per turn otherwise).
* **The client leaving** cancels everything, the upstream request included.
* **The server stopping** (``app.state.stopping``, set on Ctrl-C or SIGTERM) ends every
  open answer at once with an ``overloaded`` error: an error event in a started stream, a
  native error status before it; the upstream request is cancelled.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpx2
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from glmbridge.errors import (
    ErrorKind,
    GlmbridgeError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from glmbridge.exchange import Exchange, ExchangeStream
from glmbridge.fallback import chain, qualifies
from glmbridge.priority import PRIORITY_HEADER, classify
from glmbridge.routing import Route
from glmbridge.served import ServedModelScanner, served_model
from glmbridge.transport.boundary import map_upstream_errors
from glmbridge_server.keypool import session_id_from
from glmbridge_server.model_follower import note_served
from glmbridge_server.routes import request_id, runtime
from glmbridge_server.scheduler import QueueTimeout, Ticket
from glmbridge_server.settings import MOCK_MOUNT, Settings
from glmbridge_server.upstream import UpstreamClient, UpstreamReply, backoff_delay

__all__ = ["StreamRelay", "answer", "preview", "upstream_url"]

logger = logging.getLogger("glmbridge.server")

_SSE_HEADERS = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
_FIRST_OUTPUT = "timed out waiting for the upstream's first output (first_output_timeout)"
_STOPPING = "glmbridge is shutting down; this answer was cut short (retry once it is back)"
# After the answer: how long and how much of the upstream's epilogue (the chunked-body
# terminator, normally already in flight) is read to keep its connection reusable.
_DRAIN_SECONDS = 1.0
_DRAIN_BYTES = 64 * 1024


def upstream_url(request: Request, exchange: Exchange) -> str:
    """The exchange's URL; in mock mode, this very server's simulator under ``/_mock``."""
    if not runtime(request).settings.mock:
        return exchange.url
    host, port = request.scope.get("server") or ("127.0.0.1", 80)
    host = f"[{host}]" if ":" in host else host
    path = urlsplit(exchange.route.upstream.base_url).path
    return f"http://{host}:{port}{MOCK_MOUNT}{path}{exchange.codec.path}"


class _Call:
    """What one exchange needs from the app: the client, settings, and the request's state."""

    def __init__(self, request: Request, exchange: Exchange) -> None:
        self.request = request
        self.exchange = exchange
        self.upstream: UpstreamClient = request.app.state.upstream
        self.settings: Settings = runtime(request).settings
        self.state: dict[str, Any] = request.scope.setdefault("state", {})
        self.url = upstream_url(request, exchange)
        self.session = session_id_from(
            request.headers.get("x-claude-code-session-id"), exchange.request.user_id
        )
        self.deadline = time.monotonic() + self.settings.first_output_timeout
        headers = request.headers
        priority, rule = classify(
            exchange.request,
            header=headers.get(PRIORITY_HEADER),
            claude_code="x-claude-code-session-id" in headers,
        )
        self.ticket = Ticket(priority)
        self.first_route = exchange.route
        self._fallbacks: list[Route] | None = None
        self.state["priority"] = priority.name.lower()
        logger.debug("request %s is %s (%s)", request_id(request), priority.name.lower(), rule)
        # Upstreams echo keys in errors, also inside a 200: the exchange scrubs them all.
        token = self.settings.auth_token
        exchange.secrets = (*self.settings.api_keys, *((token,) if token else ()))
        # What replaces the exchange when its first call fails (a vision route whose model
        # cannot be used: glmbridge_server.vision_fallback); used once.
        self.fallback: Callable[[UpstreamError], Awaitable[Exchange | None]] | None = None

    async def fall_back(self, err: GlmbridgeError) -> bool:
        """Whether ``err`` (before the client got a byte) was answered by switching to
        another exchange: the vision fallback first (once), else the next route of the
        fallback chain."""
        fallback, self.fallback = self.fallback, None
        if fallback is not None and isinstance(err, UpstreamError):
            twin = await fallback(err)
            if twin is not None:
                self.exchange = twin
                self.url = upstream_url(self.request, twin)
                return True
        return self._next_route(err)

    async def send(self) -> UpstreamReply:
        """One upstream call (with the client's own retries); notes key and status."""
        ex = self.exchange
        state = self.state
        try:
            reply = await self.upstream.send(
                self.url,
                ex.body,
                headers=ex.headers,
                decode_error=lambda status, body, retry: ex.decode_error(
                    status, body, retry_after=retry
                ),
                stream=ex.stream,
                session_id=self.session,
                settings=self.settings,
                ticket=self.ticket,
            )
        except QueueTimeout:
            state["queue_timeout"] = True
            state["queue_wait_ms"] = round(self.ticket.waited * 1000, 1)
            raise
        state.update(key_index=reply.key_index, upstream_status=reply.response.status_code)
        state["upstream_attempts"] = state.get("upstream_attempts", 0) + reply.attempts
        if self.ticket.waited:
            state["queue_wait_ms"] = round(self.ticket.waited * 1000, 1)
        return reply

    def pause_clock_while_queued(self, scope: anyio.CancelScope) -> None:
        """Stop ``scope``'s first-output deadline while the request waits for a slot."""
        left: float | None = None  # the clock's remaining time while it is paused

        def queued() -> None:
            nonlocal left
            if left is None:
                left, scope.deadline = scope.deadline - anyio.current_time(), math.inf

        def granted(waited: float) -> None:
            nonlocal left
            if left is not None:
                scope.deadline, left = anyio.current_time() + left, None

        self.ticket.on_queue, self.ticket.on_grant = queued, granted

    async def retry_in_band(self, err: UpstreamError, attempt: int) -> bool:
        """Whether to retry an error the upstream reported in-band before any content."""
        if not err.retryable or attempt > self.settings.max_retries:
            return False
        delay = backoff_delay(attempt, self.upstream.rng, err.retry_after)
        if self.upstream.metrics is not None:
            self.upstream.metrics.retry("in_band")
        logger.warning(
            "upstream answer failed before any output (%s); retrying in %.2f s",
            err.message,
            delay,
        )
        await self.upstream.sleep(delay)
        return True

    def timeout(self) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(_FIRST_OUTPUT, retryable=False)

    def _next_route(self, err: GlmbridgeError) -> bool:
        """Switch to the next route of the fallback chain if ``err`` qualifies (only ever
        called before the client got a byte); ``False``: no (more) fallback."""
        if not qualifies(err):
            return False
        ex = self.exchange
        if self._fallbacks is None:
            self._fallbacks = chain(
                ex.request, ex.route, runtime(self.request).route_table, self.settings.fallbacks
            )
        if not self._fallbacks:
            return False
        route = self._fallbacks.pop(0)
        new = Exchange(ex.door, ex.request, route, input_estimate=ex.input_estimate,
                       message_id=ex.message_id)  # fmt: skip
        new.secrets, new.on_complete = ex.secrets, ex.on_complete
        logger.warning("falling back from %s (%s) to %s (%s) after: %s", ex.route.model,
                       ex.route.upstream.name, route.model, route.upstream.name,
                       err.message)  # fmt: skip
        self.exchange, self.url = new, upstream_url(self.request, new)
        first = self.first_route
        self.state.update(
            routed_model=route.model,
            upstream=route.upstream.name,
            fallback=f"{first.model}@{first.upstream.name}",
        )
        return True

    def note_served(self, model: str | None) -> None:
        """The model the upstream's answer names (the truth: the Coding Plan answers legacy
        ids with another model); recorded and learned from."""
        note_served(self.request.app.state, self.state, model)

    def served_headers(self) -> list[tuple[bytes, bytes]]:
        """Which model and profile answered, the id sent for it, and what it fell back from
        (if it did). Before the answer names its model (a stream committed early), the
        model the router expects to serve it."""
        route, first = self.exchange.route, self.first_route
        served = self.state.get("served_model") or route.spec.id
        out = [
            (b"x-glmbridge-served-model", _header_value(served)),
            (b"x-glmbridge-routed-model", _header_value(route.model)),
            (b"x-glmbridge-served-upstream", _header_value(route.upstream.name)),
        ]
        if route is not first:
            origin = f"{first.model}@{first.upstream.name}"
            out.append((b"x-glmbridge-fallback-from", _header_value(origin)))
        return out

    async def wait_stopping(self) -> None:
        """Return when the server starts to shut down (never, outside a lifespan)."""
        await wait_stopping(self.request)


async def wait_stopping(request: Request) -> None:
    """Return when the server starts to shut down (never, outside a lifespan)."""
    stopping: anyio.Event | None = getattr(request.app.state, "stopping", None)
    await (stopping.wait() if stopping is not None else anyio.sleep_forever())


def shutting_down() -> UpstreamError:
    """The error an answer ends with when the server stops before it is complete."""
    # Not the upstream's failure, but the same for the client: the answer could not be
    # completed here, and retrying (elsewhere, or once the server is back) may work.
    return UpstreamError(_STOPPING, kind=ErrorKind.OVERLOADED, status_hint=503, retryable=True)


async def answer(request: Request, exchange: Exchange) -> Response:
    """Answer ``exchange``: a :class:`StreamRelay`, or the complete non-streamed body.

    Raises:
        GlmbridgeError: the non-streamed call failed (the route renders it natively).
    """
    from glmbridge_server import server_tools, vision_fallback  # they import this module

    exchange = await vision_fallback.prepare(request, exchange)  # images for a blind model
    loop = server_tools.loop_for(request, exchange)
    if loop is not None:  # web search: the gateway runs the tool loop
        return await server_tools.answer(request, exchange, loop)
    call = _Call(request, exchange)
    call.fallback = vision_fallback.fallback_for(request, exchange)
    if exchange.stream:
        return StreamRelay(call)
    return await _unless_disconnected(request, lambda: _complete(call), call.wait_stopping)


async def _complete(call: _Call) -> Response:
    with anyio.move_on_after(max(0.0, call.deadline - time.monotonic())) as scope:
        call.pause_clock_while_queued(scope)
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = await call.send()  # retried inside; then the fallbacks
            except UpstreamError as err:
                if not await call.fall_back(err):
                    raise
                attempt = 0
                continue
            try:
                body = call.exchange.complete(reply.response.content)
            except UpstreamError as err:  # in-band: retried here, then the fallback chain
                if await call.retry_in_band(err, attempt):
                    continue
                if not await call.fall_back(err):
                    raise
                attempt = 0
                continue
            call.note_served(served_model(reply.response.content))
            if call.exchange.usage is not None:
                call.state["usage"] = call.exchange.usage
            logger.debug("request %s answer: %s", request_id(call.request), preview(body))
            response = Response(body, media_type="application/json")
            response.raw_headers.extend(call.served_headers())
            return response
    assert scope.cancelled_caught
    raise call.timeout()


async def _unless_disconnected(
    request: Request,
    work: Callable[[], Awaitable[Response]],
    stopping: Callable[[], Awaitable[None]],
) -> Response:
    """Run ``work``, cancelling it (and its upstream call) the moment the client leaves, or
    with an ``overloaded`` error when the server starts to shut down.

    The body has been read, so the next ASGI message can only be ``http.disconnect``.
    """
    result: Response | None = None
    error: GlmbridgeError | None = None
    async with anyio.create_task_group() as tg:

        async def stop() -> None:
            nonlocal error
            await stopping()
            error = shutting_down()
            tg.cancel_scope.cancel()

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            request.scope.setdefault("state", {})["disconnected"] = True
            tg.cancel_scope.cancel()

        async def run() -> None:
            nonlocal result, error
            try:
                result = await work()
            except GlmbridgeError as exc:  # carried out of the task group unwrapped
                error = exc
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        tg.start_soon(stop)
        tg.start_soon(run)
    if error is not None:
        raise error
    return result if result is not None else Response(status_code=499)


def preview(data: bytes, limit: int = 4096) -> str:
    """The start of a body for a DEBUG line (prompts and answers are never logged above it)."""
    text = data[:limit].decode("utf-8", "replace")
    return text if len(data) <= limit else f"{text}… ({len(data)} bytes)"


def _chunks_of(response: httpx2.Response) -> AsyncIterator[bytes]:
    # We ask for identity encoding; the raw iterator skips httpx2's decoder layer on
    # every chunk unless the upstream compressed anyway.
    encoding = response.headers.get("content-encoding", "identity").lower()
    return response.aiter_raw() if encoding == "identity" else response.aiter_bytes()


async def _close_quietly(
    response: httpx2.Response | None, chunks: AsyncIterator[bytes] | None = None
) -> None:
    """Close the upstream response (and its body iterator) at once, even when cancelled."""
    if response is None:
        return
    # Shielded: this runs while the request is being cancelled (client gone).
    with anyio.CancelScope(shield=True), contextlib.suppress(httpx2.HTTPError):
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        await response.aclose()  # the connection is being discarded anyway


class StreamRelay(Response):
    """A streamed answer: the upstream call, the late (but bounded) commit, the relay,
    keep-alives and cancellation, in one task group (see the module docstring)."""

    def __init__(self, call: _Call) -> None:
        self.status_code = 200
        self.background = None
        self._call = call
        self._send: Send | None = None
        self._stream: ExchangeStream | None = None
        self._committed = False  # the response has started (200 stream, or an error status)
        self._sse = False  # ... as a 200 stream
        self._done = False
        self._commit_due = False  # commit_after has passed
        # The relay and the pinger share `send`. The event loop only switches tasks at an
        # await, so two flags replace a lock on the hot path: the pinger skips while the
        # relay is sending, and the relay waits (rarely) for a ping being sent.
        self._relay_sending = False
        self._ping_sent: anyio.Event | None = None
        self._last_send = time.monotonic()
        self._upstream: httpx2.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._leftover: tuple[httpx2.Response, AsyncIterator[bytes]] | None = None
        self._release: Callable[[], None] = _no_release  # the leftover's key slot
        self._wake = anyio.Event()  # the keep-alive loop: commit now (queued)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._send = send
        state = self._call.state
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_disconnect, receive, tg.cancel_scope)
                tg.start_soon(self._keep_alive)
                with anyio.CancelScope() as work:
                    tg.start_soon(self._watch_stopping, work)
                    await self._run()
                if work.cancel_called:
                    await self._fail(shutting_down())
                self._done = True
                if self._committed:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
            await self._drain()  # the client has its whole answer already
        except* OSError:
            state["disconnected"] = True  # ASGI >= 2.4 servers report a gone client this way
        finally:
            await _close_quietly(self._upstream, self._chunks)
            if self._leftover is not None:
                await _close_quietly(*self._leftover)
            self._release()
            stream = self._stream
            if stream is not None and stream.usage is not None:
                state["usage"] = stream.usage

    # -- the exchange ----------------------------------------------------------------------

    async def _run(self) -> None:
        call = self._call
        failure: GlmbridgeError | None = None
        with anyio.CancelScope(deadline=_loop_deadline(call.deadline)) as first_output:
            try:
                await self._attempts(first_output)
            except GlmbridgeError as err:
                failure = err
        if first_output.cancelled_caught:
            failure = call.timeout()
        if failure is not None:
            await self._fail(failure)

    async def _attempts(self, first_output: anyio.CancelScope) -> None:
        call = self._call
        call.pause_clock_while_queued(first_output)
        paused = call.ticket.on_queue

        def queued() -> None:  # waiting for a slot: commit and ping now, not in 5 s
            if paused is not None:
                paused()
            self._commit_due = True
            self._wake.set()

        call.ticket.on_queue = queued
        attempt = 0
        while True:
            attempt += 1
            stream = self._stream = call.exchange.open_stream(preamble_sent=self._sse)
            await self._early_commit()
            try:
                reply = await call.send()
            except UpstreamError as err:
                if self._committed or not await call.fall_back(err):  # never after a byte
                    raise
                attempt = 0
                continue  # a new exchange, a new stream machine
            self._upstream, self._chunks = reply.response, _chunks_of(reply.response)
            release = reply.release  # the key slot: held until the upstream's answer is read
            try:
                await self._relay(stream, first_output)
                if stream.finished:  # read the epilogue later, once the client is served
                    self._leftover = (reply.response, self._chunks)
                    self._upstream = self._chunks = None
                    self._release, release = release, _no_release
                return
            except UpstreamError as err:
                if stream.content_started:
                    raise
                if await call.retry_in_band(err, attempt):
                    continue
                if self._committed or not await call.fall_back(err):
                    raise
                attempt = 0
            finally:
                await _close_quietly(self._upstream, self._chunks)
                self._upstream = self._chunks = None
                release()

    async def _relay(self, stream: ExchangeStream, first_output: anyio.CancelScope) -> None:
        assert self._chunks is not None
        waiting = True  # for the first content: the first-output deadline applies
        scanner = ServedModelScanner()  # the model the answer names, in its first bytes
        try:
            with map_upstream_errors():
                async for chunk in self._chunks:
                    if not scanner.done:
                        self._call.note_served(scanner.feed(chunk))
                    out = stream.feed(chunk)
                    if waiting and stream.content_started:
                        first_output.deadline = math.inf
                        waiting = False
                    if out:
                        await self._emit(out)
                        self._note_first_token(stream)
                    if stream.finished:
                        return  # the answer is complete: don't wait for the upstream's EOF
                out = stream.flush()
        except GlmbridgeError as err:
            if not stream.content_started:
                raise  # before content: a status, or a retry, decides
            answered = stream.answered
            out = stream.fail(err)
            if answered:  # only the upstream's epilogue was lost: the answer is complete
                logger.debug("upstream failed after its final event: %s", err.message)
            else:
                logger.warning("upstream stream failed after the response started: %s",
                               err.message)  # fmt: skip
                self._call.state["error_type"] = err.kind.value
        if not stream.started and not self._committed:
            raise UpstreamProtocolError("the upstream closed the stream without any event")
        await self._emit(out)
        if stream.error is not None:
            self._call.state["error_type"] = stream.error.kind.value

    async def _fail(self, err: GlmbridgeError) -> None:
        """An error before any content: a native status, or an error event after a commit."""
        state = self._call.state
        state["error_type"] = err.kind.value
        if isinstance(err, UpstreamError) and err.status is not None:
            state["upstream_status"] = err.status
        if self._sse:
            stream = self._stream
            door = self._call.exchange.door
            await self._emit(stream.fail(err) if stream else door.error_event(err))
            return
        status, headers, body = self._call.exchange.error_response(
            err, request_id=request_id(self._call.request)
        )
        assert self._send is not None
        raw = [(b"content-type", b"application/json")]
        raw += [(k.encode(), v.encode()) for k, v in headers.items()]
        self._committed = True
        await self._send({"type": "http.response.start", "status": status, "headers": raw})
        await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def _drain(self) -> None:
        """Read what the upstream still sends after the answer, briefly, then close it."""
        leftover, self._leftover = self._leftover, None
        if leftover is None:
            return
        response, chunks = leftover
        size = 0
        try:
            with anyio.move_on_after(_DRAIN_SECONDS), map_upstream_errors():
                async for chunk in chunks:
                    size += len(chunk)
                    if size > _DRAIN_BYTES:
                        break
        except GlmbridgeError as err:
            logger.debug("upstream epilogue not read: %s", err.message)
        finally:
            await _close_quietly(response, chunks)
            self._release()
            self._release = _no_release

    # -- sending ---------------------------------------------------------------------------

    async def _commit(self) -> None:
        if not self._committed:
            self._committed = self._sse = True
            assert self._send is not None
            kind = self._call.exchange.door.stream_content_type.encode()
            headers = [(b"content-type", kind), *_SSE_HEADERS, *self._call.served_headers()]
            start = {"type": "http.response.start", "status": 200, "headers": headers}
            await self._send(start)

    async def _emit(self, data: bytes) -> None:
        if not self._committed:
            await self._commit()
        if not data:
            return
        while self._ping_sent is not None:
            await self._ping_sent.wait()
        self._relay_sending = True
        try:
            assert self._send is not None
            await self._send({"type": "http.response.body", "body": data, "more_body": True})
        finally:
            self._relay_sending = False
        self._last_send = time.monotonic()

    def _note_first_token(self, stream: ExchangeStream) -> None:
        """Record the time to the first content token (once) for the log and metrics."""
        state = self._call.state
        if stream.first_output and "ttft" not in state:
            started = state.get("started")
            if started is not None:
                state["ttft"] = time.perf_counter() - started

    async def _keep_alive(self) -> None:
        """Commit after ``commit_after`` seconds of silence; once committed, ping while idle."""
        settings = self._call.settings
        commit_at = time.monotonic() + settings.commit_after
        interval = settings.ping_interval
        while True:
            now = time.monotonic()
            if self._sse:
                wait = self._last_send + interval - now
            else:  # not committed yet: wake for the commit, or to start pinging
                wait = min(interval, commit_at - now) if not self._commit_due else interval
            with anyio.move_on_after(max(0.0, wait)):
                await self._wake.wait()
            if self._wake.is_set():
                self._wake = anyio.Event()
                await self._early_commit()
            if self._done or self._stream_closed():
                return
            if not self._commit_due and time.monotonic() >= commit_at:
                self._commit_due = True
                await self._early_commit()
                continue
            if not self._sse or self._relay_sending:
                continue
            if time.monotonic() - self._last_send < interval:
                continue  # data went out meanwhile: no ping needed
            frame = self._stream.keepalive() if self._stream is not None else b""
            if not frame:
                continue
            done = self._ping_sent = anyio.Event()
            try:
                assert self._send is not None
                ping = {"type": "http.response.body", "body": frame, "more_body": True}
                await self._send(ping)
            finally:
                self._ping_sent = None
                done.set()
            self._last_send = time.monotonic()

    async def _early_commit(self) -> None:
        """Once ``commit_after`` has passed: commit with the door's start event, if the
        current attempt can still give one (a failed attempt's successor will)."""
        stream = self._stream
        ready = stream is not None and stream.can_preamble
        if self._commit_due and not self._committed and ready:
            # _emit commits the headers even when the door has no start event (Gemini)
            await self._emit(stream.preamble())  # type: ignore[union-attr]

    def _stream_closed(self) -> bool:
        stream = self._stream
        return stream is not None and stream.finished

    async def _watch_stopping(self, work: anyio.CancelScope) -> None:
        await self._call.wait_stopping()
        if not (self._done or self._stream_closed()):
            logger.info("server shutting down: ending an open stream with an error event")
            work.cancel()

    async def _watch_disconnect(self, receive: Receive, scope: anyio.CancelScope) -> None:
        await watch_disconnect(receive, scope, lambda: self._done, self._call.state)


async def watch_disconnect(
    receive: Receive, scope: anyio.CancelScope, done: Callable[[], bool], state: dict[str, Any]
) -> None:
    """Cancel ``scope`` when the client leaves before ``done()``, noting it in ``state``
    (the body has been read: the next ASGI message can only be ``http.disconnect``)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    if not done():
        state["disconnected"] = True
        scope.cancel()


def _header_value(text: str) -> bytes:
    """A header-safe value: model names pass through from clients (``glm-*``,
    ``x-glmbridge-model``), so control characters, non-ASCII and length are not theirs."""
    return quote(text[:200], safe="!#$&'()*+,-./:;<=>?@[]^_`{|}~").encode("ascii")


def _no_release() -> None:
    return None


def _loop_deadline(deadline: float) -> float:
    """A ``time.monotonic()`` deadline on anyio's clock."""
    return anyio.current_time() + max(0.0, deadline - time.monotonic())
