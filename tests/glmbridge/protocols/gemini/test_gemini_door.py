"""The Gemini front door: recorded gemini-cli and google-genai requests -> IR (camelCase and
snake_case alike), IR -> ``GenerateContentResponse`` bodies and chunk streams, and
Google-shaped error bodies."""
# The case tables keep one case per line, so long lines are expected here.
# ruff: noqa: E501

from __future__ import annotations

import json
import logging
import re
from functools import cache
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from glmbridge import events as ev
from glmbridge import ir
from glmbridge.errors import (
    ClientRequestError,
    ErrorKind,
    StreamStateError,
    UpstreamConnectionError,
    UpstreamError,
)
from glmbridge.exchange import Exchange
from glmbridge.protocols import gemini
from glmbridge.protocols.gemini import (
    GEMINI_ARRAY_DOOR,
    GEMINI_DOOR,
    StreamEncoder,
    decode_request,
    encode_error,
    error_object,
    response_from_ir,
    schema_to_json,
    validate_gemini_stream,
)
from glmbridge.protocols.gemini.errors import GOOGLE_ERRORS, error_headers
from glmbridge.upstream_errors import error_from_parts

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "gemini_cli"
RECORDED = sorted(p.name for p in FIXTURES.glob("*-[0-9].json"))
_PATH = re.compile(r"^/v1(?:beta)?/models/(?P<model>[^:]+):(?P<action>\w+)$")


def recorded(name: str) -> tuple[str, str, dict[str, Any]]:
    """``(model, action, body)`` of a recorded request."""
    doc = json.loads((FIXTURES / name).read_text())
    assert doc["method"] == "POST"
    match = _PATH.match(doc["path"])
    assert match is not None, doc["path"]
    return match["model"], match["action"], doc["body"]


def decode_recorded(name: str) -> ir.Request:
    model, action, body = recorded(name)
    return decode_request(json.dumps(body).encode(), model=model,
                          stream=action == "streamGenerateContent")  # fmt: skip


def decode(body: dict[str, Any] | bytes, **kw: Any) -> ir.Request:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return decode_request(raw, model=kw.pop("model", "gemini-2.5-pro"), **kw)


def refused(body: dict[str, Any] | bytes) -> ClientRequestError:
    with pytest.raises(ClientRequestError) as info:
        decode(body)
    assert info.value.kind is ErrorKind.INVALID_REQUEST
    status, raw = encode_error(info.value)
    assert status == 400
    assert json.loads(raw)["error"]["status"] == "INVALID_ARGUMENT"
    return info.value


USER = [{"role": "user", "parts": [{"text": "hi"}]}]


def text(value: str) -> ir.TextBlock:
    return ir.TextBlock(text=value)


def schema_of(tool: ir.Tool) -> Any:
    """A tool's schema as a value (``parametersJsonSchema`` passes through as raw JSON)."""
    schema = tool.input_schema
    return msgspec.json.decode(schema) if isinstance(schema, msgspec.Raw) else schema


def comparable(req: ir.Request) -> ir.Request:
    """``req`` with raw schemas decoded: the same request, whatever bytes carried them."""
    tools = [msgspec.structs.replace(t, input_schema=schema_of(t)) for t in req.tools]
    return msgspec.structs.replace(req, tools=tools)


# --- recorded requests -------------------------------------------------------------------------


def test_all_recordings_are_here() -> None:
    assert len(RECORDED) >= 20


@pytest.mark.parametrize("name", RECORDED)
def test_every_recorded_request_decodes(name: str) -> None:
    """Model from the path, system prompt, tools, thinking echo: and GLM can be asked."""
    model, action, body = recorded(name)
    req = decode_recorded(name)
    assert req.model == model and req.stream is (action == "streamGenerateContent")
    system = body.get("systemInstruction")
    assert req.system == ([text(system["parts"][0]["text"])] if system else [])
    decls = [d for t in body.get("tools", []) for d in t.get("functionDeclarations", [])]
    assert [t.name for t in req.tools] == [d["name"] for d in decls]
    for tool, decl in zip(req.tools, decls, strict=True):
        assert tool.description == decl["description"]
        assert isinstance(tool.input_schema, msgspec.Raw)  # JSON Schema as sent, not re-encoded
        assert schema_of(tool) == decl["parametersJsonSchema"]
    thinking = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
    assert req.echo == {"include_thoughts": thinking.get("includeThoughts", False)}
    assert {m.role for m in req.messages} <= {"user", "assistant"}
    assert req.messages and req.messages[-1].role == "user"
    # no thought, signature or unknown block reaches the IR from gemini-cli's history
    blocks = [b for m in req.messages for b in m.content]
    assert all(isinstance(b, (ir.TextBlock, ir.ImageBlock, ir.ToolUseBlock, ir.ToolResultBlock))
               for b in blocks)  # fmt: skip
    ex = Exchange.from_request(GEMINI_DOOR, req)
    assert msgspec.json.decode(ex.body)["messages"]


def test_main_turn() -> None:
    """text-2: the streamed main turn with 8 tools and Gemini 3 thinking."""
    _, _, body = recorded("text-2.json")
    req = decode_recorded("text-2.json")
    assert req.messages == [ir.Message(role="user", content=[
        text(p["text"]) for p in body["contents"][0]["parts"]])]  # fmt: skip
    assert [t.name for t in req.tools] == [
        "update_topic", "list_directory", "read_file", "grep_search", "glob",
        "google_web_search", "enter_plan_mode", "invoke_agent"]  # fmt: skip
    assert (req.temperature, req.top_p, req.top_k) == (1, 0.95, 64)
    assert req.thinking == ir.Thinking(type="enabled") and req.effort == "high"
    assert req.tool_choice is None and req.response_format is None and req.max_tokens is None


def test_thinking_per_model_family() -> None:
    """Gemini 2.5 sends a budget, custom names only includeThoughts."""
    pro = decode_recorded("text-pro-1.json")
    assert (pro.thinking, pro.effort) == (ir.Thinking(type="enabled", budget_tokens=8192), "medium")
    glm = decode_recorded("text-glm-1.json")
    assert (glm.thinking, glm.effort, glm.echo) == (
        ir.Thinking(type="enabled"),
        None,
        {"include_thoughts": True},
    )


