"""Z.ai's Anthropic-compatible endpoint as an upstream: the stream decoder, the request
normalisation, error decoding, and the exchange through it.

The property tests build upstream Anthropic streams from the GLM stream strategy (a GLM
stream through the chat path gives a valid Anthropic stream), give them Z.ai's zero
``message_start`` usage, and check the Anthropic-upstream path: any chunking gives the
same bytes, every output passes the grammar validator, the SDK reads the same final
message as it reads from the upstream bytes, and stream and non-stream agree.
"""

from __future__ import annotations

import json
import operator
from pathlib import Path
from typing import Any

import anthropic as sdk
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import glmbridge
from glmbridge import events as ev
from glmbridge import ir
from glmbridge.errors import ErrorKind, UpstreamError
from glmbridge.exchange import Exchange, ExchangeStream, adapt_request
from glmbridge.profiles import PROFILES
from glmbridge.protocols import anthropic as ac
from glmbridge.protocols.anthropic.upstream import for_upstream
from glmbridge.routing import DEFAULT_ROUTE_TABLE, resolve_route
from tests.glmbridge.test_properties import (
    _Reply,
    cut_points,
    sdk_client,
    sdk_stream_final,
    split_at,
)
from tests.strategies import GlmStream, glm_streams, glm_to_anthropic, sse_events

MODEL = "claude-sonnet-4-5"
MESSAGE_ID = "msg_property"
ESTIMATE = 1234
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]
ZAI = PROFILES["zai-anthropic"]


def zai_stream(stream: GlmStream) -> bytes:
    """A valid Anthropic stream as Z.ai sends it: zero usage at message_start, ids not msg_."""
    pipe = glm_to_anthropic(model="glm-4.7", message_id="20251013104553f6d8961e92814310")
    try:
        raw = b"".join(pipe.feed(p) for p in sse_events(stream))
        raw += pipe.flush()
    except UpstreamError as err:
        raw = ac.error_event(err)
    out = []
    for frame in glmbridge.SSEDecoder().feed(raw):
        body = json.loads(frame.data)
        if body["type"] == "message_start":
            body["message"]["usage"] = {"input_tokens": 0, "output_tokens": 0}
        out.append(f"event: {frame.event}\ndata: {json.dumps(body)}\n\n".encode())
    return b"".join(out)


STATUS = b"STATUS "


def relay(pieces: list[bytes]) -> bytes:
    """Client bytes for upstream ``pieces`` through the Anthropic upstream codec.

    An error before any content raises (a driver answers with a status or retries):
    that is rendered as ``STATUS`` + the error event.
    """
    pipe = ExchangeStream.between(
        ac.DOOR,
        ac.AnthropicUpstream(),
        model=MODEL,
        message_id=MESSAGE_ID,
        input_tokens_estimate=ESTIMATE,
    )
    out: list[bytes] = []
    try:
        for piece in pieces:
            out.append(pipe.feed(piece))
        out.append(pipe.flush())
    except UpstreamError as err:
        assert not pipe.content_started
        return STATUS + ac.error_event(err)
    return b"".join(out)


def frames(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in glmbridge.SSEDecoder().feed(raw)]


@settings(max_examples=150, suppress_health_check=SLOW)
@given(stream=glm_streams(), data=st.data())
def test_chunking_invariance_and_grammar(stream: GlmStream, data: st.DataObject) -> None:
    raw = zai_stream(stream)
    whole = relay([raw])
    if not whole.startswith(STATUS):
        glmbridge.validate_anthropic_stream(whole)
    assert relay(split_at(raw, data.draw(cut_points(raw), label="cuts"))) == whole
    assert relay([raw[i : i + 7] for i in range(0, len(raw), 7)]) == whole


@settings(max_examples=100, suppress_health_check=SLOW)
@given(stream=glm_streams().filter(lambda s: s.completes))
def test_the_sdk_reads_what_the_upstream_said(stream: GlmStream) -> None:
    """Same content, stop reason and output usage; input usage is Z.ai's final count, and
    message_start carries our estimate instead of Z.ai's zero."""
    raw = zai_stream(stream)
    upstream, ours = _Reply(), _Reply()
    upstream.body, ours.body = raw, relay([raw])
    theirs = sdk_stream_final(sdk_client(upstream))
    mine = sdk_stream_final(sdk_client(ours))
    assert [b.model_dump() for b in mine.content] == [b.model_dump() for b in theirs.content]
    assert mine.stop_reason == theirs.stop_reason
    assert mine.usage.output_tokens == theirs.usage.output_tokens
    start = frames(ours.body)[0]
    assert start["message"]["usage"]["input_tokens"] == ESTIMATE
    assert start["message"]["id"] == MESSAGE_ID and start["message"]["model"] == MODEL


