"""accumulate(): IR events folded into the final Response."""

from __future__ import annotations

import pytest

from glmbridge import events as ev
from glmbridge import ir
from glmbridge.accumulate import Accumulator, accumulate
from glmbridge.errors import ErrorKind, StreamStateError, UpstreamError, UpstreamProtocolError
from glmbridge.protocols.anthropic.grammar import validate_event_sequence

START = ev.MessageStart(id="msg_1", model="claude-sonnet-4-5", usage=ir.Usage(input_tokens=9))
FINAL = ir.Usage(input_tokens=10, output_tokens=42, cache_read_input_tokens=3)


def end(reason: ir.StopReason = ir.StopReason.END_TURN, seq: str | None = None) -> list[ev.Event]:
    return [ev.MessageDelta(stop_reason=reason, usage=FINAL, stop_sequence=seq), ev.MessageStop()]


def tool_block(index: int, *parts: str, name: str = "get") -> list[ev.Event]:
    shell = ir.ToolUseBlock(id=f"toolu_{index}", name=name, input={})
    deltas = [ev.InputJsonDelta(index=index, partial_json=p) for p in parts]
    return [ev.BlockStart(index=index, block=shell), *deltas, ev.BlockStop(index=index)]


def test_text_stream() -> None:
    events = [
        START,
        ev.Ping(),
        ev.BlockStart(index=0, block=ir.TextBlock(text="")),
        ev.TextDelta(index=0, text="Hel"),
        ev.Ping(),
        ev.TextDelta(index=0, text="lo"),
        ev.BlockStop(index=0),
        *end(ir.StopReason.STOP_SEQUENCE, "###"),
    ]
    validate_event_sequence(events)  # the fixture itself is grammatical
    assert accumulate(events) == ir.Response(
        id="msg_1",
        model="claude-sonnet-4-5",
        content=[ir.TextBlock(text="Hello")],
        stop_reason=ir.StopReason.STOP_SEQUENCE,
        stop_sequence="###",
        usage=FINAL,
    )


def test_thinking_text_and_tools() -> None:
    events = [
        START,
        ev.BlockStart(index=0, block=ir.ThinkingBlock(thinking="")),
        ev.ThinkingDelta(index=0, thinking="Let me "),
        ev.ThinkingDelta(index=0, thinking="think."),
        ev.SignatureDelta(index=0, signature="sig-1"),
        ev.BlockStop(index=0),
        ev.BlockStart(index=1, block=ir.TextBlock(text="")),
        ev.TextDelta(index=1, text="Checking."),
        ev.BlockStop(index=1),
        *tool_block(2, '{"city": "Par', 'is", "n": [1, ', "2]}"),
        *tool_block(3),  # no arguments at all
        *tool_block(4, "", " "),  # only blank fragments
        *end(ir.StopReason.TOOL_USE),
    ]
    validate_event_sequence(events)
    resp = accumulate(events)
    assert resp.content == [
        ir.ThinkingBlock(thinking="Let me think.", signature="sig-1"),
        ir.TextBlock(text="Checking."),
        ir.ToolUseBlock(id="toolu_2", name="get", input={"city": "Paris", "n": [1, 2]}),
        ir.ToolUseBlock(id="toolu_3", name="get", input={}),
        ir.ToolUseBlock(id="toolu_4", name="get", input={}),
    ]
    assert resp.stop_reason is ir.StopReason.TOOL_USE
    assert resp.usage == FINAL


def test_thinking_without_signature_and_complete_blocks() -> None:
    redacted = ir.RedactedThinkingBlock(data="opaque")
    events = [
        START,
        ev.BlockStart(index=0, block=ir.ThinkingBlock(thinking="")),
        ev.ThinkingDelta(index=0, thinking="x"),
        ev.BlockStop(index=0),
        ev.BlockStart(index=1, block=redacted),
        ev.BlockStop(index=1),
        ev.BlockStart(index=2, block=ir.ServerToolUseBlock(id="s", name="web_search", input={})),
        ev.InputJsonDelta(index=2, partial_json='{"query": "q"}'),
        ev.BlockStop(index=2),
        *end(),
    ]
    content = accumulate(events).content
    assert content == [
        ir.ThinkingBlock(thinking="x"),
        redacted,
        ir.ServerToolUseBlock(id="s", name="web_search", input={"query": "q"}),
    ]


