"""End to end: the official openai SDK (sync and async) → glmbridge (uvicorn) → the GLM
simulator (uvicorn), on ``POST /v1/chat/completions`` and the shared ``/v1/models``.

Every stream that is read raw also goes through the library's chat grammar validator.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from glmbridge.protocols.openai.grammar import validate_chat_stream
from glmbridge.protocols.openai.stream import TRUNCATED_MESSAGE
from glmbridge.protocols.openai.wire import NETWORK_ERROR_MESSAGE
from glmbridge_server.edge.app import create_app
from glmbridge_server.simulator import Script, ScriptToolCall
from tests.support import tools
from tests.support.error_bodies import assert_openai_error
from tests.support.messages import user
from tests.support.servers import MakeSettings, RunningServer, Start
from tests.support.simulator import last_chat

pytestmark = pytest.mark.e2e

MODEL = "gpt-4o"  # not a GLM name: routed to the default model (glm-4.7, tool_stream)
AIR = "glm-4.5-air"  # no tool_stream: whole tool calls upstream
MODES = ["sync", "async"]
WEATHER = tools.function_tool(tools.WEATHER)
CLOCK = tools.function_tool(tools.CLOCK)


# --- the SDK, sync or async --------------------------------------------------------------


@dataclass
class Folded:
    """A streamed answer as the SDK's chunks said it."""

    chunks: list[ChatCompletionChunk]
    content: str = ""
    reasoning: str = ""
    calls: dict[int, list[str]] = field(default_factory=dict)  # index -> [id, name, args]
    finish_reason: str | None = None
    usage: Any = None

    @classmethod
    def of(cls, chunks: list[ChatCompletionChunk]) -> Folded:
        out = cls(chunks)
        for chunk in chunks:
            if chunk.usage is not None:
                out.usage = chunk.usage
            for choice in chunk.choices:
                delta = choice.delta
                out.content += delta.content or ""
                out.reasoning += getattr(delta, "reasoning_content", None) or ""
                for call in delta.tool_calls or ():
                    slot = out.calls.setdefault(call.index, ["", "", ""])
                    slot[0] = call.id or slot[0]
                    if call.function is not None:
                        slot[1] = call.function.name or slot[1]
                        slot[2] += call.function.arguments or ""
                if choice.finish_reason is not None:
                    out.finish_reason = choice.finish_reason
        return out

    def tool_calls(self) -> list[tuple[str, str, Any]]:
        return [(i, n, json.loads(a)) for i, n, a in (self.calls[k] for k in sorted(self.calls))]


class Chat:
    """``create`` and ``stream`` through ``openai.OpenAI`` or ``openai.AsyncOpenAI``."""

    def __init__(self, url: str, mode: str, api_key: str = "x") -> None:
        self.url, self.mode, self.api_key = url + "/v1", mode, api_key

    def _sync(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key=self.api_key, max_retries=0)

    def _async(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url, api_key=self.api_key, max_retries=0)

    def create(self, **kwargs: Any) -> ChatCompletion:
        kwargs.setdefault("model", MODEL)
        if self.mode == "sync":
            with self._sync() as client:
                return client.chat.completions.create(**kwargs)

        async def go() -> ChatCompletion:
            async with self._async() as client:
                return await client.chat.completions.create(**kwargs)

        return asyncio.run(go())

    def stream(self, on_chunk: Callable[[ChatCompletionChunk], None] | None = None,
               **kwargs: Any) -> Folded:  # fmt: skip
        """The folded stream; ``on_chunk`` sees each chunk as it arrives (before an error)."""
        kwargs.setdefault("model", MODEL)
        seen = on_chunk or (lambda _: None)
        chunks: list[ChatCompletionChunk] = []
        if self.mode == "sync":
            with (
                self._sync() as client,
                client.chat.completions.create(stream=True, **kwargs) as stream,
            ):
                for chunk in stream:
                    seen(chunk)
                    chunks.append(chunk)
            return Folded.of(chunks)

        async def go() -> None:
            async with self._async() as client:
                stream = await client.chat.completions.create(stream=True, **kwargs)
                async with stream:
                    async for chunk in stream:
                        seen(chunk)
                        chunks.append(chunk)

        asyncio.run(go())
        return Folded.of(chunks)

    def answer(self, streamed: bool, **kwargs: Any) -> tuple[str, str, list[Any], str]:
        """``(content, reasoning, tool calls, finish_reason)`` either way."""
        if streamed:
            f = self.stream(**kwargs)
            assert f.finish_reason is not None
            return f.content, f.reasoning, f.tool_calls(), f.finish_reason
        message = (completion := self.create(**kwargs)).choices[0].message
        calls = [(c.id, c.function.name, json.loads(c.function.arguments))
                 for c in message.tool_calls or () if c.type == "function"]  # fmt: skip
        reasoning = getattr(message, "reasoning_content", None) or ""
        return message.content or "", reasoning, calls, completion.choices[0].finish_reason