@settings(max_examples=100, suppress_health_check=SLOW)
@given(stream=glm_streams().filter(lambda s: s.completes))
def test_stream_and_non_stream_agree(stream: GlmStream) -> None:
    raw = zai_stream(stream)
    reply = _Reply()
    reply.body = relay([raw])
    streamed = sdk_stream_final(sdk_client(reply))
    # the non-stream body Z.ai would send for the same answer
    final = glmbridge.accumulate(e for e in _decode_all(raw) if not isinstance(e, ev.StreamError))
    body = ac.encode_response(final)
    resp = ac.AnthropicUpstream().decode_response(body, model=MODEL, input_estimate=ESTIMATE)
    whole = sdk.types.Message.model_validate_json(ac.encode_response(resp))
    assert [b.model_dump() for b in whole.content] == [b.model_dump() for b in streamed.content]
    assert whole.stop_reason == streamed.stop_reason


def _decode_all(raw: bytes) -> list[ev.Event]:
    decoder = ac.StreamDecoder(model=MODEL, message_id=MESSAGE_ID)
    out: list[ev.Event] = []
    for frame in glmbridge.SSEDecoder().feed(raw):
        out.extend(decoder.feed(frame.data))
    return out + decoder.flush()


# --- decoder edge cases ---------------------------------------------------------------------


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


START = {"type": "message_start", "message": {"id": "x", "usage": {"input_tokens": 0}}}


def block(i: int, shell: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": i, "content_block": shell}


def delta(i: int, **d: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": i, "delta": d}


def stop(i: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": i}


END = (
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"input_tokens": 900, "output_tokens": 7, "cache_read_input_tokens": 100},
    },
    {"type": "message_stop"},
)


def test_empty_text_blocks_are_dropped_and_blocks_renumbered() -> None:
    raw = sse(
        START,
        block(0, {"type": "text", "text": ""}),
        stop(0),
        block(1, {"type": "thinking", "thinking": ""}),
        delta(1, type="thinking_delta", thinking="hmm"),
        delta(1, type="signature_delta", signature="zsig"),
        stop(1),
        block(2, {"type": "text", "text": ""}),
        delta(2, type="text_delta", text="hi"),
        stop(2),
        *END,
    )
    out = relay([raw])
    glmbridge.validate_anthropic_stream(out)
    starts = [f for f in frames(out) if f["type"] == "content_block_start"]
    assert [(f["index"], f["content_block"]["type"]) for f in starts] == [
        (0, "thinking"),
        (1, "text"),
    ]
    delta_frame = frames(out)[-2]
    assert delta_frame["usage"] == {
        "input_tokens": 900,
        "output_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 100,
    }
    assert b"zsig" in out  # Z.ai's own signature is passed on


def test_unsigned_thinking_gets_a_signature() -> None:
    raw = sse(
        START,
        block(0, {"type": "thinking", "thinking": ""}),
        delta(0, type="thinking_delta", thinking="hmm"),
        stop(0),
        *END,
    )
    out = relay([raw])
    glmbridge.validate_anthropic_stream(out)
    assert any(f.get("delta", {}).get("type") == "signature_delta" for f in frames(out))


def test_tool_use_stream_is_relayed() -> None:
    raw = sse(
        START,
        block(0, {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {}}),
        delta(0, type="input_json_delta", partial_json='{"command":'),
        delta(0, type="input_json_delta", partial_json=' "ls"}'),
        stop(0),
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {}},
        {"type": "message_stop"},
    )
    reply = _Reply()
    reply.body = relay([raw])
    msg = sdk_stream_final(sdk_client(reply))
    assert msg.stop_reason == "tool_use"
    assert msg.content[0].type == "tool_use" and msg.content[0].input == {"command": "ls"}
    assert msg.usage.input_tokens == ESTIMATE  # Z.ai said nothing: our estimate stands


def test_missing_message_delta_is_synthesised_and_ping_dropped() -> None:
    raw = sse(
        START,
        {"type": "ping"},
        block(0, {"type": "text", "text": ""}),
        delta(0, type="text_delta", text="ok"),
        {"type": "message_stop"},
    )
    out = relay([raw])
    glmbridge.validate_anthropic_stream(out)
    assert b"event: ping" not in out
    assert frames(out)[-2]["delta"]["stop_reason"] == "end_turn"


