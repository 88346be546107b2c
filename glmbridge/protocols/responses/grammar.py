"""The OpenAI Responses stream grammar validator (what our Responses encoder promises).

Theory of operation
-------------------
:func:`validate_responses_stream` takes the SSE bytes of a ``POST /v1/responses``
stream (or already-decoded :class:`~glmbridge.sse.ServerSentEvent` frames), splits
them with :class:`~glmbridge.sse.SSEDecoder` (SSE comments vanish there), checks the
framing of each frame (JSON object, ``event:`` name equal to the JSON ``type``, no
``[DONE]``, ``sequence_number`` equal to the frame's position) and drives one state
machine, :class:`_Machine`. The JSON is read without trusting its shape: a field of
the wrong type is a rule violation, never a ``KeyError``/``TypeError``.

Legal orderings are data: ``_TRANSITIONS`` maps ``(state, step)`` to the next state,
where a step is the event type, refined by the item type for
``response.output_item.added``. The item part of the table is generated from
``_ITEM_FLOWS`` (each item type's inner events, in order; ``*`` marks a repeatable
one). A pair missing from the table is an ordering violation. The accepted grammar::

    response.created  response.in_progress  item*  terminal
    item     = output_item.added  <the item type's inner events>  output_item.done
    terminal = response.completed | response.incomplete | response.failed | error

``error`` may come at any point before the terminal (first, after response.created,
or mid-item: the open item then stays open); so may ``response.failed`` once the
stream has begun. ``response.in_progress`` may repeat anywhere after the first one:
it is the keep-alive (Codex's idle timer ignores SSE comments).

The per-event rules (response objects, indices and ids, part shapes, text
concatenations, tool JSON, item and response output equality, usage) are checked by
the functions in ``_RULES``. A stream that ends without a terminal event is truncated.

Every violation raises
:class:`~glmbridge.protocols.stream_grammar.StreamGrammarError` naming the rule
and the 0-based position of the offending event (``event 5
(response.output_text.delta): …``). Rule names (``StreamGrammarError.rule``):
``sse framing``, ``no [DONE]``, ``json body``, ``event name``, ``sequence number``,
``unknown event type``, ``event order``, ``item type``, ``response object``,
``response status``, ``response identity``, ``output index``, ``item shape``,
``item id``, ``item status``, ``content index``, ``summary index``, ``part``,
``delta``, ``logprobs``, ``done text``, ``tool arguments json``, ``item done``,
``response output``, ``usage``, ``usage total``, ``incomplete details``,
``response error``, ``error event``, ``truncated stream``.

Choices the spec left open (and where the openai SDK types decided): ``output_text.done``
carries ``logprobs`` (a list; required by the SDK's ``ResponseTextDoneEvent``); usage's
``input_tokens_details`` carries ``cache_write_tokens`` as well as ``cached_tokens``
(both required by the SDK's ``InputTokensDetails``); an item may be done with status
``incomplete`` only when the response ends ``response.incomplete`` (then any of its
items may); its ``error.code`` is any string (the real API sends codes beyond the SDK's list).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from glmbridge.protocols.stream_grammar import (
    GrammarMachine,
    is_json_object,
    string_fields,
    typed_frame,
    usage_counts,
    validate_frames,
)
from glmbridge.sse import ServerSentEvent

__all__ = ["validate_responses_stream"]

_BEFORE = "before response.created"
_CREATED = "after response.created"
_BETWEEN = "between items"
_DONE = "after the terminal event"
_ERRORED = "after error"
_FINAL_STATES = frozenset({_DONE, _ERRORED})

_ADDED = "response.output_item.added"
_TERMINAL_STATUS = {
    "response.completed": "completed",
    "response.incomplete": "incomplete",
    "response.failed": "failed",
}

# item type -> (id prefix, its inner events in order; "*" marks a repeatable one).
_ITEM_FLOWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "message": (
        "msg_",
        (
            "response.content_part.added",
            "response.output_text.delta*",
            "response.output_text.done",
            "response.content_part.done",
        ),
    ),
    "reasoning": (
        "rs_",
        (
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta*",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
        ),
    ),
    "function_call": (
        "fc_",
        ("response.function_call_arguments.delta*", "response.function_call_arguments.done"),
    ),
    "custom_tool_call": (
        "ctc_",
        ("response.custom_tool_call_input.delta*", "response.custom_tool_call_input.done"),
    ),
    # a search the gateway ran (glmbridge.server_tools)
    "web_search_call": (
        "ws_",
        (
            "response.web_search_call.in_progress",
            "response.web_search_call.searching",
            "response.web_search_call.completed",
        ),
    ),
}


def _added_step(item_type: str) -> str:
    return f"{_ADDED}({item_type})"


def _build_transitions() -> dict[tuple[str, str], str]:
    """(state, step) -> next state, generated from ``_ITEM_FLOWS``."""
    table = {
        (_BEFORE, "response.created"): _CREATED,
        (_CREATED, "response.in_progress"): _BETWEEN,
        **{(_BETWEEN, kind): _DONE for kind in _TERMINAL_STATUS},
    }
    for item_type, (_, flow) in _ITEM_FLOWS.items():
        state = f"in a {item_type} item after {_ADDED}"
        table[(_BETWEEN, _added_step(item_type))] = state
        for step in flow:
            kind = step.rstrip("*")
            if step.endswith("*"):
                table[(state, kind)] = state
            else:
                table[(state, kind)] = state = f"in a {item_type} item after {kind}"
        table[(state, "response.output_item.done")] = _BETWEEN
    for state in {state for state, _ in table}:
        table[(state, "error")] = _ERRORED
        if state not in (_BEFORE, _CREATED):
            # Keep-alive: Codex's idle timer counts events, not SSE comments.
            table[(state, "response.in_progress")] = state
            # A failure mid-item leaves that item open (it is not in the output).
            table[(state, "response.failed")] = _DONE
    return table


_TRANSITIONS = _build_transitions()
_KNOWN_TYPES = frozenset({kind.partition("(")[0] for _, kind in _TRANSITIONS})

# item type -> the fields an added item must hold exactly.
_ADDED_FIELDS: dict[str, dict[str, Any]] = {
    "message": {"role": "assistant", "content": []},
    "reasoning": {"summary": []},
    "function_call": {"arguments": ""},
    "custom_tool_call": {"input": ""},
    "web_search_call": {},
}
_CALL_ITEMS = frozenset({"function_call", "custom_tool_call"})
# part event -> (its index field, the part type).
_PART_EVENTS = {
    "response.content_part.added": ("content_index", "output_text"),
    "response.content_part.done": ("content_index", "output_text"),
    "response.reasoning_summary_part.added": ("summary_index", "summary_text"),
    "response.reasoning_summary_part.done": ("summary_index", "summary_text"),
}
# delta event -> its index field ("" when none).
_DELTA_EVENTS = {
    "response.output_text.delta": "content_index",
    "response.reasoning_summary_text.delta": "summary_index",
    "response.function_call_arguments.delta": "",
    "response.custom_tool_call_input.delta": "",
}
# done event -> (its index field or "", the field holding the concatenation).
_TEXT_DONE_EVENTS = {
    "response.output_text.done": ("content_index", "text"),
    "response.reasoning_summary_text.done": ("summary_index", "text"),
    "response.function_call_arguments.done": ("", "arguments"),
    "response.custom_tool_call_input.done": ("", "input"),
}
_MISSING: Any = object()
# response field -> (its test, what it must be).
_RESPONSE_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "id": (lambda v: isinstance(v, str) and v.startswith("resp_"), "a string starting 'resp_'"),
    "object": (lambda v: v == "response", "'response'"),
    "created_at": (lambda v: type(v) in (int, float), "a number"),
    "model": (lambda v: isinstance(v, str), "a string"),
    "tools": (lambda v: isinstance(v, list), "a list"),
    "tool_choice": (lambda v: v is not _MISSING, "present"),
    "parallel_tool_calls": (lambda v: isinstance(v, bool), "a boolean"),
}
_USAGE_COUNTS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "input_tokens_details.cached_tokens",
    "input_tokens_details.cache_write_tokens",  # required by the openai SDK's type
    "output_tokens_details.reasoning_tokens",
)
_INCOMPLETE_REASONS = frozenset({"max_output_tokens", "content_filter"})


@dataclass
class _Item:
    """The open output item."""

    index: int
    id: str
    type: str
    added: dict[str, Any]
    parts: list[str] = field(default_factory=list)  # the deltas so far
    text: str = ""  # the concatenation, once its done event checked it
    part: Any = None  # the content_part.done part (message items)


class _Machine(GrammarMachine):
    """The Responses stream state machine."""

    TRANSITIONS = _TRANSITIONS
    FINAL_STATES = _FINAL_STATES
    UNFINISHED = "without a terminal event"

    def __init__(self) -> None:
        super().__init__(_BEFORE)
        self.items: list[dict[str, Any]] = []  # the output_item.done items
        self.item_ids: set[str] = set()
        self.incomplete_items: list[int] = []
        self.open: _Item | None = None
        self.result: dict[str, Any] = {}

    def order_detail(self, kind: str) -> str:
        state, item = self.state, self.open
        if state in _FINAL_STATES:
            return f"nothing may follow the terminal event, got {kind}"
        if state == _BEFORE:
            return f"the first event must be response.created (or error), got {kind}"
        if state == _CREATED:
            return f"response.in_progress must follow response.created, got {kind}"
        if kind in ("response.created", "response.in_progress"):
            return f"{kind} may appear only once, at the start"
        if state == _BETWEEN or item is None:
            return f"{kind} with no open item"
        if kind == _ADDED:
            return f"item {item.index} is still open"
        if kind in _TERMINAL_STATUS:
            return f"{kind} while item {item.index} is open"
        return f"{kind} not allowed {state}"

    def item(self) -> _Item:
        """The open item (the transition table guarantees there is one)."""
        if self.open is None:  # pragma: no cover - unreachable by the table
            self.fail("event order", "no open item")
        return self.open

    def check_index(self, body: dict[str, Any], key: str, expected: int) -> None:
        value = body.get(key)
        if type(value) is not int or value != expected:
            self.fail(key.replace("_", " "), f"expected {key} {expected}, got {value!r}")

    def inner(self, body: dict[str, Any], index_key: str = "") -> _Item:
        """Check an inner event's ``item_id``/``output_index`` (and ``index_key`` == 0)."""
        item = self.item()
        if body.get("item_id") != item.id:
            detail = f"item_id must be the open item's {item.id!r}, got {body.get('item_id')!r}"
            self.fail("item id", detail)
        self.check_index(body, "output_index", item.index)
        if index_key:
            self.check_index(body, index_key, 0)
        return item

    def response(self, body: dict[str, Any], status: str) -> dict[str, Any]:
        """Check a response object's shape, status and identity; return it."""
        response = body.get("response")
        if not isinstance(response, dict):
            self.fail("response object", "response must be an object")
        for key, (test, what) in _RESPONSE_FIELDS.items():
            if not test(response.get(key, _MISSING)):
                self.fail("response object", f"response.{key} must be {what}")
        if response.get("status") != status:
            got = response.get("status")
            self.fail("response status", f"response.status must be {status!r}, got {got!r}")
        identity = (response["id"], response["model"])
        if self.identity is None:
            self.identity = identity
        elif identity != self.identity:
            detail = f"(id, model) changed from {self.identity!r} to {identity!r}"
            self.fail("response identity", detail)
        return response

    def output_and_usage(self, response: dict[str, Any]) -> None:
        """A completed/incomplete response's ``output`` and ``usage``."""
        if response.get("output") != self.items:
            detail = f"response.output differs from the {len(self.items)} output_item.done items"
            self.fail("response output", detail)
        usage = response.get("usage")
        counts = usage_counts(self, usage, _USAGE_COUNTS)
        total, given = counts["input_tokens"] + counts["output_tokens"], counts["total_tokens"]
        if given != total:
            self.fail("usage total", f"total_tokens {given} != input + output tokens {total}")


