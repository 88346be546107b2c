"""The Gemini stream grammar validator (what our ``streamGenerateContent`` encoder promises).

Theory of operation
-------------------
:func:`validate_gemini_stream` takes the bytes of a ``streamGenerateContent`` answer in
one of its two framings, cuts them into *items* with a framing parser, and drives one
state machine, :class:`_Machine`, which checks each item and folds the stream into one
``GenerateContentResponse``. The JSON is read without trusting its shape: a field of the
wrong type is a rule violation, never a ``KeyError``/``TypeError``.

Framing. The parsers are exact, because the clients are:

* ``sse`` (``?alt=sse``): every chunk is ``data: <one-line JSON>\\n\\n``. The JS SDK
  (gemini-cli) matches ``/^\\s*data: (.*)(?:\\n\\n|\\r\\r|\\r\\n\\r\\n)/`` at the head of its
  buffer, so any other line (an SSE comment, ``event:``, ``id:``, ``data:`` without the
  space, ``data: [DONE]``) stalls every later frame, and a JS line terminator inside the
  JSON (CR, LF, U+2028, U+2029: ``.`` matches none of them) hides that frame. A failed
  stream ends with a bare ``{"error": {...}}\\n`` line (no ``data:``): the JS SDK raises it
  only in that form and drops the ``error`` key of a ``data:`` frame; the Python SDK
  raises any chunk whose JSON starts with ``{"error":``.
* ``array`` (no ``alt``): one JSON array ``[chunk,\\r\\nchunk,\\r\\n...]``; a failed stream's
  last element is the ``{"error": {...}}`` object, and the array is still closed.

Steps and their order. Each item is a ``chunk``, the ``finish chunk`` (its candidate has
a ``finishReason``), or an ``error``. ``_TRANSITIONS`` maps ``(state, step)`` to the next
state; a missing pair is an ordering violation. The accepted grammar::

    chunk*  finish-chunk
    | chunk*  error                   (nothing after it)

A stream that ends otherwise (no finish chunk and no error, an unclosed array, a cut
frame) is truncated.

Per-chunk rules (the step methods): exactly one candidate, ``index`` 0; ``content`` with
``role`` ``model`` and a non-empty ``parts`` list; each part exactly one of ``text``
(optionally with ``thought: true``) or ``functionCall {name, args (an object), id}``
with an id unused before; no thought parts when the request did not ask for them; an
empty text part only as the finish chunk's one part (gemini-cli treats a chunk with an
empty text part as content-less, which only the last chunk may be); ``modelVersion``
and ``responseId`` strings, the same on every chunk; ``usageMetadata`` on the finish
chunk only, with counts that add up (``totalTokenCount = promptTokenCount +
candidatesTokenCount + thoughtsTokenCount``, cached tokens part of the prompt). The
error object carries an integer ``code`` in 400..599 (the JS SDK ignores others), a
``message`` and a ``google.rpc`` ``status`` name, and optional ``details``.

Every violation raises
:class:`~glmbridge.protocols.stream_grammar.StreamGrammarError` naming the rule and
the 0-based position of the offending item (``event 5 (chunk): …``). Rule names
(``StreamGrammarError.rule``): ``sse framing``, ``sse comment``, ``event line``, ``no
[DONE]``, ``line terminator``, ``error framing``, ``array framing``, ``json body``,
``event order``, ``candidates``, ``content``, ``part``, ``empty text``, ``thoughts``,
``function call``, ``chunk identity``, ``finish reason``, ``usage``, ``usage total``,
``error payload``, ``truncated stream``.

Choices the spec left open: unknown keys of a chunk or candidate are ignored (the SDKs
ignore them); a part may hold no key besides ``text``, ``thought`` and ``functionCall``
(our encoder sends no others); CRLF frame ends, accepted by both SDKs, are refused
because the encoder promises ``\\n\\n``.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, Literal, NoReturn

from glmbridge.protocols.stream_grammar import GrammarMachine, chunk_transitions, usage_counts

__all__ = ["FINISH_REASONS", "RPC_STATUSES", "validate_gemini_stream"]

FINISH_REASONS = frozenset({
    "STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "LANGUAGE", "OTHER", "BLOCKLIST",
    "PROHIBITED_CONTENT", "SPII", "MALFORMED_FUNCTION_CALL", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_OTHER", "NO_IMAGE", "IMAGE_RECITATION",
    "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS", "MISSING_THOUGHT_SIGNATURE",
    "MALFORMED_RESPONSE",
})  # fmt: skip
"""The ``finishReason`` values a finish chunk may carry (``FINISH_REASON_UNSPECIFIED`` is
no reason)."""

RPC_STATUSES = frozenset({
    "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
})  # fmt: skip
"""The ``google.rpc.Code`` names an error object's ``status`` may be (``OK`` is none)."""


