"""Reasoning only where the client asked for it (glmbridge.reasoning_gate, issue 11).

Properties over generated GLM streams: the dropper's output is the decoder's minus its
thinking blocks, renumbered; it passes the event grammar; and the streamed answer folds
to the same blocks as the non-stream answer with its reasoning dropped.
"""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from glmbridge import events as ev
from glmbridge import ir
from glmbridge.accumulate import accumulate
from glmbridge.protocols import openai as oa
from glmbridge.protocols.anthropic.grammar import validate_event_sequence
from glmbridge.reasoning_gate import ReasoningDropper, drop_reasoning, wants_reasoning
from tests.strategies import GlmStream, glm_streams, non_stream_body

SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def _decode(stream: GlmStream, *, drop: bool) -> list[ev.Event]:
    decoder = oa.StreamDecoder(model="m", message_id="msg_x")
    source = ReasoningDropper(decoder) if drop else decoder
    out: list[ev.Event] = []
    for chunk in stream.chunks:
        out += source.feed(json.dumps(chunk))
    if stream.done:
        out += source.feed("[DONE]")
    return out + source.flush()


def _without_ids(blocks: list[ir.Block]) -> list[object]:
    return [
        {k: v for k, v in msgspec.to_builtins(b).items() if k not in ("id", "signature")}
        for b in blocks
    ]


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW)
@given(stream=glm_streams())
def test_dropper_removes_exactly_the_thinking_blocks(stream: GlmStream) -> None:
    kept = _decode(stream, drop=False)
    dropped = _decode(stream, drop=True)
    validate_event_sequence(dropped)
    assert not any(
        isinstance(e, ev.ThinkingDelta | ev.SignatureDelta)
        or (isinstance(e, ev.BlockStart) and isinstance(e.block, ir.ThinkingBlock))
        for e in dropped
    )

    # the same events otherwise, in the same order (indices aside), same usage and ending
    def strip(events: list[ev.Event]) -> list[object]:
        thinking = {
            e.index
            for e in events
            if isinstance(e, ev.BlockStart) and isinstance(e.block, ir.ThinkingBlock)
        }
        return [
            {k: v for k, v in msgspec.to_builtins(e).items() if k not in ("index", "id")}
            for e in events
            if getattr(e, "index", None) not in thinking
        ]  # fmt: skip

    assert strip(dropped) == strip(kept)


@settings(max_examples=150, deadline=None, suppress_health_check=SLOW)
@given(stream=glm_streams(interleave=False).filter(lambda s: s.completes))
def test_dropped_stream_equals_dropped_non_stream(stream: GlmStream) -> None:
    streamed = accumulate(_decode(stream, drop=True))
    whole = drop_reasoning(oa.response_to_ir(non_stream_body(stream), model="m"))
    assert _without_ids(streamed.content) == _without_ids(whole.content)
    assert (streamed.stop_reason, streamed.usage) == (whole.stop_reason, whole.usage)


@pytest.mark.parametrize(
    ("thinking", "wanted"),
    [
        (None, False),
        (ir.Thinking(type="disabled"), False),
        (ir.Thinking(type="enabled", budget_tokens=1024), True),
        (ir.Thinking(type="adaptive"), True),
    ],
)
def test_wants_reasoning(thinking: ir.Thinking | None, wanted: bool) -> None:
    assert wants_reasoning(ir.Request(model="m", messages=[], thinking=thinking)) is wanted


def test_drop_reasoning_keeps_usage_and_order() -> None:
    usage = ir.Usage(input_tokens=3, output_tokens=90, reasoning_tokens=80)
    resp = ir.Response(id="m", model="m", usage=usage, content=[
        ir.ThinkingBlock(thinking="hmm", signature="s"),
        ir.TextBlock(text="a"),
        ir.RedactedThinkingBlock(data="x"),
        ir.ToolUseBlock(id="t", name="f", input={}),
    ])  # fmt: skip
    out = drop_reasoning(resp)
    assert [type(b) for b in out.content] == [ir.TextBlock, ir.ToolUseBlock]
    assert out.usage == usage
