"""The exchange against a fake door and a fake codec: the contract every protocol package
meets, and what the exchange does with it whatever the protocols are.

The toy protocol is as small as a protocol can be and still have every role: a JSON request
and answer, a line-per-event stream, and error bodies that say their kind. What the exchange
adds (routing, message ids, reasoning gating, secret scrubbing, the stream machine's rules)
is then visible on its own. The last tests hold every real door and codec to the role
signatures of :mod:`glmbridge.roles`.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import msgspec
import pytest

from glmbridge import events as ev
from glmbridge import exchange, ir, protocols
from glmbridge.errors import ErrorKind, GlmbridgeError, StreamStateError, UpstreamError
from glmbridge.exchange import Exchange
from glmbridge.profiles import PROFILES
from glmbridge.protocols import anthropic, gemini, openai, responses
from glmbridge.roles import DoorStreamEncoder, FrontDoor, UpstreamCodec, UpstreamStreamDecoder
from glmbridge.routing import Route

MODEL = "claude-opus-4-8"  # the client's name; routing picks the upstream model
SECRET = "sk-toy-secret-key"

# --- the toy door ----------------------------------------------------------------------------


class ToyEncoder:
    """IR events -> one line each: ``<type> <json>``; failures are ``fail <kind>``."""

    def feed(self, event: ev.Event) -> bytes:
        return event.__struct_config__.tag.encode() + b" " + msgspec.json.encode(event) + b"\n"

    def flush(self) -> bytes:
        return b"eof\n"

    def fail(self, err: GlmbridgeError) -> bytes:
        return b"fail " + err.kind.value.encode() + b" " + err.message.encode() + b"\n"

    def keepalive(self) -> bytes:
        return b"~\n"


class ToyDoor:
    """Requests ``{"model", "say", "stream", "think"}``; answers ``{"id", "blocks", ...}``."""

    name = "toy"
    stream_content_type = "text/toy"

    def __init__(self, request: ir.Request | None = None) -> None:
        self.request = request

    def decode_request(self, body: bytes) -> ir.Request:
        data = json.loads(body)
        thinking = ir.Thinking(type="enabled") if data.get("think") else None
        text = ir.TextBlock(text=data["say"])
        return ir.Request(
            model=data["model"],
            messages=[ir.Message(role="user", content=[text])],
            max_tokens=100,
            stream=bool(data.get("stream")),
            thinking=thinking,
        )

    def for_request(self, req: ir.Request) -> ToyDoor:
        return ToyDoor(req)

    def encode_response(self, resp: ir.Response) -> bytes:
        blocks = [msgspec.to_builtins(block) for block in resp.content]
        return json.dumps({
            "id": resp.id, "model": resp.model, "blocks": blocks, "stop": resp.stop_reason,
            "usage": [resp.usage.input_tokens, resp.usage.output_tokens],
        }).encode()  # fmt: skip

    def stream_encoder(self) -> ToyEncoder:
        return ToyEncoder()

    def encode_error(
        self, err: GlmbridgeError, *, request_id: str | None = None
    ) -> tuple[int, bytes]:
        body = {"kind": err.kind.value, "message": err.message, "request": request_id}
        return 418, json.dumps(body).encode()

    def error_headers(self, err: GlmbridgeError) -> dict[str, str]:
        return {"x-toy-error": err.kind.value}

    def error_event(self, err: GlmbridgeError) -> bytes:
        return ToyEncoder().fail(err)


# --- the toy codec ---------------------------------------------------------------------------


class ToyDecoder:
    """Payloads ``{"t": "think" | "text" | "stop" | "error", ...}`` -> IR events."""

    def __init__(self, *, model: str, message_id: str, input_tokens_estimate: int) -> None:
        self.start = ev.MessageStart(
            id=message_id, model=model, usage=ir.Usage(input_tokens=input_tokens_estimate)
        )
        self.started = False
        self.block: str | None = None
        self.index = -1
        self.error: UpstreamError | None = None
        self._answered = False

    @property
    def answered(self) -> bool:
        return self._answered

    def feed(self, data: bytes | str) -> list[ev.Event]:
        item = json.loads(data)
        out: list[ev.Event] = []
        if not self.started:
            self.started = True
            out.append(self.start)
        kind = item["t"]
        if kind in ("think", "text"):
            if self.block != kind:
                out += self._close()
                self.index += 1
                self.block = kind
                shell = ir.ThinkingBlock(thinking="") if kind == "think" else ir.TextBlock(text="")
                out.append(ev.BlockStart(index=self.index, block=shell))
            if kind == "think":
                out.append(ev.ThinkingDelta(index=self.index, thinking=item["v"]))
            else:
                out.append(ev.TextDelta(index=self.index, text=item["v"]))
        elif kind == "stop":
            self._answered = True
            usage = ir.Usage(input_tokens=self.start.usage.input_tokens, output_tokens=item["out"])
            out += self._close()
            out += [ev.MessageDelta(stop_reason=ir.StopReason.END_TURN, usage=usage)]
            out += [ev.MessageStop()]
        elif kind == "error":
            self.error = UpstreamError(item["message"], kind=ErrorKind.OVERLOADED, code="toy")
            out.append(ev.StreamError(kind=ErrorKind.OVERLOADED, message=item["message"]))
        return out

    def _close(self) -> list[ev.Event]:
        if self.block is None:
            return []
        self.block = None
        return [ev.BlockStop(index=self.index)]

    def flush(self) -> list[ev.Event]:
        return []


class ToyCodec:
    """Requests ``{"model", "text", "stream"}`` to ``/toy``; answers ``{"text", ...}``."""

    path = "/toy"
    headers = {"x-toy": "1"}

    def encode_request(self, req: ir.Request, route: Route) -> bytes:
        text = req.messages[-1].content[0]
        assert isinstance(text, ir.TextBlock)
        return json.dumps({"model": route.model, "text": text.text, "stream": req.stream}).encode()

    def decode_response(self, body: bytes, *, model: str, input_estimate: int) -> ir.Response:
        data = json.loads(body)
        if "error" in data:
            raise UpstreamError(data["error"], status=200)
        content: list[ir.Block] = [ir.TextBlock(text=data["text"])]
        if data.get("reasoning"):
            content.insert(0, ir.ThinkingBlock(thinking=data["reasoning"]))
        usage = ir.Usage(input_tokens=input_estimate, output_tokens=data["out"])
        return ir.Response(id="toy-1", model=model, content=content,
                           stop_reason=ir.StopReason.END_TURN, usage=usage)  # fmt: skip

    def stream_decoder(
        self, *, model: str, message_id: str, input_tokens_estimate: int
    ) -> ToyDecoder:
        return ToyDecoder(
            model=model, message_id=message_id, input_tokens_estimate=input_tokens_estimate
        )

    def decode_error(
        self, status: int, body: bytes, *, retry_after: float | None = None
    ) -> UpstreamError:
        kind = ErrorKind.RATE_LIMIT if status == 429 else ErrorKind.API_ERROR
        return UpstreamError(body.decode(), kind=kind, status=status, retry_after=retry_after)


@pytest.fixture(autouse=True)
def toy_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every profile speaks the toy protocol (the registry is how the exchange picks one)."""
    monkeypatch.setattr(exchange, "upstream_codec", lambda profile: ToyCodec())


