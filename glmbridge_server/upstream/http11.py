"""The server's upstream HTTP/1.1: an ``httpx2`` transport of our own (issue 22).

httpx2's default transport parses responses with h11 in pure Python and yields one piece per
chunk of the upstream's chunked encoding, so a streamed answer costs the relay one parse, one
``feed`` and one ASGI ``send`` per upstream event. This transport parses with ``httptools``
(llhttp, in C; uvicorn's own parser) over asyncio protocols (the server runs on asyncio or
uvloop, as uvicorn does) and yields **everything that arrived as one piece**: the events the
upstream has already sent go to the client in one write. ``bench/bench_upstream.py`` measures
it against httpx2's transport and aiohttp (docs/performance.md, "The upstream path").

It is plugged under the server's shared ``httpx2.AsyncClient`` only; the client, its
exceptions (mapped by :func:`glmbridge.transport.boundary.map_upstream_errors`) and the
SDK-facing transports stay httpx2's. Proxies are untouched: httpx2 mounts its own proxy
transports for proxied URLs. What it does, as httpcore2 does for HTTP/1.1:

* a pool per origin (keep-alive, ``keepalive_expiry``, at most ``max_keepalive_connections``
  idle); at most ``max_connections`` requests in flight, waiting up to the ``pool`` timeout
  (then :class:`httpx2.PoolTimeout`);
* an idle connection that became readable (the upstream closed it) is discarded before use;
* ``connect``/``write``/``read`` timeouts raise httpx2's timeouts; socket failures its
  ``ConnectError``/``WriteError``/``ReadError``; a bad or cut response
  :class:`httpx2.RemoteProtocolError` (a reused connection closed before any byte of the
  response: "Server disconnected without sending a response.", as httpcore2 says);
* a connection goes back to the pool only after a complete response both sides keep alive;
  a response closed early, cancelled or failed closes its connection.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import httptools
import httpx2

__all__ = ["Http11Transport", "body_finished", "body_pieces", "request_head"]

_HIGH_WATER = 1024 * 1024  # unread bytes at which a connection stops reading (TCP pushes back)
_JOIN = 1024 * 1024  # requests up to this size go out in one write (larger: no joined copy)
_LIMITS = httpx2.Limits()
_Origin = tuple[bytes, bytes, int]


class _Parse:
    """httptools callbacks for one connection: the current response's head and body."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.reset()

    def reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.head_done = False
        self.body: list[bytes] = []
        self.done = False
        self.keep_alive = False
        self.trailing = False  # bytes came after the complete response: never reused

    # Once the response is complete, whatever follows it is ignored (and marks the
    # connection not reusable), as h11 leaves it unread.

    def on_message_begin(self) -> None:
        if self.done:
            self.trailing = True
        else:
            self.reset()  # also after an informational (1xx) response

    def on_status(self, reason: bytes) -> None:
        if not self.done:
            self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.done:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if not self.done:
            self.status = self.parser.get_status_code()
            self.head_done = self.status >= 200

    def on_body(self, body: bytes) -> None:
        if self.done:
            self.trailing = True
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.done:
            self.done = self.head_done
            self.keep_alive = self.parser.should_keep_alive()  # reset once feed_data returns

    def take(self) -> bytes:
        body = self.body
        piece = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        return piece


class _Wire(asyncio.Protocol):
    """One upstream socket as asyncio hands it over: what arrived, kept until read; EOF and
    loss noted; writes paused and resumed by the event loop's flow control.

    A protocol instead of an anyio stream (issue 22): reading what is already there costs
    nothing, and waiting costs one future and one timer, where a stream read inside
    ``anyio.fail_after`` cost a cancel scope, a context manager and several checkpoints per
    socket read (about 13 per Claude Code turn).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.data: list[bytes] = []
        self.size = 0
        self.eof = False
        self.error: BaseException | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio's side ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.data.append(data)
        self.size += len(data)
        if self.size > _HIGH_WATER and not self._reading_paused:
            self._reading_paused = True  # the reader is slow: let TCP push back
            assert self.transport is not None
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None and self.error is None:
            self.error = exc
        self._wake()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the connection's side ---------------------------------------------------------------

    def take(self) -> bytes:
        """Everything that arrived (one piece), and reading resumed if it was paused."""
        data = self.data
        piece = data[0] if len(data) == 1 else b"".join(data)
        data.clear()
        self.size = 0
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return piece

    async def wait(self, timeout: float | None, expired: type[Exception], what: str) -> None:
        """Wait for the next event (data, EOF, loss, writable), at most ``timeout``
        seconds (then ``expired(what)``)."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        except TimeoutError:
            raise expired(what) from None
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    @property
    def writing_paused(self) -> bool:
        return self._writing_paused


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Connection:
    def __init__(self, wire: _Wire, origin: _Origin) -> None:
        assert wire.transport is not None
        self.wire = wire
        self.transport: asyncio.Transport = wire.transport
        self.origin = origin
        self.idle_since = 0.0
        self.parse = _Parse()
        self.failed: httpx2.RemoteProtocolError | None = None

    def dropped(self) -> bool:
        """Whether the idle connection has something to read: EOF (or junk), not reusable."""
        wire = self.wire
        if wire.eof or wire.data or self.transport.is_closing():
            return True
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return False
        try:  # a FIN the event loop has not seen yet
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    async def send(self, data: bytes, timeout: float | None) -> None:
        wire = self.wire
        if wire.eof or self.transport.is_closing():
            raise httpx2.WriteError(_lost(wire.error, "the connection is closed"))
        self.transport.write(data)
        while wire.writing_paused and not wire.eof:
            await wire.wait(timeout, httpx2.WriteTimeout, "timed out sending the request")
        if wire.error is not None:
            raise httpx2.WriteError(_lost(wire.error, "the connection was lost"))

    async def receive(self, timeout: float | None) -> bytes:
        wire = self.wire
        while not wire.data:
            if wire.eof:
                if wire.error is not None:
                    raise httpx2.ReadError(_lost(wire.error, "the connection was lost"))
                return b""
            await wire.wait(timeout, httpx2.ReadTimeout, "timed out reading the response")
        return wire.take()

    def feed(self, data: bytes) -> None:
        """Parse ``data``. A parse error is kept in :attr:`failed` (raised by the reader
        once what was parsed before it, the head and body pieces, has been handed over)."""
        try:
            self.parse.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.failed = httpx2.RemoteProtocolError("unexpected protocol upgrade")
        except httptools.HttpParserError as exc:
            self.failed = httpx2.RemoteProtocolError(f"malformed response: {exc}")

    async def aclose(self) -> None:
        self.transport.close()


