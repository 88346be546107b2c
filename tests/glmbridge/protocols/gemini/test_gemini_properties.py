"""Property tests of the Gemini front door's stream encoder (style-anchors §7.8).

Generated GLM upstream streams (``tests/strategies.py``, wire-specs A.9) go through an
:class:`glmbridge.Exchange` for a gemini-cli-like request (GLM chat upstream, Gemini
door), in both stream framings (``GEMINI_DOOR``: ``?alt=sse``; ``GEMINI_ARRAY_DOOR``: a
JSON array) and with ``includeThoughts`` on and off. Oracles: the Gemini grammar
validator (``validate_gemini_stream``), the non-streamed answer of the same exchange
(``Exchange.complete``), and the google-genai SDK (its response model, and its own stream
parser and error handling over a mock transport). Each test states its invariant in its
first docstring line.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any, Literal

import pytest
from google.genai import errors as genai_errors
from google.genai import types
from hypothesis import given, settings
from hypothesis import strategies as st

from glmbridge.errors import UpstreamError
from glmbridge.exchange import Exchange
from glmbridge.protocols import gemini
from glmbridge.protocols.anthropic.grammar import StreamGrammarError
from glmbridge.protocols.gemini import GEMINI_ARRAY_DOOR, GEMINI_DOOR, validate_gemini_stream
from glmbridge.protocols.openai.upstream_stream import TRUNCATED_MESSAGE
from glmbridge.protocols.openai.wire import NETWORK_ERROR_MESSAGE
from tests.glmbridge.protocols.gemini.test_gemini_door import sdk_client
from tests.glmbridge.test_properties import (
    SLOW,
    cut_points,
    deterministic_tool_ids,
    split_at,
    tricky_offsets,
)
from tests.strategies import (
    GlmStream,
    SseFraming,
    glm_streams,
    non_stream_body,
    sse_events,
    sse_framings,
    to_sse,
)

Framing = Literal["sse", "array"]
MODEL = "gemini-3.8-flash"  # what the client asked for (modelVersion in both paths)
OBJECT = {"type": "object", "properties": {"command": {"type": "string"}}}
# The tool names the strategy calls, declared the way gemini-cli declares its tools.
TOOLS = ["Bash", "Read", "Edit", "Write", "WebFetch", "mcp__github__create_issue", "工具"]
# GLM finish_reason -> the finishReason a client must see.
EXPECTED_FINISH = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "sensitive": "SAFETY",
    "model_context_window_exceeded": "MAX_TOKENS",
}
framings = st.sampled_from(["sse", "array"])


def request_body(*, include_thoughts: bool) -> bytes:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "<session_context/>"},
                                                {"text": "say hi"}]}],
        "systemInstruction": {"role": "user", "parts": [{"text": "You are a CLI agent."}]},
        "tools": [{"functionDeclarations": [
            {"name": n, "description": n, "parametersJsonSchema": OBJECT} for n in TOOLS]}],
        "generationConfig": {"temperature": 1, "topP": 0.95, "topK": 64, "thinkingConfig": {
            "includeThoughts": include_thoughts, "thinkingLevel": "HIGH"}},
    }  # fmt: skip
    return json.dumps(body).encode()


@cache
def exchange(framing: Framing, include_thoughts: bool) -> Exchange:
    """One exchange per setting for all examples: its message id is fixed."""
    door = GEMINI_DOOR if framing == "sse" else GEMINI_ARRAY_DOOR
    req = gemini.decode_request(request_body(include_thoughts=include_thoughts), model=MODEL,
                                stream=True)  # fmt: skip
    assert req.echo == {"include_thoughts": include_thoughts}
    return Exchange.from_request(door, req)


def run_exchange(ex: Exchange, pieces: list[bytes]) -> bytes:
    """The client bytes for upstream ``pieces`` fed one by one, then flushed.

    An ``UpstreamError`` raised before any content (a driver could still answer with a
    status, or retry) is rendered as a committed stream ends it (the relay's path): what
    was sent (an array's ``[``, or an early commit's preamble), then the stream's ``fail``.
    """
    pipe = ex.open_stream()
    out: list[bytes] = []
    with deterministic_tool_ids():
        try:
            for piece in pieces:
                out.append(pipe.feed(piece))
            out.append(pipe.flush())
        except UpstreamError as err:
            assert not pipe.content_started, "raised after content began"
            assert b"".join(out) in (b"", b"["), "raised after more than the preamble"
            if not any(out):
                pipe = ex.open_stream()
                out.append(pipe.preamble())
            out.append(pipe.fail(err))
    return b"".join(out)


def non_streamed(ex: Exchange, stream: GlmStream) -> dict[str, Any]:
    with deterministic_tool_ids():
        doc: dict[str, Any] = json.loads(ex.complete(non_stream_body(stream)))
    return doc


def parts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = doc["candidates"][0]["content"]["parts"]
    return result


def without_prompt_counts(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without the prompt-token counts.

    Known divergence outside the door (``ChatUpstream.decode_response`` ignores the input
    estimate): when GLM reports no usage, a stream reports the local estimate as
    ``promptTokenCount`` while the non-stream answer reports 0.
    """
    usage = {k: v for k, v in doc["usageMetadata"].items()
             if k not in ("promptTokenCount", "totalTokenCount")}  # fmt: skip
    return {**doc, "usageMetadata": usage}


def chunks_of(raw: bytes, framing: Framing) -> list[dict[str, Any]]:
    """Every chunk (and error object) of a valid stream, decoded."""
    if framing == "array":
        items: list[dict[str, Any]] = json.loads(raw)
        return items
    out = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data: "):
            out.append(json.loads(line[6:]))
        elif line:
            out.append(json.loads(line))
    return out


# The JS SDK's frame regex (gemini-cli's @google/genai 1.30.0, core:267375), in Python: JS '.'
# matches no line terminator, U+2028/U+2029 included.
_JS_FRAME = re.compile(r"\s*data: ([^\n\r\u2028\u2029]*)(?:\n\n|\r\r|\r\n\r\n)")


def js_sdk_chunks(raw: bytes) -> tuple[list[dict[str, Any]], str]:
    """The chunks the JS SDK's parser yields from one network read of ``raw``, and what it
    leaves in its buffer (a bare error line it raises from its own read, see the notes)."""
    rest, out = raw.decode(), []
    while (match := _JS_FRAME.match(rest)) is not None:
        out.append(json.loads(match[1]))
        rest = rest[match.end() :]
    return out, rest


# --- chunking invariance ------------------------------------------------------------------


@settings(max_examples=60, suppress_health_check=SLOW)
@given(stream=glm_streams(), upstream=sse_framings, framing=framings,
       include_thoughts=st.booleans(), data=st.data())  # fmt: skip
def test_chunking_invariance(
    stream: GlmStream, upstream: SseFraming, framing: Framing, include_thoughts: bool,
    data: st.DataObject,
) -> None:  # fmt: skip
    """Any split of the upstream bytes gives the same client bytes as feeding them whole."""
    ex = exchange(framing, include_thoughts)
    raw = to_sse(stream, upstream)
    whole = run_exchange(ex, [raw])
    assert run_exchange(ex, split_at(raw, data.draw(cut_points(raw), label="cuts"))) == whole
    assert run_exchange(ex, split_at(raw, tricky_offsets(raw))) == whole
    assert run_exchange(ex, sse_events(stream, upstream)) == whole


@settings(max_examples=10, suppress_health_check=SLOW)
@given(stream=glm_streams(), upstream=sse_framings, framing=framings)
def test_chunking_invariance_byte_by_byte(
    stream: GlmStream, upstream: SseFraming, framing: Framing
) -> None:
    """Feeding one byte at a time gives the same client bytes as feeding them whole."""
    ex = exchange(framing, True)
    raw = to_sse(stream, upstream)
    assert run_exchange(ex, [raw[i : i + 1] for i in range(len(raw))]) == run_exchange(ex, [raw])


@settings(max_examples=40, suppress_health_check=SLOW)
@given(stream=glm_streams(), framing=framings)
def test_early_commit_changes_nothing(stream: GlmStream, framing: Framing) -> None:
    """A committed preamble (``[`` for an array, nothing for SSE) and a fresh attempt after
    it (``preamble_sent``) give the client the same bytes as one plain attempt."""
    ex = exchange(framing, True)
    pieces = sse_events(stream)
    preamble = ex.open_stream().preamble()
    assert preamble == (b"[" if framing == "array" else b"")
    pipe = ex.open_stream(preamble_sent=True)
    out = [preamble]
    with deterministic_tool_ids():
        try:
            out += [pipe.feed(p) for p in pieces]
            out.append(pipe.flush())
        except UpstreamError as err:  # retries exhausted: the relay ends the committed stream
            assert not pipe.content_started and not any(out[1:])
            out.append(ex.open_stream(preamble_sent=True).fail(err))
    assert b"".join(out) == run_exchange(ex, pieces)


# --- grammar -------------------------------------------------------------------------------


@settings(max_examples=120, suppress_health_check=SLOW)
@given(stream=glm_streams(), upstream=sse_framings, framing=framings,
       include_thoughts=st.booleans())  # fmt: skip
def test_grammar(
    stream: GlmStream, upstream: SseFraming, framing: Framing, include_thoughts: bool
) -> None:
    """Every output passes validate_gemini_stream (thoughts only when asked for), ends as the
    upstream did, and each chunk parses with the SDK's GenerateContentResponse model."""
    ex = exchange(framing, include_thoughts)
    out = run_exchange(ex, sse_events(stream, upstream))
    final = validate_gemini_stream(out, framing=framing, include_thoughts=include_thoughts)
    chunks = chunks_of(out, framing)
    for chunk in chunks:
        if "error" not in chunk:
            types.GenerateContentResponse.model_validate(chunk)
    if "candidates" in final:
        assert final["modelVersion"] == MODEL
        assert final["responseId"] == ex.message_id.removeprefix("msg_")
    thoughts = [p for p in parts(final) if p.get("thought")] if "candidates" in final else []
    if thoughts:  # the other include_thoughts setting is refused (the flag is honoured)
        assert include_thoughts
        with pytest.raises(StreamGrammarError) as info:
            validate_gemini_stream(out, framing=framing, include_thoughts=False)
        assert info.value.rule == "thoughts"
    if stream.completes:
        assert stream.finish is not None
        assert "error" not in final
        assert final["candidates"][0]["finishReason"] == EXPECTED_FINISH[stream.finish]
        types.GenerateContentResponse.model_validate(final)
    else:
        expected = NETWORK_ERROR_MESSAGE if stream.finish == "network_error" else TRUNCATED_MESSAGE
        error = final["error"]
        assert (error["code"], error["status"], error["message"]) == (500, "INTERNAL", expected)
        assert chunks[-1] == {"error": error}
        if framing == "sse":
            assert out.endswith(b"\n") and not out.endswith(b"\n\n")
            assert out.rsplit(b"\n\n", 1)[-1].startswith(b'{"error":')
    if framing == "sse":  # the JS SDK sees every chunk; only an error line is left over
        seen, rest = js_sdk_chunks(out)
        assert seen == [c for c in chunks if "error" not in c]
        assert rest == (
            ""
            if stream.completes
            else json.dumps(chunks[-1], separators=(",", ":"), ensure_ascii=False) + "\n"
        )


# --- stream ≡ non-stream ---------------------------------------------------------------------


@settings(max_examples=120, suppress_health_check=SLOW)
@given(stream=glm_streams(interleave=False).filter(lambda s: s.completes),
       upstream=sse_framings, framing=framings, include_thoughts=st.booleans())  # fmt: skip
def test_stream_equals_non_stream(
    stream: GlmStream, upstream: SseFraming, framing: Framing, include_thoughts: bool
) -> None:
    """The folded stream is the exchange's non-streamed body: text, thoughts, function calls
    with their args and ids, finishReason, usage, modelVersion, responseId."""
    ex = exchange(framing, include_thoughts)
    out = run_exchange(ex, sse_events(stream, upstream))
    got = validate_gemini_stream(out, framing=framing, include_thoughts=include_thoughts)
    want = non_streamed(ex, stream)
    if stream.usage is None:
        assert got["usageMetadata"]["promptTokenCount"] == ex.input_estimate > 0
        got, want = without_prompt_counts(got), without_prompt_counts(want)
    assert got == want
    types.GenerateContentResponse.model_validate(want)


def _squash(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=50, suppress_health_check=SLOW)
@given(stream=glm_streams(interleave=True).filter(lambda s: s.completes),
       upstream=sse_framings, framing=framings)  # fmt: skip
def test_interleaved_stream_keeps_the_non_stream_calls(
    stream: GlmStream, upstream: SseFraming, framing: Framing
) -> None:
    """Text/reasoning between tool calls: the same calls, characters, finish and usage."""
    ex = exchange(framing, True)
    got = validate_gemini_stream(run_exchange(ex, sse_events(stream, upstream)), framing=framing)
    want = non_streamed(ex, stream)

    def summary(doc: dict[str, Any]) -> tuple[Any, ...]:
        calls = sorted((p["functionCall"] for p in parts(doc) if "functionCall" in p), key=repr)
        texts = [_squash("".join(p["text"] for p in parts(doc)
                                 if "text" in p and bool(p.get("thought")) is thought))
                 for thought in (False, True)]  # fmt: skip
        return calls, texts, doc["candidates"][0]["finishReason"]

    assert summary(got) == summary(want)
    if stream.usage is None:
        got, want = without_prompt_counts(got), without_prompt_counts(want)
    assert got["usageMetadata"] == want["usageMetadata"]


# --- JS line terminators ---------------------------------------------------------------------

_TRICKY = st.text(st.sampled_from(["\u2028", "\u2029", "\u0085", "a", "\n", "\r", '"', "\\",
                                   "é", "😀", "—"]), min_size=1, max_size=8)  # fmt: skip


@st.composite
def terminator_streams(draw: st.DrawFn) -> GlmStream:
    """GLM streams whose reasoning, text and tool arguments are full of line terminators
    (the shared strategy's alphabet rarely yields its non-ASCII specials)."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": {"role": "assistant", **delta}, "finish_reason": finish}
        return {"id": "c1", "created": 1, "model": "glm-4.7", "choices": [choice]}

    reasoning = draw(st.lists(_TRICKY, max_size=3))
    content = draw(st.lists(_TRICKY, min_size=1, max_size=3))
    args = json.dumps(draw(st.dictionaries(_TRICKY, _TRICKY, max_size=2)),
                      ensure_ascii=draw(st.booleans()))  # fmt: skip
    call = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "Bash", "arguments": args}}  # fmt: skip
    usage = {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
    chunks = [*(chunk({"reasoning_content": r}) for r in reasoning),
              *(chunk({"content": c}) for c in content), chunk({"tool_calls": [call]}),
              {**chunk({"content": ""}, "tool_calls"), "usage": usage}]  # fmt: skip
    return GlmStream(chunks=chunks, done=True, finish="tool_calls", usage=usage,
                     tool_stream=False, canonical=True, tool_ids=["call_1"])  # fmt: skip


@settings(max_examples=40, suppress_health_check=SLOW)
@given(stream=terminator_streams(), framing=framings)
def test_js_line_terminators_reach_every_client(stream: GlmStream, framing: Framing) -> None:
    """U+2028/U+2029/NEL/CR/LF in thoughts, text and args: the stream validates, the JS and
    Python SDK parsers see every chunk, and it folds to the non-streamed body."""
    ex = exchange(framing, True)
    out = run_exchange(ex, sse_events(stream))
    got = validate_gemini_stream(out, framing=framing)
    assert got == non_streamed(ex, stream)
    if framing == "sse":
        seen, rest = js_sdk_chunks(out)
        assert (seen, rest) == (chunks_of(out, "sse"), "")
        sdk = list(sdk_client(200, out).models.generate_content_stream(model=MODEL, contents="x"))
        assert len(sdk) == len(seen)


# --- the google-genai SDK -------------------------------------------------------------------


def _sdk_fold(chunks: list[types.GenerateContentResponse]) -> dict[str, Any]:
    """What an SDK user collects from a stream: text, thoughts, calls, finish, usage."""
    text, thoughts, calls = [], [], []
    finish = usage = None
    for chunk in chunks:
        candidate = (chunk.candidates or [None])[0]
        assert candidate is not None and candidate.content is not None
        for part in candidate.content.parts or ():
            if part.function_call is not None:
                calls.append(part.function_call.model_dump())
            elif part.thought:
                thoughts.append(part.text or "")
            else:
                text.append(part.text or "")
        finish = candidate.finish_reason or finish
        usage = chunk.usage_metadata or usage
    return {"text": "".join(text), "thoughts": "".join(thoughts), "calls": calls,
            "finish": finish, "usage": usage}  # fmt: skip


@settings(max_examples=40, suppress_health_check=SLOW)
@given(stream=glm_streams(interleave=False).filter(lambda s: s.completes),
       upstream=sse_framings)  # fmt: skip
def test_sdk_stream_equals_sdk_non_stream(stream: GlmStream, upstream: SseFraming) -> None:
    """The SDK's own parse of our SSE stream adds up to its parse of the non-stream body."""
    ex = exchange("sse", True)
    raw = run_exchange(ex, sse_events(stream, upstream))
    client = sdk_client(200, raw)
    got = _sdk_fold(list(client.models.generate_content_stream(model=MODEL, contents="hi")))
    client = sdk_client(200, json.dumps(non_streamed(ex, stream)).encode(), "application/json")
    want = _sdk_fold([client.models.generate_content(model=MODEL, contents="hi")])
    if stream.usage is None:  # see without_prompt_counts
        for doc in (got, want):
            doc["usage"] = doc["usage"].model_copy(update={"prompt_token_count": 0,
                                                           "total_token_count": 0})  # fmt: skip
    assert got == want


@settings(max_examples=30, suppress_health_check=SLOW)
@given(stream=glm_streams().filter(lambda s: not s.completes), upstream=sse_framings)
def test_network_error_and_cut_off_make_the_sdk_raise(
    stream: GlmStream, upstream: SseFraming
) -> None:
    """A stream ending in network_error or cut off makes the google-genai SDK raise a
    ServerError with our message, mid-stream or (before any content) as a status."""
    ex = exchange("sse", False)
    pipe = ex.open_stream()
    status, content_type = 200, "text/event-stream"
    try:
        with deterministic_tool_ids():
            raw = b"".join(pipe.feed(p) for p in sse_events(stream, upstream)) + pipe.flush()
    except UpstreamError as err:  # before any content: the server answers with a status
        status, _, raw = ex.error_response(err)
        content_type = "application/json"
    expected = NETWORK_ERROR_MESSAGE if stream.finish == "network_error" else TRUNCATED_MESSAGE
    seen: list[types.GenerateContentResponse] = []
    client = sdk_client(status, raw, content_type)
    with pytest.raises(genai_errors.ServerError) as info:
        for chunk in client.models.generate_content_stream(model=MODEL, contents="hi"):
            seen.append(chunk)
    assert (info.value.code, info.value.status, info.value.message) == (500, "INTERNAL", expected)
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in seen)
