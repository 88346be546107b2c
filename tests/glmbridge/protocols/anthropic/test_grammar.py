"""The Anthropic stream grammar validator: accepts real shapes, rejects each violation."""
# The case tables keep one case per line, so long lines are expected here.
# ruff: noqa: E501

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import (
    CitationCharLocation,
    CitationsDelta,
    InputJSONDelta,
    Message,
    MessageDeltaUsage,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    SignatureDelta,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolUseBlock,
    Usage,
)
from anthropic.types.raw_message_delta_event import Delta

from glmbridge import events as ev
from glmbridge import ir
from glmbridge.errors import ErrorKind, GlmbridgeError
from glmbridge.protocols.anthropic.grammar import (
    StreamGrammarError,
    validate_anthropic_stream,
    validate_event_sequence,
)
from glmbridge.sse import ServerSentEvent, encode_sse_event

Frame = dict[str, Any]


def sse(frames: list[Frame]) -> bytes:
    """Frames -> Anthropic SSE bytes (``event:`` equal to ``type``)."""
    return b"".join(encode_sse_event(json.dumps(f).encode(), f["type"]) for f in frames)


START: Frame = {
    "type": "message_start",
    "message": {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    },
}
PING: Frame = {"type": "ping"}
STOP: Frame = {"type": "message_stop"}


def bstart(i: int, block: Frame) -> Frame:
    return {"type": "content_block_start", "index": i, "content_block": block}


def delta(i: int, d: Frame) -> Frame:
    return {"type": "content_block_delta", "index": i, "delta": d}


def bstop(i: int) -> Frame:
    return {"type": "content_block_stop", "index": i}


def mdelta(reason: Any = "end_turn", out: Any = 7) -> Frame:
    usage = {} if out is None else {"output_tokens": out}
    return {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": None},
        "usage": usage,
    }


TEXT = {"type": "text", "text": ""}
THINK = {"type": "thinking", "thinking": "", "signature": ""}
TOOL = {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {}}


def text(i: int, *parts: str) -> list[Frame]:
    return [
        bstart(i, TEXT),
        *(delta(i, {"type": "text_delta", "text": p}) for p in parts),
        bstop(i),
    ]


def tool(i: int, *parts: str) -> list[Frame]:
    js = (delta(i, {"type": "input_json_delta", "partial_json": p}) for p in parts)
    return [bstart(i, TOOL), *js, bstop(i)]


VALID_STREAMS: dict[str, list[Frame]] = {
    "text": [START, *text(0, "Hel", "lo"), mdelta(), STOP],
    "no blocks": [START, mdelta(), STOP],
    "pings everywhere": [
        START, PING, bstart(0, TEXT), PING, delta(0, {"type": "text_delta", "text": "x"}),
        PING, bstop(0), PING, mdelta(), PING, STOP,
    ],
    "thinking text tool": [
        START,
        bstart(0, THINK),
        delta(0, {"type": "thinking_delta", "thinking": "hmm"}),
        delta(0, {"type": "signature_delta", "signature": "sig"}),
        bstop(0),
        *text(1, "Calling."),
        *tool(2, '{"city": ', '"Paris"}'),
        *tool(3),  # a no-argument tool: no delta at all
        *tool(4, ""),  # or one empty fragment
        mdelta("tool_use", 40),
        STOP,
    ],
    "citations": [
        START, bstart(0, TEXT),
        delta(0, {"type": "citations_delta", "citation": {"type": "char_location", "cited_text": "a"}}),
        delta(0, {"type": "text_delta", "text": "a"}), bstop(0), mdelta(), STOP,
    ],
    "complete blocks": [
        START, bstart(0, {"type": "redacted_thinking", "data": "xyz"}), bstop(0),
        bstart(1, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}),
        delta(1, {"type": "input_json_delta", "partial_json": '{"query": "q"}'}), bstop(1),
        bstart(2, {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}),
        bstop(2), mdelta(), STOP,
    ],
    "error after start": [START, {"type": "error", "error": {"type": "overloaded_error", "message": "x"}}],
    "error inside a block": [
        START, bstart(0, TEXT), delta(0, {"type": "text_delta", "text": "x"}),
        {"type": "error", "error": {"type": "api_error", "message": "boom"}},
    ],
    "every stop reason": [START, mdelta("model_context_window_exceeded"), STOP],
}  # fmt: skip


@pytest.mark.parametrize("frames", VALID_STREAMS.values(), ids=VALID_STREAMS.keys())
def test_accepts_valid_streams(frames: list[Frame]) -> None:
    raw = sse(frames)
    validate_anthropic_stream(raw)
    validate_anthropic_stream(raw.replace(b"\n", b"\r\n"))  # framing-independent


