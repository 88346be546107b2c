"""The simulator's Anthropic-endpoint mode reproduces Z.ai's /api/anthropic/v1/messages.

Happy paths go through the official ``anthropic`` SDK; the quirks are checked byte-for-byte over
raw HTTP (sources in docs/simulator.md, "Anthropic-endpoint mode"). The simulator runs in a real
uvicorn server on loopback, started by this module (it does not need the bridge's fixtures).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from glmbridge_server.simulator import Script, ScriptError, ScriptToolCall, create_simulator_app

KEY = "test-key"
ID_RE = re.compile(r"^\d{14}[0-9a-f]{16}$")  # e.g. 20251013104553f6d8961e92814310
HEX_SIGNATURE_RE = re.compile(r"^[0-9a-f]{32}$")
BEIJING_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
BASH_TOOL = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "type": "object",
        "required": ["command"],
        "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
    },
}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "required": ["city"],
        "properties": {"city": {"type": "string"}},
    },
}
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "eA=="}}
ALWAYS_THINKS = "该模型始终思考，不支持关闭思考；请使用 low、high 或 max。"


class Sim:
    """The running simulator: its app (for state) and its base URL."""

    def __init__(self, app: Starlette, url: str) -> None:
        self.app, self.url = app, url
        self.base = f"{url}/api/anthropic"


@pytest.fixture(scope="module")
def _server() -> Iterator[Sim]:
    app = create_simulator_app(invalid_keys={"bad-key"}, quota_keys={"broke-key"})
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield Sim(app, f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def sim(_server: Sim) -> Sim:
    st = _server.app.state
    st.requests.clear()
    st.script_queue.clear()
    st.prefix_cache.clear()
    st.cancelled = 0
    st.latency = 0.0
    st.thinking_signatures = True
    return _server


@pytest.fixture
def sdk(sim: Sim) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=sim.base, api_key=KEY, max_retries=0) as client:
        yield client


@pytest.fixture
def http(sim: Sim) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=sim.base, headers={"x-api-key": KEY}, timeout=10) as client:
        yield client


def body(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "model": "glm-4.7",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def post(
    http: httpx2.Client,
    data: Any,
    headers: dict[str, str] | None = None,
    *,
    path: str = "/v1/messages",
) -> httpx2.Response:
    return http.post(path, json=data, headers=headers or {})


def sse(text: str) -> list[dict[str, Any]]:
    """Parse a raw SSE body strictly: `event: <type>` + one `data:` line, name == data type."""
    assert text.endswith("\n\n"), text[-200:]
    events = []
    for block in text.split("\n\n")[:-1]:
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: "), block
        data = json.loads(data_line[len("data: ") :])
        assert data["type"] == name_line[len("event: ") :]
        events.append(data)
    return events


def stream(http: httpx2.Client, data: dict[str, Any], **kw: Any) -> list[dict[str, Any]]:
    r = post(http, {**data, "stream": True}, **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    return sse(r.text)


_DELTA_FOR = {
    "thinking": {"thinking_delta", "signature_delta"},
    "text": {"text_delta"},
    "tool_use": {"input_json_delta"},
}


def check_well_formed(events: list[dict[str, Any]], *, complete: bool = True) -> None:
    """message_start, start/delta/stop per block (indices 0, 1, ...), message_delta, stop."""
    types = [e["type"] for e in events]
    assert types[0] == "message_start" and "ping" not in types
    assert types.count("message_start") == 1
    open_block: dict[str, Any] | None = None
    next_index = 0
    for e in events[1:]:
        if e["type"] == "content_block_start":
            assert open_block is None and e["index"] == next_index
            open_block, next_index = e, next_index + 1
        elif e["type"] == "content_block_delta":
            assert open_block is not None and e["index"] == open_block["index"]
            assert e["delta"]["type"] in _DELTA_FOR[open_block["content_block"]["type"]]
        elif e["type"] == "content_block_stop":
            assert open_block is not None and e["index"] == open_block["index"]
            open_block = None
    if complete:
        assert types[-2:] == ["message_delta", "message_stop"] and open_block is None
        assert types.count("message_delta") == 1


def blocks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The content blocks a stream builds (tool input as the concatenated JSON text)."""
    out: list[dict[str, Any]] = []
    for e in events:
        if e["type"] == "content_block_start":
            out.append(dict(e["content_block"]))
            if out[-1]["type"] == "tool_use":
                out[-1]["input"] = ""
        elif e["type"] == "content_block_delta":
            d, b = e["delta"], out[e["index"]]
            key = {
                "thinking_delta": "thinking",
                "text_delta": "text",
                "signature_delta": "signature",
                "input_json_delta": "input",
            }[d["type"]]
            value = d["partial_json" if key == "input" else key]
            b[key] = value if key == "signature" else b[key] + value
    return out


