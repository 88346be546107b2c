"""The Responses stream grammar validator: accepts our shapes, rejects each violation."""
# The case tables keep one case per line, so long lines are expected here.
# ruff: noqa: E501

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from glmbridge.errors import ErrorKind, GlmbridgeError
from glmbridge.protocols.anthropic.grammar import StreamGrammarError
from glmbridge.protocols.responses.grammar import validate_responses_stream
from glmbridge.sse import ServerSentEvent, encode_sse_event
from tests.json_edits import DROP, json_paths, with_value

Frame = dict[str, Any]
Item = tuple[list[Frame], Frame]  # (the item's events, its done item)

USAGE: Frame = {
    "input_tokens": 10,
    "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
    "output_tokens": 7,
    "output_tokens_details": {"reasoning_tokens": 3},
    "total_tokens": 17,
}


def response(status: str, output: list[Frame] | None = None, **extra: Any) -> Frame:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_700_000_000,
        "status": status,
        "model": "glm-4.7",
        "output": output or [],
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "error": None,
        "incomplete_details": None,
        "usage": None,
        **extra,
    }


def ev(kind: str, **fields: Any) -> Frame:
    return {"type": kind, **fields}


def _numbered(events: list[Frame]) -> list[Frame]:
    """``sequence_number`` is the position unless an event gives one (``DROP``: none)."""
    out = []
    for i, event in enumerate(events):
        body = {"sequence_number": i, **event}
        if body["sequence_number"] is DROP:
            del body["sequence_number"]
        out.append(body)
    return out


def sse(events: list[Frame]) -> bytes:
    """Events -> Responses SSE bytes (``event:`` equal to ``type``)."""
    return b"".join(encode_sse_event(json.dumps(e).encode(), e["type"]) for e in _numbered(events))