# -- per-event rules (each runs after its transition) -----------------------------------


def _start(m: _Machine, body: dict[str, Any]) -> None:
    """response.created / response.in_progress."""
    if m.response(body, "in_progress").get("output") != []:
        m.fail("response object", "response.output must be [] before any item")


def _item_added(m: _Machine, body: dict[str, Any]) -> None:
    m.check_index(body, "output_index", len(m.items))
    item = body["item"]  # an object with a known type: _step_of checked it
    kind = item["type"]
    prefix = _ITEM_FLOWS[kind][0]
    item_id = item.get("id")
    if not isinstance(item_id, str) or not item_id.startswith(prefix):
        m.fail("item shape", f"a {kind} item's id must be a string starting {prefix!r}")
    if item_id in m.item_ids:
        m.fail("item id", f"item id {item_id!r} is used twice")
    if item.get("status") != "in_progress":
        m.fail("item status", f"an added item has status 'in_progress', got {item.get('status')!r}")
    for key, expected in _ADDED_FIELDS[kind].items():
        if item.get(key, _MISSING) != expected:
            m.fail("item shape", f"an added {kind} item has {key} {expected!r}")
    for key in ("call_id", "name") if kind in _CALL_ITEMS else ():
        if not isinstance(item.get(key), str) or not item[key]:
            m.fail("item shape", f"a {kind} item needs a non-empty string {key}")
    m.item_ids.add(item_id)
    m.open = _Item(len(m.items), item_id, kind, item)