@pytest.mark.parametrize("name", ["text-1.json", "tool-1.json"])
def test_router_call_upper_case_schema_is_json_mode(name: str) -> None:
    """The routing call's responseJsonSchema (OBJECT/STRING/INTEGER) -> lower-case JSON mode."""
    _, _, body = recorded(name)
    req = decode_recorded(name)
    assert req.response_format == ir.ResponseFormat(type="json_schema", name="response", schema={
        "type": "object",
        "properties": {
            "complexity_reasoning": {"type": "string",
                                     "description": "Brief explanation for the score."},
            "complexity_score": {"type": "integer",
                                 "description": "Complexity score from 1-100."},
        },
        "required": ["complexity_reasoning", "complexity_score"],
    })  # fmt: skip
    # the client's two consecutive user contents are one turn, their parts in order
    assert [m.role for m in req.messages] == ["user"]
    contents = body["contents"]
    assert len(contents) == 2 and all(c["role"] == "user" for c in contents)
    texts = [p["text"] for c in contents for p in c["parts"] if "text" in p]
    assert [b.text for b in req.messages[0].content] == texts
    assert req.stream is False and req.tools == []
    assert req.system and "Complexity Score" in req.system[0].text


def test_next_speaker_schema_is_kept() -> None:
    _, _, body = recorded("nextspeaker-3.json")
    req = decode_recorded("nextspeaker-3.json")
    schema = body["generationConfig"]["responseJsonSchema"]
    assert schema["properties"]["next_speaker"]["enum"] == ["user", "model"]
    assert req.response_format == ir.ResponseFormat(type="json_schema", schema=schema,
                                                    name="response")  # fmt: skip
    assert [m.role for m in req.messages] == ["user", "assistant", "user"]
    assert (req.temperature, req.top_p, req.system, req.tools) == (0, 1, [], [])


@pytest.mark.parametrize("name", ["tool-3.json", "thoughttool-3.json", "toolid-3.json"])
def test_function_call_replay_pairs_by_id(name: str) -> None:
    """The replayed call (its thoughtSignature ignored) and its response share the id."""
    _, _, body = recorded(name)
    call = body["contents"][1]["parts"][0]
    assert "thoughtSignature" in call
    response = body["contents"][2]["parts"][0]["functionResponse"]
    req = decode_recorded(name)
    assert req.messages[1] == ir.Message(role="assistant", content=[ir.ToolUseBlock(
        id=call["functionCall"]["id"], name=call["functionCall"]["name"],
        input=call["functionCall"]["args"])])  # fmt: skip
    assert req.messages[2] == ir.Message(role="user", content=[ir.ToolResultBlock(
        tool_use_id=call["functionCall"]["id"],
        content=[text(response["response"]["output"])])])  # fmt: skip
    if name == "toolid-3.json":
        assert call["functionCall"]["id"] == response["id"] == "call_abc123"


def test_parallel_calls_and_a_failed_tool() -> None:
    """tool2-3: two calls, two responses in one user turn; {"error": …} is an error result."""
    req = decode_recorded("tool2-3.json")
    calls, results = req.messages[1].content, req.messages[2].content
    assert [(c.id, c.name) for c in calls if isinstance(c, ir.ToolUseBlock)] == [
        ("read_file_1796113034523_0", "read_file"),
        ("run_shell_command_1796113034558_1", "run_shell_command"),
    ]
    assert results == [
        ir.ToolResultBlock(tool_use_id="read_file_1796113034523_0", is_error=True,
                           content=[text("File not found: /tmp/gemwd.Do8q/missing.txt")]),
        ir.ToolResultBlock(tool_use_id="run_shell_command_1796113034558_1", content=[text(
            "<untrusted_context>\nOutput: hello\nProcess Group PGID: 3474\n</untrusted_context>")]),
    ]  # fmt: skip


def _strip_ids(body: dict[str, Any], *, calls: bool, responses: bool) -> dict[str, Any]:
    body = json.loads(json.dumps(body))
    for content in body["contents"]:
        for part in content["parts"]:
            if calls and "functionCall" in part:
                del part["functionCall"]["id"]
            if responses and "functionResponse" in part:
                del part["functionResponse"]["id"]
    return body


def _pairs(req: ir.Request) -> list[tuple[str, str]]:
    """(call name, the name of the call its result answers) per tool result."""
    names = {
        b.id: b.name for m in req.messages for b in m.content if isinstance(b, ir.ToolUseBlock)
    }
    return [(b.tool_use_id, names.get(b.tool_use_id, "?")) for m in req.messages
            for b in m.content if isinstance(b, ir.ToolResultBlock)]  # fmt: skip