def golden_error(r: httpx2.Response, status: int, err_type: str, code: str, text: str) -> None:
    """The exact Z.ai error body: {type, error:{type, code, "[code][text][rid]"}, request_id}."""
    assert r.status_code == status, r.text
    data = r.json()
    rid = data.get("request_id", "")
    assert ID_RE.match(rid), data
    expected = {"type": err_type, "code": code, "message": f"[{code}][{text}][{rid}]"}
    assert data == {"type": "error", "error": expected, "request_id": rid}
    assert "retry-after" not in r.headers


def error_of(r: httpx2.Response) -> tuple[int, str, str]:
    err = r.json()["error"]
    return r.status_code, err["type"], err["code"]


# ---------------------------------------------------------------------------- SDK happy paths


def test_sdk_non_stream_text(sdk: anthropic.Anthropic) -> None:
    msg = sdk.messages.create(
        model="glm-4.7", max_tokens=1024, messages=[{"role": "user", "content": "Hello simulator"}]
    )
    assert ID_RE.match(msg.id) and not msg.id.startswith("msg_")
    assert msg.model == "glm-4.7" and msg.role == "assistant" and msg.type == "message"
    assert [b.type for b in msg.content] == ["text"]  # no thinking unless asked for
    assert msg.content[0].text == "You said: Hello simulator"  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    assert msg.usage.cache_read_input_tokens == 0
    assert msg.usage.cache_creation_input_tokens is None


def test_sdk_non_stream_thinking_has_a_non_anthropic_signature(sdk: anthropic.Anthropic) -> None:
    msg = sdk.messages.create(
        model="glm-4.7",
        max_tokens=4096,
        messages=[{"role": "user", "content": "[[sim:thinking]] why?"}],
        thinking={"type": "enabled", "budget_tokens": 2048},
    )
    thinking, text = msg.content
    assert thinking.type == "thinking" and text.type == "text"
    assert thinking.thinking.startswith("Let me think")
    assert HEX_SIGNATURE_RE.match(thinking.signature)  # opaque hex, not Anthropic's base64
    assert text.text == "You said: [[sim:thinking]] why?"


def test_sdk_non_stream_tool_use(sdk: anthropic.Anthropic) -> None:
    msg = sdk.messages.create(
        model="glm-4.7",
        max_tokens=1024,
        tools=[BASH_TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "please run `ls -la`"}],
    )
    assert msg.stop_reason == "tool_use"
    (call,) = msg.content  # no "\n\n" text block beside the call
    assert call.type == "tool_use" and call.name == "Bash"
    assert call.id.startswith("call_")
    assert call.input == {"command": "ls -la", "description": "Run ls -la"}


def test_sdk_stream_text_and_thinking_equal_non_stream(sdk: anthropic.Anthropic) -> None:
    kw: dict[str, Any] = {
        "model": "glm-4.7",
        "max_tokens": 4096,
        "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": "Hello streaming world"}],
    }
    with sdk.messages.stream(**kw) as s:
        types = [e.type for e in s]
        final = s.get_final_message()
    assert "thinking" in types and "text" in types and "signature" in types
    whole = sdk.messages.create(**kw)
    assert [b.model_dump() for b in final.content] == [b.model_dump() for b in whole.content]
    assert final.stop_reason == "end_turn"
    # the counts come from the final message_delta (message_start's usage is all zero)
    assert final.usage.input_tokens == whole.usage.input_tokens > 0
    assert final.usage.output_tokens == whole.usage.output_tokens > 0