def test_usage_from_message_start_is_replaced_by_message_delta() -> None:
    resp = accumulate([START, *end()])
    assert resp.content == [] and resp.usage == FINAL


@pytest.mark.parametrize("kind", [ErrorKind.OVERLOADED, ErrorKind.RATE_LIMIT, ErrorKind.API_ERROR])
def test_stream_error_raises_upstream_error(kind: ErrorKind) -> None:
    events = [
        START,
        ev.BlockStart(index=0, block=ir.TextBlock(text="")),
        ev.TextDelta(index=0, text="partial"),
        ev.StreamError(kind=kind, message="upstream went away"),
    ]
    with pytest.raises(UpstreamError) as info:
        accumulate(events)
    assert info.value.kind is kind
    assert info.value.message == "upstream went away"


def test_errors_are_sticky() -> None:
    acc = Accumulator()
    acc.feed(START)
    with pytest.raises(UpstreamError):
        acc.feed(ev.StreamError(kind=ErrorKind.OVERLOADED, message="x"))
    with pytest.raises(StreamStateError, match="after an error"):
        acc.feed(ev.Ping())
    with pytest.raises(StreamStateError):
        acc.flush()


@pytest.mark.parametrize(
    ("events", "match"),
    [
        ([ev.Ping(), START], "can't handle Ping before MessageStart"),
        (
            [ev.BlockStart(index=0, block=ir.TextBlock(text=""))],
            "can't handle BlockStart before MessageStart",
        ),
        ([START, START], "can't handle MessageStart between blocks"),
        (
            [START, ev.BlockStart(index=1, block=ir.TextBlock(text=""))],
            "BlockStart index 1, expected 0",
        ),
        ([START, ev.TextDelta(index=0, text="x")], "can't handle TextDelta between blocks"),
        (
            [
                START,
                ev.BlockStart(index=0, block=ir.TextBlock(text="")),
                ev.ThinkingDelta(index=0, thinking="x"),
            ],
            "ThinkingDelta in a TextBlock",
        ),
        (
            [
                START,
                ev.BlockStart(index=0, block=ir.TextBlock(text="")),
                ev.TextDelta(index=1, text="x"),
            ],
            "TextDelta for block 1, not the open one",
        ),
        (
            [START, ev.BlockStart(index=0, block=ir.TextBlock(text="")), ev.BlockStop(index=3)],
            "BlockStop for block 3",
        ),
        (
            [START, ev.BlockStart(index=0, block=ir.TextBlock(text="")), *end()],
            "can't handle MessageDelta in a block",
        ),
        ([START, *end(), ev.Ping()], "called after MessageStop"),
        ([START, ev.MessageStop()], "can't handle MessageStop between blocks"),
    ],
)
def test_out_of_order_is_a_state_error(events: list[ev.Event], match: str) -> None:
    with pytest.raises(StreamStateError, match=match):
        accumulate(events)


@pytest.mark.parametrize(
    ("events", "match"),
    [
        ([START], "stream ended between blocks, before MessageStop"),
        ([START, ev.BlockStart(index=0, block=ir.TextBlock(text=""))], "ended in a block"),
        ([START, end()[0]], "ended after MessageDelta"),
        ([], "ended before MessageStart"),
        ([START, *tool_block(0, '{"a": 1'), *end()], "arguments of tool 'get' are not valid JSON"),
        (
            [START, *tool_block(0, "[1, 2]"), *end()],
            "arguments of tool 'get' are not a JSON object",
        ),
    ],
)
def test_truncation_and_bad_json_are_protocol_errors(events: list[ev.Event], match: str) -> None:
    with pytest.raises(UpstreamProtocolError, match=match):
        accumulate(events)


def test_flush_twice_is_a_state_error() -> None:
    acc = Accumulator()
    for event in [START, *end()]:
        acc.feed(event)
    assert acc.flush().id == "msg_1"
    with pytest.raises(StreamStateError):
        acc.flush()