def prepare(*, stream: bool = False, think: bool = False) -> Exchange:
    body = {"model": MODEL, "say": "hello", "stream": stream, "think": think}
    ex = Exchange.prepare(ToyDoor(), json.dumps(body).encode())
    ex.secrets = (SECRET,)
    return ex


def sse(*payloads: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)


ANSWER = sse(
    {"t": "think", "v": "hmm"},
    {"t": "text", "v": "Hel"},
    {"t": "text", "v": "lo"},
    {"t": "stop", "out": 7},
)


def lines(data: bytes) -> list[str]:
    return [line.split(" ", 1)[0] for line in data.decode().splitlines()]


# --- the non-streamed exchange ---------------------------------------------------------------


def test_prepare_decodes_with_the_door_routes_and_encodes_with_the_codec() -> None:
    ex = prepare()
    assert ex.request.model == MODEL
    assert ex.route.model != MODEL  # routed to an upstream model
    assert ex.url == ex.route.upstream.base_url + "/toy"
    assert json.loads(ex.body) == {"model": ex.route.model, "text": "hello", "stream": False}
    assert ex.input_estimate > 0
    assert isinstance(ex.door, ToyDoor) and ex.door.request is not None  # bound to the request


def test_headers_are_auth_content_negotiation_and_the_codec_s() -> None:
    whole, streamed = prepare().headers("k1"), prepare(stream=True).headers("k1")
    auth = prepare().route.upstream.auth_headers("k1")
    assert auth.items() <= whole.items() and whole["x-toy"] == "1"
    assert whole["accept"] == "application/json"
    assert streamed["accept"] == "text/event-stream"
    assert streamed["accept-encoding"] == "identity"