@pytest.mark.parametrize(("calls", "responses"), [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("reverse", [False, True])
def test_calls_without_ids_pair_by_name(calls: bool, responses: bool, reverse: bool) -> None:
    """Ids missing on either side (old history): results answer the calls of their name."""
    _, _, body = recorded("tool2-3.json")
    body = _strip_ids(body, calls=calls, responses=responses)
    if reverse:
        body["contents"][2]["parts"].reverse()
    pairs = _pairs(decode(body))
    expected_names = ["read_file", "run_shell_command"]
    if reverse:
        expected_names.reverse()
    assert [name for _, name in pairs] == expected_names
    if calls:  # made-up ids, deterministic: call_<content index>_<n>
        assert sorted(call_id for call_id, _ in pairs) == ["call_1_0", "call_1_1"]


def test_same_name_calls_without_ids_pair_in_order() -> None:
    def fc(cmd: str) -> dict[str, Any]:
        return {"functionCall": {"name": "run", "args": {"cmd": cmd}}}

    def fr(out: str) -> dict[str, Any]:
        return {"functionResponse": {"name": "run", "response": {"output": out}}}

    req = decode({"contents": [*USER, {"role": "model", "parts": [fc("a"), fc("b")]},
                               {"role": "user", "parts": [fr("A"), fr("B")]},
                               {"role": "model", "parts": [fc("c")]},
                               {"role": "function", "parts": [fr("C")]}]})  # fmt: skip
    got = [(b.tool_use_id, b.content) for m in req.messages for b in m.content
           if isinstance(b, ir.ToolResultBlock)]  # fmt: skip
    assert got == [("call_1_0", [text("A")]), ("call_1_1", [text("B")]),
                   ("call_3_0", [text("C")])]  # fmt: skip
    assert [m.role for m in req.messages] == ["user", "assistant", "user", "assistant", "user"]


def test_thought_parts_in_model_turns_are_thinking() -> None:
    """A thought part replayed in a model turn is the assistant's thinking; in a user turn
    it says nothing; an empty text part (only a signature) is dropped."""
    _, _, body = recorded("tool-3.json")
    model_parts = body["contents"][1]["parts"]
    model_parts[:0] = [{"text": "Let me run it.", "thought": True},
                       {"text": "", "thoughtSignature": "c2ln"}]  # fmt: skip
    body["contents"][0]["parts"].append({"text": "user thought", "thought": True})
    req = decode(body)
    assert req.messages[1].content[0] == ir.ThinkingBlock(thinking="Let me run it.")
    assert isinstance(req.messages[1].content[1], ir.ToolUseBlock)
    assert len(req.messages[1].content) == 2
    assert "user thought" not in json.dumps(msgspec.to_builtins(req.messages[0]))


def test_inline_image_of_the_recording() -> None:
    _, _, body = recorded("image-3.json")
    blob = next(p["inlineData"] for p in body["contents"][0]["parts"] if "inlineData" in p)
    (image,) = [b for b in decode_recorded("image-3.json").messages[0].content
                if isinstance(b, ir.ImageBlock)]  # fmt: skip
    assert image.source == ir.MediaSource(type="base64", media_type=blob["mimeType"],
                                          data=blob["data"])  # fmt: skip


def test_count_tokens_wrapped_request() -> None:
    inner = {"model": "models/gemini-2.5-pro", "contents": USER,
             "systemInstruction": {"parts": [{"text": "sys"}]}}  # fmt: skip
    assert decode({"generateContentRequest": inner}) == decode(inner)


_UNSUPPORTED = {  # each field GLM has no equivalent for, with a value that must not be logged
    "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "SECRET_5"}],
    "cachedContent": "cachedContents/SECRET_1",
    "seed": 9176543,
    "presencePenalty": 0.7654321,
    "frequencyPenalty": 0.1234567,
}
_CONFIG_FIELDS = {"seed", "presencePenalty", "frequencyPenalty"}


def _carrying(fields: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": USER, "generationConfig": {"temperature": 0.5}}
    for name in fields:
        where = body["generationConfig"] if name in _CONFIG_FIELDS else body
        where[name] = _UNSUPPORTED[name]
    return body


@pytest.mark.parametrize("fields", [[name] for name in _UNSUPPORTED] + [list(_UNSUPPORTED)])
def test_unsupported_fields_are_dropped_with_one_debug_line_of_names(
    fields: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="glmbridge")
    assert decode(_carrying(fields)) == decode(_carrying([]))
    (line,) = [r for r in caplog.records if "no equivalent" in r.getMessage()]
    assert line.levelno == logging.DEBUG
    assert line.getMessage() == "dropped (GLM has no equivalent): " + ", ".join(fields)
    assert "SECRET" not in caplog.text and "9176543" not in caplog.text
    assert "765" not in caplog.text and "234" not in caplog.text


def test_nothing_is_logged_without_unsupported_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="glmbridge")
    for name in RECORDED:
        decode_recorded(name)
    decode(_carrying([]))
    assert not [r for r in caplog.records if "no equivalent" in r.getMessage()]


def test_unsupported_fields_are_not_logged_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="glmbridge")
    decode(_carrying(list(_UNSUPPORTED)))
    assert caplog.records == []


# --- snake_case -------------------------------------------------------------------------------

# Values that are the user's own data: their keys stay as written in both spellings.
_OPAQUE = {"args", "response", "parametersJsonSchema", "responseJsonSchema", "parameters",
           "responseSchema"}  # fmt: skip


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def snake_case(value: Any) -> Any:
    """``value`` with every protocol key in snake_case (what REST users may send)."""
    if isinstance(value, list):
        return [snake_case(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {_snake(k): (v if k in _OPAQUE else snake_case(v)) for k, v in value.items()}


EVERYTHING: dict[str, Any] = {
    "systemInstruction": {"role": "user", "parts": [{"text": "Be brief."}]},
    "contents": [
        {"role": "user", "parts": [
            {"text": "look"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"fileData": {"mimeType": "application/pdf", "fileUri": "https://x.test/a.pdf"}},
            {"inlineData": {"mimeType": "text/plain", "data": "aGVsbG8="}},
        ]},
        {"role": "model", "parts": [
            {"text": "hmm", "thought": True},
            {"functionCall": {"name": "get_weather", "args": {"city_name": "Paris",
                                                              "maxDays": 2}},
             "thoughtSignature": "c2ln"},
            {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}},
        ]},
        {"role": "user", "parts": [{"functionResponse": {
            "name": "get_weather", "response": {"output": {"temp_c": 21, "isSunny": True}}}}]},
    ],
    "tools": [
        {"functionDeclarations": [
            {"name": "get_weather", "description": "Weather.", "parameters": {
                "type": "OBJECT", "properties": {"city_name": {"type": "STRING"},
                                                 "maxDays": {"type": "INTEGER",
                                                             "nullable": True}},
                "required": ["city_name"]}},
            {"name": "ls", "parametersJsonSchema": {"type": "object", "properties": {
                "dir_path": {"type": "string"}}}},
        ]},
        {"googleSearch": {}},
        {"codeExecution": {}},
    ],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                                             "allowedFunctionNames": ["get_weather"]}},
    "generationConfig": {
        "temperature": 0.5, "topP": 0.9, "topK": 40, "candidateCount": 1,
        "maxOutputTokens": 1024, "stopSequences": ["END", ""],
        "responseMimeType": "application/json", "responseModalities": ["TEXT"],
        "responseSchema": {"type": "OBJECT", "properties": {"city_name": {
            "type": "STRING", "nullable": True}}},
        "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 2048,
                           "thinkingLevel": "LOW"},
        "presencePenalty": 0.1, "seed": 7,
    },
    "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
}  # fmt: skip


