"""The IR reducer: a stream of canonical events folded into one :class:`ir.Response`.

Theory of operation
-------------------
:class:`Accumulator` is a small state machine over the grammar documented in
:mod:`glmbridge.events`. ``MessageStart`` gives the id and model; each
``BlockStart`` opens a slot holding the block's empty shell plus a list of string
fragments; deltas append to the open slot (text, thinking, or tool JSON) and a
``SignatureDelta`` sets the thinking signature; ``BlockStop`` closes the slot and
builds the final block (tool JSON parsed, ``""`` meaning ``{}``). ``MessageDelta``
carries the stop reason and the final cumulative usage; ``MessageStop`` completes.

Errors: an out-of-order event is our own decoder's bug (:class:`StreamStateError`);
bad content from the upstream (tool arguments that are not a JSON object, a stream
that ends before ``MessageStop``) is :class:`UpstreamProtocolError`; a
``StreamError`` event re-raises as the :class:`UpstreamError` it describes. Errors
are sticky: after a raise every call raises :class:`StreamStateError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any, NoReturn

import msgspec

from glmbridge import events as ev
from glmbridge import ir
from glmbridge._tool_args import JSON_DECODER
from glmbridge.errors import StreamStateError, UpstreamError, UpstreamProtocolError

__all__ = ["Accumulator", "accumulate"]


class _State(Enum):
    """Where the accumulator is in the event grammar."""

    BEFORE_START = "before MessageStart"
    BETWEEN_BLOCKS = "between blocks"
    IN_BLOCK = "in a block"
    AFTER_DELTA = "after MessageDelta"
    DONE = "after MessageStop"
    ERROR = "after an error"


# Which delta event may extend which block shell.
_DELTA_TARGETS: dict[type, tuple[type, ...]] = {
    ev.TextDelta: (ir.TextBlock,),
    ev.ThinkingDelta: (ir.ThinkingBlock,),
    ev.SignatureDelta: (ir.ThinkingBlock,),
    ev.InputJsonDelta: (ir.ToolUseBlock, ir.ServerToolUseBlock),
}
_DECODER = JSON_DECODER  # tool input: numbers beyond the float range kept exactly


class Accumulator:
    """Fold IR stream events into a response: ``feed(event)`` each, then ``flush()``."""

    def __init__(self) -> None:
        self._state = _State.BEFORE_START
        self._id = ""
        self._model = ""
        self._content: list[ir.Block] = []
        self._shell: ir.Block | None = None  # the open block's BlockStart shell
        self._parts: list[str] = []  # text / thinking / JSON fragments of the open block
        self._signature: str | None = None
        self._stop_reason: ir.StopReason | None = None
        self._stop_sequence: str | None = None
        self._usage = ir.Usage()

    def feed(self, event: ev.Event) -> None:
        """Apply one event.

        Raises:
            UpstreamError: ``event`` is a :class:`~glmbridge.events.StreamError`.
            UpstreamProtocolError: a tool's arguments are not a JSON object.
            StreamStateError: the event is out of order, or the machine is closed.
        """
        state = self._state
        if state is _State.ERROR or state is _State.DONE:
            self._fail(StreamStateError(f"Accumulator.feed() called {state.value}"))
        if isinstance(event, ev.Ping):
            if state is _State.BEFORE_START:
                self._out_of_order(event)
            return
        if isinstance(event, ev.StreamError):
            self._fail(UpstreamError(event.message, kind=event.kind))
        handler = _HANDLERS.get((state, type(event)))
        if handler is None:
            self._out_of_order(event)
        handler(self, event)

    def flush(self) -> ir.Response:
        """Return the complete response.

        Raises:
            UpstreamProtocolError: the stream ended before ``MessageStop``.
            StreamStateError: called again, or after an error.
        """
        state = self._state
        if state is _State.ERROR:
            self._fail(StreamStateError("Accumulator.flush() called after an error"))
        if state is not _State.DONE:
            self._fail(UpstreamProtocolError(f"stream ended {state.value}, before MessageStop"))
        self._state = _State.ERROR  # one response per accumulator: later calls are bugs
        return ir.Response(
            id=self._id,
            model=self._model,
            content=self._content,
            stop_reason=self._stop_reason,
            stop_sequence=self._stop_sequence,
            usage=self._usage,
        )

    # -- handlers, one per legal (state, event type) ---------------------------------------

    def _message_start(self, event: ev.MessageStart) -> None:
        self._id, self._model, self._usage = event.id, event.model, event.usage
        self._state = _State.BETWEEN_BLOCKS

    def _block_start(self, event: ev.BlockStart) -> None:
        if event.index != len(self._content):
            self._fail(
                StreamStateError(f"BlockStart index {event.index}, expected {len(self._content)}")
            )
        self._shell = event.block
        self._parts = []
        self._signature = None
        self._state = _State.IN_BLOCK

    def _delta(
        self, event: ev.TextDelta | ev.ThinkingDelta | ev.SignatureDelta | ev.InputJsonDelta
    ) -> None:
        if event.index != len(self._content):
            self._fail(
                StreamStateError(
                    f"{type(event).__name__} for block {event.index}, not the open one"
                )
            )
        if not isinstance(self._shell, _DELTA_TARGETS[type(event)]):
            kind = type(self._shell).__name__
            self._fail(StreamStateError(f"{type(event).__name__} in a {kind}"))
        if isinstance(event, ev.TextDelta):
            self._parts.append(event.text)
        elif isinstance(event, ev.ThinkingDelta):
            self._parts.append(event.thinking)
        elif isinstance(event, ev.InputJsonDelta):
            self._parts.append(event.partial_json)
        else:
            self._signature = event.signature  # replaces, as the Anthropic SDK does

    def _block_stop(self, event: ev.BlockStop) -> None:
        if event.index != len(self._content):
            self._fail(StreamStateError(f"BlockStop for block {event.index}, not the open one"))
        self._content.append(self._finish_block())
        self._shell = None
        self._state = _State.BETWEEN_BLOCKS

    def _message_delta(self, event: ev.MessageDelta) -> None:
        self._stop_reason = event.stop_reason
        self._stop_sequence = event.stop_sequence
        self._usage = event.usage  # final and cumulative
        self._state = _State.AFTER_DELTA

    def _message_stop(self, event: ev.MessageStop) -> None:
        self._state = _State.DONE

    # -- helpers -----------------------------------------------------------------------

    def _finish_block(self) -> ir.Block:
        """Build the open block from its shell and fragments."""
        shell = self._shell
        replace = msgspec.structs.replace
        if isinstance(shell, ir.TextBlock):
            return replace(shell, text=shell.text + "".join(self._parts))
        if isinstance(shell, ir.ThinkingBlock):
            signature = self._signature if self._signature is not None else shell.signature
            return replace(
                shell, thinking=shell.thinking + "".join(self._parts), signature=signature
            )
        if isinstance(shell, (ir.ToolUseBlock, ir.ServerToolUseBlock)):
            return replace(shell, input=self._tool_input(shell.name))
        assert shell is not None  # the state machine guarantees an open block here
        return shell  # complete blocks (redacted thinking, search results) arrive whole

    def _tool_input(self, name: str) -> dict[str, Any]:
        raw = "".join(self._parts)
        if not raw.strip():
            return {}
        try:
            value = _DECODER.decode(raw)
        except msgspec.DecodeError:
            self._fail(UpstreamProtocolError(f"arguments of tool {name!r} are not valid JSON"))
        if not isinstance(value, dict):
            self._fail(UpstreamProtocolError(f"arguments of tool {name!r} are not a JSON object"))
        return value

    def _out_of_order(self, event: ev.Event) -> NoReturn:
        self._fail(StreamStateError(f"can't handle {type(event).__name__} {self._state.value}"))

    def _fail(self, exc: Exception) -> NoReturn:
        self._state = _State.ERROR
        raise exc


_HANDLERS: dict[tuple[_State, type], Any] = {
    (_State.BEFORE_START, ev.MessageStart): Accumulator._message_start,
    (_State.BETWEEN_BLOCKS, ev.BlockStart): Accumulator._block_start,
    **{(_State.IN_BLOCK, kind): Accumulator._delta for kind in _DELTA_TARGETS},
    (_State.IN_BLOCK, ev.BlockStop): Accumulator._block_stop,
    (_State.BETWEEN_BLOCKS, ev.MessageDelta): Accumulator._message_delta,
    (_State.AFTER_DELTA, ev.MessageStop): Accumulator._message_stop,
}


def accumulate(events: Iterable[ev.Event]) -> ir.Response:
    """Fold a complete event stream into the response it describes.

    Raises:
        UpstreamError: the stream holds a ``StreamError`` (its kind and message kept).
        UpstreamProtocolError: the stream is truncated or a tool's JSON is invalid.
        StreamStateError: the events are out of order.
    """
    acc = Accumulator()
    for event in events:
        acc.feed(event)
    return acc.flush()
