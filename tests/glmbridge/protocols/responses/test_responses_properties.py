"""Property tests of the Responses front door (style-anchors §7.8).

Generated GLM upstream streams (``tests/strategies.py``, wire-specs A.9) go through an
:class:`glmbridge.Exchange` prepared with :data:`RESPONSES_DOOR` (GLM chat upstream,
Responses door) for a Codex-like request whose tools include a free-form one (``Edit``)
and a namespaced one (``mcp__github`` / ``create_issue``), both names the strategy
calls. Oracles: the Responses grammar validator, the non-streamed answer of the same
exchange (``Exchange.complete``), and the openai SDK's event and response models. Each
test states its invariant in its first docstring line.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from glmbridge.errors import ClientRequestError, UpstreamError
from glmbridge.exchange import Exchange
from glmbridge.protocols.responses import RESPONSES_DOOR, validate_responses_stream
from glmbridge.protocols.responses.items import encode_reasoning
from glmbridge.sse import SSEDecoder
from tests.glmbridge.test_properties import (
    SLOW,
    cut_points,
    deterministic_tool_ids,
    mutated,
    split_at,
    tricky_offsets,
)
from tests.strategies import (
    GlmStream,
    SseFraming,
    glm_streams,
    json_values,
    non_stream_body,
    sse_events,
    sse_framings,
    to_sse,
)

MODEL = "gpt-5-codex"  # what the client asked for; echoed in both paths
OBJECT = {"type": "object", "properties": {"command": {"type": "string"}}}
REQUEST: dict[str, Any] = {
    "model": MODEL,
    "input": [
        {"type": "message", "role": "developer",
         "content": [{"type": "input_text", "text": "You are a coding agent."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]},
    ],
    "tools": [
        {"type": "function", "name": "Bash", "description": "run", "strict": False,
         "parameters": OBJECT},
        {"type": "function", "name": "Read", "description": "read", "parameters": OBJECT},
        {"type": "custom", "name": "Edit", "description": "FREEFORM patch",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
        {"type": "namespace", "name": "mcp__github", "description": "GitHub",
         "tools": [{"type": "function", "name": "create_issue", "description": "file one",
                    "parameters": OBJECT}]},
        {"type": "web_search", "external_web_access": True},
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "reasoning": {"effort": "high", "summary": "auto"},
    "store": False,
    "include": ["reasoning.encrypted_content"],
    "stream": True,
}  # fmt: skip
EVENT = TypeAdapter(ResponseStreamEvent)
# GLM finish_reason -> the incomplete_details.reason a client must see (others complete).
INCOMPLETE = {
    "length": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "sensitive": "content_filter",
}


@cache
def exchange() -> Exchange:
    """One exchange for all examples: its ids and ``created_at`` are fixed."""
    ex = Exchange.prepare(RESPONSES_DOOR, json.dumps(REQUEST).encode())
    assert ex.request.echo["freeform"] == ["Edit"]
    assert ex.request.echo["namespaced"] == {
        "mcp__github__create_issue": ["mcp__github", "create_issue"]
    }
    return ex


def run_exchange(pieces: list[bytes]) -> bytes:
    """The client bytes for upstream ``pieces`` fed one by one, then flushed.

    An ``UpstreamError`` raised before any content (a driver could still answer with a
    status, or retry) is rendered as a committed stream ends it (the relay's path): the
    start events (sent already, or as an early commit's preamble), then the stream's
    ``fail`` (``response.failed``).
    """
    ex = exchange()
    pipe = ex.open_stream()
    out: list[bytes] = []
    with deterministic_tool_ids():
        try:
            for piece in pieces:
                out.append(pipe.feed(piece))
            out.append(pipe.flush())
        except UpstreamError as err:
            assert not pipe.content_started, "raised after content began"
            assert [f["type"] for f in frames(b"".join(out))] in (
                [], ["response.created", "response.in_progress"]
            ), "raised after more than the start events"  # fmt: skip
            if not any(out):
                pipe = ex.open_stream()
                out.append(pipe.preamble())
            out.append(pipe.fail(err))
    return b"".join(out)


def frames(raw: bytes) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    return [json.loads(f.data) for f in decoder.feed(raw) + decoder.flush()]


def parsed_arguments(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with each function call's ``arguments`` parsed: a stream forwards GLM's own
    JSON text (the deltas must add up to it), a non-streamed body re-encodes the parsed
    object, so only the JSON values can be equal (``{"a": 1}`` vs ``{"a":1}``)."""
    doc = {**doc, "output": [dict(i) for i in doc["output"]]}
    for item in doc["output"]:
        if item["type"] == "function_call":
            item["arguments"] = json.loads(item["arguments"])
    return doc


def non_streamed(stream: GlmStream) -> dict[str, Any]:
    with deterministic_tool_ids():
        doc: dict[str, Any] = json.loads(exchange().complete(non_stream_body(stream)))
    return doc


# --- chunking invariance ------------------------------------------------------------------


@settings(max_examples=100, suppress_health_check=SLOW)
@given(stream=glm_streams(), framing=sse_framings, data=st.data())
def test_chunking_invariance(stream: GlmStream, framing: SseFraming, data: st.DataObject) -> None:
    """Any split of the upstream bytes gives the same client bytes as feeding them whole."""
    raw = to_sse(stream, framing)
    whole = run_exchange([raw])
    assert run_exchange(split_at(raw, data.draw(cut_points(raw), label="cuts"))) == whole
    assert run_exchange(split_at(raw, tricky_offsets(raw))) == whole
    assert run_exchange(sse_events(stream, framing)) == whole


@settings(max_examples=15, suppress_health_check=SLOW)
@given(stream=glm_streams(), framing=sse_framings)
def test_chunking_invariance_byte_by_byte(stream: GlmStream, framing: SseFraming) -> None:
    """Feeding one byte at a time gives the same client bytes as feeding them whole."""
    raw = to_sse(stream, framing)
    assert run_exchange([raw[i : i + 1] for i in range(len(raw))]) == run_exchange([raw])


# --- grammar -------------------------------------------------------------------------------


@settings(max_examples=150, suppress_health_check=SLOW)
@given(stream=glm_streams(), framing=sse_framings)
def test_grammar(stream: GlmStream, framing: SseFraming) -> None:
    """Every output passes validate_responses_stream, ends as the upstream did, and each
    event parses with the openai SDK's model."""
    out = run_exchange(sse_events(stream, framing))
    final = validate_responses_stream(out)
    events = frames(out)
    for event in events:
        EVENT.validate_python(event)
    ex = exchange()
    assert events[0]["type"] == "response.created"
    assert final["id"] == "resp_" + ex.message_id.removeprefix("msg_")
    assert final["model"] == MODEL
    if stream.completes:
        assert stream.finish is not None
        reason = INCOMPLETE.get(stream.finish)
        assert final["status"] == ("incomplete" if reason else "completed")
        assert final["incomplete_details"] == ({"reason": reason} if reason else None)
        assert events[-1]["type"] == f"response.{final['status']}"
        Response.model_validate(final)
    else:
        assert events[-1]["type"] == "response.failed"
        assert isinstance(final["error"]["code"], str) and final["error"]["message"]
    # free-form calls come back raw; namespaced ones split; no flattened name leaks out
    for item in final.get("output", []):
        if item["type"] == "custom_tool_call":
            assert item["name"] == "Edit"
        elif item["type"] == "function_call":
            assert item["name"] != "Edit" and "mcp__github__" not in item["name"]
            if item["name"] == "create_issue":
                assert item["namespace"] == "mcp__github"


# --- stream ≡ non-stream ---------------------------------------------------------------------


@settings(max_examples=150, suppress_health_check=SLOW)
@given(
    stream=glm_streams(interleave=False).filter(lambda s: s.completes),
    framing=sse_framings,
)
def test_stream_equals_non_stream(stream: GlmStream, framing: SseFraming) -> None:
    """The final streamed response's output, status and usage equal the non-streamed body's."""
    final = parsed_arguments(validate_responses_stream(run_exchange(sse_events(stream, framing))))
    body = parsed_arguments(non_streamed(stream))
    for key in ("id", "model", "output", "status", "incomplete_details", "usage", "created_at"):
        assert final[key] == body[key], key
    assert final == body  # and everything else the response object echoes
    Response.model_validate(non_streamed(stream))


@settings(max_examples=60, suppress_health_check=SLOW)
@given(
    stream=glm_streams(interleave=True).filter(lambda s: s.completes),
    framing=sse_framings,
)
def test_interleaved_stream_keeps_the_non_stream_calls(
    stream: GlmStream, framing: SseFraming
) -> None:
    """Text/reasoning between tool calls: the same calls (in any order), status and usage
    as non-streamed."""
    final = parsed_arguments(validate_responses_stream(run_exchange(sse_events(stream, framing))))
    body = parsed_arguments(non_streamed(stream))

    def calls(doc: dict[str, Any]) -> list[Any]:
        items = [i for i in doc["output"] if i["type"] in ("function_call", "custom_tool_call")]
        found = [{k: v for k, v in i.items() if k != "id"} for i in items]
        return sorted(found, key=lambda call: call["call_id"])  # in start order when streamed

    assert calls(final) == calls(body)
    for key in ("status", "incomplete_details", "usage"):
        assert final[key] == body[key], key


# --- requests: only ClientRequestError ---------------------------------------------------

_HISTORY: dict[str, Any] = {
    **REQUEST,
    "tools": REQUEST["tools"][1:4],
    "input": [
        *REQUEST["input"],
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "s"}],
         "encrypted_content": encode_reasoning("t", None)},
        {"type": "function_call", "call_id": "c1", "name": "create_issue",
         "namespace": "mcp__github", "arguments": "{\"command\":\"x\"}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        {"type": "custom_tool_call", "call_id": "c2", "name": "Edit", "input": "*** x"},
        {"type": "custom_tool_call_output", "call_id": "c2", "output": "done"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]},
    ],
    "text": {"format": {"type": "json_schema", "name": "o", "schema": {"type": "object"}}},
}  # fmt: skip