def test_everything_decodes() -> None:
    req = decode(EVERYTHING, stream=True)
    assert req.system == [text("Be brief.")]
    user, model, results = req.messages
    assert [type(b) for b in user.content] == [ir.TextBlock, ir.ImageBlock, ir.DocumentBlock,
                                               ir.DocumentBlock]  # fmt: skip
    assert user.content[2] == ir.DocumentBlock(source=ir.MediaSource(
        type="url", url="https://x.test/a.pdf", media_type="application/pdf"))  # fmt: skip
    assert user.content[3] == ir.DocumentBlock(source=ir.MediaSource(type="text", data="hello"))
    assert model.content == [
        ir.ThinkingBlock(thinking="hmm"),
        ir.ToolUseBlock(id="call_1_0", name="get_weather",
                        input={"city_name": "Paris", "maxDays": 2}),
        text("```\nprint(1)\n```"),
        text("1"),
    ]  # fmt: skip
    assert results.content == [
        ir.ToolResultBlock(tool_use_id="call_1_0", content=[text('{"temp_c":21,"isSunny":true}')])
    ]
    # only the function tool allowed by toolConfig is left; hosted tools are dropped
    assert req.tools == [ir.Tool(name="get_weather", description="Weather.", input_schema={
        "type": "object", "properties": {"city_name": {"type": "string"},
                                         "maxDays": {"type": ["integer", "null"]}},
        "required": ["city_name"]})]  # fmt: skip
    assert req.tool_choice == ir.ToolChoice(type="tool", name="get_weather")
    assert (req.temperature, req.top_p, req.top_k, req.max_tokens) == (0.5, 0.9, 40, 1024)
    assert req.stop_sequences == ["END"]
    assert req.response_format == ir.ResponseFormat(
        type="json_schema",
        name="response",
        schema={"type": "object", "properties": {"city_name": {"type": ["string", "null"]}}},
    )
    assert (req.thinking, req.effort) == (ir.Thinking(type="enabled", budget_tokens=2048), "low")
    assert req.echo == {"include_thoughts": True}


@pytest.mark.parametrize("name", RECORDED)
def test_snake_case_recording_decodes_the_same(name: str) -> None:
    model, _, body = recorded(name)
    snake = snake_case(body)
    assert snake != body or set(body) == {"contents"}
    assert comparable(decode(snake, model=model)) == comparable(decode(body, model=model))


def test_snake_case_everything_decodes_the_same() -> None:
    snake = snake_case(EVERYTHING)
    assert "generation_config" in snake and "inline_data" in snake["contents"][0]["parts"][1]
    # the user's own keys are untouched in both spellings
    assert snake["contents"][1]["parts"][1]["function_call"]["args"] == {
        "city_name": "Paris", "maxDays": 2}  # fmt: skip
    assert comparable(decode(snake, stream=True)) == comparable(decode(EVERYTHING, stream=True))


def test_snake_case_schema_keys_in_parameters() -> None:
    # The Python SDK writes a Schema's own keys in snake_case (any_of, max_items …)
    params = {"type": "OBJECT", "properties": {"tags": {"type": "ARRAY", "max_items": 3,
              "items": {"any_of": [{"type": "STRING"}, {"type": "INTEGER"}]}}}}  # fmt: skip
    body = {"contents": USER, "tools": [{"function_declarations": [
        {"name": "t", "parameters": params}]}]}  # fmt: skip
    assert schema_of(decode(body).tools[0]) == {"type": "object", "properties": {"tags": {
        "type": "array", "maxItems": 3,
        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}}}  # fmt: skip


@pytest.mark.parametrize("key", ["executable_code", "code_execution_result"])
def test_a_snake_case_part_alone_is_read(key: str) -> None:
    # The only snake_case key of the body: it must not be dropped silently.
    value = {"language": "PYTHON", "code": "x"} if key == "executable_code" else {"output": "x"}
    req = decode({"contents": [{"role": "model", "parts": [{key: value}]}, *USER]})
    assert req.messages[0].role == "assistant" and req.messages[0].content


def test_snake_case_response_modalities_alone_is_read() -> None:
    with pytest.raises(ClientRequestError, match="responseModalities"):
        decode(b'{"contents": [], "generationConfig": {"response_modalities": ["AUDIO"]}}')


@pytest.mark.parametrize("name", ["presencePenalty", "frequencyPenalty"])
def test_a_snake_case_penalty_alone_is_named_in_the_debug_line(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The body's only snake_case key: unread, it was dropped without the line naming it.
    body = _carrying([name])
    body["generationConfig"][_snake(name)] = body["generationConfig"].pop(name)
    caplog.set_level(logging.DEBUG, logger="glmbridge")
    assert decode(body) == decode(_carrying([]))
    (line,) = [r for r in caplog.records if "no equivalent" in r.getMessage()]
    assert line.getMessage() == f"dropped (GLM has no equivalent): {name}"


def _decoded_and_logged(
    body: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> tuple[ir.Request, list[str]]:
    caplog.clear()
    return decode(body), [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("name", ["googleSearchRetrieval", "codeExecution", "urlContext"])
def test_a_snake_case_hosted_tool_alone_is_read(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Search becomes the gateway's tool, the others are dropped with a line: in both spellings.
    caplog.set_level(logging.INFO, logger="glmbridge")
    camel = _decoded_and_logged({"contents": USER, "tools": [{name: {}}]}, caplog)
    assert camel[0].tools or camel[1]
    assert _decoded_and_logged({"contents": USER, "tools": [{_snake(name): {}}]}, caplog) == camel


def test_unknown_keys_are_ignored_at_every_level() -> None:
    # Not read by the one-pass decode (it refuses unknown keys): the lenient path reads them.
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi", "videoMetadata": {}}],
                      "someday": 1}],
        "generationConfig": {"temperature": 0.5, "responseLogprobs": True,
                             "thinkingConfig": {"thinkingBudget": 0, "newKnob": 1}},
        "labels": {"team": "a"},
    }  # fmt: skip
    plain = {"contents": USER, "generationConfig": {"temperature": 0.5,
             "thinkingConfig": {"thinkingBudget": 0}}}  # fmt: skip
    assert decode(body) == decode(plain)
    assert decode({**body, "system_instruction": {"parts": [{"text": "s"}]}}).system == [text("s")]


def test_snake_case_keys_in_the_users_own_data_alone_change_nothing() -> None:
    # camelCase protocol keys with snake_case names inside args and schemas: the same
    # request whichever path reads it.
    body = {
        "contents": [*USER, {"role": "model", "parts": [{"functionCall": {
            "name": "f", "args": {"mime_type": 1, "top_k": [1.5, 10**30]}}}]}],
        "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {
            "type": "object", "properties": {"file_uri": {"type": "string"}}}}]}],
        "generationConfig": {"temperature": 0.25},
    }  # fmt: skip
    req = decode(body)
    assert req.messages[1].content[0].input == {"mime_type": 1, "top_k": [1.5, 10**30]}
    assert comparable(req) == comparable(decode({**body, "tools": [{"function_declarations": [
        {"name": "f", "parametersJsonSchema": {"type": "object", "properties": {
            "file_uri": {"type": "string"}}}}]}]}))  # fmt: skip