def message(index: int, item_id: str, *deltas: str, status: str = "completed") -> Item:
    text = "".join(deltas)
    added = {
        "type": "message",
        "id": item_id,
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    part = {"type": "output_text", "text": text, "annotations": []}
    at = {"item_id": item_id, "output_index": index, "content_index": 0}
    done = {**added, "status": status, "content": [part]}
    return [
        ev("response.output_item.added", output_index=index, item=added),
        ev("response.content_part.added", **at, part={**part, "text": ""}),
        *(ev("response.output_text.delta", **at, delta=d, logprobs=[]) for d in deltas),
        ev("response.output_text.done", **at, text=text, logprobs=[]),
        ev("response.content_part.done", **at, part=part),
        ev("response.output_item.done", output_index=index, item=done),
    ], done  # fmt: skip


def reasoning(index: int, item_id: str, *deltas: str, **done_extra: Any) -> Item:
    text = "".join(deltas)
    added = {"type": "reasoning", "id": item_id, "status": "in_progress", "summary": []}
    part = {"type": "summary_text", "text": text}
    at = {"item_id": item_id, "output_index": index, "summary_index": 0}
    done = {**added, "status": "completed", "summary": [part], **done_extra}
    return [
        ev("response.output_item.added", output_index=index, item=added),
        ev("response.reasoning_summary_part.added", **at, part={**part, "text": ""}),
        *(ev("response.reasoning_summary_text.delta", **at, delta=d) for d in deltas),
        ev("response.reasoning_summary_text.done", **at, text=text),
        ev("response.reasoning_summary_part.done", **at, part=part),
        ev("response.output_item.done", output_index=index, item=done),
    ], done  # fmt: skip


def call(
    index: int,
    item_id: str,
    name: str,
    *deltas: str,
    custom: bool = False,
    status: str = "completed",
) -> Item:
    kind, key, event = (
        ("custom_tool_call", "input", "response.custom_tool_call_input")
        if custom
        else ("function_call", "arguments", "response.function_call_arguments")
    )
    text = "".join(deltas)
    added = {
        "type": kind,
        "id": item_id,
        "status": "in_progress",
        "call_id": f"call_{item_id}",
        "name": name,
        key: "",
    }
    at = {"item_id": item_id, "output_index": index}
    done = {**added, "status": status, key: text}
    return [
        ev("response.output_item.added", output_index=index, item=added),
        *(ev(f"{event}.delta", **at, delta=d) for d in deltas),
        ev(f"{event}.done", **at, **{key: text}),
        ev("response.output_item.done", output_index=index, item=done),
    ], done  # fmt: skip


def stream(*items: Item, terminal: str = "completed", **extra: Any) -> list[Frame]:
    """created, in_progress, the items, then the terminal event for ``terminal``."""
    events = [
        ev("response.created", response=response("in_progress")),
        ev("response.in_progress", response=response("in_progress")),
    ]
    output = []
    for item_events, done in items:
        events += item_events
        output.append(done)
    if terminal in ("completed", "incomplete"):
        events.append(
            ev(
                f"response.{terminal}",
                response=response(terminal, output, **{"usage": USAGE, **extra}),
            )
        )
    elif terminal == "failed":
        events.append(ev("response.failed", response=response("failed", output, **extra)))
    return events


ERROR = ev("error", code="server_error", message="upstream overloaded", param=None)
FAILED_ERROR = {"code": "server_error", "message": "upstream overloaded"}
INCOMPLETE = {"incomplete_details": {"reason": "max_output_tokens"}}
PRELUDE = stream(terminal="")

VALID: dict[str, list[Frame]] = {
    "text only": stream(message(0, "msg_1", "Hel", "lo")),
    "no items": stream(),
    "empty message": stream(message(0, "msg_1")),
    "reasoning text two function calls": stream(
        reasoning(0, "rs_1", "Let me ", "think."),
        message(1, "msg_1", "Calling tools."),
        call(2, "fc_1", "get_weather", '{"city": ', '"Paris"}'),
        call(3, "fc_2", "ls", "{}"),
    ),
    "reasoning with encrypted content": stream(reasoning(0, "rs_1", "hm", encrypted_content="gAAAA")),
    "custom tool call": stream(message(0, "msg_1", "Patching."), call(1, "ctc_1", "apply_patch", "*** Begin", " Patch", custom=True)),
    "custom tool call with no input delta": stream(call(0, "ctc_1", "noop", custom=True)),
    "incomplete": stream(message(0, "msg_1", "cut"), terminal="incomplete", **INCOMPLETE),
    "incomplete item": stream(
        message(0, "msg_1", "a"), message(1, "msg_2", "cu", status="incomplete"),
        terminal="incomplete", incomplete_details={"reason": "content_filter"},
    ),
    "failed": stream(message(0, "msg_1", "a"), terminal="failed", error=FAILED_ERROR),
    "failed with no items": stream(terminal="failed", error={"code": "rate_limit_exceeded", "message": "slow down"}),
    "error first": [ERROR],
    "error after created": [PRELUDE[0], ERROR],
    "error after in_progress": [*PRELUDE, ERROR],
    "error mid-item": [*PRELUDE, *message(0, "msg_1", "a", "b")[0][:3], ERROR],
    "error after an item": [*PRELUDE, *message(0, "msg_1", "a")[0], ERROR],
}  # fmt: skip


def _terminal_result(events: list[Frame]) -> Frame:
    last = events[-1]
    if last["type"] == "error":
        return {"error": {"code": last["code"], "message": last["message"], "param": last["param"]}}
    return last["response"]


@pytest.mark.parametrize("events", VALID.values(), ids=VALID.keys())
def test_accepts_valid_streams(events: list[Frame]) -> None:
    raw = sse(events)
    assert validate_responses_stream(raw) == _terminal_result(events)
    assert validate_responses_stream(raw.replace(b"\n", b"\r\n")) == _terminal_result(events)


_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


@pytest.mark.parametrize("events", VALID.values(), ids=VALID.keys())
def test_valid_events_parse_with_the_sdk(events: list[Frame]) -> None:
    # The openai SDK's own event models accept every event we call valid.
    for i, event in enumerate(events):
        parsed = _EVENT_ADAPTER.validate_python({"sequence_number": i, **event})
        assert parsed.type == event["type"]


def test_result_values() -> None:
    result = validate_responses_stream(sse(VALID["reasoning text two function calls"]))
    assert [item["type"] for item in result["output"]] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert result["output"][2]["arguments"] == '{"city": "Paris"}'
    assert result["usage"]["total_tokens"] == 17
    assert validate_responses_stream(sse([ERROR])) == {
        "error": {"code": "server_error", "message": "upstream overloaded", "param": None}
    }
    failed = validate_responses_stream(sse(VALID["failed"]))
    assert (failed["status"], failed["error"]) == ("failed", FAILED_ERROR)
    # Any string code: the real API sends codes beyond the SDK's Literal list.
    overflow = {"code": "context_length_exceeded", "message": "too long"}
    assert (
        validate_responses_stream(sse(stream(terminal="failed", error=overflow)))["error"]
        == overflow
    )


def test_comments_are_ignored() -> None:
    raw = b": keep-alive\n\n" + sse(VALID["text only"]).replace(b"\n\n", b"\n\n: ping\n\n")
    assert validate_responses_stream(raw)["status"] == "completed"


def test_accepts_decoded_frames() -> None:
    events = VALID["text only"]
    frames = [
        ServerSentEvent(e["type"], json.dumps({"sequence_number": i, **e}))
        for i, e in enumerate(events)
    ]
    assert validate_responses_stream(frames)["status"] == "completed"
    assert validate_responses_stream(iter(frames))["status"] == "completed"


# -- violations -----------------------------------------------------------------------


def edit(events: list[Frame], index: int, path: str, value: Any) -> list[Frame]:
    return [with_value(e, path, value) if i == index else e for i, e in enumerate(events)]


TEXT = stream(
    message(0, "msg_1", "Hel", "lo")
)  # 0 created 1 in_progress 2 added 3 part.added 4-5 deltas 6 text.done 7 part.done 8 item.done 9 completed
TWO = stream(
    message(0, "msg_1", "a"), call(1, "fc_1", "f", '{"a": 1}')
)  # 8 fc added, 9 delta, 10 args.done, 11 item.done, 12 completed
RS = stream(
    reasoning(0, "rs_1", "hm")
)  # 2 added 3 part.added 4 delta 5 text.done 6 part.done 7 item.done 8 completed
CTC = stream(
    call(0, "ctc_1", "apply_patch", "x", custom=True)
)  # 2 added 3 delta 4 done 5 item.done 6 completed
COMPLETED = len(TEXT) - 1


def _seq(events: list[Frame], index: int, value: Any) -> list[Frame]:
    return edit(events, index, "sequence_number", value)


# (name, events, rule, message fragment) — one case per rule variant.
INVALID: list[tuple[str, list[Frame], str, str]] = [
    ("sequence gap", [*TEXT[:3], {**TEXT[3], "sequence_number": 4}, *TEXT[4:]], "sequence number", "event 3 (response.content_part.added): sequence number: expected sequence_number 3, got 4"),
    ("sequence from 1", [{**TEXT[0], "sequence_number": 1}], "sequence number", "expected sequence_number 0, got 1"),
    ("sequence missing", [TEXT[0], {**TEXT[1], "sequence_number": DROP}], "sequence number", "expected sequence_number 1, got None"),
    ("sequence not int", [{**TEXT[0], "sequence_number": "0"}], "sequence number", "got '0'"),
    ("truncated", TEXT[:-1], "truncated stream", "end of stream: truncated stream: ended between items, without a terminal event"),
    ("truncated mid-item", TEXT[:5], "truncated stream", "ended in a message item after response.content_part.added"),
    ("empty stream", [], "truncated stream", "ended before response.created"),
    ("nothing after terminal", [*TEXT, ERROR], "event order", "event 10 (error): event order: nothing may follow the terminal event, got error"),
    ("nothing after error", [ERROR, TEXT[0]], "event order", "nothing may follow the terminal event, got response.created"),
    ("first event not created", TEXT[1:], "event order", "event 0 (response.in_progress): event order: the first event must be response.created (or error)"),
    ("in_progress missing", [TEXT[0], *TEXT[2:]], "event order", "response.in_progress must follow response.created, got response.output_item.added"),
    ("created twice", [*TEXT[:2], TEXT[0], *TEXT[2:]], "event order", "response.created may appear only once"),
    ("two items open", [*TWO[:7], *TWO[8:]], "event order", "event 7 (response.output_item.added): event order: item 0 is still open"),
    ("delta after text done", [*TEXT[:7], TEXT[4], *TEXT[7:]], "event order", "response.output_text.delta not allowed in a message item after response.output_text.done"),
    ("no content part", [*TEXT[:3], *TEXT[4:]], "event order", "response.output_text.delta not allowed in a message item after response.output_item.added"),
    ("completed while an item is open", [*TEXT[:8], TEXT[9]], "event order", "response.completed while item 0 is open"),
    ("inner event between items", [*TEXT[:9], TEXT[4], TEXT[9]], "event order", "response.output_text.delta with no open item"),
    ("text delta in a function call", [*TWO[:9], {**TEXT[4], "item_id": "fc_1", "output_index": 1}, *TWO[9:]], "event order", "response.output_text.delta not allowed in a function_call item"),
    ("output_index skip", stream(message(0, "msg_1", "a"), message(2, "msg_2", "b")), "output index", "event 8 (response.output_item.added): output index: expected output_index 1, got 2"),
    ("output_index not from 0", stream(message(1, "msg_1", "a")), "output index", "expected output_index 0, got 1"),
    ("inner output_index", edit(TEXT, 4, "output_index", 1), "output index", "event 4 (response.output_text.delta): output index: expected output_index 0, got 1"),
    ("item done output_index", edit(TEXT, 8, "output_index", True), "output index", "got True"),
    ("inner item_id", edit(TEXT, 5, "item_id", "msg_2"), "item id", "item_id must be the open item's 'msg_1', got 'msg_2'"),
    ("duplicate item id", stream(message(0, "msg_1", "a"), message(1, "msg_1", "b")), "item id", "item id 'msg_1' is used twice"),
    ("content_index 1", edit(TEXT, 4, "content_index", 1), "content index", "expected content_index 0, got 1"),
    ("summary_index 1", edit(RS, 3, "summary_index", 1), "summary index", "expected summary_index 0, got 1"),
    ("item done text mismatch", edit(TEXT, 8, "item.content.0.text", "Help"), "item done", "event 8 (response.output_item.done): item done: item.content differs"),
    ("item done id mismatch", edit(TEXT, 8, "item.id", "msg_9"), "item done", "the done item must be the open message item 'msg_1'"),
    ("item done role", edit(TEXT, 8, "item.role", "user"), "item done", "item.role differs"),
    ("reasoning done summary mismatch", edit(RS, 7, "item.summary", []), "item done", "item.summary differs"),
    ("function call done arguments mismatch", edit(TWO, 11, "item.arguments", "{}"), "item done", "item.arguments differs"),
    ("function call done name changed", edit(TWO, 11, "item.name", "g"), "item done", "item.name differs"),
    ("custom tool call done input mismatch", edit(CTC, 5, "item.input", "y"), "item done", "item.input differs"),
    ("text done mismatch", edit(TEXT, 6, "text", "Hell"), "done text", "event 6 (response.output_text.done): done text: text differs from the concatenated deltas"),
    ("summary done mismatch", edit(RS, 5, "text", ""), "done text", "text differs"),
    ("arguments done mismatch", edit(TWO, 10, "arguments", "{}"), "done text", "arguments differs"),
    ("custom input done mismatch", edit(CTC, 4, "input", "xy"), "done text", "input differs"),
    ("arguments not a JSON object", stream(call(0, "fc_1", "f", "[1]")), "tool arguments json", "the arguments are not a JSON object"),
    ("arguments not JSON", stream(call(0, "fc_1", "f", '{"a": ')), "tool arguments json", "not a JSON object"),
    ("arguments empty", stream(call(0, "fc_1", "f")), "tool arguments json", "not a JSON object"),
    ("part done text mismatch", edit(TEXT, 7, "part.text", "x"), "part", "event 7 (response.content_part.done): part: part must have type output_text, text the done event's text and annotations []"),
    ("part added not empty", edit(TEXT, 3, "part.text", "H"), "part", "part must have type"),
    ("part without annotations", edit(TEXT, 3, "part.annotations", DROP), "part", "part must have type"),
    ("summary part type", edit(RS, 3, "part.type", "output_text"), "part", "part must have type"),
    ("delta not a string", edit(TEXT, 4, "delta", 5), "delta", "delta must be a string"),
    ("text delta logprobs missing", edit(TEXT, 4, "logprobs", DROP), "logprobs", "logprobs must be []"),
    ("text done logprobs missing", edit(TEXT, 6, "logprobs", DROP), "logprobs", "logprobs must be a list"),
    ("item id prefix", stream(message(0, "m_1", "a")), "item shape", "a message item's id must be a string starting 'msg_'"),
    ("function call id prefix", stream(call(0, "call_1", "f", "{}")), "item shape", "starting 'fc_'"),
    ("added message with content", edit(TEXT, 2, "item.content", [{"type": "output_text", "text": "", "annotations": []}]), "item shape", "an added message item has content []"),
    ("added call with arguments", edit(TWO, 8, "item.arguments", "{}"), "item shape", "an added function_call item has arguments ''"),
    ("call without name", edit(TWO, 8, "item.name", ""), "item shape", "a function_call item needs a non-empty string name"),
    ("call without call_id", edit(CTC, 2, "item.call_id", DROP), "item shape", "needs a non-empty string call_id"),
    ("done item not an object", edit(TEXT, 8, "item", "msg_1"), "item shape", "item must be an object"),
    ("encrypted content not a string", stream(reasoning(0, "rs_1", "a", encrypted_content=5)), "item shape", "encrypted_content must be a string"),
    ("added status", edit(TEXT, 2, "item.status", "completed"), "item status", "an added item has status 'in_progress', got 'completed'"),
    ("done status", edit(TEXT, 8, "item.status", "in_progress"), "item status", "completed or incomplete, got 'in_progress'"),
    ("incomplete item in a completed response", stream(message(0, "msg_1", "a", status="incomplete")), "item status", "event 8 (response.completed): item status: item 0 is incomplete but the response is not"),
    ("unknown item type", edit(TEXT, 2, "item.type", "file_search_call"), "item type", "item.type 'file_search_call' is not one of"),
    ("item type not a string", edit(TEXT, 2, "item.type", ["message"]), "item type", "item.type ['message']"),
    ("unknown event type", [*TEXT[:9], ev("response.queued"), TEXT[9]], "unknown event type", "event 9 (response.queued): unknown event type"),
    ("response id prefix", [with_value(TEXT[0], "response.id", "msg_1")], "response object", "response.id must be a string starting 'resp_'"),
    ("response object field", [with_value(TEXT[0], "response.object", "chat.completion")], "response object", "response.object must be 'response'"),
    ("created_at not a number", [with_value(TEXT[0], "response.created_at", "now")], "response object", "created_at must be a number"),
    ("tools missing", [with_value(TEXT[0], "response.tools", DROP)], "response object", "response.tools must be a list"),
    ("tool_choice missing", [with_value(TEXT[0], "response.tool_choice", DROP)], "response object", "response.tool_choice must be present"),
    ("parallel_tool_calls not bool", [with_value(TEXT[0], "response.parallel_tool_calls", 1)], "response object", "parallel_tool_calls must be a boolean"),
    ("response not an object", [ev("response.created", response=None)], "response object", "response must be an object"),
    ("created with output", [with_value(TEXT[0], "response.output", [{}])], "response object", "response.output must be [] before any item"),
    ("created status", [with_value(TEXT[0], "response.status", "queued")], "response status", "response.status must be 'in_progress', got 'queued'"),
    ("completed status", edit(TEXT, COMPLETED, "response.status", "in_progress"), "response status", "response.status must be 'completed', got 'in_progress'"),
    ("response id changes", edit(TEXT, 1, "response.id", "resp_2"), "response identity", "event 1 (response.in_progress): response identity: (id, model) changed"),
    ("terminal model changes", edit(TEXT, COMPLETED, "response.model", "glm-5"), "response identity", "changed"),
    ("output differs from the items", edit(TEXT, COMPLETED, "response.output", []), "response output", "response.output differs from the 1 output_item.done items"),
    ("output item differs", edit(TWO, 12, "response.output.1.arguments", "{}"), "response output", "differs"),
    ("usage total mismatch", edit(TEXT, COMPLETED, "response.usage.total_tokens", 18), "usage total", "total_tokens 18 != input + output tokens 17"),
    ("usage missing", edit(TEXT, COMPLETED, "response.usage", None), "usage", "usage.input_tokens must be an integer >= 0"),
    ("usage cached tokens missing", edit(TEXT, COMPLETED, "response.usage.input_tokens_details", {"cache_write_tokens": 0}), "usage", "usage.input_tokens_details.cached_tokens"),
    ("usage cache_write_tokens missing (SDK)", edit(TEXT, COMPLETED, "response.usage.input_tokens_details.cache_write_tokens", DROP), "usage", "usage.input_tokens_details.cache_write_tokens"),
    ("usage reasoning tokens negative", edit(TEXT, COMPLETED, "response.usage.output_tokens_details.reasoning_tokens", -1), "usage", "reasoning_tokens must be an integer >= 0"),
    ("incomplete without reason", stream(message(0, "msg_1", "a"), terminal="incomplete"), "incomplete details", "incomplete_details.reason None is not allowed"),
    ("incomplete bad reason", stream(terminal="incomplete", incomplete_details={"reason": "max_messages"}), "incomplete details", "'max_messages'"),
    ("incomplete usage", stream(terminal="incomplete", usage=None, **INCOMPLETE), "usage", "usage.input_tokens"),
    ("failed without error", stream(terminal="failed"), "response error", "response.error must hold a string code and message"),
    ("failed error code null", stream(terminal="failed", error={"code": None, "message": "x"}), "response error", "string code and message"),
    ("failed with an incomplete item", stream(message(0, "msg_1", "a", status="incomplete"), terminal="failed", error=FAILED_ERROR), "item status", "item 0 is incomplete"),
    ("error event without message", [with_value(ERROR, "message", DROP)], "error event", "event 0 (error): error event: message must be a string"),
    ("error event code int", [with_value(ERROR, "code", 500)], "error event", "code must be a string or null"),
    ("error event param missing", [with_value(ERROR, "param", DROP)], "error event", "param must be a string or null"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("events", "rule", "expected"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_rejects_violation(events: list[Frame], rule: str, expected: str) -> None:
    with pytest.raises(StreamGrammarError) as info:
        validate_responses_stream(sse(events))
    assert info.value.rule == rule
    assert expected in info.value.message
    assert isinstance(info.value, GlmbridgeError)
    assert info.value.kind is ErrorKind.API_ERROR


def test_rule_and_position_attributes() -> None:
    with pytest.raises(StreamGrammarError) as info:
        validate_responses_stream(sse(edit(TEXT, 5, "delta", None)))
    assert (info.value.rule, info.value.position) == ("delta", 5)
    with pytest.raises(StreamGrammarError) as info:
        validate_responses_stream(sse(TEXT[:2]))
    assert (info.value.rule, info.value.position) == ("truncated stream", None)


def test_event_name_must_equal_type() -> None:
    raw = sse(TEXT[:4]) + encode_sse_event(
        json.dumps({"sequence_number": 4, **TEXT[4]}).encode(), "delta"
    )
    with pytest.raises(
        StreamGrammarError, match=r"event 4 \(delta\): event name: event: 'delta' differs"
    ) as info:
        validate_responses_stream(raw)
    assert info.value.rule == "event name"


def test_event_name_missing() -> None:
    raw = encode_sse_event(json.dumps({"sequence_number": 0, **TEXT[0]}).encode())
    with pytest.raises(
        StreamGrammarError, match=r"event 0 \(\?\): event name: event: None differs"
    ):
        validate_responses_stream(raw)


def test_done_sentinel_rejected() -> None:
    raw = sse(TEXT) + b"data: [DONE]\n\n"
    with pytest.raises(StreamGrammarError, match=r"event 10 .*no \[DONE\]") as info:
        validate_responses_stream(raw)
    assert info.value.rule == "no [DONE]"


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b'{"type": 3}', b"null"])
def test_json_body_rules(data: bytes) -> None:
    with pytest.raises(StreamGrammarError, match="event 0 .*json body"):
        validate_responses_stream(encode_sse_event(data, "response.created"))


def test_sse_framing_error_is_a_grammar_error() -> None:
    with pytest.raises(StreamGrammarError, match="sse framing"):
        validate_responses_stream(b"data: " + b"x" * (17 * 1024 * 1024))


# -- no wrong JSON shape escapes as anything but StreamGrammarError --------------------

_WRONG_VALUES: list[Any] = [None, True, -1, "x", [], {}, DROP]


_FUZZ_BASES: dict[str, list[Frame]] = {
    "all item types": stream(
        reasoning(0, "rs_1", "a"), message(1, "msg_1", "b"), call(2, "fc_1", "f", "{}"),
        call(3, "ctc_1", "g", "x", custom=True),
    ),
    "incomplete": VALID["incomplete"],
    "failed": VALID["failed"],
    "error": [*PRELUDE, ERROR],
}  # fmt: skip


def _frames(events: list[Frame]) -> list[ServerSentEvent]:
    return [
        ServerSentEvent(e["type"] if isinstance(e["type"], str) else None, json.dumps(e))
        for e in _numbered(events)
    ]


@pytest.mark.parametrize("base", _FUZZ_BASES.values(), ids=_FUZZ_BASES.keys())
def test_wrong_json_shapes_only_raise_grammar_errors(base: list[Frame]) -> None:
    # Every value of every event replaced by values of other types (or dropped): the
    # validator may accept or reject, but never crash with KeyError/TypeError.
    variants = 0
    for position, event in enumerate(base):
        for path in json_paths(event):
            if path == "type":
                continue  # the event name follows the type: covered by the event name tests
            for value in _WRONG_VALUES:
                if value is DROP and path.split(".")[-1].isdigit():
                    continue
                mutated = [*base[:position], with_value(event, path, value), *base[position + 1 :]]
                variants += 1
                with contextlib.suppress(StreamGrammarError):
                    validate_responses_stream(_frames(mutated))
    assert variants > 100


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: {**e, "type": None},
        lambda e: {**e, "type": ["x"]},
        lambda e: {**e, "type": "error"},
    ],
)
def test_wrong_types_in_type_field(mutate: Callable[[Frame], Frame]) -> None:
    for position in range(len(TEXT)):
        events = [mutate(e) if i == position else e for i, e in enumerate(TEXT)]
        with contextlib.suppress(StreamGrammarError):
            validate_responses_stream(_frames(events))
