"""The OpenAI Chat Completions stream grammar validator (what our chat encoder promises).

Theory of operation
-------------------
:func:`validate_chat_stream` takes the SSE bytes of a ``POST /v1/chat/completions``
stream (or already-decoded :class:`~glmbridge.sse.ServerSentEvent` frames), splits
them with :class:`~glmbridge.sse.SSEDecoder` (SSE comments vanish there), reduces
each frame to a *step* and drives one state machine, :class:`_Machine`. The JSON is
read without trusting its shape: a field of the wrong type is a rule violation, never
a ``KeyError``/``TypeError``. The steps:

* ``chunk``: a chunk whose one choice has ``finish_reason: null``;
* ``finish chunk``: the chunk whose choice has a non-null ``finish_reason``;
* ``usage chunk``: a chunk with ``choices == []`` (it carries ``usage``);
* ``[DONE]``: the literal ``[DONE]`` payload;
* ``error``: a payload ``{"error": {message, type, param, code}}``.

Legal orderings are data: ``_TRANSITIONS`` maps ``(state, step)`` to the next state;
a pair missing from the table is an ordering violation (the machine's bookkeeping and
the SSE framing are :mod:`glmbridge.protocols.stream_grammar`'s). The accepted grammar::

    chunk*  finish-chunk  [usage-chunk]  [DONE]
    | chunk*  error                        (nothing after it: no finish chunk, no [DONE])

The per-step rules (chunk identity, the one choice, delta fields, tool-call deltas,
finish reason, usage, error payload) are checked in the step methods. A stream that
ends without ``[DONE]`` or an error payload is truncated.

Every violation raises :class:`~glmbridge.protocols.stream_grammar.StreamGrammarError` naming the
rule and the 0-based position of the offending frame (``event 5 (chunk): …``). Rule
names (``StreamGrammarError.rule``): ``sse framing``, ``event name`` (frames carry no
``event:`` line), ``json body``, ``event order``, ``chunk shape``, ``chunk identity``
(id/created/model changed), ``choice shape``, ``finish reason``, ``role``, ``delta
field``, ``tool call index``, ``tool call start``, ``tool call continuation``, ``tool
arguments json``, ``usage chunk``, ``usage``, ``usage total``, ``include_usage``,
``error payload``, ``truncated stream``.

Choices the spec left open: a ``null`` optional delta field (``role``, ``content``,
``reasoning_content``, ``refusal``, ``tool_calls``, and a tool-call delta's ``id``,
``type``, ``function.name``) counts as absent, as in the openai SDK's ``Optional``
fields; empty ``content`` strings are allowed; tool-call deltas of earlier indices may
interleave with later ones; unknown keys are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import msgspec

from glmbridge.protocols.stream_grammar import (
    GrammarMachine,
    chunk_transitions,
    is_json_object,
    string_fields,
    usage_counts,
    validate_frames,
)
from glmbridge.sse import ServerSentEvent

__all__ = ["FINISH_REASONS", "ChatStreamResult", "validate_chat_stream"]

FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
"""The ``finish_reason`` values a chat stream may carry."""


@dataclass(frozen=True)
class ChatStreamResult:
    """What a valid chat stream said, folded (to compare with a non-stream answer).

    Attributes:
        id: the chunks' ``id`` (``None`` when an error payload came first).
        model: the chunks' ``model`` (``None`` likewise).
        content: the concatenated ``delta.content``.
        reasoning: the concatenated ``delta.reasoning_content``.
        tool_calls: ``(id, name, arguments)`` per tool-call index, arguments concatenated.
        finish_reason: the finish chunk's reason (``None`` for a failed stream).
        usage: the usage chunk's ``usage`` object, if one was sent.
        error: the ``error`` object of a failed stream.
        refusal: the concatenated ``delta.refusal``.
    """

    id: str | None
    model: str | None
    content: str
    reasoning: str
    tool_calls: list[tuple[str, str, str]]
    finish_reason: str | None
    usage: dict[str, Any] | None
    error: dict[str, Any] | None
    refusal: str = ""


class _State(Enum):
    """Where the machine is in the grammar."""

    BEFORE = "before the first chunk"
    STREAMING = "while streaming"
    FINISHED = "after the finish chunk"
    USAGE = "after the usage chunk"
    DONE = "after [DONE]"
    ERRORED = "after the error payload"


_S = _State

# (state, step) -> next state. A missing pair is an ordering violation.
_TRANSITIONS: dict[tuple[_State, str], _State] = {
    **chunk_transitions(_S.BEFORE, _S.STREAMING, _S.FINISHED, _S.ERRORED),
    (_S.FINISHED, "usage chunk"): _S.USAGE,
    (_S.FINISHED, "[DONE]"): _S.DONE,
    (_S.USAGE, "[DONE]"): _S.DONE,
}
_FINAL_STATES = frozenset({_S.DONE, _S.ERRORED})

# delta field carrying text -> the ChatStreamResult field it feeds.
_TEXT_FIELDS = {"content": "content", "reasoning_content": "reasoning", "refusal": "refusal"}
# The integers >= 0 a usage object must carry (dotted paths).
_USAGE_COUNTS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "prompt_tokens_details.cached_tokens",
    "completion_tokens_details.reasoning_tokens",
)
# error payload field -> may it be null?
_ERROR_FIELDS = {"message": False, "type": False, "param": True, "code": True}


class _Machine(GrammarMachine):
    """The chat stream state machine; it also folds the stream into a result."""

    TRANSITIONS = _TRANSITIONS
    FINAL_STATES = _FINAL_STATES
    UNFINISHED = "without [DONE] or an error payload"

    def __init__(self, include_usage: bool | None) -> None:
        super().__init__(_S.BEFORE)
        self.include_usage = include_usage
        self.texts: dict[str, list[str]] = {field: [] for field in _TEXT_FIELDS.values()}
        self.calls: list[tuple[str, str, list[str]]] = []  # (id, name, argument parts)
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None

    def advance(self, step: str, kind: str | None = None) -> None:
        """Apply the transition table for one step (named in later messages)."""
        self.name = step
        super().advance(step, kind)

    def order_detail(self, step: str) -> str:
        state = self.state
        if state in _FINAL_STATES:
            return f"nothing may follow the terminal payload ({state.value}), got {step}"
        if step == "finish chunk":
            return "a second finish_reason: exactly one chunk may finish"
        if step == "chunk":
            return f"a chunk with choices {state.value}: the finish chunk must be the last one"
        if step == "usage chunk":
            if state is _S.USAGE:
                return "at most one usage chunk"
            return "the usage chunk must follow the finish chunk"
        if step == "[DONE]":
            return "[DONE] before the finish chunk"
        return f"an error payload {state.value}: a failed stream has no finish chunk"

    def done(self) -> None:
        self.advance("[DONE]")
        if self.include_usage and self.usage is None:
            self.fail("include_usage", "include_usage=True but no usage chunk before [DONE]")

    def error_payload(self, error: Any) -> None:
        self.advance("error")
        if not isinstance(error, dict):
            self.fail("error payload", "error must be an object")
        string_fields(self, error, _ERROR_FIELDS, rule="error payload", prefix="error.")
        self.error = error

    def chunk(self, body: dict[str, Any]) -> None:
        self.name = "chunk"
        self._identity(body)
        choices = body.get("choices")
        if not isinstance(choices, list):
            self.fail("chunk shape", "choices must be a list")
        if not choices:
            self.advance("usage chunk")
            self._usage_chunk(body.get("usage"))
            return
        if body.get("usage") is not None:
            self.fail("usage chunk", "usage must be absent or null on a chunk with choices")
        choice = self._choice(choices)
        reason = choice["finish_reason"]
        first = self.state is _S.BEFORE
        self.advance("chunk" if reason is None else "finish chunk")
        self._delta(choice["delta"], first=first)
        if reason is not None:
            self._finish(reason)

    def _identity(self, body: dict[str, Any]) -> None:
        if body.get("object") != "chat.completion.chunk":
            self.fail("chunk shape", "object must be 'chat.completion.chunk'")
        chunk_id, created, model = body.get("id"), body.get("created"), body.get("model")
        if not isinstance(chunk_id, str) or not chunk_id.startswith("chatcmpl-"):
            self.fail("chunk shape", "id must be a string starting with 'chatcmpl-'")
        if type(created) is not int:
            self.fail("chunk shape", "created must be an integer")
        if not isinstance(model, str):
            self.fail("chunk shape", "model must be a string")
        self.keep_identity(("id", "created", "model"), (chunk_id, created, model))

    def _choice(self, choices: list[Any]) -> dict[str, Any]:
        if len(choices) != 1:
            self.fail("choice shape", f"a chunk carries exactly one choice, got {len(choices)}")
        choice = self.only_choice(choices, "choices", "choice shape")
        if not isinstance(choice.get("delta"), dict):
            self.fail("choice shape", "choices[0].delta must be an object")
        if choice.get("logprobs") is not None:
            self.fail("choice shape", "choices[0].logprobs must be absent or null")
        if "finish_reason" not in choice:
            self.fail("choice shape", "choices[0].finish_reason is missing")
        reason = choice["finish_reason"]
        if reason is not None and not (isinstance(reason, str) and reason in FINISH_REASONS):
            self.fail("finish reason", f"{reason!r} is not a chat finish_reason")
        return choice

    def _delta(self, delta: dict[str, Any], *, first: bool) -> None:
        role = delta.get("role")
        if role is not None and not first:
            self.fail("role", "delta.role is allowed only in the first chunk")
        if role is not None and role != "assistant":
            self.fail("role", f"delta.role must be 'assistant', got {role!r}")
        for key, field in _TEXT_FIELDS.items():
            value = delta.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                self.fail("delta field", f"delta.{key} must be a string")
            self.texts[field].append(value)
        calls = delta.get("tool_calls")
        if calls is None:
            return
        if not isinstance(calls, list):
            self.fail("delta field", "delta.tool_calls must be a list")
        for call in calls:
            if not isinstance(call, dict):
                self.fail("delta field", "delta.tool_calls items must be objects")
            self._tool_delta(call)

    def _tool_delta(self, call: dict[str, Any]) -> None:
        index, seen = call.get("index"), len(self.calls)
        if type(index) is not int or not 0 <= index <= seen:
            detail = f"expected an index in 0..{seen} (a new call takes {seen}), got {index!r}"
            self.fail("tool call index", detail)
        function = call.get("function")
        if index == seen:
            self._tool_start(call, function)
            return
        what = f"tool call {index}"
        if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
            self.fail("tool call continuation", f"{what}: a later delta needs function.arguments")
        extras = {"id": call.get("id"), "type": call.get("type"), "name": function.get("name")}
        for key, value in extras.items():
            if value is not None:
                self.fail("tool call continuation", f"{what}: only its first delta carries {key}")
        self.calls[index][2].append(function["arguments"])

    def _tool_start(self, call: dict[str, Any], function: Any) -> None:
        what = f"tool call {len(self.calls)}: its first delta needs"
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            self.fail("tool call start", f"{what} a non-empty id")
        if call.get("type") != "function":
            self.fail("tool call start", f"{what} type 'function'")
        if not isinstance(function, dict):
            self.fail("tool call start", f"{what} a function object")
        name, arguments = function.get("name"), function.get("arguments")
        if not isinstance(name, str) or not name:
            self.fail("tool call start", f"{what} a non-empty function.name")
        if not isinstance(arguments, str):
            self.fail("tool call start", f"{what} function.arguments (a string)")
        self.calls.append((call_id, name, [arguments]))

    def _finish(self, reason: str) -> None:
        if reason == "tool_calls" and not self.calls:
            self.fail("finish reason", "finish_reason 'tool_calls' without any tool call")
        if reason == "stop" and self.calls:
            self.fail("finish reason", "finish_reason 'stop' with tool calls: must be tool_calls")
        for index, (_, _, parts) in enumerate(self.calls):
            if not is_json_object("".join(parts)):
                detail = f"tool call {index}: the concatenated arguments are not a JSON object"
                self.fail("tool arguments json", detail)
        self.finish_reason = reason

    def _usage_chunk(self, usage: Any) -> None:
        if self.include_usage is False:
            self.fail("include_usage", "a usage chunk although include_usage=False")
        if not isinstance(usage, dict):
            self.fail("usage chunk", "a chunk with no choices must carry a usage object")
        counts = usage_counts(self, usage, _USAGE_COUNTS)
        prompt, completion = counts["prompt_tokens"], counts["completion_tokens"]
        if counts["total_tokens"] != prompt + completion:
            detail = f"total_tokens {counts['total_tokens']} != {prompt} + {completion}"
            self.fail("usage total", f"{detail} (prompt_tokens + completion_tokens)")
        self.usage = usage

    def result(self) -> ChatStreamResult:
        chunk_id, _, model = self.identity or (None, 0, None)
        return ChatStreamResult(
            id=chunk_id,
            model=model,
            content="".join(self.texts["content"]),
            reasoning="".join(self.texts["reasoning"]),
            tool_calls=[(call_id, name, "".join(parts)) for call_id, name, parts in self.calls],
            finish_reason=self.finish_reason,
            usage=self.usage,
            error=self.error,
            refusal="".join(self.texts["refusal"]),
        )


def validate_chat_stream(
    stream: bytes | Iterable[ServerSentEvent], *, include_usage: bool | None = None
) -> ChatStreamResult:
    """Check a Chat Completions SSE stream against the grammar and fold it.

    Args:
        stream: the raw SSE bytes, or decoded frames.
        include_usage: ``True``: the request asked for ``stream_options.include_usage``
            and a usage chunk is required; ``False``: a usage chunk is forbidden;
            ``None``: either is accepted.

    Returns:
        The folded stream (for a failed stream: what came before the error, and
        ``error`` set).

    Raises:
        StreamGrammarError: the first rule broken, with the frame's position.
    """
    machine = _Machine(include_usage)
    validate_frames(machine, stream, _step)
    return machine.result()


def _step(machine: _Machine, position: int, frame: ServerSentEvent) -> None:
    """Check one frame's framing, then feed it to the machine as a step."""
    machine.position, machine.name = position, "payload"
    if frame.event is not None:
        machine.fail("event name", f"chat frames have no event: line, got {frame.event!r}")
    if frame.data == "[DONE]":
        machine.done()
        return
    try:
        body = msgspec.json.decode(frame.data)
    except msgspec.DecodeError:
        machine.fail("json body", "data is neither [DONE] nor valid JSON")
    if not isinstance(body, dict):
        machine.fail("json body", "data must be a JSON object")
    is_error = body.get("error") is not None
    if machine.state in _FINAL_STATES:
        machine.advance("error" if is_error else "chunk")  # no transition: "nothing may follow"
    if is_error:
        machine.error_payload(body["error"])
    else:
        machine.chunk(body)
