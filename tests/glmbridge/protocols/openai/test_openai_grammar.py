"""The Chat Completions stream grammar validator: accepts our shapes, rejects each violation."""
# The case tables keep one case per line, so long lines are expected here.
# ruff: noqa: E501

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk

from glmbridge.errors import ErrorKind, GlmbridgeError
from glmbridge.protocols.anthropic.grammar import StreamGrammarError
from glmbridge.protocols.openai.grammar import ChatStreamResult, validate_chat_stream
from glmbridge.sse import ServerSentEvent
from tests.json_edits import DROP, json_paths, with_value

Frame = dict[str, Any]
Payload = Frame | str  # a JSON payload, or the literal "[DONE]"

DONE = "[DONE]"


def chunk(delta: Frame | None = None, finish: Any = None, **extra: Any) -> Frame:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "glm-4.7",
        "choices": [{"index": 0, "delta": {} if delta is None else delta, "finish_reason": finish}],
        **extra,
    }


def usage_chunk(prompt: Any = 10, completion: Any = 5, total: Any = None, **extra: Any) -> Frame:
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion if total is None else total,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
        **extra,
    }
    return {**chunk(), "choices": [], "usage": usage}


def tc_start(index: int, call_id: str, name: str, arguments: str = "") -> Frame:
    return {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def tc_more(index: int, arguments: str) -> Frame:
    return {"index": index, "function": {"arguments": arguments}}


def tools(*calls: Frame) -> Frame:
    return chunk({"tool_calls": list(calls)})


ERROR: Frame = {
    "error": {
        "message": "upstream overloaded",
        "type": "server_error",
        "param": None,
        "code": "overloaded",
    }
}
ROLE = chunk({"role": "assistant", "content": ""})
STOP = chunk({}, "stop")


def sse(payloads: list[Payload]) -> bytes:
    """Payloads -> chat SSE bytes (``data:`` lines only)."""
    return b"".join(
        b"data: " + (p.encode() if isinstance(p, str) else json.dumps(p).encode()) + b"\n\n"
        for p in payloads
    )


def text(*parts: str) -> list[Frame]:
    return [chunk({"content": p}) for p in parts]


FULL: list[Payload] = [
    ROLE,
    chunk({"reasoning_content": "Let me "}),
    chunk({"reasoning_content": "think."}),
    *text("Calling ", "tools."),
    tools(tc_start(0, "call_1", "get_weather", ""), tc_start(1, "call_2", "ls", '{"path"')),
    tools(tc_more(0, '{"city": ')),
    tools(tc_more(0, '"Paris"}'), tc_more(1, ': "/"}')),
    chunk({}, "tool_calls"),
    usage_chunk(),
    DONE,
]
FULL_RESULT = ChatStreamResult(
    id="chatcmpl-abc",
    model="glm-4.7",
    content="Calling tools.",
    reasoning="Let me think.",
    tool_calls=[("call_1", "get_weather", '{"city": "Paris"}'), ("call_2", "ls", '{"path": "/"}')],
    finish_reason="tool_calls",
    usage=usage_chunk()["usage"],
    error=None,
)

# name -> (payloads, include_usage values it is valid for, expected result)
VALID: dict[str, tuple[list[Payload], tuple[bool | None, ...], ChatStreamResult]] = {
    "text only": (
        [ROLE, *text("Hel", "lo"), STOP, DONE], (None, False),
        ChatStreamResult("chatcmpl-abc", "glm-4.7", "Hello", "", [], "stop", None, None),
    ),
    "text with usage": (
        [ROLE, *text("Hi"), STOP, usage_chunk(), DONE], (None, True),
        ChatStreamResult("chatcmpl-abc", "glm-4.7", "Hi", "", [], "stop", usage_chunk()["usage"], None),
    ),
    "reasoning text two tool calls": (FULL, (None, True), FULL_RESULT),
    "no role, content on the finish chunk": (
        [chunk({"content": "A"}), chunk({"content": "B"}, "length"), DONE], (None, False),
        ChatStreamResult("chatcmpl-abc", "glm-4.7", "AB", "", [], "length", None, None),
    ),
    "finish chunk only": (
        [chunk({"role": "assistant"}, "content_filter"), DONE], (None, False),
        ChatStreamResult("chatcmpl-abc", "glm-4.7", "", "", [], "content_filter", None, None),
    ),
    "tool call with empty arguments then all of them": (
        [tools(tc_start(0, "c", "f")), tools(tc_more(0, "{}")), chunk({}, "tool_calls"), DONE], (None,),
        ChatStreamResult("chatcmpl-abc", "glm-4.7", "", "", [("c", "f", "{}")], "tool_calls", None, None),
    ),
    "length with a tool call": (
        [tools(tc_start(0, "c", "f", '{"a": 1}')), chunk({}, "length"), DONE], (None,),
        ChatStreamResult("chatcmpl-abc", "glm-4.7", "", "", [("c", "f", '{"a": 1}')], "length", None, None),
    ),
    "refusal and null fields": (
        [chunk({"role": "assistant", "content": None, "refusal": "No."}, logprobs=None, usage=None), chunk({"refusal": None}, "stop"), DONE], (None,),
        ChatStreamResult("chatcmpl-abc", "glm-4.7", "", "", [], "stop", None, None, refusal="No."),
    ),
    "extra fields ignored": (
        [chunk({"content": "x"}, system_fingerprint="fp", service_tier="default"), STOP, DONE], (None,),
        ChatStreamResult("chatcmpl-abc", "glm-4.7", "x", "", [], "stop", None, None),
    ),
    "error first": ([ERROR], (None, True, False), ChatStreamResult(None, None, "", "", [], None, None, ERROR["error"])),
    "error mid-stream": (
        [ROLE, *text("par"), tools(tc_start(0, "c", "f", '{"a"')), ERROR], (None, True),
        ChatStreamResult("chatcmpl-abc", "glm-4.7", "par", "", [("c", "f", '{"a"')], None, None, ERROR["error"]),
    ),
}  # fmt: skip


@pytest.mark.parametrize(("payloads", "modes", "expected"), VALID.values(), ids=VALID.keys())
def test_accepts_valid_streams(
    payloads: list[Payload], modes: tuple[bool | None, ...], expected: ChatStreamResult
) -> None:
    raw = sse(payloads)
    for mode in modes:
        assert validate_chat_stream(raw, include_usage=mode) == expected
    assert validate_chat_stream(raw.replace(b"\n", b"\r\n")) == expected  # framing-independent


@pytest.mark.parametrize("payloads", [v[0] for v in VALID.values()], ids=VALID.keys())
def test_valid_chunks_parse_with_the_sdk(payloads: list[Payload]) -> None:
    # The openai SDK's own model accepts every chunk we call valid.
    for payload in payloads:
        if isinstance(payload, dict) and "error" not in payload:
            ChatCompletionChunk.model_validate(payload)


def test_keep_alive_comments_are_ignored() -> None:
    raw = b": keep-alive\n\n" + sse([ROLE]) + b": ping\n\n" + sse([STOP]) + b":\n\n" + sse([DONE])
    assert validate_chat_stream(raw).content == ""


def test_accepts_decoded_frames() -> None:
    frames = [ServerSentEvent(None, p if isinstance(p, str) else json.dumps(p)) for p in FULL]
    assert validate_chat_stream(frames, include_usage=True) == FULL_RESULT
    assert validate_chat_stream(iter(frames)) == FULL_RESULT


def test_result_is_frozen() -> None:
    result = validate_chat_stream(sse(FULL))
    with pytest.raises(AttributeError):
        result.content = "x"  # type: ignore[misc]


def _tool_args(args: str) -> list[Payload]:
    return [tools(tc_start(0, "c", "f", args)), chunk({}, "tool_calls"), DONE]


ERR_OK = ERROR["error"]

# (name, payloads, include_usage, rule, message fragment) — one case per rule variant.
INVALID: list[tuple[str, list[Payload], bool | None, str, str]] = [
    ("missing [DONE]", [ROLE, STOP], None, "truncated stream", "end of stream: truncated stream: ended after the finish chunk"),
    ("truncated mid-stream", [ROLE, *text("a")], None, "truncated stream", "ended while streaming"),
    ("empty stream", [], None, "truncated stream", "ended before the first chunk"),
    ("two finish reasons", [ROLE, STOP, STOP, DONE], None, "event order", "event 2 (finish chunk): event order: a second finish_reason"),
    ("content after finish", [ROLE, STOP, *text("x"), DONE], None, "event order", "event 2 (chunk): event order: a chunk with choices after the finish chunk"),
    ("empty chunk after usage", [ROLE, STOP, usage_chunk(), chunk(), DONE], None, "event order", "a chunk with choices after the usage chunk"),
    ("[DONE] before finish", [ROLE, DONE], None, "event order", "event 1 ([DONE]): event order: [DONE] before the finish chunk"),
    ("[DONE] twice", [STOP, DONE, DONE], None, "event order", "event 2 ([DONE]): event order: nothing may follow the terminal payload (after [DONE])"),
    ("chunk after [DONE]", [STOP, DONE, chunk()], None, "event order", "event 2 (chunk): event order: nothing may follow"),
    ("anything after error", [ROLE, ERROR, DONE], None, "event order", "event 2 ([DONE]): event order: nothing may follow the terminal payload (after the error payload)"),
    ("chunk after error", [ERROR, chunk()], None, "event order", "nothing may follow"),
    ("error after finish", [STOP, ERROR], None, "event order", "event 1 (error): event order: an error payload after the finish chunk"),
    ("usage before finish", [ROLE, usage_chunk(), STOP, DONE], None, "event order", "event 1 (usage chunk): event order: the usage chunk must follow the finish chunk"),
    ("two usage chunks", [STOP, usage_chunk(), usage_chunk(), DONE], None, "event order", "at most one usage chunk"),
    ("id changes", [ROLE, with_value(STOP, "id", "chatcmpl-xyz"), DONE], None, "chunk identity", "event 1 (chunk): chunk identity: id changed from 'chatcmpl-abc' to 'chatcmpl-xyz'"),
    ("model changes", [ROLE, with_value(STOP, "model", "glm-5"), DONE], None, "chunk identity", "model changed"),
    ("created changes", [ROLE, with_value(STOP, "created", 1), DONE], None, "chunk identity", "created changed"),
    ("usage chunk id changes", [STOP, with_value(usage_chunk(), "id", "chatcmpl-z"), DONE], None, "chunk identity", "id changed"),
    ("bad object", [with_value(STOP, "object", "chat.completion"), DONE], None, "chunk shape", "object must be 'chat.completion.chunk'"),
    ("id prefix", [with_value(STOP, "id", "msg_1"), DONE], None, "chunk shape", "id must be a string starting with 'chatcmpl-'"),
    ("created not int", [with_value(STOP, "created", "1"), DONE], None, "chunk shape", "created must be an integer"),
    ("created bool", [with_value(STOP, "created", True), DONE], None, "chunk shape", "created must be an integer"),
    ("model missing", [with_value(STOP, "model", DROP), DONE], None, "chunk shape", "model must be a string"),
    ("choices not a list", [with_value(STOP, "choices", {}), DONE], None, "chunk shape", "choices must be a list"),
    ("two choices", [{**STOP, "choices": STOP["choices"] * 2}, DONE], None, "choice shape", "exactly one choice, got 2"),
    ("choice not object", [with_value(STOP, "choices.0", "x"), DONE], None, "choice shape", "choices[0] must be an object"),
    ("choice index", [with_value(STOP, "choices.0.index", 1), DONE], None, "choice shape", "choices[0].index must be 0, got 1"),
    ("delta not object", [with_value(STOP, "choices.0.delta", []), DONE], None, "choice shape", "delta must be an object"),
    ("finish_reason missing", [with_value(ROLE, "choices.0.finish_reason", DROP), STOP, DONE], None, "choice shape", "finish_reason is missing"),
    ("logprobs set", [with_value(ROLE, "choices.0.logprobs", {"content": []}), STOP, DONE], None, "choice shape", "logprobs must be absent or null"),
    ("unknown finish reason", [chunk({}, "end_turn"), DONE], None, "finish reason", "'end_turn' is not a chat finish_reason"),
    ("unhashable finish reason", [chunk({}, ["stop"]), DONE], None, "finish reason", "['stop'] is not a chat finish_reason"),
    ("tool_calls without calls", [ROLE, chunk({}, "tool_calls"), DONE], None, "finish reason", "finish_reason 'tool_calls' without any tool call"),
    ("stop with tool calls", [tools(tc_start(0, "c", "f", "{}")), STOP, DONE], None, "finish reason", "'stop' with tool calls"),
    ("role in a later chunk", [ROLE, chunk({"role": "assistant"}), STOP, DONE], None, "role", "event 1 (chunk): role: delta.role is allowed only in the first chunk"),
    ("role not assistant", [chunk({"role": "user"}), STOP, DONE], None, "role", "delta.role must be 'assistant', got 'user'"),
    ("content not a string", [chunk({"content": 5}), STOP, DONE], None, "delta field", "delta.content must be a string"),
    ("reasoning not a string", [chunk({"reasoning_content": ["x"]}), STOP, DONE], None, "delta field", "delta.reasoning_content must be a string"),
    ("tool_calls not a list", [chunk({"tool_calls": {}}), STOP, DONE], None, "delta field", "delta.tool_calls must be a list"),
    ("tool call not an object", [chunk({"tool_calls": ["x"]}), STOP, DONE], None, "delta field", "tool_calls items must be objects"),
    ("tool call without name", [tools(with_value(tc_start(0, "c", "f"), "function.name", DROP))], None, "tool call start", "tool call 0: its first delta needs a non-empty function.name"),
    ("tool call empty name", [tools(tc_start(0, "c", ""))], None, "tool call start", "non-empty function.name"),
    ("tool call without id", [tools(with_value(tc_start(0, "c", "f"), "id", DROP))], None, "tool call start", "needs a non-empty id"),
    ("tool call without type", [tools(with_value(tc_start(0, "c", "f"), "type", DROP))], None, "tool call start", "needs type 'function'"),
    ("tool call without function", [tools(with_value(tc_start(0, "c", "f"), "function", None))], None, "tool call start", "needs a function object"),
    ("tool call arguments missing", [tools(with_value(tc_start(0, "c", "f"), "function.arguments", DROP))], None, "tool call start", "function.arguments (a string)"),
    ("tool index skips", [tools(tc_start(0, "a", "f", "{}")), tools(tc_start(2, "b", "g", "{}"))], None, "tool call index", "expected an index in 0..1 (a new call takes 1), got 2"),
    ("tool index not from 0", [tools(tc_start(1, "a", "f"))], None, "tool call index", "got 1"),
    ("tool index bool", [tools({**tc_start(0, "a", "f"), "index": False})], None, "tool call index", "got False"),
    ("tool index missing", [tools(with_value(tc_start(0, "a", "f"), "index", DROP))], None, "tool call index", "got None"),
    ("continuation carries id", [tools(tc_start(0, "a", "f")), tools({**tc_more(0, "{}"), "id": "a"})], None, "tool call continuation", "tool call 0: only its first delta carries id"),
    ("continuation carries name", [tools(tc_start(0, "a", "f")), tools(with_value(tc_more(0, "{}"), "function.name", "f"))], None, "tool call continuation", "only its first delta carries name"),
    ("continuation carries type", [tools(tc_start(0, "a", "f")), tools({**tc_more(0, "{}"), "type": "function"})], None, "tool call continuation", "carries type"),
    ("continuation without arguments", [tools(tc_start(0, "a", "f")), tools({"index": 0})], None, "tool call continuation", "a later delta needs function.arguments"),
    ("arguments not a JSON object", _tool_args("[1, 2]"), None, "tool arguments json", "event 1 (finish chunk): tool arguments json: tool call 0: the concatenated arguments are not a JSON object"),
    ("arguments not JSON", _tool_args('{"a": '), None, "tool arguments json", "not a JSON object"),
    ("arguments empty", _tool_args(""), None, "tool arguments json", "not a JSON object"),
    ("usage missing when required", [ROLE, STOP, DONE], True, "include_usage", "event 2 ([DONE]): include_usage: include_usage=True but no usage chunk before [DONE]"),
    ("usage chunk when forbidden", [ROLE, STOP, usage_chunk(), DONE], False, "include_usage", "event 2 (usage chunk): include_usage: a usage chunk although include_usage=False"),
    ("usage total mismatch", [STOP, usage_chunk(10, 5, 16), DONE], None, "usage total", "usage total: total_tokens 16 != 10 + 5"),
    ("usage field missing", [STOP, with_value(usage_chunk(), "usage.prompt_tokens_details", DROP), DONE], None, "usage", "usage.prompt_tokens_details.cached_tokens must be an integer >= 0"),
    ("usage negative", [STOP, usage_chunk(-1, 5), DONE], None, "usage", "usage.prompt_tokens must be an integer >= 0"),
    ("usage reasoning missing", [STOP, with_value(usage_chunk(), "usage.completion_tokens_details", {}), DONE], None, "usage", "completion_tokens_details.reasoning_tokens"),
    ("usage chunk without usage", [STOP, {**usage_chunk(), "usage": None}, DONE], None, "usage chunk", "a chunk with no choices must carry a usage object"),
    ("usage on a content chunk", [chunk({"content": "x"}, usage=usage_chunk()["usage"]), STOP, DONE], None, "usage chunk", "usage must be absent or null on a chunk with choices"),
    ("error without message", [{"error": {**ERR_OK, "message": None}}], None, "error payload", "event 0 (error): error payload: error.message must be a string"),
    ("error without type", [{"error": {k: v for k, v in ERR_OK.items() if k != "type"}}], None, "error payload", "error.type must be a string"),
    ("error param missing", [{"error": {k: v for k, v in ERR_OK.items() if k != "param"}}], None, "error payload", "error.param must be a string or null"),
    ("error code int", [{"error": {**ERR_OK, "code": 500}}], None, "error payload", "error.code must be a string or null"),
    ("error not an object", [{"error": "boom"}], None, "error payload", "error must be an object"),
    ("not JSON", ["{nope"], None, "json body", "event 0 (payload): json body: data is neither [DONE] nor valid JSON"),
    ("JSON array", ["[1]"], None, "json body", "data must be a JSON object"),
    ("done with blanks", [STOP, "[DONE] "], None, "json body", "neither [DONE] nor valid JSON"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payloads", "include_usage", "rule", "expected"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_rejects_violation(
    payloads: list[Payload], include_usage: bool | None, rule: str, expected: str
) -> None:
    with pytest.raises(StreamGrammarError) as info:
        validate_chat_stream(sse(payloads), include_usage=include_usage)
    assert info.value.rule == rule
    assert expected in info.value.message
    assert isinstance(info.value, GlmbridgeError)
    assert info.value.kind is ErrorKind.API_ERROR


def test_rule_and_position_attributes() -> None:
    with pytest.raises(StreamGrammarError) as info:
        validate_chat_stream(sse([ROLE, *text("a"), STOP, STOP, DONE]))
    assert (info.value.rule, info.value.position) == ("event order", 3)
    with pytest.raises(StreamGrammarError) as info:
        validate_chat_stream(sse([ROLE]))
    assert (info.value.rule, info.value.position) == ("truncated stream", None)


def test_event_lines_are_rejected() -> None:
    raw = b"event: chunk\ndata: " + json.dumps(STOP).encode() + b"\n\n" + sse([DONE])
    with pytest.raises(StreamGrammarError, match=r"event 0 \(payload\): event name: .*'chunk'"):
        validate_chat_stream(raw)


def test_sse_framing_error_is_a_grammar_error() -> None:
    with pytest.raises(StreamGrammarError, match="sse framing") as info:
        validate_chat_stream(b"data: " + b"x" * (17 * 1024 * 1024))
    assert info.value.rule == "sse framing"


# -- no wrong JSON shape escapes as anything but StreamGrammarError --------------------

_WRONG_VALUES: list[Any] = [None, True, -1, "x", [], {}, DROP]


_FUZZ_BASES: list[list[Payload]] = [FULL, [ROLE, tools(tc_start(0, "c", "f", "{")), ERROR]]


@pytest.mark.parametrize("base", _FUZZ_BASES, ids=["finished", "failed"])
def test_wrong_json_shapes_only_raise_grammar_errors(base: list[Payload]) -> None:
    # Every value of every payload replaced by values of other types (or dropped):
    # the validator may accept or reject, but never crash with KeyError/TypeError.
    variants = 0
    for position, payload in enumerate(base):
        if isinstance(payload, str):
            continue
        for path in json_paths(payload):
            for value in _WRONG_VALUES:
                if value is DROP and path.split(".")[-1].isdigit():
                    continue
                mutated = [
                    *base[:position],
                    with_value(payload, path, value),
                    *base[position + 1 :],
                ]
                frames = [
                    ServerSentEvent(None, p if isinstance(p, str) else json.dumps(p))
                    for p in mutated
                ]
                variants += 1
                with contextlib.suppress(StreamGrammarError):
                    validate_chat_stream(frames, include_usage=True)
    assert variants > 100