class _State(Enum):
    """Where the machine is in the grammar."""

    BEFORE = "before the first chunk"
    STREAMING = "while streaming"
    FINISHED = "after the finish chunk"
    ERRORED = "after the error"


_S = _State

# (state, step) -> next state. A missing pair is an ordering violation.
_TRANSITIONS: dict[tuple[_State, str], _State] = chunk_transitions(
    _S.BEFORE, _S.STREAMING, _S.FINISHED, _S.ERRORED
)
_FINAL_STATES = frozenset({_S.FINISHED, _S.ERRORED})

_PART_KEYS = frozenset({"text", "thought", "functionCall"})
_CALL_KEYS = frozenset({"name", "args", "id"})
_USAGE_REQUIRED = ("promptTokenCount", "candidatesTokenCount", "totalTokenCount")
_USAGE_OPTIONAL = ("thoughtsTokenCount", "cachedContentTokenCount")
# JS line terminators ('.' in the JS SDK's frame regex matches none of them).
_JS_LINE_BREAKS = ("\u2028".encode(), "\u2029".encode())


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


_JSON = json.JSONDecoder(parse_constant=_reject_constant)


class _Machine(GrammarMachine):
    """The stream state machine; it also folds the chunks into one response."""

    TRANSITIONS = _TRANSITIONS
    FINAL_STATES = _FINAL_STATES
    UNFINISHED = "without a finishReason or an error"

    def __init__(self, include_thoughts: bool) -> None:
        super().__init__(_S.BEFORE, position=0, name="item")
        self.include_thoughts = include_thoughts
        self.parts: list[dict[str, Any]] = []  # folded: adjacent texts of a kind joined
        self.call_ids: set[str] = set()
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None

    def at(self, position: int, name: str) -> None:
        """Point error messages at the item ``position``; nothing may follow an error."""
        self.position, self.name = position, name
        if self.state is _S.ERRORED:
            self.fail("event order", "nothing may follow the error")

    def advance(self, step: str, kind: str | None = None) -> None:
        """Apply the transition table for one step (named in later messages)."""
        self.name = step
        super().advance(step, kind)

    def order_detail(self, kind: str) -> str:
        if self.state is _S.FINISHED:
            what = "a chunk" if kind != "error" else "an error"
            return f"{what} after the finish chunk: it must be the last"
        return f"{kind} {self.state.value}: nothing may follow the error"

    # -- steps -----------------------------------------------------------------------------

    def error_payload(self, body: dict[str, Any]) -> None:
        self.advance("error")
        if list(body) != ["error"]:
            self.fail("error payload", 'a bare {"error": {...}} object: no other keys')
        error = body["error"]
        if not isinstance(error, dict):
            self.fail("error payload", "error must be an object")
        code = error.get("code")
        if type(code) is not int or not 400 <= code <= 599:
            self.fail("error payload", f"error.code must be an integer 400..599, got {code!r}")
        if not isinstance(error.get("message"), str):
            self.fail("error payload", "error.message must be a string")
        status = error.get("status")
        if not (isinstance(status, str) and status in RPC_STATUSES):
            self.fail("error payload", f"error.status must be a google.rpc code, got {status!r}")
        details = error.get("details", [])
        if not isinstance(details, list) or not all(
            isinstance(d, dict) and isinstance(d.get("@type"), str) for d in details
        ):
            self.fail("error payload", "error.details must be a list of objects with @type")
        self.error = error

    def chunk(self, body: dict[str, Any]) -> None:
        self.name = "chunk"
        candidate = self._candidate(body.get("candidates"))
        reason = candidate.get("finishReason")
        finish = reason is not None
        self.advance("finish chunk" if finish else "chunk")
        self._identity(body)
        if finish and not (isinstance(reason, str) and reason in FINISH_REASONS):
            self.fail("finish reason", f"{reason!r} is not a Gemini finishReason")
        parts = self._content(candidate.get("content"))
        for part in parts:
            self._part(part, lone=finish and len(parts) == 1)
        usage = body.get("usageMetadata")
        if finish:
            self._usage(usage)
            self.finish_reason = reason
            self.usage = usage
        elif usage is not None:
            self.fail("usage", "usageMetadata belongs on the finish chunk only")

    def _candidate(self, candidates: Any) -> dict[str, Any]:
        if not isinstance(candidates, list) or len(candidates) != 1:
            self.fail("candidates", "candidates must be a list of exactly one candidate")
        return self.only_choice(candidates, "candidates", "candidates")

    def _identity(self, body: dict[str, Any]) -> None:
        model, response_id = body.get("modelVersion"), body.get("responseId")
        if not isinstance(model, str) or not isinstance(response_id, str) or not response_id:
            self.fail("chunk identity", "modelVersion and a non-empty responseId are required")
        self.keep_identity(("modelVersion", "responseId"), (model, response_id))

    def _content(self, content: Any) -> list[Any]:
        if not isinstance(content, dict):
            self.fail("content", "candidates[0].content must be an object")
        if content.get("role") != "model":
            self.fail("content", f"content.role must be 'model', got {content.get('role')!r}")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            self.fail("content", "content.parts must be a non-empty list")
        return parts

    def _part(self, part: Any, *, lone: bool) -> None:
        if not isinstance(part, dict):
            self.fail("part", "a part must be an object")
        extra = set(part) - _PART_KEYS
        if extra:
            self.fail("part", f"unexpected part keys {sorted(extra)}")
        if ("text" in part) == ("functionCall" in part):
            self.fail("part", "a part holds exactly one of text or functionCall")
        if "functionCall" in part:
            if "thought" in part:
                self.fail("part", "thought belongs to text parts only")
            self._call(part["functionCall"])
            return
        text, thought = part["text"], "thought" in part
        if not isinstance(text, str):
            self.fail("part", "text must be a string")
        if thought and part["thought"] is not True:
            self.fail("part", f"thought must be true when present, got {part['thought']!r}")
        if thought and not self.include_thoughts:
            self.fail("thoughts", "a thought part, but the request did not set includeThoughts")
        if not text and (thought or not lone):
            self.fail("empty text", "an empty text part only as the finish chunk's one part")
        last = self.parts[-1] if self.parts else None
        if last is not None and "text" in last and ("thought" in last) == thought:
            last["text"] += text
        else:
            self.parts.append({"text": text, "thought": True} if thought else {"text": text})

    def _call(self, call: Any) -> None:
        if not isinstance(call, dict) or set(call) != _CALL_KEYS:
            self.fail("function call", "functionCall must be an object {name, args, id}")
        name, args, call_id = call["name"], call["args"], call["id"]
        if not isinstance(name, str) or not name:
            self.fail("function call", "functionCall.name must be a non-empty string")
        if not isinstance(args, dict):
            self.fail("function call", "functionCall.args must be an object (never a string)")
        if not isinstance(call_id, str) or not call_id:
            self.fail("function call", "functionCall.id must be a non-empty string")
        if call_id in self.call_ids:
            self.fail("function call", f"functionCall.id {call_id!r} used twice")
        self.call_ids.add(call_id)
        self.parts.append({"functionCall": {"name": name, "args": args, "id": call_id}})

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            self.fail("usage", "the finish chunk must carry a usageMetadata object")
        counts = usage_counts(self, usage, _USAGE_REQUIRED, name="usageMetadata",
                              optional=_USAGE_OPTIONAL)  # fmt: skip
        prompt, candidates = counts["promptTokenCount"], counts["candidatesTokenCount"]
        thoughts, total = counts["thoughtsTokenCount"], counts["totalTokenCount"]
        if counts["cachedContentTokenCount"] > prompt:
            self.fail("usage", "cachedContentTokenCount is part of promptTokenCount")
        if total != prompt + candidates + thoughts:
            detail = f"totalTokenCount {total} != {prompt} + {candidates} + {thoughts}"
            self.fail("usage total", f"{detail} (prompt + candidates + thoughts)")

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.identity is not None:
            parts = [p for p in self.parts if p.get("text") != ""]
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
            if self.finish_reason is not None:
                candidate["finishReason"] = self.finish_reason
            candidate["index"] = 0
            out["candidates"] = [candidate]
            if self.usage is not None:
                out["usageMetadata"] = self.usage
            out["modelVersion"], out["responseId"] = self.identity
        if self.error is not None:
            out["error"] = self.error
        return out


