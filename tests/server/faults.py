"""A fault-injection upstream: a raw-socket HTTP/1.1 server that misbehaves on purpose.

Each connection reads one request, records it, then follows a :class:`Plan`: send the
status line and headers (or nothing at all, :func:`silent`), send body parts with
optional pauses, then end in one of the ways a real upstream ends::

    close    the body's proper end (the final ``0`` chunk when chunked), then close
    eof      close without the final chunk (a truncated body)
    reset    SO_LINGER 0 close: the peer gets a TCP RST
    hang     keep the socket open and send nothing more, until the peer closes it

Connection *n* follows plan *n*; connections beyond the plans follow the last one;
:meth:`FaultServer.reset` gives a running server new plans (one server can serve a whole
test module)::

    with FaultServer(stream_plan(*answer("Hi"), end="reset")) as up:
        settings = bridge_settings(up.url)          # -> {up.url}/api/coding/paas/v4
        ...
        assert up.request_count == 1

The GLM chat payloads are built by :func:`glm_chunk`, :func:`answer`, :func:`glm_error`
(an in-band error on HTTP 200: ``json_plan(glm_error("1113"))`` or
``stream_plan(sse(glm_error("1302")))``); ``Raw(GARBAGE)`` writes bytes outside the
chunked framing, breaking it.
Everything runs on daemon threads; :meth:`FaultServer.stop` releases hanging connections
and joins every thread.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DONE",
    "End",
    "GARBAGE",
    "USAGE",
    "ConnectionRecord",
    "FaultServer",
    "Part",
    "Pause",
    "Plan",
    "Raw",
    "RecordedRequest",
    "answer",
    "finish_chunk",
    "glm_chunk",
    "glm_completion",
    "glm_error",
    "json_plan",
    "silent",
    "sse",
    "stream_plan",
]

End = Literal["close", "eof", "reset", "hang"]

USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
DONE = b"data: [DONE]\n\n"
#: Bytes that are neither SSE, nor JSON, nor valid chunked framing.
GARBAGE = b"\x00\xff\xfe GARBAGE \x17\r\nHTTP/1.1 999 Nope\r\n\r\n\xc3\x28{{{"


# --- payloads ---------------------------------------------------------------------------------


def sse(payload: dict[str, Any] | str) -> bytes:
    """One SSE ``data:`` frame."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def glm_chunk(
    content: str | None = None,
    *,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
    role: bool = True,
) -> bytes:
    """A GLM chat-completion chunk as an SSE frame."""
    delta: dict[str, Any] = {"role": "assistant"} if role else {}
    if content is not None:
        delta["content"] = content
    choice: dict[str, Any] = {"index": 0, "delta": delta}
    if finish is not None:
        choice["finish_reason"] = finish
    body: dict[str, Any] = {"id": "x", "created": 1, "model": "glm-4.7", "choices": [choice]}
    if usage is not None:
        body["usage"] = usage
    return sse(body)


def finish_chunk(reason: str = "stop", usage: dict[str, int] | None = None) -> bytes:
    """The final chunk: ``finish_reason`` and usage (GLM puts both on one chunk)."""
    return glm_chunk("", finish=reason, usage=USAGE if usage is None else usage)


def answer(*texts: str, done: bool = True) -> list[bytes]:
    """A whole streamed answer: a content chunk per text, the finish chunk, ``[DONE]``."""
    parts = [glm_chunk(text) for text in texts or ("Hi",)]
    parts.append(finish_chunk())
    if done:
        parts.append(DONE)
    return parts


def glm_error(code: str, message: str = "网络错误") -> dict[str, Any]:
    """GLM's error object: ``{"error": {"code": ..., "message": ...}}``."""
    return {"error": {"code": code, "message": message}}


def glm_completion(text: str = "Hi") -> dict[str, Any]:
    """A whole non-streamed GLM chat completion."""
    return {
        "id": "x",
        "created": 1,
        "model": "glm-4.7",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }


# --- plans ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pause:
    """Wait this many seconds before the next part."""

    seconds: float


@dataclass(frozen=True)
class Raw:
    """Bytes written as they are, outside any chunked framing (can break the framing)."""

    data: bytes


