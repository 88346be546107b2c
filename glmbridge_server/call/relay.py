"""The server's one relay of an :class:`glmbridge.exchange.Exchange`: every front door's
answer goes through here, whatever upstream the route names. It picks the driver: the vision
fallback first (images for a blind model), the server-tool loop when the request has one,
else the plain call below.

Non-streamed: :meth:`~glmbridge_server.call.driver.Call.decoded` (the upstream client's
retries and key failover, in-band errors retried with the same budget) with
:meth:`Exchange.complete` for the client's body, then the fallbacks; the whole wait is
bounded by ``first_output_timeout``.

Streamed (:class:`StreamRelay`, a :class:`~glmbridge_server.call.stream.StreamingAnswer`
that owns the whole exchange):

* **Late commit, bounded.** The ``200`` and the stream headers go out with the first
  client bytes, so an upstream failure before them is still a real HTTP status. But a
  client is never left in silence: if no output has come after ``commit_after``
  seconds, the relay commits anyway, sends the door's start event
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
* **The server stopping** (the app state's ``stopping``, set on Ctrl-C or SIGTERM) ends every
  open answer at once with an ``overloaded`` error: an error event in a started stream, a
  native error status before it; the upstream request is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable

import anyio
import httpx2

from glmbridge.errors import GlmbridgeError, UpstreamError, UpstreamProtocolError
from glmbridge.exchange import Exchange, ExchangeStream
from glmbridge.served import ServedModelScanner
from glmbridge.transport.boundary import map_upstream_errors
from glmbridge_server.call.asgi import Answer, Receive, WholeAnswer
from glmbridge_server.call.cancel import CancelScope
from glmbridge_server.call.driver import Call, unless_disconnected
from glmbridge_server.call.record import CallRecord
from glmbridge_server.call.stream import StreamingAnswer, stream_headers
from glmbridge_server.tools import server_tools, vision_fallback
from glmbridge_server.upstream.http11 import body_finished, body_pieces

__all__ = ["StreamRelay", "answer", "preview"]

logger = logging.getLogger("glmbridge.server")

# After the answer: how long and how much of the upstream's epilogue (the chunked-body
# terminator, normally already in flight) is read to keep its connection reusable.
_DRAIN_SECONDS = 1.0
_DRAIN_BYTES = 64 * 1024


async def answer(record: CallRecord, exchange: Exchange, receive: Receive) -> Answer:
    """Answer ``exchange``: a :class:`StreamRelay`, or the complete non-streamed body
    (``receive``: the connection's, to notice the client leaving).

    Raises:
        GlmbridgeError: the non-streamed call failed (the route renders it natively).
    """
    exchange = await vision_fallback.prepare(record, exchange)  # images for a blind model
    loop = server_tools.loop_for(record, exchange)
    if loop is not None:  # web search: the gateway runs the tool loop
        return await server_tools.answer(record, exchange, loop, receive)
    call = Call(record, exchange)
    call.fallback = vision_fallback.fallback_for(record, exchange)
    if exchange.stream:
        return StreamRelay(call)
    return await unless_disconnected(record, receive, lambda: _complete(call))


async def _complete(call: Call) -> Answer:
    with CancelScope(_loop_deadline(call.deadline)) as scope:
        call.pause_clock_while_queued(scope)
        while True:
            try:  # retried inside (transport, then in-band); then the fallbacks
                body = await call.decoded(Exchange.complete)
            except UpstreamError as err:
                if not await call.fall_back(err):
                    raise
                continue
            record = call.record
            if call.exchange.usage is not None:
                record.usage = call.exchange.usage
            record.finish_reason = call.exchange.stop_reason
            logger.debug("request %s answer: %s", record.request_id, preview(body))
            return WholeAnswer(body, headers=call.served_headers())
    assert scope.cancelled_caught
    raise call.timeout()


def preview(data: bytes, limit: int = 4096) -> str:
    """The start of a body for a DEBUG line (prompts and answers are never logged above it)."""
    text = data[:limit].decode("utf-8", "replace")
    return text if len(data) <= limit else f"{text}… ({len(data)} bytes)"


def _chunks_of(response: httpx2.Response) -> AsyncIterator[bytes]:
    # We ask for identity encoding; the raw pieces skip httpx2's decoder layer on every
    # chunk unless the upstream compressed anyway.
    encoding = response.headers.get("content-encoding", "identity").lower()
    return body_pieces(response) if encoding == "identity" else response.aiter_bytes()


async def _close_quietly(
    response: httpx2.Response | None, chunks: AsyncIterator[bytes] | None = None
) -> None:
    """Close the upstream response (and its body iterator) at once, even when cancelled."""
    if response is None or response.is_closed:  # read to the end: httpx2 closed it then
        return
    if body_finished(response):  # our transport, read to the end: nothing to wait for
        await response.aclose()
        return
    # Shielded: this runs while the request is being cancelled (client gone).
    with anyio.CancelScope(shield=True), contextlib.suppress(httpx2.HTTPError):
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        await response.aclose()  # the connection is being discarded anyway


class StreamRelay(StreamingAnswer):
    """A streamed answer: the upstream call, the late (but bounded) commit, the relay,
    keep-alives and cancellation (see the module docstring)."""

    def __init__(self, call: Call) -> None:
        super().__init__(call.record)
        self._call = call
        self._stream: ExchangeStream | None = None
        self._upstream: httpx2.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._leftover: tuple[httpx2.Response, AsyncIterator[bytes]] | None = None
        self._release: Callable[[], None] = _no_release  # the leftover's key slot

    async def _after(self) -> None:
        await self._drain()  # the client has its whole answer already

    async def _cleanup(self) -> None:
        await _close_quietly(self._upstream, self._chunks)
        if self._leftover is not None:
            await _close_quietly(*self._leftover)
        self._release()
        stream = self._stream
        if stream is not None and stream.usage is not None:
            self.record.usage = stream.usage
        if stream is not None and stream.stop_reason is not None:
            self.record.finish_reason = stream.stop_reason

    # -- the exchange ----------------------------------------------------------------------

    async def _run(self) -> None:
        call = self._call
        failure: GlmbridgeError | None = None
        with CancelScope(_loop_deadline(call.deadline)) as first_output:
            try:
                await self._attempts(first_output)
            except GlmbridgeError as err:
                failure = err
        if first_output.cancelled_caught:
            failure = call.timeout()
        if failure is not None:
            await self._fail(failure)

    async def _attempts(self, first_output: CancelScope) -> None:
        call = self._call
        call.pause_clock_while_queued(first_output)
        paused = call.ticket.on_queue

        def queued() -> None:  # waiting for a slot: commit and ping now, not in 5 s
            if paused is not None:
                paused()
            # A throttle hold keeps the usual commit_after rule: a short hold that ends in
            # failure is still a real 429 status, which clients retry by themselves.
            if not call.ticket.holding:
                self.commit_now()

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

    async def _relay(self, stream: ExchangeStream, first_output: CancelScope) -> None:
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
                    if stream.finished:  # complete: don't wait for the upstream's EOF
                        self._note_first_token(stream)
                        await self._emit(out, last=True)
                        return
                    if out:
                        await self._emit(out)
                        self._note_first_token(stream)
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
                self.record.error_type = err.kind.value
        if not stream.started and not self._committed:
            raise UpstreamProtocolError("the upstream closed the stream without any event")
        await self._emit(out)
        if stream.error is not None:
            self.record.error_type = stream.error.kind.value

    async def _fail(self, err: GlmbridgeError) -> None:
        """An error before any content: a native status, or an error event after a commit."""
        self._note_failure(err)
        if self._sse:
            stream = self._stream
            door = self._call.exchange.door
            await self._emit(stream.fail(err) if stream else door.error_event(err))
            return
        await self._start_error(self._call.exchange, err)

    async def _drain(self) -> None:
        """Read what the upstream still sends after the answer, briefly, then close it."""
        leftover, self._leftover = self._leftover, None
        if leftover is None:
            return
        response, chunks = leftover
        size = 0
        try:
            deadline = asyncio.get_running_loop().time() + _DRAIN_SECONDS
            with CancelScope(deadline), map_upstream_errors():
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

    async def _emit(self, data: bytes, *, last: bool = False) -> None:
        if not self._committed:
            await self._open(data, last=last)
        else:
            await self._body(data, last=last)

    def _note_first_token(self, stream: ExchangeStream) -> None:
        """Record the time of the first content token (once) for the log and metrics."""
        if stream.first_output and self.record.first_output is None:
            self.record.first_output = time.perf_counter()

    def _keepalive_frame(self) -> bytes:
        return self._stream.keepalive() if self._stream is not None else b""

    def _stream_headers(self) -> list[tuple[bytes, bytes]]:
        return stream_headers(self._call.exchange, self._call.served_headers())

    def _preamble_now(self) -> bytes | None:
        """The door's start event, if the current attempt can still give one (a failed
        attempt's successor will); Gemini's is empty: the headers alone commit."""
        stream = self._stream
        return stream.preamble() if stream is not None and stream.can_preamble else None

    def _finished(self) -> bool:
        stream = self._stream
        return self._done or (stream is not None and stream.finished)


def _no_release() -> None:
    return None


def _loop_deadline(deadline: float) -> float:
    """A ``time.monotonic()`` deadline on the event loop's clock."""
    return asyncio.get_running_loop().time() + max(0.0, deadline - time.monotonic())
