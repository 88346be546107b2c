"""The one streaming answer: what the relay's stream and the server-tool stream share.

:class:`StreamingAnswer` is an ASGI application for one streamed answer. It owns the
concurrency of the response, written once:

* **One helper task** per answer beside the work (:meth:`StreamingAnswer._run`): the
  guard, which commits early, pings while idle and watches the client; the server's
  shutdown is a subscription (:mod:`glmbridge_server.call.shutdown`), not a task.
* **One sender rule.** The work and the guard share ``send``. The event loop only
  switches tasks at an await, so a flag and an event replace a lock on the hot path: the
  guard skips its ping (or early commit) while the work is sending, and the work waits
  (rarely) for a ping or an early commit being sent.
* **Late commit, bounded.** Nothing goes out before the first output, unless
  ``commit_after`` seconds pass in silence: then the subclass commits with the door's start
  event (:meth:`StreamingAnswer._early_commit`), and keep-alives follow every
  ``ping_interval`` while idle.
* **The client leaving** (``http.disconnect``, or an ``OSError`` from ``send`` on ASGI
  >= 2.4 servers) cancels everything and is noted in the record; **the server stopping**
  ends the answer with an ``overloaded`` error (:func:`~glmbridge_server.call.driver.
  shutting_down`): an error event in a started stream, a native status before it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

import anyio

from glmbridge.errors import GlmbridgeError, UpstreamError
from glmbridge.exchange import Exchange
from glmbridge_server.call.asgi import Message, Receive, Scope, Send
from glmbridge_server.call.cancel import CancelScope, end_task
from glmbridge_server.call.driver import on_shutdown, shutting_down
from glmbridge_server.call.record import CallRecord

__all__ = ["SSE_HEADERS", "StreamingAnswer", "stream_headers"]

logger = logging.getLogger("glmbridge.server")

SSE_HEADERS = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}


def stream_headers(
    exchange: Exchange, extra: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """A ``200`` stream's headers: the door's stream content type, no caching, ``extra``."""
    kind = exchange.door.stream_content_type.encode()
    return [(b"content-type", kind), *SSE_HEADERS, *extra]


async def _never_sent(message: Message) -> None:
    raise RuntimeError("the answer has not been started")


class StreamingAnswer:
    """The base of a streamed answer (see the module docstring). Subclasses implement
    :meth:`_run` (the work), :meth:`_fail`, :meth:`_stream_headers`, :meth:`_preamble_now`
    and :meth:`_keepalive_frame`, and may refine :meth:`_finished`, :meth:`_after` and
    :meth:`_cleanup`."""

    status_code = 200

    def __init__(self, record: CallRecord) -> None:
        self.record = record
        self._send: Send = _never_sent
        self._committed = False  # the response has started (200 stream, or an error status)
        self._sse = False  # ... as a 200 stream
        self._done = False
        self._response_ended = False  # the last body message (more_body false) went out
        self._guard_failed: Exception | None = None
        self._commit_due = False  # commit_after has passed (or the call was queued)
        self._woken = False  # commit now (see commit_now): the guard's next turn does
        self._idle: CancelScope | None = None  # the guard's wait, while it waits
        self._data_sending = False
        self._ping_sent: anyio.Event | None = None
        self._last_send = time.monotonic()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._send = send
        try:
            with CancelScope() as everything:
                guard = asyncio.get_running_loop().create_task(self._guarded(receive, everything))
                try:
                    with CancelScope() as work:
                        unsubscribe = on_shutdown(self.record, lambda: self._stop(work))
                        try:
                            await self._run()
                        finally:
                            unsubscribe()
                    if work.cancel_called:
                        await self._fail(shutting_down())
                    self._done = True
                    if self._committed and not self._response_ended:
                        await send(_END)
                finally:
                    await end_task(guard)
            if self._guard_failed is not None:
                raise self._guard_failed
            await self._after()
        except* OSError:
            self.record.disconnected = True  # ASGI >= 2.4 servers report a gone client so
        finally:
            await self._cleanup()

    async def _guarded(self, receive: Receive, everything: CancelScope) -> None:
        """The guard as the answer's one helper task (a plain asyncio task: an anyio task
        group cost more than the rest of a short answer's bookkeeping, issue 22); what it
        raises ends the answer, as a task group would."""
        try:
            await self._guard(receive, everything)
        except OSError:
            self.record.disconnected = True  # a ping to a client that has gone
            everything.cancel()
        except Exception as exc:
            self._guard_failed = exc
            everything.cancel()

    # -- for subclasses --------------------------------------------------------------------

    async def _run(self) -> None:
        raise NotImplementedError

    async def _fail(self, err: GlmbridgeError) -> None:
        raise NotImplementedError

    def _stream_headers(self) -> list[tuple[bytes, bytes]]:
        """The ``200`` stream's headers (see :func:`stream_headers`)."""
        raise NotImplementedError

    def _preamble_now(self) -> bytes | None:
        """What an early commit sends after the headers (the door's start event), or
        ``None`` when the answer cannot commit yet."""
        raise NotImplementedError

    def _keepalive_frame(self) -> bytes:
        raise NotImplementedError

    def _finished(self) -> bool:
        """Whether the answer's last event is out (no ping, no shutdown error may follow)."""
        return self._done

    async def _after(self) -> None:
        """Work once the client has its whole answer (the relay reads the epilogue)."""

    async def _cleanup(self) -> None:
        """Release what the answer holds, whatever happened."""

    # -- sending (the work's side) ---------------------------------------------------------

    async def _open(self, first: bytes, *, last: bool = False) -> None:
        """Commit the ``200`` stream with ``first`` as its first bytes (and, ``last``, its
        only ones: see :meth:`_body`)."""
        while self._ping_sent is not None:
            await self._ping_sent.wait()
        self._data_sending = True
        try:
            await self._start(200, self._stream_headers())
            if first or last:
                await self._send(
                    {"type": "http.response.body", "body": first, "more_body": not last}
                )
                self._response_ended = last
        finally:
            self._data_sending = False
        self._last_send = time.monotonic()

    def commit_now(self) -> None:
        """Commit and start the keep-alives now, not after ``commit_after`` (the call waits
        in the key-slot queue: a queued stream is never silent)."""
        self._commit_due = True
        self._woken = True
        if self._idle is not None:
            self._idle.cancel()  # the guard stops waiting and commits

    async def _early_commit(self) -> None:
        """Commit with the door's start event if ``commit_after`` has passed and the answer
        can (the work calls it when a new attempt may be able to)."""
        if self._commit_due and not self._committed:
            preamble = self._preamble_now()
            if preamble is not None:
                await self._open(preamble)

    async def _start_error(self, exchange: Exchange, err: GlmbridgeError) -> None:
        """A native error status and body (nothing was sent yet)."""
        status, headers, body = exchange.error_response(err, request_id=self.record.request_id)
        raw = [(b"content-type", b"application/json")]
        raw += [(k.encode(), v.encode()) for k, v in headers.items()]
        await self._start(status, raw)
        await self._body(body)

    def _note_failure(self, err: GlmbridgeError) -> None:
        status = err.status if isinstance(err, UpstreamError) else None
        self.record.failed(err.kind.value, status)

    async def _body(self, data: bytes, *, last: bool = False) -> None:
        """Send body bytes (they wait for a ping in flight). ``last``: they end the
        response, so the server writes them and the end of the body at once (one socket
        write less per answer than a separate end, issue 22); nothing may follow."""
        if not (data or last):
            return
        while self._ping_sent is not None:
            await self._ping_sent.wait()
        self._data_sending = True
        try:
            await self._send({"type": "http.response.body", "body": data, "more_body": not last})
            self._response_ended = last
        finally:
            self._data_sending = False
        self._last_send = time.monotonic()

    async def _start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Send the status line (once): a ``200`` stream, or an error status."""
        self._committed = True
        self._sse = status == 200
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    # -- sending (the keep-alive's side) ---------------------------------------------------

    async def _guard(self, receive: Receive, everything: CancelScope) -> None:
        """The answer's one helper task: it watches the client while it waits to commit
        (after ``commit_after`` seconds of silence, or at once on :meth:`commit_now`) and,
        once committed, to ping while idle.

        The client is watched by waiting for its next ASGI message: the body has been read,
        so it can only be ``http.disconnect``, and the client leaving cancels the answer.
        """
        settings = self.record.settings
        loop = asyncio.get_running_loop()
        commit_at = time.monotonic() + settings.commit_after
        interval = settings.ping_interval
        while True:
            now = time.monotonic()
            if self._sse:
                wait = self._last_send + interval - now
            else:  # not committed yet: wake for the commit, or to start pinging
                wait = min(interval, commit_at - now) if not self._commit_due else interval
            with CancelScope(loop.time() + max(0.0, wait)) as idle:
                self._idle = idle
                if not self._woken:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    if not self._done:
                        self.record.disconnected = True
                        everything.cancel()
                    return
            self._idle = None
            if self._finished():
                return
            woken, self._woken = self._woken, False
            if woken or (not self._commit_due and time.monotonic() >= commit_at):
                self._commit_due = True
                if not (self._committed or self._data_sending):
                    preamble = self._preamble_now()
                    if preamble is not None:
                        await self._exclusive(self._start(200, self._stream_headers()), preamble)
                continue
            if not self._sse or self._data_sending:
                continue
            if time.monotonic() - self._last_send < interval:
                continue  # data went out meanwhile: no ping needed
            frame = self._keepalive_frame()
            if frame:
                await self._exclusive(None, frame)

    async def _exclusive(self, first: Awaitable[None] | None, data: bytes) -> None:
        """The keep-alive's sends (``first``, then ``data``): the work's wait meanwhile."""
        done = self._ping_sent = anyio.Event()
        try:
            if first is not None:
                await first
            if data:
                await self._send({"type": "http.response.body", "body": data, "more_body": True})
        finally:
            self._ping_sent = None
            done.set()
        self._last_send = time.monotonic()

    # -- the client and the server ---------------------------------------------------------

    def _stop(self, work: CancelScope) -> None:
        """The server is stopping: end the work (a shutdown error follows) unless done."""
        if not self._finished():
            logger.info("server shutting down: ending an open stream with an error event")
            work.cancel()
