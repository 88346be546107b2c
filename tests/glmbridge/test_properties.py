"""Property tests of the stream machines and codecs (style-anchors §7.8).

Generated GLM upstream streams (``tests/strategies.py``, wire-specs A.9) go through
:class:`glmbridge.ExchangeStream` (GLM chat upstream, Anthropic door); the official
anthropic SDK is the oracle for the Anthropic side. Each test states its invariant in its
first docstring line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import anthropic as sdk
import httpx2
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import glmbridge
from glmbridge import events as ev
from glmbridge import ids, ir
from glmbridge.errors import GlmbridgeError, StreamStateError, UpstreamError
from glmbridge.protocols import anthropic as ac
from glmbridge.protocols import openai as oa
from glmbridge.protocols.anthropic.grammar import validate_event_sequence
from glmbridge.protocols.openai.upstream_stream import TRUNCATED_MESSAGE
from glmbridge.protocols.openai.wire import NETWORK_ERROR_MESSAGE
from tests.strategies import (
    GlmStream,
    SseFraming,
    glm_streams,
    glm_to_anthropic,
    ir_requests,
    json_values,
    non_stream_body,
    sse_events,
    sse_framings,
    to_sse,
)

MODEL = "claude-opus-4-8"  # what the client asked for; echoed in both paths
MESSAGE_ID = "msg_property"
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
_START = ac.StreamEncoder().feed(ev.MessageStart(id=MESSAGE_ID, model=MODEL, usage=ir.Usage()))


# --- helpers ---------------------------------------------------------------------------


@contextmanager
def deterministic_tool_ids() -> Iterator[None]:
    """Generated ``toolu_`` ids (calls whose id never arrived) count up from 0 per run."""
    counter = iter(range(10**6))
    with mock.patch.object(ids, "new_tool_use_id", lambda: f"toolu_gen{next(counter)}"):
        yield


def run_pipeline(pieces: list[bytes]) -> bytes:
    """The client bytes for upstream ``pieces`` fed one by one, then flushed.

    An ``UpstreamError`` raised before any content (so that a driver can still answer
    with a status, or retry) is rendered as what a client sees once the stream is
    committed instead: the ``message_start`` frame followed by the ``error`` event.
    """
    pipe = glm_to_anthropic(model=MODEL, message_id=MESSAGE_ID)
    out: list[bytes] = []
    with deterministic_tool_ids():
        try:
            for piece in pieces:
                out.append(pipe.feed(piece))
            out.append(pipe.flush())
        except UpstreamError as err:
            assert not pipe.content_started, "raised after content began"
            assert b"".join(out) in (b"", _START), "raised after more than the start event"
            return _START + ac.error_event(err)
    return b"".join(out)


def split_at(raw: bytes, cuts: list[int]) -> list[bytes]:
    """``raw`` cut at ``cuts`` (duplicates give empty pieces, which must be no-ops)."""
    points = [0, *sorted(min(max(c, 0), len(raw)) for c in cuts), len(raw)]
    return [raw[a:b] for a, b in zip(points, points[1:], strict=False)]


def tricky_offsets(raw: bytes) -> list[int]:
    """Offsets inside a UTF-8 sequence or between CR and LF."""
    return [i for i in range(1, len(raw)) if raw[i - 1] == 0x0D or raw[i] & 0xC0 == 0x80]


@st.composite
def cut_points(draw: st.DrawFn, raw: bytes) -> list[int]:
    tricky = tricky_offsets(raw)
    offset = st.integers(0, len(raw))
    if tricky:
        offset = offset | st.sampled_from(tricky)
    return draw(st.lists(offset, max_size=24))


def sse_frames(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    """Our Anthropic output as (event name, JSON body) pairs."""
    return [(e.event, json.loads(e.data)) for e in glmbridge.SSEDecoder().feed(raw)]


def sdk_client(handler: Callable[[httpx2.Request], httpx2.Response]) -> sdk.Anthropic:
    transport = httpx2.MockTransport(handler)
    return sdk.Anthropic(
        base_url="http://test",
        api_key="x",
        http_client=httpx2.Client(transport=transport),
        max_retries=0,
    )


class _Reply:
    """The mock transport's answer for the next request (one client per test)."""

    status = 200
    headers = {"content-type": "text/event-stream"}
    body = b""

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(self.status, headers=self.headers, content=self.body)


