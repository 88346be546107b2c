"""Nothing a client sends can make the server answer 500 or leak a traceback.

Arbitrary JSON, and valid Claude Code-shaped requests with one field replaced by an
arbitrary value, go to every Anthropic endpoint of a real server (the simulator as
upstream). Every answer must be a native Anthropic body: a message, a token count, or
an error whose type matches a 4xx status.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import json_values
from tests.support.servers import RunningServer

pytestmark = pytest.mark.e2e

BASE: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
    "metadata": {"user_id": json.dumps({"device_id": "d", "session_id": "s"})},
    "thinking": {"type": "adaptive"},
    "tools": [{"name": "Bash", "description": "Run", "input_schema": {"type": "object"}}],
    "messages": [
        {"role": "user", "content": "[[sim:text]] hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash",
                                           "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": "ok"}, {"type": "text", "text": "go on"}]},
    ],
}  # fmt: skip

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every JSON path inside ``value`` (dict keys and list indices)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


PATHS = [p for p in _paths(BASE) if p]


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return doc


bodies = st.one_of(
    json_values,
    st.builds(_replace, st.just(BASE), st.sampled_from(PATHS), json_values),
    st.builds(lambda extra: {**BASE, **extra}, st.dictionaries(st.text(max_size=12), json_values)),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "x-glmbridge-model": st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126)),
        "x-claude-code-session-id": st.text(
            alphabet=st.characters(min_codepoint=33, max_codepoint=126)
        ),
        "anthropic-beta": st.sampled_from(["", "context-1m-2025-08-07", "x,y,,z"]),
    },
)


def _check(response: httpx2.Response) -> None:
    assert response.status_code < 500, response.text[:500]
    assert "Traceback" not in response.text
    body = response.json()
    if response.status_code == 200:
        assert body.get("type") == "message" or "input_tokens" in body, body
    else:
        assert body["type"] == "error", body
        assert body["error"]["type"] == ERROR_TYPES[response.status_code], body
        assert body["error"]["message"], body


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, extra_headers=headers, count=st.booleans())
def test_no_input_makes_the_server_fail(
    bridge: RunningServer, body: Any, extra_headers: dict[str, str], count: bool
) -> None:
    path = "/v1/messages/count_tokens" if count else "/v1/messages?beta=true"
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "stream"}  # streams are tested elsewhere
    with httpx2.Client(base_url=bridge.url, timeout=30) as client:
        response = client.post(
            path,
            content=json.dumps(body).encode(),
            headers={"content-type": "application/json", **extra_headers},
        )
    _check(response)


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"\xff\xfe", b"null", b"[]", b'{"model": "x"}', b"\x00" * 64, "é".encode()],
)
def test_malformed_bytes_get_a_native_400(bridge: RunningServer, raw: bytes) -> None:
    with httpx2.Client(base_url=bridge.url, timeout=30) as client:
        for path in ("/v1/messages", "/v1/messages/count_tokens"):
            response = client.post(path, content=raw, headers={"content-type": "application/json"})
            assert response.status_code == 400, (path, raw, response.text)
            _check(response)
