"""GLM stream decoder: golden transcripts, grammar, and stream ≡ non-stream.

Golden files: ``tests/fixtures/glm/<case>.sse`` (raw upstream SSE, written from
wire-specs A.9) and ``<case>.expected.json`` (the reviewed events and the message
they fold into). Regenerate with ``GLMBRIDGE_UPDATE_GOLDENS=1`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmbridge import events as ev
from glmbridge import ir
from glmbridge.errors import ErrorKind, StreamStateError, UpstreamProtocolError
from glmbridge.protocols import openai as oa

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "glm"
UPDATE = os.environ.get("GLMBRIDGE_UPDATE_GOLDENS") == "1"
_GENERATED_TOOL_ID = re.compile(r"toolu_[0-9A-Za-z]{24}")
SSE_CASES = sorted(p.stem for p in FIXTURES.glob("*.sse"))

try:  # the library validator, when present; the in-test checks below always run
    from glmbridge.protocols.anthropic.grammar import validate_event_sequence as _library_validator
except ImportError:  # pragma: no cover - depends on the tree state
    _library_validator = None
try:  # the library reducer, when present: it must agree with the in-test fold
    from glmbridge.accumulate import accumulate as _library_accumulate
except ImportError:  # pragma: no cover - depends on the tree state
    _library_accumulate = None


# --- helpers --------------------------------------------------------------------------


def sse_payloads(text: str) -> list[str]:
    """The ``data:`` payloads of a transcript (one event per blank-line block)."""
    out = []
    for block in text.split("\n\n"):
        lines = [ln[5:].lstrip(" ") for ln in block.splitlines() if ln.startswith("data:")]
        if lines:
            out.append("\n".join(lines))
    return out


def run(payloads: list[str], **kw: Any) -> list[ev.Event]:
    kw.setdefault("model", "claude-sonnet-4-5")
    kw.setdefault("message_id", "msg_fixture")
    dec = oa.StreamDecoder(**kw)
    out: list[ev.Event] = []
    for p in payloads:
        out += dec.feed(p)
    out += dec.flush()
    return out


def check_grammar(events: list[ev.Event]) -> None:
    """Index order, one open block, delta/block agreement, one MessageDelta, valid JSON."""
    assert isinstance(events[0], ev.MessageStart)
    assert sum(isinstance(e, ev.MessageStart) for e in events) == 1
    delta_kind = {
        ev.TextDelta: ir.TextBlock,
        ev.ThinkingDelta: ir.ThinkingBlock,
        ev.SignatureDelta: ir.ThinkingBlock,
        ev.InputJsonDelta: ir.ToolUseBlock,
    }
    open_block: ev.BlockStart | None = None
    next_index, json_parts, ended = 0, [], False
    for e in events[1:]:
        assert not ended, f"event after the end: {e}"
        if isinstance(e, ev.BlockStart):
            assert open_block is None and e.index == next_index
            open_block, json_parts, next_index = e, [], next_index + 1
        elif type(e) in delta_kind:
            assert open_block is not None and e.index == open_block.index
            assert isinstance(open_block.block, delta_kind[type(e)])
            if isinstance(e, ev.InputJsonDelta):
                assert e.partial_json
                json_parts.append(e.partial_json)
        elif isinstance(e, ev.BlockStop):
            assert open_block is not None and e.index == open_block.index
            if isinstance(open_block.block, ir.ToolUseBlock):
                assert isinstance(json.loads("".join(json_parts) or "{}"), dict)
            open_block = None
        elif isinstance(e, ev.MessageDelta):
            assert open_block is None
        elif isinstance(e, (ev.MessageStop, ev.StreamError)):
            ended = True
            if isinstance(e, ev.MessageStop):
                assert isinstance(events[-2], ev.MessageDelta)
    assert ended
    assert sum(isinstance(e, ev.MessageDelta) for e in events) <= 1
    if _library_validator is not None:
        _library_validator(events)


def fold(events: list[ev.Event]) -> dict[str, Any]:
    """Accumulate events into a message (the SDK accumulator's semantics)."""
    blocks: list[dict[str, Any]] = []
    raw_json: dict[int, str] = {}
    result: dict[str, Any] = {"content": blocks}
    for e in events:
        if isinstance(e, ev.BlockStart):
            blocks.append(msgspec.to_builtins(e.block))
        elif isinstance(e, ev.TextDelta):
            blocks[e.index]["text"] += e.text
        elif isinstance(e, ev.ThinkingDelta):
            blocks[e.index]["thinking"] += e.thinking
        elif isinstance(e, ev.SignatureDelta):
            blocks[e.index]["signature"] = e.signature
        elif isinstance(e, ev.InputJsonDelta):
            raw_json[e.index] = raw_json.get(e.index, "") + e.partial_json
        elif isinstance(e, ev.BlockStop) and blocks[e.index]["type"] == "tool_use":
            blocks[e.index]["input"] = json.loads(raw_json.get(e.index) or "{}")
        elif isinstance(e, ev.MessageDelta):
            result["stop_reason"] = e.stop_reason
            result["usage"] = msgspec.to_builtins(e.usage)
        elif isinstance(e, ev.StreamError):
            result["error"] = {"kind": e.kind, "message": e.message}
    return result


def normalize(obj: Any) -> Any:
    text = msgspec.json.encode(obj).decode()
    return json.loads(_GENERATED_TOOL_ID.sub("toolu_<generated>", text))


def merge_to_response(payloads: list[str]) -> bytes:
    """The non-stream response equivalent to a chunk sequence."""
    reasoning, content, tools = "", "", {}
    finish, usage = None, None
    for p in payloads:
        if p.strip() == "[DONE]":
            continue
        chunk = json.loads(p)
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            reasoning += delta.get("reasoning_content") or ""
            content += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                slot = tools.setdefault(call["index"], {"index": call["index"], "function": {}})
                if call.get("id"):
                    slot.setdefault("id", call["id"])
                fn = call.get("function") or {}
                if fn.get("name"):
                    slot["function"].setdefault("name", fn["name"])
                slot["function"]["arguments"] = slot["function"].get("arguments", "") + (
                    fn.get("arguments") or ""
                )
            finish = finish or choice.get("finish_reason")
    message = {"role": "assistant", "content": content, "reasoning_content": reasoning}
    if tools:
        message["tool_calls"] = [tools[k] for k in sorted(tools)]
    body = {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return json.dumps(body).encode()


# --- golden transcripts ---------------------------------------------------------------


@pytest.mark.parametrize("case", SSE_CASES)
def test_golden_transcript(case: str) -> None:
    payloads = sse_payloads((FIXTURES / f"{case}.sse").read_text())
    events = run(payloads, input_tokens_estimate=100)
    check_grammar(events)
    folded = fold(events)
    actual = {"events": normalize(events), "folded": normalize(folded)}
    if _library_accumulate is not None and "error" not in folded:
        resp = _library_accumulate(events)
        assert normalize(resp.content) == normalize(folded["content"])
        assert resp.stop_reason == folded["stop_reason"]
    expected_path = FIXTURES / f"{case}.expected.json"
    if UPDATE:
        expected_path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
    assert actual == json.loads(expected_path.read_text())


def test_fixture_set_is_complete() -> None:
    # Every transcript has a reviewed expectation (and no stale expectation is left).
    expected = sorted(p.name[: -len(".expected.json")] for p in FIXTURES.glob("*.expected.json"))
    json_cases = sorted(p.stem for p in FIXTURES.glob("*.json") if ".expected" not in p.name)
    assert expected == sorted(SSE_CASES + json_cases)


# Transcripts whose content arrives in canonical order (reasoning, text, tools), so the
# folded stream must equal the non-stream translation of the merged response.
CANONICAL = [
    "reasoning_text",
    "tool_call_whole",
    "tool_stream_late_id",
    "parallel_whole",
    "parallel_per_call_finish",
    "parallel_tool_stream",
    "sensitive",
    "length_cuts_tool",
    "usage_after_finish",
    "never_named",
    "context_window_exceeded",
]


@pytest.mark.parametrize("case", CANONICAL)
def test_stream_equals_non_stream(case: str) -> None:
    payloads = sse_payloads((FIXTURES / f"{case}.sse").read_text())
    folded = fold(run(payloads))
    resp = oa.response_to_ir(merge_to_response(payloads), model="claude-sonnet-4-5")
    assert normalize(folded["content"]) == normalize(resp.content)
    assert folded["stop_reason"] == resp.stop_reason
    assert folded["usage"] == msgspec.to_builtins(resp.usage)
    if _library_accumulate is not None:
        streamed = _library_accumulate(run(payloads))
        assert normalize(streamed.content) == normalize(resp.content)
        assert (streamed.stop_reason, streamed.usage) == (resp.stop_reason, resp.usage)


# --- targeted behaviour ----------------------------------------------------------------


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> str:
    choice: dict[str, Any] = {"index": 0, "delta": {"role": "assistant", **(delta or {})}}
    if finish:
        choice["finish_reason"] = finish
    return json.dumps({"choices": [choice], **extra})


def test_whitespace_only_answer_opens_no_block() -> None:
    events = run([_chunk({"content": "\n"}), _chunk({"content": " "}, "stop"), "[DONE]"])
    check_grammar(events)
    assert [type(e) for e in events] == [ev.MessageStart, ev.MessageDelta, ev.MessageStop]


def test_whitespace_inside_block_is_kept_verbatim() -> None:
    payloads = [_chunk({"content": "\n"}), _chunk({"content": "a"}), _chunk({"content": "\n\n"})]
    payloads += [_chunk({"content": "b "}), _chunk(finish="stop"), "[DONE]"]
    assert fold(run(payloads))["content"] == [{"type": "text", "text": "\na\n\nb "}]


def test_one_chunk_with_every_kind_is_split_in_canonical_order() -> None:
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}
    payload = _chunk(
        {"content": "text", "reasoning_content": "think", "tool_calls": [call]},
        "tool_calls",
        usage={"prompt_tokens": 5, "completion_tokens": 3},
    )
    events = run([payload, "[DONE]"])
    check_grammar(events)
    kinds = [msgspec.to_builtins(e.block)["type"] for e in events if isinstance(e, ev.BlockStart)]
    assert kinds == ["thinking", "text", "tool_use"]
    assert fold(events)["stop_reason"] == ir.StopReason.TOOL_USE


def test_usage_only_in_last_chunk_is_reported() -> None:
    events = run(sse_payloads((FIXTURES / "usage_after_finish.sse").read_text()))
    delta = next(e for e in events if isinstance(e, ev.MessageDelta))
    assert delta.usage == ir.Usage(input_tokens=20, output_tokens=2)


def test_message_start_carries_the_estimate_and_missing_usage_keeps_it() -> None:
    events = run([_chunk({"content": "hi"}, "stop"), "[DONE]"], input_tokens_estimate=321)
    assert events[0] == ev.MessageStart(
        id="msg_fixture", model="claude-sonnet-4-5", usage=ir.Usage(input_tokens=321)
    )
    delta = next(e for e in events if isinstance(e, ev.MessageDelta))
    assert delta.usage == ir.Usage(input_tokens=321)


def test_message_delta_waits_for_done() -> None:
    dec = oa.StreamDecoder(model="m", message_id="msg_x")
    first = dec.feed(_chunk({"content": "hi"}, "stop"))
    assert not any(isinstance(e, ev.MessageDelta) for e in first)
    assert isinstance(first[-1], ev.TextDelta) and dec.answered  # the finish is provisional
    rest = dec.feed(json.dumps({"choices": [], "usage": {"prompt_tokens": 9}})) + dec.feed("[DONE]")
    assert [type(e) for e in rest] == [ev.BlockStop, ev.MessageDelta, ev.MessageStop]
    assert dec.flush() == []


def test_finish_without_done_is_completed_by_flush() -> None:
    dec = oa.StreamDecoder(model="m", message_id="msg_x")
    dec.feed(_chunk({"content": "hi"}, "stop"))
    assert [type(e) for e in dec.flush()] == [ev.BlockStop, ev.MessageDelta, ev.MessageStop]


def _w45_call(index: int, name: str) -> dict[str, Any]:
    return {"id": f"call_{name}", "index": index, "type": "function",
            "function": {"name": name, "arguments": '{"a": 2, "b": 3}'}}  # fmt: skip


def test_every_parallel_call_is_kept_when_each_chunk_carries_the_finish() -> None:
    # The recorded Coding Plan shape (zai-fidelity 3.5, W45): one chunk per call, each
    # already carrying finish_reason "tool_calls", then a final finish + usage chunk.
    payloads = [
        _chunk({"content": "\n"}),
        _chunk({"tool_calls": [_w45_call(0, "add")]}, "tool_calls"),
        _chunk({"tool_calls": [_w45_call(1, "multiply")]}, "tool_calls"),
        _chunk({"content": ""}, "tool_calls", usage={"prompt_tokens": 282, "completion_tokens": 9}),
        "[DONE]",
    ]
    events = run(payloads)
    check_grammar(events)
    folded = fold(events)
    assert [(b["name"], b["input"]) for b in folded["content"]] == [
        ("add", {"a": 2, "b": 3}),
        ("multiply", {"a": 2, "b": 3}),
    ]
    assert folded["stop_reason"] == ir.StopReason.TOOL_USE
    resp = oa.response_to_ir(merge_to_response(payloads), model="claude-sonnet-4-5")
    assert normalize(folded["content"]) == normalize(resp.content)


def test_the_last_finish_reason_counts() -> None:
    payloads = [_chunk({"content": "a"}, "tool_calls"), _chunk({"content": "b"}, "stop")]
    events = run([*payloads, "[DONE]"])
    folded = fold(events)
    assert folded["content"] == [{"type": "text", "text": "ab"}]
    assert folded["stop_reason"] == ir.StopReason.END_TURN


def test_empty_stream_flush_reports_truncation() -> None:
    events = oa.StreamDecoder(model="m", message_id="msg_x").flush()
    check_grammar(events)
    assert isinstance(events[-1], ev.StreamError) and events[-1].kind is ErrorKind.API_ERROR


def test_bad_json_raises_and_is_sticky() -> None:
    dec = oa.StreamDecoder(model="m")
    dec.feed(_chunk({"content": "hi"}))
    with pytest.raises(UpstreamProtocolError):
        dec.feed(b"{not json")
    with pytest.raises(StreamStateError):
        dec.feed(_chunk({"content": "more"}))
    with pytest.raises(StreamStateError):
        dec.flush()


def test_wrong_types_raise_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        oa.StreamDecoder(model="m").feed('{"choices": [{"delta": {"content": 5}}]}')


def test_feed_after_flush_raises() -> None:
    dec = oa.StreamDecoder(model="m")
    dec.feed(_chunk({"content": "hi"}, "stop"))
    dec.flush()
    with pytest.raises(StreamStateError):
        dec.feed("[DONE]")


def test_payloads_after_done_or_error_are_ignored() -> None:
    dec = oa.StreamDecoder(model="m")
    dec.feed(_chunk(finish="network_error"))
    assert dec.feed("[DONE]") == [] and dec.feed(_chunk({"content": "x"})) == []
    assert dec.error is not None and dec.error.retryable
    assert dec.flush() == []


def test_error_chunk_maps_business_code() -> None:
    dec = oa.StreamDecoder(model="m")
    events = dec.feed(b'{"error": {"code": 1302, "message": "High concurrency"}}')
    assert [type(e) for e in events] == [ev.MessageStart, ev.StreamError]
    assert events[-1].kind is ErrorKind.RATE_LIMIT  # type: ignore[union-attr]
    assert events[-1].message.startswith("[1302] ")  # type: ignore[union-attr]
    assert dec.error is not None and dec.error.code == "1302" and dec.error.retryable


def test_bytes_and_str_payloads_agree() -> None:
    payloads = sse_payloads((FIXTURES / "tool_call_whole.sse").read_text())
    assert run(payloads) == run([p.encode() for p in payloads])


def test_openai_dialect_usage_chunk_without_choices() -> None:
    payloads = [
        _chunk({"content": "Hi"}),
        _chunk({}, "stop"),
        json.dumps({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 1}}),
        "[DONE]",
    ]
    events = run(payloads, dialect=oa.OPENAI)
    check_grammar(events)
    assert fold(events)["usage"] == {"input_tokens": 7, "output_tokens": 1}