def sdk_stream_final(client: sdk.Anthropic) -> sdk.types.Message:
    messages: Any = [{"role": "user", "content": "hi"}]
    with client.messages.stream(model=MODEL, max_tokens=1024, messages=messages) as s:
        return s.get_final_message()


def sdk_non_stream(stream: GlmStream) -> sdk.types.Message:
    resp = oa.response_to_ir(non_stream_body(stream), model=MODEL)
    return sdk.types.Message.model_validate_json(ac.encode_response(resp))


def without_id(msg: sdk.types.Message) -> dict[str, Any]:
    dump = msg.model_dump()
    del dump["id"]
    return dump


# --- chunking invariance ------------------------------------------------------------------


@settings(max_examples=300, suppress_health_check=SLOW)
@given(stream=glm_streams(), framing=sse_framings, data=st.data())
def test_chunking_invariance(stream: GlmStream, framing: SseFraming, data: st.DataObject) -> None:
    """Any split of the upstream bytes gives the same client bytes as feeding them whole."""
    raw = to_sse(stream, framing)
    whole = run_pipeline([raw])
    pieces = split_at(raw, data.draw(cut_points(raw), label="cuts"))
    assert run_pipeline(pieces) == whole
    # and cut at every tricky offset at once (each CR|LF, inside each UTF-8 sequence)
    assert run_pipeline(split_at(raw, tricky_offsets(raw))) == whole


@settings(max_examples=25, suppress_health_check=SLOW)
@given(stream=glm_streams(), framing=sse_framings)
def test_chunking_invariance_byte_by_byte(stream: GlmStream, framing: SseFraming) -> None:
    """Feeding one byte at a time gives the same client bytes as feeding them whole."""
    raw = to_sse(stream, framing)
    assert run_pipeline([raw[i : i + 1] for i in range(len(raw))]) == run_pipeline([raw])


def test_outputs_are_deterministic_apart_from_ids() -> None:
    """With message_id fixed and no generated tool ids, two runs give identical bytes."""
    call = {"index": 0, "function": {"name": "Bash", "arguments": "{}"}}  # no id
    delta = {"role": "assistant", "tool_calls": [call]}
    chunk = {"choices": [{"delta": delta, "finish_reason": "tool_calls"}]}
    raw = b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n"
    assert run_pipeline([raw]) == run_pipeline([raw])
    # the only other source of randomness: an upstream call without an id
    first = glm_to_anthropic(model=MODEL, message_id=MESSAGE_ID)
    second = glm_to_anthropic(model=MODEL, message_id=MESSAGE_ID)
    a, b = first.feed(raw) + first.flush(), second.feed(raw) + second.flush()
    pattern = re.compile(rb"toolu_[0-9A-Za-z]{24}")
    assert a != b and pattern.sub(b"ID", a) == pattern.sub(b"ID", b)


# --- grammar -------------------------------------------------------------------------------


@settings(max_examples=300, suppress_health_check=SLOW)
@given(stream=glm_streams(), framing=sse_framings)
def test_grammar(stream: GlmStream, framing: SseFraming) -> None:
    """Every output passes validate_anthropic_stream and ends as the upstream did."""
    out = run_pipeline(sse_events(stream, framing))
    glmbridge.validate_anthropic_stream(out)
    last_name, last = sse_frames(out)[-1]
    if stream.completes:
        assert last_name == "message_stop"
    else:
        assert last_name == "error"
        expected = NETWORK_ERROR_MESSAGE if stream.finish == "network_error" else TRUNCATED_MESSAGE
        assert last["error"] == {"type": "api_error", "message": expected}