def _part(m: _Machine, body: dict[str, Any]) -> None:
    """content_part / reasoning_summary_part, added (text "") and done (the full text)."""
    index_key, part_type = _PART_EVENTS[body["type"]]
    item = m.inner(body, index_key)
    done = body["type"].endswith(".done")
    expected: dict[str, Any] = {"type": part_type, "text": item.text if done else ""}
    if part_type == "output_text":
        expected["annotations"] = []
    part = body.get("part")
    if not isinstance(part, dict) or any(part.get(k, _MISSING) != v for k, v in expected.items()):
        text = "the done event's text" if done else "''"
        extra = " and annotations []" if part_type == "output_text" else ""
        m.fail("part", f"part must have type {part_type}, text {text}{extra}")
    item.part = part


def _delta(m: _Machine, body: dict[str, Any]) -> None:
    item = m.inner(body, _DELTA_EVENTS[body["type"]])
    delta = body.get("delta")
    if not isinstance(delta, str):
        m.fail("delta", "delta must be a string")
    if body["type"] == "response.output_text.delta" and body.get("logprobs") != []:
        m.fail("logprobs", "logprobs must be []")
    item.parts.append(delta)


def _text_done(m: _Machine, body: dict[str, Any]) -> None:
    index_key, key = _TEXT_DONE_EVENTS[body["type"]]
    item = m.inner(body, index_key)
    text = "".join(item.parts)
    if body.get(key) != text:
        m.fail("done text", f"{key} differs from the concatenated deltas")
    if body["type"] == "response.output_text.done" and not isinstance(body.get("logprobs"), list):
        m.fail("logprobs", "logprobs must be a list")
    if key == "arguments" and not is_json_object(text):
        m.fail("tool arguments json", "the arguments are not a JSON object")
    item.text = text