def test_cut_off_stream_ends_with_an_error_not_a_fake_stop() -> None:
    raw = sse(START, block(0, {"type": "text", "text": ""}), delta(0, type="text_delta", text="a"))
    out = relay([raw])
    glmbridge.validate_anthropic_stream(out)
    last = frames(out)[-1]
    assert last["type"] == "error" and "before completion" in last["error"]["message"]


def test_in_band_error_before_content_raises_with_the_business_code() -> None:
    err_event = {
        "type": "error",
        "error": {"type": "rate_limit_error", "code": "1302", "message": "[1302][并发过高][rid]"},
    }
    pipe = ExchangeStream.between(ac.DOOR, ac.AnthropicUpstream(), model=MODEL)
    with pytest.raises(UpstreamError) as info:
        pipe.feed(sse(START, err_event))
    assert info.value.code == "1302" and info.value.retryable
    assert info.value.kind is ErrorKind.RATE_LIMIT


def test_in_band_error_after_content_is_an_error_event() -> None:
    err_event = {"type": "error", "error": {"type": "api_error", "code": "1234", "message": "x"}}
    raw = sse(START, block(0, {"type": "text", "text": ""}), delta(0, type="text_delta", text="a"))
    out = relay([raw + sse(err_event)])
    glmbridge.validate_anthropic_stream(out)
    assert frames(out)[-1]["type"] == "error"


# --- error bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "kind", "code", "retryable"),
    [
        (
            429,
            {
                "type": "error",
                "error": {
                    "type": "rate_limit_error",
                    "code": "1113",
                    "message": "[1113][余额不足或无可用资源包,请充值。][2025]",
                },
                "request_id": "r",
            },
            ErrorKind.RATE_LIMIT,
            "1113",
            False,
        ),
        (
            400,
            {"error": {"code": "1211", "message": "模型不存在"}},
            ErrorKind.NOT_FOUND,
            "1211",
            False,
        ),
        (
            400,
            {"type": "error", "error": {"type": "invalid_request_error", "message": "[1210][bad]"}},
            ErrorKind.INVALID_REQUEST,
            "1210",
            False,
        ),
        (
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
            ErrorKind.OVERLOADED,
            None,
            True,
        ),
        (502, b"<html>bad gateway</html>", ErrorKind.OVERLOADED, None, True),
    ],
)
def test_error_bodies_map_like_the_chat_path(
    status: int, body: Any, kind: ErrorKind, code: str | None, retryable: bool
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    err = ac.error_from_upstream(status, raw)
    assert (err.kind, err.code, err.retryable, err.status) == (kind, code, retryable, status)
    if code:
        assert err.message.startswith(f"[{code}] ") and err.message.count(f"[{code}]") == 1
    assert "<html>" not in err.message


def test_an_error_object_sent_with_200_raises_on_the_non_stream_path() -> None:
    body = json.dumps(
        {"type": "error", "error": {"type": "api_error", "code": "1234", "message": "x"}}
    )
    with pytest.raises(UpstreamError) as info:
        ac.AnthropicUpstream().decode_response(body.encode(), model=MODEL, input_estimate=1)
    assert info.value.code == "1234"


# --- request normalisation ---------------------------------------------------------------------


def _route(model: str, **req: Any) -> tuple[ir.Request, Any]:
    request = ir.Request(model=model, messages=[], **req)
    return request, resolve_route(request, DEFAULT_ROUTE_TABLE, upstream=ZAI)


def test_request_normalisation() -> None:
    messages = [
        ir.Message(role="user", content=[ir.TextBlock(text=""), ir.TextBlock(text="hi")]),
        ir.Message(role="assistant", content=[ir.TextBlock(text="")]),
        ir.Message(role="system", content=[ir.TextBlock(text="be brief")]),
        ir.Message(
            role="assistant",
            content=[ir.ToolUseBlock(id="t1", name="Bash", input=["ls"])],  # type: ignore[arg-type]
        ),
    ]
    req, route = _route("glm-5.2[1m]", max_tokens=None, system=[ir.TextBlock(text="")])
    req = msgspec.structs.replace(req, messages=messages)
    wire = json.loads(ac.AnthropicUpstream().encode_request(req, route))
    assert wire["model"] == "glm-5.2"  # the [1m] suffix is Claude Code's, not a model id
    # no max_tokens: Claude Code's default budget, within the model's cap (glm-5.2: 128K)
    assert wire["max_tokens"] == min(32_000, route.spec.max_output) == 32_000
    assert "system" not in wire
    assert wire["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "<system-reminder>\nbe brief\n</system-reminder>"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"value": ["ls"]}}
            ],
        },
    ]


