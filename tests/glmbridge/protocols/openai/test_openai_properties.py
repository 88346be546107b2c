"""Property tests of the Chat Completions front door's stream encoder (style-anchors §7.8).

Generated GLM upstream streams (``tests/strategies.py``, wire-specs A.9) go through an
:class:`glmbridge.Exchange` prepared with :data:`CHAT_DOOR` (GLM chat upstream, OpenAI
chat door). Oracles: the chat grammar validator (``validate_chat_stream``), the
non-streamed answer of the same exchange (``Exchange.complete``), and the official openai
SDK's own stream accumulator. Each test states its invariant in its first docstring line.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glmbridge import events as ev
from glmbridge import ids, ir
from glmbridge.errors import UpstreamError
from glmbridge.exchange import Exchange
from glmbridge.protocols.anthropic.grammar import StreamGrammarError
from glmbridge.protocols.openai import CHAT_DOOR
from glmbridge.protocols.openai.grammar import ChatStreamResult, validate_chat_stream
from glmbridge.protocols.openai.upstream_stream import TRUNCATED_MESSAGE
from glmbridge.protocols.openai.wire import NETWORK_ERROR_MESSAGE
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

MODEL = "gpt-4o"  # what the client asked for; echoed in both paths
# GLM finish_reason -> the chat finish_reason a client must see (without tool calls).
EXPECTED_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "stop",  # GLM said tool_calls but made none: a plain stop
    "sensitive": "content_filter",
    "model_context_window_exceeded": "length",
}


# --- helpers ---------------------------------------------------------------------------


def chat_request(*, include_usage: bool, stream: bool = True) -> bytes:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def prepare(*, include_usage: bool) -> Exchange:
    return Exchange.prepare(CHAT_DOOR, chat_request(include_usage=include_usage))


def run_exchange(ex: Exchange, pieces: list[bytes]) -> bytes:
    """The client bytes for upstream ``pieces`` fed one by one, then flushed.

    An ``UpstreamError`` raised before any content (so that a driver can still answer
    with a status, or retry) is rendered as what a client sees once the stream is
    committed instead: what was already sent, then the door's error payload.
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
            start = role_chunk(ex)
            assert b"".join(out) in (b"", start), "raised after more than the role chunk"
            return start + ex.door.error_event(err)
    return b"".join(out)


def role_chunk(ex: Exchange) -> bytes:
    """The first chunk of ``ex``'s stream (``delta.role``), what a committed stream starts with."""
    start = ev.MessageStart(id=ex.message_id, model=ex.request.model, usage=ir.Usage())
    return ex.door.stream_encoder().feed(start)


_ID = re.compile(rb'"id":"chatcmpl-[0-9A-Za-z]+"')
_CREATED = re.compile(rb'"created":\d+')


def normalised(raw: bytes) -> bytes:
    """``raw`` with the chunk id and ``created`` (per exchange) replaced by placeholders."""
    return _CREATED.sub(b'"created":0', _ID.sub(b'"id":"chatcmpl-X"', raw))


def run_fresh(stream_pieces: list[bytes], *, include_usage: bool) -> bytes:
    """``run_exchange`` on a freshly prepared exchange (new id, new ``created``)."""
    return run_exchange(prepare(include_usage=include_usage), stream_pieces)


def expected_finish(stream: GlmStream, result: ChatStreamResult) -> str:
    assert stream.finish is not None
    finish = EXPECTED_FINISH[stream.finish]
    if result.tool_calls and finish == "stop":
        return "tool_calls"
    return finish


def folded_completion(body: bytes) -> dict[str, Any]:
    """A ``chat.completion`` body reduced to what a stream result carries."""
    doc = json.loads(body)
    choice = doc["choices"][0]
    message = choice["message"]
    calls = [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in message.get("tool_calls") or ()
    ]
    return {
        "id": doc["id"],
        "model": doc["model"],
        "content": message["content"] or "",
        "reasoning": message.get("reasoning_content") or "",
        "tool_calls": calls,
        "finish_reason": choice["finish_reason"],
        "usage": doc["usage"],
    }


def without_prompt_counts(folded: dict[str, Any]) -> dict[str, Any]:
    """``folded`` without the prompt-token counts.

    Known divergence outside the door (``ChatUpstream.decode_response`` ignores the input
    estimate): when GLM reports no usage, a stream reports the local estimate as
    ``prompt_tokens`` while the non-stream answer reports 0.
    """
    usage = {k: v for k, v in folded["usage"].items() if k not in ("prompt_tokens", "total_tokens")}
    return {**folded, "usage": usage}


def folded_stream(result: ChatStreamResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "model": result.model,
        "content": result.content,
        "reasoning": result.reasoning,
        "tool_calls": [(i, n, json.loads(a)) for i, n, a in result.tool_calls],
        "finish_reason": result.finish_reason,
        "usage": result.usage,
    }