def test_sdk_stream_tool_use_parallel(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(
        model="glm-4.7",
        max_tokens=1024,
        tools=[BASH_TOOL, WEATHER_TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "[[sim:parallel_tools]]"}],
    ) as s:
        partial = [e for e in s if e.type == "input_json"]
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["tool_use", "tool_use"]
    assert final.content[0].name == "Bash"  # type: ignore[union-attr]
    assert final.content[1].input == {"city": "Paris"}  # type: ignore[union-attr]
    assert len(partial) > 2  # the input arrives as several input_json_delta fragments


def test_sdk_claude_model_names_are_mapped(sdk: anthropic.Anthropic) -> None:
    for name, glm in [
        ("claude-sonnet-4-5-20250929", "glm-4.7"),
        ("claude-opus-4-1", "glm-4.7"),
        ("claude-3-5-haiku-20241022", "glm-4.5-air"),
    ]:
        msg = sdk.messages.create(
            model=name, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
        assert msg.model == glm


def test_sdk_sees_errors(sim: Sim, sdk: anthropic.Anthropic) -> None:
    sim.app.state.script_queue.append(Script(error=ScriptError(status=429, code="1302")))
    with pytest.raises(anthropic.RateLimitError) as exc:
        sdk.messages.create(
            model="glm-4.7", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
    assert exc.value.status_code == 429
    assert exc.value.body["error"]["code"] == "1302"  # type: ignore[index]
    # an in-band error (HTTP 200) surfaces as an APIStatusError from the stream
    with (
        pytest.raises(anthropic.APIStatusError) as exc2,
        sdk.messages.stream(
            model="glm-4.7",
            max_tokens=64,
            messages=[{"role": "user", "content": "[[sim:network_error]]"}],
        ) as s,
    ):
        for _ in s:
            pass
    assert "1234" in str(exc2.value)


# ---------------------------------------------------------------------------- auth and routes


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": KEY},
        {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        {"x-api-key": "", "Authorization": f"Bearer {KEY}"},  # no anthropic-version: still fine
    ],
)
def test_auth_headers_and_beta_query(sim: Sim, headers: dict[str, str]) -> None:
    with httpx2.Client(base_url=sim.base) as c:
        for path in ("/v1/messages", "/v1/messages?beta=true"):
            assert c.post(path, json=body(), headers=headers).status_code == 200


def test_auth_errors(sim: Sim) -> None:
    with httpx2.Client(base_url=sim.base) as c:
        r = c.post("/v1/messages", json=body())
        assert error_of(r) == (401, "authentication_error", "1001")
        r = c.post("/v1/messages", json=body(), headers={"x-api-key": "bad-key"})
        assert error_of(r) == (401, "authentication_error", "1002")
        r = c.post("/v1/messages", json=body(), headers={"Authorization": "Bearer broke-key"})
        golden_error(r, 429, "rate_limit_error", "1113", "余额不足或无可用资源包,请充值。")
        r = c.post("/v1/messages/count_tokens", json=body())
        assert error_of(r) == (401, "authentication_error", "1001")


def test_count_tokens_is_always_zero(http: httpx2.Client) -> None:
    for data in (body(), body("hello " * 500, model="glm-5.3"), {"model": "nonsense"}):
        for path in ("/v1/messages/count_tokens", "/v1/messages/count_tokens?beta=true"):
            r = post(http, data, path=path)
            assert r.status_code == 200 and r.json() == {"input_tokens": 0}


def test_mounted_under_mock_prefix() -> None:
    app = Starlette(routes=[Mount("/_mock", app=create_simulator_app())])
    with TestClient(app) as c:
        r = c.post(
            "/_mock/api/anthropic/v1/messages?beta=true", json=body(), headers={"x-api-key": KEY}
        )
        assert r.status_code == 200 and r.json()["content"][0]["text"] == "You said: hi"


# ---------------------------------------------------------------------------- stream shape


def test_stream_shape_zero_usage_at_start(http: httpx2.Client) -> None:
    events = stream(http, body("Hello", thinking={"type": "enabled", "budget_tokens": 1024}))
    check_well_formed(events)
    start = events[0]["message"]
    assert ID_RE.match(start["id"]) and start["model"] == "glm-4.7"
    assert start["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert start["content"] == [] and start["stop_reason"] is None
    delta = events[-2]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert set(delta["usage"]) == {"input_tokens", "output_tokens", "cache_read_input_tokens"}
    assert delta["usage"]["input_tokens"] > 0 and delta["usage"]["output_tokens"] > 0
    thinking, text = blocks(events)
    assert thinking["type"] == "thinking" and HEX_SIGNATURE_RE.match(thinking["signature"])
    assert text == {"type": "text", "text": "You said: Hello"}


def test_stream_tool_use_input_json_deltas(http: httpx2.Client) -> None:
    events = stream(http, body("run `git status`", tools=[BASH_TOOL]))
    check_well_formed(events)
    (call,) = blocks(events)
    assert call["type"] == "tool_use" and call["name"] == "Bash"
    assert json.loads(call["input"]) == {"command": "git status", "description": "Run git status"}
    assert sum(e["type"] == "content_block_delta" for e in events) > 2
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_signatures_can_be_switched_off(sim: Sim, http: httpx2.Client) -> None:
    sim.app.state.thinking_signatures = False
    data = body("[[sim:thinking]]", thinking={"type": "enabled", "budget_tokens": 1024})
    assert "signature" not in post(http, data).json()["content"][0]
    events = stream(http, data)
    assert "signature" not in json.dumps(events)


def test_long_stream_is_fast(http: httpx2.Client) -> None:
    t0 = time.perf_counter()
    events = stream(http, body("[[sim:long:2000]]"))
    assert sum(e["type"] == "content_block_delta" for e in events) == 2000
    assert time.perf_counter() - t0 < 3.0


# ---------------------------------------------------------------------------- quirks: requests


def test_glm_5_3_cannot_disable_thinking_on_either_endpoint(sim: Sim, http: httpx2.Client) -> None:
    for model in ("glm-5.3", "glm-5.3-flash", "GLM-5.3"):
        r = post(http, body(model=model, thinking={"type": "disabled"}))
        golden_error(r, 400, "invalid_request_error", "1210", ALWAYS_THINKS)
        chat = httpx2.post(
            f"{sim.url}/api/coding/paas/v4/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={
                "model": model,
                "thinking": {"type": "disabled"},
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
        assert chat.status_code == 400 and chat.json()["error"]["code"] == "1210"
        assert "cannot be disabled" in chat.json()["error"]["message"]
    # a bare request thinks anyway; other models think only when asked
    assert post(http, body(model="glm-5.3")).json()["content"][0]["type"] == "thinking"
    assert post(http, body(model="glm-4.7")).json()["content"][0]["type"] == "text"
    msg = post(http, body(model="glm-4.7", thinking={"type": "disabled"})).json()
    assert [b["type"] for b in msg["content"]] == ["text"]


@pytest.mark.parametrize(
    "model", ["glm-5.2[1m]", "glm-4.7[1m]", "claude-sonnet-4-5[1m]", "gpt-4o", "glm-9"]
)
def test_unknown_models_and_1m_suffix_are_1211(http: httpx2.Client, model: str) -> None:
    r = post(http, body(model=model))
    golden_error(r, 400, "invalid_request_error", "1211", "模型不存在，请检查模型代码。")


def test_missing_max_tokens_is_a_500(http: httpx2.Client) -> None:
    data = body()
    del data["max_tokens"]
    golden_error(
        post(http, data),
        500,
        "api_error",
        "500",
        "'>' not supported between instances of 'int' and 'NoneType'",
    )


def test_history_tool_use_with_array_input_is_a_500(http: httpx2.Client) -> None:
    data = body(
        messages=[
            {"role": "user", "content": "list"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "call_1", "name": "Bash", "input": ["ls"]}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "a.txt"}],
            },
        ],
        tools=[BASH_TOOL],
    )
    golden_error(
        post(http, data),
        500,
        "api_error",
        "500",
        "'ClaudeContentBlockToolResult' object has no attribute 'id'",
    )
    data["messages"][1]["content"][0]["input"] = {"command": "ls"}
    msg = post(http, data).json()
    assert msg["content"] == [{"type": "text", "text": "The command output was:\na.txt"}]


