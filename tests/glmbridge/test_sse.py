"""SSEDecoder: WHATWG line/field rules, chunking invariance, limits, sticky errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glmbridge.errors import GlmbridgeError, StreamStateError, UpstreamProtocolError
from glmbridge.sse import ServerSentEvent, SSEDecoder, encode_sse_event


def ev(data: str, event: str | None = None, id: str | None = None, retry: int | None = None):
    return ServerSentEvent(event, data, id, retry)


def decode_whole(raw: bytes, **kw: int) -> list[ServerSentEvent]:
    d = SSEDecoder(**kw)
    return d.feed(raw) + d.flush()


def decode_split(raw: bytes, cuts: list[int], **kw: int) -> list[ServerSentEvent]:
    d = SSEDecoder(**kw)
    out: list[ServerSentEvent] = []
    prev = 0
    for cut in [*sorted(set(cuts)), len(raw)]:
        out += d.feed(raw[prev:cut])
        prev = cut
    return out + d.flush()


def decode_bytewise(raw: bytes) -> list[ServerSentEvent]:
    return decode_split(raw, list(range(len(raw))))


# (name, raw bytes, expected events) — h11 SIMPLE_CASES style; each case is also run
# byte by byte and with a trailing partial line.
CASES: list[tuple[str, bytes, list[ServerSentEvent]]] = [
    ("lf", b"data: a\n\ndata: b\n\n", [ev("a"), ev("b")]),
    ("crlf", b"data: a\r\n\r\ndata: b\r\n\r\n", [ev("a"), ev("b")]),
    ("cr", b"data: a\r\rdata: b\r\r", [ev("a"), ev("b")]),
    ("mixed endings", b"data: a\r\n\rdata: b\n\r\n", [ev("a"), ev("b")]),
    ("multi-line data", b"data: x\ndata:  y\ndata\n\n", [ev("x\n y\n")]),
    ("no space after colon", b"data:x\n\n", [ev("x")]),
    ("only one space stripped", b"data:   x\n\n", [ev("  x")]),
    ("empty data line dispatches", b"data:\n\n", [ev("")]),
    ("comments ignored", b": keep-alive\n:\ndata: a\n: mid\n\n", [ev("a")]),
    ("no data, not dispatched", b"event: ping\n\n: c\n\nid: 1\n\n", []),
    ("event name", b"event: message_start\ndata: {}\n\n", [ev("{}", "message_start")]),
    ("event name reset", b"event: a\ndata: 1\n\ndata: 2\n\n", [ev("1", "a"), ev("2")]),
    ("empty event name", b"event:\ndata: 1\n\n", [ev("1")]),
    ("id persists", b"id: 7\ndata: 1\n\ndata: 2\n\n", [ev("1", id="7"), ev("2", id="7")]),
    (
        "id with NUL ignored",
        b"id: 7\ndata: 1\n\nid: a\x00b\ndata: 2\n\n",
        [ev("1", id="7"), ev("2", id="7")],
    ),
    ("retry", b"retry: 1500\ndata: 1\n\nretry: x1\ndata: 2\n\n", [ev("1", retry=1500), ev("2")]),
    ("unknown field ignored", b"foo: bar\ndata: 1\n\n", [ev("1")]),
    ("bom stripped", b"\xef\xbb\xbfdata: 1\n\n", [ev("1")]),
    ("bom only at start", b"data: 1\n\n\xef\xbb\xbfdata: 2\n\n", [ev("1")]),
    ("utf-8", "data: héllo 世界 🎉\n\n".encode(), [ev("héllo 世界 🎉")]),
    ("invalid utf-8 replaced", b"data: a\xffb\n\n", [ev("a\ufffdb")]),
    ("done sentinel is data", b"data: [DONE]\n\n", [ev("[DONE]")]),
    ("unterminated last event (lenient flush)", b"data: 1\n\ndata: 2", [ev("1"), ev("2")]),
    ("unterminated after line end", b"data: 1\n", [ev("1")]),
    ("field name without colon", b"data\n\n", [ev("")]),
    ("colon in value", b"data: a: b\n\n", [ev("a: b")]),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cases_whole_bytewise_and_split(raw: bytes, expected: list[ServerSentEvent]) -> None:
    assert decode_whole(raw) == expected
    assert decode_bytewise(raw) == expected
    for cut in range(len(raw) + 1):
        assert decode_split(raw, [cut]) == expected, cut


def test_events_returned_as_soon_as_complete() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: 1") == []
    assert d.feed(b"\n") == []
    assert d.feed(b"\n") == [ev("1")]
    assert d.feed(b"data: 2\n\ndata: 3\n\ndata: 4") == [ev("2"), ev("3")]
    assert d.flush() == [ev("4")]


def test_cr_at_chunk_end_then_lf_is_one_line_end() -> None:
    # A CR ending a chunk and the LF starting the next are one CRLF, not two line ends
    # (two would make a blank line and dispatch early).
    d = SSEDecoder()
    assert d.feed(b"data: a\r") == []
    assert d.feed(b"\ndata: b\r") == []
    assert d.feed(b"\n") == []
    assert d.feed(b"\r\n") == [ev("a\nb")]


def test_cr_then_empty_chunk_then_lf() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: a\r") + d.feed(b"") + d.feed(b"\n") == []
    assert d.feed(b"\n") == [ev("a")]


def test_utf8_split_inside_character() -> None:
    raw = "data: 世\n\n".encode()
    d = SSEDecoder()
    assert d.feed(raw[:7]) == []  # inside the 3-byte sequence
    assert d.feed(raw[7:]) == [ev("世")]


def test_fast_path_and_slow_path_agree_on_id() -> None:
    d = SSEDecoder()
    assert d.feed(b"id: 9\ndata: 1\n\n") == [ev("1", id="9")]
    assert d.feed(b"data: 2\n\n") == [ev("2", id="9")]  # the one-event fast path


def test_fast_path_not_taken_while_event_pending() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: 0\n\n") == [ev("0")]
    assert d.feed(b"event: x\n") == []
    assert d.feed(b"data: 1\n\n") == [ev("1", "x")]
    assert d.feed(b"data: 2\n") == []
    assert d.feed(b"data: 3\n\n") == [ev("2\n3")]


def test_line_too_long_raises_and_is_sticky() -> None:
    d = SSEDecoder(max_line_bytes=16)
    assert d.feed(b"data: 0123456789") == []  # exactly 16 bytes pending: fine
    with pytest.raises(UpstreamProtocolError, match="longer than 16 bytes"):
        d.feed(b"x")
    with pytest.raises(StreamStateError, match="after an error"):
        d.feed(b"\n\n")
    with pytest.raises(StreamStateError):
        d.flush()


@pytest.mark.parametrize(
    "raw",
    [b"data: 01234567890123456789\n\n", b"data: 0\n\ndata: 01234567890123456789", b"x" * 17],
)
def test_line_too_long_whole_or_split(raw: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        decode_whole(raw, max_line_bytes=16)
    with pytest.raises(UpstreamProtocolError):
        decode_bytewise_limited(raw, 16)


def decode_bytewise_limited(raw: bytes, limit: int) -> list[ServerSentEvent]:
    d = SSEDecoder(max_line_bytes=limit)
    out: list[ServerSentEvent] = []
    for i in range(len(raw)):
        out += d.feed(raw[i : i + 1])
    return out + d.flush()


def test_pending_memory_is_bounded() -> None:
    d = SSEDecoder(max_line_bytes=1000)
    with pytest.raises(UpstreamProtocolError):
        for _ in range(100):
            d.feed(b"a" * 100)
    assert d._pending_len <= 1100  # raised on the first piece over the limit


def test_feed_after_flush_is_an_error() -> None:
    d = SSEDecoder()
    d.flush()
    with pytest.raises(StreamStateError, match="after flush"):
        d.feed(b"data: 1\n\n")  # must not take the fast path either
    with pytest.raises(StreamStateError):
        d.flush()


def test_max_line_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SSEDecoder(max_line_bytes=0)


def test_encode_roundtrip() -> None:
    assert encode_sse_event(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_sse_event(b"{}", "ping") == b"event: ping\ndata: {}\n\n"
    raw = encode_sse_event(b"a\nb\r\nc\rd", "x")
    assert decode_whole(raw) == [ev("a\nb\nc\nd", "x")]
    with pytest.raises(ValueError):
        encode_sse_event(b"{}", "bad\nname")


TRANSCRIPT = (
    "\ufeff: hello\r\n"
    'event: message_start\r\ndata: {"t": "héllo 世界"}\r\n\r\n'
    "id: 1\rretry: 30\rdata: a\rdata: 🎉\r\r"
    "data: [DONE]\n\n"
    "data: tail"
).encode()


@settings(max_examples=300)
@given(st.data())
def test_chunking_invariance(data: st.DataObject) -> None:
    """Any split of a transcript (inside UTF-8 sequences, between CR and LF) decodes the same."""
    raw = data.draw(
        st.one_of(
            st.just(TRANSCRIPT),
            st.lists(st.sampled_from(_PIECES), max_size=30).map(b"".join),
        )
    )
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=20))
    assert decode_split(raw, cuts) == decode_whole(raw)


_PIECES = [
    b"data: ",
    b"data:",
    b"data",
    b"event: e",
    b"id: 1",
    b"retry: 5",
    b": c",
    b"\n",
    b"\r",
    b"\r\n",
    "é世🎉".encode(),
    b"\xef\xbb\xbf",
    b"{}",
    b"x",
]


def test_chunking_invariance_on_every_cr_lf_boundary() -> None:
    # Deterministic counterpart of the property test: cut at every single offset.
    expected = decode_whole(TRANSCRIPT)
    assert expected[0] == ev('{"t": "héllo 世界"}', "message_start")
    assert expected[1] == ev("a\n🎉", id="1", retry=30)
    assert expected[-1] == ev("tail", id="1")
    for cut in range(len(TRANSCRIPT) + 1):
        assert decode_split(TRANSCRIPT, [cut]) == expected
    assert decode_bytewise(TRANSCRIPT) == expected


@settings(max_examples=300)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=10))
def test_garbage_raises_only_our_errors(raw: bytes, cuts: list[int]) -> None:
    try:
        events = decode_split(raw, [c for c in cuts if c <= len(raw)], max_line_bytes=64)
    except GlmbridgeError:
        return
    assert all(isinstance(e, ServerSentEvent) for e in events)


def test_feed_single_data_matches_feed() -> None:
    """The one-event shortcut returns exactly what feed() would, and declines otherwise."""
    event = 'data: {"x": "é 中"}\n\n'.encode()
    fast = SSEDecoder()
    fast.feed(b"data: 1\n\n")  # past the start, so a BOM can no longer be pending
    slow = SSEDecoder()
    slow.feed(b"data: 1\n\n")
    assert fast.feed_single_data(event) == slow.feed(event)[0].data
    for chunk in [
        b"data: a\ndata: b\n\n",  # two data lines
        b"data: a\r\n\r\n",  # CR line ends
        b"event: x\ndata: a\ndata: b\n\n",  # a named event with two data lines
        b"event: x\r\ndata: a\n\n",  # CR line end after the name
        b"event: x\n\n",  # a named event without data
        b"id: 1\ndata: a\n\n",  # another field first
        b"data: a\n",  # incomplete
        b'data: {"x":"\xff"}\n\n',  # invalid UTF-8: feed() replaces it
    ]:
        assert fast.feed_single_data(chunk) is None, chunk
    # one event line, then one data line (Anthropic's framing): the payload, as feed() has it
    named = b'event: content_block_delta\ndata: {"type":"content_block_delta"}\n\n'
    assert fast.feed_single_data(named) == slow.feed(named)[0].data
    partial = SSEDecoder()
    partial.feed(b"data: 1\n\n")
    partial.feed(b"data: par")  # a partial line is pending: the shortcut must decline
    assert partial.feed_single_data(b"data: 2\n\n") is None


_SSE_PIECES = [b"event: ", b"event: content_block_delta", b"data: ", b"data:", b"id: 1",
               b":", b"\n", b"\n\n", b"\r", b"\r\n", b" ", b'{"a":"\xc3\xa9"}', b"x", b"\xff",
               b"\xc3"]  # fmt: skip
_event_framed = st.builds(
    lambda name, payload: b"event: " + name + b"\ndata: " + payload + b"\n\n",
    st.sampled_from([b"", b"content_block_delta", b"x y", b"a:b"]),
    st.lists(st.sampled_from([b"", b"{}", b" ", b":", b"data: ", b"\xc3\xa9", b"\xff", b"z"]),
             max_size=4).map(b"".join),
)  # fmt: skip


@given(chunk=st.one_of(_event_framed, st.lists(st.sampled_from(_SSE_PIECES)).map(b"".join)))
def test_feed_single_data_agrees_with_feed_on_any_chunk(chunk: bytes) -> None:
    """On any chunk, the shortcut either declines or returns the data of the one event
    feed() would dispatch, leaving nothing pending (so declining consumed nothing)."""
    fast = SSEDecoder()
    fast.feed(b"data: 1\n\n")
    slow = SSEDecoder()
    slow.feed(b"data: 1\n\n")
    data = fast.feed_single_data(chunk)
    events = slow.feed(chunk)
    if data is None:
        assert fast.feed(chunk) == events
        assert fast.flush() == slow.flush()
    else:
        assert [e.data for e in events] == [data]
        assert slow.flush() == []