@settings(max_examples=150, suppress_health_check=SLOW)
@given(st.one_of(json_values, mutated(_HISTORY)))
def test_request_path_raises_only_client_request_error(doc: Any) -> None:
    """Decoding, routing and GLM encoding of any JSON raise only ClientRequestError."""
    try:
        ex = Exchange.prepare(RESPONSES_DOOR, json.dumps(doc).encode())
    except ClientRequestError as exc:
        assert exc.message
        return
    msgspec.json.decode(ex.body)  # the upstream body is JSON


# --- free-form input ---------------------------------------------------------------------


@st.composite
def freeform_streams(draw: st.DrawFn) -> tuple[GlmStream, str]:
    """A GLM stream calling the free-form ``Edit`` with ``{"input": <patch>}`` arguments,
    split anywhere (inside escapes too), after some text; and the patch."""
    patch = draw(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"])
                         | st.sampled_from(list('\n\t"\\{}😀中\u2028')), max_size=40))  # fmt: skip
    args = json.dumps({"input": patch}, ensure_ascii=draw(st.booleans()))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(args) - 1), max_size=5))))
    pieces = [args[a:b] for a, b in zip([0, *cuts], [*cuts, len(args)], strict=True)]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": {"role": "assistant", **delta}, "finish_reason": finish}
        return {"id": "c1", "created": 1, "model": "glm-4.7", "choices": [choice]}

    calls = [{"index": 0, "function": {"arguments": p}} for p in pieces]
    calls[0].update(id="call_edit", type="function")
    calls[0]["function"]["name"] = "Edit"
    usage = {"prompt_tokens": 50, "completion_tokens": 9, "total_tokens": 59}
    chunks = [chunk({"content": "Patching."}), *(chunk({"tool_calls": [c]}) for c in calls)]
    chunks.append({**chunk({"content": ""}, "tool_calls"), "usage": usage})
    stream = GlmStream(chunks=chunks, done=True, finish="tool_calls", usage=usage,
                       tool_stream=True, canonical=True, tool_ids=["call_edit"])  # fmt: skip
    return stream, patch


@settings(max_examples=60, suppress_health_check=SLOW)
@given(case=freeform_streams(), framing=sse_framings, data=st.data())
def test_freeform_input_is_raw(
    case: tuple[GlmStream, str], framing: SseFraming, data: st.DataObject
) -> None:
    """A free-form call's input arrives raw (not JSON) in one delta, the same in both paths
    and under any chunking."""
    stream, patch = case
    raw = to_sse(stream, framing)
    out = run_exchange([raw])
    assert run_exchange(split_at(raw, data.draw(cut_points(raw), label="cuts"))) == out
    final = validate_responses_stream(out)
    (item,) = [i for i in final["output"] if i["type"] == "custom_tool_call"]
    assert (item["name"], item["call_id"], item["input"]) == ("Edit", "call_edit", patch)
    deltas = [f for f in frames(out) if f["type"] == "response.custom_tool_call_input.delta"]
    assert [d["delta"] for d in deltas] == [patch]
    assert not [f for f in frames(out) if f["type"].startswith("response.function_call")]
    assert final == non_streamed(stream)
