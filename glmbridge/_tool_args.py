"""Tool-call arguments: incremental scanning, safe forwarding and repair.

Upstreams send a tool call's arguments as a JSON *string* that may arrive in
fragments (``tool_stream``), be cut off (``finish_reason: length``), be garbage, or
be valid JSON that is not an object. Anthropic clients need an *object*, and a
streamed tool block's concatenated ``partial_json`` must be valid JSON at its stop.

:class:`ArgsScanner` is one small JSON lexer used by both paths, so the streamed and
the non-streamed translation of the same arguments always agree:

- ``feed(fragment)`` returns the part that is safe to forward now. Text is held back
  while it could still turn out unrepairable by appending a suffix: object keys
  (until their value starts), a ``,`` (until the next value starts), escape
  sequences, numbers and ``true``/``false``/``null`` (until complete). Everything
  forwarded is therefore a prefix of a valid JSON object that a suffix can close.
- ``finish()`` returns the closing suffix (``"}``, ``]}`` …), ``""`` when the object
  is already complete, or a whole replacement when nothing was forwarded: ``{}`` for
  empty/unusable arguments and ``{"value": …}`` for valid non-object JSON.
- After a syntax error nothing more is forwarded; the result is the last safe prefix
  plus its suffix (the bad tail is dropped).
- A fragment that only continues a string value (plain characters and whole simple
  escapes: most ``tool_stream`` fragments) is forwarded whole without the character
  loop; ``_feed`` is the general path it stands for.

:func:`parse_arguments` (non-stream) runs the same machine over the whole string
when a plain decode does not yield an object.
"""

from __future__ import annotations

import logging
import math
import re
from decimal import Decimal
from typing import Any

import msgspec

__all__ = [
    "JSON_DECODER",
    "ArgsScanner",
    "complete_json",
    "exact_float",
    "parse_arguments",
    "repair_arguments",
]

logger = logging.getLogger(__name__)


def exact_float(text: str) -> float | Decimal:
    """Decode a JSON number; keep one beyond the float range exactly (as a Decimal).

    ``1e400`` is valid JSON, but as a float it would be ``inf`` (which encodes as
    ``null``) or, for msgspec's default decoder, an error. As a Decimal it encodes back
    as the same number (with ``decimal_format="number"``), so streamed and non-streamed
    tool input read the same value.
    """
    value = float(text)
    return value if math.isfinite(value) else Decimal(text)


JSON_DECODER = msgspec.json.Decoder(float_hook=exact_float)
"""Untyped JSON decoding for tool arguments (numbers beyond the float range kept)."""

_DECODE = JSON_DECODER
_ENCODE = msgspec.json.Encoder(decimal_format="number")

# Scanner states (plain ints: this loop is on the per-chunk hot path).
_START, _VALUE, _ARR_FIRST, _OBJ_FIRST, _KEY, _COLON, _AFTER = range(7)
_STRING, _ESC, _UHEX, _LIT, _NUM, _DONE, _FAIL, _NONOBJ, _PAIR = range(7, 16)
# States in which the text seen so far cannot be closed by a plain suffix.
_UNSAFE = frozenset({_START, _VALUE, _KEY, _COLON, _ESC, _UHEX, _LIT, _NUM, _FAIL, _NONOBJ, _PAIR})

