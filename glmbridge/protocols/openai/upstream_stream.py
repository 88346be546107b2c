"""The GLM / OpenAI chat-completion stream decoder: SSE data payloads -> IR events.

Theory of operation
-------------------
**Input.** One call of :meth:`StreamDecoder.feed` per SSE ``data:`` payload: a JSON
chunk ``{"choices": [{"delta": {...}, "finish_reason": ...}], "usage": ...}``, an
in-band ``{"error": {...}}``, or the sentinel ``[DONE]``. Accepted upstream grammar
(GLM, wire-specs A.9; plain OpenAI, C.5)::

    chunk*  ( finish chunk  (chunk | finish chunk | usage-only chunk)* )?  [DONE]?

Only ``choices[0]`` is read. ``object`` may be missing, ``role`` may repeat on every
delta, and usage may come on the finish chunk or after it; the last usage seen counts.

**The finish reason is provisional until the stream ends.** GLM without ``tool_stream``
sends parallel tool calls one chunk per call, and on the Coding Plan endpoint *each*
of those chunks already carries ``finish_reason: "tool_calls"``, repeated once more on
the final usage chunk (zai-fidelity 3.5, recorded traffic W45: charmbracelet/fantasy
``zai-glm-4.5/multi_tool_streaming.yaml``). So content after a finish reason is decoded
like any other (every call is kept), and the last non-null finish reason counts.

**Output.** Exactly the grammar of :mod:`glmbridge.events`: one ``MessageStart``
(on the first payload, ``usage.input_tokens`` = the caller's estimate), then blocks
with indices 0, 1, 2 … one at a time, each ``BlockStart (delta)* BlockStop`` with
deltas matching the block type, then one ``MessageDelta`` (stop reason, final usage)
and ``MessageStop``; or, on failure, ``StreamError`` and nothing after it.

**Segmentation.** ``reasoning_content`` -> thinking block, ``content`` -> text
block, ``tool_calls[i]`` -> tool_use block keyed by the upstream ``index``. A chunk
carrying several kinds is handled in the order reasoning, content, tool calls, then
finish and usage. Every change of kind closes the open block and opens a new one, so
reason -> text -> tool -> reason gives four blocks. A thinking block ends with a
``SignatureDelta`` (``ids.thinking_signature`` of its full text). Whitespace-only
text or reasoning never opens a block: it is held and prepended to the next real
text of the same kind (GLM often starts with ``"\\n"``); inside an open block
whitespace is forwarded verbatim.

**Tool calls.** Arguments go through :class:`glmbridge._tool_args.ArgsScanner`,
which forwards only text that a suffix can still close, and closes the block as soon
as the JSON object is complete. A tool block opens once its name is known (id and
name may come after the first argument fragment); until then its arguments are
buffered. Only one block is open at a time, so while a tool block with incomplete
JSON is open, everything else (other indices, text, reasoning) waits in an ordered
backlog and is replayed when it closes. At the end, the backlog is flushed: unnamed
calls get ``tool_<index>`` and a generated id; a tool block closing with incomplete
JSON (``finish_reason: length``) gets a repair suffix, so the concatenated
``partial_json`` is always a valid object (``"{}"`` if nothing usable arrived).

**Usage and the end.** A ``finish_reason`` only marks the answer as given
(:attr:`StreamDecoder.answered`); blocks close at ``[DONE]`` or :meth:`flush` (a tool
block closes earlier, as soon as its JSON is complete), so text that follows a
provisional finish continues its block, as the non-stream answer joins it. The
``MessageDelta`` is held until then too: usage and more calls may still come.
``network_error`` and ``abort`` (aborted generation: ``upstream_errors.FINISH_ERRORS``)
and ``{"error": ...}`` chunks close the open block and emit ``StreamError``; later
payloads are ignored.

**Truncation.** If the upstream stops without a ``finish_reason`` (connection cut,
or ``[DONE]`` with no finish), the open block is closed and a
``StreamError(api_error, "upstream stream ended before completion")`` ends the
stream: a cut-off answer is never reported as a complete one.

**Errors.** Bad JSON raises :class:`UpstreamProtocolError`; after any raise, and
after :meth:`flush`, every call raises :class:`StreamStateError`.

**Speed.** A payload is decoded as it is, straight into the typed structs of ``wire``;
blank payloads, ``[DONE]`` and whitespace JSON does not allow around a chunk are
recognised only when that fails (``_feed_unusual``). A chunk that only continues the
open block (more text, more reasoning, or the next argument fragment of the open tool
call) takes a hot path in :meth:`StreamDecoder.feed` with the same result as the general
path ``_on_chunk`` (``tests/glmbridge/test_stream_fast_paths.py`` compares them).
"""

