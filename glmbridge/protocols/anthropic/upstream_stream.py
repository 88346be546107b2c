"""Anthropic SSE streams from an upstream (Z.ai's ``/api/anthropic``) -> IR events
(:class:`StreamDecoder`)."""

from __future__ import annotations

import logging
from enum import Enum

import msgspec

from glmbridge import events as ev
from glmbridge import ids, ir
from glmbridge._tool_args import exact_float
from glmbridge.errors import (
    ClientRequestError,
    ErrorKind,
    StreamStateError,
    UpstreamError,
    UpstreamProtocolError,
)
from glmbridge.protocols.anthropic import wire as aw
from glmbridge.protocols.anthropic.door_request import _block_to_ir
from glmbridge.protocols.anthropic.errors import error_from_upstream
from glmbridge.protocols.anthropic.upstream_response import stop_reason_to_ir, usage_to_ir

__all__ = ["TRUNCATED_MESSAGE", "StreamDecoder"]

logger = logging.getLogger("glmbridge.protocols.anthropic")

# Theory of operation
# -------------------
# Input: one call of ``StreamDecoder.feed`` per SSE ``data:`` payload of an Anthropic
# stream (the JSON carries its own ``type``, so the event name is not needed). Output:
# IR events in the grammar of ``glmbridge.events``, whatever the upstream got wrong:
#
# * ``message_start`` -> ``MessageStart`` with our id and the client's model name; an
#   ``input_tokens`` of 0 (Z.ai always sends zeros: zai-org/GLM-5#139) becomes the
#   caller's estimate, so a client's context meter is not blanked.
# * Blocks are renumbered 0, 1, 2 … in the order they open. A text block opens only at
#   its first non-empty ``text_delta``: an empty text block is dropped entirely (Z.ai's
#   empty blocks break the next turn: earendil-works/pi PR#358, zed-industries/zed#38153).
#   A block still open when another starts is closed first. A thinking block closing
#   without a ``signature_delta`` gets ``ids.thinking_signature`` of its text.
# * Deltas for a block that is not open, ``citations_delta`` (no IR carrier) and unknown
#   delta or event types are dropped with a debug line; ``ping`` is dropped (the front
#   door sends its own keep-alives).
# * ``message_delta`` -> ``MessageDelta`` at once: its usage is the real one (Z.ai's
#   final counts), completed from ``message_start`` or the estimate where it says 0.
#   From here the answer is known (``answered``). ``message_stop`` -> ``MessageStop``;
#   a missing ``message_delta`` is synthesised (end_turn, or tool_use after a tool block).
# * ``error`` -> ``StreamError``; ``self.error`` keeps the full ``UpstreamError`` (business
#   code, retryable). Later payloads are ignored.
# * flush(): after ``message_delta`` the missing ``MessageStop`` is added; before it the
#   open block is closed and ``StreamError(api_error, "upstream stream ended before
#   completion")`` ends the stream, so a cut-off answer never reads as complete.
#
# Bad JSON raises ``UpstreamProtocolError``; after a raise or flush every call raises
# ``StreamStateError`` (sticky), like every stream machine here. A blank payload is
# nothing; it is recognised only when JSON decoding fails, so the per-event path is one
# state test, the decode, and (for a text, thinking or tool-argument delta of the open
# block) the hot path in ``feed``.


# gc=False: decoded JSON cannot form reference cycles, so the per-event structs need not
# be tracked by the cyclic collector (as the GLM path's wire structs).
class _Delta(msgspec.Struct, gc=False):
    type: str = ""
    text: str | None = None
    thinking: str | None = None
    partial_json: str | None = None
    signature: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None


class _Message(msgspec.Struct, gc=False):
    usage: aw.UsageIn | None = None


class _UpstreamEvent(msgspec.Struct, gc=False):
    type: str = ""
    index: int | None = None
    delta: _Delta | None = None
    content_block: msgspec.Raw = msgspec.Raw(b"{}")
    message: _Message | None = None
    usage: aw.UsageIn | None = None


_DECODE_EVENT = msgspec.json.Decoder(_UpstreamEvent, float_hook=exact_float).decode
TRUNCATED_MESSAGE = "upstream stream ended before completion"


class _DState(Enum):
    IDLE = "before message_start"
    STREAMING = "streaming"
    ANSWERED = "after message_delta"
    DONE = "after message_stop"
    FAILED = "after an error event"
    CLOSED = "after flush"
    ERROR = "after an exception"


# The states in which a payload is decoded: one tuple test per payload (``in`` compares
# by identity in C; ``_DState.X`` is a slow enum-class lookup in CPython 3.11).
_LIVE = (_DState.IDLE, _DState.STREAMING, _DState.ANSWERED)