def test_unchanged_messages_are_not_copied() -> None:
    msg = ir.Message(role="user", content=[ir.TextBlock(text="hi")])
    req, route = _route("glm-4.7", max_tokens=100)
    req = msgspec.structs.replace(req, messages=[msg])
    assert for_upstream(req, route).messages[0] is msg


@pytest.mark.parametrize("effort", [None, "high"])
def test_thinking_disabled_is_never_sent_to_an_always_thinking_model(effort: str | None) -> None:
    req, route = _route(
        "glm-5.3", max_tokens=100, thinking=ir.Thinking(type="disabled"), effort=effort
    )
    adapted = adapt_request(req, route.spec)
    assert adapted.thinking is None and adapted.effort == (effort or "low")
    wire = json.loads(ac.AnthropicUpstream().encode_request(adapted, route))
    assert "thinking" not in wire and wire["output_config"]["effort"] == (effort or "low")
    # a model that can stop thinking keeps the client's choice
    req, route = _route("glm-4.6", max_tokens=100, thinking=ir.Thinking(type="disabled"))
    assert adapt_request(req, route.spec) is req
    # glm-4.7 is answered by GLM-5.3-Flash on the plan (docs.bigmodel.cn/cn/coding-plan/
    # overview): its spec is Flash's, and Flash always thinks
    req, route = _route("glm-4.7", max_tokens=100, thinking=ir.Thinking(type="disabled"))
    assert route.spec.id == "glm-5.3-flash"
    assert adapt_request(req, route.spec).thinking is None


# --- routing through profiles -------------------------------------------------------------------


def _user(*blocks: ir.Block) -> list[ir.Message]:
    return [ir.Message(role="user", content=list(blocks))]


IMAGE = ir.ImageBlock(source=ir.MediaSource(type="base64", media_type="image/png", data="AA=="))


def test_zai_auto_sends_media_turns_through_the_chat_api() -> None:
    auto = PROFILES["zai-auto"]
    text = ir.Request(model=MODEL, messages=_user(ir.TextBlock(text="hi")))
    image = ir.Request(model=MODEL, messages=_user(ir.TextBlock(text="look"), IMAGE))
    assert resolve_route(text, upstream=auto).upstream is auto
    routed = resolve_route(image, upstream=auto)
    # the Coding Plan's only vision model (glm-4.6v is a 404 there: zai-fidelity 1.3)
    assert routed.upstream is PROFILES["zai-coding"] and routed.model == "glm-5.3-flash"


def test_a_route_can_pin_a_model_to_a_profile() -> None:
    table = glmbridge.RouteTable.from_mapping({"upstreams": {"glm-5.3-flash": "zai-coding"}})
    haiku = ir.Request(model="claude-haiku-4-5", messages=_user(ir.TextBlock(text="hi")))
    sonnet = ir.Request(model=MODEL, messages=_user(ir.TextBlock(text="hi")))
    assert resolve_route(haiku, table, upstream=ZAI).upstream.name == "zai-coding"
    assert resolve_route(sonnet, table, upstream=ZAI).upstream is ZAI
    with pytest.raises(ValueError, match="unknown profile"):
        glmbridge.RouteTable.from_mapping({"upstreams": {"glm-4.7": "nowhere"}})


