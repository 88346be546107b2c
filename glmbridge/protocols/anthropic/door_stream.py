"""Anthropic SSE streams: IR events -> bytes (:class:`StreamEncoder`)."""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

import msgspec

from glmbridge import ir
from glmbridge.errors import (
    ErrorKind,
    GlmbridgeError,
    StreamStateError,
)
from glmbridge.events import (
    BlockStart,
    BlockStop,
    Event,
    InputJsonDelta,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    SignatureDelta,
    StreamError,
    TextDelta,
    ThinkingDelta,
)
from glmbridge.protocols.anthropic import wire as aw
from glmbridge.protocols.anthropic.door_response import (
    _content_from_ir,
    _usage_from_ir,
    server_tool_usage,
)
from glmbridge.protocols.anthropic.errors import error_frame

logger = logging.getLogger("glmbridge.protocols.anthropic")

# decimal_format: tool input numbers beyond the float range are Decimals (see
# glmbridge._tool_args.exact_float) and must go out as JSON numbers.
_ENCODE = msgspec.json.Encoder(decimal_format="number").encode

__all__ = ["PING", "StreamEncoder"]

# Theory of operation
# -------------------
# Input: IR events in the grammar of ``glmbridge.events`` (MessageStart, then per block
# BlockStart, deltas, BlockStop, then MessageDelta and MessageStop; Ping anywhere;
# StreamError terminal). Output: Anthropic SSE frames ``event: <type>\ndata: <json>\n\n``
# whose event name always equals the JSON ``type`` (the SDK dispatches on the name).
# There is no ``[DONE]``.
#
# States: BEFORE_START -> (MessageStart) -> STREAMING -> (MessageStop | StreamError) -> DONE.
# Any misuse (a delta for a block that is not open, a delta type the open block cannot
# take, a BlockStart out of order, anything after DONE) raises StreamStateError and
# moves to ERROR, which is sticky: every later feed/flush raises again.
#
# Hot path: text, thinking and tool-argument deltas are >99% of a stream. When a block
# opens we precompute the complete frame prefix for its deltas (event line, type,
# index digits, delta type), so a delta costs one ``msgspec.json.encode(str)`` and two
# byte concatenations; no dict, no Struct. ``_open`` is None whenever no block is
# open (including DONE and ERROR), so a single identity check also guards the state.
# Empty text/thinking deltas are dropped: Anthropic never sends them and the grammar
# validator rejects them. MessageStop requires a prior MessageDelta (the stop reason).
#
# Block shells: a tool_use/server_tool_use shell whose ``input`` is not empty is sent
# with ``input: {}`` followed by one input_json_delta holding the whole input, because
# clients build tool input from the deltas only.
#
# flush(): b"" after MessageStop or StreamError; otherwise the stream was abandoned
# mid-way and flush writes an ``error`` event (api_error) so the client does not
# mistake a truncated answer for a complete one.


class _State(Enum):
    BEFORE_START = "before_start"
    STREAMING = "streaming"
    DONE = "done"
    ERROR = "error"


class _Kind(Enum):
    """What deltas the open block accepts."""

    TEXT = "text"
    THINKING = "thinking"
    TOOL = "tool"
    NONE = "none"  # complete-on-start blocks (redacted_thinking, results): no deltas


# The fast path's kinds as globals: ``_Kind.TEXT`` is a slow enum-class lookup (CPython 3.11).
_TEXT, _THINKING, _TOOL = _Kind.TEXT, _Kind.THINKING, _Kind.TOOL
_DELTA_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_DELTA_KIND = {
    _Kind.TEXT: b',"delta":{"type":"text_delta","text":',
    _Kind.THINKING: b',"delta":{"type":"thinking_delta","thinking":',
    _Kind.TOOL: b',"delta":{"type":"input_json_delta","partial_json":',
    _Kind.NONE: b"",
}
_SIGNATURE_MID = b',"delta":{"type":"signature_delta","signature":'
_DELTA_TAIL = b"}}\n\n"
_STOP_HEAD = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'
PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_ENCODE_STR = msgspec.json.Encoder().encode


