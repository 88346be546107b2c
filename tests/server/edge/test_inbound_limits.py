"""Inbound connections are bounded (issue 13, item 2): slow or silent connections are closed
at the header and body deadlines, an oversized header gets 431, the connection cap evicts idle
sockets first so ``/health`` still answers, and an unread body does not hold a connection."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette

from glmbridge_server.edge import inbound
from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings, load_settings
from tests.server.attack import read_until_closed
from tests.support.servers import RunningServer

pytestmark = pytest.mark.e2e

LIMITS = {
    "header_timeout": 0.5,
    "body_timeout": 0.5,
    "max_connections": 8,
    "max_header_bytes": 4096,
    "auth_token": "sekrit-token",
}


@pytest.fixture
def guarded(
    start_server: Callable[[Starlette], RunningServer],
    sim: RunningServer,
    bridge_settings: Callable[..., Settings],
) -> RunningServer:
    return start_server(create_app(bridge_settings(sim.url, **LIMITS)))


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def test_a_silent_connection_is_closed_at_the_header_deadline(guarded: RunningServer) -> None:
    sock = _connect(guarded.url)
    data, took = read_until_closed(sock)
    assert data == b""
    assert 0.3 < took < 2.0


def test_headers_dripped_byte_by_byte_get_408(guarded: RunningServer) -> None:
    sock = _connect(guarded.url)
    before = inbound.STATS["header_timeout"]
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    started = time.monotonic()
    for byte in request:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
        time.sleep(0.05)
        if time.monotonic() - started > 1.5:
            break
    data, _ = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 3.0
    assert inbound.STATS["header_timeout"] > before


def test_a_body_dripped_byte_by_byte_is_cut_at_the_body_deadline(guarded: RunningServer) -> None:
    sock = _connect(guarded.url)
    before = inbound.STATS["body_timeout"]
    sock.sendall(
        b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: sekrit-token\r\n"
        b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
    )
    started = time.monotonic()
    closed = False
    while time.monotonic() - started < 3.0:
        try:
            sock.sendall(b" ")
        except OSError:
            closed = True
            break
        sock.settimeout(0.1)
        try:
            if sock.recv(65536) == b"":
                closed = True
                break
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
            break
    assert closed
    assert time.monotonic() - started < 2.0
    assert inbound.STATS["body_timeout"] > before


def test_an_oversized_header_gets_431(guarded: RunningServer) -> None:
    sock = _connect(guarded.url)
    with contextlib.suppress(OSError):
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 200_000)
    data, took = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 431 ")
    assert took < 2.0


def test_an_answer_before_the_body_closes_the_connection(guarded: RunningServer) -> None:
    # Wrong token: 401 before the body is read; the unread body must not pin the socket.
    sock = _connect(guarded.url)
    sock.sendall(
        b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: wrong\r\n"
        b"content-type: application/json\r\ncontent-length: 100000\r\n\r\n{"
    )
    data, took = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 401 ")
    assert took < 0.4  # not the body deadline


def test_idle_sockets_over_the_cap_are_evicted_and_health_answers(
    guarded: RunningServer, sockets: list[socket.socket]
) -> None:
    before = inbound.STATS["evicted"]
    for _ in range(30):
        sockets.append(_connect(guarded.url))
    time.sleep(0.05)
    started = time.monotonic()
    response = httpx2.get(f"{guarded.url}/health", timeout=2)
    assert response.status_code == 200
    assert time.monotonic() - started < 1.0
    assert inbound.STATS["evicted"] - before >= 30 + 1 - 8
    assert inbound.open_connections() <= 8 + 1


def test_keep_alive_connections_still_serve_several_requests(guarded: RunningServer) -> None:
    with httpx2.Client(base_url=guarded.url, timeout=5) as http:
        for _ in range(3):
            assert http.get("/health").status_code == 200
            time.sleep(0.2)


def test_the_limits_are_settings_with_safe_defaults(tmp_path: Any) -> None:
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.header_timeout == 10.0
    assert settings.body_timeout == 60.0
    assert settings.max_header_bytes == 64 * 1024
    assert settings.max_connections == 1024
    options = inbound.uvicorn_options(settings)
    protocol = options["http"]
    assert issubclass(protocol, inbound.GuardedProtocol)
    assert 8 <= protocol.max_connections <= 1024
    assert options["timeout_keep_alive"] == 15
    custom = load_settings(
        environ={"GLMBRIDGE_HEADER_TIMEOUT": "3", "GLMBRIDGE_MAX_CONNECTIONS": "64"}, cwd=tmp_path
    )
    assert custom.header_timeout == 3.0
    assert inbound.uvicorn_options(custom)["http"].max_connections == 64
