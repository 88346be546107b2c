"""A client that leaves during its body upload is a client event: an info line and its own
metrics label, never an ERROR with a traceback or a 500 (issue 13, item 5)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx2
import pytest
from starlette.applications import Starlette

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from tests.support.servers import RunningServer

pytestmark = pytest.mark.e2e


def _leave_mid_body(url: str, path: str) -> None:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{parts.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"model": "glm-4.7", "messages": [')
        time.sleep(0.2)  # the server is reading the body now


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions", "/v1/responses"])
def test_a_client_leaving_mid_body_is_not_a_server_error(
    start_server: Callable[[Starlette], RunningServer],
    sim: RunningServer,
    bridge_settings: Callable[..., Settings],
    path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bridge = start_server(create_app(bridge_settings(sim.url)))  # fresh metrics
    caplog.set_level(logging.INFO)
    _leave_mid_body(bridge.url, path)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "client disconnected" not in caplog.text:
        time.sleep(0.05)
    assert "client disconnected during the request body" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text
    metrics = httpx2.get(f"{bridge.url}/metrics").text
    assert 'glmbridge_errors_total{type="client_disconnected"}' in metrics
    assert 'status="500"' not in metrics