def test_complete_renders_the_codec_s_answer_through_the_door() -> None:
    ex = prepare(think=True)
    kept: list[ir.Response] = []
    ex.on_complete = kept.append
    out = json.loads(ex.complete(b'{"text": "hi", "reasoning": "hmm", "out": 3}'))
    assert out["id"] == ex.message_id  # one id scheme, whatever the upstream's
    assert out["model"] == MODEL  # the client's name, not the upstream's
    assert [b["type"] for b in out["blocks"]] == ["thinking", "text"]
    assert ex.usage == ir.Usage(input_tokens=ex.input_estimate, output_tokens=3)
    assert [r.id for r in kept] == [ex.message_id]


def test_complete_drops_reasoning_the_client_did_not_ask_for() -> None:
    out = json.loads(prepare().complete(b'{"text": "hi", "reasoning": "hmm", "out": 3}'))
    assert [b["type"] for b in out["blocks"]] == ["text"]
    assert out["usage"] == [prepare().input_estimate, 3]  # still counted


def test_an_error_object_sent_with_200_raises_scrubbed() -> None:
    with pytest.raises(UpstreamError) as caught:
        prepare().complete(json.dumps({"error": f"bad key {SECRET}"}).encode())
    assert SECRET not in caught.value.message


def test_decode_error_is_the_codec_s_scrubbed() -> None:
    err = prepare().decode_error(429, f"slow down {SECRET}".encode(), retry_after=2.0)
    assert (err.kind, err.status, err.retry_after) == (ErrorKind.RATE_LIMIT, 429, 2.0)
    assert SECRET not in err.message and "slow down" in err.message


def test_error_response_is_the_door_s() -> None:
    err = UpstreamError("down", kind=ErrorKind.OVERLOADED)
    status, headers, body = prepare().error_response(err, request_id="req-1")
    assert (status, headers) == (418, {"x-toy-error": "overloaded"})
    assert json.loads(body) == {"kind": "overloaded", "message": "down", "request": "req-1"}


# --- the streamed exchange -------------------------------------------------------------------


def run(stream: exchange.ExchangeStream, chunks: list[bytes]) -> bytes:
    out = b""
    for chunk in chunks:
        out += stream.feed(chunk)
        if stream.finished:
            break
    else:
        out += stream.flush()
    return out