# --- schema_to_json --------------------------------------------------------------------------

SCHEMAS: dict[str, tuple[Any, Any]] = {
    "upper-case types": ({"type": "OBJECT", "properties": {"a": {"type": "STRING"}}},
                         {"type": "object", "properties": {"a": {"type": "string"}}}),
    "lower-case untouched": ({"type": "object", "required": ["a"]},
                             {"type": "object", "required": ["a"]}),
    "nullable": ({"type": "INTEGER", "nullable": True}, {"type": ["integer", "null"]}),
    "nullable false": ({"type": "NUMBER", "nullable": False}, {"type": "number"}),
    "enum kept": ({"type": "STRING", "enum": ["user", "model"], "format": "enum"},
                  {"type": "string", "enum": ["user", "model"], "format": "enum"}),
    "nested items": ({"type": "ARRAY", "items": {"type": "ARRAY", "items": {"type": "BOOLEAN"}},
                      "minItems": 1},
                     {"type": "array", "items": {"type": "array", "items": {"type": "boolean"}},
                      "minItems": 1}),
    "anyOf": ({"anyOf": [{"type": "STRING"}, {"type": "NULL"}]},
              {"anyOf": [{"type": "string"}, {"type": "null"}]}),
    "any_of snake": ({"any_of": [{"type": "NUMBER", "nullable": True}]},
                     {"anyOf": [{"type": ["number", "null"]}]}),
    "dropped keys": ({"type": "OBJECT", "propertyOrdering": ["b", "a"], "example": {"a": 1},
                      "properties": {"b": {"type": "STRING", "example": "x"}}},
                     {"type": "object", "properties": {"b": {"type": "string"}}}),
    "property names kept": ({"type": "OBJECT", "properties": {"type": {"type": "STRING"},
                                                              "nullable": {"type": "BOOLEAN"}}},
                            {"type": "object", "properties": {"type": {"type": "string"},
                                                              "nullable": {"type": "boolean"}}}),
    "additionalProperties": ({"type": "OBJECT", "additionalProperties": {"type": "INTEGER"}},
                             {"type": "object", "additionalProperties": {"type": "integer"}}),
    "unspecified type": ({"type": "TYPE_UNSPECIFIED", "description": "d"}, {"description": "d"}),
    "not a schema": ("x", "x"),
}  # fmt: skip


@pytest.mark.parametrize(("schema", "expected"), SCHEMAS.values(), ids=SCHEMAS.keys())
def test_schema_to_json(schema: Any, expected: Any) -> None:
    assert schema_to_json(schema) == expected


def test_response_schema_and_json_mime_type() -> None:
    def fmt(**config: Any) -> ir.ResponseFormat | None:
        return decode({"contents": USER, "generationConfig": config}).response_format

    assert fmt() is None and fmt(responseMimeType="text/plain") is None
    assert fmt(responseMimeType="application/json") == ir.ResponseFormat(type="json_object")
    schema = {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}}
    expected = ir.ResponseFormat(
        type="json_schema",
        name="response",
        schema={"type": "object", "properties": {"n": {"type": "integer"}}},
    )
    assert fmt(responseMimeType="application/json", responseSchema=schema) == expected
    assert fmt(responseMimeType="APPLICATION/JSON", responseJsonSchema=schema) == expected
    assert fmt(responseSchema=schema) == expected  # a schema alone: JSON anyway


# --- thinking ---------------------------------------------------------------------------------

THINKING: list[tuple[dict[str, Any] | None, ir.Thinking | None, str | None, bool]] = [
    (None, None, None, False),
    ({}, None, None, False),
    ({"includeThoughts": True}, ir.Thinking(type="enabled"), None, True),
    ({"includeThoughts": False}, None, None, False),
    ({"thinkingLevel": "HIGH"}, ir.Thinking(type="enabled"), "high", False),
    ({"thinkingLevel": "medium", "includeThoughts": True}, ir.Thinking(type="enabled"), "medium", True),
    ({"thinkingLevel": "LOW"}, ir.Thinking(type="enabled"), "low", False),
    ({"thinkingLevel": "MINIMAL"}, ir.Thinking(type="enabled"), "low", False),
    ({"thinkingBudget": 0}, ir.Thinking(type="disabled"), None, False),
    ({"thinkingBudget": 0, "includeThoughts": True}, ir.Thinking(type="disabled"), None, True),
    ({"thinkingBudget": 8192, "includeThoughts": True},
     ir.Thinking(type="enabled", budget_tokens=8192), "medium", True),  # budget -> effort
    ({"thinkingBudget": -1}, ir.Thinking(type="enabled"), None, False),  # dynamic
]  # fmt: skip


@pytest.mark.parametrize(("config", "thinking", "effort", "include"), THINKING)
def test_thinking_config(
    config: dict[str, Any] | None, thinking: ir.Thinking | None, effort: str | None, include: bool
) -> None:
    body: dict[str, Any] = {"contents": USER}
    if config is not None:
        body["generationConfig"] = {"thinkingConfig": config}
    req = decode(body)
    assert (req.thinking, req.effort, req.echo) == (thinking, effort,
                                                    {"include_thoughts": include})  # fmt: skip


def test_tool_config_modes() -> None:
    decls = [{"name": n, "parametersJsonSchema": {"type": "object"}} for n in ("a", "b")]

    def choice(fcc: dict[str, Any]) -> tuple[list[str], ir.ToolChoice | None]:
        req = decode({"contents": USER, "tools": [{"functionDeclarations": decls}],
                      "toolConfig": {"functionCallingConfig": fcc}})  # fmt: skip
        return [t.name for t in req.tools], req.tool_choice

    assert choice({"mode": "AUTO"}) == (["a", "b"], ir.ToolChoice(type="auto"))
    assert choice({"mode": "VALIDATED"}) == (["a", "b"], ir.ToolChoice(type="auto"))
    assert choice({"mode": "any"}) == (["a", "b"], ir.ToolChoice(type="any"))
    assert choice({"mode": "NONE"}) == (["a", "b"], ir.ToolChoice(type="none"))
    assert choice({"mode": "ANY", "allowedFunctionNames": ["b"]}) == (
        ["b"],
        ir.ToolChoice(type="tool", name="b"),
    )
    assert choice({"mode": "ANY", "allowedFunctionNames": ["a", "b"]}) == (
        ["a", "b"],
        ir.ToolChoice(type="any"),
    )