def _lost(error: BaseException | None, default: str) -> str:
    return (str(error) or type(error).__name__) if error is not None else default


class Http11Transport(httpx2.AsyncBaseTransport):
    """An HTTP/1.1 transport for ``httpx2.AsyncClient`` (see the module docstring).

    Parameters:
        limits: the pool's limits (``max_connections``: requests in flight; idle
            connections kept per the other two).
        trust_env: whether the TLS context honours ``SSL_CERT_FILE``/``SSL_CERT_DIR``
            (as httpx2's own transport does).
        ssl_context: a TLS context to use instead (tests).
    """

    def __init__(
        self,
        *,
        limits: httpx2.Limits = _LIMITS,
        trust_env: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if ssl_context is None:
            ssl_context = httpx2.create_ssl_context(trust_env=trust_env)
            ssl_context.set_alpn_protocols(["http/1.1"])
        self._ssl = ssl_context
        self._max = limits.max_connections
        self._max_idle = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._slots: anyio.Semaphore | None = None  # created in the event loop
        self._idle: list[_Connection] = []
        self._closed = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        parts = await _request_parts(request)
        response = await self._exchange(request.url, parts, timeouts, request.method == "HEAD")
        response.request = request
        return response

    async def post(
        self, url: httpx2.URL, head: bytes, body: bytes, timeouts: dict[str, Any]
    ) -> httpx2.Response:
        """POST ``body`` with ``head`` (the request line and headers, content length
        included, ending in a blank line) already rendered: the upstream client's hot path,
        without an ``httpx2.Request`` built and read back per call (issue 22). The response
        is the same as :meth:`handle_async_request`'s; the caller sets its ``request``."""
        parts = [head + body] if len(head) + len(body) <= _JOIN else [head, body]
        return await self._exchange(url, parts, timeouts, False)

    async def _exchange(
        self, url: httpx2.URL, parts: list[bytes], timeouts: dict[str, Any], head: bool
    ) -> httpx2.Response:
        """Send ``parts`` on a pooled connection to ``url``'s origin; the response with its
        head read and its body still to come."""
        scheme = url.raw_scheme
        if scheme not in (b"http", b"https"):
            raise httpx2.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        port = url.port or (443 if scheme == b"https" else 80)
        origin = (scheme, url.raw_host, port)
        await self._acquire(timeouts.get("pool"))
        conn: _Connection | None = None
        try:
            conn = await self._pop_idle(origin)
            if conn is None:
                conn = await self._connect(origin, timeouts.get("connect"))
            write = timeouts.get("write")
            for data in parts:
                await conn.send(data, write)
            await self._read_head(conn, timeouts.get("read"), head)
        except BaseException:
            if conn is not None:
                await conn.aclose()
            self._release_slot()
            raise
        parse = conn.parse
        return httpx2.Response(
            status_code=parse.status,
            headers=parse.headers,
            stream=_Body(self, conn, timeouts.get("read"), head),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": parse.reason},
        )

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.aclose()

    # -- the pool ----------------------------------------------------------------------------

    async def _acquire(self, timeout: float | None) -> None:
        if self._max is None:
            return
        if self._slots is None:
            self._slots = anyio.Semaphore(self._max)
        try:
            self._slots.acquire_nowait()  # the usual case: no timer, no cancel scope
            return
        except anyio.WouldBlock:
            pass
        try:
            with anyio.fail_after(timeout):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx2.PoolTimeout("no free connection in the pool") from exc

    def _release_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def _pop_idle(self, origin: _Origin) -> _Connection | None:
        """The newest idle connection to ``origin`` still usable; expired or dropped ones
        are closed on the way."""
        now = time.monotonic()
        idle = self._idle
        found: _Connection | None = None
        stale: list[_Connection] = []
        for i in range(len(idle) - 1, -1, -1):  # no await in here: other tasks share the list
            conn = idle[i]
            expired = self._expiry is not None and now - conn.idle_since > self._expiry
            if expired or conn.dropped():
                stale.append(idle.pop(i))
            elif conn.origin == origin:
                found = idle.pop(i)
                break
        for conn in stale:
            await conn.aclose()
        return found

    async def _connect(self, origin: _Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        name = host.decode("ascii")
        tls: dict[str, Any] = {}
        if scheme == b"https":
            tls = {"ssl": self._ssl, "server_hostname": name}
        loop = asyncio.get_running_loop()
        try:
            with anyio.fail_after(timeout):
                _, wire = await loop.create_connection(_Wire, name, port, **tls)
        except TimeoutError as exc:
            raise httpx2.ConnectTimeout("timed out connecting") from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise httpx2.ConnectError(str(exc) or type(exc).__name__) from exc
        return _Connection(wire, origin)

    async def _put_idle(self, conn: _Connection) -> None:
        if self._closed or (self._max_idle is not None and len(self._idle) >= self._max_idle):
            await conn.aclose()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    # -- one exchange ------------------------------------------------------------------------

    async def _read_head(self, conn: _Connection, timeout: float | None, head: bool) -> None:
        parse = conn.parse
        parse.reset()
        got = False
        while not parse.head_done:
            data = await conn.receive(timeout)
            if not data:
                if not got:
                    raise httpx2.RemoteProtocolError(
                        "Server disconnected without sending a response."
                    )
                raise httpx2.RemoteProtocolError("the upstream closed the response's head")
            got = True
            conn.feed(data)
            if conn.failed is not None and not parse.head_done:
                raise conn.failed
        if head:
            parse.done = True


class _Body(httpx2.AsyncByteStream):
    """The response body: one piece per socket read; the connection back to the pool (or
    closed) once the body is read or the response closed."""

    def __init__(
        self, pool: Http11Transport, conn: _Connection, timeout: float | None, head: bool
    ) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._timeout = timeout
        self._until_eof = not head and _until_eof(conn.parse)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        parse = conn.parse
        try:
            while True:
                if parse.body:
                    yield parse.take()
                if parse.done:
                    break  # a parse error after the complete response: not reused below
                if conn.failed is not None:
                    raise conn.failed
                data = await conn.receive(self._timeout)
                if not data:
                    if self._until_eof:
                        parse.done = True
                        continue
                    raise httpx2.RemoteProtocolError(
                        "peer closed connection without sending complete message body"
                    )
                conn.feed(data)
        except BaseException:
            await self._finish(reuse=False)
            raise
        await self._finish(reuse=not self._until_eof and parse.keep_alive)

    async def aclose(self) -> None:
        await self._finish(reuse=False)

    async def _finish(self, *, reuse: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._pool._release_slot()
        parse = conn.parse
        if reuse and parse.done and not parse.trailing and conn.failed is None:
            await self._pool._put_idle(conn)
        else:
            await conn.aclose()


def body_pieces(response: httpx2.Response) -> AsyncIterator[bytes]:
    """``response``'s raw body, piece by piece: straight from this transport's reader when
    it made the response (``aiter_raw`` adds a context manager and its bookkeeping to every
    piece, issue 22), else ``aiter_raw()``. Close the response afterwards as usual."""
    stream = response.stream
    if type(stream) is _Body and not response.is_stream_consumed:
        return stream.__aiter__()
    return response.aiter_raw()


def body_finished(response: httpx2.Response) -> bool:
    """Whether this transport's ``response`` has let go of its connection (read to the
    end, or closed): closing it then cannot wait on anything."""
    stream = response.stream
    return type(stream) is _Body and stream._conn is None


def request_head(request: httpx2.Request) -> bytes:
    """``request``'s request line and headers as they go on the wire, blank line included."""
    lines = [request.method.encode("ascii") + b" " + request.url.raw_path + b" HTTP/1.1"]
    lines += [k + b": " + v for k, v in request.headers.raw]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _request_parts(request: httpx2.Request) -> list[bytes]:
    """What to write for ``request``: its head and body (in chunked framing if it says so),
    as one piece when it is not large."""
    chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
    parts = [request_head(request)]
    async for part in request.stream:  # type: ignore[union-attr]
        if chunked and part:
            parts.append(b"%x\r\n%b\r\n" % (len(part), part))
        elif part:
            parts.append(part)
    if chunked:
        parts.append(b"0\r\n\r\n")
    if sum(map(len, parts)) <= _JOIN:  # one write for the usual request
        parts = [b"".join(parts)]
    return parts


def _until_eof(parse: _Parse) -> bool:
    """Whether the body runs to the connection's end (no length, not chunked)."""
    if parse.done or parse.status in (204, 304):
        return False
    names = {k.lower() for k, _ in parse.headers}
    return b"content-length" not in names and b"transfer-encoding" not in names