# --- framing ---------------------------------------------------------------------------------


def _decode(machine: _Machine, text: str | bytes) -> Any:
    """One JSON value, exactly (no surrounding whitespace, no NaN)."""
    try:
        text = text.decode() if isinstance(text, bytes) else text
        value, end = _JSON.raw_decode(text)
    except ValueError:  # also UnicodeDecodeError and JSONDecodeError
        machine.fail("json body", "not valid JSON")
    if end != len(text):
        machine.fail("json body", "not exactly one JSON value")
    return value


def _object(machine: _Machine, text: str | bytes) -> dict[str, Any]:
    value = _decode(machine, text)
    if not isinstance(value, dict):
        machine.fail("json body", "a chunk must be a JSON object")
    return value


def _run_sse(machine: _Machine, data: bytes) -> None:
    """Cut ``data: <json>\\n\\n`` frames and a final bare error line; step each."""
    pos, size, index = 0, len(data), 0
    while pos < size:
        machine.at(index, "frame")
        head = data[pos : pos + 16]
        if head.startswith(b"data: "):
            end = data.find(b"\n\n", pos)
            if end < 0 and data.find(b"\n", pos, size - 1) < 0:
                machine.fail("truncated stream", "the last frame is cut off", at_end=True)
            line = data[pos + 6 : end] if end >= 0 else data[pos + 6 :]
            if end < 0 or b"\n" in line:
                machine.fail("sse framing", "a frame is exactly one data: line and a blank line")
            if b"\r" in line:
                machine.fail("sse framing", "frames end with \\n\\n (no CR)")
            if line == b"[DONE]":
                machine.fail("no [DONE]", "Gemini streams end without [DONE]")
            if any(brk in line for brk in _JS_LINE_BREAKS):
                machine.fail("line terminator", "raw U+2028/U+2029 in a frame stall the JS SDK")
            body = _object(machine, line)
            if "error" in body:
                machine.fail("error framing", "a data: error frame is ignored by the JS SDK; "
                                              "send a bare error line")  # fmt: skip
            machine.chunk(body)
            pos = end + 2
        elif head.startswith(b"{"):
            end = data.find(b"\n", pos)
            if end < 0:
                machine.fail("sse framing", "a bare error line must end with \\n")
            body = _object(machine, data[pos:end])
            if "error" not in body:
                machine.fail("sse framing", "a bare JSON line must be an error (chunks are "
                                            "data: frames)")  # fmt: skip
            machine.error_payload(body)
            pos = end + 1
        elif head.startswith(b":"):
            machine.fail("sse comment", "no SSE comments: the JS SDK stalls on them")
        elif head.startswith(b"event:"):
            machine.fail("event line", "no event: lines: the JS SDK stalls on them")
        else:
            machine.fail("sse framing", f"expected 'data: ' or a bare error line, got {head!r}")
        index += 1


