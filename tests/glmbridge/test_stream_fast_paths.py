"""The stream machines' fast paths give exactly what their general paths give.

Each per-chunk fast path is a shortcut for a general path that stays callable on its own
(``ArgsScanner._feed``; the GLM decoder's ``_feed_unusual``, which decodes and then takes
the general ``_on_chunk``): these tests run both over the same generated input and
compare every output.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmbridge import events as ev
from glmbridge._tool_args import ArgsScanner
from glmbridge.errors import UpstreamProtocolError
from glmbridge.protocols import anthropic as ac
from glmbridge.protocols import openai as oa
from tests.strategies import glm_streams, json_values, tool_args

SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]
_GENERATED_TOOL_ID = re.compile(r"toolu_[0-9A-Za-z]{24}")


def _pieces(data: st.DataObject, text: str) -> list[str]:
    """``text`` cut at arbitrary offsets (inside escapes and surrogate pairs too)."""
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12))
    points = sorted({0, len(text), *cuts})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False)] or [""]


# --- tool arguments -------------------------------------------------------------------------

_argument_texts = st.one_of(
    tool_args.map(lambda v: json.dumps(v, ensure_ascii=False)),
    tool_args.map(json.dumps),  # \uXXXX escapes, surrogate pairs
    json_values.map(json.dumps),  # not an object: buffered, then wrapped
    st.text(alphabet='{}[]":,\\/ abdtnru0123456789-.eE', max_size=40),  # garbage, bad escapes
)


@settings(suppress_health_check=SLOW)
@given(text=_argument_texts, cut=st.integers(0, 200), data=st.data())
def test_scanner_fast_path_equals_general_path(text: str, cut: int, data: st.DataObject) -> None:
    """Any fragments of any (possibly cut or invalid) arguments: ``feed`` forwards, after
    every fragment, exactly what the general path ``_feed`` forwards, and both close the
    same way."""
    fragments = _pieces(data, text[: max(cut, len(text) // 2)])
    fast, general = ArgsScanner(), ArgsScanner()
    for fragment in fragments:
        assert fast.feed(fragment) == general._feed(fragment)
        assert (fast.done, fast.failed) == (general.done, general.failed)
    assert fast.finish() == general.finish()


@pytest.mark.parametrize(
    "fragment",
    ["plain text", 'an escaped \\" quote', "a \\\\ backslash and \\n\\t\\/", ""],
)
def test_scanner_fast_path_takes_string_runs_whole(fragment: str) -> None:
    """Inside a string value, plain characters and whole simple escapes are forwarded
    whole (the fast path), and the value still closes correctly."""
    scanner = ArgsScanner()
    assert scanner.feed('{"content": "') == '{"content": "'
    assert scanner.feed(fragment) == fragment
    assert scanner.feed('"}') == '"}'
    assert scanner.done
    assert json.loads('{"content": "' + fragment + '"}')["content"] is not None


@pytest.mark.parametrize("fragment", ['a"', "a\\", "\\u00e9", 'x\\"y"', "\\q"])
def test_scanner_fragments_the_fast_path_leaves_alone(fragment: str) -> None:
    """A closing quote, a split or unicode escape, or a bad escape goes the general way."""
    fast, general = ArgsScanner(), ArgsScanner()
    for part in ('{"k": "', fragment, ' ", "z": 1}'):
        assert fast.feed(part) == general._feed(part)
    assert fast.finish() == general.finish()


# --- the GLM chat stream decoder ------------------------------------------------------------


def _normalized(events: list[ev.Event]) -> list[Any]:
    text = msgspec.json.encode(events).decode()
    normalized: list[Any] = json.loads(_GENERATED_TOOL_ID.sub("toolu_<generated>", text))
    return normalized


def _run_general(decoder: oa.StreamDecoder, payloads: list[str]) -> list[ev.Event]:
    """Every payload through the general path (the state checks of ``feed`` kept)."""
    out: list[ev.Event] = []
    for payload in payloads:
        if decoder.answered or decoder.error is not None or not payload.strip():
            out += decoder.feed(payload)  # past the end, or blank: no chunk is decoded
        else:
            out += decoder._feed_unusual(payload)
    return out + decoder.flush()


@settings(suppress_health_check=SLOW, max_examples=150)
@given(stream=glm_streams(), compact=st.booleans())
def test_glm_decoder_hot_path_equals_general_path(stream: Any, compact: bool) -> None:
    """Any generated GLM stream: the decoder's events are the general path's, event for
    event (text, reasoning and tool-argument hot paths included)."""
    separators = (",", ":") if compact else None
    payloads = [json.dumps(c, ensure_ascii=False, separators=separators) for c in stream.chunks]
    if stream.done:
        payloads.append("[DONE]")
    fast = _decoder()
    got = [e for p in payloads for e in fast.feed(p)] + fast.flush()
    assert _normalized(got) == _normalized(_run_general(_decoder(), payloads))


def _decoder() -> oa.StreamDecoder:
    return oa.StreamDecoder(model="m", message_id="msg_fast", input_tokens_estimate=7)


CHUNK = '{"choices":[{"index":0,"delta":{"content":"hi"}}]}'


@pytest.mark.parametrize(
    "payload",
    ["", "  ", "\n", f"\u00a0{CHUNK}\u00a0", f"\t{CHUNK}\n", " [DONE] ", b" [DONE]\n"],
)
def test_glm_decoder_unusual_payloads(payload: str | bytes) -> None:
    """Blank payloads, [DONE] and chunks with any whitespace around them decode as their
    stripped form does (they are checked only after plain JSON decoding fails)."""
    first = oa.StreamDecoder(model="m", message_id="msg_x")
    second = oa.StreamDecoder(model="m", message_id="msg_x")
    stripped = payload.strip()
    got = first.feed(payload)
    want = second.feed(stripped) if stripped else []
    assert got == want
    assert first.feed(CHUNK) == second.feed(CHUNK)


def test_glm_decoder_bad_payload_error_is_unchanged() -> None:
    """Bad JSON still raises the decoder's own error, naming the stripped payload's fault."""
    dec = oa.StreamDecoder(model="m")
    with pytest.raises(UpstreamProtocolError, match="upstream stream chunk is not valid"):
        dec.feed("  {not json  ")


# --- the Anthropic upstream decoder -----------------------------------------------------------


@pytest.mark.parametrize("payload", ["", " ", "\r\n", b"\n"])
def test_anthropic_decoder_blank_payloads_are_ignored(payload: str | bytes) -> None:
    """A blank payload is nothing, before the start and in the middle of a block."""
    dec = ac.StreamDecoder(model="m", message_id="msg_x")
    assert dec.feed(payload) == []
    start = dec.feed('{"type":"message_start","message":{"usage":{"input_tokens":3}}}')
    assert isinstance(start[0], ev.MessageStart)
    dec.feed('{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}')
    assert dec.feed(payload) == []
    delta = '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}'
    assert [type(e) for e in dec.feed(delta)] == [ev.BlockStart, ev.TextDelta]
    with pytest.raises(UpstreamProtocolError, match="upstream stream event is not valid"):
        dec.feed(" {bad")
