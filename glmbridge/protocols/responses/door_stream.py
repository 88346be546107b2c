"""The Responses stream encoder: IR events -> ``response.*`` SSE events.

Theory of operation
-------------------
Input: the IR event grammar of :mod:`glmbridge.events`. Output: the Responses event
stream, every frame ``event: <type>\\ndata: {"type": <type>, "sequence_number": n, …}``
with ``n`` counting from 0::

    MessageStart   -> response.created, response.in_progress
    BlockStart     -> response.output_item.added  (+ content_part.added for text,
                      reasoning_summary_part.added for thinking)
    TextDelta      -> response.output_text.delta
    ThinkingDelta  -> response.reasoning_summary_text.delta
    InputJsonDelta -> response.function_call_arguments.delta (free-form tools: held)
    BlockStop      -> the matching *.done events, then response.output_item.done
    MessageDelta   -> (stop reason and usage kept)
    MessageStop    -> response.completed, or response.incomplete (max tokens, refusal)
    StreamError    -> response.failed (or :meth:`StreamEncoder.fail`)

Each IR block is one output item (``output_index`` = its position), built by
:class:`~glmbridge.protocols.responses.items.Naming` exactly as the non-streamed body
builds it, so the final ``response.output`` equals the non-streamed ``output``.

A free-form (``custom``) tool's call arrives as JSON arguments ``{"input": "…"}``; the
client expects the raw input, so the arguments are held until the block ends and
then sent as one ``custom_tool_call_input.delta``.

A failure ends the stream with ``response.failed`` (its ``error.code`` is OpenAI's:
``rate_limit_exceeded``, ``server_error`` …); an item still open stays unfinished, and
the failed response lists only the finished ones.
"""

from __future__ import annotations

import math
import time
from typing import Any

import msgspec

from glmbridge import events as ev
from glmbridge import ids, ir
from glmbridge._tool_args import parse_arguments
from glmbridge.errors import ErrorKind, GlmbridgeError, StreamStateError, UpstreamError
from glmbridge.protocols.openai.errors import openai_error
from glmbridge.protocols.responses.door_response import response_id
from glmbridge.protocols.responses.items import (
    Naming,
    freeform_input,
    output_text,
    response_object,
    search_sources,
    status_of,
)

__all__ = ["StreamEncoder"]

_ENCODE = msgspec.json.Encoder(decimal_format="number")
_ENCODE_STR = _ENCODE.encode


class _Item:
    """The open output item."""

    __slots__ = ("block", "held", "index", "item_id", "kind", "parts")

    def __init__(self, kind: str, index: int, item_id: str, block: ir.Block,
                 held: bool = False) -> None:  # fmt: skip
        self.kind = kind  # "message" | "reasoning" | "call" | "search"
        self.index = index
        self.item_id = item_id
        self.block = block
        self.held = held  # a free-form call: its deltas are held until the block ends
        self.parts: list[str] = []