class _Reply:
    """The mock transport's answer for the next request (one client per test)."""

    status = 200
    headers = {"content-type": "text/event-stream"}
    body = b""

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(self.status, headers=self.headers, content=self.body)


def sdk_client(reply: _Reply) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://test/v1",
        api_key="x",
        http_client=httpx2.Client(transport=httpx2.MockTransport(reply)),
        max_retries=0,
    )


_MESSAGES: Any = [{"role": "user", "content": "hi"}]


# --- chunking invariance ------------------------------------------------------------------


@settings(max_examples=120, suppress_health_check=SLOW)
@given(stream=glm_streams(), framing=sse_framings, include_usage=st.booleans(), data=st.data())
def test_chat_chunking_invariance(
    stream: GlmStream, framing: SseFraming, include_usage: bool, data: st.DataObject
) -> None:
    """Any split of the upstream bytes gives the same chat bytes (modulo id and created)."""
    raw = to_sse(stream, framing)
    whole = normalised(run_fresh([raw], include_usage=include_usage))
    pieces = split_at(raw, data.draw(cut_points(raw), label="cuts"))
    assert normalised(run_fresh(pieces, include_usage=include_usage)) == whole
    # and cut at every tricky offset at once (each CR|LF, inside each UTF-8 sequence)
    tricky = split_at(raw, tricky_offsets(raw))
    assert normalised(run_fresh(tricky, include_usage=include_usage)) == whole


@settings(max_examples=15, suppress_health_check=SLOW)
@given(stream=glm_streams(), framing=sse_framings)
def test_chat_chunking_invariance_byte_by_byte(stream: GlmStream, framing: SseFraming) -> None:
    """Feeding one byte at a time gives the same chat bytes as feeding them whole."""
    raw = to_sse(stream, framing)
    ex = prepare(include_usage=True)  # one exchange: id and created are the same
    assert run_exchange(ex, [raw[i : i + 1] for i in range(len(raw))]) == run_exchange(ex, [raw])


def test_normalised_hides_only_id_and_created() -> None:
    """Two exchanges differ in id (so the normalisation is needed) and only there."""
    raw = b'data: {"choices":[{"delta":{"content":"x"},"finish_reason":"stop"}]}\n\n'
    a, b = (run_fresh([raw], include_usage=True) for _ in range(2))
    assert a != b and normalised(a) == normalised(b)
    assert b'"content":"x"' in normalised(a)


# --- grammar -------------------------------------------------------------------------------


@settings(max_examples=150, suppress_health_check=SLOW)
@given(stream=glm_streams(), framing=sse_framings, include_usage=st.booleans())
def test_chat_grammar(stream: GlmStream, framing: SseFraming, include_usage: bool) -> None:
    """Every output passes validate_chat_stream and ends as the upstream did."""
    out = run_exchange(prepare(include_usage=include_usage), sse_events(stream, framing))
    result = validate_chat_stream(out, include_usage=include_usage)
    assert result.model in (None, MODEL)
    if stream.completes:
        assert result.error is None
        assert result.finish_reason == expected_finish(stream, result)
        assert out.endswith(b"data: [DONE]\n\n")
        assert (result.usage is not None) is include_usage
        # the other include_usage setting must be refused (the flag is really honoured)
        with pytest.raises(StreamGrammarError) as info:
            validate_chat_stream(out, include_usage=not include_usage)
        assert info.value.rule == "include_usage"
    else:
        assert result.finish_reason is None and b"[DONE]" not in out
        expected = NETWORK_ERROR_MESSAGE if stream.finish == "network_error" else TRUNCATED_MESSAGE
        assert result.error == {
            "message": expected,
            "type": "server_error",
            "param": None,
            "code": "server_error",
        }


# --- stream ≡ non-stream ---------------------------------------------------------------------


@settings(max_examples=150, suppress_health_check=SLOW)
@given(
    stream=glm_streams(interleave=False).filter(lambda s: s.completes),
    framing=sse_framings,
)
def test_chat_stream_equals_non_stream(stream: GlmStream, framing: SseFraming) -> None:
    """The folded stream equals the exchange's non-streamed chat.completion (same id too)."""
    ex = prepare(include_usage=True)
    out = run_exchange(ex, sse_events(stream, framing))
    result = validate_chat_stream(out, include_usage=True)
    with deterministic_tool_ids():
        body = ex.complete(non_stream_body(stream))
    got, want = folded_stream(result), folded_completion(body)
    if stream.usage is None:
        assert got["usage"]["prompt_tokens"] == ex.input_estimate > 0
        got, want = without_prompt_counts(got), without_prompt_counts(want)
    assert got == want
    assert result.id == "chatcmpl-" + ex.message_id.removeprefix("msg_")
    first_chunk = json.loads(out.split(b"\n\n", 1)[0].removeprefix(b"data: "))
    assert first_chunk["created"] == json.loads(body)["created"]