def test_empty_text_block_is_accepted(http: httpx2.Client) -> None:
    data = body(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": ""},
                    {"type": "text", "text": "real question"},
                ],
            }
        ]
    )
    assert post(http, data).json()["content"][0]["text"] == "You said: real question"


def test_images_only_for_vision_models(http: httpx2.Client) -> None:
    content = [{"type": "text", "text": "what is this"}, IMAGE]
    for model in ("glm-4.7", "glm-5.3"):
        r = post(http, body(model=model, messages=[{"role": "user", "content": content}]))
        golden_error(
            r,
            400,
            "invalid_request_error",
            "1210",
            "messages.content.type 参数非法，取值范围 ['text']",
        )
    msg = post(http, body(model="glm-5.3-flash", messages=[{"role": "user", "content": content}]))
    assert msg.json()["content"][-1]["text"] == "You said: what is this (with 1 attachment)"


def test_openai_shaped_tools_are_a_fastapi_422(http: httpx2.Client) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    r = post(http, body(tools=[tool]))
    assert r.status_code == 422
    assert r.json() == {
        "detail": [
            {
                "type": "missing",
                "loc": ["body", "tools", 0, "name"],
                "msg": "Field required",
                "input": tool,
            }
        ]
    }
    r = http.post("/v1/messages", content=b"[1, 2]")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body"]


