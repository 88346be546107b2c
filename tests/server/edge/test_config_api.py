"""``GET``/``POST /config``: redaction, round trips, strict validation, atomic application."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings, keys_fingerprint
from glmbridge_server.simulator import Script
from tests.support.servers import MakeSettings, RunningServer, Start
from tests.support.simulator import last_chat

pytestmark = pytest.mark.e2e

TOKEN = "tok-config-5e2b7a"
KEYS = ("sim-key-AAAA-1111.secret", "sim-key-BBBB-2222.secret")
AUTH = {"x-api-key": TOKEN}


@pytest.fixture
def server(start_server: Start, sim: RunningServer, bridge_settings: MakeSettings) -> RunningServer:
    settings = bridge_settings(sim.url, api_keys=KEYS, auth_token=TOKEN, max_retries=0)
    return start_server(create_app(settings))


@pytest.fixture(autouse=True)
def _restore_log_level() -> Iterator[None]:
    logger = logging.getLogger("glmbridge")
    level = logger.level
    yield
    logger.setLevel(level)


def get_config(server: RunningServer) -> dict[str, Any]:
    response = httpx2.get(server.url + "/config", headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def post_config(server: RunningServer, body: Any, **headers: str) -> httpx2.Response:
    return httpx2.post(server.url + "/config", json=body, headers={**AUTH, **headers})


def ask(server: RunningServer, model: str, **extra: Any) -> httpx2.Response:
    body = {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    return httpx2.post(
        server.url + "/v1/messages", json={**body, **extra}, headers=AUTH, timeout=30
    )


def test_get_config_is_redacted(server: RunningServer) -> None:
    response = httpx2.get(server.url + "/config", headers=AUTH)
    text = response.text
    for key in KEYS:
        assert key not in text
        assert key[-4:] not in text and key[:12] not in text
    assert TOKEN not in text
    config = response.json()
    fingerprint = config["api_keys"].pop("fingerprint")
    assert config["api_keys"] == {"count": 2, "healthy": 2}
    # a one-way fingerprint of the key set (any order), not a piece of a key
    assert fingerprint == keys_fingerprint(tuple(reversed(KEYS))) != keys_fingerprint(KEYS[:1])
    assert len(fingerprint) == 16 and not any(fingerprint in key for key in KEYS)
    assert config["auth_token"] == "***"
    assert config["host"] == "127.0.0.1" and config["thinking"] == "auto"
    assert config["effective_models"]["opus"] == "glm-5.3"
    assert set(config["effective_models"]) == {"opus", "sonnet", "haiku", "default", "vision"}
    assert "models" in config["runtime_fields"] and "api_keys" not in config["runtime_fields"]


def test_get_config_hides_credentials_in_the_upstream_url(
    start_server: Start, bridge_settings: MakeSettings, sim: RunningServer
) -> None:
    user_url = sim.url.replace("http://", "http://user:pa55word@") + "/api/coding/paas/v4"
    server = start_server(create_app(bridge_settings(sim.url, upstream=user_url)))
    response = httpx2.get(server.url + "/config")
    assert "pa55word" not in response.text and response.json()["upstream"].startswith("http://127")


def test_post_changes_the_opus_mapping_for_the_next_request(
    server: RunningServer, sim: RunningServer
) -> None:
    assert ask(server, "claude-opus-4-5").status_code == 200
    assert last_chat(sim)["model"] == "glm-5.3"
    response = post_config(server, {"models": {"opus": "glm-4.6"}})
    assert response.status_code == 200, response.text
    assert response.json()["models"] == {"opus": "glm-4.6"}
    assert response.json()["effective_models"]["opus"] == "glm-4.6"
    assert ask(server, "claude-opus-4-5").status_code == 200
    assert last_chat(sim)["model"] == "glm-4.6"
    assert get_config(server)["effective_models"]["opus"] == "glm-4.6"
    models = httpx2.get(server.url + "/v1/models/claude-opus-4-5", headers=AUTH).json()
    assert "glm-4.6" in models["display_name"]  # the catalog follows the map
    # A merge patch: another entry is added, null removes one.
    post_config(server, {"models": {"haiku": "glm-4.5"}})
    assert get_config(server)["models"] == {"opus": "glm-4.6", "haiku": "glm-4.5"}
    post_config(server, {"models": {"opus": None}})
    assert get_config(server)["models"] == {"haiku": "glm-4.5"}
    assert ask(server, "claude-opus-4-5").status_code == 200
    assert last_chat(sim)["model"] == "glm-5.3"


def test_post_changes_the_default_thinking_mode(server: RunningServer, sim: RunningServer) -> None:
    assert ask(server, "claude-sonnet-4-5").status_code == 200
    assert "thinking" not in last_chat(sim)
    assert post_config(server, {"thinking": "disabled"}).status_code == 200
    assert ask(server, "glm-4.6").status_code == 200  # GLM-5.3 cannot stop thinking
    assert last_chat(sim)["thinking"] == {"type": "disabled"}
    assert ask(server, "claude-sonnet-4-5").status_code == 200  # still the main model
    assert last_chat(sim)["model"] == "glm-5.3" and "thinking" not in last_chat(sim)
    assert get_config(server)["thinking"] == "disabled"


def test_post_several_fields_and_log_level(server: RunningServer) -> None:
    body = {"ping_interval": 2.5, "max_retries": 3, "count_tokens": "local", "log_level": "debug",
            "auth_cooldown": 0, "quota_cooldown": 30, "max_body_bytes": 100_000}  # fmt: skip
    response = post_config(server, body)
    assert response.status_code == 200, response.text
    config = get_config(server)
    for name, value in body.items():
        assert config[name] == value
    assert logging.getLogger("glmbridge").level == logging.DEBUG


def test_max_body_bytes_change_applies(server: RunningServer) -> None:
    assert post_config(server, {"max_body_bytes": 2048}).status_code == 200
    big = "x" * 4000
    assert ask(server, "claude-sonnet-4-5", system=big).status_code == 413


def test_upstream_profile_change_retargets_the_client(start_server: Start) -> None:
    seen: list[str] = []
    auth: list[tuple[str | None, str | None]] = []

    def upstream(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        auth.append((request.headers.get("x-api-key"), request.headers.get("authorization")))
        return httpx2.Response(400, json={"error": {"code": "1210", "message": "test"}})

    settings = Settings(upstream="zai-coding", api_keys=("k-1",), max_retries=0, models_refresh=0)
    server = start_server(create_app(settings, transport=httpx2.MockTransport(upstream)))
    ask(server, "claude-sonnet-4-5")
    response = httpx2.post(server.url + "/config", json={"upstream": "bigmodel"})
    assert response.status_code == 200, response.text
    ask(server, "claude-sonnet-4-5")
    assert httpx2.get(server.url + "/health").json()["upstream"] == "bigmodel"
    # another protocol: Z.ai's Anthropic endpoint, its own path and auth header
    response = httpx2.post(server.url + "/config", json={"upstream": "zai-anthropic"})
    assert response.status_code == 200, response.text
    ask(server, "claude-sonnet-4-5")
    assert seen == [
        "https://api.z.ai/api/coding/paas/v4/chat/completions",
        "https://open.bigmodel.cn/api/paas/v4/chat/completions",
        "https://api.z.ai/api/anthropic/v1/messages?beta=true",
    ]
    assert auth[-1] == ("k-1", None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"colour": "blue"}, "colour"),
        ({"api_keys": ["x"]}, "api_keys"),
        ({"auth_token": "x"}, "auth_token"),
        ({"host": "0.0.0.0"}, "host"),
        ({"allowed_origins": ["https://evil.example"]}, "allowed_origins"),
        ({"thinking": "sometimes"}, "thinking"),
        ({"ping_interval": 0}, "ping_interval"),
        ({"ping_interval": "fast"}, "ping_interval"),
        ({"max_retries": 11}, "max_retries"),
        ({"max_body_bytes": 10}, "max_body_bytes"),
        ({"models": {"opus": "gpt-4o"}}, "models"),
        ({"models": {"opus": 5}}, "models"),
        ({"models": "opus=glm-4.6"}, "models"),
        ({"upstream": "https://attacker.example/v4"}, "upstream"),
        ({"upstream": "nope"}, "upstream"),
        ({"log_level": "verbose"}, "log_level"),
    ],
)
def test_strict_validation_names_the_field(
    server: RunningServer, body: dict[str, Any], field: str
) -> None:
    before = get_config(server)
    response = post_config(server, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(f"{field}:"), error["message"]
    assert get_config(server) == before  # nothing changed


@pytest.mark.parametrize("body", [b"[]", b"not json", b"", b'"x"'])
def test_post_body_must_be_a_json_object(server: RunningServer, body: bytes) -> None:
    response = httpx2.post(
        server.url + "/config", content=body, headers={**AUTH, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("body:")


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/jsonx"],
)  # fmt: skip
def test_post_requires_json_content_type(server: RunningServer, content_type: str | None) -> None:
    headers = dict(AUTH)
    if content_type:
        headers["content-type"] = content_type
    response = httpx2.post(
        server.url + "/config", content=b'{"thinking": "enabled"}', headers=headers
    )
    assert response.status_code == 415
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert get_config(server)["thinking"] == "auto"
    ok = post_config(
        server, {"thinking": "enabled"}, **{"content-type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 200


def test_config_needs_the_token(server: RunningServer) -> None:
    assert httpx2.get(server.url + "/config").status_code == 401
    response = httpx2.post(server.url + "/config", json={"thinking": "enabled"})
    assert response.status_code == 401
    assert get_config(server)["thinking"] == "auto"


def test_in_flight_request_keeps_its_configuration(
    server: RunningServer, sim: RunningServer
) -> None:
    """A stream that started before a change keeps the ping interval it started with."""
    assert post_config(server, {"ping_interval": 0.05}).status_code == 200
    sim.app.state.script_queue.append(Script(text="slow answer", chunk_size=2, delay=0.12))
    result: dict[str, bytes] = {}

    def stream() -> None:
        body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
        result["raw"] = httpx2.post(server.url + "/v1/messages", json=body, headers=AUTH,
                                    timeout=30).content  # fmt: skip

    thread = threading.Thread(target=stream)
    thread.start()
    time.sleep(0.2)
    assert (
        post_config(server, {"ping_interval": 600, "models": {"sonnet": "glm-4.6"}}).status_code
        == 200
    )
    thread.join(timeout=30)
    assert result["raw"].count(b"event: ping") >= 3  # the old 0.05 s interval went on
    assert b"message_stop" in result["raw"]
    assert ask(server, "claude-sonnet-4-5").status_code == 200
    assert last_chat(sim)["model"] == "glm-4.6"