# --- stream ≡ non-stream, through the official SDK ------------------------------------------


@settings(max_examples=250, suppress_health_check=SLOW)
@given(
    stream=glm_streams(interleave=False).filter(lambda s: s.completes),
    framing=sse_framings,
)
def test_stream_equals_non_stream_via_sdk(stream: GlmStream, framing: SseFraming) -> None:
    """The SDK's final message of our stream equals the SDK-parsed non-stream answer (but id)."""
    reply = _Reply()
    reply.body = run_pipeline(sse_events(stream, framing))
    final = sdk_stream_final(sdk_client(reply))
    expected = sdk_non_stream(stream)
    assert without_id(final) == without_id(expected)
    assert final.id == MESSAGE_ID


def _squash(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=200, suppress_health_check=SLOW)
@given(
    stream=glm_streams(interleave=True).filter(lambda s: s.completes),
    framing=sse_framings,
)
def test_interleaved_stream_matches_non_stream_up_to_segmentation(
    stream: GlmStream, framing: SseFraming
) -> None:
    """Text/reasoning between tool calls: same tools, stop, usage and non-blank characters."""
    reply = _Reply()
    reply.body = run_pipeline(sse_events(stream, framing))
    final = sdk_stream_final(sdk_client(reply))
    expected = sdk_non_stream(stream)

    def of(msg: sdk.types.Message, kind: str) -> list[Any]:
        return [b for b in msg.content if b.type == kind]

    tools = sorted((b.id, b.name, b.input) for b in of(final, "tool_use"))
    assert tools == sorted((b.id, b.name, b.input) for b in of(expected, "tool_use"))
    for kind, attr in (("text", "text"), ("thinking", "thinking")):
        got = "".join(getattr(b, attr) for b in of(final, kind))
        want = "".join(getattr(b, attr) for b in of(expected, kind))
        assert _squash(got) == _squash(want)
    for block in of(final, "thinking"):
        assert block.signature == ids.thinking_signature(block.thinking)
    assert final.stop_reason == expected.stop_reason
    assert final.usage == expected.usage


@settings(max_examples=80, suppress_health_check=SLOW)
@given(
    stream=glm_streams().filter(lambda s: not s.completes),
    framing=sse_framings,
)
def test_network_error_and_cut_off_make_the_sdk_raise(
    stream: GlmStream, framing: SseFraming
) -> None:
    """A stream ending in network_error or cut off raises an APIStatusError in the SDK."""
    reply = _Reply()
    pipe = glm_to_anthropic(model=MODEL, message_id=MESSAGE_ID)
    try:
        reply.body = b"".join(pipe.feed(p) for p in sse_events(stream, framing)) + pipe.flush()
    except UpstreamError as err:  # before any output: the server answers with a status
        reply.status, body = ac.encode_error(err)
        reply.headers = {"content-type": "application/json"}
        reply.body = body
    with pytest.raises(sdk.APIStatusError) as info:
        sdk_stream_final(sdk_client(reply))
    expected = NETWORK_ERROR_MESSAGE if stream.finish == "network_error" else TRUNCATED_MESSAGE
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"] == {"type": "api_error", "message": expected}


# --- closed errors -------------------------------------------------------------------------


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated(draw: st.DrawFn, doc: Any, max_edits: int = 3) -> Any:
    """``doc`` with up to ``max_edits`` subtrees replaced by arbitrary JSON (or removed)."""
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, max_edits))):
        path = draw(st.sampled_from(list(_paths(doc))))
        if not path:
            return draw(json_values)
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.integers(0, 4)) == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return doc


def _fixture(name: str) -> Any:
    return json.loads((Path(__file__).parents[1] / "fixtures" / "claude_code" / name).read_text())


_BARE_REQUEST = _fixture("request_bare.json")
_TOOL_REQUEST = _fixture("request_tool_result.json")
_TOOL_REQUEST["tools"] = _TOOL_REQUEST["tools"][:2]  # keep the tree small for sampling
_TOOL_REQUEST["system"] = _TOOL_REQUEST["system"][:2]
_TOOL_REQUEST["messages"][1]["content"] = "agents"