def _run_array(machine: _Machine, data: bytes) -> None:
    """Cut ``[chunk,\\r\\nchunk]`` into elements; step each."""
    if not data:
        return
    try:
        text = data.decode()
    except UnicodeDecodeError:
        machine.fail("json body", "the array is not UTF-8")
    if not text.startswith("["):
        machine.fail("array framing", "an array stream starts with '['")
    pos, size, index = 1, len(text), 0
    if text == "[]":
        return
    while pos < size:
        machine.at(index, "element")
        if index and text[pos:] == "]":
            machine.fail("array framing", "a ',\\r\\n' must be followed by an element")
        try:
            value, end = _JSON.raw_decode(text, pos)
        except ValueError:
            rest = text[pos:]
            if not rest.endswith("]") and ",\r\n" not in rest:
                machine.fail("truncated stream", f"cut inside element {index}", at_end=True)
            machine.fail("json body", "not valid JSON (elements are separated by ',\\r\\n')")
        if not isinstance(value, dict):
            machine.fail("json body", "a chunk must be a JSON object")
        if "error" in value:
            machine.error_payload(value)
        else:
            machine.chunk(value)
        sep = text[end : end + 3]
        if sep == ",\r\n":
            pos, index = end + 3, index + 1
            continue
        if end == size:
            machine.fail("truncated stream", "the array is not closed with ']'", at_end=True)
        if text[end:] != "]":
            machine.fail("array framing", f"expected ',\\r\\n' or a final ']', got {sep!r}")
        return
    machine.fail("truncated stream", "the array ends after '[' or a separator", at_end=True)


def validate_gemini_stream(
    stream: bytes,
    *,
    framing: Literal["sse", "array"] = "sse",
    include_thoughts: bool = True,
) -> dict[str, Any]:
    """Check a ``streamGenerateContent`` answer against the grammar and fold it.

    Args:
        stream: the raw response body.
        framing: ``sse`` (``?alt=sse``) or ``array`` (a JSON array).
        include_thoughts: ``False``: the request did not set ``includeThoughts``, so a
            thought part is a violation; ``True``: thought parts are allowed.

    Returns:
        The stream folded into one ``GenerateContentResponse``: ``candidates`` (one, its
        ``parts`` with adjacent texts of a kind joined and the empty ones dropped, its
        ``finishReason``), ``usageMetadata``, ``modelVersion``, ``responseId``, as
        ``response_from_ir`` would write the same answer. A failed stream gives what came
        before the error (nothing, when no chunk came) and ``error``, the error object.

    Raises:
        StreamGrammarError: the first rule broken, with the item's position.
    """
    machine = _Machine(include_thoughts)
    if framing == "sse":
        _run_sse(machine, bytes(stream))
    else:
        _run_array(machine, bytes(stream))
    machine.end()
    return machine.result()