def post_raw(url: str, body: dict[str, Any], **headers: str) -> httpx2.Response:
    body = {"model": MODEL, **body}
    return httpx2.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)


# --- plain answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_non_stream_text(bridge: RunningServer, sim: RunningServer, mode: str) -> None:
    completion = Chat(bridge.url, mode).create(messages=user("hello"))
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL
    (choice,) = completion.choices
    assert choice.message.role == "assistant" and choice.message.content == "You said: hello"
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert last_chat(sim)["model"] == "glm-5.3"


@pytest.mark.parametrize("mode", MODES)
def test_stream_text_without_usage(bridge: RunningServer, mode: str) -> None:
    folded = Chat(bridge.url, mode).stream(messages=user("stream me"))
    assert folded.content == "You said: stream me" and folded.finish_reason == "stop"
    assert folded.usage is None and all(c.usage is None for c in folded.chunks)
    assert len({(c.id, c.created, c.model) for c in folded.chunks}) == 1
    assert folded.chunks[0].model == MODEL and folded.chunks[0].id.startswith("chatcmpl-")
    assert folded.chunks[0].choices[0].delta.role == "assistant"


@pytest.mark.parametrize("mode", MODES)
def test_stream_with_include_usage(bridge: RunningServer, mode: str) -> None:
    folded = Chat(bridge.url, mode).stream(
        messages=user("count me"), stream_options={"include_usage": True}
    )
    last = folded.chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert [c for c in folded.chunks if c.usage is not None] == [last]
    assert last.usage.completion_tokens > 0 and last.usage.prompt_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert folded.content == "You said: count me"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", [False, True])
def test_reasoning_content(bridge: RunningServer, mode: str, streamed: bool) -> None:
    chat = Chat(bridge.url, mode)
    content, reasoning, _, finish = chat.answer(
        streamed, messages=user("think [[sim:thinking]]"), reasoning_effort="high"
    )
    assert reasoning.strip().startswith("Let me think about this step by step.")
    assert content.startswith("You said: think") and finish == "stop"


@pytest.mark.parametrize("streamed", [False, True])
def test_reasoning_content_unless_turned_off(bridge: RunningServer, streamed: bool) -> None:
    # GLM's own API, DeepSeek's, LiteLLM and OpenRouter return reasoning_content by default
    # (issue 19; docs/design.md): a chat client that says nothing gets it ...
    chat = Chat(bridge.url, "sync")
    content, reasoning, _, finish = chat.answer(streamed, messages=user("think [[sim:thinking]]"))
    assert reasoning.strip().startswith("Let me think") and finish == "stop"
    assert content.startswith("You said: think")
    # ... one that turns reasoning off gets none (GLM-5.3 reasons anyway: issue 11)
    content, reasoning, _, _ = chat.answer(
        streamed, messages=user("think [[sim:thinking]]"), reasoning_effort="none"
    )
    assert reasoning == "" and content.startswith("You said: think")


def test_reasoning_effort_none_turns_thinking_off(
    bridge: RunningServer, sim: RunningServer
) -> None:
    chat = Chat(bridge.url, "sync")
    content, reasoning, _, _ = chat.answer(False, messages=user("hi"), reasoning_effort="none",
                                           model="glm-4.6")  # fmt: skip
    assert content == "You said: hi" and reasoning == ""
    assert last_chat(sim)["thinking"] == {"type": "disabled"}


