"""Canonical stream events: the IR of a streamed answer.

Stream decoders turn upstream wire chunks into these events; stream encoders turn
them into the client's wire format. The event grammar is Anthropic's (the richest),
and decoders guarantee it, so encoders stay simple::

    MessageStart
      ( BlockStart  (TextDelta | ThinkingDelta | SignatureDelta | InputJsonDelta)*  BlockStop )*
    MessageDelta  MessageStop
    | ... StreamError            (terminal, at any point after MessageStart)

``Ping`` may appear anywhere after ``MessageStart``. Block indices are 0, 1, 2 …
in start order and only one block is open at a time. ``BlockStart.block`` is the
empty shell of the block (``TextBlock(text="")``, ``ThinkingBlock(thinking="")``,
``ToolUseBlock(input={})``); its content arrives in deltas. Usage in
``MessageStart`` is an estimate; ``MessageDelta.usage`` is final and cumulative.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from glmbridge.errors import ErrorKind
from glmbridge.ir import Block, StopReason, Usage

__all__ = [
    "BlockStart",
    "BlockStop",
    "Event",
    "InputJsonDelta",
    "MessageDelta",
    "MessageStart",
    "MessageStop",
    "Ping",
    "SignatureDelta",
    "StreamError",
    "TextDelta",
    "ThinkingDelta",
]


# gc=False: decoded JSON cannot form reference cycles, and untracked instances spare
# the cyclic collector pauses that grow with the request (issue 13, item 3).
class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    """Base of all stream events."""


class MessageStart(_Event, tag="message_start", frozen=True):
    """The answer begins. ``usage.input_tokens`` is an estimate until MessageDelta."""

    id: str
    model: str
    usage: Usage


class _BlockEvent(_Event, frozen=True):
    """Base of the events about one block; ``index`` is its place (0, 1, 2 … in start order)."""

    index: int


class BlockStart(_BlockEvent, tag="content_block_start", frozen=True):
    """Block ``index`` opens; ``block`` is its empty shell."""

    block: Block


class TextDelta(_BlockEvent, tag="text_delta", frozen=True):
    """Text appended to text block ``index``."""

    text: str


class ThinkingDelta(_BlockEvent, tag="thinking_delta", frozen=True):
    """Reasoning appended to thinking block ``index``."""

    thinking: str


class SignatureDelta(_BlockEvent, tag="signature_delta", frozen=True):
    """The signature of thinking block ``index`` (once, just before its stop)."""

    signature: str


class InputJsonDelta(_BlockEvent, tag="input_json_delta", frozen=True):
    """A fragment of tool block ``index``'s JSON arguments (concatenate them)."""

    partial_json: str


class BlockStop(_BlockEvent, tag="content_block_stop", frozen=True):
    """Block ``index`` is complete."""


class MessageDelta(_Event, tag="message_delta", frozen=True):
    """The answer's final stop reason and cumulative usage (exactly once).

    Decoders always set ``stop_reason``, and ``usage`` is complete: input and cache
    counts are copied into it, not only ``output_tokens``.
    """

    stop_reason: StopReason
    usage: Usage
    stop_sequence: str | None = None


class MessageStop(_Event, tag="message_stop", frozen=True):
    """The answer is complete; nothing follows."""


class Ping(_Event, tag="ping", frozen=True):
    """Keep-alive; carries nothing."""


class StreamError(_Event, tag="error", frozen=True):
    """The upstream failed after the stream began; terminal."""

    kind: ErrorKind
    message: str


Event: TypeAlias = (
    MessageStart
    | BlockStart
    | TextDelta
    | ThinkingDelta
    | SignatureDelta
    | InputJsonDelta
    | BlockStop
    | MessageDelta
    | MessageStop
    | Ping
    | StreamError
)