def test_web_search_tool_needs_beta_query(http: httpx2.Client) -> None:
    data = body(tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}])
    golden_error(
        post(http, data), 400, "invalid_request_error", "1210", "API 调用参数有误，请检查文档。"
    )
    r = post(http, data, path="/v1/messages?beta=true")
    assert r.status_code == 200 and r.json()["content"][0]["type"] == "text"


def test_stop_sequences_and_max_tokens(http: httpx2.Client) -> None:
    msg = post(http, body("alpha STOP beta", stop_sequences=["beta", "STOP"])).json()
    assert msg["content"] == [{"type": "text", "text": "You said: alpha "}]
    assert msg["stop_reason"] == "stop_sequence" and msg["stop_sequence"] == "STOP"
    msg = post(http, body("x" * 400, max_tokens=5)).json()
    assert msg["stop_reason"] == "max_tokens" and msg["usage"]["output_tokens"] == 5
    assert msg["content"][0]["text"] == ("You said: " + "x" * 200)[:20]
    events = stream(http, body("[[sim:context_window]]"))
    assert events[-2]["delta"]["stop_reason"] == "model_context_window_exceeded"


def test_prompt_cache_is_reported_as_cache_reads(http: httpx2.Client) -> None:
    turn1 = [
        {"role": "user", "content": "first question " * 20},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": "again"},
    ]
    u1 = post(http, body(messages=turn1)).json()["usage"]
    assert u1["cache_read_input_tokens"] == 0
    turn2 = [*turn1, {"role": "assistant", "content": "sure"}, {"role": "user", "content": "more"}]
    events = stream(http, body(messages=turn2))
    u2 = events[-2]["usage"]
    assert u2["cache_read_input_tokens"] == u1["input_tokens"] > 0
    assert 0 < u2["input_tokens"] < u1["input_tokens"]  # input_tokens excludes cache reads