def test_sdk_stream_helper_final_completion(bridge: RunningServer) -> None:
    with (
        openai.OpenAI(base_url=bridge.url + "/v1", api_key="x", max_retries=0) as client,
        client.chat.completions.stream(model=MODEL, messages=user("helper"),  # type: ignore[arg-type]
                                       stream_options={"include_usage": True}) as stream,
    ):  # fmt: skip
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == "You said: helper" == final.choices[0].message.content
    assert final.usage is not None and final.usage.completion_tokens > 0


def test_unicode_round_trips(bridge: RunningServer, sim: RunningServer) -> None:
    text = "Grüße 👩‍💻 — 你好，世界！🇯🇵 naïve café ∑ 𝄞"
    chat = Chat(bridge.url, "sync")
    for streamed in (False, True):
        sim.app.state.script_queue.append(Script(text=text, reasoning="", chunk_size=1))
        assert chat.answer(streamed, messages=user("你好 🌍"))[0] == text
    assert "你好 🌍" in json.dumps(last_chat(sim)["messages"], ensure_ascii=False)


@pytest.mark.parametrize(
    ("directive", "finish"),
    [("[[sim:length]]", "length"), ("[[sim:sensitive]]", "content_filter"),
     ("[[sim:context_window]]", "length")],
)  # fmt: skip
@pytest.mark.parametrize("streamed", [False, True])
def test_finish_reasons(bridge: RunningServer, directive: str, finish: str, streamed: bool) -> None:
    content, _, calls, got = Chat(bridge.url, "sync").answer(streamed, messages=user(directive))
    assert got == finish and calls == []


# --- tools -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("model", "streamed"), [(MODEL, False), (MODEL, True), (AIR, True)])
def test_one_tool_call(
    bridge: RunningServer, sim: RunningServer, mode: str, model: str, streamed: bool
) -> None:
    _, reasoning, calls, finish = Chat(bridge.url, mode).answer(
        streamed,
        model=model,
        tools=[WEATHER],
        messages=user("weather? [[sim:tool]]"),
        reasoning_effort="medium",
    )
    assert finish == "tool_calls"
    ((call_id, name, args),) = calls
    assert call_id and name == "get_weather" and args == {"location": "Paris"}
    assert "get_weather" in reasoning
    sent = last_chat(sim)
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert bool(sent.get("tool_stream")) is (streamed and model == MODEL)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("model", "streamed"), [(MODEL, False), (MODEL, True), (AIR, True)])
def test_two_parallel_tool_calls(
    bridge: RunningServer, mode: str, model: str, streamed: bool
) -> None:
    _, _, calls, finish = Chat(bridge.url, mode).answer(
        streamed, model=model, tools=[WEATHER, CLOCK],
        messages=user("both [[sim:parallel_tools]]"),
    )  # fmt: skip
    assert finish == "tool_calls"
    assert [(name, args) for _, name, args in calls] == [
        ("get_weather", {"location": "Paris"}),
        ("get_time", {"timezone": "Europe/Paris"}),
    ]
    assert calls[0][0] != calls[1][0]


@pytest.mark.parametrize("mode", MODES)
def test_tool_round_trip(bridge: RunningServer, sim: RunningServer, mode: str) -> None:
    chat = Chat(bridge.url, mode)
    history: list[Any] = user("weather in Paris? [[sim:tool]]")
    first = chat.create(tools=[WEATHER], messages=history, reasoning_effort="high")
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls" and message.tool_calls
    call = message.tool_calls[0]
    assert call.type == "function"
    history = [
        *history,
        message.model_dump(exclude_none=True),  # reasoning_content travels back too
        {"role": "tool", "tool_call_id": call.id, "content": "22C and sunny"},
    ]
    final = chat.stream(tools=[WEATHER], messages=history)
    assert "22C and sunny" in final.content and final.finish_reason == "stop"
    sent = last_chat(sim)["messages"]
    assistant = next(m for m in sent if m["role"] == "assistant")
    assert assistant["tool_calls"][0]["id"] == call.id
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"location": "Paris"}
    assert assistant["reasoning_content"].strip() == message.reasoning_content.strip()  # type: ignore[attr-defined]
    tool = next(m for m in sent if m["role"] == "tool")
    assert tool["tool_call_id"] == call.id and "22C and sunny" in json.dumps(tool["content"])