@pytest.mark.parametrize("size", [1, 7, 64, len(ANSWER)])
def test_the_stream_is_the_same_for_any_chunking(size: int) -> None:
    ex = prepare(stream=True, think=True)
    stream = ex.open_stream()
    out = run(stream, [ANSWER[i : i + size] for i in range(0, len(ANSWER), size)])
    assert lines(out) == [
        "message_start", "content_block_start", "thinking_delta", "content_block_stop",
        "content_block_start", "text_delta", "text_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    assert stream.started and stream.content_started and stream.first_output
    assert stream.finished and stream.stop_reason is ir.StopReason.END_TURN
    assert stream.usage is not None and stream.usage.output_tokens == 7
    assert stream.feed(b"garbage after the end") == b""  # never read, never sent


def test_the_stream_drops_reasoning_the_client_did_not_ask_for() -> None:
    out = run(prepare(stream=True).open_stream(), [ANSWER])
    assert "thinking_delta" not in lines(out)
    assert b'"index":0' in out.split(b"\n")[2]  # the text block renumbered to 0


def test_an_error_before_content_raises_for_the_driver() -> None:
    stream = prepare(stream=True).open_stream()
    with pytest.raises(UpstreamError) as caught:
        stream.feed(sse({"t": "error", "message": f"busy {SECRET}"}))
    assert caught.value.retryable is False and caught.value.code == "toy"
    assert SECRET not in caught.value.message
    with pytest.raises(StreamStateError):  # errors are sticky
        stream.feed(b"")


def test_an_error_after_content_ends_the_client_stream_with_the_door_s_event() -> None:
    ex = prepare(stream=True)
    stream = ex.open_stream()
    out = stream.feed(sse({"t": "text", "v": "Hi"}))
    out += stream.feed(sse({"t": "error", "message": f"gone {SECRET}"}))
    assert lines(out)[-1] == "fail" and SECRET not in out.decode()
    assert stream.finished and isinstance(stream.error, UpstreamError)


def test_a_transport_failure_after_content_uses_the_door_s_fail() -> None:
    stream = prepare(stream=True).open_stream()
    stream.feed(sse({"t": "text", "v": "Hi"}))
    out = stream.fail(UpstreamError("reset", kind=ErrorKind.API_ERROR))
    assert out == b"fail api_error reset\n" and stream.finished


def test_a_failure_after_the_final_stop_reason_completes_normally() -> None:
    stream = prepare(stream=True).open_stream()
    stream.feed(sse({"t": "text", "v": "Hi"}))
    stream.feed(sse({"t": "stop", "out": 1})[:-1])  # stop decoded only at the blank line
    stream.feed(b"\n")
    assert stream.finished
    assert stream.fail(UpstreamError("reset")) == b""


def test_a_preamble_starts_the_client_stream_and_the_upstream_start_is_swallowed() -> None:
    stream = prepare(stream=True).open_stream()
    assert stream.can_preamble
    first = stream.preamble()
    assert lines(first) == ["message_start"] and stream.started
    assert stream.keepalive() == b"~\n"
    out = run(stream, [sse({"t": "text", "v": "Hi"}, {"t": "stop", "out": 1})])
    assert "message_start" not in lines(out)


def test_the_door_s_stream_is_closed_by_flush_when_the_upstream_just_stops() -> None:
    stream = prepare(stream=True).open_stream()
    out = stream.feed(sse({"t": "text", "v": "Hi"}))
    assert stream.flush().endswith(b"eof\n") and not stream.finished
    assert lines(out)[0] == "message_start"


# --- every real door and codec plays its role ------------------------------------------------

DOORS: list[FrontDoor] = [
    anthropic.DOOR,
    openai.CHAT_DOOR,
    responses.RESPONSES_DOOR,
    gemini.GEMINI_DOOR,
    gemini.GEMINI_ARRAY_DOOR,
]
CODECS: list[UpstreamCodec] = [
    protocols.upstream_codec(profile) for profile in PROFILES.values()
]  # fmt: skip
ROLE_METHODS = {
    FrontDoor: ["decode_request", "for_request", "encode_response", "stream_encoder",
                "encode_error", "error_headers", "error_event"],
    DoorStreamEncoder: ["feed", "flush", "fail", "keepalive"],
    UpstreamCodec: ["encode_request", "decode_response", "stream_decoder", "decode_error"],
    UpstreamStreamDecoder: ["feed", "flush"],
}  # fmt: skip


def _params(function: Any) -> list[tuple[str, Any]]:
    params = inspect.signature(function).parameters.values()
    return [(p.name, p.kind) for p in params if p.name != "self"]


def _plays(obj: object, role: type) -> None:
    for name in ROLE_METHODS[role]:
        assert _params(getattr(obj, name)) == _params(getattr(role, name)), (obj, name)


@pytest.mark.parametrize("door", DOORS, ids=lambda door: f"{door.name}")
def test_every_door_plays_the_front_door_role(door: FrontDoor) -> None:
    _plays(door, FrontDoor)
    assert door.stream_content_type
    bound = door.for_request(ir.Request(model=MODEL, messages=[]))
    _plays(bound, FrontDoor)
    _plays(bound.stream_encoder(), DoorStreamEncoder)


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: type(codec).__name__)
def test_every_codec_plays_the_upstream_codec_role(codec: UpstreamCodec) -> None:
    _plays(codec, UpstreamCodec)
    assert codec.path.startswith("/") and isinstance(dict(codec.headers), dict)
    decoder = codec.stream_decoder(model=MODEL, message_id="msg_1", input_tokens_estimate=0)
    _plays(decoder, UpstreamStreamDecoder)
    assert decoder.error is None and decoder.answered is False


def test_the_toy_protocol_plays_both_roles() -> None:
    # guards this file: the fakes meet the same signatures as the real packages
    _plays(ToyDoor(), FrontDoor)
    _plays(ToyEncoder(), DoorStreamEncoder)
    _plays(ToyCodec(), UpstreamCodec)
    _plays(ToyCodec().stream_decoder(model="m", message_id="i", input_tokens_estimate=0),
           UpstreamStreamDecoder)  # fmt: skip