# --- refusals ---------------------------------------------------------------------------------

REFUSED: dict[str, tuple[dict[str, Any] | bytes, str]] = {
    "two candidates": ({"contents": USER, "generationConfig": {"candidateCount": 2}},
                       "generationConfig.candidateCount"),
    "audio output": ({"contents": USER, "generationConfig": {"responseModalities": ["TEXT", "AUDIO"]}},
                     "generationConfig.responseModalities"),
    "image output": ({"contents": USER, "generationConfig": {"responseModalities": ["IMAGE"]}},
                     "generationConfig.responseModalities"),
    "system role": ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents.0.role"),
    "tool role": ({"contents": [*USER, {"role": "tool", "parts": [{"text": "x"}]}]}, "contents.1.role"),
    "Files API URI": ({"contents": [{"role": "user", "parts": [{"fileData": {
        "fileUri": "files/abc123", "mimeType": "image/png"}}]}]},
        "contents.0.parts.0.fileData.fileUri"),
    "gs:// URI": ({"contents": [{"role": "user", "parts": [{"fileData": {
        "fileUri": "gs://bucket/a.png"}}]}]}, "contents.0.parts.0.fileData.fileUri"),
    "audio input": ({"contents": [{"role": "user", "parts": [{"text": "x"}, {"inlineData": {
        "mimeType": "audio/wav", "data": "AAAA"}}]}]}, "contents.0.parts.1"),
    "bad thinkingLevel": ({"contents": USER, "generationConfig": {"thinkingConfig": {
        "thinkingLevel": "ULTRA"}}}, "generationConfig.thinkingConfig.thinkingLevel"),
    "bad function calling mode": ({"contents": USER, "toolConfig": {"functionCallingConfig": {
        "mode": "SOMETIMES"}}}, "toolConfig.functionCallingConfig.mode"),
    "contents not a list": ({"contents": "hi"}, "contents"),
    "text not a string": ({"contents": [{"role": "user", "parts": [{"text": 5}]}]},
                          "contents.0.parts.0.text"),
    "functionCall without name": ({"contents": [{"role": "model", "parts": [{"functionCall": {
        "args": {}}}]}]}, "contents.0.parts.0.functionCall.name"),
    "snake_case two candidates": ({"contents": USER, "generation_config": {"candidate_count": 2}},
                                  "generationConfig.candidateCount"),
}  # fmt: skip


@pytest.mark.parametrize(("body", "path"), REFUSED.values(), ids=REFUSED.keys())
def test_refusals_name_the_field(body: dict[str, Any] | bytes, path: str) -> None:
    err = refused(body)
    assert err.path == path
    assert err.message.startswith(path)


@pytest.mark.parametrize("raw", [b"{nope", b"", b"[1]", b'{"contents": [1]}', b"\xff"])
def test_invalid_json_is_a_400(raw: bytes) -> None:
    assert refused(raw).message


# --- responses -------------------------------------------------------------------------------

_CALL = ir.ToolUseBlock(id="call_1", name="get_weather", input={"city": "Paris", "n": [1.5, None]})
ANSWER = ir.Response(
    id="msg_01abc",
    model="gemini-3.8-flash",
    content=[ir.ThinkingBlock(thinking="Let me look.", signature="sig"), text(""),
             text("Checking."), _CALL, ir.RedactedThinkingBlock(data="x")],
    stop_reason=ir.StopReason.TOOL_USE,
    usage=ir.Usage(input_tokens=100, output_tokens=30, cache_read_input_tokens=20,
                   cache_creation_input_tokens=5, reasoning_tokens=12),
)  # fmt: skip


def test_response_exact_shape() -> None:
    body = json.loads(response_from_ir(ANSWER, include_thoughts=True))
    assert body == {
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"text": "Let me look.", "thought": True},
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "n": [1.5, None]},
                                  "id": "call_1"}},
            ]},
            "finishReason": "STOP",
            "index": 0,
        }],
        "usageMetadata": {"promptTokenCount": 125, "candidatesTokenCount": 18,
                          "totalTokenCount": 155, "thoughtsTokenCount": 12,
                          "cachedContentTokenCount": 20},
        "modelVersion": "gemini-3.8-flash",
        "responseId": "01abc",
    }  # fmt: skip
    sdk = types.GenerateContentResponse.model_validate(body)
    assert sdk.text == "Checking." and sdk.function_calls is not None
    assert sdk.function_calls[0].args == {"city": "Paris", "n": [1.5, None]}
    assert sdk.function_calls[0].id == "call_1"
    assert sdk.usage_metadata is not None and sdk.usage_metadata.thoughts_token_count == 12


def test_response_without_thoughts() -> None:
    body = json.loads(response_from_ir(ANSWER))
    assert [list(p) for p in body["candidates"][0]["content"]["parts"]] == [
        ["text"],
        ["functionCall"],
    ]
    types.GenerateContentResponse.model_validate(body)


def test_empty_response_still_validates() -> None:
    body = json.loads(response_from_ir(ir.Response(id="msg_1", model="m", content=[])))
    assert body["candidates"][0]["content"] == {"role": "model", "parts": []}
    assert body["candidates"][0]["finishReason"] == "STOP"
    assert body["usageMetadata"] == {"promptTokenCount": 0, "candidatesTokenCount": 0,
                                     "totalTokenCount": 0}  # fmt: skip
    types.GenerateContentResponse.model_validate(body)


FINISH = {
    None: "STOP",
    ir.StopReason.END_TURN: "STOP",
    ir.StopReason.STOP_SEQUENCE: "STOP",
    ir.StopReason.PAUSE_TURN: "STOP",
    ir.StopReason.TOOL_USE: "STOP",
    ir.StopReason.MAX_TOKENS: "MAX_TOKENS",
    ir.StopReason.MODEL_CONTEXT_WINDOW_EXCEEDED: "MAX_TOKENS",
    ir.StopReason.REFUSAL: "SAFETY",
}


@pytest.mark.parametrize(("reason", "expected"), FINISH.items())
def test_finish_reasons(reason: ir.StopReason | None, expected: str) -> None:
    resp = ir.Response(id="msg_1", model="m", content=[text("x")], stop_reason=reason)
    body = json.loads(response_from_ir(resp))
    assert body["candidates"][0]["finishReason"] == expected
    candidates = types.GenerateContentResponse.model_validate(body).candidates
    assert candidates is not None and candidates[0].finish_reason == expected
    assert set(FINISH) == {None, *ir.StopReason}


