"""Security defaults: bind address, Host/Origin checks, the auth token, body limits, secrets.

Every test talks to a real uvicorn server over loopback; the raw-socket tests show what
the server does before it has read a request body.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from typing import Any

import anthropic
import httpx2
import pytest

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings, load_settings
from tests.support.servers import MakeSettings, RunningServer, Start

pytestmark = pytest.mark.e2e

TOKEN = "tok-3f9a1c7e5b2d4a60"
SONNET = "claude-sonnet-4-5"
MESSAGE = {"model": SONNET, "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def guarded(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> RunningServer:
    """A bridge with an auth token, in front of the simulator."""
    return start_server(create_app(bridge_settings(sim.url, auth_token=TOKEN)))


def post(url: str, body: Any = MESSAGE, **headers: str) -> httpx2.Response:
    return httpx2.post(url, json=body, headers=headers, timeout=30)


def assert_anthropic_error(response: httpx2.Response, status: int, err_type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == err_type
    assert body["request_id"] == response.headers["request-id"]
    return body["error"]["message"]


# --- bind address -------------------------------------------------------------------------


def test_default_bind_is_loopback(tmp_path: Any) -> None:
    assert Settings().host == "127.0.0.1"
    assert load_settings(environ={}, cwd=tmp_path).host == "127.0.0.1"


def _serve(tmp_path: Any, *args: str, **env: str) -> subprocess.Popen[str]:
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env}
    return subprocess.Popen(
        [sys.executable, "-m", "glmbridge_server", "--port", "0", "--mock", *args],
        cwd=tmp_path,
        env=clean,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_non_loopback_bind_without_token_refuses_to_start(tmp_path: Any, host: str) -> None:
    process = _serve(tmp_path, "--host", host)
    try:
        _, err = process.communicate(timeout=20)  # a server that starts never returns
    finally:
        process.kill()
    assert process.returncode == 2
    assert "refusing to listen" in err and "GLMBRIDGE_AUTH_TOKEN" in err


def test_non_loopback_bind_with_token_starts(tmp_path: Any) -> None:
    process = _serve(tmp_path, "--host", "0.0.0.0", GLMBRIDGE_AUTH_TOKEN=TOKEN)
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 20
        line = ""
        while "listening on" not in line and time.monotonic() < deadline:
            line = process.stderr.readline()
            assert line or process.poll() is None, "the server exited"
        assert "listening on http://0.0.0.0:" in line
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stderr is not None
        assert TOKEN not in process.stderr.read()


# --- Host (DNS rebinding) ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/messages", "/health", "/config", "/"])
def test_foreign_host_is_refused(bridge: RunningServer, path: str) -> None:
    response = httpx2.request(
        "POST" if path == "/v1/messages" else "GET",
        bridge.url + path,
        json=MESSAGE if path == "/v1/messages" else None,
        headers={"Host": "attacker.example:4567"},
    )
    message = assert_anthropic_error(response, 403, "permission_error")
    assert "attacker.example" in message and "allowed_hosts" in message


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:4567", "127.0.0.1", "127.0.0.1:1", "[::1]:4567", "[::1]"]
)
def test_loopback_hosts_are_accepted(bridge: RunningServer, host: str) -> None:
    assert httpx2.get(bridge.url + "/health", headers={"Host": host}).status_code == 200


def test_missing_host_is_refused(bridge: RunningServer) -> None:
    port = int(bridge.url.rpartition(":")[2])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 403")


def test_configured_allowed_host(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    server = start_server(create_app(bridge_settings(sim.url, allowed_hosts=("bridge.lan",))))
    ok = httpx2.get(server.url + "/health", headers={"Host": "bridge.lan:4567"})
    assert ok.status_code == 200
    other = httpx2.get(server.url + "/health", headers={"Host": "other.lan"})
    assert other.status_code == 403


def test_wildcard_bind_with_token_accepts_any_host(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    server = start_server(create_app(bridge_settings(sim.url, host="0.0.0.0", auth_token=TOKEN)))
    response = post(server.url + "/v1/messages", **{"Host": "box.lan", "x-api-key": TOKEN})
    assert response.status_code == 200, response.text


def test_bound_address_is_an_allowed_host(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    server = start_server(create_app(bridge_settings(sim.url, host="192.0.2.10", auth_token=TOKEN)))
    assert httpx2.get(server.url + "/health", headers={"Host": "192.0.2.10:80"}).status_code == 200
    assert httpx2.get(server.url + "/health", headers={"Host": "evil.test"}).status_code == 403


# --- Origin (CSRF) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://localhost:3000", "http://127.0.0.1:4567"]
)
def test_foreign_origin_is_refused_even_with_the_token(guarded: RunningServer, origin: str) -> None:
    response = post(guarded.url + "/v1/messages", Origin=origin, **{"x-api-key": TOKEN})
    message = assert_anthropic_error(response, 403, "permission_error")
    assert "allowed_origins" in message
    config = httpx2.post(
        guarded.url + "/config",
        content=b'{"thinking": "enabled"}',
        headers={"Origin": origin, "content-type": "text/plain", "x-api-key": TOKEN},
    )
    assert config.status_code == 403
    assert (
        httpx2.get(guarded.url + "/config", headers={"x-api-key": TOKEN}).json()["thinking"]
        == "auto"
    )


def test_configured_origin_is_allowed_with_cors(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    app = create_app(bridge_settings(sim.url, allowed_origins=("https://app.example",)))
    server = start_server(app)
    response = post(server.url + "/v1/messages", Origin="https://app.example")
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    preflight = httpx2.options(
        server.url + "/v1/messages",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-api-key" in preflight.headers["access-control-allow-headers"]
    refused = httpx2.options(
        server.url + "/v1/messages",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 403


def test_request_without_origin_is_fine(bridge: RunningServer) -> None:
    assert post(bridge.url + "/v1/messages").status_code == 200


# --- the auth token --------------------------------------------------------------------------


BAD_CREDENTIALS = [
    {},
    {"x-api-key": "wrong"},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Basic {TOKEN}"},
    {"x-api-key": TOKEN[:-1]},
    {"x-goog-api-key": TOKEN},  # only the Gemini routes take this header
]


@pytest.mark.parametrize("headers", BAD_CREDENTIALS)
def test_anthropic_routes_need_the_token(guarded: RunningServer, headers: dict[str, str]) -> None:
    paths = [("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens"),
             ("GET", "/config"), ("POST", "/config"), ("GET", "/metrics"),
             ("POST", "/api/event_logging/batch")]  # fmt: skip
    if "x-goog-api-key" not in headers:  # /v1/models is Gemini's too for a Google client
        paths += [("GET", "/v1/models"), ("GET", "/v1/models/claude-opus-4-5")]
    for method, path in paths:
        response = httpx2.request(method, guarded.url + path, json=MESSAGE, headers=headers)
        message = assert_anthropic_error(response, 401, "authentication_error")
        assert "auth token" in message and TOKEN not in response.text
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_openai_route_gets_an_openai_401(guarded: RunningServer) -> None:
    response = post(guarded.url + "/v1/chat/completions", {"model": "x"}, Authorization="Bearer no")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key"
    assert set(error) == {"message", "type", "param", "code"}


def test_gemini_route_gets_a_gemini_401(guarded: RunningServer) -> None:
    url = guarded.url + "/v1beta/models/gemini-2.5-flash:generateContent"
    attempts = [post(url, {}), post(url + "?key=no", {}), post(url, {}, **{"x-goog-api-key": "no"})]
    for response in attempts:
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == 401 and error["status"] == "UNAUTHENTICATED"
        assert error["details"][0]["reason"] == "API_KEY_INVALID"


def test_gemini_routes_accept_goog_key_and_query_key(guarded: RunningServer) -> None:
    url = guarded.url + "/v1beta/models"
    assert httpx2.get(url, headers={"x-goog-api-key": TOKEN}).status_code == 200
    assert httpx2.get(url, params={"key": TOKEN}).status_code == 200
    assert httpx2.get(url, headers={"x-api-key": TOKEN}).status_code == 200
    refused = httpx2.get(url)
    assert refused.status_code == 401
    assert refused.json()["error"]["status"] == "UNAUTHENTICATED"  # Google's shape


def test_token_accepted_as_api_key_and_as_bearer(guarded: RunningServer) -> None:
    with anthropic.Anthropic(base_url=guarded.url, api_key=TOKEN, max_retries=0) as sdk:
        assert sdk.messages.create(**MESSAGE).content  # x-api-key
    with anthropic.Anthropic(base_url=guarded.url, auth_token=TOKEN, max_retries=0) as sdk:
        assert sdk.messages.create(**MESSAGE).content  # Authorization: Bearer
    with (
        anthropic.Anthropic(base_url=guarded.url, api_key="wrong", max_retries=0) as sdk,
        pytest.raises(anthropic.AuthenticationError),
    ):
        sdk.messages.create(**MESSAGE)


def test_health_and_root_probe_are_open(guarded: RunningServer) -> None:
    health = httpx2.get(guarded.url + "/health")
    assert health.status_code == 200 and health.json()["service"] == "glmbridge"
    head = httpx2.head(guarded.url + "/")  # Claude Code's probe, sent without credentials
    assert head.status_code == 200
    root = httpx2.get(guarded.url + "/").json()
    assert set(root) == {"service", "version", "health"}
    assert httpx2.post(guarded.url + "/").status_code == 401  # only GET/HEAD / are open


def test_mock_mode_works_with_a_token(start_server: Start) -> None:
    # The mock upstream is this server's own /_mock mount, guarded by the same token.
    server = start_server(create_app(Settings(mock=True, auth_token=TOKEN)))
    assert post(server.url + "/v1/messages", **{"x-api-key": TOKEN}).status_code == 200
    assert post(server.url + "/_mock/api/coding/paas/v4/chat/completions", {}).status_code == 401


# --- body size ---------------------------------------------------------------------------------


def read_response(sock: socket.socket) -> bytes:
    """Read until the server closes the connection or a full small response arrived."""
    data = b""
    sock.settimeout(10)
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
        if sep and length and len(body) >= int(length[0].split(b":")[1]):
            break
    return data


def _body(raw: bytes) -> dict[str, Any]:
    return json.loads(raw.partition(b"\r\n\r\n")[2])


@pytest.fixture
def small_limit(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> RunningServer:
    return start_server(create_app(bridge_settings(sim.url, max_body_bytes=4096)))


def _port(server: RunningServer) -> int:
    return int(server.url.rpartition(":")[2])


@pytest.mark.parametrize(
    ("path", "shape"),
    [("/v1/messages", "anthropic"), ("/config", "anthropic"),
     ("/v1/chat/completions", "openai"), ("/v1beta/models/m:generateContent", "gemini")],
)  # fmt: skip
def test_oversized_content_length_refused_before_reading(
    small_limit: RunningServer, path: str, shape: str
) -> None:
    with socket.create_connection(("127.0.0.1", _port(small_limit)), timeout=10) as sock:
        # Announce 1 GB and send none of it: the answer must come without waiting for it.
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000000000\r\n\r\n".encode()
        )
        raw = read_response(sock)
    assert raw.startswith(b"HTTP/1.1 413"), raw[:200]
    assert b"connection: close" in raw.lower()
    body = _body(raw)
    if shape == "anthropic":
        assert body["error"]["type"] == "request_too_large"
    elif shape == "openai":
        assert body["error"]["code"] == "request_too_large"
    else:
        assert (
            body["error"]["code"] == 413
            and body["error"]["details"][0]["reason"] == "REQUEST_TOO_LARGE"
        )
    assert post(small_limit.url + "/v1/messages").status_code == 200  # still serving


@pytest.mark.parametrize("path", ["/v1/messages", "/config", "/v1/messages/count_tokens"])
def test_oversized_chunked_body_cut_off_while_streaming(
    small_limit: RunningServer, path: str
) -> None:
    with socket.create_connection(("127.0.0.1", _port(small_limit)), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        for _ in range(3):  # 6 KB of a body that never ends
            sock.sendall(b"800\r\n" + b" " * 0x800 + b"\r\n")
        raw = read_response(sock)
    assert raw.startswith(b"HTTP/1.1 413"), raw[:200]
    assert _body(raw)["error"]["type"] == "request_too_large"
    assert post(small_limit.url + "/v1/messages").status_code == 200


def test_oversized_body_through_a_client(small_limit: RunningServer) -> None:
    big = {**MESSAGE, "messages": [{"role": "user", "content": "x" * 10_000}]}
    try:
        response = post(small_limit.url + "/v1/messages", big)
    except httpx2.TransportError:  # the server may close before the client finished writing
        pass
    else:
        assert_anthropic_error(response, 413, "request_too_large")
    with anthropic.Anthropic(base_url=small_limit.url, api_key="x", max_retries=0) as sdk:
        assert sdk.messages.create(**MESSAGE).content


def test_body_within_the_limit_is_fine(small_limit: RunningServer) -> None:
    fits = {**MESSAGE, "messages": [{"role": "user", "content": "x" * 3000}]}
    assert post(small_limit.url + "/v1/messages", fits).status_code == 200


# --- secrets -------------------------------------------------------------------------------

FAKE_KEY = "zk-FAKEKEY-7d41e9b0c3a2.Q9xv"


def _echoing_upstream(request: httpx2.Request) -> httpx2.Response:
    """An upstream that echoes the credentials it got, as some gateways do in errors."""
    auth = request.headers.get("authorization", "")
    if b"[[ok]]" in request.content:
        return httpx2.Response(200, json={
            "id": "1", "created": 1, "model": "glm-4.7", "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "fine"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        })  # fmt: skip
    if b"[[500]]" in request.content:
        return httpx2.Response(500, text=f"internal error for {auth}")
    return httpx2.Response(401, json={"error": {"code": "1000", "message": f"bad key {auth}"}})


def test_keys_never_in_responses_or_logs(
    start_server: Start, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(upstream="zai", api_keys=(FAKE_KEY,), auth_token=TOKEN, max_retries=1)
    server = start_server(create_app(settings, transport=httpx2.MockTransport(_echoing_upstream)))
    auth = {"x-api-key": TOKEN}
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for content in ("[[ok]]", "[[401]]", "[[500]]"):
            for stream in (False, True):
                body = {**MESSAGE, "stream": stream,
                        "messages": [{"role": "user", "content": content}]}  # fmt: skip
                response = post(server.url + "/v1/messages", body, **auth)
                texts.append(response.text + str(response.headers))
        for path in ("/health", "/config", "/metrics", "/", "/v1/models", "/nope"):
            response = httpx2.get(server.url + path, headers=auth)
            texts.append(response.text + str(response.headers))
        texts.append(post(server.url + "/v1/messages", {"bad": 1}, **auth).text)
        texts.append(httpx2.get(server.url + "/config", headers={"x-api-key": "x"}).text)
        wait_for_access_log(caplog, count=len(texts))  # every request's line has landed
    assert len(texts) > 10 and any("bad key" in t for t in texts)  # the echo did happen
    for text in texts:
        assert FAKE_KEY not in text and TOKEN not in text
        assert FAKE_KEY[-8:] not in text  # not even a recognisable piece of it
    assert caplog.records, "nothing was logged"
    assert FAKE_KEY not in caplog.text and TOKEN not in caplog.text
    for record in caplog.records:
        assert FAKE_KEY not in str(record.__dict__)


def wait_for_access_log(caplog: pytest.LogCaptureFixture, count: int = 1) -> None:
    """The server thread logs a request just after the client got the response."""
    deadline = time.monotonic() + 5
    while sum(r.name == "glmbridge.access" for r in caplog.records) < count:
        assert time.monotonic() < deadline, "no access log line"
        time.sleep(0.01)


def test_prompts_and_answers_only_at_debug(
    bridge: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    prompt = "the secret recipe is 4711 parsley"
    body = {**MESSAGE, "messages": [{"role": "user", "content": prompt}]}
    with caplog.at_level(logging.INFO):
        assert post(bridge.url + "/v1/messages", body).status_code == 200
        wait_for_access_log(caplog)
    assert "4711 parsley" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="glmbridge"):
        assert post(bridge.url + "/v1/messages", body).status_code == 200
        wait_for_access_log(caplog)
    assert all(
        r.levelno == logging.DEBUG for r in caplog.records if "4711 parsley" in r.getMessage()
    )
    assert "4711 parsley" in caplog.text  # the debug log is useful for debugging


def test_redacting_formatter_is_the_safety_net() -> None:
    from glmbridge_server.cli import JsonFormatter, RedactingFormatter

    formatter = RedactingFormatter(JsonFormatter(), [FAKE_KEY])
    record = logging.makeLogRecord({"msg": "third-party says %s", "args": (FAKE_KEY,)})
    assert FAKE_KEY not in formatter.format(record)
    assert "[redacted]" in formatter.format(record)
