"""The Chat Completions front door: client requests -> IR, IR -> chat.completion bodies and
chunk streams, and OpenAI error bodies."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from openai.types.chat import ChatCompletion

from glmbridge import events as ev
from glmbridge import ir
from glmbridge.errors import (
    ClientRequestError,
    ErrorKind,
    StreamStateError,
    UpstreamError,
)
from glmbridge.protocols.openai import CHAT_DOOR, decode_request, response_from_ir
from glmbridge.protocols.openai.door_request import FREEFORM_SCHEMA
from glmbridge.protocols.openai.door_stream import StreamEncoder
from glmbridge.protocols.openai.errors import (
    encode_error,
    error_data,
    error_from_upstream,
    error_headers,
)
from glmbridge.protocols.openai.grammar import validate_chat_stream

MODEL = "gpt-4o"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a place.",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time"}}


def decode(**fields: Any) -> ir.Request:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **fields}
    return decode_request(json.dumps(body).encode())


def refused(**fields: Any) -> ClientRequestError:
    with pytest.raises(ClientRequestError) as info:
        decode(**fields)
    assert info.value.kind is ErrorKind.INVALID_REQUEST
    assert encode_error(info.value)[0] == 400
    return info.value


def user_parts(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(parts)}]


def text(value: str) -> ir.TextBlock:
    return ir.TextBlock(text=value)


# --- request: messages and roles -------------------------------------------------------------


def test_minimal_request() -> None:
    req = decode()
    assert req == ir.Request(
        model=MODEL,
        messages=[ir.Message(role="user", content=[text("hi")])],
        echo={"include_usage": False},
    )
    assert CHAT_DOOR.decode_request(json.dumps({"model": MODEL, "messages": [
        {"role": "user", "content": "hi"}]}).encode()) == req  # fmt: skip


def test_leading_system_and_developer_messages_are_the_system_prompt() -> None:
    req = decode(
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Use "},
                                              {"type": "text", "text": "English."}]},
            {"role": "system", "content": ""},  # empty: nothing
            {"role": "user", "content": "hi"},
        ]
    )  # fmt: skip
    assert req.system == [text("Be terse."), text("Use English.")]
    assert req.messages == [ir.Message(role="user", content=[text("hi")])]


@pytest.mark.parametrize("role", ["system", "developer"])
def test_later_system_or_developer_message_stays_in_place(role: str) -> None:
    req = decode(
        messages=[
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "ok"},
            {"role": role, "content": "Now answer in French."},
            {"role": "user", "content": "two"},
        ]
    )
    assert req.system == []
    assert [m.role for m in req.messages] == ["user", "assistant", "system", "user"]
    assert req.messages[2].content == [text("Now answer in French.")]


def test_tool_messages_become_one_user_turn_of_tool_results() -> None:
    req = decode(
        messages=[
            {"role": "user", "content": "weather and time?"},
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "Two calls.",
                "tool_calls": [
                    {"id": "call_a", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}},
                    {"id": "call_b", "type": "function",
                     "function": {"name": "get_time", "arguments": {"tz": "CET"}}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "22C"},
            {"role": "tool", "tool_call_id": "call_b",
             "content": [{"type": "text", "text": "12:"}, {"type": "text", "text": "00"}]},
            {"role": "user", "content": "thanks"},
        ],
        tools=[WEATHER, CLOCK],
    )  # fmt: skip
    assert [m.role for m in req.messages] == ["user", "assistant", "user", "user"]
    assert req.messages[1].content == [
        ir.ThinkingBlock(thinking="Two calls."),
        ir.ToolUseBlock(id="call_a", name="get_weather", input={"location": "Paris"}),
        ir.ToolUseBlock(id="call_b", name="get_time", input={"tz": "CET"}),
    ]
    assert req.messages[2].content == [
        ir.ToolResultBlock(tool_use_id="call_a", content=[text("22C")]),
        ir.ToolResultBlock(tool_use_id="call_b", content=[text("12:00")]),
    ]
    assert req.messages[3].content == [text("thanks")]


def test_trailing_tool_message_ends_the_request_as_a_user_turn() -> None:
    req = decode(
        messages=[
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "custom", "custom": {"name": "apply_patch", "input": "*** x"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ]
    )  # fmt: skip
    assert req.messages[1].content == [
        ir.ToolUseBlock(id="c1", name="apply_patch", input={"input": "*** x"})
    ]
    assert req.messages[-1] == ir.Message(
        role="user", content=[ir.ToolResultBlock(tool_use_id="c1", content=[text("done")])]
    )


def test_assistant_text_parts_and_refusal_parts_are_joined() -> None:
    req = decode(
        messages=[
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "text", "text": "I "},
                                              {"type": "refusal", "refusal": "can't."}]},
        ]
    )  # fmt: skip
    assert req.messages[1].content == [text("I can't.")]


def test_bad_tool_call_arguments_are_repaired_not_refused() -> None:
    req = decode(
        messages=[
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "f", "arguments": '{"a": 1'}}]},
        ]
    )  # fmt: skip
    block = req.messages[1].content[0]
    assert isinstance(block, ir.ToolUseBlock) and isinstance(block.input, dict)
    assert (block.id, block.name) == ("c1", "f")


# --- request: content parts --------------------------------------------------------------------


def test_image_url_data_and_http() -> None:
    req = decode(
        messages=user_parts(
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg",
                                                "detail": "high"}},
        )
    )  # fmt: skip
    assert req.messages[0].content == [
        text("what is this?"),
        ir.ImageBlock(source=ir.MediaSource(type="base64", media_type="image/png",
                                            data="iVBORw0KGgo=")),
        ir.ImageBlock(source=ir.MediaSource(type="url", url="https://example.com/a.jpg")),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.png", "data:image/png,rawbytes", "/local/a.png"]
)
def test_image_url_that_is_neither_http_nor_base64_is_refused(url: str) -> None:
    err = refused(
        messages=user_parts({"type": "text", "text": "x"},
                            {"type": "image_url", "image_url": {"url": url}})
    )  # fmt: skip
    assert err.path == "messages.0.content.1"
    assert err.message.startswith("messages.0.content.1: ")


def test_input_audio_is_refused_naming_the_part() -> None:
    err = refused(
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [
                {"type": "text", "text": "listen"},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            ]},
        ]
    )  # fmt: skip
    assert err.path == "messages.2.content.1"
    assert "input_audio" in err.message and err.message.startswith("messages.2.content.1:")
    status, body = encode_error(err)
    assert status == 400 and json.loads(body)["error"]["param"] == "messages"


@pytest.mark.parametrize(
    ("file", "media_type", "data"),
    [
        ({"file_data": "JVBERi0x", "filename": "report.pdf"}, "application/pdf", "JVBERi0x"),
        ({"file_data": "aGVsbG8=", "filename": "notes.txt"}, "text/plain", "aGVsbG8="),
        ({"file_data": "JVBERi0x"}, "application/pdf", "JVBERi0x"),
        ({"file_data": "data:application/pdf;base64,JVBERi0x", "filename": "r.pdf"},
         "application/pdf", "JVBERi0x"),
    ],
)  # fmt: skip
def test_file_data_becomes_a_document(file: dict[str, str], media_type: str, data: str) -> None:
    req = decode(messages=user_parts({"type": "file", "file": file}))
    (block,) = req.messages[0].content
    assert block == ir.DocumentBlock(
        source=ir.MediaSource(type="base64", media_type=media_type, data=data),
        title=file.get("filename"),
    )


def test_file_id_is_refused_naming_the_part() -> None:
    err = refused(messages=user_parts({"type": "file", "file": {"file_id": "file-abc"}}))
    assert err.path == "messages.0.content.0.file"
    assert "file_id" in err.message


def test_file_without_data_is_refused() -> None:
    assert refused(messages=user_parts({"type": "file", "file": {"filename": "a.pdf"}})).path == (
        "messages.0.content.0.file"
    )


def test_unknown_part_type_and_role_name_the_path() -> None:
    err = refused(messages=user_parts({"type": "video_url", "video_url": {"url": "x"}}))
    assert err.path == "messages.0.content.0.type"
    err = refused(messages=[{"role": "function", "content": "x"}])
    assert err.path == "messages.0.role"
    assert "system, developer, user, assistant or tool" in err.message


# --- request: parameters -------------------------------------------------------------------


def test_n_must_be_one() -> None:
    assert decode(n=1).messages
    err = refused(n=2)
    assert err.path == "n" and json.loads(encode_error(err)[1])["error"]["param"] == "n"


@pytest.mark.parametrize(
    ("stop", "expected"),
    [("END", ["END"]), (["a", "b"], ["a", "b"]), (["a", "", "b", "c"], ["a", "b", "c"]),
     (None, [])],
)  # fmt: skip
def test_stop_string_or_list(stop: Any, expected: list[str]) -> None:
    assert decode(stop=stop).stop_sequences == expected


def test_more_than_four_stop_sequences_are_refused() -> None:
    assert refused(stop=["a", "b", "c", "d", "e"]).path == "stop"


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert decode(max_tokens=100, max_completion_tokens=200).max_tokens == 200
    assert decode(max_tokens=100).max_tokens == 100
    assert decode().max_tokens is None
    assert refused(max_completion_tokens=0).path == "max_completion_tokens"
    assert refused(max_tokens=0).path == "max_tokens"


def test_sampling_stream_user_and_include_usage() -> None:
    req = decode(
        temperature=0.2, top_p=0.9, stream=True, stream_options={"include_usage": True},
        user="u-1",
    )  # fmt: skip
    assert (req.temperature, req.top_p, req.stream) == (0.2, 0.9, True)
    assert req.echo == {"include_usage": True} and req.user_id == "u-1"
    assert decode(user="u-1", safety_identifier="s-1").user_id == "s-1"
    assert decode(stream=True).echo == {"include_usage": False}


def test_response_format() -> None:
    assert decode(response_format={"type": "text"}).response_format is None
    assert decode(response_format={"type": "json_object"}).response_format == ir.ResponseFormat(
        type="json_object"
    )
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    fmt = decode(
        response_format={"type": "json_schema",
                         "json_schema": {"name": "movie", "schema": schema, "strict": True}}
    ).response_format  # fmt: skip
    assert fmt == ir.ResponseFormat(type="json_schema", schema=schema, name="movie")
    assert refused(response_format={"type": "json_schema"}).path == "response_format.json_schema"


def test_unknown_response_format_type_names_the_allowed_values() -> None:
    err = refused(response_format={"type": "xml"})
    assert err.path == "response_format.type"
    assert "text, json_object or json_schema" in err.message


@pytest.mark.parametrize(
    ("effort", "thinking", "ir_effort"),
    [
        ("none", ir.Thinking(type="disabled"), None),
        ("minimal", ir.Thinking(type="enabled"), "low"),
        ("low", ir.Thinking(type="enabled"), "low"),
        ("medium", ir.Thinking(type="enabled"), "medium"),
        ("high", ir.Thinking(type="enabled"), "high"),
        ("xhigh", ir.Thinking(type="enabled"), "max"),
    ],
)
def test_reasoning_effort(effort: str, thinking: ir.Thinking, ir_effort: str | None) -> None:
    req = decode(reasoning_effort=effort)
    assert (req.thinking, req.effort) == (thinking, ir_effort)


def test_bogus_reasoning_effort_is_refused() -> None:
    err = refused(reasoning_effort="extreme")
    assert err.path == "reasoning_effort" and "xhigh" in err.message
    assert "extreme" not in err.message  # the client's value is never echoed


def test_glm_thinking_extension_wins() -> None:
    req = decode(reasoning_effort="high", thinking={"type": "disabled"})
    assert req.thinking == ir.Thinking(type="disabled") and req.effort == "high"
    assert decode().thinking is None


# --- request: tools ---------------------------------------------------------------------------


def test_function_tools_keep_their_schema_raw() -> None:
    req = decode(tools=[WEATHER, CLOCK])
    weather, clock = req.tools
    assert weather.name == "get_weather" and weather.description == "Weather for a place."
    assert isinstance(weather.input_schema, msgspec.Raw)
    assert json.loads(bytes(weather.input_schema)) == WEATHER["function"]["parameters"]  # type: ignore[index]
    assert clock == ir.Tool(name="get_time")  # no parameters: no schema
    assert req.tool_choice is None


def test_custom_tools_become_freeform_ir_tools() -> None:
    grammar = "start: line+\nline: /.+/"
    req = decode(
        tools=[
            {"type": "custom", "custom": {"name": "apply_patch", "description": "Patch files.",
             "format": {"type": "grammar", "grammar": {"syntax": "lark",
                                                       "definition": grammar}}}},
            {"type": "custom", "custom": {"name": "note"}},
        ]
    )  # fmt: skip
    patch, note = req.tools
    assert patch.freeform and note.freeform
    assert patch.input_schema == FREEFORM_SCHEMA == note.input_schema
    assert patch.description is not None and patch.description.startswith("Patch files.")
    assert grammar in patch.description and "lark" in patch.description
    assert note.description is None


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", ir.ToolChoice(type="none")),
        ("auto", ir.ToolChoice(type="auto")),
        ("required", ir.ToolChoice(type="any")),
        ({"type": "function", "function": {"name": "get_time"}},
         ir.ToolChoice(type="tool", name="get_time")),
    ],
)  # fmt: skip
def test_tool_choice(choice: Any, expected: ir.ToolChoice) -> None:
    req = decode(tools=[WEATHER, CLOCK], tool_choice=choice)
    assert req.tool_choice == expected
    assert [t.name for t in req.tools] == ["get_weather", "get_time"]


def test_named_custom_tool_choice() -> None:
    req = decode(
        tools=[WEATHER, {"type": "custom", "custom": {"name": "apply_patch"}}],
        tool_choice={"type": "custom", "custom": {"name": "apply_patch"}},
    )
    assert req.tool_choice == ir.ToolChoice(type="tool", name="apply_patch")


@pytest.mark.parametrize(("mode", "kind"), [("auto", "auto"), ("required", "any")])
def test_allowed_tools_narrows_the_tool_list(mode: str, kind: str) -> None:
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {"mode": mode,
                          "tools": [{"type": "function", "function": {"name": "get_time"}}]},
    }  # fmt: skip
    req = decode(tools=[WEATHER, CLOCK], tool_choice=choice)
    assert [t.name for t in req.tools] == ["get_time"]
    assert req.tool_choice == ir.ToolChoice(type=kind)  # type: ignore[arg-type]


def test_named_tool_choice_must_name_an_offered_tool() -> None:
    err = refused(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}})
    assert err.path == "tool_choice" and "nope" not in err.message
    assert refused(tools=[WEATHER], tool_choice={"type": "function"}).path == (
        "tool_choice.function"
    )
    assert refused(tool_choice="sometimes").path == "tool_choice"


def test_parallel_tool_calls_false() -> None:
    assert decode(tools=[WEATHER], parallel_tool_calls=False).tool_choice == ir.ToolChoice(
        disable_parallel_tool_use=True
    )
    assert decode(
        tools=[WEATHER], parallel_tool_calls=False, tool_choice="required"
    ).tool_choice == ir.ToolChoice(type="any", disable_parallel_tool_use=True)
    assert decode(tools=[WEATHER], parallel_tool_calls=True).tool_choice is None


# --- request: dropped, refused and malformed ----------------------------------------------------


def test_dropped_and_ignored_fields_do_not_fail() -> None:
    req = decode(
        seed=42, logit_bias={"50256": -100}, logprobs=True, top_logprobs=3,
        frequency_penalty=0.5, presence_penalty=0.5, modalities=["text"], metadata={"a": "b"},
        store=True, service_tier="auto", prompt_cache_key="k", verbosity="low",
        some_future_field={"x": 1},
    )  # fmt: skip
    assert req == decode()


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "audio"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"messages": []}, "messages"),
    ],
)
def test_unsupported_features_are_refused(fields: dict[str, Any], path: str) -> None:
    assert refused(**fields).path == path


def test_malformed_json_is_a_400() -> None:
    for body in (b"{not json", b"", b'{"model": "x", "messages": [}'):
        with pytest.raises(ClientRequestError) as info:
            decode_request(body)
        assert info.value.message == "body is not valid JSON"
        assert encode_error(info.value)[0] == 400
    with pytest.raises(ClientRequestError) as info:
        decode_request(b"[1, 2]")
    assert info.value.message.startswith("body must be a JSON object")


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": "hi"}, "messages"),
        ({"model": MODEL, "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"model": MODEL, "messages": [{"role": "user"}]}, "messages.0.content"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"},
         "max_tokens"),
        ({"model": MODEL, "messages": [{"role": "tool", "content": "x"}]},
         "messages.0.tool_call_id"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}],
          "tools": [{"type": "function", "function": {}}]}, "tools.0.function.name"),
    ],
)  # fmt: skip
def test_ill_typed_fields_are_named(body: dict[str, Any], path: str) -> None:
    with pytest.raises(ClientRequestError) as info:
        decode_request(json.dumps(body).encode())
    assert info.value.path == path and info.value.message.startswith(f"{path}: ")


# --- response_from_ir -----------------------------------------------------------------------


def answer(*content: ir.Block, stop: ir.StopReason | None = ir.StopReason.END_TURN,
           usage: ir.Usage | None = None) -> ir.Response:  # fmt: skip
    return ir.Response(id="msg_0123abc", model=MODEL, content=list(content), stop_reason=stop,
                       usage=usage or ir.Usage())  # fmt: skip


def body_of(resp: ir.Response, **kw: Any) -> dict[str, Any]:
    raw = response_from_ir(resp, created=1_700_000_000, **kw)
    ChatCompletion.model_validate_json(raw)  # the SDK's model accepts it
    parsed: dict[str, Any] = json.loads(raw)
    return parsed


def test_text_answer_exact_shape() -> None:
    usage = ir.Usage(input_tokens=10, output_tokens=7, cache_read_input_tokens=30,
                     cache_creation_input_tokens=2, reasoning_tokens=3)  # fmt: skip
    body = body_of(answer(ir.ThinkingBlock(thinking="hmm", signature="s"), text("Hello"),
                          text(" world"), usage=usage))  # fmt: skip
    assert body == {
        "id": "chatcmpl-0123abc",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello world",
                    "refusal": None,
                    "reasoning_content": "hmm",
                },
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 42,  # input + cache read + cache creation
            "completion_tokens": 7,
            "total_tokens": 49,
            "prompt_tokens_details": {"cached_tokens": 30},
            "completion_tokens_details": {"reasoning_tokens": 3},
        },
    }


def test_tool_calls_answer() -> None:
    body = body_of(
        answer(
            text("Let me check."),
            ir.ToolUseBlock(id="call_1", name="get_weather", input={"location": "巴黎"}),
            ir.ToolUseBlock(id="call_2", name="apply_patch", input={"input": "*** Begin"}),
            stop=ir.StopReason.TOOL_USE,
        )
    )
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    assert "reasoning_content" not in choice["message"]
    calls = choice["message"]["tool_calls"]
    assert [(c["id"], c["type"], c["function"]["name"]) for c in calls] == [
        ("call_1", "function", "get_weather"),
        ("call_2", "function", "apply_patch"),
    ]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"location": "巴黎"},
        {"input": "*** Begin"},
    ]
    assert isinstance(calls[0]["function"]["arguments"], str)


def test_empty_answer_has_null_content_and_zero_usage() -> None:
    body = body_of(answer())
    message = body["choices"][0]["message"]
    assert message == {"role": "assistant", "content": None, "refusal": None}
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 0}
    assert body["usage"]["total_tokens"] == 0


_S = ir.StopReason


@pytest.mark.parametrize(
    ("stop", "with_call", "finish"),
    [
        (_S.END_TURN, False, "stop"),
        (_S.STOP_SEQUENCE, False, "stop"),
        (_S.PAUSE_TURN, False, "stop"),
        (None, False, "stop"),
        (_S.MAX_TOKENS, False, "length"),
        (_S.MODEL_CONTEXT_WINDOW_EXCEEDED, False, "length"),
        (_S.REFUSAL, False, "content_filter"),
        (_S.TOOL_USE, False, "stop"),  # no call was made: never tool_calls without calls
        (_S.TOOL_USE, True, "tool_calls"),
        (_S.END_TURN, True, "tool_calls"),
        (None, True, "tool_calls"),
        (_S.MAX_TOKENS, True, "length"),
        (_S.REFUSAL, True, "content_filter"),
    ],
)
def test_finish_reason_mapping(stop: ir.StopReason | None, with_call: bool, finish: str) -> None:
    blocks: list[ir.Block] = [text("x")]
    if with_call:
        blocks.append(ir.ToolUseBlock(id="call_1", name="f", input={}))
    assert body_of(answer(*blocks, stop=stop))["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"a": 1}', '{"a": 1}'),
        ('```json\n{"a": 1}\n```', '{"a": 1}'),
        ("```\n[1, 2]\n```", "[1, 2]"),
        ('  ```JSON\n{"a": "```"}\n```  ', '{"a": "```"}'),
        ('Sure! Here it is: {"a": {"b": 2}} Hope that helps.', '{"a": {"b": 2}}'),
        ("no json here", "no json here"),
    ],
)
def test_json_mode_strips_fences_and_prose(raw: str, expected: str) -> None:
    assert body_of(answer(text(raw)), json_mode=True)["choices"][0]["message"]["content"] == (
        expected
    )
    # without JSON mode the text is never touched
    assert body_of(answer(text(raw)))["choices"][0]["message"]["content"] == raw


def test_door_applies_json_mode_from_its_request() -> None:
    fenced = answer(text('```json\n{"ok": true}\n```'))
    for fmt, expected in (
        ({"type": "json_object"}, '{"ok": true}'),
        ({"type": "json_schema", "json_schema": {"name": "r", "schema": {}}}, '{"ok": true}'),
        ({"type": "text"}, '```json\n{"ok": true}\n```'),
        (None, '```json\n{"ok": true}\n```'),
    ):
        door = CHAT_DOOR.for_request(decode(response_format=fmt))
        body = json.loads(door.encode_response(fenced))
        assert body["choices"][0]["message"]["content"] == expected
        assert isinstance(body["created"], int) and body["created"] > 1_600_000_000


# --- the chunk encoder -----------------------------------------------------------------------


def _events(*blocks: ir.Block, stop: ir.StopReason = ir.StopReason.END_TURN) -> list[ev.Event]:
    out: list[ev.Event] = [ev.MessageStart(id="msg_s1", model=MODEL, usage=ir.Usage())]
    for i, block in enumerate(blocks):
        if isinstance(block, ir.TextBlock):
            out += [ev.BlockStart(index=i, block=ir.TextBlock(text="")),
                    ev.TextDelta(index=i, text=block.text), ev.BlockStop(index=i)]  # fmt: skip
        elif isinstance(block, ir.ThinkingBlock):
            out += [ev.BlockStart(index=i, block=ir.ThinkingBlock(thinking="")),
                    ev.ThinkingDelta(index=i, thinking=block.thinking),
                    ev.BlockStop(index=i)]  # fmt: skip
        elif isinstance(block, ir.ToolUseBlock):
            out += [ev.BlockStart(index=i, block=ir.ToolUseBlock(id=block.id, name=block.name,
                                                                  input={})),
                    ev.InputJsonDelta(index=i, partial_json=json.dumps(block.input)),
                    ev.BlockStop(index=i)]  # fmt: skip
    usage = ir.Usage(input_tokens=5, output_tokens=3, cache_read_input_tokens=2)
    out += [ev.MessageDelta(stop_reason=stop, usage=usage), ev.MessageStop()]
    return out


def _encode(events: list[ev.Event], *, include_usage: bool) -> bytes:
    enc = StreamEncoder(model=MODEL, include_usage=include_usage, created=1_700_000_000)
    out = b"".join(enc.feed(e) for e in events) + enc.flush()
    assert enc.flush() == b""
    return out


def test_encoder_exact_chunks() -> None:
    raw = _encode(_events(ir.ThinkingBlock(thinking="t"), text("hé"),
                          ir.ToolUseBlock(id="call_9", name="f", input={"a": 1})),
                  include_usage=True)  # fmt: skip
    frames = [f.removeprefix(b"data: ") for f in raw.split(b"\n\n") if f]
    assert frames[-1] == b"[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    head = {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": MODEL}  # fmt: skip
    for c in chunks:
        assert {k: c[k] for k in head} == head
    deltas = [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks[:-1]]
    assert deltas == [
        ({"role": "assistant", "content": ""}, None),
        ({"reasoning_content": "t"}, None),
        ({"content": "hé"}, None),
        ({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                          "function": {"name": "f", "arguments": ""}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]}, None),
        ({}, "tool_calls"),
    ]  # fmt: skip
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }  # fmt: skip
    result = validate_chat_stream(raw, include_usage=True)
    assert result.tool_calls == [("call_9", "f", '{"a": 1}')]


def test_encoder_without_include_usage_and_with_refusal() -> None:
    raw = _encode(_events(text("no"), stop=ir.StopReason.REFUSAL), include_usage=False)
    result = validate_chat_stream(raw, include_usage=False)
    assert (result.content, result.finish_reason, result.usage) == ("no", "content_filter", None)
    assert raw.endswith(b'"finish_reason":"content_filter","logprobs":null}]}\n\ndata: [DONE]\n\n')


def test_encoder_numbers_parallel_calls_in_order() -> None:
    calls = [ir.ToolUseBlock(id=f"call_{i}", name=f"f{i}", input={"i": i}) for i in range(3)]
    result = validate_chat_stream(_encode(_events(*calls), include_usage=False))
    assert result.tool_calls == [(f"call_{i}", f"f{i}", json.dumps({"i": i})) for i in range(3)]


def test_encoder_failure_ends_without_done() -> None:
    events = _events(text("partial"))[:3]  # start, block start, one delta
    enc = StreamEncoder(model=MODEL, created=1)
    out = b"".join(enc.feed(e) for e in events)
    err = UpstreamError("upstream went away", kind=ErrorKind.OVERLOADED)
    out += enc.fail(err)
    result = validate_chat_stream(out)
    assert result.content == "partial" and result.finish_reason is None
    assert result.error == {"message": "upstream went away", "type": "server_error",
                            "param": None, "code": "server_is_overloaded"}  # fmt: skip
    assert b"[DONE]" not in out
    assert enc.flush() == b""
    with pytest.raises(StreamStateError):
        enc.feed(ev.MessageStop())


def test_encoder_flush_before_the_end_is_a_truncation_error() -> None:
    enc = StreamEncoder(model=MODEL, include_usage=True, created=1)
    out = b"".join(enc.feed(e) for e in _events(text("cut"))[:3]) + enc.flush()
    result = validate_chat_stream(out, include_usage=True)
    assert result.error is not None and result.error["type"] == "server_error"


def test_encoder_stream_error_event() -> None:
    enc = StreamEncoder(model=MODEL, created=1)
    out = enc.feed(ev.MessageStart(id="msg_x", model=MODEL, usage=ir.Usage()))
    out += enc.feed(ev.StreamError(kind=ErrorKind.RATE_LIMIT, message="slow down"))
    result = validate_chat_stream(out)
    assert result.error is not None and result.error["code"] == "rate_limit_exceeded"


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "err_type", "code"),
    [
        (ErrorKind.INVALID_REQUEST, 400, "invalid_request_error", None),
        (ErrorKind.AUTHENTICATION, 401, "invalid_request_error", "invalid_api_key"),
        (ErrorKind.BILLING, 429, "insufficient_quota", "insufficient_quota"),
        (ErrorKind.PERMISSION, 403, "invalid_request_error", "forbidden"),
        (ErrorKind.NOT_FOUND, 404, "invalid_request_error", "not_found"),
        (ErrorKind.REQUEST_TOO_LARGE, 413, "invalid_request_error", "request_too_large"),
        (ErrorKind.RATE_LIMIT, 429, "requests", "rate_limit_exceeded"),
        (ErrorKind.API_ERROR, 500, "server_error", "server_error"),
        (ErrorKind.OVERLOADED, 503, "server_error", "server_is_overloaded"),
        (ErrorKind.TIMEOUT, 504, "server_error", "timeout"),
    ],
)
def test_error_kinds(kind: ErrorKind, status: int, err_type: str, code: str | None) -> None:
    err = UpstreamError("it failed", kind=kind)
    got_status, body = CHAT_DOOR.encode_error(err, request_id="req_1")
    assert got_status == status
    assert json.loads(body) == {
        "error": {"message": "it failed", "type": err_type, "param": None, "code": code}
    }
    frame = CHAT_DOOR.error_event(err)
    assert frame == error_data(err) == b"data: " + body + b"\n\n"


@pytest.mark.parametrize(
    ("status", "code", "out_status", "err_type", "out_code"),
    [
        (400, "1261", 400, "invalid_request_error", "context_length_exceeded"),
        (429, "1308", 429, "insufficient_quota", "insufficient_quota"),
        (429, "1113", 429, "insufficient_quota", "insufficient_quota"),
        (429, "1310", 429, "insufficient_quota", "insufficient_quota"),
        (429, "1302", 429, "requests", "rate_limit_exceeded"),
        (400, "1211", 404, "invalid_request_error", "model_not_found"),
        (401, "1002", 401, "invalid_request_error", "invalid_api_key"),
    ],
)
def test_glm_business_codes(
    status: int, code: str, out_status: int, err_type: str, out_code: str
) -> None:
    body = json.dumps({"error": {"code": code, "message": "GLM says no"}}).encode()
    err = error_from_upstream(status, body)
    got_status, raw = encode_error(err)
    error = json.loads(raw)["error"]
    assert (got_status, error["type"], error["code"]) == (out_status, err_type, out_code)
    assert "GLM says no" in error["message"] and error["param"] is None


def test_route_status_hint_wins() -> None:
    status, body = encode_error(ClientRequestError("Method Not Allowed", status_hint=405))
    assert status == 405
    assert json.loads(body)["error"] == {"message": "Method Not Allowed",
                                         "type": "invalid_request_error", "param": None,
                                         "code": None}  # fmt: skip


def test_error_body_has_no_request_id_and_param_is_the_top_level_field() -> None:
    err = ClientRequestError("required", path="tools.0.function.name")
    status, body = encode_error(err, request_id="req_abc")
    assert status == 400 and b"req_abc" not in body
    assert json.loads(body)["error"]["param"] == "tools"
    assert json.loads(body)["error"]["message"] == "tools.0.function.name: required"


def test_retry_headers() -> None:
    throttled = error_from_upstream(429, b'{"error":{"code":"1302","message":"x"}}',
                                    retry_after=1.2)  # fmt: skip
    assert CHAT_DOOR.error_headers(throttled) == {"retry-after": "2"}
    quota = error_from_upstream(429, b'{"error":{"code":"1308","message":"x"}}')
    assert error_headers(quota) == {"x-should-retry": "false"}
    assert error_headers(ClientRequestError("bad")) == {}