def test_tool_choice_and_parallel_flag_reach_glm_as_auto(
    bridge: RunningServer, sim: RunningServer
) -> None:
    Chat(bridge.url, "sync").create(
        tools=[WEATHER, CLOCK], messages=user("x"),
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
    )  # fmt: skip
    sent = last_chat(sim)
    assert sent.get("tool_choice", "auto") == "auto"  # GLM accepts only auto: emulated
    assert "get_time" in json.dumps(sent["messages"])


# --- JSON mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", [False, True])
def test_json_mode(bridge: RunningServer, sim: RunningServer, mode: str, streamed: bool) -> None:
    content, _, _, finish = Chat(bridge.url, mode).answer(
        streamed, messages=user("give json"), response_format={"type": "json_object"}
    )
    assert json.loads(content) == {"reply": "You said: give json"} and finish == "stop"
    assert last_chat(sim)["response_format"] == {"type": "json_object"}


def test_json_mode_strips_a_markdown_fence(bridge: RunningServer, sim: RunningServer) -> None:
    fenced = '```json\n{"city": "Paris"}\n```'
    chat = Chat(bridge.url, "sync")
    sim.app.state.script_queue.append(Script(text=fenced, reasoning=""))
    content = chat.create(messages=user("x"), response_format={"type": "json_object"})
    assert content.choices[0].message.content == '{"city": "Paris"}'
    sim.app.state.script_queue.append(Script(text=fenced, reasoning=""))
    assert chat.create(messages=user("x")).choices[0].message.content == fenced  # not JSON mode


# --- raw streams and the grammar ---------------------------------------------------------------


@pytest.mark.parametrize("include_usage", [False, True])
def test_raw_stream_is_grammatical(bridge: RunningServer, include_usage: bool) -> None:
    response = post_raw(
        bridge.url,
        {"stream": True, "stream_options": {"include_usage": include_usage},
         "tools": [WEATHER, CLOCK], "messages": user("both [[sim:parallel_tools]]"),
         "reasoning_effort": "high"},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in response.headers
    result = validate_chat_stream(response.content, include_usage=include_usage)
    assert result.finish_reason == "tool_calls" and len(result.tool_calls) == 2
    assert result.reasoning and result.model == MODEL
    assert response.content.endswith(b"data: [DONE]\n\n")


def test_raw_stream_of_many_chunks(bridge: RunningServer) -> None:
    response = post_raw(bridge.url, {"stream": True, "messages": user("[[sim:long:500]]")})
    result = validate_chat_stream(response.content, include_usage=False)
    assert result.finish_reason == "stop" and len(result.content) >= 500 * 8 - 8


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    ("fields", "param", "starts"),
    [
        ({"n": 2}, "n", "n: "),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "stop: "),
        ({"reasoning_effort": "extreme"}, "reasoning_effort", "reasoning_effort: "),
        ({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}]},
         "messages", "messages.0.content.0: "),
    ],
)  # fmt: skip
def test_validation_errors_name_the_field(
    bridge: RunningServer, mode: str, streamed: bool, fields: dict[str, Any], param: str,
    starts: str,
) -> None:  # fmt: skip
    kwargs: dict[str, Any] = {"messages": user("x"), **fields}
    chat = Chat(bridge.url, mode)
    with pytest.raises(openai.BadRequestError) as info:
        chat.stream(**kwargs) if streamed else chat.create(**kwargs)
    err = info.value
    assert err.status_code == 400 and err.param == param and err.type == "invalid_request_error"
    assert isinstance(err.body, dict) and err.body["message"].startswith(starts)


def test_malformed_body_is_an_openai_400(bridge: RunningServer) -> None:
    response = httpx2.post(f"{bridge.url}/v1/chat/completions", content=b"{not json")
    error = assert_openai_error(response, 400)
    assert error["type"] == "invalid_request_error" and "JSON" in error["message"]
    error = assert_openai_error(post_raw(bridge.url, {"messages": "hi"}), 400)
    assert error["param"] == "messages"


