"""The Anthropic stream grammar validator (wire SSE and canonical IR events).

Theory of operation
-------------------
Both entry points reduce their input to a sequence of *steps* and drive one state
machine, :class:`_Machine`:

* :func:`validate_anthropic_stream` takes Anthropic SSE bytes (or already-decoded
  :class:`~glmbridge.sse.ServerSentEvent` frames). It first checks the framing rules
  of the wire (JSON body, ``event:`` name equal to the JSON ``type``, no ``[DONE]``),
  then pulls the fields each rule needs out of the JSON without trusting its shape.
* :func:`validate_event_sequence` takes :mod:`glmbridge.events` values and maps each
  to the same step.

Legal orderings are data: ``_TRANSITIONS`` maps ``(state, event type)`` to the next
state, as in h11's ``EVENT_TRIGGERED_TRANSITIONS``. A pair missing from the table is
an ordering violation. The per-event rules that need more than the state (block
indices, delta/block type agreement, tool JSON, usage, stop reason) are checked in
the step methods. The accepted grammar::

    message_start
      ( content_block_start  content_block_delta*  content_block_stop )*
    message_delta  message_stop
    | message_start ... error            (terminal at any point after message_start)

``ping`` may appear anywhere after ``message_start`` and before the end. Block
indices are 0, 1, 2 … in start order, one block open at a time. The stream must end
with ``message_stop`` or ``error``; anything else is a truncated stream.

Every violation raises :class:`StreamGrammarError` naming the rule and the 0-based
position of the offending event (``event 5 (content_block_delta): …``). The machine's
bookkeeping and the SSE framing are :mod:`glmbridge.protocols.stream_grammar`'s, shared
with the other protocols' validators (which this module re-exports, for the callers of
its old home ``glmbridge.grammar``).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any

import msgspec

from glmbridge import events as ev
from glmbridge import ir
from glmbridge._tool_args import JSON_DECODER
from glmbridge.protocols.stream_grammar import (
    GrammarMachine,
    StreamGrammarError,
    count_at,
    is_json_object,
    sse_frames,
    typed_frame,
    usage_counts,
    validate_frames,
)
from glmbridge.sse import ServerSentEvent

__all__ = [
    "StreamGrammarError",
    "count_at",
    "is_json_object",
    "sse_frames",
    "typed_frame",
    "usage_counts",
    "validate_anthropic_stream",
    "validate_event_sequence",
]


class _State(Enum):
    """Where the machine is in the grammar."""

    BEFORE_START = "before message_start"
    BETWEEN_BLOCKS = "between blocks"
    IN_BLOCK = "in a block"
    AFTER_DELTA = "after message_delta"
    DONE = "after message_stop"
    ERRORED = "after error"


_S = _State
_OPEN_STATES = (_S.BETWEEN_BLOCKS, _S.IN_BLOCK, _S.AFTER_DELTA)

# (state, event type) -> next state. A missing pair is an ordering violation.
_TRANSITIONS: dict[tuple[_State, str], _State] = {
    (_S.BEFORE_START, "message_start"): _S.BETWEEN_BLOCKS,
    (_S.BETWEEN_BLOCKS, "content_block_start"): _S.IN_BLOCK,
    (_S.IN_BLOCK, "content_block_delta"): _S.IN_BLOCK,
    (_S.IN_BLOCK, "content_block_stop"): _S.BETWEEN_BLOCKS,
    (_S.BETWEEN_BLOCKS, "message_delta"): _S.AFTER_DELTA,
    (_S.AFTER_DELTA, "message_stop"): _S.DONE,
    **{(state, "ping"): state for state in _OPEN_STATES},
    **{(state, "error"): _S.ERRORED for state in _OPEN_STATES},
}

_KNOWN_TYPES = frozenset(kind for _, kind in _TRANSITIONS)
_FINAL_STATES = frozenset({_S.DONE, _S.ERRORED})

# delta type -> the block types it may extend.
_DELTA_BLOCKS: dict[str, frozenset[str]] = {
    "text_delta": frozenset({"text"}),
    "citations_delta": frozenset({"text"}),
    "input_json_delta": frozenset({"tool_use", "server_tool_use"}),
    "thinking_delta": frozenset({"thinking"}),
    "signature_delta": frozenset({"thinking"}),
}
_TOOL_BLOCKS = _DELTA_BLOCKS["input_json_delta"]
# delta type -> the payload field that must be a string (non-empty where noted).
_DELTA_FIELD = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
    "signature_delta": "signature",
}
_NON_EMPTY_DELTAS = frozenset({"text_delta", "thinking_delta"})
_STOP_REASONS = frozenset(reason.value for reason in ir.StopReason)


class _Machine(GrammarMachine):
    """The grammar state machine shared by the wire and the IR validators."""

    TRANSITIONS = _TRANSITIONS
    FINAL_STATES = _FINAL_STATES
    UNFINISHED = "not after message_stop or error"

    def __init__(self) -> None:
        super().__init__(_S.BEFORE_START)
        self.next_index = 0  # the index the next content_block_start must carry
        self.block_type = ""  # type of the open block
        self.json_parts: list[str] = []  # partial_json of the open tool block

    def step(self, position: int, kind: str) -> None:
        """Apply the transition table for the event ``position``, of type ``kind``."""
        self.position, self.name = position, kind
        if kind not in _KNOWN_TYPES:
            self.fail("unknown event type", f"{kind!r} is not an Anthropic stream event")
        self.advance(kind)

    def order_detail(self, kind: str) -> str:
        if self.state is _S.BEFORE_START:
            return f"the first event must be message_start, got {kind}"
        if kind == "message_start":
            return "message_start may appear only once, as the first event"
        if self.state in _FINAL_STATES:
            return f"nothing may follow the terminal event, got {kind}"
        if kind == "content_block_start":
            if self.state is _S.IN_BLOCK:
                return f"block {self.next_index - 1} is still open"
            return "no block may start after message_delta"
        if kind in ("content_block_delta", "content_block_stop"):
            return f"{kind} with no open block"
        if kind == "message_delta":
            if self.state is _S.IN_BLOCK:
                return f"message_delta while block {self.next_index - 1} is open"
            return "message_delta may appear only once"
        return f"{kind} not allowed {self.state.value}"

    def block_start(self, index: Any, block_type: Any, tool_input: Any) -> None:
        if type(index) is not int or index != self.next_index:
            self.fail("block index order", f"expected index {self.next_index}, got {index!r}")
        if not isinstance(block_type, str):
            self.fail("block type", "content_block has no string type")
        if block_type in _TOOL_BLOCKS and tool_input != {}:
            self.fail("tool block start", "a tool block must start with input {}")
        self.next_index += 1
        self.block_type = block_type
        self.json_parts = []

    def _check_open(self, index: Any, rule: str) -> None:
        if type(index) is not int or index != self.next_index - 1:
            self.fail(rule, f"block {self.next_index - 1} is the open block, got index {index!r}")

    def delta(self, index: Any, delta_type: str, payload: Any) -> None:
        self._check_open(index, "delta for a block that is not open")
        allowed = _DELTA_BLOCKS.get(delta_type)
        if allowed is None:
            self.fail("delta type", f"unknown delta type {delta_type!r}")
        if self.block_type not in allowed:
            self.fail("delta type", f"{delta_type} in a {self.block_type} block")
        if delta_type == "citations_delta":
            if not isinstance(payload, dict):
                self.fail("delta payload", "citations_delta needs a citation object")
            return
        if not isinstance(payload, str):
            self.fail("delta payload", f"{delta_type}.{_DELTA_FIELD[delta_type]} must be a string")
        if not payload and delta_type in _NON_EMPTY_DELTAS:
            self.fail("empty delta", f"{delta_type} must not be empty")
        if delta_type == "input_json_delta":
            self.json_parts.append(payload)

    def block_stop(self, index: Any) -> None:
        self._check_open(index, "stop for a block that is not open")
        if self.block_type in _TOOL_BLOCKS:
            raw = "".join(self.json_parts)
            if raw.strip():  # no arguments (or only blanks) means {}
                try:
                    JSON_DECODER.decode(raw)  # 1e400 is valid JSON, like Anthropic's parsers say
                except msgspec.DecodeError:
                    self.fail("tool input json", "the concatenated partial_json is not valid JSON")
        self.json_parts = []

    def message_delta(self, stop_reason: Any, output_tokens: Any) -> None:
        if type(output_tokens) is not int:
            self.fail("message_delta usage", "usage.output_tokens must be an integer")
        if not isinstance(stop_reason, str) or stop_reason not in _STOP_REASONS:
            self.fail("stop reason", f"delta.stop_reason {stop_reason!r} is not an Anthropic value")


# -- the wire (SSE + JSON) ------------------------------------------------------------


def validate_anthropic_stream(stream: bytes | Iterable[ServerSentEvent]) -> None:
    """Check that an Anthropic Messages SSE stream follows the event grammar.

    Args:
        stream: the raw SSE bytes, or decoded frames.

    Raises:
        StreamGrammarError: the first rule broken, with the event's position.
    """
    validate_frames(_Machine(), stream, _wire_step)


def _wire_step(machine: _Machine, position: int, frame: ServerSentEvent) -> None:
    """Check one SSE frame's framing, then feed it to the machine."""
    machine.position, machine.name = position, frame.event or "?"
    kind, body = typed_frame(machine, frame, "Anthropic")
    machine.step(position, kind)
    _WIRE_RULES[kind](machine, body)


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (missing fields then fail)."""
    return value if isinstance(value, dict) else {}


def _wire_message_start(machine: _Machine, body: dict[str, Any]) -> None:
    message = body.get("message")
    if not isinstance(message, dict) or message.get("content", []) != []:
        machine.fail("message_start", "message must be an object with empty content")


def _wire_block_start(machine: _Machine, body: dict[str, Any]) -> None:
    block = _obj(body.get("content_block"))
    machine.block_start(body.get("index"), block.get("type"), block.get("input"))


def _wire_delta(machine: _Machine, body: dict[str, Any]) -> None:
    delta = _obj(body.get("delta"))
    kind = delta.get("type")
    kind = kind if isinstance(kind, str) else repr(kind)  # unhashable JSON must not crash
    field = "citation" if kind == "citations_delta" else _DELTA_FIELD.get(kind, "")
    machine.delta(body.get("index"), kind, delta.get(field))


def _wire_message_delta(machine: _Machine, body: dict[str, Any]) -> None:
    machine.message_delta(
        _obj(body.get("delta")).get("stop_reason"), _obj(body.get("usage")).get("output_tokens")
    )


def _wire_error(machine: _Machine, body: dict[str, Any]) -> None:
    if not isinstance(_obj(body.get("error")).get("type"), str):
        machine.fail("error event", "error must carry an object with a string type")


_WIRE_RULES = {
    "message_start": _wire_message_start,
    "content_block_start": _wire_block_start,
    "content_block_delta": _wire_delta,
    "content_block_stop": lambda m, body: m.block_stop(body.get("index")),
    "message_delta": _wire_message_delta,
    "message_stop": lambda m, body: None,
    "ping": lambda m, body: None,
    "error": _wire_error,
}


# -- canonical IR events --------------------------------------------------------------


def validate_event_sequence(events: Iterable[ev.Event]) -> None:
    """Check that IR stream events follow the grammar documented in :mod:`glmbridge.events`.

    The rules are the wire rules minus framing (used to test stream decoders).

    Raises:
        StreamGrammarError: the first rule broken, with the event's position.
    """
    machine = _Machine()
    for position, event in enumerate(events):
        kind = _IR_KIND.get(type(event))
        if kind is None:
            machine.position, machine.name = position, type(event).__name__
            machine.fail("unknown event type", f"{type(event).__name__} is not a stream event")
        machine.step(position, kind)
        _ir_step(machine, event)
    machine.end()


_IR_KIND: dict[type, str] = {
    ev.MessageStart: "message_start",
    ev.BlockStart: "content_block_start",
    ev.TextDelta: "content_block_delta",
    ev.ThinkingDelta: "content_block_delta",
    ev.SignatureDelta: "content_block_delta",
    ev.InputJsonDelta: "content_block_delta",
    ev.BlockStop: "content_block_stop",
    ev.MessageDelta: "message_delta",
    ev.MessageStop: "message_stop",
    ev.Ping: "ping",
    ev.StreamError: "error",
}


def _ir_step(machine: _Machine, event: ev.Event) -> None:
    """Apply the per-event rules to one IR event (its transition already done)."""
    if isinstance(event, ev.BlockStart):
        block = event.block
        tool_input = (
            block.input if isinstance(block, (ir.ToolUseBlock, ir.ServerToolUseBlock)) else None
        )
        machine.block_start(event.index, type(block).__struct_config__.tag, tool_input)
    elif isinstance(event, ev.TextDelta):
        machine.delta(event.index, "text_delta", event.text)
    elif isinstance(event, ev.ThinkingDelta):
        machine.delta(event.index, "thinking_delta", event.thinking)
    elif isinstance(event, ev.SignatureDelta):
        machine.delta(event.index, "signature_delta", event.signature)
    elif isinstance(event, ev.InputJsonDelta):
        machine.delta(event.index, "input_json_delta", event.partial_json)
    elif isinstance(event, ev.BlockStop):
        machine.block_stop(event.index)
    elif isinstance(event, ev.MessageDelta):
        reason = event.stop_reason.value if event.stop_reason is not None else None
        machine.message_delta(reason, event.usage.output_tokens)