@pytest.mark.parametrize(
    "frames", [f for k, f in VALID_STREAMS.items() if "error" not in k], ids=lambda _: ""
)
def test_valid_streams_fold_through_the_sdk_oracle(frames: list[Frame]) -> None:
    # The anthropic SDK's own accumulator agrees that these streams are well formed.
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for frame in frames:
        if frame["type"] != "ping":  # the SDK skips pings before accumulating
            snapshot = accumulate_event(event=frame, current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot is not None
    assert len(snapshot.content) == sum(f["type"] == "content_block_start" for f in frames)


def sdk_generated_stream() -> bytes:
    """A stream built from the anthropic SDK's own event models (the real wire shape)."""
    message = Message(
        id="msg_x", type="message", role="assistant", model="claude-opus-4-5", content=[],
        stop_reason=None, stop_sequence=None, usage=Usage(input_tokens=3, output_tokens=1),
    )  # fmt: skip
    evs: list[Any] = [
        RawMessageStartEvent(type="message_start", message=message),
        RawContentBlockStartEvent(
            type="content_block_start", index=0,
            content_block=ThinkingBlock(type="thinking", thinking="", signature=""),
        ),
        RawContentBlockDeltaEvent(
            type="content_block_delta", index=0,
            delta=ThinkingDelta(type="thinking_delta", thinking="Let me see"),
        ),
        RawContentBlockDeltaEvent(
            type="content_block_delta", index=0,
            delta=SignatureDelta(type="signature_delta", signature="EqQBCkYI"),
        ),
        RawContentBlockStopEvent(type="content_block_stop", index=0),
        RawContentBlockStartEvent(
            type="content_block_start", index=1, content_block=TextBlock(type="text", text="")
        ),
        RawContentBlockDeltaEvent(
            type="content_block_delta", index=1,
            delta=CitationsDelta(type="citations_delta", citation=CitationCharLocation(
                type="char_location", cited_text="Hi", document_index=0, document_title=None,
                start_char_index=0, end_char_index=2,
            )),
        ),
        RawContentBlockDeltaEvent(
            type="content_block_delta", index=1, delta=TextDelta(type="text_delta", text="Hi")
        ),
        RawContentBlockStopEvent(type="content_block_stop", index=1),
        RawContentBlockStartEvent(
            type="content_block_start", index=2,
            content_block=ToolUseBlock(type="tool_use", id="toolu_9", name="ls", input={}),
        ),
        RawContentBlockDeltaEvent(
            type="content_block_delta", index=2,
            delta=InputJSONDelta(type="input_json_delta", partial_json='{"p": "/"}'),
        ),
        RawContentBlockStopEvent(type="content_block_stop", index=2),
        RawMessageDeltaEvent(
            type="message_delta",
            delta=Delta(stop_reason="tool_use", stop_sequence=None),
            usage=MessageDeltaUsage(output_tokens=30),
        ),
        RawMessageStopEvent(type="message_stop"),
    ]  # fmt: skip
    return b"".join(encode_sse_event(e.model_dump_json().encode(), e.type) for e in evs)


def test_accepts_sdk_generated_stream() -> None:
    raw = sdk_generated_stream()
    assert raw.count(b"event: ") == 14
    validate_anthropic_stream(raw)


def test_accepts_decoded_frames() -> None:
    frames = [ServerSentEvent(f["type"], json.dumps(f)) for f in VALID_STREAMS["text"]]
    validate_anthropic_stream(frames)
    validate_anthropic_stream(iter(frames))


def _error(frames: list[Frame]) -> str:
    with pytest.raises(StreamGrammarError) as info:
        validate_anthropic_stream(sse(frames))
    assert isinstance(info.value, GlmbridgeError)
    assert info.value.kind is ErrorKind.API_ERROR
    return info.value.message


T = delta(0, {"type": "text_delta", "text": "x"})

# (name, frames, expected message fragment) — one case per rule.
VIOLATIONS: list[tuple[str, list[Frame], str]] = [
    ("first event", [PING, START, mdelta(), STOP], "event 0 (ping): event order: the first event must be message_start"),
    ("start twice", [START, START, mdelta(), STOP], "event 1 (message_start): event order: message_start may appear only once"),
    ("index gap", [START, *text(0, "a"), *text(2, "b"), mdelta(), STOP], "event 4 (content_block_start): block index order: expected index 1, got 2"),
    ("index not from 0", [START, *text(1, "a"), mdelta(), STOP], "block index order: expected index 0, got 1"),
    ("index not int", [START, bstart("0", TEXT)], "block index order: expected index 0, got '0'"),
    ("two open blocks", [START, bstart(0, TEXT), bstart(1, TEXT)], "event 2 (content_block_start): event order: block 0 is still open"),
    ("block never stopped", [START, bstart(0, TEXT), T, mdelta(), STOP], "event 3 (message_delta): event order: message_delta while block 0 is open"),
    ("stopped twice", [START, *text(0, "a"), bstop(0), mdelta(), STOP], "event 4 (content_block_stop): event order: content_block_stop with no open block"),
    ("stop wrong index", [START, bstart(0, TEXT), bstop(1)], "event 2 (content_block_stop): stop for a block that is not open: block 0 is the open block, got index 1"),
    ("delta after stop", [START, *text(0, "a"), T, mdelta(), STOP], "event 4 (content_block_delta): event order: content_block_delta with no open block"),
    ("delta before any block", [START, T], "content_block_delta with no open block"),
    ("delta wrong index", [START, *text(0, "a"), bstart(1, TEXT), T], "event 5 (content_block_delta): delta for a block that is not open: block 1 is the open block, got index 0"),
    ("text delta in tool", [START, bstart(0, TOOL), T], "delta type: text_delta in a tool_use block"),
    ("json delta in text", [START, bstart(0, TEXT), delta(0, {"type": "input_json_delta", "partial_json": "{}"})], "delta type: input_json_delta in a text block"),
    ("thinking delta in text", [START, bstart(0, TEXT), delta(0, {"type": "thinking_delta", "thinking": "x"})], "delta type: thinking_delta in a text block"),
    ("signature in text", [START, bstart(0, TEXT), delta(0, {"type": "signature_delta", "signature": "s"})], "delta type: signature_delta in a text block"),
    ("text delta in thinking", [START, bstart(0, THINK), T], "delta type: text_delta in a thinking block"),
    ("unknown delta", [START, bstart(0, TEXT), delta(0, {"type": "magic_delta"})], "delta type: unknown delta type 'magic_delta'"),
    ("delta payload type", [START, bstart(0, TEXT), delta(0, {"type": "text_delta", "text": 5})], "delta payload: text_delta.text must be a string"),
    ("bad tool json", [START, *tool(0, '{"a": ', "1"), mdelta(), STOP], "event 4 (content_block_stop): tool input json: the concatenated partial_json is not valid JSON"),
    ("tool start input", [START, bstart(0, {**TOOL, "input": {"a": 1}})], "tool block start: a tool block must start with input {}"),
    ("empty text delta", [START, bstart(0, TEXT), delta(0, {"type": "text_delta", "text": ""})], "empty delta: text_delta must not be empty"),
    ("empty thinking delta", [START, bstart(0, THINK), delta(0, {"type": "thinking_delta", "thinking": ""})], "empty delta: thinking_delta must not be empty"),
    ("no output_tokens", [START, mdelta(out=None), STOP], "event 1 (message_delta): message_delta usage: usage.output_tokens must be an integer"),
    ("output_tokens not int", [START, mdelta(out="7"), STOP], "usage.output_tokens must be an integer"),
    ("bad stop reason", [START, mdelta("stop"), STOP], "stop reason: delta.stop_reason 'stop' is not an Anthropic value"),
    ("null stop reason", [START, mdelta(None), STOP], "stop reason: delta.stop_reason None"),
    ("unhashable stop reason", [START, mdelta(["x"]), STOP], "stop reason: delta.stop_reason ['x']"),
    ("two message deltas", [START, mdelta(), mdelta(), STOP], "event 2 (message_delta): event order: message_delta may appear only once"),
    ("block after message_delta", [START, mdelta(), *text(0, "a"), STOP], "no block may start after message_delta"),
    ("stop without delta", [START, STOP], "event 1 (message_stop): event order: message_stop not allowed between blocks"),
    ("event after stop", [START, mdelta(), STOP, PING], "event 3 (ping): event order: nothing may follow the terminal event, got ping"),
    ("event after error", [START, {"type": "error", "error": {"type": "api_error", "message": ""}}, STOP], "nothing may follow the terminal event, got message_stop"),
    ("error without type", [START, {"type": "error", "error": "x"}], "error event: error must carry"),
    ("truncated", [START, *text(0, "a")], "end of stream: truncated stream: ended between blocks"),
    ("truncated in block", [START, bstart(0, TEXT), T], "truncated stream: ended in a block"),
    ("truncated after delta", [START, mdelta()], "truncated stream: ended after message_delta"),
    ("empty stream", [], "truncated stream: ended before message_start"),
    ("unknown type", [START, {"type": "message_pause"}], "event 1 (message_pause): unknown event type"),
    ("start content", [{**START, "message": {**START["message"], "content": [TEXT]}}], "message_start: message must be an object with empty content"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("frames", "expected"), [v[1:] for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS]
)
def test_rejects_violation(frames: list[Frame], expected: str) -> None:
    assert expected in _error(frames)


def test_event_name_must_equal_type() -> None:
    raw = sse([START]) + encode_sse_event(
        b'{"type":"message_delta","delta":{},"usage":{}}', "delta"
    )
    with pytest.raises(
        StreamGrammarError, match=r"event 1 \(delta\): event name: event: 'delta' differs"
    ):
        validate_anthropic_stream(raw)


def test_event_name_missing() -> None:
    raw = sse([START]) + encode_sse_event(json.dumps(PING).encode())
    with pytest.raises(
        StreamGrammarError, match=r"event 1 \(\?\): event name: event: None differs"
    ):
        validate_anthropic_stream(raw)


def test_done_sentinel_rejected() -> None:
    raw = sse([START, mdelta(), STOP]) + b"data: [DONE]\n\n"
    with pytest.raises(StreamGrammarError, match=r"event 3 .*no \[DONE\]"):
        validate_anthropic_stream(raw)


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b'{"type": 3}'])
def test_json_body_rules(data: bytes) -> None:
    with pytest.raises(StreamGrammarError, match="event 0 .*json body"):
        validate_anthropic_stream(encode_sse_event(data, "message_start"))


