"""The Anthropic door through Z.ai's Anthropic-compatible endpoint (the simulator's
Anthropic-endpoint mode), with the official SDK and the real Claude Code CLI.

The bridge runs in ``--mock`` mode with ``upstream = "zai-anthropic"`` (or ``zai-auto``),
so the built-in simulator answers under ``/_mock/api/anthropic`` (and, for media turns
through ``zai-auto``, ``/_mock/api/coding/paas/v4``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from glmbridge import validate_anthropic_stream
from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from tests.support.clis import run_claude
from tests.support.servers import RunningServer, run_in_thread

pytestmark = pytest.mark.e2e

SONNET = "claude-sonnet-4-5"
PNG = (  # a 1x1 image
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg=="
)


def _bridge(upstream: str, **overrides: Any) -> RunningServer:
    return run_in_thread(create_app(Settings(mock=True, upstream=upstream, **overrides)))


@pytest.fixture(scope="module")
def zai() -> Iterator[RunningServer]:
    server = _bridge("zai-anthropic")
    yield server
    server.stop()


@pytest.fixture
def sim_requests(zai: RunningServer) -> list[Any]:
    requests: list[Any] = zai.app.state.simulator.state.requests
    requests.clear()
    return requests


@pytest.fixture
def sdk(zai: RunningServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=zai.url, api_key="x", max_retries=0) as client:
        yield client


def user(text: str) -> Any:
    return [{"role": "user", "content": text}]


def test_non_stream_answer(sdk: anthropic.Anthropic, sim_requests: list[Any]) -> None:
    msg = sdk.messages.create(model=SONNET, max_tokens=256, messages=user("[[sim:text]] hello"))
    assert msg.stop_reason == "end_turn" and msg.content[-1].type == "text"
    assert msg.id.startswith("msg_") and msg.model == SONNET
    (body,) = [r for r in sim_requests if isinstance(r, dict) and "messages" in r]
    assert body["model"] == "glm-5.3"  # routed, not Z.ai's own claude-* mapping


def test_stream_fills_the_zero_start_usage_and_keeps_the_final_counts(
    zai: RunningServer, sim_requests: list[Any]
) -> None:
    body = {"model": SONNET, "max_tokens": 256, "stream": True, "messages": user("hello " * 50)}
    with httpx2.Client(timeout=30) as http:
        raw = http.post(f"{zai.url}/v1/messages", json=body).content
    validate_anthropic_stream(raw)
    frames = [json.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]
    start, final = frames[0], [f for f in frames if f["type"] == "message_delta"][-1]
    assert start["message"]["usage"]["input_tokens"] > 50  # our estimate, not Z.ai's 0
    assert final["usage"]["input_tokens"] > 0 and final["usage"]["output_tokens"] > 0
    assert frames[-1]["type"] == "message_stop"


def test_sdk_stream_with_thinking_and_a_tool_call(
    sdk: anthropic.Anthropic, sim_requests: list[Any]
) -> None:
    tools: Any = [
        {
            "name": "get_weather",
            "description": "Weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    with sdk.messages.stream(
        model=SONNET,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=tools,
        messages=user("[[sim:tool]] weather in Paris?"),
    ) as stream:
        msg = stream.get_final_message()
    assert msg.stop_reason == "tool_use"
    kinds = [b.type for b in msg.content]
    assert kinds[0] == "thinking" and kinds[-1] == "tool_use"
    assert msg.content[-1].name == "get_weather"  # type: ignore[union-attr]
    assert isinstance(msg.content[-1].input, dict)  # type: ignore[union-attr]
    sent = [r for r in sim_requests if isinstance(r, dict) and "messages" in r][-1]
    assert sent["tools"][0]["name"] == "get_weather"


def test_count_tokens_is_local(sdk: anthropic.Anthropic, sim_requests: list[Any]) -> None:
    count = sdk.messages.count_tokens(model=SONNET, messages=user("hello there " * 100))
    assert count.input_tokens > 100  # Z.ai's endpoint would say 0
    assert sim_requests == []  # and it was not asked


def test_thinking_disabled_on_glm_5_3_is_not_forwarded(
    sdk: anthropic.Anthropic, sim_requests: list[Any]
) -> None:
    msg = sdk.messages.create(
        model="glm-5.3",
        max_tokens=512,
        thinking={"type": "disabled"},
        messages=user("[[sim:text]] quick"),
    )
    assert msg.stop_reason == "end_turn"  # the simulator answers 1210 if it is sent
    sent = [r for r in sim_requests if isinstance(r, dict) and "messages" in r][-1]
    assert "thinking" not in sent and sent["output_config"]["effort"] == "low"


def test_one_m_suffix_is_stripped(sdk: anthropic.Anthropic, sim_requests: list[Any]) -> None:
    sdk.messages.create(model="glm-4.7[1m]", max_tokens=64, messages=user("[[sim:text]] hi"))
    sent = [r for r in sim_requests if isinstance(r, dict) and "messages" in r][-1]
    assert sent["model"] == "glm-4.7"


@pytest.mark.parametrize(
    ("code", "error", "status", "should_retry"),
    [
        ("1113", anthropic.RateLimitError, 429, "false"),
        ("1302", anthropic.RateLimitError, 429, None),
        ("1211", anthropic.NotFoundError, 404, "false"),
        ("1002", anthropic.AuthenticationError, 401, "false"),
    ],
)
def test_business_codes_map_as_on_the_chat_path(
    sdk: anthropic.Anthropic,
    code: str,
    error: type[anthropic.APIStatusError],
    status: int,
    should_retry: str | None,
) -> None:
    with pytest.raises(error) as info:
        sdk.messages.create(model=SONNET, max_tokens=64, messages=user(f"[[sim:error:{code}]]"))
    assert info.value.status_code == status
    assert f"[{code}]" in info.value.message
    assert info.value.response.headers.get("x-should-retry") == should_retry


def test_zai_auto_sends_an_image_turn_through_the_chat_api() -> None:
    server = _bridge("zai-auto")
    try:
        requests: list[Any] = server.app.state.simulator.state.requests
        with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as client:
            image: Any = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                      "data": PNG}}  # fmt: skip
            client.messages.create(
                model=SONNET,
                max_tokens=64,
                messages=[{"role": "user", "content": [image, {"type": "text", "text": "what?"}]}],
            )
            client.messages.create(model=SONNET, max_tokens=64, messages=user("and text?"))
        chat, anth = [r for r in requests if isinstance(r, dict) and "messages" in r]
        # the Coding Plan's only vision model (zai-fidelity 1.3), not glm-4.6v (404 there)
        assert chat["model"] == "glm-5.3-flash" and "max_tokens" in chat
        assert isinstance(chat["messages"][-1]["content"], list)  # OpenAI-style parts
        assert anth["model"] == "glm-5.3" and anth["messages"][-1]["content"] == "and text?"
    finally:
        server.stop()


# --- the real Claude Code CLI ---------------------------------------------------------------


@pytest.mark.claude_cli
def test_claude_code_runs_a_tool_through_the_anthropic_endpoint(
    claude_bin: Path,
    zai: RunningServer,
    sim_requests: list[Any],
    tmp_path: Path,
) -> None:
    code, result = run_claude(
        claude_bin, zai.url, tmp_path,
        "Please [[sim:bash:echo via-anthropic-$((6*7))]]", "--allowedTools", "Bash",
    )  # fmt: skip
    assert code == 0, result
    assert result["is_error"] is False
    assert "via-anthropic-42" in result["result"]
    bodies = [r for r in sim_requests if isinstance(r, dict) and "messages" in r]
    follow_up = bodies[-1]["messages"]
    results = [
        b
        for m in follow_up
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert results and "via-anthropic-42" in json.dumps(results[-1])
    assert all(  # no empty text block ever reaches Z.ai
        b.get("text") != ""
        for m in follow_up
        if isinstance(m["content"], list)
        for b in m["content"]
    )


def test_a_pinned_model_goes_to_its_own_profile() -> None:
    """``upstreams = {"glm-4.5-air": "zai-coding"}``: haiku through the chat API, the rest
    through the Anthropic endpoint (the access log names each request's profile)."""
    import logging

    seen: list[dict[str, Any]] = []

    class Fields(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            fields = getattr(record, "fields", {})
            if fields.get("path") == "/v1/messages":
                seen.append(fields)

    access = logging.getLogger("glmbridge.access")
    handler, level = Fields(), access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    server = _bridge("zai-anthropic", upstreams={"glm-5.3-flash": "zai-coding"})
    try:
        with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as client:
            client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=user("a"))
            client.messages.create(model=SONNET, max_tokens=64, messages=user("b"))
    finally:
        server.stop()
        access.removeHandler(handler)
        access.setLevel(level)
    assert [(f["routed_model"], f["upstream"]) for f in seen] == [
        ("glm-5.3-flash", "zai-coding"),
        ("glm-5.3", "zai-anthropic"),
    ]