from __future__ import annotations

import logging
from collections import deque
from enum import Enum
from typing import Any

import msgspec

from glmbridge import events as ev
from glmbridge import ids, ir
from glmbridge._tool_args import ArgsScanner
from glmbridge.errors import (
    ErrorKind,
    StreamStateError,
    UpstreamError,
    UpstreamProtocolError,
)
from glmbridge.protocols.openai import wire as w
from glmbridge.upstream_errors import FINISH_ERRORS, error_from_parts

__all__ = ["StreamDecoder"]

logger = logging.getLogger("glmbridge.protocols.openai")

TRUNCATED_MESSAGE = "upstream stream ended before completion"


class _State(Enum):
    """Where the decoder is in the upstream grammar."""

    IDLE = "before the first payload"
    STREAMING = "streaming"
    FINISHED = "after finish_reason"  # provisional: more content may come; MessageDelta held
    DONE = "after [DONE]"
    FAILED = "after a StreamError"
    CLOSED = "after flush"
    ERROR = "after an exception"


# The states in which a payload is not decoded (a tuple: ``in`` compares by identity in C).
_ENDED = (_State.DONE, _State.FAILED, _State.CLOSED, _State.ERROR)


class _Kind(Enum):
    """Block kinds, one per upstream payload kind."""

    THINKING = "thinking"
    TEXT = "text"
    TOOL = "tool_use"


class _Tool:
    """One upstream tool call (keyed by its ``index``)."""

    __slots__ = ("buffer", "closed", "id", "key", "name", "scanner")

    def __init__(self, key: int) -> None:
        self.key = key
        self.id: str | None = None
        self.name: str | None = None
        self.buffer: list[str] = []  # argument fragments received before the block opened
        self.scanner = ArgsScanner()
        self.closed = False


class _Block:
    """The open output block."""

    __slots__ = ("index", "kind", "parts", "tool")

    def __init__(self, kind: _Kind, index: int, tool: _Tool | None = None) -> None:
        self.kind = kind
        self.index = index
        self.tool = tool
        self.parts: list[str] = []  # thinking text, for the signature


# The members the per-chunk path compares with, as module globals: in CPython 3.11 reading
# ``_State.X`` is a slow attribute lookup on the enum class (~50 ns), a global a few ns.
_IDLE, _STREAMING = _State.IDLE, _State.STREAMING
_TEXT, _THINKING = _Kind.TEXT, _Kind.THINKING
_DECODE_CHUNK = w.DECODE_COMPLETION.decode

_DONE_MARK = "[DONE]"
_DONE_MARK_B = b"[DONE]"