def test_sse_framing_error_is_a_grammar_error() -> None:
    with pytest.raises(StreamGrammarError, match="sse framing"):
        validate_anthropic_stream(b"data: " + b"x" * (17 * 1024 * 1024))


def test_rule_and_position_attributes() -> None:
    with pytest.raises(StreamGrammarError) as info:
        validate_anthropic_stream(sse([START, *text(0, "a"), *text(2, "b")]))
    assert (info.value.rule, info.value.position) == ("block index order", 4)


# -- IR events ------------------------------------------------------------------------

USAGE = ir.Usage(input_tokens=5, output_tokens=9)
IR_VALID: list[ev.Event] = [
    ev.MessageStart(id="msg_1", model="glm-4.7", usage=ir.Usage(input_tokens=5)),
    ev.Ping(),
    ev.BlockStart(index=0, block=ir.ThinkingBlock(thinking="")),
    ev.ThinkingDelta(index=0, thinking="hm"),
    ev.SignatureDelta(index=0, signature="s"),
    ev.BlockStop(index=0),
    ev.BlockStart(index=1, block=ir.TextBlock(text="")),
    ev.TextDelta(index=1, text="hi"),
    ev.BlockStop(index=1),
    ev.BlockStart(index=2, block=ir.ToolUseBlock(id="t", name="f", input={})),
    ev.InputJsonDelta(index=2, partial_json='{"x":'),
    ev.InputJsonDelta(index=2, partial_json="1}"),
    ev.BlockStop(index=2),
    ev.MessageDelta(stop_reason=ir.StopReason.TOOL_USE, usage=USAGE),
    ev.MessageStop(),
]