class StreamDecoder:
    """Anthropic SSE payloads from an upstream -> :mod:`glmbridge.events`.

    Args:
        model: the model name the client asked for (echoed in ``MessageStart``).
        message_id: the message id to use; a fresh ``msg_…`` id when ``None``.
        input_tokens_estimate: reported where the upstream says 0 input tokens.
    """

    def __init__(
        self, *, model: str, message_id: str | None = None, input_tokens_estimate: int = 0
    ) -> None:
        self._model = model
        self._id = message_id or ids.new_message_id()
        self._estimate = input_tokens_estimate
        self._state = _DState.IDLE
        self._start_usage = ir.Usage(input_tokens=input_tokens_estimate)
        self._map: dict[int, int] = {}  # upstream index -> our index (open block only)
        self._open: int | None = None  # upstream index of the open block
        self._pending_text: int | None = None  # upstream index of an unopened text block
        self._thinking: list[str] | None = None  # open thinking block's text, unsigned
        self._kind: str | None = None  # deltas the open block takes: text, thinking, tool
        self._next = 0
        self._tool_blocks = 0
        self.error: UpstreamError | None = None
        """The upstream failure behind an emitted ``StreamError``."""

    @property
    def answered(self) -> bool:
        """Whether the final stop reason and usage have been decoded."""
        return self._state in (_DState.ANSWERED, _DState.DONE)

    def feed(self, data: bytes | str) -> list[ev.Event]:
        """Decode one SSE ``data:`` payload.

        Raises:
            UpstreamProtocolError: the payload is not valid JSON (sticky).
            StreamStateError: called after :meth:`flush` or after an exception.
        """
        state = self._state
        if state not in _LIVE:
            if state is _DState.CLOSED or state is _DState.ERROR:
                raise StreamStateError(f"StreamDecoder.feed called {state.value}")
            return []  # after message_stop or an error event: ignored
        try:
            event = _DECODE_EVENT(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            if not data.strip():
                return []  # a blank payload (checked only here: it is rare)
            self._state = _DState.ERROR
            raise UpstreamProtocolError(f"upstream stream event is not valid: {exc}") from None
        kind = event.type
        # Hot path: a text, thinking or tool-argument delta for the open block.
        index = event.index
        if kind == "content_block_delta" and index is not None and index == self._open:
            delta = event.delta or _Delta()
            dtype = delta.type
            if dtype == "text_delta" and delta.text and self._kind == "text":
                if self._pending_text is None:
                    return [ev.TextDelta(index=self._map[index], text=delta.text)]
                opened: list[ev.Event] = []
                self._open_block(ir.TextBlock(text=""), opened)
                opened.append(ev.TextDelta(index=self._map[index], text=delta.text))
                return opened
            if dtype == "thinking_delta" and delta.thinking and self._thinking is not None:
                self._thinking.append(delta.thinking)
                return [ev.ThinkingDelta(index=self._map[index], thinking=delta.thinking)]
            if dtype == "input_json_delta" and delta.partial_json and self._kind == "tool":
                return [ev.InputJsonDelta(index=self._map[index], partial_json=delta.partial_json)]
        out: list[ev.Event] = []
        if state is _DState.IDLE and kind != "error":
            self._start(event, out)
        handler = _HANDLERS.get(kind)
        if handler is None:
            logger.debug("upstream event %.40r ignored", kind)
        else:
            handler(self, event, data, out)
        return out

    def flush(self) -> list[ev.Event]:
        """End of the upstream stream: complete the answer or report truncation."""
        state = self._state
        if state is _DState.CLOSED or state is _DState.ERROR:
            raise StreamStateError(f"StreamDecoder.flush called {state.value}")
        out: list[ev.Event] = []
        if state is _DState.ANSWERED:
            out.append(ev.MessageStop())
        elif state is _DState.IDLE or state is _DState.STREAMING:
            if state is _DState.IDLE:
                self._start(_UpstreamEvent(), out)
            self._close_open(out)
            out.append(ev.StreamError(kind=ErrorKind.API_ERROR, message=TRUNCATED_MESSAGE))
        self._state = _DState.CLOSED
        return out

    # -- events ---------------------------------------------------------------------------

    def _start(self, event: _UpstreamEvent, out: list[ev.Event]) -> None:
        upstream = event.message.usage if event.message is not None else None
        self._start_usage = usage_to_ir(upstream, input_estimate=self._estimate)
        out.append(ev.MessageStart(id=self._id, model=self._model, usage=self._start_usage))
        self._state = _DState.STREAMING

    def _on_message_start(
        self, event: _UpstreamEvent, data: bytes | str, out: list[ev.Event]
    ) -> None:
        pass  # handled by _start (a repeated message_start is ignored)

    def _on_block_start(
        self, event: _UpstreamEvent, data: bytes | str, out: list[ev.Event]
    ) -> None:
        if self._state is not _DState.STREAMING or event.index is None:
            return
        self._close_open(out)
        raw = event.content_block
        try:
            block = _block_to_ir(raw, "content_block", event.index)
        except ClientRequestError as exc:
            raise self._broken(exc.message) from None
        self._open = event.index
        if isinstance(block, ir.TextBlock) and not block.text:
            self._pending_text = event.index  # opens at its first non-empty text
            self._kind = "text"
            return
        if isinstance(block, ir.ThinkingBlock):
            block = ir.ThinkingBlock(thinking="", signature=None)
        self._open_block(block, out)

    def _on_block_delta(
        self, event: _UpstreamEvent, data: bytes | str, out: list[ev.Event]
    ) -> None:
        delta, upstream = event.delta, event.index
        if delta is None or upstream is None or upstream != self._open:
            logger.debug("delta for a block that is not open ignored")
            return
        if self._pending_text is not None:
            return  # an empty text block only opens at a non-empty text_delta (fast path)
        index = self._map[upstream]
        if delta.type == "input_json_delta" and delta.partial_json is not None:
            if self._kind != "tool":
                logger.debug("input_json_delta for a block that takes none ignored")
                return
            if delta.partial_json:
                out.append(ev.InputJsonDelta(index=index, partial_json=delta.partial_json))
        elif delta.type == "signature_delta" and delta.signature and self._thinking is not None:
            out.append(ev.SignatureDelta(index=index, signature=delta.signature))
            self._thinking = None  # signed
        elif delta.type not in ("text_delta", "thinking_delta"):
            logger.debug("upstream delta %.40r ignored", delta.type)

    def _on_block_stop(self, event: _UpstreamEvent, data: bytes | str, out: list[ev.Event]) -> None:
        if event.index == self._open:
            self._close_open(out)

    def _on_message_delta(
        self, event: _UpstreamEvent, data: bytes | str, out: list[ev.Event]
    ) -> None:
        if self._state is not _DState.STREAMING:
            return
        self._close_open(out)
        delta = event.delta or _Delta()
        reason = stop_reason_to_ir(delta.stop_reason) or self._default_reason()
        u = event.usage or aw.UsageIn()
        start = self._start_usage
        usage = ir.Usage(
            input_tokens=u.input_tokens or start.input_tokens,
            output_tokens=u.output_tokens or 0,
            cache_read_input_tokens=u.cache_read_input_tokens or start.cache_read_input_tokens,
            cache_creation_input_tokens=(
                u.cache_creation_input_tokens or start.cache_creation_input_tokens
            ),
            reasoning_tokens=(
                u.output_tokens_details.thinking_tokens if u.output_tokens_details else None
            ),
        )
        out.append(
            ev.MessageDelta(stop_reason=reason, usage=usage, stop_sequence=delta.stop_sequence)
        )
        self._state = _DState.ANSWERED

    def _on_message_stop(
        self, event: _UpstreamEvent, data: bytes | str, out: list[ev.Event]
    ) -> None:
        if self._state is _DState.STREAMING:
            self._on_message_delta(_UpstreamEvent(), data, out)
        out.append(ev.MessageStop())
        self._state = _DState.DONE

    def _on_error(self, event: _UpstreamEvent, data: bytes | str, out: list[ev.Event]) -> None:
        err = error_from_upstream(200, data.encode() if isinstance(data, str) else data)
        self.error = err
        if self._state is _DState.IDLE:
            self._start(_UpstreamEvent(), out)
        self._close_open(out)
        out.append(ev.StreamError(kind=err.kind, message=err.message))
        self._state = _DState.FAILED

    # -- blocks ---------------------------------------------------------------------------

    def _open_block(self, block: ir.Block, out: list[ev.Event]) -> None:
        upstream = self._open
        assert upstream is not None
        self._pending_text = None
        self._map[upstream] = index = self._next
        self._next += 1
        self._thinking = [] if isinstance(block, ir.ThinkingBlock) else None
        self._kind = _DELTA_KINDS.get(type(block))
        if isinstance(block, ir.ToolUseBlock):
            self._tool_blocks += 1
        out.append(ev.BlockStart(index=index, block=block))

    def _close_open(self, out: list[ev.Event]) -> None:
        upstream = self._open
        if upstream is None:
            return
        self._open = None
        self._kind = None
        if self._pending_text is not None:
            self._pending_text = None  # an empty text block: never opened, dropped
            return
        index = self._map.pop(upstream)
        if self._thinking is not None:  # unsigned thinking: sign it as the GLM path does
            signature = ids.thinking_signature("".join(self._thinking))
            out.append(ev.SignatureDelta(index=index, signature=signature))
            self._thinking = None
        out.append(ev.BlockStop(index=index))

    def _default_reason(self) -> ir.StopReason:
        return ir.StopReason.TOOL_USE if self._tool_blocks else ir.StopReason.END_TURN

    def _broken(self, message: str) -> UpstreamProtocolError:
        self._state = _DState.ERROR
        return UpstreamProtocolError(f"upstream stream event is not valid: {message}")


_DELTA_KINDS: dict[type, str] = {
    ir.TextBlock: "text",
    ir.ThinkingBlock: "thinking",
    ir.ToolUseBlock: "tool",
    ir.ServerToolUseBlock: "tool",
}

_HANDLERS = {
    "message_start": StreamDecoder._on_message_start,
    "content_block_start": StreamDecoder._on_block_start,
    "content_block_delta": StreamDecoder._on_block_delta,
    "content_block_stop": StreamDecoder._on_block_stop,
    "message_delta": StreamDecoder._on_message_delta,
    "message_stop": StreamDecoder._on_message_stop,
    "error": StreamDecoder._on_error,
}