class StreamDecoder:
    """Turn GLM / OpenAI chat-completion stream payloads into :mod:`glmbridge.events`.

    Args:
        model: the model name the client asked for (echoed in ``MessageStart``).
        message_id: the message id to use; a fresh ``msg_…`` id when ``None``.
        input_tokens_estimate: prompt-size estimate for ``MessageStart`` (and for the
            final usage if the upstream never reports usage).
        dialect: the upstream's quirks.
    """

    def __init__(
        self,
        *,
        model: str,
        message_id: str | None = None,
        input_tokens_estimate: int = 0,
        dialect: w.Dialect = w.GLM,
    ) -> None:
        self._model = model
        self._id = message_id or ids.new_message_id()
        self._estimate = input_tokens_estimate
        self._dialect = dialect
        self._state = _State.IDLE
        self._open: _Block | None = None
        self._next_index = 0
        self._tools: dict[int, _Tool] = {}
        self._backlog: deque[tuple[_Kind, Any]] = deque()
        self._lead = {_Kind.THINKING: "", _Kind.TEXT: ""}
        self._tool_blocks = 0
        self._finish: str | None = None
        self._usage: w.RespUsage | None = None
        self.error: UpstreamError | None = None
        """The upstream failure behind an emitted ``StreamError`` (status, code, retryable)."""

    # -- public -------------------------------------------------------------------------

    @property
    def answered(self) -> bool:
        """Whether the finish reason has been decoded (only usage may still come)."""
        return self._state is _State.FINISHED or self._state is _State.DONE

    def feed(self, data: bytes | str) -> list[ev.Event]:
        """Decode one SSE ``data:`` payload (a JSON chunk or ``[DONE]``) into events.

        Raises:
            UpstreamProtocolError: the payload is not a valid chunk (sticky).
            StreamStateError: called after :meth:`flush` or after an exception.
        """
        state = self._state
        if state in _ENDED:
            return self._after_end(state)
        try:
            chunk = _DECODE_CHUNK(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return self._feed_unusual(data)  # blank, [DONE], odd whitespace, or bad
        out: list[ev.Event] = []
        if state is _IDLE:
            self._start(out)
        choices = chunk.choices
        if choices and chunk.error is None and chunk.usage is None:
            choice = choices[0]
            # Hot path (nearly every chunk): more text, reasoning or tool arguments for
            # the open block, nothing else in the chunk. Same result as _on_chunk.
            delta = choice.delta
            blk = self._open
            if (
                blk is not None
                and delta is not None
                and choice.finish_reason is None
                and not self._backlog
                and self._state is _STREAMING
            ):
                content = delta.content
                reasoning = delta.reasoning_content
                calls = delta.tool_calls
                if not calls:
                    if content and not reasoning and blk.kind is _TEXT:
                        out.append(ev.TextDelta(index=blk.index, text=content))
                        return out
                    if reasoning and not content and blk.kind is _THINKING:
                        blk.parts.append(reasoning)
                        out.append(ev.ThinkingDelta(index=blk.index, thinking=reasoning))
                        return out
                elif not content and not reasoning and self._next_args(blk, calls, out):
                    return out
        self._on_chunk(chunk, out)
        return out

    def _feed_unusual(self, data: bytes | str) -> list[ev.Event]:
        """:meth:`feed` for a payload that is not a plain JSON chunk: blank (nothing),
        ``[DONE]``, a chunk with whitespace JSON does not allow around it, or bad."""
        stripped = data.strip()
        if not stripped:
            return []
        out: list[ev.Event] = []
        if self._state is _IDLE:
            self._start(out)
        if stripped in (_DONE_MARK_B, _DONE_MARK):
            self._on_done(out)
            return out
        try:
            chunk = _DECODE_CHUNK(stripped)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._state = _State.ERROR
            raise UpstreamProtocolError(f"upstream stream chunk is not valid: {exc}") from None
        self._on_chunk(chunk, out)
        return out

    def _on_chunk(self, chunk: w.ChatCompletion, out: list[ev.Event]) -> None:
        """The general path of one decoded chunk."""
        if chunk.error is not None:
            self._fail(error_from_parts(200, chunk.error.code, chunk.error.message), out)
            return
        if chunk.choices:
            self._on_choice(chunk.choices[0], out)
        if chunk.usage is not None:
            self._usage = chunk.usage

    def _after_end(self, state: _State) -> list[ev.Event]:
        """A payload after the end: misuse after :meth:`flush` or an exception, else ignored."""
        if state is _State.CLOSED or state is _State.ERROR:
            raise StreamStateError(f"StreamDecoder.feed called {state.value}")
        logger.debug("payload %s ignored", state.value)
        return []

    def _next_args(self, blk: _Block, calls: list[w.RespToolCall], out: list[ev.Event]) -> bool:
        """Hot path of :meth:`feed`: the delta (no text, no reasoning) is only the next
        argument fragment of the open tool block (tool_stream), with nothing that
        _tool_delta would record; same result as that path. False: it is not, and
        nothing was done."""
        slot = blk.tool
        if slot is None or len(calls) != 1:
            return False
        call = calls[0]
        fn = call.function
        if (
            fn is None
            or call.index != slot.key
            or (call.id and call.id != slot.id)
            or (fn.name and fn.name != slot.name)
        ):
            return False
        args = fn.arguments
        if not isinstance(args, str):
            return False
        # _feed_args, inlined: this path replaces that call, so a fragment costs no more calls.
        scanner = slot.scanner
        piece = scanner.feed(args) if args else ""
        if piece:
            out.append(ev.InputJsonDelta(index=blk.index, partial_json=piece))
        if scanner.done:
            self._close(out)
            self._drain(out)
        return True

    def flush(self) -> list[ev.Event]:
        """End of the upstream stream: finish cleanly or report truncation.

        Returns ``[]`` if the stream already ended; the held ``MessageDelta`` and
        ``MessageStop`` if a finish reason was seen; otherwise closes the open block
        and returns a ``StreamError`` (preceded by ``MessageStart`` if nothing came).
        """
        state = self._state
        if state is _State.CLOSED or state is _State.ERROR:
            raise StreamStateError(f"StreamDecoder.flush called {state.value}")
        out: list[ev.Event] = []
        if state is _State.FINISHED:
            self._end(out)
        elif state is _State.IDLE or state is _State.STREAMING:
            if state is _State.IDLE:
                self._start(out)
            self._truncated(out)
        self._state = _State.CLOSED
        return out

    # -- upstream events --------------------------------------------------------------

    def _start(self, out: list[ev.Event]) -> None:
        usage = ir.Usage(input_tokens=self._estimate)
        out.append(ev.MessageStart(id=self._id, model=self._model, usage=usage))
        self._state = _State.STREAMING

    def _on_choice(self, choice: w.RespChoice, out: list[ev.Event]) -> None:
        delta = choice.delta if choice.delta is not None else choice.message
        if delta is not None:
            # Also after a finish reason: it is provisional (module docstring).
            if delta.reasoning_content:
                self._text(_Kind.THINKING, delta.reasoning_content, out)
            if delta.content:
                self._text(_Kind.TEXT, delta.content, out)
            if delta.tool_calls:
                for position, call in enumerate(delta.tool_calls):
                    self._tool_delta(call, position, out)
        if choice.finish_reason:
            self._on_finish(choice.finish_reason, out)

    def _on_finish(self, reason: str, out: list[ev.Event]) -> None:
        self._finish = reason
        failure = FINISH_ERRORS.get(reason)
        if failure is not None:  # network_error, abort: the generation was aborted
            self._fail(UpstreamError(failure, status=200, retryable=True), out)
            return
        self._state = _State.FINISHED  # answered; blocks stay open for what may follow

    def _settle(self, out: list[ev.Event]) -> None:
        """Open every waiting call and close the open block (repairing its JSON)."""
        self._drain(out, force=True)
        self._close(out)

    def _on_done(self, out: list[ev.Event]) -> None:
        if self._state is _State.FINISHED:
            self._end(out)
            self._state = _State.DONE
        else:
            self._truncated(out)

    def _end(self, out: list[ev.Event]) -> None:
        self._settle(out)  # content that followed a provisional finish reason
        reason = w.stop_reason(self._finish, has_tool_use=self._tool_blocks > 0)
        usage = w.usage_to_ir(self._usage, input_estimate=self._estimate)
        out.append(ev.MessageDelta(stop_reason=reason, usage=usage))
        out.append(ev.MessageStop())

    def _truncated(self, out: list[ev.Event]) -> None:
        logger.warning("upstream stream ended without a finish_reason")
        err = UpstreamError(TRUNCATED_MESSAGE, kind=ErrorKind.API_ERROR, retryable=True)
        self._fail(err, out)

    def _fail(self, err: UpstreamError, out: list[ev.Event]) -> None:
        """Close the open block (dropping the backlog) and end with a StreamError."""
        self._close(out)
        self._backlog.clear()
        self.error = err
        out.append(ev.StreamError(kind=err.kind, message=err.message))
        self._state = _State.FAILED

    # -- text and reasoning ----------------------------------------------------------

    def _text(self, kind: _Kind, text: str, out: list[ev.Event]) -> None:
        blk = self._open
        if blk is not None and blk.kind is kind and not self._backlog:
            # Hot path (most chunks): more text for the open block; as _emit_text does.
            if kind is _Kind.TEXT:
                out.append(ev.TextDelta(index=blk.index, text=text))
            else:
                blk.parts.append(text)
                out.append(ev.ThinkingDelta(index=blk.index, thinking=text))
            return
        if self._backlog or (blk is not None and blk.kind is _Kind.TOOL):
            self._backlog.append((kind, text))  # an open tool's JSON is incomplete: wait
        else:
            self._emit_text(kind, text, out)

    def _emit_text(self, kind: _Kind, text: str, out: list[ev.Event]) -> None:
        blk = self._open
        if blk is None or blk.kind is not kind:
            if text.isspace():
                self._lead[kind] += text  # never open a block for whitespace alone
                return
            self._close(out)
            text = self._lead[kind] + text
            self._lead[kind] = ""
            blk = self._new_block(kind, out)
        if kind is _Kind.TEXT:
            out.append(ev.TextDelta(index=blk.index, text=text))
        else:
            blk.parts.append(text)
            out.append(ev.ThinkingDelta(index=blk.index, thinking=text))

    # -- tool calls -------------------------------------------------------------------

    def _tool_delta(self, call: w.RespToolCall, position: int, out: list[ev.Event]) -> None:
        key = call.index if call.index is not None else position
        slot = self._tools.get(key)
        if slot is not None and call.id and slot.id and call.id != slot.id:
            # A new call reusing an index (some upstreams send each whole call at 0).
            key = -len(self._tools) - 1
            slot = None
        is_new = slot is None
        if slot is None:
            slot = self._tools[key] = _Tool(key)
        if call.id and slot.id is None:
            slot.id = call.id
        fn = call.function
        args = ""
        if fn is not None:
            if fn.name and slot.name is None:
                slot.name = fn.name
            raw = fn.arguments
            if raw is not None:
                args = raw if isinstance(raw, str) else w.ENCODE.encode(raw).decode()
        blk = self._open
        if slot.closed:
            if args.strip():
                logger.warning("arguments for an already closed tool call ignored")
        elif blk is not None and blk.tool is slot:
            self._feed_args(blk, args, out)
            if slot.scanner.done:
                self._close(out)
                self._drain(out)
        else:
            if args:
                slot.buffer.append(args)
            if is_new:
                self._backlog.append((_Kind.TOOL, slot))
            self._drain(out)

    def _feed_args(self, blk: _Block, args: str, out: list[ev.Event]) -> None:
        piece = blk.tool.scanner.feed(args) if args else ""  # type: ignore[union-attr]
        if piece:
            out.append(ev.InputJsonDelta(index=blk.index, partial_json=piece))

    def _open_tool(self, slot: _Tool, out: list[ev.Event]) -> None:
        self._close(out)
        tool_id = ids.sanitize_tool_id(slot.id) if slot.id else ids.new_tool_use_id()
        name = slot.name or f"tool_{max(slot.key, 0)}"
        index = self._next_index
        self._next_index += 1
        shell = ir.ToolUseBlock(id=tool_id, name=name, input={})
        out.append(ev.BlockStart(index=index, block=shell))
        blk = self._open = _Block(_Kind.TOOL, index, slot)
        self._tool_blocks += 1
        if slot.buffer:
            self._feed_args(blk, "".join(slot.buffer), out)
            slot.buffer = []
        if slot.scanner.done:
            self._close(out)

    def _drain(self, out: list[ev.Event], *, force: bool = False) -> None:
        """Replay the backlog in order while no incomplete tool block is open.

        With ``force`` (at finish) an open tool block is closed (repairing its JSON)
        and unnamed tool calls are opened anyway.
        """
        backlog = self._backlog
        while True:
            blk = self._open
            if blk is not None and blk.kind is _Kind.TOOL:
                if not force:
                    return
                self._close(out)
            if not backlog:
                return
            kind, item = backlog[0]
            if kind is _Kind.TOOL:
                if item.name is None and not force:
                    return
                backlog.popleft()
                self._open_tool(item, out)
            else:
                backlog.popleft()
                self._emit_text(kind, item, out)

    # -- blocks -----------------------------------------------------------------------

    def _new_block(self, kind: _Kind, out: list[ev.Event]) -> _Block:
        index = self._next_index
        self._next_index += 1
        shell: ir.Block
        shell = ir.TextBlock(text="") if kind is _Kind.TEXT else ir.ThinkingBlock(thinking="")
        out.append(ev.BlockStart(index=index, block=shell))
        blk = self._open = _Block(kind, index)
        return blk

    def _close(self, out: list[ev.Event]) -> None:
        blk = self._open
        if blk is None:
            return
        if blk.kind is _Kind.THINKING:
            signature = ids.thinking_signature("".join(blk.parts))
            out.append(ev.SignatureDelta(index=blk.index, signature=signature))
        elif blk.kind is _Kind.TOOL:
            slot = blk.tool
            tail = slot.scanner.finish()  # type: ignore[union-attr]
            if tail:
                out.append(ev.InputJsonDelta(index=blk.index, partial_json=tail))
            slot.closed = True  # type: ignore[union-attr]
        out.append(ev.BlockStop(index=blk.index))
        self._open = None
