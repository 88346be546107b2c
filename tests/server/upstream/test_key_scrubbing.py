"""The API key never reaches a client through an upstream error, whichever way the error came:
an HTTP error body, a JSON error object sent with 200, or an error chunk inside a stream
(issue 13, item 1), on every door."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from tests.support.servers import RunningServer

pytestmark = pytest.mark.e2e

KEY = "zai-secret-key.0123456789abcdef"
ECHO = f"invalid api key: Bearer {KEY}"

# door -> (path, body): the same one-line question on every door
DOORS: dict[str, tuple[str, dict[str, Any]]] = {
    "anthropic": ("/v1/messages", {"model": "glm-4.7", "max_tokens": 64,
                                   "messages": [{"role": "user", "content": "hi"}]}),
    "chat": ("/v1/chat/completions", {"model": "glm-4.7",
                                      "messages": [{"role": "user", "content": "hi"}]}),
    "responses": ("/v1/responses", {"model": "glm-4.7", "input": "hi"}),
    "gemini": ("/v1beta/models/glm-4.7:generateContent",
               {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
}  # fmt: skip


def _response(status: int, body: bytes, kind: str) -> httpx2.Response:
    # An unread body, as from the network (the relay streams it raw).
    return httpx2.Response(status, stream=httpx2.ByteStream(body), headers={"content-type": kind})


def _upstream(mode: str) -> httpx2.MockTransport:
    def handle(request: httpx2.Request) -> httpx2.Response:
        error = json.dumps({"error": {"code": "1000", "message": ECHO}}).encode()
        if mode == "status":
            return _response(401, error, "application/json")
        if mode == "json-200":
            return _response(200, error, "application/json")
        # mode == "in-stream": some text, then an error chunk echoing the key
        chunk = {"choices": [{"index": 0, "delta": {"content": "partial answer"}}]}
        failure = {"error": {"code": "1234", "message": f"network error for {KEY}"}}
        body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(failure)}\n\n".encode()
        return _response(200, body, "text/event-stream")

    return httpx2.MockTransport(handle)


# (mode, stream): an error chunk exists only in a stream
CASES = [("status", False), ("status", True), ("json-200", False), ("json-200", True),
         ("in-stream", True)]  # fmt: skip


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize(("mode", "stream"), CASES)
def test_no_upstream_error_carries_the_key(
    start_server: Callable[[Starlette], RunningServer],
    sim: RunningServer,
    bridge_settings: Callable[..., Settings],
    door: str,
    mode: str,
    stream: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = bridge_settings(sim.url, api_keys=(KEY,), max_retries=0)
    server = start_server(create_app(settings, transport=_upstream(mode)))
    path, body = DOORS[door]
    if stream and door == "gemini":
        path = path.replace(":generateContent", ":streamGenerateContent?alt=sse")
    elif stream:
        body = {**body, "stream": True}
    response = httpx2.post(server.url + path, json=body, timeout=30)
    assert KEY not in response.text
    assert "[redacted]" in response.text  # the rest of the upstream's message is kept
    assert KEY not in caplog.text
    if mode != "in-stream":
        assert response.status_code in (401, 500)  # a real status, not a 200 with an error
