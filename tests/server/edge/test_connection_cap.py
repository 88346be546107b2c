"""The upstream connection pool is bounded and says so: past ``upstream_connections`` a request
gets a fast, native overloaded error with ``retry-after`` (issue 13, item 4)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from tests.support.servers import RunningServer

pytestmark = pytest.mark.e2e

SLOW = {"model": "glm-4.7", "max_tokens": 64, "stream": True,
        "messages": [{"role": "user", "content": "[[sim:slow:0.1]]"}]}  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "status", "marker"),
    [
        ("/v1/messages", SLOW, 529, "overloaded_error"),
        ("/v1/chat/completions", {**SLOW, "max_tokens": 64}, 503, "server_is_overloaded"),
    ],
)
def test_a_full_pool_is_a_fast_native_overloaded_error(
    start_server: Callable[[Starlette], RunningServer],
    sim: RunningServer,
    bridge_settings: Callable[..., Settings],
    path: str,
    body: dict[str, Any],
    status: int,
    marker: str,
) -> None:
    settings = bridge_settings(sim.url, upstream_connections=1, pool_timeout=0.2, commit_after=30)
    server = start_server(create_app(settings))
    busy = threading.Thread(
        target=lambda: httpx2.post(server.url + "/v1/messages", json=SLOW, timeout=30)
    )
    busy.start()  # holds the one connection for ~2 s (20 chunks, 0.1 s apart)
    time.sleep(0.3)
    started = time.monotonic()
    response = httpx2.post(server.url + path, json=body, timeout=30)
    waited = time.monotonic() - started
    busy.join()
    assert response.status_code == status, response.text
    assert marker in response.text and "upstream_connections" in response.text
    assert response.headers["retry-after"] == "1"
    assert waited < 2.0  # pool_timeout, not a 30 s wait