ERROR_CASES = [
    ("1302", openai.RateLimitError, 429, "requests", "rate_limit_exceeded"),
    ("1308", openai.RateLimitError, 429, "insufficient_quota", "insufficient_quota"),
    ("1261", openai.BadRequestError, 400, "invalid_request_error", "context_length_exceeded"),
    ("1002", openai.AuthenticationError, 401, "invalid_request_error", "invalid_api_key"),
    ("500", openai.InternalServerError, 500, "server_error", "server_error"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(("code", "exc_type", "status", "err_type", "err_code"), ERROR_CASES)
def test_upstream_errors_map_to_sdk_exceptions(
    bridge: RunningServer, mode: str, streamed: bool, code: str,
    exc_type: type[openai.APIStatusError], status: int, err_type: str, err_code: str,
) -> None:  # fmt: skip
    kwargs: dict[str, Any] = {"messages": user(f"[[sim:error:{code}]]")}
    chat = Chat(bridge.url, mode)
    with pytest.raises(exc_type) as info:  # before the first chunk: a real HTTP status
        chat.stream(**kwargs) if streamed else chat.create(**kwargs)
    err = info.value
    assert err.status_code == status and err.type == err_type and err.code == err_code
    assert err.response.headers["content-type"].startswith("application/json")
    assert isinstance(err.body, dict) and err.body["param"] is None


def test_quota_error_tells_the_sdk_not_to_retry(bridge: RunningServer) -> None:
    response = post_raw(bridge.url, {"messages": user("[[sim:error:1308]]")})
    assert assert_openai_error(response, 429)["code"] == "insufficient_quota"
    assert response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("directive", "message"),
    [("[[sim:network_error]]", NETWORK_ERROR_MESSAGE), ("[[sim:cut]]", TRUNCATED_MESSAGE)],
)
def test_mid_stream_failure_raises_in_sdk(
    bridge: RunningServer, mode: str, directive: str, message: str
) -> None:
    received: list[str] = []

    def seen(chunk: ChatCompletionChunk) -> None:
        received.extend(c.delta.content or "" for c in chunk.choices)

    with pytest.raises(openai.APIError) as info:
        Chat(bridge.url, mode).stream(seen, messages=user(directive),
                                      stream_options={"include_usage": True})  # fmt: skip
    assert "".join(received).startswith("The quick"), "text before the failure must arrive"
    err = info.value
    assert not isinstance(err, openai.APIStatusError)  # the 200 was already sent
    assert err.message == message and err.type == "server_error"


def test_mid_stream_error_is_a_grammatical_error_payload(bridge: RunningServer) -> None:
    response = post_raw(
        bridge.url,
        {"stream": True, "stream_options": {"include_usage": True},
         "messages": user("[[sim:network_error]]")},
    )  # fmt: skip
    assert response.status_code == 200
    result = validate_chat_stream(response.content, include_usage=True)
    assert result.error is not None and result.error["message"] == NETWORK_ERROR_MESSAGE
    assert result.finish_reason is None and result.content.startswith("The quick")
    assert b"[DONE]" not in response.content


def test_auth_token_is_required_when_configured(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    server = start_server(create_app(bridge_settings(sim.url, auth_token="s3cret-token")))
    for mode in MODES:
        with pytest.raises(openai.AuthenticationError) as info:
            Chat(server.url, mode, api_key="wrong").create(messages=user("x"))
        assert isinstance(info.value.body, dict)
        assert set(info.value.body) == {"message", "type", "param", "code"}
        assert info.value.code == "invalid_api_key"
        ok = Chat(server.url, mode, api_key="s3cret-token").create(messages=user("let me in"))
        assert ok.choices[0].message.content == "You said: let me in"


def test_404_and_405_are_openai_shaped(bridge: RunningServer) -> None:
    with (
        openai.OpenAI(base_url=bridge.url + "/v1", api_key="x", max_retries=0) as client,
        pytest.raises(openai.NotFoundError) as info,
    ):
        client.chat.completions.retrieve("chatcmpl-abc")  # GET /v1/chat/completions/{id}
    assert isinstance(info.value.body, dict) and info.value.code == "not_found"
    assert_openai_error(httpx2.get(f"{bridge.url}/v1/chat/completions/chatcmpl-abc"), 404)
    assert_openai_error(httpx2.get(f"{bridge.url}/v1/nope"), 404)
    error = assert_openai_error(httpx2.get(f"{bridge.url}/v1/chat/completions"), 405)
    assert error["type"] == "invalid_request_error"
    # an Anthropic client on an unknown /v1 path still gets its own shape
    anthropic = httpx2.get(f"{bridge.url}/v1/nope", headers={"anthropic-version": "2023-06-01"})
    assert anthropic.status_code == 404 and anthropic.json()["type"] == "error"


# --- models ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_models_list_and_retrieve(bridge: RunningServer, mode: str) -> None:
    async def go() -> tuple[list[Any], Any]:
        async with openai.AsyncOpenAI(base_url=bridge.url + "/v1", api_key="x",
                                      max_retries=0) as client:  # fmt: skip
            listed = [m async for m in client.models.list()]
            return listed, await client.models.retrieve("glm-5.3")

    if mode == "sync":
        with openai.OpenAI(base_url=bridge.url + "/v1", api_key="x", max_retries=0) as client:
            models, info = list(client.models.list()), client.models.retrieve("glm-5.3")
            with pytest.raises(openai.NotFoundError) as missing:
                client.models.retrieve("no-such-model")
        assert missing.value.code == "not_found"
    else:
        models, info = asyncio.run(go())
    ids = [m.id for m in models]
    for expected in ("claude-sonnet-4-5", "claude-haiku-4-5", "glm-5.3", "glm-5.3-flash"):
        assert expected in ids
    assert len(ids) == len(set(ids))
    assert all(m.object == "model" and m.owned_by == "glmbridge" for m in models)
    assert all(isinstance(m.created, int) for m in models)
    assert info.id == "glm-5.3" and info.object == "model"


def test_models_shape_follows_the_client(bridge: RunningServer) -> None:
    openai_list = httpx2.get(f"{bridge.url}/v1/models").json()
    assert openai_list["object"] == "list" and "has_more" not in openai_list
    assert {m["object"] for m in openai_list["data"]} == {"model"}
    for headers in ({"anthropic-version": "2023-06-01"}, {"x-api-key": "x"}):
        listed = httpx2.get(f"{bridge.url}/v1/models", headers=headers).json()
        assert "has_more" in listed and "object" not in listed
        assert {m["type"] for m in listed["data"]} == {"model"}
        one = httpx2.get(f"{bridge.url}/v1/models/glm-5.3", headers=headers).json()
        assert one["type"] == "model" and "display_name" in one
    one = httpx2.get(f"{bridge.url}/v1/models/glm-5.3").json()
    assert one == {**one, "id": "glm-5.3", "object": "model", "owned_by": "glmbridge"}


def test_scripted_tool_calls_with_unicode_arguments(
    bridge: RunningServer, sim: RunningServer
) -> None:
    args = {"location": "東京 🗼", "note": 'quote " and \\ backslash'}
    chat = Chat(bridge.url, "sync")
    for streamed in (False, True):
        sim.app.state.script_queue.append(
            Script(reasoning="", tool_calls=[ScriptToolCall(name="get_weather", arguments=args,
                                                            id="call_fixed")], chunk_size=3)
        )  # fmt: skip
        _, _, calls, finish = chat.answer(streamed, tools=[WEATHER], messages=user("x"))
        assert calls == [("call_fixed", "get_weather", args)] and finish == "tool_calls"


def test_reasoning_effort_reaches_glm_5_3(bridge: RunningServer, sim: RunningServer) -> None:
    chat = Chat(bridge.url, "sync")
    content, reasoning, _, _ = chat.answer(False, messages=user("hi [[sim:thinking]]"),
                                           model="glm-5.3", reasoning_effort="minimal")  # fmt: skip
    assert content and reasoning  # asked for: shown
    assert last_chat(sim)["reasoning_effort"] == "low"  # minimal -> low, a level 5.3 accepts