# ---------------------------------------------------------------------------- errors


def test_in_band_sse_error_ends_the_stream(http: httpx2.Client) -> None:
    for scenario, err_type, code in [
        ("network_error", "api_error", "1234"),
        ("sensitive", "invalid_request_error", "1301"),
    ]:
        r = post(http, body(stream=True), {"x-sim-scenario": scenario})
        assert r.status_code == 200
        events = sse(r.text)
        check_well_formed(events, complete=False)
        assert r.text.endswith(
            "event: error\ndata: "
            + json.dumps(events[-1], ensure_ascii=False, separators=(",", ":"))
            + "\n\n"
        )
        err = events[-1]
        rid = events[0]["message"]["id"]
        assert set(err) == {"type", "error"} and err["error"]["type"] == err_type
        assert err["error"]["code"] == code and err["error"]["message"].endswith(f"][{rid}]")
        types = [e["type"] for e in events]
        assert "message_stop" not in types and "message_delta" not in types
        assert types.count("content_block_delta") == (3 if scenario == "network_error" else 2)
    # without a stream to carry it, the failure is an error answer (1234 is a 400 on this host)
    golden_error(
        post(http, body(), {"x-sim-scenario": "network_error"}),
        400,
        "invalid_request_error",
        "1234",
        "网络错误，请稍后重试",
    )


@pytest.mark.parametrize(
    ("scenario", "status", "err_type"),
    [
        ("error:1113", 429, "rate_limit_error"),
        ("error:1302", 429, "rate_limit_error"),
        ("error:1305", 429, "rate_limit_error"),
        ("error:1308", 429, "rate_limit_error"),
        ("error:1310", 429, "rate_limit_error"),
        ("error:1210", 400, "invalid_request_error"),
        ("error:1211", 400, "invalid_request_error"),
        ("error:1213", 400, "invalid_request_error"),
        ("error:1234", 400, "invalid_request_error"),
        ("error:1002", 401, "authentication_error"),
        ("error:500", 500, "api_error"),
        ("overloaded", 529, "overloaded_error"),
    ],
)
def test_scripted_errors_have_zai_statuses(
    http: httpx2.Client, scenario: str, status: int, err_type: str
) -> None:
    for data, headers in [
        (body(), {"x-sim-scenario": scenario}),
        (body(f"please [[sim:{scenario}]]", stream=True), {}),
    ]:
        r = post(http, data, headers)
        assert r.status_code == status and r.json()["error"]["type"] == err_type
        assert "retry-after" not in r.headers
        assert r.json()["error"]["message"].endswith(f"][{r.json()['request_id']}]")


def test_overloaded_and_quota_texts(http: httpx2.Client) -> None:
    r = post(http, body(), {"x-sim-scenario": "overloaded"})
    golden_error(
        r,
        529,
        "overloaded_error",
        "1305",
        "The service may be temporarily overloaded, please try again later",
    )
    msg = post(http, body(), {"x-sim-scenario": "error:1308"}).json()["error"]["message"]
    assert re.fullmatch(
        rf"\[1308\]\[已达到 5 小时的使用上限。您的限额将在 {BEIJING_TIME} 重置。\]"
        r"\[\d{14}[0-9a-f]{16}\]",
        msg,
    ), msg
    msg = post(http, body(), {"x-sim-scenario": "error:1310"}).json()["error"]["message"]
    assert "2099" not in msg and re.search(BEIJING_TIME, msg)


def test_bad_scripts_are_loud(http: httpx2.Client) -> None:
    for r in (
        post(http, body("[[sim:nonsense]]")),
        post(http, body(), {"x-sim-script": '{"bogus": 1}'}),
    ):
        status, err_type, code = error_of(r)
        assert (status, err_type, code) == (400, "invalid_request_error", "1210")
        assert "Simulator:" in r.json()["error"]["message"]