def _glm_request(body: bytes) -> None:
    """The whole inbound path: decode, route, convert, encode."""
    req = ac.decode_request(body)
    route = glmbridge.resolve_route(req)
    oa.encode_request(oa.request_from_ir(req, model=route.model, spec=route.spec))


@settings(max_examples=300, suppress_health_check=SLOW)
@given(
    st.one_of(
        json_values,
        mutated(_BARE_REQUEST),
        mutated(_TOOL_REQUEST),
    ),
    st.booleans(),
)
def test_request_path_raises_only_client_request_error(doc: Any, count_tokens: bool) -> None:
    """decode_request (then routing + GLM conversion) raise only ClientRequestError."""
    raw = json.dumps(doc).encode()
    try:
        if count_tokens:
            ac.decode_count_tokens_request(raw)
        else:
            _glm_request(raw)
    except glmbridge.ClientRequestError as exc:
        assert exc.message


def _valid_stream_chunks() -> st.SearchStrategy[list[Any]]:
    return glm_streams().map(lambda s: s.chunks)


@settings(max_examples=300, suppress_health_check=SLOW)
@given(
    st.one_of(
        json_values,
        glm_streams().map(lambda s: json.loads(non_stream_body(s))).flatmap(mutated),
    ),
)
def test_response_to_ir_raises_only_glmbridge_errors(doc: Any) -> None:
    """openai.response_to_ir on any JSON either answers or raises a GlmbridgeError."""
    try:
        resp = oa.response_to_ir(json.dumps(doc).encode(), model=MODEL)
    except GlmbridgeError:
        return
    sdk.types.Message.model_validate_json(ac.encode_response(resp))  # and a valid message


@settings(max_examples=300, suppress_health_check=SLOW)
@given(
    st.binary(max_size=64)
    | st.lists(json_values, max_size=5).map(lambda vs: [json.dumps(v) for v in vs])
    | _valid_stream_chunks()
    .flatmap(mutated)
    .map(lambda cs: [json.dumps(c) for c in cs] if isinstance(cs, list) else [json.dumps(cs)]),
    st.booleans(),
)
def test_stream_decoder_raises_only_glmbridge_errors(
    payloads: bytes | list[str], done: bool
) -> None:
    """StreamDecoder.feed on any payloads raises only GlmbridgeErrors; its events are valid."""
    items: list[bytes | str] = [payloads] if isinstance(payloads, bytes) else list(payloads)
    if done:
        items.append("[DONE]")
    dec = oa.StreamDecoder(model=MODEL, message_id=MESSAGE_ID)
    events: list[ev.Event] = []
    try:
        for item in items:
            events += dec.feed(item)
        events += dec.flush()
    except GlmbridgeError:
        with pytest.raises(StreamStateError):  # sticky
            dec.feed("[DONE]")
        return
    validate_event_sequence(events)


@settings(max_examples=300, suppress_health_check=SLOW)
@given(
    st.binary(max_size=200)
    | st.lists(json_values, max_size=4).map(
        lambda vs: b"".join(b"data: " + json.dumps(v).encode() + b"\n\n" for v in vs)
    )
    | st.builds(
        lambda s, f: to_sse(s, f),
        glm_streams()
        .map(lambda s: s)
        .flatmap(
            lambda s: mutated(s.chunks).map(
                lambda cs: GlmStream(
                    chunks=cs if isinstance(cs, list) else [cs],
                    done=s.done,
                    finish=s.finish,
                    usage=s.usage,
                    tool_stream=s.tool_stream,
                    canonical=s.canonical,
                )
            )
        ),
        sse_framings,
    ),
    st.lists(st.integers(0, 400), max_size=8),
)
def test_sse_and_pipeline_raise_only_glmbridge_errors(raw: bytes, cuts: list[int]) -> None:
    """SSEDecoder.feed and ExchangeStream.feed on any bytes raise only GlmbridgeErrors."""
    pieces = split_at(raw, cuts)
    sse = glmbridge.SSEDecoder()
    try:
        for piece in pieces:
            sse.feed(piece)
        sse.flush()
    except GlmbridgeError:
        pass
    pipe = glm_to_anthropic(model=MODEL, message_id=MESSAGE_ID)
    out: list[bytes] = []
    try:
        for piece in pieces:
            out.append(pipe.feed(piece))
        out.append(pipe.flush())
    except GlmbridgeError:
        with pytest.raises(StreamStateError):  # sticky
            pipe.feed(b"data: [DONE]\n\n")
        return
    glmbridge.validate_anthropic_stream(b"".join(out))