def test_ir_valid_sequence() -> None:
    validate_event_sequence(IR_VALID)
    validate_event_sequence([*IR_VALID[:4], ev.StreamError(kind=ErrorKind.OVERLOADED, message="x")])


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (IR_VALID[1:], "event 0 (ping): event order: the first event must be message_start"),
        (
            [*IR_VALID[:3], ev.TextDelta(index=0, text="x")],
            "delta type: text_delta in a thinking block",
        ),
        ([*IR_VALID[:3], ev.ThinkingDelta(index=0, thinking="")], "empty delta"),
        (
            [*IR_VALID[:12], ev.InputJsonDelta(index=2, partial_json="}"), ev.BlockStop(index=2)],
            "tool input json",
        ),
        (IR_VALID[:-1], "truncated stream"),
        (
            [*IR_VALID[:-2], ev.MessageDelta(stop_reason=None, usage=USAGE), ev.MessageStop()],
            "stop reason",
        ),
        ([IR_VALID[0], ev.BlockStart(index=1, block=ir.TextBlock(text=""))], "block index order"),
        ([*IR_VALID, ev.Ping()], "nothing may follow"),
        (
            [IR_VALID[0], ev.StreamError(kind=ErrorKind.API_ERROR, message=""), ev.Ping()],
            "nothing may follow",
        ),
    ],
)
def test_ir_violations(events: list[ev.Event], expected: str) -> None:
    with pytest.raises(StreamGrammarError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        validate_event_sequence(events)


def test_ir_rejects_non_events() -> None:
    with pytest.raises(StreamGrammarError, match="unknown event type"):
        validate_event_sequence([IR_VALID[0], "message_stop"])  # type: ignore[list-item]
