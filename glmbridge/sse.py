"""Server-Sent Events: an incremental decoder (bytes -> events) and an encoder.

Theory of operation
-------------------
The decoder follows the WHATWG "event stream interpretation" algorithm, driven by
whatever byte chunks the transport delivers:

* **Lines.** A line ends at LF, CRLF or a lone CR. Because a CR may be the last byte
  of one chunk and its LF the first byte of the next, a chunk ending in CR sets
  ``_skip_lf`` and a leading LF of the next chunk is then dropped. After line
  endings are normalised to LF, the bytes after the last LF are an incomplete line:
  they wait in ``_pending`` (a list of pieces, so a long line arriving in tiny chunks
  costs linear, not quadratic, time) and never contain CR or LF.
* **Decoding.** Bytes are decoded to text per complete *event* (UTF-8, invalid
  sequences replaced, as the spec says), never per chunk, so a multi-byte character
  split across reads decodes correctly. CR/LF are ASCII and never occur inside a
  UTF-8 sequence, so splitting on them first is safe.
* **Fields.** ``data`` lines are collected and joined with ``"\\n"``; ``event``
  sets the event name; ``id`` sets the last event id (kept across events, as the
  spec's "last event ID buffer"; ignored if it contains NUL); ``retry`` with only
  ASCII digits is reported on the event it arrived in. One space after the colon is
  stripped. Lines starting with ``:`` are comments (keep-alives) and unknown fields
  are ignored. A UTF-8 BOM at the very start of the stream is dropped.
* **Dispatch.** A blank line dispatches the collected event, unless it has no
  ``data`` line (then the block is discarded, per spec). :meth:`SSEDecoder.flush`
  ends the stream: unlike the spec, which drops an unterminated last event, it
  dispatches it (lenient: some upstreams omit the final blank line).
* **Limits.** A line longer than ``max_line_bytes`` raises
  :class:`~glmbridge.errors.UpstreamProtocolError`, so memory stays bounded.
* **Errors are sticky.** After a raise, and after :meth:`SSEDecoder.flush`, every
  call raises :class:`~glmbridge.errors.StreamStateError`.

Speed: each chunk costs a few ``bytes`` methods in C (``find``/``replace``/``split``)
plus one short Python loop over its *lines*; there is no per-byte Python code. When
a chunk holds whole events and no partial line is pending, it is split in place
with no copying or joining. :meth:`SSEDecoder.feed_single_data` recognises the usual
chunk of one event (``data: …`` or ``event: …`` + ``data: …``) with a few bytes methods
and no split, for the stream machine's per-chunk path.
"""

from __future__ import annotations

from enum import Enum

import msgspec

from glmbridge.errors import StreamStateError, UpstreamProtocolError

__all__ = ["DEFAULT_MAX_LINE_BYTES", "SSEDecoder", "ServerSentEvent", "encode_sse_event"]

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
"""The default bound on one line (16 MiB): far above any real chunk, still bounded."""

_BOM = b"\xef\xbb\xbf"
_LF = b"\n"
_LFLF = b"\n\n"
_CR = b"\r"
_CRLF = b"\r\n"
_DATA = b"data:"
_DATA_SP = b"data: "
_EVENT_SP = b"event: "
_LF_DATA_SP = b"\ndata: "
_COLON = 0x3A  # ":" as an int, to compare with line[0]
_LF_INT = 0x0A  # ints: `int in bytes` is a memchr
_CR_INT = 0x0D


class _State(Enum):
    """Life cycle of a decoder."""

    OPEN = "open"
    CLOSED = "closed"  # flush() was called
    ERROR = "error"  # a previous call raised


