"""The smaller defects of the attack run (issue 13, item 6), each pinned: bounded metric labels,
one log line per record, no credentials in the upstream URL, strict Host parsing, an HTML page
on HTTP 200 as an immediate error, and gateway statuses as the door's native overloaded error.
"""

from __future__ import annotations

import io
import logging
import re
import socket
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from glmbridge_server.cli import configure_logging
from glmbridge_server.settings import SettingsError, load_settings
from tests.server.faults import FaultServer, Plan, json_plan, stream_plan
from tests.support.servers import RunningServer

pytestmark = pytest.mark.e2e

BODY = {"model": "glm-4.7", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
HTML = Plan(
    headers=(("content-type", "text/html; charset=utf-8"), ("connection", "close")),
    parts=(b"<html><body>Please log in</body></html>",),
)


# --- metrics -------------------------------------------------------------------------------------


def test_invented_model_names_do_not_become_metric_labels(bridge: RunningServer) -> None:
    with httpx2.Client(base_url=bridge.url, timeout=10) as http:
        for n in range(25):
            http.post("/v1/messages", json={**BODY, "model": f"glm-made-up-{n}"})
        http.post("/v1/messages", json=BODY)
        text = http.get("/metrics").text
    assert "glm-made-up" not in text
    # the label is the model that served: glm-4.7 is answered by GLM-5.3-Flash on the plan
    assert re.search(r'glmbridge_tokens_total\{kind="output",model="glm-5.3-flash"\}', text)


# --- logs ----------------------------------------------------------------------------------------


def test_a_newline_in_a_logged_value_cannot_forge_a_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", "text")
        logging.getLogger("glmbridge.test").info(
            "route %s", "glm-4.7\n2026-12-01 00:00:00 INFO glmbridge: admin logged in\x1b[2J"
        )
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("glmbridge.test").exception("failed for %s", "a\rb")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert "glm-4.7\\n2026-12-01 00:00:00 INFO glmbridge: admin logged in\\x1b[2J" in lines[0]
    assert not any(line.startswith("2026-12-01 00:00:00 INFO") for line in lines)
    assert "failed for a\\rb" in lines[1]
    assert lines[2] == "Traceback (most recent call last):"  # tracebacks keep their lines


# --- settings ------------------------------------------------------------------------------------


def test_credentials_in_the_upstream_url_are_refused(tmp_path: Any) -> None:
    env = {"GLMBRIDGE_UPSTREAM": "https://user:hunter2@open.bigmodel.cn/api/paas/v4"}
    with pytest.raises(SettingsError) as info:
        load_settings(environ=env, cwd=tmp_path)
    assert "credentials" in str(info.value)
    assert "hunter2" not in str(info.value)


# --- Host ----------------------------------------------------------------------------------------


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and b"connection: close" not in data.lower():
                break
    return data


@pytest.mark.parametrize(
    "host",
    ["[::1]evil.com", "localhost:1@evil.com", "127.0.0.1:80:80", "localhost evil", "[::1"],
)
def test_malformed_host_headers_are_refused(bridge: RunningServer, host: str) -> None:
    response = httpx2.get(f"{bridge.url}/v1/models", headers={"host": host}, timeout=5)
    assert response.status_code in (400, 403)
    assert response.status_code != 200


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:4567", "[::1]:80", "LOCALHOST."])
def test_well_formed_loopback_hosts_are_accepted(bridge: RunningServer, host: str) -> None:
    response = httpx2.get(f"{bridge.url}/v1/models", headers={"host": host}, timeout=5)
    assert response.status_code == 200


def test_duplicate_host_headers_are_refused(bridge: RunningServer) -> None:
    data = _raw(
        bridge.url,
        b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nHost: evil.com\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"more than one Host header" in data


def test_absolute_form_request_targets_are_refused(bridge: RunningServer) -> None:
    data = _raw(
        bridge.url,
        b"GET http://evil.com/v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 400 ")


# --- upstream statuses ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "non-stream"])
def test_a_web_page_on_200_is_an_immediate_error_naming_its_type(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str], stream: bool
) -> None:
    up = upstream(HTML)
    url = bridge_for(up, max_retries=2)
    response = httpx2.post(f"{url}/v1/messages", json={**BODY, "stream": stream}, timeout=10)
    assert response.status_code == 502
    assert "text/html" in response.json()["error"]["message"]
    assert up.request_count == 1  # not retried


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_statuses_are_the_doors_native_overloaded_error(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str], status: int
) -> None:
    page = b"<html>" + str(status).encode() + b" Bad Gateway</html>"
    up = upstream(json_plan(page, status=status))
    url = bridge_for(up)
    with (
        anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as claude,
        pytest.raises(anthropic.APIStatusError) as info,
    ):
        claude.messages.create(**BODY)  # type: ignore[call-overload]
    assert info.value.status_code == 529
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    up = upstream(json_plan(page, status=status))
    with (
        openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as gpt,
        pytest.raises(openai.APIStatusError) as failure,
    ):
        gpt.chat.completions.create(model="glm-4.7", messages=[{"role": "user", "content": "hi"}])
    assert failure.value.status_code == 503


def test_a_normal_answer_still_flows(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str]
) -> None:
    from tests.server.faults import answer

    up = upstream(stream_plan(*answer("Hi")))
    url = bridge_for(up)
    response = httpx2.post(f"{url}/v1/messages", json={**BODY, "stream": True}, timeout=10)
    assert response.status_code == 200
    assert b"message_stop" in response.content