def _done_fields(item: _Item) -> dict[str, Any]:
    """The fields the done item must hold, from what its events streamed."""
    if item.type == "message":
        return {"role": "assistant", "content": [item.part]}
    if item.type == "reasoning":
        return {"summary": [{"type": "summary_text", "text": item.text}]}
    if item.type == "web_search_call":
        return {}  # its action (query, sources) is checked by _search_done
    key = "arguments" if item.type == "function_call" else "input"
    return {key: item.text, "call_id": item.added["call_id"], "name": item.added["name"]}


def _item_done(m: _Machine, body: dict[str, Any]) -> None:
    item = m.item()
    m.check_index(body, "output_index", item.index)
    final = body.get("item")
    if not isinstance(final, dict):
        m.fail("item shape", "item must be an object")
    if final.get("id") != item.id or final.get("type") != item.type:
        m.fail("item done", f"the done item must be the open {item.type} item {item.id!r}")
    status = final.get("status")
    if status not in ("completed", "incomplete"):
        m.fail("item status", f"a done item has status completed or incomplete, got {status!r}")
    for key, expected in _done_fields(item).items():
        if final.get(key, _MISSING) != expected:
            m.fail("item done", f"item.{key} differs from what the item's events streamed")
    encrypted = final.get("encrypted_content")
    if item.type == "reasoning" and not (encrypted is None or isinstance(encrypted, str)):
        m.fail("item shape", "encrypted_content must be a string")
    if item.type == "web_search_call":
        _search_done(m, final)
    if status == "incomplete":
        m.incomplete_items.append(item.index)
    m.items.append(final)
    m.open = None