class StreamEncoder:
    """IR events -> Responses SSE events (see the module docstring).

    Args:
        model: the model name the client asked for.
        echo: the request settings the response object repeats (``ir.Request.echo``).
        created_at: the Unix time in the response object (now when omitted).
    """

    def __init__(self, *, model: str, echo: dict[str, Any],
                 created_at: int | None = None) -> None:  # fmt: skip
        self._model = model
        self._echo = echo
        self._created = int(time.time()) if created_at is None else created_at
        self._seq = 0
        self._id = ""
        self._naming: Naming | None = None
        self._open: _Item | None = None
        self._output: list[dict[str, Any]] = []
        self._delta_frame = b""  # the open item's delta frame: "%d" sequence, "%b" JSON
        self._stop: ir.StopReason | None = None
        self._usage: ir.Usage | None = None
        self._signature: str | None = None
        self._in_progress = b"{}"  # the in-progress response object's JSON
        self._done = False
        self._search: _Item | None = None  # a web search waiting for its result block

    # -- framing ---------------------------------------------------------------------------

    def _event(self, kind: str, body: dict[str, Any]) -> bytes:
        seq = self._seq
        self._seq += 1
        payload = {"type": kind, "sequence_number": seq, **body}
        return b"".join((b"event: ", kind.encode(), b"\ndata: ", _ENCODE.encode(payload), b"\n\n"))

    def _response_events(self, response: bytes, *kinds: str) -> bytes:
        """Events whose payload is ``{"response": response}`` (a response object's JSON),
        framed as :meth:`_event` frames them: the object, which echoes the request's tools
        (tens of KB), is copied once per event instead of encoded again."""
        parts: list[bytes] = []
        for kind in kinds:
            name = kind.encode()
            parts += (b"event: ", name, b'\ndata: {"type":"', name, b'","sequence_number":',
                      b"%d" % self._seq, b',"response":', response, b"}\n\n")  # fmt: skip
            self._seq += 1
        return b"".join(parts)

    def _set_delta(self, kind: str, extra: bytes) -> None:
        item = self._open
        assert item is not None
        head = (b"event: " + kind.encode() + b'\ndata: {"type":"' + kind.encode()
                + b'","sequence_number":')  # fmt: skip
        mid = (b',"item_id":"' + item.item_id.encode() + b'","output_index":'
               + str(item.index).encode() + extra + b',"delta":')  # fmt: skip
        tail = b',"logprobs":[]}\n\n' if item.kind == "message" else b"}\n\n"
        # One %-template per item: a delta is then one format of (sequence number, JSON
        # string); "%" in the fixed parts is doubled so it stays literal.
        self._delta_frame = b"%d".join((head.replace(b"%", b"%%"),
                                        b"%b".join((mid.replace(b"%", b"%%"), tail))))  # fmt: skip

    def _response(self, status: str, *, output: list[dict[str, Any]] | None = None,
                  reason: str | None = None, error: dict[str, Any] | None = None,
                  usage: ir.Usage | None = None) -> dict[str, Any]:  # fmt: skip
        return response_object(
            response_id=self._id, created_at=self._created, model=self._model,
            echo=self._echo, status=status, output=output if output is not None else [],
            usage=usage, incomplete_reason=reason, error=error,
        )  # fmt: skip

    # -- events ----------------------------------------------------------------------------

    def feed(self, event: ev.Event) -> bytes:
        """Encode one IR event."""
        item = self._open
        if item is None:
            return self._feed_slow(event)
        kind = type(event)
        if kind is ev.TextDelta:
            text = event.text  # type: ignore[union-attr]
        elif kind is ev.ThinkingDelta:
            text = event.thinking  # type: ignore[union-attr]
        elif kind is ev.InputJsonDelta:
            text = event.partial_json  # type: ignore[union-attr]
            if item.held:
                item.parts.append(text)
                return b""
        else:
            return self._feed_slow(event)
        item.parts.append(text)
        seq = self._seq
        self._seq = seq + 1
        return self._delta_frame % (seq, _ENCODE_STR(text))

    def _feed_slow(self, event: ev.Event) -> bytes:
        if self._done:
            raise StreamStateError("stream encoder fed after the end")
        if isinstance(event, ev.MessageStart):
            return self._begin(event.id)
        if isinstance(event, ev.BlockStart):
            return self._start(event.block)
        if isinstance(event, ev.SignatureDelta):
            self._signature = event.signature
            return b""
        if isinstance(event, ev.BlockStop):
            return self._stop_item()
        if isinstance(event, ev.MessageDelta):
            self._stop, self._usage = event.stop_reason, event.usage
            return b""
        if isinstance(event, ev.MessageStop):
            return self._finish()
        if isinstance(event, ev.StreamError):
            return self.fail(UpstreamError(event.message, kind=event.kind))
        return b""  # Ping

    def _begin(self, message_id: str) -> bytes:
        self._id = response_id(message_id)
        self._naming = Naming(message_id, self._echo)
        self._in_progress = _ENCODE.encode(self._response("in_progress"))
        return self._response_events(self._in_progress, "response.created",
                                     "response.in_progress")  # fmt: skip

    def keepalive(self) -> bytes:
        """``response.in_progress`` again: Codex's idle timer counts events, not comments."""
        if not self._id or self._done:
            return b""
        return self._response_events(self._in_progress, "response.in_progress")

    def _start(self, block: ir.Block) -> bytes:
        naming = self._naming
        assert naming is not None
        index = len(self._output)
        if isinstance(block, ir.TextBlock):
            added = naming.message(index, None, "in_progress")
            kind, extra, delta = "message", b',"content_index":0', "response.output_text.delta"
        elif isinstance(block, ir.ThinkingBlock):
            added = naming.reasoning(index, "", None, "in_progress")
            added.pop("encrypted_content", None)
            kind, extra, delta = ("reasoning", b',"summary_index":0',
                                  "response.reasoning_summary_text.delta")  # fmt: skip
        elif isinstance(block, ir.ToolUseBlock):
            added = naming.call(index, block, None, "in_progress")
            kind, extra, delta = "call", b"", "response.function_call_arguments.delta"
        elif isinstance(block, ir.ServerToolUseBlock) and block.name == "web_search":
            return self._start_search(index, block)
        elif isinstance(block, ir.WebSearchToolResultBlock):
            return self._finish_search(block)
        else:
            return b""  # not a block the chat upstreams produce
        held = isinstance(block, ir.ToolUseBlock) and naming.is_freeform(block.name)
        item = self._open = _Item(kind, index, added["id"], block, held)
        self._signature = None
        self._set_delta(delta, extra)
        out = self._event("response.output_item.added", {"output_index": index, "item": added})
        where = {"item_id": item.item_id, "output_index": index}
        if kind == "message":
            part = output_text("")
            out += self._event("response.content_part.added",
                               {**where, "content_index": 0, "part": part})  # fmt: skip
        elif kind == "reasoning":
            part = {"type": "summary_text", "text": ""}
            out += self._event("response.reasoning_summary_part.added",
                               {**where, "summary_index": 0, "part": part})  # fmt: skip
        return out

    # A search the gateway ran is two IR blocks (server_tool_use, then its result) and one
    # web_search_call item: the item opens with the first and ends with the second.

    def _start_search(self, index: int, block: ir.ServerToolUseBlock) -> bytes:
        naming = self._naming
        assert naming is not None
        added = naming.search(index, "", None, "in_progress")
        self._open = _Item("search", index, added["id"], block, held=True)
        where = {"item_id": added["id"], "output_index": index}
        return (self._event("response.output_item.added", {"output_index": index, "item": added})
                + self._event("response.web_search_call.in_progress", where)
                + self._event("response.web_search_call.searching", where))  # fmt: skip

    def _finish_search(self, block: ir.WebSearchToolResultBlock) -> bytes:
        item, naming = self._search, self._naming
        self._search = None
        if item is None or naming is None:
            return b""
        args, _ = parse_arguments("".join(item.parts) or "{}")
        query = args.get("query")
        done = naming.search(item.index, query if isinstance(query, str) else "",
                             search_sources(block), "completed")  # fmt: skip
        self._output.append(done)
        where = {"item_id": item.item_id, "output_index": item.index}
        return (self._event("response.web_search_call.completed", where)
                + self._event("response.output_item.done",
                              {"output_index": item.index, "item": done}))  # fmt: skip

    def _stop_item(self, status: str = "completed") -> bytes:
        item, naming = self._open, self._naming
        if item is None or naming is None:
            return b""
        self._open = None
        if item.kind == "search":  # completed by its result block
            self._search = item
            return b""
        text = "".join(item.parts)
        where = {"item_id": item.item_id, "output_index": item.index}
        if item.kind == "message":
            part = output_text(text)
            out = self._event(
                "response.output_text.done",
                {**where, "content_index": 0, "text": text, "logprobs": []},
            )
            out += self._event(
                "response.content_part.done", {**where, "content_index": 0, "part": part}
            )
            done = naming.message(item.index, text, status)
        elif item.kind == "reasoning":
            part = {"type": "summary_text", "text": text}
            out = self._event(
                "response.reasoning_summary_text.done", {**where, "summary_index": 0, "text": text}
            )
            out += self._event(
                "response.reasoning_summary_part.done", {**where, "summary_index": 0, "part": part}
            )
            done = naming.reasoning(item.index, text, self._signature, status)
        else:
            out, done = self._stop_call(item, text, where, status)
        self._output.append(done)
        return out + self._event("response.output_item.done",
                                 {"output_index": item.index, "item": done})  # fmt: skip

    def _stop_call(self, item: _Item, text: str, where: dict[str, Any],
                   status: str) -> tuple[bytes, dict[str, Any]]:  # fmt: skip
        naming = self._naming
        block = item.block
        assert naming is not None and isinstance(block, ir.ToolUseBlock)
        if naming.is_freeform(block.name):
            args, _ = parse_arguments(text)
            value = freeform_input(args)
            out = self._event("response.custom_tool_call_input.delta", {**where, "delta": value})
            out += self._event("response.custom_tool_call_input.done", {**where, "input": value})
            return out, naming.call(item.index, block, value, status)
        text = text or "{}"
        done = naming.call(item.index, block, text, status)
        out = self._event("response.function_call_arguments.done",
                          {**where, "name": done["name"], "arguments": text})  # fmt: skip
        return out, done

    def _finish(self) -> bytes:
        self._done = True
        status, reason = status_of(self._stop)
        # The items keep the status their output_item.done events gave them (the stop
        # reason arrives after the last block ended): response.output must equal them.
        body = self._response(status, output=self._output, reason=reason,
                              usage=self._usage or ir.Usage())  # fmt: skip
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return self._response_events(_ENCODE.encode(body), kind)

    def flush(self) -> bytes:
        """End of input: ``b""`` after a proper end, else ``response.failed``."""
        if self._done:
            return b""
        return self.fail(UpstreamError("stream ended unexpectedly", kind=ErrorKind.API_ERROR))

    def fail(self, err: GlmbridgeError) -> bytes:
        """End the stream with ``response.failed``; nothing may follow.

        Codex ignores ``error`` events and reads only ``response.failed``'s
        ``error.code`` (``context_length_exceeded`` and ``insufficient_quota`` stop it;
        for ``rate_limit_exceeded`` it waits as long as "try again in Ns" says), so a
        stream that failed before its start still gets ``response.created`` first.
        """
        out = b"" if self._id else self._begin(ids.new_message_id())
        self._done = True
        _, obj = openai_error(err)
        message = obj["message"]
        if obj["code"] == "rate_limit_exceeded" and isinstance(err, UpstreamError):
            wait = max(1, math.ceil(err.retry_after or 1))
            message = f"{message} Please try again in {wait}s."
        error = {"code": obj["code"] or obj["type"], "message": message}
        body = self._response("failed", output=self._output, error=error)
        return out + self._response_events(_ENCODE.encode(body), "response.failed")