USAGE: list[tuple[ir.Usage, dict[str, int]]] = [
    (ir.Usage(), {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0}),
    (ir.Usage(input_tokens=10, output_tokens=5),
     {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}),
    (ir.Usage(input_tokens=10, output_tokens=5, reasoning_tokens=5),
     {"promptTokenCount": 10, "candidatesTokenCount": 0, "totalTokenCount": 15,
      "thoughtsTokenCount": 5}),
    (ir.Usage(input_tokens=10, output_tokens=5, reasoning_tokens=9),  # capped at the output
     {"promptTokenCount": 10, "candidatesTokenCount": 0, "totalTokenCount": 15,
      "thoughtsTokenCount": 5}),
    (ir.Usage(input_tokens=1, cache_read_input_tokens=900, cache_creation_input_tokens=99,
              output_tokens=2),
     {"promptTokenCount": 1000, "candidatesTokenCount": 2, "totalTokenCount": 1002,
      "cachedContentTokenCount": 900}),
]  # fmt: skip


@pytest.mark.parametrize(("usage", "expected"), USAGE)
def test_usage_metadata(usage: ir.Usage, expected: dict[str, int]) -> None:
    body = json.loads(response_from_ir(ir.Response(id="m", model="m", content=[], usage=usage)))
    assert body["usageMetadata"] == expected
    meta = expected
    assert meta["totalTokenCount"] == (meta["promptTokenCount"] + meta["candidatesTokenCount"]
                                       + meta.get("thoughtsTokenCount", 0))  # fmt: skip


# --- the door -------------------------------------------------------------------------------


def test_door_binds_include_thoughts() -> None:
    plain = decode({"contents": USER})
    shown = decode({"contents": USER, "generationConfig": {"thinkingConfig": {
        "includeThoughts": True}}})  # fmt: skip
    parts = [list(p) for p in json.loads(GEMINI_DOOR.for_request(plain).encode_response(ANSWER))[
        "candidates"][0]["content"]["parts"]]  # fmt: skip
    assert ["text", "thought"] not in parts
    body = json.loads(GEMINI_DOOR.for_request(shown).encode_response(ANSWER))
    assert body["candidates"][0]["content"]["parts"][0] == {"text": "Let me look.",
                                                            "thought": True}  # fmt: skip
    assert GEMINI_DOOR.decode_request(json.dumps({"contents": USER}).encode()).model == "gemini"
    assert GEMINI_DOOR.name == GEMINI_ARRAY_DOOR.name == "gemini"
    assert (GEMINI_DOOR.framing, GEMINI_ARRAY_DOOR.framing) == ("sse", "array")
    assert GEMINI_ARRAY_DOOR.for_request(plain).framing == "array"


def test_door_error_event_is_a_bare_line() -> None:
    line = GEMINI_DOOR.error_event(UpstreamConnectionError("reset"))
    assert line.startswith(b'{"error":') and line.endswith(b"}\n") and line.count(b"\n") == 1
    assert validate_gemini_stream(line)["error"]["status"] == "INTERNAL"


# --- the stream encoder ---------------------------------------------------------------------

START = ev.MessageStart(id="msg_s1", model="gemini-2.5-pro", usage=ir.Usage())


def _text_events(*texts: str) -> list[ev.Event]:
    return [START, ev.BlockStart(index=0, block=text("")),
            *(ev.TextDelta(index=0, text=t) for t in texts), ev.BlockStop(index=0),
            ev.MessageDelta(stop_reason=ir.StopReason.END_TURN, usage=ir.Usage(output_tokens=1)),
            ev.MessageStop()]  # fmt: skip


def encode(events: list[ev.Event], framing: gemini.stream.Framing = "sse", **kw: Any) -> bytes:
    enc = StreamEncoder(model="gemini-2.5-pro", framing=framing, **kw)
    return b"".join(enc.feed(e) for e in events) + enc.flush()


def test_js_line_terminators_are_escaped_in_sse() -> None:
    """U+2028/U+2029 raw inside a data: line stall the JS SDK (its '.' stops there)."""
    raw = encode(_text_events("a\u2028b", "\u2029", "“ok” — …"))
    assert "\u2028".encode() not in raw and "\u2029".encode() not in raw
    assert rb"a\u2028b" in raw and "“ok” — …".encode() in raw
    js_frame = re.compile(r"\s*data: ([^\n\r\u2028\u2029]*)(?:\n\n|\r\r|\r\n\r\n)")
    rest, texts = raw.decode(), []
    while (m := js_frame.match(rest)) is not None:
        texts.append(json.loads(m[1])["candidates"][0]["content"]["parts"][0]["text"])
        rest = rest[m.end() :]
    assert rest == "" and "".join(texts) == "a\u2028b\u2029“ok” — …"
    assert validate_gemini_stream(raw)["candidates"][0]["content"]["parts"] == [
        {"text": "a\u2028b\u2029“ok” — …"}]  # fmt: skip
    # a JSON array is parsed whole: no need to escape there
    array = encode(_text_events("a\u2028b"), "array")
    assert "\u2028".encode() in array
    assert validate_gemini_stream(array, framing="array")["candidates"][0]["content"][
        "parts"] == [{"text": "a\u2028b"}]  # fmt: skip


@pytest.mark.parametrize("framing", ["sse", "array"])
def test_encoder_failures(framing: gemini.stream.Framing) -> None:
    # cut before the end: flush ends the stream with an error
    cut = encode(_text_events("par", "tial")[:4], framing)
    result = validate_gemini_stream(cut, framing=framing)
    assert result["error"]["code"] == 500 and result["error"]["status"] == "INTERNAL"
    assert result["candidates"][0]["content"]["parts"] == [{"text": "partial"}]
    # a failure before anything: the error alone
    enc = StreamEncoder(model="m", framing=framing)
    only = enc.fail(UpstreamError("busy", kind=ErrorKind.OVERLOADED, retry_after=2))
    assert validate_gemini_stream(only, framing=framing) == {"error": {
        "code": 503, "message": "busy", "status": "UNAVAILABLE", "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "OVERLOADED",
             "domain": "glmbridge"},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]}}  # fmt: skip
    assert enc.flush() == b""
    # a StreamError event: the error ends the stream, nothing after
    enc = StreamEncoder(model="m", framing=framing)
    out = b"".join(enc.feed(e) for e in _text_events("x")[:3])
    out += enc.feed(ev.StreamError(kind=ErrorKind.RATE_LIMIT, message="slow down"))
    assert validate_gemini_stream(out, framing=framing)["error"]["code"] == 429
    with pytest.raises(StreamStateError):
        enc.feed(ev.MessageStop())
    assert enc.keepalive() == b""


