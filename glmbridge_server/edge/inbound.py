"""Inbound connection limits: the bounds uvicorn does not set by itself.

Theory of operation. uvicorn times out only idle keep-alive connections; a connection that
sends nothing, or one header or body byte every few seconds, is held forever, and so is a
128 MiB header line. Every held socket is a file descriptor, and at the fd limit the listener
can no longer accept even ``/health``. :class:`GuardedProtocol` wraps uvicorn's httptools
protocol with one timer and a phase per connection:

- ``head``: from the connection (or the first byte of a keep-alive request) until the request
  headers are complete. Bounded by ``header_timeout`` and ``max_header_bytes``; past either
  the client gets a bare 408 or 431 and the socket is closed.
- ``body``: headers complete, body still arriving. Bounded by ``body_timeout``; past it the
  socket is closed, which the app sees as a client disconnect. If the app has answered
  already (a 401 before the body is read, say) the connection is closed at once: an unread
  body cannot be skipped cheaply.
- ``busy``: the app is working; no limit here (streams are bounded by the relay's timeouts).
- ``idle``: between keep-alive requests, bounded by uvicorn's ``timeout_keep_alive``.

``max_connections`` caps open sockets. A connection over the cap first evicts the oldest one
that has not sent a complete request (``head``) or is ``idle``: those cost the server nothing
to drop and are what a slow-loris flood consists of, so a real client still gets in. Only
when every connection is working is the newcomer refused with a bare 503. The cap is also
held below the process's file-descriptor limit (:func:`effective_max_connections`).

Counters of what was closed and why are kept in :data:`STATS` for ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import Counter
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from glmbridge_server.call.cancel import LoopTimer
from glmbridge_server.settings import Settings

__all__ = [
    "STATS",
    "GuardedProtocol",
    "effective_max_connections",
    "open_connections",
    "uvicorn_options",
]

log = logging.getLogger("glmbridge.inbound")

#: Closed or refused connections by reason: header_timeout, header_too_large, body_timeout,
#: unread_body, evicted, refused, bad_target.
STATS: Counter[str] = Counter()
_OPEN: set[GuardedProtocol] = set()


def open_connections() -> int:
    """Inbound connections open now, in every guarded server of this process."""
    return len(_OPEN)


# File descriptors kept free for the upstream pool, logs and the listener per inbound one.
_FD_RESERVE = 32


def _bare_response(status: int, reason: str) -> bytes:
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").encode(
        "ascii"
    )


_TIMEOUT_408 = _bare_response(408, "Request Timeout")
_TOO_LARGE_431 = _bare_response(431, "Request Header Fields Too Large")
_FULL_503 = _bare_response(503, "Service Unavailable")


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body deadlines, a header cap and a
    connection cap; the limits are class attributes set by :func:`uvicorn_options`."""

    max_connections: ClassVar[int] = 1024
    header_timeout: ClassVar[float] = 10.0
    body_timeout: ClassVar[float] = 60.0
    max_header_bytes: ClassVar[int] = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = "head"
        self._since = time.monotonic()
        self._head_bytes = 0
        self._timer = LoopTimer(self.loop, self._expired)

    # --- the phases ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _OPEN.add(self)
        if len(self.connections) > self.max_connections and not self._evict_one():
            STATS["refused"] += 1
            self._close(_FULL_503)
            return
        self._timer.after(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.disarm()
        _OPEN.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == "idle":
            self._enter("head", self.header_timeout)
        if self._phase == "head":
            self._head_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._phase == "head" and self._head_bytes > self.max_header_bytes:
            STATS["header_too_large"] += 1
            self._close(_TOO_LARGE_431)
        elif self._phase == "body" and not self._timer.armed:
            # Armed here, not in on_headers_complete: a request without a body completes
            # within the same feed, and then no timer is needed at all.
            self._timer.after(self.body_timeout)

    def on_headers_complete(self) -> None:
        if not self.url.startswith(b"/") and self.url != b"*":
            # Absolute-form ("GET http://evil/ HTTP/1.1") names a host other than Host's;
            # only proxies take it. Raising makes uvicorn answer 400 and close.
            STATS["bad_target"] += 1
            raise ValueError("request target must be a path (absolute-form is not accepted)")
        self._enter("body", None)
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:
            # Duck-typed: it has every method uvicorn's cycle calls on its transport.
            cycle.transport = _HeadWithBody(self.transport, self.loop)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        if self._phase == "body":
            self._enter("busy", None)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        if not pipelined and self._phase == "body" and not self.transport.is_closing():
            # Answered before the body was read (a 401, a 413): the rest of the body would
            # have to be read and thrown away before the next request; drop the connection.
            STATS["unread_body"] += 1
            self._close(b"")
            return
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._enter("idle", None)  # uvicorn's keep-alive timer takes over

    # --- timers and closing ---------------------------------------------------------------

    def _enter(self, phase: str, timeout: float | None) -> None:
        self._phase = phase
        self._since = time.monotonic()
        self._head_bytes = 0
        if timeout is None:
            self._timer.disarm()
        else:
            self._timer.after(timeout)

    def _expired(self) -> None:
        if self.transport.is_closing():
            return
        if self._phase == "head":
            STATS["header_timeout"] += 1
            self._close(_TIMEOUT_408 if self._head_bytes else b"")
        elif self._phase == "body":
            STATS["body_timeout"] += 1
            started = self.cycle is not None and self.cycle.response_started
            self._close(b"" if started else _TIMEOUT_408)
        log.debug("closed a connection too slow in its %s", self._phase)

    def _close(self, response: bytes) -> None:
        self._timer.disarm()
        if response:
            self.transport.write(response)
        self.transport.close()

    def _evict_one(self) -> bool:
        """Close the oldest connection without a request in progress; False if none."""
        victims = [
            c
            for c in self.connections
            if c is not self and isinstance(c, GuardedProtocol) and c._phase in ("head", "idle")
        ]
        victims = [c for c in victims if not c.transport.is_closing()]
        if not victims:
            return False
        oldest = min(victims, key=lambda c: c._since)
        STATS["evicted"] += 1
        oldest._close(_TIMEOUT_408 if oldest._phase == "head" and oldest._head_bytes else b"")
        return True


class _HeadWithBody:
    """A response's transport that sends its head with the first body bytes: uvicorn
    writes the status line and headers at ``http.response.start``, and a separate socket
    write (and a separate wake-up of the client) for them costs as much as the body's
    (issue 22). The head waits until the next write or the end of the event loop's turn,
    whichever comes first, so nothing is delayed beyond the callbacks already due; writes
    keep their order, and closing sends what is held first."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = b""  # b"": nothing written yet; None: passing through

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._transport.write(data)
        elif not held:  # the first write, the head: held for one turn
            self._held = data
            self._loop.call_soon(self._flush)
        else:
            self._held = None
            self._transport.write(held + data if len(data) < _JOIN_BELOW else held)
            if len(data) >= _JOIN_BELOW:
                self._transport.write(data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


_JOIN_BELOW = 64 * 1024  # a larger first body is written on its own, not copied


def effective_max_connections(wanted: int) -> int:
    """``wanted``, lowered to fit the file-descriptor limit (raised to the hard limit first).

    Each open request may also hold an upstream connection, so half of the free descriptors
    go to inbound sockets.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
    return max(8, min(wanted, (soft - _FD_RESERVE) // 2))


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The ``uvicorn.Config`` keyword arguments that bound inbound connections."""
    protocol = type(
        "GuardedProtocol",
        (GuardedProtocol,),
        {
            "max_connections": effective_max_connections(settings.max_connections),
            "header_timeout": settings.header_timeout,
            "body_timeout": settings.body_timeout,
            "max_header_bytes": settings.max_header_bytes,
        },
    )
    return {
        "http": protocol,
        "timeout_keep_alive": max(1, round(settings.keepalive_timeout)),
        "backlog": 1024,
    }