def test_index_reused_for_a_new_call_opens_a_new_block() -> None:
    calls = [
        {"index": 0, "id": "c1", "function": {"name": "a", "arguments": "{}"}},
        {"index": 0, "id": "c2", "function": {"name": "b", "arguments": '{"x":1}'}},
    ]
    events = run([_chunk({"tool_calls": [c]}) for c in calls] + [_chunk(finish="tool_calls")])
    check_grammar(events)
    assert [(b["name"], b["input"]) for b in fold(events)["content"]] == [
        ("a", {}),
        ("b", {"x": 1}),
    ]


def test_tool_call_with_empty_arguments_gets_an_empty_object() -> None:
    call = {"index": 0, "id": "c1", "function": {"name": "noop", "arguments": ""}}
    events = run([_chunk({"tool_calls": [call]}, "tool_calls"), "[DONE]"])
    deltas = [e.partial_json for e in events if isinstance(e, ev.InputJsonDelta)]
    assert deltas == ["{}"]


def test_no_delta_after_block_stop_for_late_fragments() -> None:
    first = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a":1}'}}
    late = {"index": 0, "function": {"arguments": ' {"b":2}'}}
    events = run([_chunk({"tool_calls": [first]}), _chunk({"tool_calls": [late]})])
    check_grammar(events)  # truncated stream (no finish), still grammatical