Part = bytes | Pause | Raw


@dataclass(frozen=True)
class Plan:
    """What one connection does after reading its request.

    Attributes:
        status: the response status; ``None`` sends nothing at all (see :func:`silent`).
        headers: the response headers (``transfer-encoding`` is added when ``chunked``).
        parts: body bytes (chunk-framed when ``chunked``), :class:`Pause` and :class:`Raw`.
        end: how the connection ends (see the module docstring).
        chunked: frame the body with ``Transfer-Encoding: chunked``; otherwise the body is
            delimited by the connection's close (HTTP/1.1 with no length).
    """

    status: int | None = 200
    headers: tuple[tuple[str, str], ...] = (
        ("content-type", "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
        ("connection", "close"),
    )
    parts: tuple[Part, ...] = ()
    end: End = "close"
    chunked: bool = True


def stream_plan(*parts: Part, end: End = "close", chunked: bool = True) -> Plan:
    """A ``200`` SSE answer made of ``parts``, ending with ``end``."""
    return Plan(parts=tuple(parts), end=end, chunked=chunked)


def json_plan(body: dict[str, Any] | bytes, *, status: int = 200, end: End = "close") -> Plan:
    """A JSON answer with a content-length (``end`` applies after the body)."""
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    headers = (
        ("content-type", "application/json"),
        ("content-length", str(len(data))),
        ("connection", "close"),
    )
    return Plan(status=status, headers=headers, parts=(data,), end=end, chunked=False)


def silent() -> Plan:
    """Read the request, then never send a byte (not even the status line)."""
    return Plan(status=None, end="hang")


# --- records ----------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the fault server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ConnectionRecord:
    """One accepted connection and what became of it.

    ``peer_closed`` is set when the client closed (or reset) the connection while this
    side was still waiting (``hang``, or a :class:`Pause`); ``done`` when the plan has run.
    """

    index: int
    plan: Plan
    accepted_at: float
    request: RecordedRequest | None = None
    peer_closed: threading.Event = field(default_factory=threading.Event)
    peer_closed_at: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


class _PeerGone(Exception):
    pass


# --- the server -------------------------------------------------------------------------------


class FaultServer:
    """A loopback HTTP/1.1 server whose connections follow fault plans.

    Args:
        plans: the plan of connection 0, 1, 2 …; later connections follow the last one
            (default: a normal streamed answer).

    Attributes:
        url: ``http://127.0.0.1:PORT``.
        requests: the requests read so far, in order of arrival.
        connections: every accepted connection.
    """

    def __init__(self, *plans: Plan, cycle: bool = False) -> None:
        self.plans: list[Plan] = list(plans) or [stream_plan(*answer())]
        #: Connection n follows plan n modulo the plans, instead of the last one after the end.
        self.cycle = cycle
        self.chooser: Callable[[RecordedRequest], Plan] | None = None
        self.requests: list[RecordedRequest] = []
        self.connections: list[ConnectionRecord] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._serial = itertools.count()
        self._socks: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._acceptor: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FaultServer:
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True, name="faults")
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, release hanging connections, join every thread."""
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        self._listener.close()
        for thread in list(self._threads):
            thread.join(timeout=5)
        with self._lock:
            leftover = list(self._socks)
        for sock in leftover:
            _close(sock)
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"fault server threads did not stop: {alive}"

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(
        self,
        *plans: Plan,
        cycle: bool = False,
        chooser: Callable[[RecordedRequest], Plan] | None = None,
    ) -> FaultServer:
        """Follow ``plans`` from the next connection on (it becomes connection 0) and forget
        the recorded requests; connections already open keep their plans. ``chooser``, when
        given, picks each connection's plan from its request instead."""
        with self._lock:
            self.plans = list(plans) or [stream_plan(*answer())]
            self.cycle = cycle
            self.chooser = chooser
            self.requests = []
            self.connections = []
        return self

    # -- queries -----------------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def wait_requests(self, count: int, timeout: float = 2.0) -> bool:
        """Wait until at least ``count`` requests have arrived."""
        deadline = time.monotonic() + timeout
        while self.request_count < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def wait_peer_closed(self, index: int = 0, timeout: float = 2.0) -> bool:
        """Wait until the client has closed connection ``index`` (a hang or pause saw it)."""
        deadline = time.monotonic() + timeout
        connections = self.connections
        while len(connections) <= index:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return connections[index].peer_closed.wait(max(0.0, deadline - time.monotonic()))

    # -- serving -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                index = len(self.connections)
                count = len(self.plans)
                plan = self.plans[index % count if self.cycle else min(index, count - 1)]
                record = ConnectionRecord(index, plan, time.monotonic())
                self.connections.append(record)
                self._socks.add(sock)
                requests = self.requests  # a reset() meanwhile starts a new list
            thread = threading.Thread(
                target=self._serve,
                args=(sock, record, requests),
                daemon=True,
                name=f"faults-conn-{next(self._serial)}",
            )
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()

    def _serve(
        self, sock: socket.socket, record: ConnectionRecord, requests: list[RecordedRequest]
    ) -> None:
        plan = record.plan
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request = _read_request(sock, self._stop)
            if request is None:
                return
            with self._lock:
                record.request = request
                requests.append(request)
                chooser = self.chooser
            if chooser is not None:
                plan = record.plan = chooser(request)
            if plan.status is not None:
                sock.sendall(_head(plan))
            for part in plan.parts:
                if isinstance(part, Pause):
                    self._wait(sock, record, part.seconds)
                elif isinstance(part, Raw):
                    sock.sendall(part.data)
                elif plan.chunked:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                else:
                    sock.sendall(part)
            if plan.end == "close":
                if plan.chunked and plan.status is not None:
                    sock.sendall(b"0\r\n\r\n")
                _close(sock, graceful=True)
            elif plan.end == "eof":
                _close(sock, graceful=True)
            elif plan.end == "reset":
                _reset(sock)
            else:  # hang
                self._wait(sock, record, None)
        except _PeerGone:
            pass
        except OSError as exc:  # the peer reset or closed while we were writing
            record.error = f"{type(exc).__name__}: {exc}"
            _mark_closed(record)
        finally:
            with self._lock:
                self._socks.discard(sock)
            _close(sock)
            record.done.set()

    def _wait(self, sock: socket.socket, record: ConnectionRecord, seconds: float | None) -> None:
        """Send nothing for ``seconds`` (``None``: until the peer closes or the server
        stops), noticing the peer closing meanwhile. Raises :class:`_PeerGone` then."""
        deadline = None if seconds is None else time.monotonic() + seconds
        sock.settimeout(0.02)
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    return
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    _mark_closed(record)
                    raise _PeerGone
                # A client sending more (a pipelined request) is ignored.
        finally:
            sock.settimeout(None)