# --- round trip ----------------------------------------------------------------------------

# Documented lossy fields of Anthropic -> IR -> Anthropic (not generated by ir_requests):
#  * ThinkingBlock.signature None is written as "" (Anthropic requires a string);
#  * MediaSource.media_type None on base64 images is written as "";
#  * ResponseFormat.name and type "json_object" have no Anthropic field;
#  * ToolChoice(type="none").disable_parallel_tool_use is not written;
#  * Tool.input_schema given as a dict comes back as msgspec.Raw (same JSON);
#  * VideoBlock and images with a text source are dropped (no Anthropic form).


@settings(max_examples=300, suppress_health_check=SLOW)
@given(ir_requests)
def test_anthropic_request_round_trip(req: ir.Request) -> None:
    """decode_request(request_from_ir(r)) == r for every request Anthropic can express."""
    assert ac.decode_request(ac.request_from_ir(req)) == req


def test_round_trip_lossy_fields_are_exactly_the_documented_ones() -> None:
    """The documented lossy fields really are lossy (so the list above stays true)."""
    schema_dict = ir.Tool(name="t", input_schema={"type": "object"})
    req = ir.Request(
        model="m",
        max_tokens=1,
        messages=[
            ir.Message(role="assistant", content=[ir.ThinkingBlock(thinking="t")]),
            ir.Message(
                role="user",
                content=[ir.ImageBlock(source=ir.MediaSource(type="base64", data="AA=="))],
            ),
        ],
        tools=[schema_dict],
        tool_choice=ir.ToolChoice(type="none", disable_parallel_tool_use=True),
        response_format=ir.ResponseFormat(type="json_schema", schema={}, name="n"),
    )
    back = ac.decode_request(ac.request_from_ir(req))
    thinking = back.messages[0].content[0]
    image = back.messages[1].content[0]
    assert isinstance(thinking, ir.ThinkingBlock) and thinking.signature == ""
    assert isinstance(image, ir.ImageBlock) and image.source.media_type == ""
    assert back.tool_choice == ir.ToolChoice(type="none")
    assert back.response_format == ir.ResponseFormat(type="json_schema", schema={})
    assert back.tools[0].input_schema == msgspec.Raw(b'{"type":"object"}')


# --- regressions found by these properties ------------------------------------------------


# Found by the properties: 1e400 (valid JSON, beyond the float range) was forwarded in the
# stream but turned the whole non-stream input into {}; numbers are now kept exactly.
def test_out_of_range_number_in_tool_arguments_is_consistent() -> None:
    """Stream and non-stream agree, and the stream stays grammatical, for 1e400 in arguments."""
    call = {"index": 0, "id": "call_1", "function": {"name": "Bash", "arguments": '{"a":1e400}'}}
    chunk = {"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}}]}
    last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    stream = GlmStream(
        chunks=[chunk, last], done=True, finish="tool_calls", usage=None, tool_stream=True,
        canonical=True,
    )  # fmt: skip
    out = run_pipeline(sse_events(stream))
    glmbridge.validate_anthropic_stream(out)
    reply = _Reply()
    reply.body = out
    assert without_id(sdk_stream_final(sdk_client(reply))) == without_id(sdk_non_stream(stream))