def _squash(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=80, suppress_health_check=SLOW)
@given(
    stream=glm_streams(interleave=True).filter(lambda s: s.completes),
    framing=sse_framings,
)
def test_interleaved_chat_stream_matches_non_stream(stream: GlmStream, framing: SseFraming) -> None:
    """Text/reasoning between tool calls: same calls, finish, usage and non-blank characters."""
    ex = prepare(include_usage=True)
    result = validate_chat_stream(run_exchange(ex, sse_events(stream, framing)), include_usage=True)
    with deterministic_tool_ids():
        expected = folded_completion(ex.complete(non_stream_body(stream)))
    got = folded_stream(result)
    assert sorted(got["tool_calls"], key=repr) == sorted(expected["tool_calls"], key=repr)
    assert _squash(got["content"]) == _squash(expected["content"])
    assert _squash(got["reasoning"]) == _squash(expected["reasoning"])
    assert got["finish_reason"] == expected["finish_reason"]
    if stream.usage is None:
        got, expected = without_prompt_counts(got), without_prompt_counts(expected)
    assert got["usage"] == expected["usage"]


@settings(max_examples=60, suppress_health_check=SLOW)
@given(
    stream=glm_streams(interleave=False).filter(lambda s: s.completes),
    framing=sse_framings,
)
def test_sdk_stream_helper_equals_sdk_non_stream(stream: GlmStream, framing: SseFraming) -> None:
    """The openai SDK's accumulated stream equals its parse of the non-stream body."""
    ex = prepare(include_usage=True)
    reply = _Reply()
    reply.body = run_exchange(ex, sse_events(stream, framing))
    with (
        sdk_client(reply) as client,
        client.chat.completions.stream(model=MODEL, messages=_MESSAGES) as events,
    ):
        for _ in events:
            pass
        # the accumulated snapshot (get_final_completion() refuses finish_reason "length")
        final = events.current_completion_snapshot
    with deterministic_tool_ids():
        expected = openai.types.chat.ChatCompletion.model_validate_json(
            ex.complete(non_stream_body(stream))
        )
    got_msg, want_msg = final.choices[0].message, expected.choices[0].message
    assert final.id == expected.id and final.model == expected.model == MODEL
    assert (got_msg.content or "") == (want_msg.content or "")
    assert getattr(got_msg, "reasoning_content", None) == getattr(
        want_msg, "reasoning_content", None
    )
    got_calls = [(c.id, c.function.name, json.loads(c.function.arguments))
                 for c in got_msg.tool_calls or ()]  # fmt: skip
    want_calls = [(c.id, c.function.name, json.loads(c.function.arguments))
                  for c in want_msg.tool_calls or ()]  # fmt: skip
    assert got_calls == want_calls
    assert final.choices[0].finish_reason == expected.choices[0].finish_reason
    assert final.usage is not None and expected.usage is not None
    assert final.usage.completion_tokens == expected.usage.completion_tokens
    if stream.usage is not None:  # see without_prompt_counts
        assert final.usage == expected.usage


@settings(max_examples=40, suppress_health_check=SLOW)
@given(stream=glm_streams().filter(lambda s: not s.completes), framing=sse_framings)
def test_chat_network_error_and_cut_off_make_the_sdk_raise(
    stream: GlmStream, framing: SseFraming
) -> None:
    """A stream ending in network_error or cut off makes the openai SDK raise."""
    ex = prepare(include_usage=False)
    reply = _Reply()
    pipe = ex.open_stream()
    try:
        reply.body = b"".join(pipe.feed(p) for p in sse_events(stream, framing)) + pipe.flush()
    except UpstreamError as err:  # before any content: the server answers with a status
        reply.status, _, reply.body = ex.error_response(err)
        reply.headers = {"content-type": "application/json"}
    expected = NETWORK_ERROR_MESSAGE if stream.finish == "network_error" else TRUNCATED_MESSAGE
    with sdk_client(reply) as client, pytest.raises(openai.APIError) as info:
        for _ in client.chat.completions.create(model=MODEL, messages=_MESSAGES, stream=True):
            pass
    body = info.value.body
    assert isinstance(body, dict)
    error = body.get("error", body)  # status errors keep the envelope, stream errors do not
    assert error["message"] == expected and error["type"] == "server_error"


def test_generated_tool_ids_are_the_only_other_randomness() -> None:
    """A call without an upstream id gets a generated id; nothing else differs."""
    call = {"index": 0, "function": {"name": "Bash", "arguments": "{}"}}  # no id
    chunk = {"choices": [{"delta": {"tool_calls": [call]}, "finish_reason": "tool_calls"}]}
    raw = b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n"
    ex = prepare(include_usage=False)
    a, b = (ex.open_stream() for _ in range(2))
    first, second = a.feed(raw) + a.flush(), b.feed(raw) + b.flush()
    pattern = re.compile(rb"toolu_[0-9A-Za-z]{24}")
    assert first != second and pattern.sub(b"ID", first) == pattern.sub(b"ID", second)
    assert validate_chat_stream(first, include_usage=False).finish_reason == "tool_calls"
    assert ids.new_tool_use_id().startswith("toolu_")
