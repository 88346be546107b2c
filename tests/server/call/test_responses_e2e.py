"""End to end: the official openai SDK (sync and async) → glmbridge (uvicorn) → the GLM
simulator (uvicorn), on ``POST /v1/responses`` (what Codex CLI speaks) and Codex's model
catalog on ``GET /v1/models?client_version=…``.

Every stream that is read raw also goes through the library's Responses grammar validator.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import openai
import pytest
from openai.types.responses import Response

from glmbridge.protocols.responses import validate_responses_stream
from glmbridge.protocols.responses.items import decode_reasoning
from glmbridge_server.edge.app import create_app
from tests.support.error_bodies import assert_openai_error
from tests.support.servers import MakeSettings, RunningServer, Start
from tests.support.simulator import chats, directive
from tests.support.sse import sse_events

pytestmark = pytest.mark.e2e

MODEL = "gpt-5-codex"  # not a GLM name: routed to the default model (glm-5.3, tool_stream)
MODES = ["sync", "async"]
# how the answer is fetched: create(), create(stream=True), or the responses.stream() helper
WAYS = ["create", "stream", "helper"]
EXEC = {
    "type": "function",
    "name": "exec_command",
    "description": "Runs a command.",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}},
        "required": ["cmd"],
    },
}
APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files. This is a FREEFORM tool, so do not wrap the patch in JSON.",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
}
PATCH = '*** Begin Patch\n*** Add File: hello.txt\n+hello "world" 😀\n*** End Patch\n'


def items(response: Response, kind: str) -> list[Any]:
    return [i for i in response.output if i.type == kind]


# --- the SDK, sync or async --------------------------------------------------------------


class Client:
    """``responses.create`` (plain or ``stream=True``) and the ``responses.stream`` helper
    through ``openai.OpenAI`` or ``openai.AsyncOpenAI``; each returns the final response
    and the event types seen."""

    def __init__(self, url: str, mode: str) -> None:
        self.url, self.mode = url + "/v1", mode

    def _sync(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key="x", max_retries=0)

    def _async(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url, api_key="x", max_retries=0)

    def answer(self, way: str, **kwargs: Any) -> tuple[Response, list[str]]:
        kwargs.setdefault("model", MODEL)
        if self.mode == "sync":
            return self._answer_sync(way, kwargs)
        return asyncio.run(self._answer_async(way, kwargs))

    def create(self, **kwargs: Any) -> Response:
        return self.answer("create", **kwargs)[0]

    def _answer_sync(self, way: str, kwargs: dict[str, Any]) -> tuple[Response, list[str]]:
        with self._sync() as client:
            if way == "create":
                return client.responses.create(**kwargs), []
            if way == "stream":
                kinds, final = [], None
                with client.responses.create(stream=True, **kwargs) as stream:
                    for event in stream:
                        kinds.append(event.type)
                        if event.type in ("response.completed", "response.incomplete",
                                          "response.failed"):  # fmt: skip
                            final = event.response
                assert final is not None, kinds
                return final, kinds
            with client.responses.stream(**kwargs) as helper:
                kinds = [event.type for event in helper]
                return helper.get_final_response(), kinds

    async def _answer_async(self, way: str, kwargs: dict[str, Any]) -> tuple[Response, list[str]]:
        async with self._async() as client:
            if way == "create":
                return await client.responses.create(**kwargs), []
            if way == "stream":
                kinds, final = [], None
                stream = await client.responses.create(stream=True, **kwargs)
                async with stream:
                    async for event in stream:
                        kinds.append(event.type)
                        if event.type in ("response.completed", "response.incomplete",
                                          "response.failed"):  # fmt: skip
                            final = event.response
                assert final is not None, kinds
                return final, kinds
            async with client.responses.stream(**kwargs) as helper:
                kinds = [event.type async for event in helper]
                return await helper.get_final_response(), kinds


def post(url: str, body: dict[str, Any], path: str = "/v1/responses") -> httpx2.Response:
    return httpx2.post(f"{url}{path}", json={"model": MODEL, **body}, timeout=30)


def raw_stream(url: str, body: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The raw SSE bytes of a streamed answer, and the final response they validate to."""
    response = post(url, {**body, "stream": True})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return response.content, validate_responses_stream(response.content)