# --- property: any fragmentation folds to the non-stream answer ----------------------

_texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
_args = st.dictionaries(
    st.text(min_size=1, max_size=5),
    st.one_of(
        st.integers(),
        st.text(max_size=10),
        st.booleans(),
        st.none(),
        st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=3),
    ),
    max_size=3,
)


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reasoning=_texts,
    content=_texts,
    tools=st.lists(st.tuples(st.sampled_from(["Bash", "Read"]), _args), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=500), max_size=6),
    name_late=st.booleans(),
    truncate_args=st.booleans(),
)
def test_any_fragmentation_matches_non_stream(
    reasoning: str,
    content: str,
    tools: list[tuple[str, dict[str, Any]]],
    cuts: list[int],
    name_late: bool,
    truncate_args: bool,
) -> None:
    payloads = [_chunk({"reasoning_content": p}) for p in _split(reasoning, cuts)]
    payloads += [_chunk({"content": p}) for p in _split(content, cuts)]
    for i, (name, args) in enumerate(tools):
        text = json.dumps(args)
        if truncate_args and i == len(tools) - 1:
            text = text[: max(1, len(text) * 2 // 3)]
        pieces = _split(text, cuts) or [""]
        for j, piece in enumerate(pieces):
            call: dict[str, Any] = {"index": i, "function": {"arguments": piece}}
            if j == (len(pieces) - 1 if name_late else 0):
                call.update(id=f"call_{i}", type="function")
                call["function"]["name"] = name
            payloads.append(_chunk({"tool_calls": [call]}))
    finish = "length" if truncate_args and tools else ("tool_calls" if tools else "stop")
    payloads += [
        _chunk(finish=finish, usage={"prompt_tokens": 9, "completion_tokens": 4}),
        "[DONE]",
    ]
    events = run(payloads)
    check_grammar(events)
    folded = fold(events)
    resp = oa.response_to_ir(merge_to_response(payloads), model="m")
    assert normalize(folded["content"]) == normalize(resp.content)
    assert folded["stop_reason"] == resp.stop_reason