def _search_event(m: _Machine, body: dict[str, Any]) -> None:
    """response.web_search_call.in_progress / searching / completed."""
    m.inner(body)


def _search_done(m: _Machine, final: dict[str, Any]) -> None:
    action = final.get("action")
    if (
        not isinstance(action, dict)
        or action.get("type") != "search"
        or not isinstance(action.get("query"), str)
    ):
        m.fail("item shape", "a done web_search_call has action {type: search, query}")


def _terminal(m: _Machine, body: dict[str, Any]) -> None:
    """response.completed / response.incomplete / response.failed."""
    kind = body["type"]
    response = m.response(body, _TERMINAL_STATUS[kind])
    if kind != "response.incomplete" and m.incomplete_items:
        detail = f"item {m.incomplete_items[0]} is incomplete but the response is not"
        m.fail("item status", detail)
    if kind == "response.failed":
        error = response.get("error")
        if not isinstance(error, dict) or not all(
            isinstance(error.get(key), str) for key in ("code", "message")
        ):
            m.fail("response error", "response.error must hold a string code and message")
    else:
        m.output_and_usage(response)
    if kind == "response.incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        if not isinstance(reason, str) or reason not in _INCOMPLETE_REASONS:
            m.fail("incomplete details", f"incomplete_details.reason {reason!r} is not allowed")
    m.result = response


def _error(m: _Machine, body: dict[str, Any]) -> None:
    string_fields(m, body, {"code": True, "message": False, "param": True}, rule="error event")
    m.result = {"error": {key: body[key] for key in ("code", "message", "param")}}


_RULES: dict[str, Callable[[_Machine, dict[str, Any]], None]] = {
    "response.created": _start,
    "response.in_progress": _start,
    _ADDED: _item_added,
    "response.output_item.done": _item_done,
    **dict.fromkeys(_PART_EVENTS, _part),
    **dict.fromkeys(_DELTA_EVENTS, _delta),
    **dict.fromkeys(_TEXT_DONE_EVENTS, _text_done),
    **dict.fromkeys(_TERMINAL_STATUS, _terminal),
    **dict.fromkeys(_ITEM_FLOWS["web_search_call"][1], _search_event),
    "error": _error,
}


# -- the wire -------------------------------------------------------------------------


def validate_responses_stream(stream: bytes | Iterable[ServerSentEvent]) -> dict[str, Any]:
    """Check a Responses SSE stream against the grammar; return its final response.

    Args:
        stream: the raw SSE bytes, or decoded frames.

    Returns:
        The ``response`` object of the terminal ``response.completed``,
        ``response.incomplete`` or ``response.failed`` event; for a stream ending with
        an ``error`` event, ``{"error": {"code": …, "message": …, "param": …}}``.

    Raises:
        StreamGrammarError: the first rule broken, with the event's position.
    """
    machine = _Machine()
    validate_frames(machine, stream, _step)
    return machine.result


def _step(machine: _Machine, position: int, frame: ServerSentEvent) -> None:
    """Check one frame's framing, then feed it to the machine."""
    machine.position, machine.name = position, frame.event or "?"
    kind, body = typed_frame(machine, frame, "Responses")
    if kind not in _KNOWN_TYPES:
        machine.fail("unknown event type", f"{kind!r} is not a Responses stream event")
    if machine.state in _FINAL_STATES:
        machine.fail("event order", f"nothing may follow the terminal event, got {kind}")
    machine.check_index(body, "sequence_number", position)
    machine.advance(_step_of(machine, kind, body), kind)
    _RULES[kind](machine, body)


def _step_of(machine: _Machine, kind: str, body: dict[str, Any]) -> str:
    """The transition-table step of an event: its type, refined by the item type."""
    if kind != _ADDED:
        return kind
    item = body.get("item")
    item_type = item.get("type") if isinstance(item, dict) else None
    if not isinstance(item_type, str) or item_type not in _ITEM_FLOWS:
        machine.fail("item type", f"item.type {item_type!r} is not one of {sorted(_ITEM_FLOWS)}")
    return _added_step(item_type)