class StreamEncoder:
    """IR stream events -> Anthropic SSE bytes (one instance per response).

    ``feed(event)`` returns the bytes to write (possibly ``b""``); ``flush()`` must be
    called once at the end. See the theory-of-operation comment above.
    """

    __slots__ = ("_delta_sent", "_index", "_next_index", "_open", "_prefix", "_state")

    def __init__(self) -> None:
        self._state = _State.BEFORE_START
        self._open: _Kind | None = None  # kind of the open block; None when none is open
        self._index = -1  # index of the open block
        self._prefix = b""  # delta frame prefix of the open block
        self._next_index = 0
        self._delta_sent = False

    def feed(self, event: Event) -> bytes:
        """Encode one IR event.

        Raises:
            StreamStateError: the event breaks the stream grammar or the encoder is
                finished; the encoder stays failed.
        """
        # Fast path: a delta for the open block of the matching kind. Empty text and
        # thinking deltas are dropped (the Anthropic grammar has none).
        if type(event) is TextDelta:
            if self._open is _TEXT and event.index == self._index:
                text = event.text
                return self._prefix + _ENCODE_STR(text) + _DELTA_TAIL if text else b""
        elif type(event) is ThinkingDelta:
            if self._open is _THINKING and event.index == self._index:
                text = event.thinking
                return self._prefix + _ENCODE_STR(text) + _DELTA_TAIL if text else b""
        elif type(event) is InputJsonDelta:  # noqa: SIM102
            if self._open is _TOOL and event.index == self._index:
                return self._prefix + _ENCODE_STR(event.partial_json) + _DELTA_TAIL
        return self._feed_slow(event)

    def flush(self) -> bytes:
        """Finish the stream: ``b""`` if it ended properly, else an ``error`` event.

        Raises:
            StreamStateError: the encoder already failed.
        """
        if self._state is _State.ERROR:
            raise StreamStateError("stream encoder already failed")
        if self._state is _State.DONE:
            return b""
        self._finish()
        return error_frame(ErrorKind.API_ERROR, "stream ended unexpectedly")

    def keepalive(self) -> bytes:
        """A ``ping`` event."""
        return PING

    def fail(self, err: GlmbridgeError) -> bytes:
        """End the stream with ``err`` (an ``error`` event); nothing may follow."""
        self._finish()
        return error_frame(err.kind, err.message)

    # -- slow path -------------------------------------------------------------------------

    def _fail(self, message: str) -> StreamStateError:
        self._state = _State.ERROR
        self._open = None
        return StreamStateError(message)

    def _finish(self) -> None:
        self._state = _State.DONE
        self._open = None

    def _feed_slow(self, event: Event) -> bytes:
        state = self._state
        if state is _State.ERROR:
            raise StreamStateError("stream encoder already failed")
        if state is _State.DONE:
            raise self._fail(f"{type(event).__name__} after the end of the stream")
        match event:
            case Ping():
                return PING
            case StreamError():
                self._finish()
                return error_frame(event.kind, event.message)
            case MessageStart() if state is _State.BEFORE_START:
                self._state = _State.STREAMING
                return self._message_start(event)
        if state is _State.BEFORE_START:
            raise self._fail(f"{type(event).__name__} before MessageStart")
        return self._feed_streaming(event)

    def _feed_streaming(self, event: Event) -> bytes:
        match event:
            case BlockStart():
                return self._block_start(event)
            case BlockStop() if self._open is not None and event.index == self._index:
                self._open = None
                return _STOP_HEAD + str(event.index).encode() + b"}\n\n"
            case SignatureDelta() if self._open is _Kind.THINKING and event.index == self._index:
                head = _DELTA_HEAD + str(event.index).encode() + _SIGNATURE_MID
                return head + _ENCODE_STR(event.signature) + _DELTA_TAIL
            case MessageDelta() if self._open is None:
                self._delta_sent = True
                return self._message_delta(event)
            case MessageStop() if self._open is None and self._delta_sent:
                self._finish()
                return _MESSAGE_STOP
        index = getattr(event, "index", None)
        raise self._fail(
            f"{type(event).__name__} (index {index}) not allowed with open block {self._index}"
            if self._open is not None
            else f"{type(event).__name__} (index {index}) not allowed with no open block"
        )

    def _message_start(self, event: MessageStart) -> bytes:
        message = aw.Message(
            id=event.id,
            model=event.model,
            content=[],
            usage=_usage_from_ir(event.usage, min_output=1),  # Anthropic never sends 0 here
        )
        data = _ENCODE(aw.MessageStartEvent(message=message))
        return b"event: message_start\ndata: " + data + b"\n\n"

    def _block_start(self, event: BlockStart) -> bytes:
        if self._open is not None:
            raise self._fail(f"BlockStart {event.index} while block {self._index} is open")
        if event.index != self._next_index:
            raise self._fail(f"BlockStart {event.index}, expected index {self._next_index}")
        shell, kind, tool_input = _shell(event.block)
        if shell is None:
            raise self._fail(f"a {event.block.__struct_config__.tag} block cannot be streamed")
        self._open, self._index, self._next_index = kind, event.index, event.index + 1
        self._prefix = _DELTA_HEAD + str(event.index).encode() + _DELTA_KIND[kind]
        data = _ENCODE(aw.ContentBlockStartEvent(index=event.index, content_block=shell))
        out = b"event: content_block_start\ndata: " + data + b"\n\n"
        if tool_input:
            out += self._prefix + _ENCODE_STR(_ENCODE(tool_input).decode()) + _DELTA_TAIL
        return out

    def _message_delta(self, event: MessageDelta) -> bytes:
        u = event.usage
        body = aw.MessageDeltaEvent(
            delta=aw.MessageDeltaBody(
                stop_reason=event.stop_reason.value if event.stop_reason is not None else None,
                stop_sequence=event.stop_sequence,
            ),
            usage=aw.MessageDeltaUsage(
                output_tokens=u.output_tokens,
                input_tokens=u.input_tokens,
                cache_creation_input_tokens=u.cache_creation_input_tokens,
                cache_read_input_tokens=u.cache_read_input_tokens,
                server_tool_use=server_tool_usage(u),
            ),
        )
        return b"event: message_delta\ndata: " + _ENCODE(body) + b"\n\n"


def _shell(block: ir.Block) -> tuple[aw.ContentBlock | None, _Kind, dict[str, Any] | None]:
    """The ``content_block`` of a start event, the deltas it takes, and input to replay."""
    match block:
        case ir.TextBlock():
            return (
                aw.TextBlock(text=block.text, citations=block.citations or None),
                _Kind.TEXT,
                None,
            )
        case ir.ThinkingBlock():
            shell = aw.ThinkingBlock(thinking=block.thinking, signature=block.signature or "")
            return shell, _Kind.THINKING, None
        case ir.ToolUseBlock():
            shell_t = aw.ToolUseBlock(id=block.id, name=block.name, input={})
            return shell_t, _Kind.TOOL, block.input or None
        case ir.ServerToolUseBlock():
            shell_s = aw.ServerToolUseBlock(id=block.id, name=block.name, input={})
            return shell_s, _Kind.TOOL, block.input or None
        case ir.RedactedThinkingBlock() | ir.WebSearchToolResultBlock() | ir.UnknownBlock():
            return _content_from_ir(block), _Kind.NONE, None
    return None, _Kind.NONE, None