class ServerSentEvent(msgspec.Struct, frozen=True):
    """One dispatched event.

    Attributes:
        event: the ``event:`` name, or ``None`` when absent or empty.
        data: the ``data:`` lines joined with ``"\\n"``.
        id: the last event id seen so far in the stream (``None`` if never set).
        retry: the ``retry:`` value given in this event, if any (milliseconds).
    """

    event: str | None
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental SSE parser: ``feed(bytes) -> list[ServerSentEvent]``, then ``flush()``.

    Args:
        max_line_bytes: the longest line accepted; a longer one raises
            :class:`UpstreamProtocolError`.
    """

    def __init__(self, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self._max = max_line_bytes
        self._state = _State.OPEN
        self._pending: list[bytes] = []  # pieces of the incomplete last line
        self._pending_len = 0
        self._skip_lf = False  # the previous chunk ended with CR
        self._at_start = True  # no complete line yet: a BOM may still be there
        self._data: list[bytes] = []  # data lines of the event being collected
        self._event: bytes | None = None
        self._retry: int | None = None
        self._last_id: str | None = None
        # True when the fast path in feed() is safe: open, started, nothing pending.
        self._clean = False

    def feed_single_data(self, chunk: bytes) -> str | None:
        """Return the data of ``chunk`` if it is exactly one single-line data event.

        A shortcut for the usual framing of upstreams (one event per network chunk):
        ``data: ...\n\n`` (OpenAI style), optionally preceded by one ``event: ...\n``
        line (Anthropic style; the name is not returned: the payload names its type).
        When the decoder holds no partial line or event and ``chunk`` is such an event
        in valid UTF-8, its payload is returned — exactly what :meth:`feed` would have
        put in ``ServerSentEvent.data``, without building the event. Otherwise nothing
        is consumed and ``None`` is returned: the caller then calls :meth:`feed` with
        the same chunk (which also handles invalid UTF-8 the spec's way).
        """
        if not self._clean or len(chunk) > self._max:
            return None
        if chunk.startswith(_DATA_SP):  # GLM's framing, on the per-chunk hot path: inlined
            payload = chunk[6:-2]
            if chunk[-1] == _LF_INT == chunk[-2] and _LF_INT not in payload:
                if _CR_INT in payload:
                    return None
                try:
                    return payload.decode("utf-8")
                except UnicodeDecodeError:
                    return None
            return None
        if chunk.startswith(_EVENT_SP):
            # Three LFs in all, two of them at the end: the one before "data: " ends the
            # event line, and the payload (between "data: " and the end) holds none.
            start = chunk.find(_LF_DATA_SP) + 7
            if (
                start > 7
                and chunk[-1] == _LF_INT == chunk[-2]
                and chunk.count(_LF_INT) == 3
                and _CR_INT not in chunk
            ):
                try:
                    return chunk[start:-2].decode("utf-8")
                except UnicodeDecodeError:
                    return None
        return None

    @staticmethod
    def _single(chunk: bytes, start: int) -> str | None:
        payload = chunk[start:-2]
        if chunk[-1] == _LF_INT == chunk[-2] and _LF_INT not in payload and _CR_INT not in payload:
            try:
                return payload.decode("utf-8")
            except UnicodeDecodeError:
                return None
        return None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse ``chunk`` and return the events it completes (often none or one).

        Raises:
            UpstreamProtocolError: a line is longer than ``max_line_bytes``.
            StreamStateError: called after :meth:`flush` or after an error.
        """
        # Fast path: the chunk is exactly one "data: ...\n\n" event and the decoder
        # holds nothing (no partial line or event, no pending CR): GLM's usual framing.
        if self._clean and chunk.startswith(_DATA_SP) and len(chunk) <= self._max:
            data = self._single(chunk, 6)
            if data is not None:
                return [ServerSentEvent(None, data, self._last_id)]
        if self._state is not _State.OPEN:
            self._fail_closed("feed")
        if not chunk:
            return []
        self._clean = False
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == _LF_INT:
                chunk = chunk[1:]
                if not chunk:
                    return []
        if _LF_INT not in chunk and _CR_INT not in chunk:
            # No line ends here: just remember the piece (the common case for big lines).
            self._pending.append(bytes(chunk))
            self._pending_len += len(chunk)
            if self._pending_len > self._max:
                self._raise(UpstreamProtocolError(self._too_long()))
            return []
        if self._pending:
            self._pending.append(chunk)
            buf = b"".join(self._pending)
            self._pending.clear()
            self._pending_len = 0
        else:
            buf = bytes(chunk)
        if _CR_INT in buf:
            self._skip_lf = buf[-1] == _CR_INT
            buf = buf.replace(_CRLF, _LF).replace(_CR, _LF)
        lines = buf.split(_LF)
        rest = lines.pop()  # bytes after the last line end: an incomplete line
        if rest:
            self._pending.append(rest)
            self._pending_len = len(rest)
        if len(buf) > self._max and any(len(line) > self._max for line in lines):
            self._raise(UpstreamProtocolError(self._too_long()))
        if self._at_start:
            self._at_start = False
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][3:]
        if self._pending_len > self._max:
            self._raise(UpstreamProtocolError(self._too_long()))
        out = self._process(lines)
        self._clean = not (
            self._pending or self._skip_lf or self._data or self._event or self._retry is not None
        )
        return out

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: parse a final unterminated line and dispatch a final event.

        The spec would drop an event not followed by a blank line; we dispatch it
        (lenient). After this call the decoder is closed.
        """
        if self._state is not _State.OPEN:
            self._fail_closed("flush")
        self._state = _State.CLOSED
        self._clean = False
        lines: list[bytes] = []
        if self._pending:
            line = b"".join(self._pending)
            self._pending.clear()
            if self._at_start and line.startswith(_BOM):
                line = line[3:]
            lines.append(line)
        lines.append(b"")  # end of stream ends the last event
        return self._process(lines)

    # -- internals ---------------------------------------------------------------------

    def _process(self, lines: list[bytes]) -> list[ServerSentEvent]:
        """Apply complete lines; return the events dispatched by blank lines."""
        out: list[ServerSentEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    out.append(self._dispatch())
                    data = self._data
                else:
                    self._event = None
                    self._retry = None
            elif line.startswith(_DATA_SP):  # the hot path: "data: {...}"
                data.append(line[6:])
            elif line.startswith(_EVENT_SP):  # Anthropic's framing names every event
                self._event = line[7:]  # as _field would set it, without the call
            elif line.startswith(_DATA):
                data.append(line[5:])
            elif line[0] != _COLON:
                self._field(line)
        return out

    def _field(self, line: bytes) -> None:
        """Apply one non-comment line other than ``data:<value>``."""
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name = line[:colon]
            value = line[colon + 2 :] if line[colon + 1 : colon + 2] == b" " else line[colon + 1 :]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id" and b"\x00" not in value:  # an id with NUL is ignored
            self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():  # bytes.isdigit() is ASCII-only, per spec
            self._retry = int(value)
        # Any other field name (or a bad id/retry value) is ignored, per spec.

    def _dispatch(self) -> ServerSentEvent:
        """Build the collected event and reset the per-event buffers."""
        data = self._data
        text = (data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", "replace")
        name = self._event
        event = ServerSentEvent(
            name.decode("utf-8", "replace") if name else None, text, self._last_id, self._retry
        )
        self._data = []
        self._event = None
        self._retry = None
        return event

    def _too_long(self) -> str:
        return f"SSE line longer than {self._max} bytes"

    def _raise(self, exc: Exception) -> None:
        self._state = _State.ERROR
        self._clean = False
        self._pending.clear()
        self._data = []
        raise exc

    def _fail_closed(self, method: str) -> None:
        why = "after an error" if self._state is _State.ERROR else "after flush()"
        raise StreamStateError(f"SSEDecoder.{method}() called {why}")


def encode_sse_event(data: bytes, event: str | None = None) -> bytes:
    """Frame ``data`` as one SSE event (``event:`` line first when given).

    A payload containing line breaks becomes several ``data:`` lines, which a
    decoder joins back with ``"\\n"``.

    Raises:
        ValueError: ``event`` contains a line break.
    """
    if _LF in data or _CR in data:
        data = data.replace(_CRLF, _LF).replace(_CR, _LF).replace(_LF, b"\ndata: ")
    if event is None:
        return b"data: " + data + b"\n\n"
    if "\n" in event or "\r" in event:
        raise ValueError("SSE event name must not contain a line break")
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
