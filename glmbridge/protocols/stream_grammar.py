"""What every stream grammar validator is built on: the machine, the framing, the errors.

Theory of operation
-------------------
A validator (``protocols/<name>/grammar.py``) reduces a stream to *steps* and drives a
:class:`GrammarMachine`. Legal orderings are data: the subclass's ``TRANSITIONS`` maps
``(state, step)`` to the next state, as in h11's ``EVENT_TRIGGERED_TRANSITIONS``; a pair
missing from the table is an ordering violation, explained by the subclass's
:meth:`GrammarMachine.order_detail`. The per-step rules (shapes, indices, usage, what
the stream folds into) are the subclass's own methods. A stream that ends outside
``FINAL_STATES`` is truncated.

Written once here: the position bookkeeping and the error every rule raises
(:class:`StreamGrammarError`, ``"event 5 (chunk): <rule>: <detail>"``), the SSE framing
(:func:`sse_frames`), the ``event:``-named JSON frames of Anthropic and Responses
(:func:`typed_frame`), and the field checks several protocols share (usage counts,
string fields, JSON-object tool arguments). Every check reads the JSON without trusting
its shape: a field of the wrong type is a rule violation, never a ``KeyError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any, ClassVar, NoReturn

import msgspec

from glmbridge._tool_args import JSON_DECODER
from glmbridge.errors import ErrorKind, GlmbridgeError, UpstreamProtocolError
from glmbridge.sse import ServerSentEvent, SSEDecoder

__all__ = [
    "GrammarMachine",
    "StreamGrammarError",
    "chunk_transitions",
    "count_at",
    "is_json_object",
    "sse_frames",
    "string_fields",
    "typed_frame",
    "usage_counts",
    "validate_frames",
]


class StreamGrammarError(GlmbridgeError):
    """A stream breaks its protocol's event grammar.

    Attributes:
        rule: a short name of the broken rule (``"block index order"``).
        position: the 0-based number of the offending event (``None``: end of stream).
    """

    kind = ErrorKind.API_ERROR

    def __init__(self, message: str, *, rule: str = "", position: int | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.position = position


def describe(state: object) -> str:
    """How a state reads in a message (an Enum's value, or the state itself)."""
    return str(state.value) if isinstance(state, Enum) else str(state)


class GrammarMachine:
    """A validator's state machine: the transition table, positions and failures.

    Subclasses set ``TRANSITIONS``, ``FINAL_STATES`` and ``UNFINISHED`` (how a
    truncated stream's message ends), and override :meth:`order_detail`.
    """

    TRANSITIONS: ClassVar[Mapping[tuple[Any, str], Any]]
    FINAL_STATES: ClassVar[frozenset[Any]]
    UNFINISHED: ClassVar[str]

    def __init__(self, state: Any, *, position: int = -1, name: str = "") -> None:
        self.state = state
        self.position = position
        self.name = name
        self.identity: tuple[Any, ...] | None = None  # what every chunk repeats (id, model)

    def fail(self, rule: str, detail: str, *, at_end: bool = False) -> NoReturn:
        """Raise :class:`StreamGrammarError` for the current event (or the end)."""
        where = "end of stream" if at_end else f"event {self.position} ({self.name})"
        position = None if at_end else self.position
        raise StreamGrammarError(f"{where}: {rule}: {detail}", rule=rule, position=position)

    def advance(self, step: str, kind: str | None = None) -> None:
        """Apply the transition table for ``step`` (``kind``: the event type to name in
        an ordering violation, when the step refines it)."""
        new = self.TRANSITIONS.get((self.state, step))
        if new is None:
            self.fail("event order", self.order_detail(step if kind is None else kind))
        self.state = new

    def order_detail(self, kind: str) -> str:
        """Why ``kind`` may not come now (no transition from the current state)."""
        return f"{kind} not allowed {describe(self.state)}"

    def keep_identity(self, keys: tuple[str, ...], values: tuple[Any, ...]) -> None:
        """The first chunk's identity (``values`` of ``keys``: id, model …) must hold on
        every later chunk."""
        if self.identity is None:
            self.identity = values
            return
        for key, before, after in zip(keys, self.identity, values, strict=True):
            if before != after:
                self.fail("chunk identity", f"{key} changed from {before!r} to {after!r}")

    def only_choice(self, items: list[Any], name: str, rule: str) -> dict[str, Any]:
        """``items[0]`` (a one-item list: the caller checked), an object with index 0."""
        item = items[0]
        if not isinstance(item, dict):
            self.fail(rule, f"{name}[0] must be an object")
        index = item.get("index")
        if type(index) is not int or index != 0:
            self.fail(rule, f"{name}[0].index must be 0, got {index!r}")
        return item

    def end(self) -> None:
        """The stream ended: it must be in a final state."""
        if self.state not in self.FINAL_STATES:
            detail = f"ended {describe(self.state)}, {self.UNFINISHED}"
            self.fail("truncated stream", detail, at_end=True)


def chunk_transitions(before: Any, streaming: Any, finished: Any, errored: Any) -> dict[Any, Any]:
    """``chunk* finish-chunk | chunk* error``: the table chat and Gemini chunk streams share
    (a chunk whose candidate or choice has a finish reason is the ``finish chunk``)."""
    return {
        (state, step): after
        for state in (before, streaming)
        for step, after in (("chunk", streaming), ("finish chunk", finished), ("error", errored))
    }


def validate_frames(
    machine: GrammarMachine,
    stream: bytes | Iterable[ServerSentEvent],
    step: Callable[[Any, int, ServerSentEvent], None],
) -> None:
    """Feed every SSE frame of ``stream`` to ``step``, then check the end."""
    for position, frame in enumerate(sse_frames(stream)):
        step(machine, position, frame)
    machine.end()


def sse_frames(stream: bytes | Iterable[ServerSentEvent]) -> Iterable[ServerSentEvent]:
    """Decoded frames: bytes go through :class:`SSEDecoder`; frames pass through."""
    if not isinstance(stream, (bytes, bytearray, memoryview)):
        return stream
    decoder = SSEDecoder()
    try:
        return decoder.feed(bytes(stream)) + decoder.flush()
    except UpstreamProtocolError as exc:
        raise StreamGrammarError(f"sse framing: {exc.message}", rule="sse framing") from exc


def typed_frame(
    machine: GrammarMachine, frame: ServerSentEvent, protocol: str
) -> tuple[str, dict[str, Any]]:
    """``(type, body)`` of an ``event:``-named frame whose JSON ``type`` is that name
    (Anthropic and Responses streams; neither has a ``[DONE]``)."""
    if frame.data.strip() == "[DONE]":
        machine.fail("no [DONE]", f"{protocol} streams have no [DONE] sentinel")
    try:
        body = msgspec.json.decode(frame.data)
    except msgspec.DecodeError:
        machine.fail("json body", "data is not valid JSON")
    kind = body.get("type") if isinstance(body, dict) else None
    if not isinstance(kind, str):
        machine.fail("json body", "data must be a JSON object with a string type")
    if frame.event != kind:
        machine.fail("event name", f"event: {frame.event!r} differs from JSON type {kind!r}")
    return kind, body


_MISSING: Any = object()


def string_fields(
    machine: GrammarMachine,
    obj: dict[str, Any],
    fields: Mapping[str, bool],
    *,
    rule: str,
    prefix: str = "",
) -> None:
    """Each key of ``fields`` is in ``obj`` as a string (or ``null``, when its flag says
    it may be), else a ``rule`` violation naming ``prefix + key`` (error objects)."""
    for key, nullable in fields.items():
        value = obj.get(key, _MISSING)
        if not (isinstance(value, str) or (nullable and value is None)):
            kind = "a string or null" if nullable else "a string"
            machine.fail(rule, f"{prefix}{key} must be {kind}")


def count_at(value: Any, path: str) -> int | None:
    """The integer >= 0 at the dotted ``path`` in ``value``, or ``None`` when there is none."""
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value if type(value) is int and value >= 0 else None


def usage_counts(
    machine: GrammarMachine,
    usage: Any,
    paths: Iterable[str],
    *,
    name: str = "usage",
    optional: Iterable[str] = (),
) -> dict[str, int]:
    """The integers >= 0 at ``paths`` (and at ``optional`` ones, 0 when absent) in
    ``usage``, or a ``usage`` rule violation naming the first missing or wrong one."""
    counts: dict[str, int] = {}
    optional = tuple(optional)
    for path in (*paths, *optional):
        count = count_at(usage, path)
        if count is None and path in optional and not _present(usage, path):
            count = 0
        if count is None:
            machine.fail("usage", f"{name}.{path} must be an integer >= 0")
        counts[path] = count
    return counts


def _present(value: Any, path: str) -> bool:
    *parents, last = path.split(".")
    for key in parents:
        value = value.get(key) if isinstance(value, dict) else None
    return isinstance(value, dict) and last in value


def is_json_object(text: str) -> bool:
    """Whether ``text`` parses as a JSON object (tool arguments)."""
    try:
        return isinstance(JSON_DECODER.decode(text), dict)
    except msgspec.DecodeError:
        return False