_WS = frozenset(" \t\r\n")
_NUM_CHARS = frozenset("0123456789+-.eE")
_NUM_START = frozenset("-0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_SIMPLE_ESC = frozenset('"\\/bfnrt')
_LITERALS = {"t": "true", "f": "false", "n": "null"}
# Inside a string: plain characters and complete simple escapes (\n, \", \\ ...) leave
# the scanner in the string state, so a run of them is consumed in one step.
_STR_RUN = re.compile(r'[^"\\]*(?:\\["\\/bfnrt][^"\\]*)*')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


class ArgsScanner:
    """Incremental JSON scanner deciding how much of a streamed value may be forwarded.

    Args:
        object_only: when true (tool arguments), a top-level value that is not an
            object is buffered whole and converted by :meth:`finish`.
    """

    __slots__ = (
        "_hex",
        "_hex_digits",
        "_hold",
        "_key",
        "_lit",
        "_lit_pos",
        "_num",
        "_object_only",
        "_pending",
        "_safe_stack",
        "_safe_st",
        "_sent",
        "_stack",
        "_st",
    )

    def __init__(self, *, object_only: bool = True) -> None:
        self._object_only = object_only
        self._st = _START
        self._stack = ""  # open containers, e.g. "{[" (a str: snapshots are free)
        self._hold = True  # leading whitespace is held until the value starts
        self._key = False
        self._lit = ""
        self._lit_pos = 0
        self._num = ""
        self._hex = 0
        self._hex_digits = ""  # the \\uXXXX digits so far; a high surrogate needs its pair
        self._pending = ""  # scanned but not yet forwarded
        self._sent = False
        self._safe_st = _START
        self._safe_stack = ""

    @property
    def done(self) -> bool:
        """Whether the top-level value is complete (later text is ignored)."""
        return self._st == _DONE

    @property
    def failed(self) -> bool:
        """Whether a syntax error stopped forwarding."""
        return self._st == _FAIL

    def feed(self, fragment: str) -> str:
        """Scan ``fragment``; return the text that is now safe to forward (maybe ``""``)."""
        if (
            self._st == _STRING
            and not self._hold
            and (('"' not in fragment and "\\" not in fragment) or _STR_RUN.fullmatch(fragment))
        ):
            # Fast path (most tool_stream fragments): plain characters and whole simple
            # escapes inside a string value. The state stays _STRING and all of it is
            # safe, as _feed would find: a string value's last scanned character was safe
            # (in this state, with this stack), so nothing is pending and the repair
            # point needs no update.
            return fragment
        return self._feed(fragment)

    def _feed(self, fragment: str) -> str:
        """:meth:`feed` without its fast path (the general path, any fragment)."""
        st = self._st
        if st in (_DONE, _FAIL):
            if st == _DONE and fragment.strip():
                logger.warning("tool arguments: ignoring data after the complete JSON value")
            return ""
        if not fragment:
            return ""
        if st == _NONOBJ:
            self._pending += fragment
            return ""
        if st == _START and not self._pending and fragment[0] == "{":
            # Fast path: the whole object in one fragment (GLM without tool_stream).
            try:
                value = _DECODE.decode(fragment)
            except msgspec.DecodeError:
                value = None
            if isinstance(value, dict):
                self._st = self._safe_st = _DONE
                self._hold = False
                self._sent = True
                return fragment
        safe = self._scan(fragment)
        if safe < -1:
            out = ""
            self._pending += fragment
        else:
            out = self._pending + fragment[: safe + 1]
            self._pending = fragment[safe + 1 :]
            self._sent = True
        if self._st == _DONE or self._st == _FAIL:
            self._pending = ""  # nothing after the last safe char is ever forwarded
        return out

    def finish(self) -> str:
        """Return the text that completes everything forwarded into one JSON object."""
        st = self._st
        if st == _NUM and not self._stack:
            st = self._end_number()
        if st == _DONE:
            return ""
        if st == _NONOBJ:
            return _wrap_non_object(self._pending)
        if not self._sent:
            if self._pending.strip():
                logger.warning("tool arguments: unusable JSON replaced by {}")
            return "{}"
        if st == _FAIL or self._pending:
            logger.warning("tool arguments: truncated or invalid JSON repaired")
        else:
            logger.info("tool arguments: truncated JSON closed")
        return _close(self._safe_st, self._safe_stack)

    def complete(self) -> str | None:
        """Suffix completing *all* text seen so far, or ``None`` if no suffix can."""
        st, stack = self._st, self._stack
        if st == _DONE:
            return ""
        if st in (_FAIL, _START, _KEY, _NONOBJ, _PAIR) or (st == _VALUE and stack[-1:] == "["):
            return None
        if len(self._hex_digits) >= 4:
            return None  # inside the second half of a surrogate pair
        head = ""
        if st == _NUM:
            head = "" if _NUMBER.fullmatch(self._num) else "0"
            if _NUMBER.fullmatch(self._num + head) is None:
                return None
            st = _AFTER
        elif st == _LIT:
            head, st = self._lit[self._lit_pos :], _AFTER
        elif st in (_ESC, _UHEX):
            head = "\\" if st == _ESC else "0" * self._hex
            if st == _UHEX and 0xD800 <= int(self._hex_digits + head, 16) <= 0xDFFF:
                return None  # padding would produce a lone surrogate
            head += '"'
            st = _COLON if self._key else _AFTER
        elif st == _STRING:
            head, st = '"', (_COLON if self._key else _AFTER)
        if st == _COLON:
            head, st = head + ":", _VALUE
        if st == _VALUE:
            head += "null"
        return head + _close(_AFTER, stack)

    # -- internals -------------------------------------------------------------------

    def _end_number(self) -> int:
        if _NUMBER.fullmatch(self._num) is None:
            self._st = _FAIL
        else:
            self._st = _AFTER if self._stack else _DONE
        return self._st

    def _end_unicode_escape(self) -> int:
        """Surrogates must pair up (a lone one is invalid for strict decoders)."""
        digits = self._hex_digits
        high = int(digits[-4:], 16)
        if len(digits) == 4:
            if 0xD800 <= high <= 0xDBFF:
                return _PAIR  # hold until the low half arrives
            self._hex_digits = ""
            return self._fail() if 0xDC00 <= high <= 0xDFFF else _STRING
        self._hex_digits = ""
        return _STRING if 0xDC00 <= high <= 0xDFFF else self._fail()

    def _fail(self) -> int:
        logger.debug("tool arguments: invalid JSON, forwarding stopped")
        return _FAIL

    def _scan(self, frag: str) -> int:
        """Advance over ``frag``; return the index of its last safe char.

        -1 means only the held text before ``frag`` became safe (a number ended at
        the fragment boundary); -2 means nothing became safe.
        """
        st, stack, hold = self._st, self._stack, self._hold
        i, n, safe = 0, len(frag), -2
        while i < n:
            c = frag[i]
            if st == _STRING:
                j = _STR_RUN.match(frag, i).end()  # type: ignore[union-attr]
                if j > i:  # fast path: a run of plain string characters
                    i = j
                    if not hold:
                        safe, self._safe_st, self._safe_stack = i - 1, st, stack
                    continue
                if c == "\\":
                    st = _ESC
                elif self._key:
                    st = _COLON  # a key closed: held until its value starts
                else:
                    st = _AFTER if stack else _DONE
            elif st in (_ESC, _UHEX, _PAIR):
                st = self._escape_char(st, c)
            elif st == _NUM:
                if c in _NUM_CHARS:
                    self._num += c
                else:
                    self._stack = stack
                    st = self._end_number()
                    if st != _FAIL:
                        if not hold:  # the number just ended: safe up to its last digit
                            safe, self._safe_st, self._safe_stack = i - 1, st, stack
                        continue  # re-read the terminator in the new state
            elif st == _LIT:
                st = self._literal_char(c, stack)
            elif c in _WS:
                pass
            elif st == _DONE:
                logger.debug("tool arguments: ignoring data after the complete JSON value")
                break
            else:
                st, stack, hold = self._structural(st, c, stack, hold)
                if st == _NONOBJ:
                    self._st, self._stack, self._hold = st, stack, hold
                    return -2
            if st == _FAIL:
                break
            i += 1
            if not hold and st not in _UNSAFE:
                safe, self._safe_st, self._safe_stack = i - 1, st, stack
        self._st, self._stack, self._hold = st, stack, hold
        return safe

    def _escape_char(self, st: int, c: str) -> int:
        """One character of an escape sequence (``\\n``, ``\\uXXXX``, surrogate pairs)."""
        if st == _PAIR:
            return _ESC if c == "\\" else self._fail()
        if st == _ESC:
            if c == "u":
                self._hex = 4
                return _UHEX
            return _STRING if c in _SIMPLE_ESC and not self._hex_digits else self._fail()
        if c not in _HEX:
            return self._fail()
        self._hex -= 1
        self._hex_digits += c
        return self._end_unicode_escape() if not self._hex else _UHEX

    def _literal_char(self, c: str, stack: str) -> int:
        """One character of ``true`` / ``false`` / ``null``."""
        if c != self._lit[self._lit_pos]:
            return self._fail()
        self._lit_pos += 1
        if self._lit_pos < len(self._lit):
            return _LIT
        return _AFTER if stack else _DONE

    def _structural(self, st: int, c: str, stack: str, hold: bool) -> tuple[int, str, bool]:
        """A non-whitespace character between tokens; returns ``(state, stack, hold)``."""
        if st == _AFTER:
            top = stack[-1]
            if c == ",":  # held until the next value starts: a trailing comma is unclosable
                return (_KEY if top == "{" else _VALUE), stack, True
            if (c == "}" and top == "{") or (c == "]" and top == "["):
                stack = stack[:-1]
                return (_AFTER if stack else _DONE), stack, hold
            return self._fail(), stack, hold
        if st in (_OBJ_FIRST, _KEY):
            if c == '"':
                self._key = True
                return _STRING, stack, True  # keys are held until their value starts
            if c == "}" and st == _OBJ_FIRST:
                stack = stack[:-1]
                return (_AFTER if stack else _DONE), stack, hold
            return self._fail(), stack, hold
        if st == _COLON:
            return (_VALUE if c == ":" else self._fail()), stack, hold
        # _START, _VALUE, _ARR_FIRST: a value starts (and releases what was held)
        if st == _ARR_FIRST and c == "]":
            stack = stack[:-1]
            return (_AFTER if stack else _DONE), stack, hold
        if st == _START and self._object_only and c != "{":
            return _NONOBJ, stack, True
        if c == '"':
            self._key = False
            return _STRING, stack, False
        if c == "{" or c == "[":
            return (_OBJ_FIRST if c == "{" else _ARR_FIRST), stack + c, False
        if c in _NUM_START:
            self._num = c
            return _NUM, stack, False
        if c in _LITERALS:
            self._lit, self._lit_pos = _LITERALS[c], 1
            return _LIT, stack, False
        return self._fail(), stack, hold


def _close(st: int, stack: str) -> str:
    head = '"' if st == _STRING else ""
    return head + "".join("}" if c == "{" else "]" for c in reversed(stack))


def _wrap_non_object(text: str) -> str:
    try:
        value = _DECODE.decode(text)
    except msgspec.DecodeError:
        logger.warning("tool arguments: unusable JSON replaced by {}")
        return "{}"
    logger.warning('tool arguments: non-object JSON wrapped as {"value": ...}')
    return _ENCODE.encode({"value": value}).decode()


def complete_json(prefix: str) -> str | None:
    """Return the suffix that makes ``prefix`` a complete JSON value.

    Closes open strings (finishing a cut escape), literals, numbers, arrays and
    objects; a dangling key gets ``: null``. Returns ``""`` if ``prefix`` is already
    complete and ``None`` if no suffix can repair it (empty input, a trailing
    comma, or a syntax error).
    """
    scanner = ArgsScanner(object_only=False)
    scanner._scan(prefix)
    return scanner.complete()


def repair_arguments(text: str) -> str:
    """Return the JSON-object text that a stream of ``text`` forwards in total."""
    scanner = ArgsScanner()
    return scanner.feed(text) + scanner.finish()


def parse_arguments(text: str) -> tuple[dict[str, Any], bool]:
    """Parse tool-call arguments into an object; return ``(input, was_repaired)``.

    A valid JSON object is returned as is; empty text is ``{}``; anything else goes
    through :class:`ArgsScanner`, exactly as the stream decoder would forward it.
    """
    if not text or text.isspace():
        return {}, False
    try:
        value = _DECODE.decode(text)
    except msgspec.DecodeError:
        value = None
    if isinstance(value, dict):
        return value, False
    try:
        value = _DECODE.decode(repair_arguments(text))
    except msgspec.DecodeError:  # pragma: no cover - the scanner guarantees valid JSON
        value = {}
    return (value if isinstance(value, dict) else {}), True