def test_exchange_prepares_for_the_routed_profile() -> None:
    body = json.dumps(
        {
            "model": MODEL,
            "max_tokens": 10,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
    ).encode()
    ex = Exchange.prepare(ac.DOOR, body, upstream=ZAI)
    assert ex.url == "https://api.z.ai/api/anthropic/v1/messages?beta=true"
    headers = ex.headers("k")
    assert headers["x-api-key"] == "k" and "authorization" not in headers
    assert headers["anthropic-version"] == "2023-06-01" and headers["accept"] == "text/event-stream"
    chat = Exchange.prepare(ac.DOOR, body)
    assert chat.url == "https://api.z.ai/api/coding/paas/v4/chat/completions"
    assert chat.headers("k")["authorization"] == "Bearer k"
    assert json.loads(chat.body)["model"] == "glm-5.3"


def test_deltas_that_do_not_fit_the_open_block_are_dropped() -> None:
    raw = sse(
        START,
        block(0, {"type": "thinking", "thinking": ""}),
        delta(0, type="text_delta", text="stray"),
        delta(0, type="input_json_delta", partial_json="{"),
        delta(0, type="thinking_delta", thinking="hmm"),
        stop(0),
        block(1, {"type": "text", "text": ""}),
        delta(1, type="input_json_delta", partial_json="{"),
        delta(1, type="text_delta", text="ok"),
        delta(7, type="text_delta", text="not open"),
        stop(1),
        *END,
    )
    out = relay([raw])
    glmbridge.validate_anthropic_stream(out)
    assert b"stray" not in out and b"not open" not in out and b"partial_json" not in out


def test_tool_search_server_tools_are_not_forwarded() -> None:
    """Z.ai's tool search hides every tool (zai-org/feedback#172); offer the tools directly."""
    tools = [
        ir.Tool(name="tool_search_tool_regex", server_type="tool_search_tool_regex_20251119"),
        ir.Tool(name="web_search", server_type="web_search_20250305", config={"max_uses": 8}),
        ir.Tool(name="Bash", input_schema={"type": "object", "properties": {}}),
    ]
    req, route = _route("glm-4.7", max_tokens=100, tools=tools)
    wire = json.loads(ac.AnthropicUpstream().encode_request(req, route))
    assert [t["name"] for t in wire["tools"]] == ["web_search", "Bash"]


@pytest.mark.parametrize(
    ("codec", "body", "code"),
    [
        ("chat", {"error": {"code": "1113", "message": "余额不足"}}, "1113"),
        (
            "anthropic",
            {"type": "error", "error": {"type": "overloaded_error", "code": "1305"}},
            "1305",
        ),
    ],
)
def test_a_json_error_object_instead_of_a_stream_keeps_its_code(
    codec: str, body: dict[str, Any], code: str
) -> None:
    """HTTP 200 with a JSON error body for a streaming request: the business code decides,
    not "the stream ended before completion" (any chunking)."""
    from glmbridge.protocols import openai as oa

    raw = json.dumps(body).encode()
    upstream = oa.ChatUpstream() if codec == "chat" else ac.AnthropicUpstream()
    for cut in (len(raw), 7):
        pipe = ExchangeStream.between(ac.DOOR, upstream, model=MODEL)
        with pytest.raises(UpstreamError) as info:
            pipe.feed(raw[:cut])
            pipe.feed(raw[cut:])
            pipe.flush()
        assert info.value.code == code


_EVERY_BLOCK = Path(__file__).parents[3] / "fixtures" / "anthropic_upstream" / "every_block.json"


def test_the_body_is_byte_for_byte_what_the_block_by_block_encoder_wrote() -> None:
    # Blocks now go into the body in one encoder pass, not each to JSON first (issue 22).
    case = json.loads(_EVERY_BLOCK.read_text(encoding="utf-8"))
    req = ac.decode_request(case["request"].encode())
    body = ac.upstream_request.request_from_ir(req)
    assert body == case["body"].encode()
    assert b'"n":1E+400' in body  # beyond the float range: an exact Decimal, as a number


def _clean_reference(msg: ir.Message) -> ir.Message | None:
    """What for_upstream did to a non-system message before its fast path."""
    from glmbridge.protocols.anthropic.upstream import _clean_block

    content = [c for b in msg.content if (c := _clean_block(b)) is not None]
    if not content:
        return None
    if len(content) == len(msg.content) and all(map(operator.is_, content, msg.content)):
        return msg
    return ir.Message(role=msg.role, content=content)


@given(st.lists(st.sampled_from(range(5)), max_size=5))
def test_message_cleaning_matches_the_plain_rule(kinds: list[int]) -> None:
    choices: list[ir.Block] = [
        ir.TextBlock(text="kept"),
        ir.TextBlock(text=""),
        ir.ToolUseBlock(id="t", name="n", input={"a": 1}),
        ir.ToolUseBlock(id="t", name="n", input=[1]),  # type: ignore[arg-type]
        ir.ToolResultBlock(
            tool_use_id="t", content=[ir.TextBlock(text=""), ir.TextBlock(text="x")]
        ),
    ]
    msg = ir.Message(role="user", content=[choices[k] for k in kinds])
    req, route = _route("glm-4.7", max_tokens=100)
    got = for_upstream(msgspec.structs.replace(req, messages=[msg]), route).messages
    want = _clean_reference(msg)
    assert got == ([] if want is None else [want])
    if want is msg:
        assert got[0] is msg