def event_types(raw: bytes) -> list[str]:
    return [data["type"] for _, data in sse_events(raw)]


# --- text and reasoning ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("way", WAYS)
def test_text(bridge: RunningServer, sim: RunningServer, mode: str, way: str) -> None:
    response, kinds = Client(bridge.url, mode).answer(
        way, input="hello [[sim:text]]", instructions="Be brief."
    )
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == MODEL
    assert response.output_text == "You said: hello [[sim:text]]"
    (message,) = response.output
    assert message.type == "message" and message.id.startswith("msg_")
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert response.instructions == "Be brief."
    if way != "create":
        assert kinds[:2] == ["response.created", "response.in_progress"]
        assert "response.output_text.delta" in kinds and kinds[-1] == "response.completed"
    upstream = chats(sim)[-1]
    assert upstream["model"] == "glm-5.3" and bool(upstream.get("stream")) is (way != "create")
    assert upstream["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("way", WAYS)
def test_reasoning_summary(bridge: RunningServer, mode: str, way: str) -> None:
    response, _ = Client(bridge.url, mode).answer(
        way, input="think [[sim:thinking]]", reasoning={"effort": "high", "summary": "auto"},
        include=["reasoning.encrypted_content"],
    )  # fmt: skip
    assert [i.type for i in response.output] == ["reasoning", "message"]
    (reasoning,) = items(response, "reasoning")
    summary = "".join(s.text for s in reasoning.summary)
    assert summary.strip().startswith("Let me think about this step by step.")
    assert reasoning.encrypted_content is not None
    block = decode_reasoning(reasoning.encrypted_content)
    assert block is not None and block.thinking == summary
    assert response.reasoning is not None and response.reasoning.effort == "high"
    assert response.output_text.startswith("You said: think")


def test_reasoning_effort_none_turns_thinking_off(
    bridge: RunningServer, sim: RunningServer
) -> None:
    response = Client(bridge.url, "sync").create(
        input="hi", model="glm-4.6", reasoning={"effort": "none"}
    )
    assert items(response, "reasoning") == [] and response.output_text == "You said: hi"
    assert chats(sim)[-1]["thinking"] == {"type": "disabled"}


# --- tools --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("way", WAYS)
def test_function_call_round_trip(
    bridge: RunningServer, sim: RunningServer, mode: str, way: str
) -> None:
    """A function call, then its output sent back (with the reasoning item): the answer."""
    client = Client(bridge.url, mode)
    prompt = "run it " + directive(
        reasoning="I will run echo.", tool_calls=[{"name": "exec_command",
                                                   "arguments": {"cmd": "echo hi"}}])  # fmt: skip
    first, _ = client.answer(way, input=prompt, tools=[EXEC], reasoning={"summary": "auto"})
    assert first.status == "completed"
    assert [i.type for i in first.output] == ["reasoning", "function_call"]
    (call,) = items(first, "function_call")
    assert call.name == "exec_command" and json.loads(call.arguments) == {"cmd": "echo hi"}
    assert call.call_id and call.id and call.id.startswith("fc_")
    # Codex sends everything back (store: false): the items, then the call's output
    history = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]},
        *(i.model_dump(exclude_none=True) for i in first.output),
        {"type": "function_call_output", "call_id": call.call_id, "output": "hi\n"},
    ]
    second, _ = client.answer(way, input=history, tools=[EXEC], reasoning={"summary": "auto"},
                              store=False)  # fmt: skip
    assert second.status == "completed"
    assert second.output_text == "The command output was:\nhi\n"
    messages = chats(sim)[-1]["messages"]
    assistant = next(m for m in messages if m["role"] == "assistant")
    (reasoning,) = items(first, "reasoning")
    thought = "".join(part.text for part in reasoning.summary)
    assert thought.strip() == "I will run echo."
    assert assistant["reasoning_content"] == thought  # back via encrypted_content
    assert assistant["tool_calls"][0]["id"] == call.call_id
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"cmd": "echo hi"}
    tool = next(m for m in messages if m["role"] == "tool")
    assert tool == {"role": "tool", "tool_call_id": call.call_id, "content": "hi\n"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("way", WAYS)
def test_custom_tool_call_is_freeform(
    bridge: RunningServer, sim: RunningServer, mode: str, way: str
) -> None:
    prompt = "patch " + directive(
        tool_calls=[{"name": "apply_patch", "arguments": {"input": PATCH}}]
    )
    response, kinds = Client(bridge.url, mode).answer(way, input=prompt, tools=[APPLY_PATCH, EXEC])
    (call,) = items(response, "custom_tool_call")
    assert call.name == "apply_patch" and call.input == PATCH
    assert call.id is not None and call.id.startswith("ctc_")
    assert items(response, "function_call") == []
    if way != "create":
        assert "response.custom_tool_call_input.delta" in kinds
        assert "response.function_call_arguments.delta" not in kinds
    # GLM was offered a function with one string argument, with the grammar described
    tools = {t["function"]["name"]: t["function"] for t in chats(sim)[-1]["tools"]}
    assert tools["apply_patch"]["parameters"]["required"] == ["input"]
    assert "start: /.+/" in tools["apply_patch"]["description"]


def test_custom_tool_round_trip(bridge: RunningServer, sim: RunningServer) -> None:
    client = Client(bridge.url, "sync")
    prompt = "patch " + directive(
        tool_calls=[{"name": "apply_patch", "arguments": {"input": PATCH}}]
    )
    first = client.create(input=prompt, tools=[APPLY_PATCH])
    (call,) = items(first, "custom_tool_call")
    history = [
        {"role": "user", "content": prompt},
        *(i.model_dump(exclude_none=True) for i in first.output),
        {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"},
    ]
    second = client.create(input=history, tools=[APPLY_PATCH])
    assert second.output_text == "The command output was:\nDone!"
    messages = chats(sim)[-1]["messages"]
    (assistant,) = [m for m in messages if m["role"] == "assistant"]
    sent = assistant["tool_calls"][0]
    assert sent["function"]["name"] == "apply_patch"
    assert json.loads(sent["function"]["arguments"]) == {"input": PATCH}


def test_namespaced_tool_call(bridge: RunningServer, sim: RunningServer) -> None:
    namespace = {
        "type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.",
        "tools": [{"type": "function", "name": "close_agent", "description": "Close one.",
                   "parameters": {"type": "object",
                                  "properties": {"target": {"type": "string"}}}}],
    }  # fmt: skip
    prompt = "close " + directive(
        tool_calls=[{"name": "multi_agent_v1__close_agent", "arguments": {"target": "a1"}}]
    )
    raw, final = raw_stream(bridge.url, {"input": prompt, "tools": [namespace]})
    (call,) = [i for i in final["output"] if i["type"] == "function_call"]
    assert (call["namespace"], call["name"]) == ("multi_agent_v1", "close_agent")
    Response.model_validate(final)
    names = [t["function"]["name"] for t in chats(sim)[-1]["tools"]]
    assert names == ["multi_agent_v1__close_agent"]


@pytest.mark.parametrize("way", WAYS)
def test_json_schema_output(bridge: RunningServer, sim: RunningServer, way: str) -> None:
    schema = {"type": "object", "properties": {"reply": {"type": "string"}},
              "required": ["reply"], "additionalProperties": False}  # fmt: skip
    fmt = {"type": "json_schema", "name": "codex_output_schema", "schema": schema, "strict": True}
    response, _ = Client(bridge.url, "sync").answer(way, input="json please",
                                                    text={"format": fmt})  # fmt: skip
    assert json.loads(response.output_text) == {"reply": "You said: json please"}
    assert response.text is not None and response.text.format.type == "json_schema"
    upstream = chats(sim)[-1]
    assert upstream["response_format"] == {"type": "json_object"}
    assert "reply" in json.dumps(upstream["messages"])  # the schema is described to GLM


# --- raw streams ----------------------------------------------------------------------------


def test_raw_stream_with_reasoning_text_and_tools(bridge: RunningServer) -> None:
    prompt = "all " + directive(
        reasoning="Two calls.", text="Calling.",
        tool_calls=[{"name": "exec_command", "arguments": {"cmd": "ls"}},
                    {"name": "apply_patch", "arguments": {"input": PATCH}}],
    )  # fmt: skip
    raw, final = raw_stream(bridge.url, {"input": prompt, "tools": [EXEC, APPLY_PATCH],
                                         "reasoning": {"summary": "auto"}})  # fmt: skip
    assert [i["type"] for i in final["output"]] == [
        "reasoning", "message", "function_call", "custom_tool_call"
    ]  # fmt: skip
    assert final["status"] == "completed"
    Response.model_validate(final)
    # the non-streamed answer of the same request has the same output (but ids)
    body = post(bridge.url, {"input": prompt, "tools": [EXEC, APPLY_PATCH],
                             "reasoning": {"summary": "auto"}}).json()  # fmt: skip

    def strip(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in i.items() if k not in ("id", "call_id")} for i in output]

    assert strip(body["output"]) == strip(final["output"])


def test_keepalives_are_in_progress_events(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    """While GLM is silent the stream gets response.in_progress events (Codex's idle timer
    ignores SSE comments), and still validates."""
    server = start_server(create_app(bridge_settings(sim.url, ping_interval=0.05,
                                                     commit_after=0.0)))  # fmt: skip
    raw, final = raw_stream(server.url, {"input": "wait [[sim:slow:0.15]]"})
    assert final["status"] == "completed"
    kinds = event_types(raw)
    assert kinds.count("response.in_progress") > 1
    assert not [line for line in raw.splitlines() if line.startswith(b":")]  # no comments


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_invalid_request_is_a_400_naming_the_field(bridge: RunningServer, mode: str) -> None:
    client = Client(bridge.url, mode)
    with pytest.raises(openai.BadRequestError) as info:
        client.create(input=[{"role": "tool", "content": "x"}])
    body: Any = info.value.body
    assert body["param"] == "input" and body["message"].startswith("input.0.role")
    assert body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as info:
        client.create(input="x", reasoning={"effort": "bogus"})  # type: ignore[typeddict-item]
    assert info.value.body["param"] == "reasoning"  # type: ignore[index]


def test_malformed_and_stateful_requests(bridge: RunningServer) -> None:
    error = assert_openai_error(httpx2.post(f"{bridge.url}/v1/responses", content=b"{nope",
                                            timeout=30), 400)  # fmt: skip
    assert error["type"] == "invalid_request_error"
    error = assert_openai_error(post(bridge.url, {"input": [{"type": "item_reference",
                                                             "id": "msg_1"}]}), 400)  # fmt: skip
    assert error["message"].startswith("input.0")


@pytest.mark.parametrize("mode", MODES)
def test_rate_limit_is_a_429_with_retry_after(bridge: RunningServer, mode: str) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        Client(bridge.url, mode).create(input="busy [[sim:error:1302]]")
    assert info.value.status_code == 429
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert info.value.response.headers.get("x-should-retry") != "false"
    assert info.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize("streamed", [False, True])
def test_quota_is_a_429_insufficient_quota_not_to_retry(
    bridge: RunningServer, streamed: bool
) -> None:
    response = post(bridge.url, {"input": "[[sim:error:1308]]", "stream": streamed})
    error = assert_openai_error(response, 429)
    assert error["code"] == "insufficient_quota" and error["type"] == "insufficient_quota"
    assert response.headers["x-should-retry"] == "false"
    with pytest.raises(openai.RateLimitError) as info:
        Client(bridge.url, "sync").create(input="[[sim:error:1308]]")
    assert info.value.code == "insufficient_quota"


def test_prompt_too_long_is_context_length_exceeded(bridge: RunningServer) -> None:
    error = assert_openai_error(post(bridge.url, {"input": "[[sim:error:1261]]"}), 400)
    assert error["code"] == "context_length_exceeded"


@pytest.mark.parametrize("scenario", ["network_error", "cut"])
def test_mid_stream_failure_ends_with_response_failed(bridge: RunningServer, scenario: str) -> None:
    raw, final = raw_stream(bridge.url, {"input": f"fail [[sim:{scenario}]]"})
    kinds = event_types(raw)
    assert kinds[-1] == "response.failed" and "response.output_text.delta" in kinds
    assert "error" not in kinds  # Codex ignores error events
    assert final["status"] == "failed"
    assert final["error"]["code"] == "server_error" and final["error"]["message"]
    # the text so far is in the output (GLM's decoder closed the block before the error)
    (message,) = final["output"]
    text = message["content"][0]["text"]
    assert text and "The quick brown fox jumps over the lazy dog".startswith(text[:40])


@pytest.mark.parametrize("mode", MODES)
def test_mid_stream_failure_through_the_sdk(bridge: RunningServer, mode: str) -> None:
    response, kinds = Client(bridge.url, mode).answer("stream", input="[[sim:network_error]]")
    assert kinds[-1] == "response.failed"
    assert response.status == "failed" and response.error is not None
    assert response.error.code == "server_error"


def test_404_and_405_are_openai_shaped(bridge: RunningServer) -> None:
    response = httpx2.get(f"{bridge.url}/v1/responses", timeout=30)
    error = assert_openai_error(response, 405)
    assert error["type"] == "invalid_request_error"
    assert "POST" in response.headers["allow"]
    response = httpx2.post(f"{bridge.url}/v1/responses/resp_1/nothing", json={}, timeout=30)
    error = assert_openai_error(response, 404)
    assert "/v1/responses/resp_1/nothing" in error["message"]


# --- Codex's model catalog ------------------------------------------------------------------


def test_codex_model_catalog(bridge: RunningServer) -> None:
    response = httpx2.get(f"{bridge.url}/v1/models?client_version=0.171.0",
                          headers={"authorization": "Bearer x", "originator": "codex_exec"},
                          timeout=30)  # fmt: skip
    assert response.status_code == 200
    catalog = response.json()
    assert set(catalog) == {"models"} and catalog["models"]
    required = {"slug", "display_name", "supported_reasoning_levels", "shell_type", "visibility",
                "supported_in_api", "priority", "base_instructions", "support_verbosity",
                "truncation_policy", "experimental_supported_tools"}  # fmt: skip
    slugs = []
    for model in catalog["models"]:
        assert required <= set(model), required - set(model)
        assert isinstance(model["context_window"], int) and model["context_window"] > 0
        assert model["apply_patch_tool_type"] == "freeform"
        slugs.append(model["slug"])
    assert slugs[0] == "glm-5.3"  # the default model first
    assert "glm-5.3" not in slugs or next(
        m for m in catalog["models"] if m["slug"] == "glm-5.3"
    )["context_window"] == 1_048_576  # fmt: skip
    # without client_version, an OpenAI client gets OpenAI's list
    listed = httpx2.get(f"{bridge.url}/v1/models", timeout=30).json()
    assert listed["object"] == "list" and {m["id"] for m in listed["data"]} >= set(slugs)
