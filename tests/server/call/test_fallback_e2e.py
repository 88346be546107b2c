"""Fallback chains before the first byte (anthropic SDK and raw streams, real bridge)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from glmbridge_server.simulator.scripts import Script, ScriptError
from tests.support.servers import RunningServer, Start

CHAIN = {"glm-4.6": ("glm-4.5", "glm-4.5-air")}
BODY = {"model": "glm-4.6", "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello"}]}  # fmt: skip


def _models(sim: RunningServer) -> list[str]:
    return [b.get("model") for b in sim.app.state.requests]


def _error(status: int, code: str) -> Script:
    return Script(error=ScriptError(status=status, code=code))


def _bridge(start: Start, settings: Callable[..., Settings], sim: RunningServer) -> str:
    return start(create_app(settings(sim.url, fallbacks=CHAIN))).url


@pytest.mark.parametrize(
    "failure",
    [_error(529, "1305"), _error(429, "1305"), _error(200, "1305"), _error(503, "503"),
     _error(429, "1308")],
    ids=["529-1305", "429-1305", "200-1305", "503", "1308"],
)  # fmt: skip
def test_qualifying_errors_fall_back_before_the_first_byte(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
    failure: Script,
) -> None:  # fmt: skip
    url = _bridge(start_server, bridge_settings, sim)
    sim.app.state.script_queue.extend([failure])
    with anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as sdk:
        raw = sdk.messages.with_raw_response.create(**BODY)  # type: ignore[arg-type]
    assert raw.headers["x-glmbridge-served-model"] == "glm-4.5"
    assert raw.headers["x-glmbridge-fallback-from"].startswith("glm-4.6@")
    assert raw.parse().content
    assert _models(sim) == ["glm-4.6", "glm-4.5"]


def test_a_stream_falls_back_and_says_so_in_its_headers(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
) -> None:  # fmt: skip
    url = _bridge(start_server, bridge_settings, sim)
    sim.app.state.script_queue.extend([_error(529, "1305"), _error(500, "500")])
    body: dict[str, Any] = {**BODY, "stream": True}
    with httpx2.stream("POST", f"{url}/v1/messages", json=body, timeout=10) as r:
        text = "".join(r.iter_text())
        headers = r.headers
    assert headers["x-glmbridge-served-model"] == "glm-4.5-air"
    assert headers["x-glmbridge-fallback-from"].startswith("glm-4.6@")
    assert "event: message_stop" in text
    assert _models(sim) == ["glm-4.6", "glm-4.5", "glm-4.5-air"]


def test_validation_errors_never_fall_back(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
) -> None:  # fmt: skip
    url = _bridge(start_server, bridge_settings, sim)
    sim.app.state.script_queue.extend([_error(400, "1210")])
    with (
        anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as sdk,
        pytest.raises(anthropic.BadRequestError),
    ):
        sdk.messages.create(**BODY)  # type: ignore[arg-type]
    assert _models(sim) == ["glm-4.6"]


def test_no_fallback_after_the_first_byte(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
) -> None:  # fmt: skip
    url = _bridge(start_server, bridge_settings, sim)
    sim.app.state.script_queue.extend(
        [Script(text="partial answer that breaks", chunk_count=6, fail_after_chunks=2)]
    )
    body: dict[str, Any] = {**BODY, "stream": True}
    with httpx2.stream("POST", f"{url}/v1/messages", json=body, timeout=10) as r:
        text = "".join(r.iter_text())
        headers = r.headers
    assert "content_block_delta" in text and "event: error" in text
    assert headers["x-glmbridge-served-model"] == "glm-4.6"
    assert "x-glmbridge-fallback-from" not in headers
    assert _models(sim) == ["glm-4.6"]


def test_without_a_chain_the_error_is_the_clients(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
) -> None:  # fmt: skip
    url = start_server(create_app(bridge_settings(sim.url))).url
    sim.app.state.script_queue.extend([_error(529, "1305")])
    with (
        anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as sdk,
        pytest.raises(anthropic.APIStatusError) as info,
    ):
        sdk.messages.create(**BODY)  # type: ignore[arg-type]
    assert info.value.status_code in (429, 529)
    assert _models(sim) == ["glm-4.6"]


def test_profile_fallback_in_mock_mode(start_server: Start) -> None:
    # Mock mode serves every profile's path from the in-process simulator.
    settings = Settings(mock=True, upstream="zai-coding", fallbacks={"zai-coding": ("zai",)})
    app = create_app(settings)
    url = start_server(app).url
    app.state.simulator.state.script_queue.extend([_error(429, "1308")])
    with anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as sdk:
        raw = sdk.messages.with_raw_response.create(**BODY)  # type: ignore[arg-type]
    assert raw.headers["x-glmbridge-served-upstream"] == "zai"
    assert raw.headers["x-glmbridge-fallback-from"] == "glm-4.6@zai-coding"


def test_served_headers_are_header_safe_whatever_the_model_name() -> None:
    from glmbridge_server.call.driver import _header_value

    value = _header_value("glm-ü\x07\r\nx-evil: 1" + "z" * 500)
    assert value.isascii() and b"\r" not in value and b"\n" not in value
    assert all(32 < c < 127 for c in value) and len(value) <= 600
    assert _header_value("glm-4.7") == b"glm-4.7"
    assert _header_value("glm-4.7@zai-coding") == b"glm-4.7@zai-coding"
