"""One huge request does not freeze the server (issue 13, item 3).

A body with more than ``max_json_objects`` objects is refused (413) before it is decoded; the
largest accepted one is decoded in a worker thread, and ``/health`` answers within 100 ms
while it is in flight, for every front door. The upstream is an in-process stub that does not
parse the body, so only glmbridge's own work is measured.
"""

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
from glmbridge_server.workers import settle_heap
from tests.support.servers import RunningServer

pytestmark = pytest.mark.e2e

LIMIT = 100_000  # the default max_json_objects

_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "glm-4.7",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def _glm(request: httpx2.Request) -> httpx2.Response:
    request.read()
    return httpx2.Response(200, json=_ANSWER)


@pytest.fixture
def stubbed(start_server: Callable[[Starlette], RunningServer]) -> RunningServer:
    settings = Settings(upstream="http://upstream.invalid/api/paas/v4", api_keys=("k",))
    server = start_server(create_app(settings, transport=httpx2.MockTransport(_glm)))
    settle_heap()  # as `glmbridge-server` does once started
    return server


def _body(path: str, objects: int) -> bytes:
    """A request for ``path`` whose history holds about ``objects`` JSON objects."""
    if path == "/v1/messages":
        item = b'{"role":"user","content":[{"type":"text","text":"hi"}]}'
        head, tail = b'{"model":"glm-4.7","max_tokens":10,"messages":[', b"]}"
        per = 2
    elif path == "/v1/chat/completions":
        item = b'{"role":"user","content":"hello there"}'
        head, tail = b'{"model":"glm-4.7","messages":[', b"]}"
        per = 1
    elif path == "/v1/responses":
        item = b'{"type":"message","role":"user","content":"hello there"}'
        head, tail = b'{"model":"glm-4.7","input":[', b"]}"
        per = 1
    else:
        item = b'{"role":"user","parts":[{"text":"hello there"}]}'
        head, tail = b'{"contents":[', b"]}"
        per = 2
    return head + b",".join([item] * (objects // per)) + tail


PATHS = [
    "/v1/messages",
    "/v1/chat/completions",
    "/v1/responses",
    "/v1beta/models/glm-4.7:generateContent",
]


@pytest.mark.parametrize("path", PATHS)
def test_too_many_objects_are_refused_before_decoding(stubbed: RunningServer, path: str) -> None:
    body = _body(path, 5 * LIMIT)
    started = time.monotonic()
    response = httpx2.post(
        stubbed.url + path, content=body, timeout=30,
        headers={"content-type": "application/json", "x-api-key": "x"},
    )  # fmt: skip
    assert response.status_code == 413
    assert "max_json_objects" in response.text
    assert time.monotonic() - started < 5


def _worst_health_latency(url: str, path: str, body: bytes) -> float:
    """The slowest ``/health`` while one request with ``body`` is in flight."""
    outcome: dict[str, Any] = {}

    def send() -> None:
        response = httpx2.post(
            url + path, content=body, timeout=60,
            headers={"content-type": "application/json", "x-api-key": "x"},
        )  # fmt: skip
        outcome["status"] = response.status_code

    worker = threading.Thread(target=send)
    worst = 0.0
    probes = 0
    with httpx2.Client(base_url=url, timeout=5) as http:
        http.get("/health")  # the probe's connection is open before the big request starts
        worker.start()
        while worker.is_alive():
            started = time.perf_counter()
            assert http.get("/health").status_code == 200
            worst = max(worst, time.perf_counter() - started)
            probes += 1
            time.sleep(0.005)
    worker.join()
    assert outcome["status"] == 200
    assert probes > 5  # the request took long enough for the probes to mean something
    return worst


@pytest.mark.parametrize("path", PATHS)
def test_health_answers_within_100ms_during_the_largest_accepted_request(
    stubbed: RunningServer, path: str
) -> None:
    body = _body(path, LIMIT - 10)
    # A second measurement only when the first one fails: a scheduler hiccup on a busy
    # machine is not a freeze, which fails both (before the fix: seconds, every time).
    worst = _worst_health_latency(stubbed.url, path, body)
    if worst >= 0.1:
        worst = min(worst, _worst_health_latency(stubbed.url, path, body))
    assert worst < 0.1, f"/health took {worst * 1000:.0f} ms"