def test_sse_error_is_its_own_line_after_the_frames() -> None:
    raw = encode(_text_events("x")[:3])
    assert raw.count(b"data: ") == 1
    last = raw.rsplit(b"\n\n", 1)[1]
    assert last.startswith(b'{"error":{"code":500,') and last.endswith(b"\n")


class Reply:
    """The mock transport's answer to the next request (one SDK client for all tests)."""

    status = 200
    content_type = "text/event-stream"
    body = b""

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(self.status, headers={"content-type": self.content_type},
                               content=self.body)  # fmt: skip


_REPLY = Reply()


@cache
def _client() -> genai.Client:  # building one takes ~0.1 s
    options = types.HttpOptions(
        base_url="http://glmbridge.test",
        api_version="v1beta",
        httpx_client=httpx2.Client(transport=httpx2.MockTransport(_REPLY)),
    )
    return genai.Client(api_key="unused", http_options=options)  # fmt: skip


def sdk_client(status: int, body: bytes, content_type: str = "text/event-stream") -> genai.Client:
    """The google-genai client, its every request answered with ``body`` from now on."""
    _REPLY.status, _REPLY.body, _REPLY.content_type = status, body, content_type
    return _client()


def sdk_stream(raw: bytes) -> list[types.GenerateContentResponse]:
    """The chunks the SDK's own stream parser makes of ``raw`` (raises on an error line)."""
    return list(sdk_client(200, raw).models.generate_content_stream(model="m", contents="hi"))


def test_sse_stream_through_the_sdk() -> None:
    chunks = sdk_stream(encode(_text_events("Hel", "lo\u2028")))
    assert "".join(c.text or "" for c in chunks) == "Hello\u2028"
    assert chunks[-1].candidates[0].finish_reason == "STOP"  # type: ignore[index]
    assert chunks[-1].usage_metadata is not None
    with pytest.raises(genai_errors.ServerError) as info:
        sdk_stream(encode(_text_events("x")[:3]))
    assert (info.value.code, info.value.status) == (500, "INTERNAL")


# --- errors ---------------------------------------------------------------------------------

_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA = "type.googleapis.com/google.rpc.QuotaFailure"


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_error_body_per_kind(kind: ErrorKind) -> None:
    status, rpc, reason = GOOGLE_ERRORS[kind]
    err = UpstreamError(f"{kind} happened", kind=kind)
    code, raw = encode_error(err, request_id="req_1")
    body = json.loads(raw)
    assert code == status and list(body) == ["error"]
    assert body["error"] == {"code": status, "message": f"{kind} happened", "status": rpc,
                             "details": [{"@type": _INFO, "reason": reason,
                                          "domain": "glmbridge"}]}  # fmt: skip
    assert error_object(err) == (status, body["error"])
    assert error_headers(err) == {}
    # the SDK turns it into its own error class with the same code and status
    with pytest.raises(genai_errors.APIError) as info:
        genai_errors.APIError.raise_error(code, body, None)
    assert (info.value.code, info.value.status, info.value.message) == (
        status,
        rpc,
        f"{kind} happened",
    )
    expected_class = genai_errors.ClientError if status < 500 else genai_errors.ServerError
    assert isinstance(info.value, expected_class)


def test_client_request_errors_keep_their_status() -> None:
    missing = ClientRequestError("models/x is not found", kind=ErrorKind.NOT_FOUND)
    assert error_object(missing)[0] == 404 and error_object(missing)[1]["status"] == "NOT_FOUND"
    wrong = ClientRequestError("method not allowed", status_hint=405)
    assert error_object(wrong)[0] == 405
    assert error_object(wrong)[1]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(("kind", "status"), [(ErrorKind.RATE_LIMIT, 429),
                                              (ErrorKind.OVERLOADED, 503)])  # fmt: skip
def test_retry_info_when_the_wait_is_known(kind: ErrorKind, status: int) -> None:
    err = UpstreamError("wait", kind=kind, retry_after=2.2)
    code, obj = error_object(err)
    assert code == status
    assert obj["details"][-1] == {"@type": _RETRY, "retryDelay": "3s"}
    assert error_headers(err) == {"retry-after": "3"}
    # not for kinds a wait does not help
    assert all(
        d["@type"] != _RETRY
        for d in error_object(UpstreamError("bad", kind=ErrorKind.INVALID_REQUEST, retry_after=2))[
            1
        ]["details"]
    )


@pytest.mark.parametrize("code", ["1308", "1310", "1113"])
def test_spent_glm_quota_is_a_daily_quota_failure(code: str) -> None:
    err = error_from_parts(429, code, "quota used up", retry_after=30)
    status, obj = error_object(err)
    assert status == 429 and obj["status"] == "RESOURCE_EXHAUSTED"
    info, quota, retry = obj["details"]
    assert info == {"@type": _INFO, "reason": "RATE_LIMIT_EXCEEDED", "domain": "glmbridge",
                    "metadata": {"upstream_code": code}}  # fmt: skip
    assert quota["@type"] == _QUOTA
    (violation,) = quota["violations"]
    assert "PerDay" in violation["quotaId"] and code in violation["quotaId"]
    assert violation["description"] == err.message
    assert retry == {"@type": _RETRY, "retryDelay": "30s"}


def test_throttling_is_not_a_quota_failure() -> None:
    _, obj = error_object(error_from_parts(429, "1302", "too many requests"))
    assert [d["@type"] for d in obj["details"]] == [_INFO]
    assert obj["details"][0]["metadata"] == {"upstream_code": "1302"}
    assert "PerDay" not in json.dumps(obj)


def test_a_deeply_nested_snake_case_body_is_a_400_naming_the_depth() -> None:
    # snake_case keys take the normalising path; its walk recurses as deep as the body
    # nests, and a RecursionError there was a 500 (found by the issue 18 dedup work)
    from glmbridge.protocols.gemini import wire as gemini_wire

    depth = 600
    body = (
        b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generation_config":'
        + b'{"x":'
        + b"[" * depth
        + b"]" * depth
        + b"}}"
    )
    with pytest.raises(ClientRequestError, match="nested too deeply"):
        gemini_wire.decode_request(body)
