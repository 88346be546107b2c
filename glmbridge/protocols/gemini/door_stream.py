"""The Gemini stream encoder: IR events -> ``streamGenerateContent`` chunks.

Theory of operation
-------------------
Input: the IR event grammar of :mod:`glmbridge.events`. Output: a sequence of complete
``GenerateContentResponse`` objects, every one valid on its own, each carrying
``modelVersion`` and ``responseId``, framed one of two ways:

* ``sse`` (``?alt=sse``, what every SDK asks for): ``data: {chunk}\\n\\n`` per chunk,
  with U+2028/U+2029 escaped (the JS SDK's frame regex stops at these line terminators);
* ``array`` (no ``alt``): one JSON array written as the chunks arrive, ``[`` before the
  first, ``,\\r\\n`` between, ``]`` at the end.

Mapping::

    TextDelta       -> a chunk with one part {"text"}
    ThinkingDelta   -> a chunk with one part {"text", "thought": true}, only when the
                       request set includeThoughts (else nothing)
    tool block      -> nothing until its BlockStop, then one chunk with the whole
                       {"functionCall": {name, args, id}} (Gemini clients expect whole calls)
    MessageDelta    -> the final chunk: finishReason and usageMetadata (and one empty
                       text part, so the chunk still has content); after searches the
                       gateway ran (server_tool_use / web_search_tool_result blocks, no
                       chunk of their own), also their ``groundingMetadata``
    StreamError     -> a bare ``{"error": {...}}`` line (the JS and Python SDKs raise it;
                       a ``data:`` error line would be ignored)

There is no keep-alive frame: the JS SDK fails on SSE comments ("Incomplete JSON segment"),
so an idle stream is kept open by its committed headers alone.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from glmbridge import events as ev
from glmbridge import ir
from glmbridge._tool_args import parse_arguments
from glmbridge.errors import ErrorKind, GlmbridgeError, StreamStateError, UpstreamError
from glmbridge.protocols.gemini.door_response import (
    FINISH_REASONS,
    function_call,
    grounding_metadata,
    response_id,
    usage_metadata,
)
from glmbridge.protocols.gemini.errors import error_object

__all__ = ["Framing", "StreamEncoder"]

Framing = Literal["sse", "array"]
_ENCODE = msgspec.json.Encoder(decimal_format="number")
_ENCODE_STR = _ENCODE.encode
# JS line terminators in UTF-8: the JS SDK's frame regex (``data: (.*)\n\n``) does not
# match across them, so a raw one inside a JSON string stalls the stream; escaped, the
# JSON is the same.
_LS, _PS = "\u2028".encode(), "\u2029".encode()


class StreamEncoder:
    """IR events -> Gemini stream chunks (see the module docstring).

    Args:
        model: the model name the client asked for (``modelVersion``).
        include_thoughts: send thought parts (``thinkingConfig.includeThoughts``).
        framing: ``sse`` or ``array``.
    """

    def __init__(self, *, model: str, include_thoughts: bool = False,
                 framing: Framing = "sse") -> None:  # fmt: skip
        self._model = model
        self._thoughts = include_thoughts
        self._framing = framing
        self._tail = b""  # '],"modelVersion":…,"responseId":…}' after a chunk's parts
        self._text_head = b""
        self._sse_head = b""
        self._thought_tail = b""
        self._sse = framing == "sse"
        self._tool: ir.ToolUseBlock | None = None
        self._searches: list[ir.Block] = []  # server-tool blocks, for groundingMetadata
        self._search: ir.ServerToolUseBlock | None = None
        self._args: list[str] = []
        self._id = ""
        self._chunks = 0
        self._opened = False  # array framing: "[" has been written
        self._done = False

    # -- framing ---------------------------------------------------------------------------

    def _frame(self, chunk: bytes) -> bytes:
        self._chunks += 1
        if self._framing == "sse":
            if b"\xe2\x80" in chunk:  # U+2028/U+2029 raw would end the JS SDK's line
                chunk = chunk.replace(_LS, b"\\u2028").replace(_PS, b"\\u2029")
            return b"data: " + chunk + b"\n\n"
        return (b"" if self._chunks == 1 else b",\r\n") + chunk

    def _part_chunk(self, part: dict[str, Any], finish: dict[str, Any] | None = None,
                    grounding: dict[str, Any] | None = None) -> bytes:  # fmt: skip
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": 0}
        body: dict[str, Any] = {"candidates": [candidate]}
        if finish is not None:
            candidate["finishReason"] = finish["finishReason"]
            body["usageMetadata"] = finish["usageMetadata"]
        if grounding is not None:
            candidate["groundingMetadata"] = grounding
        body["modelVersion"] = self._model
        body["responseId"] = self._id
        return self._frame(_ENCODE.encode(body))

    # -- events ----------------------------------------------------------------------------

    def feed(self, event: ev.Event) -> bytes:
        """Encode one IR event (``b""`` for events with no chunk of their own)."""
        kind = type(event)
        if kind is ev.TextDelta:
            text, tail = _ENCODE_STR(event.text), self._tail  # type: ignore[union-attr]
        elif kind is ev.ThinkingDelta:
            if not self._thoughts:
                return b""
            text, tail = _ENCODE_STR(event.thinking), self._thought_tail  # type: ignore[union-attr]
        else:
            text = b""
        if text:
            if self._sse:  # hot path: one pre-built SSE frame around the JSON string
                if b"\xe2\x80" in text:  # U+2028/U+2029 raw would end the JS SDK's line
                    text = text.replace(_LS, b"\\u2028").replace(_PS, b"\\u2029")
                return self._sse_head + text + tail + b"\n\n"
            return self._frame(self._text_head + text + tail)
        if kind is ev.InputJsonDelta:
            self._args.append(event.partial_json)  # type: ignore[union-attr]
            return b""
        return self._feed_slow(event)

    def _feed_slow(self, event: ev.Event) -> bytes:
        if self._done:
            raise StreamStateError("stream encoder fed after the end")
        if isinstance(event, ev.MessageStart):
            self._id = response_id(event.id)
            meta = _ENCODE.encode({"modelVersion": self._model, "responseId": self._id})
            head = b'{"candidates":[{"content":{"role":"model","parts":[{"text":'
            self._text_head = head
            self._sse_head = b"data: " + head
            self._tail = b'}]},"index":0}],' + meta[1:]
            self._thought_tail = b',"thought":true' + self._tail
            if self._framing == "array" and not self._opened:
                self._opened = True
                return b"["
            return b""
        if isinstance(event, ev.BlockStart):
            if isinstance(event.block, ir.ToolUseBlock):
                self._tool, self._args = event.block, []
            elif isinstance(event.block, ir.ServerToolUseBlock):
                self._search, self._args = event.block, []
            elif isinstance(event.block, ir.WebSearchToolResultBlock):
                self._searches.append(event.block)
            return b""
        if isinstance(event, ev.BlockStop):
            return self._stop_tool()
        if isinstance(event, ev.MessageDelta):
            finish = {
                "finishReason": FINISH_REASONS.get(event.stop_reason, "STOP"),
                "usageMetadata": usage_metadata(event.usage),
            }
            return self._part_chunk({"text": ""}, finish, grounding_metadata(self._searches))
        if isinstance(event, ev.MessageStop):
            self._done = True
            return b"]" if self._framing == "array" else b""
        if isinstance(event, ev.StreamError):
            return self.fail(UpstreamError(event.message, kind=event.kind))
        return b""  # SignatureDelta, Ping

    def _stop_tool(self) -> bytes:
        search, self._search = self._search, None
        if search is not None:  # a search the gateway ran: its query, for groundingMetadata
            args, _ = parse_arguments("".join(self._args) or "{}")
            self._args = []
            self._searches.append(ir.ServerToolUseBlock(id=search.id, name=search.name,
                                                        input=args))  # fmt: skip
            return b""
        tool, self._tool = self._tool, None
        if tool is None:
            return b""
        args, _ = parse_arguments("".join(self._args))
        self._args = []
        return self._part_chunk(function_call(ir.ToolUseBlock(id=tool.id, name=tool.name,
                                                               input=args)))  # fmt: skip

    def keepalive(self) -> bytes:
        """Nothing: SSE comments break the JS SDK (see the module docstring)."""
        return b""

    def flush(self) -> bytes:
        """End of input: ``b""`` after a proper end, else the error line (truncation)."""
        if self._done:
            return b""
        return self.fail(UpstreamError("stream ended unexpectedly", kind=ErrorKind.API_ERROR))

    def fail(self, err: GlmbridgeError) -> bytes:
        """End the stream with a bare ``{"error": ...}`` line, which the SDKs raise."""
        self._done = True
        _, obj = error_object(err)
        line = _ENCODE.encode({"error": obj})
        if self._framing == "array":
            opener = b"" if self._opened else b"["
            return opener + (b",\r\n" if self._chunks else b"") + line + b"]"
        return line + b"\n"
