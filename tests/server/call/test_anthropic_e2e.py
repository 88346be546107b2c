"""End to end: the official anthropic SDK → glmbridge (uvicorn) → the GLM simulator (uvicorn).

Every stream that is read raw also goes through the library's grammar validator.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from starlette.applications import Starlette

from glmbridge.grammar import validate_anthropic_stream
from glmbridge.routing import model_info
from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from glmbridge_server.simulator import Script, ScriptToolCall, create_simulator_app
from tests.support.messages import text_of, user
from tests.support.servers import MakeSettings, RunningServer, Start
from tests.support.simulator import chats
from tests.support.sse import sse_events
from tests.support.tools import CLOCK, WEATHER

pytestmark = pytest.mark.e2e

SONNET = "claude-sonnet-4-5"  # -> glm-4.7 (tool_stream capable)
HAIKU = "claude-haiku-4-5"  # -> glm-4.5-air (no tool_stream)


def last_chat(sim: RunningServer) -> dict[str, Any]:
    """The last chat-completions body the simulator received (not a tokenizer body: those
    carry ``messages`` too, which is all ``tests.support.simulator.chats`` looks for)."""
    chats = [r for r in sim.app.state.requests if "max_tokens" in r or "stream" in r]
    assert chats, "the simulator received no chat request"
    return chats[-1]


def post_stream(url: str, body: dict[str, Any], **headers: str) -> tuple[httpx2.Response, bytes]:
    body = {"max_tokens": 256, "stream": True, **body}
    response = httpx2.post(f"{url}/v1/messages", json=body, headers=headers, timeout=30)
    return response, response.content


# --- basic answers -------------------------------------------------------------------------


def test_non_stream(client: anthropic.Anthropic, sim: RunningServer) -> None:
    raw = client.messages.with_raw_response.create(
        model=SONNET, max_tokens=256, messages=user("hello")
    )
    message = raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert message.model == SONNET and message.role == "assistant"
    assert text_of(message) == "You said: hello"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert last_chat(sim)["model"] == "glm-5.3"


def test_stream_with_sdk_helpers(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=SONNET, max_tokens=256, messages=user("stream me")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You said: stream me" == text_of(final)
    assert final.stop_reason == "end_turn" and final.model == SONNET
    assert final.usage.output_tokens > 0


def test_stream_is_grammatical_and_committed_late(bridge: RunningServer) -> None:
    response, raw = post_stream(bridge.url, {"model": SONNET, "messages": user("hi")})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["request-id"].startswith("req_")
    assert "content-length" not in response.headers
    validate_anthropic_stream(raw)
    events = sse_events(raw)
    assert events[0][0] == "message_start" and events[-1][0] == "message_stop"
    assert events[0][1]["message"]["usage"]["input_tokens"] > 0  # the local estimate


def test_beta_query_parameter(client: anthropic.Anthropic, bridge: RunningServer) -> None:
    message = client.beta.messages.create(model=SONNET, max_tokens=64, messages=user("beta"))
    assert "You said: beta" in "".join(b.text for b in message.content if b.type == "text")
    response = httpx2.post(
        f"{bridge.url}/v1/messages?beta=true",
        json={"model": SONNET, "max_tokens": 64, "messages": user("q")},
    )
    assert response.status_code == 200 and response.json()["type"] == "message"


def test_thinking_and_text(client: anthropic.Anthropic) -> None:
    kwargs: dict[str, Any] = {
        "model": SONNET,
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": user("think first [[sim:thinking]]"),
    }
    for message in (
        client.messages.create(**kwargs),
        _final(client, **kwargs),
    ):
        assert [b.type for b in message.content] == ["thinking", "text"]
        thinking = message.content[0]
        assert thinking.thinking.strip().startswith("Let me think") and thinking.signature
        assert text_of(message).startswith("You said: think first")


@pytest.mark.parametrize(
    ("model", "thinking"),
    [(SONNET, None), (SONNET, {"type": "disabled"}), ("glm-5.3", {"type": "disabled"})],
)
def test_no_thinking_blocks_the_client_did_not_ask_for(
    client: anthropic.Anthropic, sim: RunningServer, model: str, thinking: Any
) -> None:
    # Claude Code's WebFetch sends thinking disabled and reads only content[0]; GLM reasons
    # anyway (GLM-5.3 cannot stop): the answer carries no thinking block (issue 11).
    kwargs: dict[str, Any] = {"model": model, "max_tokens": 4096,
                              "messages": user("summarise [[sim:thinking]]")}  # fmt: skip
    if thinking is not None:
        kwargs["thinking"] = thinking
    for message in (client.messages.create(**kwargs), _final(client, **kwargs)):
        assert [b.type for b in message.content] == ["text"]
        assert message.content[0].text.startswith("You said: summarise")
        if thinking is None or model == "glm-5.3":  # GLM reasoned: it is still counted
            assert message.usage.output_tokens > len(message.content[0].text) // 4 + 5
    sent = last_chat(sim)
    if model == "glm-5.3":  # never "disabled" to an always-thinking model (it answers 1210)
        assert "thinking" not in sent or sent["thinking"]["type"] == "enabled"


def _final(client: anthropic.Anthropic, **kwargs: Any) -> Any:
    with client.messages.stream(**kwargs) as stream:
        return stream.get_final_message()


@pytest.mark.parametrize(
    "system",
    [
        "You are terse.",
        [
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Answer in English.", "cache_control": {"type": "ephemeral"}},
        ],
    ],
)
def test_system_string_and_blocks(
    client: anthropic.Anthropic, sim: RunningServer, system: Any
) -> None:
    client.messages.create(model=SONNET, max_tokens=64, system=system, messages=user("x"))
    first = last_chat(sim)["messages"][0]
    assert first["role"] == "system"
    content = (
        first["content"] if isinstance(first["content"], str) else json.dumps(first["content"])
    )
    assert "You are terse." in content
    if isinstance(system, list):
        assert "Answer in English." in content


# --- tools ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "tool_stream"), [(SONNET, True), (HAIKU, False)])
@pytest.mark.parametrize("streamed", [False, True])
def test_one_tool_call(
    client: anthropic.Anthropic, sim: RunningServer, model: str, tool_stream: bool, streamed: bool
) -> None:
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": 512,
        "tools": [WEATHER],
        "messages": user("weather? [[sim:tool]]"),
    }
    message = _final(client, **kwargs) if streamed else client.messages.create(**kwargs)
    assert message.stop_reason == "tool_use"
    calls = [b for b in message.content if b.type == "tool_use"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather" and calls[0].input == {"location": "Paris"}
    assert calls[0].id
    assert bool(last_chat(sim).get("tool_stream")) is (tool_stream and streamed)


@pytest.mark.parametrize(("model", "streamed"), [(SONNET, True), (HAIKU, True), (SONNET, False)])
def test_two_parallel_tool_calls(
    client: anthropic.Anthropic, sim: RunningServer, model: str, streamed: bool
) -> None:
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": 512,
        "tools": [WEATHER, CLOCK],
        "messages": user("both [[sim:parallel_tools]]"),
    }
    message = _final(client, **kwargs) if streamed else client.messages.create(**kwargs)
    calls = [b for b in message.content if b.type == "tool_use"]
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert calls[0].input == {"location": "Paris"}
    assert calls[1].input == {"timezone": "Europe/Paris"}
    assert calls[0].id != calls[1].id
    assert message.stop_reason == "tool_use"


def test_tool_round_trip_with_prior_thinking(
    client: anthropic.Anthropic, sim: RunningServer
) -> None:
    first = client.messages.create(
        model=SONNET,
        max_tokens=1024,
        tools=[WEATHER],
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=user("weather in Paris? [[sim:tool]]"),
    )
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    call = first.content[1]
    history = [
        *user("weather in Paris? [[sim:tool]]"),
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": "22C and sunny"},
            ],
        },
    ]
    with client.messages.stream(
        model=SONNET,
        max_tokens=1024,
        tools=[WEATHER],
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=history,
    ) as stream:
        final = stream.get_final_message()
    assert "22C and sunny" in text_of(final)
    sent = last_chat(sim)["messages"]
    assistant = next(m for m in sent if m["role"] == "assistant")
    assert assistant["reasoning_content"].strip() == first.content[0].thinking.strip()
    assert assistant["tool_calls"][0]["id"] == call.id
    tool = next(m for m in sent if m["role"] == "tool")
    assert tool["tool_call_id"] == call.id and "22C and sunny" in json.dumps(tool["content"])


# --- errors --------------------------------------------------------------------------------

ERROR_CASES = [
    ("1261", anthropic.BadRequestError, 400, "invalid_request_error", "Prompt exceeds max length"),
    # 1302 is held in the bridge first (tests/server/test_throttle_hold.py)
    ("1303", anthropic.RateLimitError, 429, "rate_limit_error", "High frequency"),
    ("1113", anthropic.RateLimitError, 429, "rate_limit_error", "Insufficient balance"),
    ("1002", anthropic.AuthenticationError, 401, "authentication_error", "token is invalid"),
    ("500", anthropic.InternalServerError, 500, "api_error", ""),
]


@pytest.mark.parametrize(("code", "exc_type", "status", "error_type", "text"), ERROR_CASES)
@pytest.mark.parametrize("streamed", [False, True])
def test_upstream_errors_map_to_sdk_exceptions(
    client: anthropic.Anthropic,
    code: str,
    exc_type: type[anthropic.APIStatusError],
    status: int,
    error_type: str,
    text: str,
    streamed: bool,
) -> None:
    with pytest.raises(exc_type) as info:
        if streamed:  # the error comes before the first event: a real HTTP status
            with client.messages.stream(
                model=SONNET, max_tokens=64, messages=user(f"[[sim:error:{code}]]")
            ) as stream:
                stream.get_final_message()
        else:
            client.messages.create(
                model=SONNET, max_tokens=64, messages=user(f"[[sim:error:{code}]]")
            )
    err = info.value
    assert err.status_code == status
    assert isinstance(err.body, dict) and err.body["type"] == "error"
    assert err.body["error"]["type"] == error_type
    assert text in err.body["error"]["message"]
    assert err.response.headers["request-id"] == err.body["request_id"]


def test_mid_stream_network_error_raises_in_sdk(client: anthropic.Anthropic) -> None:
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(
            model=SONNET, max_tokens=256, messages=user("[[sim:network_error]]")
        ) as stream,
    ):
        for event in stream:
            if event.type == "text":
                received.append(event.text)
    assert received, "text before the failure must reach the client"
    assert info.value.body["error"]["type"] in ("api_error", "overloaded_error")  # type: ignore[index]


def test_mid_stream_error_is_a_grammatical_error_event(bridge: RunningServer) -> None:
    response, raw = post_stream(
        bridge.url, {"model": SONNET, "messages": user("[[sim:network_error]]")}
    )
    assert response.status_code == 200
    validate_anthropic_stream(raw)
    assert sse_events(raw)[-1][0] == "error"


def test_retry_after_is_passed_on_for_429(
    start_server: Start, bridge_settings: MakeSettings
) -> None:
    def upstream(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            429,
            headers={"retry-after": "120"},
            json={"error": {"code": "1302", "message": "slow down"}},
        )

    server = start_server(
        create_app(bridge_settings("http://glm.invalid"), transport=httpx2.MockTransport(upstream))
    )
    response = httpx2.post(
        f"{server.url}/v1/messages", json={"model": SONNET, "max_tokens": 8, "messages": user("x")}
    )
    assert response.status_code == 429 and response.headers["retry-after"] == "120"
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error" and "slow down" in error["message"]


def test_throttled_request_is_retried(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    server = start_server(create_app(bridge_settings(sim.url, max_retries=2)))
    sim.app.state.script_queue.append(Script(error={"status": 429, "code": "1302"}))  # type: ignore[arg-type]
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as sdk:
        message = sdk.messages.create(model=SONNET, max_tokens=64, messages=user("again"))
    assert text_of(message) == "You said: again"
    assert len(chats(sim)) == 2


# --- unicode, volume, cancellation, pings ----------------------------------------------------


def test_unicode_round_trips(client: anthropic.Anthropic, sim: RunningServer) -> None:
    text = "Grüße 👩‍💻 — 你好，世界！🇯🇵 naïve café ∑ 𝄞"
    for streamed in (False, True):
        sim.app.state.script_queue.append(Script(text=text, reasoning="", chunk_size=1))
        kwargs: dict[str, Any] = {"model": SONNET, "max_tokens": 256, "messages": user("你好 🌍")}
        message = _final(client, **kwargs) if streamed else client.messages.create(**kwargs)
        assert text_of(message) == text
    assert "你好 🌍" in json.dumps(last_chat(sim)["messages"], ensure_ascii=False)


async def _byte_by_byte(data: bytes) -> AsyncIterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


def test_multibyte_characters_split_across_upstream_reads(
    start_server: Start, bridge_settings: MakeSettings
) -> None:
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "你好🌍"}}]},
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "é👩‍💻"}}]},
        {
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        },
    ]
    body = (
        b"".join(
            b"data: "
            + json.dumps(
                {"id": "1", "created": 1, "model": "glm-4.7", **c}, ensure_ascii=False
            ).encode()
            + b"\n\n"
            for c in chunks
        )
        + b"data: [DONE]\n\n"
    )

    def upstream(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=_byte_by_byte(body)
        )

    server = start_server(
        create_app(bridge_settings("http://glm.invalid"), transport=httpx2.MockTransport(upstream))
    )
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as sdk:
        final = _final(sdk, model=SONNET, max_tokens=64, messages=user("x"))
    assert text_of(final) == "你好🌍é👩‍💻"


def test_two_thousand_chunk_stream(client: anthropic.Anthropic, bridge: RunningServer) -> None:
    response, raw = post_stream(
        bridge.url, {"model": HAIKU, "max_tokens": 20000, "messages": user("[[sim:long:2000]]")}
    )
    validate_anthropic_stream(raw)
    deltas = [
        e
        for name, e in sse_events(raw)
        if name == "content_block_delta" and e["delta"]["type"] == "text_delta"
    ]
    assert len(deltas) == 2000
    streamed_text = "".join(d["delta"]["text"] for d in deltas)
    whole = client.messages.create(
        model=HAIKU, max_tokens=20000, messages=user("[[sim:long:2000]]")
    )
    assert text_of(whole) == streamed_text


def test_client_disconnect_cancels_upstream(bridge: RunningServer, sim: RunningServer) -> None:
    body = {
        "model": SONNET,
        "max_tokens": 256,
        "stream": True,
        "messages": user("[[sim:slow:0.2]]"),
    }
    with (
        httpx2.Client(timeout=10) as http,
        http.stream("POST", f"{bridge.url}/v1/messages", json=body) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            if b"text_delta" in chunk:
                break
    started = time.monotonic()
    while sim.app.state.cancelled < 1 and time.monotonic() - started < 3:
        time.sleep(0.02)
    assert sim.app.state.cancelled == 1, "the upstream stream was not cancelled"
    assert time.monotonic() - started < 1.5  # at once, not after the remaining ~3 s


@pytest.mark.parametrize("stream", [True, False])
def test_disconnect_before_first_output_cancels_upstream(
    start_server: Callable[[Starlette], RunningServer],
    bridge_settings: Callable[..., Settings],
    stream: bool,
) -> None:
    # The upstream is "queued" for 5 s before answering anything; a client that gives up
    # after 0.3 s must take the upstream request down with it at once, not 5 s later.
    slow_sim = start_server(create_simulator_app(latency=5.0))
    slow_bridge = start_server(create_app(bridge_settings(slow_sim.url)))
    body = {"model": SONNET, "max_tokens": 64, "stream": stream, "messages": user("hi")}
    with httpx2.Client(timeout=0.3) as http, pytest.raises(httpx2.ReadTimeout):
        http.post(f"{slow_bridge.url}/v1/messages", json=body)
    started = time.monotonic()
    while slow_sim.app.state.cancelled < 1 and time.monotonic() - started < 4:
        time.sleep(0.02)
    assert slow_sim.app.state.cancelled == 1, "the upstream request was not cancelled"
    assert time.monotonic() - started < 1.5


def test_pings_while_upstream_is_idle(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    server = start_server(create_app(bridge_settings(sim.url, ping_interval=0.05)))
    sim.app.state.script_queue.append(
        Script(text="a b c d", reasoning="", chunk_count=4, delay=0.3)
    )
    response, raw = post_stream(server.url, {"model": SONNET, "messages": user("slow")})
    validate_anthropic_stream(raw)
    names = [name for name, _ in sse_events(raw)]
    assert names[0] == "message_start"
    assert names.count("ping") >= 3


# --- count_tokens, models, admin ------------------------------------------------------------


def test_count_tokens_uses_the_upstream_tokenizer(
    client: anthropic.Anthropic, sim: RunningServer
) -> None:
    short = client.messages.count_tokens(model=SONNET, messages=user("hi"))
    long = client.messages.count_tokens(
        model=SONNET, messages=user("hello there " * 200), tools=[WEATHER]
    )
    assert 0 < short.input_tokens < long.input_tokens
    tokenizer_body = sim.app.state.requests[-1]
    assert set(tokenizer_body) <= {"model", "messages", "tools"} and "tools" in tokenizer_body
    # a model the tokenizer accepts (OAS enum), whatever the routed chat model (glm-4.7)
    assert tokenizer_body["model"] == "glm-4.6"


def test_count_tokens_falls_back_to_the_local_estimate(
    start_server: Start, bridge_settings: MakeSettings
) -> None:
    calls: list[str] = []

    def upstream(request: httpx2.Request) -> httpx2.Response:
        calls.append(request.url.path)
        return httpx2.Response(
            404, json={"error": {"code": "1222", "message": "The API does not exist."}}
        )

    server = start_server(
        create_app(bridge_settings("http://glm.invalid"), transport=httpx2.MockTransport(upstream))
    )
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as sdk:
        a = sdk.messages.count_tokens(model=SONNET, messages=user("hi"))
        b = sdk.messages.count_tokens(model=SONNET, messages=user("a much longer message " * 50))
    assert 0 < a.input_tokens < b.input_tokens
    assert calls == ["/api/paas/v4/tokenizer"]  # the documented path; a 404 is remembered


@pytest.mark.parametrize("status", [401, 429, 500])
def test_a_failing_tokenizer_is_remembered_and_cools_no_key(
    start_server: Start, bridge_settings: MakeSettings, status: int
) -> None:
    calls: list[str] = []

    def upstream(request: httpx2.Request) -> httpx2.Response:
        calls.append(request.url.path)
        if request.url.path.endswith("/tokenizer"):  # a Coding Plan key there: 1113 (or worse)
            code = {401: "1002", 429: "1113", 500: "500"}[status]
            return httpx2.Response(status, json={"error": {"code": code, "message": "no"}})
        return httpx2.Response(200, json={"choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "hi"}}]})  # fmt: skip

    server = start_server(
        create_app(
            bridge_settings("http://glm.invalid"),  # -> .../api/coding/paas/v4
            transport=httpx2.MockTransport(upstream),
        )  # fmt: skip
    )
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as sdk:
        counts = [sdk.messages.count_tokens(model=SONNET, messages=user("hi" * n)).input_tokens
                  for n in (1, 50, 100)]  # fmt: skip
        # the one key was not cooled down: chat still works
        assert sdk.messages.create(model=SONNET, max_tokens=64, messages=user("hi")).content
    assert 0 < counts[0] < counts[1] < counts[2]  # the local estimate
    assert calls.count("/api/paas/v4/tokenizer") == 1  # remembered: asked once


def test_models_list_and_retrieve(client: anthropic.Anthropic) -> None:
    ids = [m.id for m in client.models.list()]
    for expected in (
        "claude-opus-4-5",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "glm-5.3",
        "glm-5.3-flash",
    ):
        assert expected in ids
    assert len(ids) == len(set(ids))
    assert [m.id for m in client.models.list(limit=3)] == ids  # auto-pagination
    info = client.models.retrieve("claude-sonnet-4-5")
    assert info.type == "model" and "glm-5.3" in info.display_name
    assert info.created_at.year >= 2024
    # The real window and output cap of the GLM model behind each id (not Claude's).
    for model_id in ("claude-sonnet-4-5", "glm-5.3-flash", "claude-haiku-4-5", "glm-5.3"):
        raw = client.models.retrieve(model_id).model_dump()
        spec = model_info(raw["display_name"].partition("GLM: ")[2].rstrip(")") or model_id)
        assert (raw["max_input_tokens"], raw["max_tokens"]) == (
            spec.context_window, spec.max_output), model_id  # fmt: skip
    windows = {m.id: m.model_dump()["max_input_tokens"] for m in client.models.list()}
    assert all(isinstance(w, int) and w > 0 for w in windows.values())
    with pytest.raises(anthropic.NotFoundError) as err:
        client.models.retrieve("no-such-model")
    assert err.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_root_head_and_health(bridge: RunningServer, sim: RunningServer, sim_key: str) -> None:
    head = httpx2.head(f"{bridge.url}/")
    assert head.status_code == 200 and head.headers["request-id"].startswith("req_")
    assert httpx2.get(f"{bridge.url}/").status_code == 200
    health = httpx2.get(f"{bridge.url}/health")
    data = health.json()
    assert (
        data["status"] == "ok" and data["version"] and data["keys"] == 1 and data["mock"] is False
    )
    assert data["upstream"] == sim.url.removeprefix("http://")
    assert sim_key not in health.text


def test_request_errors_are_native(bridge: RunningServer) -> None:
    cases = [
        (
            httpx2.post(f"{bridge.url}/v1/messages", content=b"{not json"),
            400,
            "invalid_request_error",
        ),
        (
            httpx2.post(f"{bridge.url}/v1/messages", json={"model": SONNET}),
            400,
            "invalid_request_error",
        ),
        # A shared or unknown /v1 path answers Anthropic clients (by their headers) in kind.
        (
            httpx2.get(f"{bridge.url}/v1/nope", headers={"anthropic-version": "2023-06-01"}),
            404,
            "not_found_error",
        ),
        (httpx2.get(f"{bridge.url}/v1/messages"), 405, "invalid_request_error"),
    ]
    for response, status, error_type in cases:
        assert response.status_code == status
        body = response.json()
        assert body["type"] == "error" and body["error"]["type"] == error_type
        assert body["request_id"] == response.headers["request-id"]


def test_body_limit(start_server: Start, sim: RunningServer, bridge_settings: MakeSettings) -> None:
    server = start_server(create_app(bridge_settings(sim.url, max_body_bytes=4096)))
    big = {"model": SONNET, "max_tokens": 8, "messages": user("x" * 10_000)}
    response = httpx2.post(f"{server.url}/v1/messages", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"

    def chunked() -> Any:  # no content-length: refused while reading
        yield b'{"model": "x", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}]}'

    response = httpx2.post(f"{server.url}/v1/messages", content=chunked())
    assert response.status_code == 413
    ok = httpx2.post(
        f"{server.url}/v1/messages", json={"model": SONNET, "max_tokens": 8, "messages": user("ok")}
    )
    assert ok.status_code == 200


def test_unexpected_exception_is_a_clean_api_error(
    start_server: Start,
    sim: RunningServer,
    caplog: pytest.LogCaptureFixture,
    bridge_settings: MakeSettings,
) -> None:
    app = create_app(bridge_settings(sim.url))
    app.state.route_table = object()  # makes routing crash inside the request
    server = start_server(app)
    with caplog.at_level(logging.ERROR, logger="glmbridge.server"):
        response = httpx2.post(
            f"{server.url}/v1/messages",
            json={"model": SONNET, "max_tokens": 8, "messages": user("x")},
        )
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "api_error"
    assert "Traceback" not in response.text and "AttributeError" not in response.text
    assert "Traceback" in caplog.text  # the operator still gets it


# --- configuration through the server ---------------------------------------------------------


def test_no_key_answers_401_with_instructions(start_server: Start) -> None:
    server = start_server(create_app(Settings(upstream="zai")))
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as sdk:
        for stream in (False, True):
            with pytest.raises(anthropic.AuthenticationError) as info:
                sdk.messages.create(model=SONNET, max_tokens=8, messages=user("x"), stream=stream)
            assert "ZAI_API_KEY" in str(info.value) and "--mock" in str(info.value)
        count = sdk.messages.count_tokens(model=SONNET, messages=user("hello world"))
        assert count.input_tokens > 0
    assert httpx2.get(f"{server.url}/health").json()["keys"] == 0


def test_model_override_header(client: anthropic.Anthropic, sim: RunningServer) -> None:
    message = client.messages.create(
        model=SONNET,
        max_tokens=8,
        messages=user("x"),
        extra_headers={"x-glmbridge-model": "glm-4.5-air"},
    )
    assert last_chat(sim)["model"] == "glm-4.5-air" and message.model == SONNET


def test_configured_model_map_and_thinking_default(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    settings = bridge_settings(
        sim.url, models={"sonnet": "glm-4.6", "haiku": "glm-4.5"}, thinking="disabled"
    )
    server = start_server(create_app(settings))
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as sdk:
        message = sdk.messages.create(model=SONNET, max_tokens=8, messages=user("x"))
        assert [b.type for b in message.content] == ["text"]
        sent = last_chat(sim)
        assert sent["model"] == "glm-4.6" and sent["thinking"] == {"type": "disabled"}
        assert "glm-4.6" in sdk.models.retrieve(SONNET).display_name


def test_key_failover_and_no_keys_in_logs(
    start_server: Start,
    sim: RunningServer,
    caplog: pytest.LogCaptureFixture,
    bridge_settings: MakeSettings,
    sim_key: str,
) -> None:
    settings = bridge_settings(sim.url, api_keys=("bad-key", "broke-key", sim_key))
    server = start_server(create_app(settings))
    caplog.set_level(logging.DEBUG)
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as sdk:
        for i in range(6):
            message = sdk.messages.create(
                model=SONNET,
                max_tokens=256,
                messages=user(f"x{i}"),
                extra_headers={"x-claude-code-session-id": f"session-{i}"},
            )
            assert text_of(message) == f"You said: x{i}"
    health = httpx2.get(f"{server.url}/health").json()
    assert health["keys"] == 3 and health["keys_healthy"] == 1
    for secret in ("bad-key", "broke-key", sim_key):
        assert secret not in caplog.text
    assert "key #" in caplog.text and "latency_ms" in caplog.text


def test_mock_mode_serves_without_a_key(start_server: Start) -> None:
    server = start_server(create_app(Settings(mock=True)))
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as sdk:
        message = sdk.messages.create(model=SONNET, max_tokens=64, messages=user("mocked"))
        assert text_of(message) == "You said: mocked"
        final = _final(
            sdk, model=SONNET, max_tokens=256, tools=[WEATHER], messages=user("[[sim:tool]]")
        )
        assert final.stop_reason == "tool_use"
        assert sdk.messages.count_tokens(model=SONNET, messages=user("hi")).input_tokens > 0
    health = httpx2.get(f"{server.url}/health").json()
    assert health["mock"] is True and health["upstream"] == "mock"


# --- recorded Claude Code traffic -------------------------------------------------------------

CLAUDE_CODE = Path(__file__).parents[2] / "fixtures" / "claude_code"
RECORDED = sorted(p.name for p in CLAUDE_CODE.glob("request_*.json"))


def claude_code_headers() -> dict[str, str]:
    headers = json.loads((CLAUDE_CODE / "headers.json").read_text())
    return {
        k: v for k, v in headers.items() if k.lower() not in ("authorization", "content-length")
    }


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_claude_code_requests(
    bridge: RunningServer, sim: RunningServer, name: str
) -> None:
    body = json.loads((CLAUDE_CODE / name).read_text())
    body["stream"] = True
    response = httpx2.post(
        f"{bridge.url}/v1/messages?beta=true",
        json=body,
        headers={**claude_code_headers(), "authorization": "Bearer glmbridge"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    validate_anthropic_stream(response.content)
    assert last_chat(sim)["stream"] is True


def sdk_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    """A recorded body as SDK arguments; fields the SDK does not model go in extra_body."""
    known = {
        "model",
        "messages",
        "system",
        "tools",
        "metadata",
        "max_tokens",
        "thinking",
        "output_config",
    }
    extra = {k: v for k, v in body.items() if k not in known and k != "stream"}
    return {**{k: v for k, v in body.items() if k in known}, "extra_body": extra}


def test_recorded_claude_code_tool_run(bridge: RunningServer, sim: RunningServer) -> None:
    headers = {**claude_code_headers(), "authorization": "Bearer glmbridge"}
    turn = json.loads((CLAUDE_CODE / "request_tool_use_turn.json").read_text())
    sim.app.state.script_queue.append(
        Script(
            reasoning="I will run it.",
            tool_calls=[
                ScriptToolCall(
                    name="Bash",
                    arguments={"command": "echo hello-from-tool", "description": "Echo"},
                )
            ],
        )
    )
    with anthropic.Anthropic(base_url=bridge.url, api_key="x", max_retries=0) as sdk:
        with sdk.messages.stream(**sdk_kwargs(turn), extra_headers=headers) as stream:
            first = stream.get_final_message()
        call = next(b for b in first.content if b.type == "tool_use")
        assert call.name == "Bash" and "echo hello-from-tool" in call.input["command"]
        follow = json.loads((CLAUDE_CODE / "request_tool_result.json").read_text())
        with sdk.messages.stream(**sdk_kwargs(follow), extra_headers=headers) as stream:
            final = stream.get_final_message()
    assert "hello-from-tool" in text_of(final)
    assert any(m["role"] == "tool" for m in last_chat(sim)["messages"])


# --- the model is not in the plan (issue 11) --------------------------------------------------


def test_a_model_outside_the_plan_is_a_clear_error_and_cools_no_key(
    client: anthropic.Anthropic, sim: RunningServer
) -> None:
    # refused by routing before it reaches the Coding Plan (glm-4.6v is a 404 there)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(model="glm-4.6v", max_tokens=64, messages=user("hi"))
    assert "glm-4.6v" in refused.value.message and "Coding Plan" in refused.value.message
    # an unknown model: the plan endpoint's 1214 "modelCode: does not exist" (codex-router#244)
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="glm-9", max_tokens=64, messages=user("hi"))
    assert "glm-9" in missing.value.message and "Coding Plan" in missing.value.message
    # 1311 "plan does not include the model" (hermes-agent#51476): 403, never "quota"
    with pytest.raises(anthropic.PermissionDeniedError) as gated:
        client.messages.create(model=SONNET, max_tokens=64, messages=user("[[sim:error:1311]]"))
    assert "glm-5.3" in gated.value.message and "quota" not in gated.value.message
    # the only key was not cooled down: the next request is served
    assert client.messages.create(model=SONNET, max_tokens=1024, messages=user("ok")).content


@pytest.mark.parametrize(("effort", "sent"), [("low", "low"), ("medium", "high"), (None, None)])
def test_effort_reaches_glm_as_reasoning_effort(
    client: anthropic.Anthropic, sim: RunningServer, effort: str | None, sent: str | None
) -> None:
    # output_config.effort -> GLM reasoning_effort, rounded to what glm-5.3 accepts (THINK53)
    extra = {"output_config": {"effort": effort}} if effort else {}
    message = client.messages.create(model="glm-5.3", max_tokens=1024,
                                     messages=user("hi"), extra_body=extra)  # fmt: skip
    assert message.content
    chat = last_chat(sim)
    assert chat["model"] == "glm-5.3" and chat.get("reasoning_effort") == sent