def test_cut_stream_and_body(http: httpx2.Client) -> None:
    r = post(http, body(stream=True), {"x-sim-scenario": "cut"})
    events = sse(r.text)
    check_well_formed(events, complete=False)
    assert [e["type"] for e in events][-1] == "content_block_delta"
    r = post(http, body(), {"x-sim-scenario": "cut"})
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)


# ---------------------------------------------------------------------------- script selection


def test_script_sources_header_directive_queue(sim: Sim, http: httpx2.Client) -> None:
    sim.app.state.script_queue.extend([Script(text="one"), Script(text="two")])
    r = post(http, body("[[sim:text]]"), {"x-sim-script": json.dumps({"text": "from header"})})
    assert r.json()["content"] == [{"type": "text", "text": "from header"}]
    data = body(
        system=[{"type": "text", "text": "You are Claude Code."}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>r</system-reminder>"},
                    {"type": "text", "text": 'do [[sim:{"text": "scripted", "reasoning": "hmm"}]]'},
                ],
            }
        ],
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    content = post(http, data).json()["content"]
    assert content[0]["thinking"] == "hmm" and content[1] == {"type": "text", "text": "scripted"}
    texts = [post(http, body()).json()["content"][0]["text"] for _ in range(3)]
    assert texts == ["one", "two", "You said: hi"]


def test_queued_tool_script_and_directive_does_not_loop(sim: Sim, http: httpx2.Client) -> None:
    sim.app.state.script_queue.append(
        Script(
            reasoning="calling",
            tool_calls=[
                ScriptToolCall(name="get_weather", id="call_fixed", arguments={"city": "Paris"})
            ],
        )
    )
    tools = [BASH_TOOL, WEATHER_TOOL]
    msg = post(
        http,
        body(
            "weather? [[sim:bash:ls]]",
            tools=tools,
            thinking={"type": "enabled", "budget_tokens": 1024},
        ),
    ).json()
    # the directive beats the queue: thinking, then a Bash call
    assert [b["type"] for b in msg["content"]] == ["thinking", "tool_use"]
    assert msg["content"][1]["input"] == {"command": "ls", "description": "Run ls"}
    assert msg["stop_reason"] == "tool_use"
    follow_up = body(
        tools=tools,
        messages=[
            {"role": "user", "content": "weather? [[sim:bash:ls]]"},
            {"role": "assistant", "content": msg["content"]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": msg["content"][-1]["id"],
                        "content": [{"type": "text", "text": "sunny"}],
                    }
                ],
            },
        ],
    )
    # the queued script answers now (directives are read from the current turn only)
    msg2 = post(http, follow_up).json()
    assert msg2["content"] == [
        {"type": "tool_use", "id": "call_fixed", "name": "get_weather", "input": {"city": "Paris"}}
    ]
    msg3 = post(http, follow_up).json()
    assert msg3["content"] == [{"type": "text", "text": "The command output was:\nsunny"}]


def test_requests_are_recorded_as_sent(sim: Sim, http: httpx2.Client) -> None:
    data = body("record me", metadata={"user_id": "u1"}, cache_control={"type": "ephemeral"})
    post(http, data)
    post(http, {"model": "glm-4.7"}, path="/v1/messages/count_tokens")
    assert sim.app.state.requests == [data, {"model": "glm-4.7"}]


# ---------------------------------------------------------------------------- latency, cancellation


def test_latency_and_client_disconnect_cancel_the_stream(sim: Sim) -> None:
    sim.app.state.latency = 0.05
    headers = {"x-api-key": KEY, "x-sim-scenario": "slow:0.2"}
    with (
        httpx2.Client(base_url=sim.base) as c,
        c.stream("POST", "/v1/messages", json=body(stream=True), headers=headers) as r,
    ):
        assert r.status_code == 200
        chunks = r.iter_bytes()  # keep a reference: dropping it closes the connection
        assert next(chunks).startswith(b"event: message_start\n")
        assert sim.app.state.active_streams == 1
    deadline = time.monotonic() + 5
    while sim.app.state.cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sim.app.state.cancelled == 1 and sim.app.state.active_streams == 0