def _mark_closed(record: ConnectionRecord) -> None:
    if not record.peer_closed.is_set():
        record.peer_closed_at = time.monotonic()
        record.peer_closed.set()


def _head(plan: Plan) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Server Error"}
    lines = [f"HTTP/1.1 {plan.status} {reason.get(plan.status or 0, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in plan.headers]
    if plan.chunked:
        lines.append("transfer-encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_request(sock: socket.socket, stop: threading.Event) -> RecordedRequest | None:
    """Read one request (content-length or chunked body); ``None`` if the peer left."""
    sock.settimeout(0.05)
    buf = b""

    def more() -> bool:
        nonlocal buf
        while not stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return False
            buf += data
            return True
        return False

    while b"\r\n\r\n" not in buf:
        if not more():
            return None
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                if not more():
                    return None
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(buf) < size + 2:
                if not more():
                    return None
            body, buf = body + buf[:size], buf[size + 2 :]
            if size == 0:
                break
    else:
        length = int(headers.get("content-length", "0"))
        while len(buf) < length:
            if not more():
                return None
        body = buf[:length]
    sock.settimeout(None)
    return RecordedRequest(method, path, headers, body)


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _close(sock: socket.socket, *, graceful: bool = False) -> None:
    if sock.fileno() == -1:
        return
    with contextlib.suppress(OSError):
        if graceful:
            sock.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        sock.close()
