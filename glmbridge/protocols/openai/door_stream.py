"""Chat Completions chunk streams toward clients: IR events -> SSE chunks (:class:`StreamEncoder`).

Theory of operation (:class:`StreamEncoder`)
--------------------------------------------
Input: the IR event grammar of :mod:`glmbridge.events` (one ``MessageStart``, blocks
one at a time, ``MessageDelta``, ``MessageStop``; or a terminal ``StreamError``).
Output: OpenAI's chunk stream, every chunk with the same ``id``/``created``/``model``::

    data: {... "delta": {"role": "assistant", "content": ""} ...}    <- MessageStart
    data: {... "delta": {"content": "..."} ...}                      <- TextDelta
    data: {... "delta": {"reasoning_content": "..."} ...}            <- ThinkingDelta
    data: {... "delta": {"tool_calls": [{index, id, type, function: {name, arguments: ""}}]}}
                                                                     <- tool BlockStart
    data: {... "delta": {"tool_calls": [{index, function: {arguments}}]}}  <- InputJsonDelta
    data: {... "delta": {}, "finish_reason": "stop"}                 <- MessageDelta
    data: {... "choices": [], "usage": {...}}                        <- MessageStop, if
    data: [DONE]                                                        include_usage

Block starts and stops of text and thinking produce nothing; tool calls are numbered
0, 1, 2 … in order. A ``StreamError`` (or :meth:`StreamEncoder.fail`) ends the stream
with ``data: {"error": {...}}`` and no ``[DONE]``: a failed answer never looks finished.
The hot path (one text delta) is a pre-encoded prefix, the JSON string, and a suffix.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from glmbridge import events as ev
from glmbridge import ir
from glmbridge.errors import ErrorKind, GlmbridgeError, StreamStateError, UpstreamError
from glmbridge.protocols.openai.door_response import (
    _finish_reason,
    chat_id,
    usage_from_ir,
)
from glmbridge.protocols.openai.errors import error_data

__all__ = ["KEEPALIVE", "StreamEncoder"]

_ENCODE = msgspec.json.Encoder(decimal_format="number")
_ENCODE_STR = _ENCODE.encode
_DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"


class StreamEncoder:
    """IR events -> Chat Completions SSE chunks (see the module docstring).

    Args:
        model: the model name the client asked for.
        include_usage: send the usage chunk (``stream_options.include_usage``).
        created: the Unix time in every chunk (now when omitted).
    """

    def __init__(self, *, model: str, include_usage: bool = False,
                 created: int | None = None) -> None:  # fmt: skip
        self._model = model
        self._include_usage = include_usage
        self._created = int(time.time()) if created is None else created
        self._prefix = b""
        self._text_prefix = b""
        self._reason_prefix = b""
        self._tool_index = -1
        self._tool_blocks: dict[int, int] = {}  # IR block index -> tool call index
        self._args_prefix = b""
        self._usage: ir.Usage | None = None
        self._has_calls = False
        self._started = False
        self._done = False

    def _head(self, message_id: str) -> None:
        head = {"id": chat_id(message_id), "object": "chat.completion.chunk",
                "created": self._created, "model": self._model}  # fmt: skip
        # '{"id":…,"model":"m"' + ',"choices":[{"index":0,"delta":'
        self._prefix = b"data: " + _ENCODE.encode(head)[:-1] + b',"choices":[{"index":0,"delta":'
        self._text_prefix = self._prefix + b'{"content":'
        self._reason_prefix = self._prefix + b'{"reasoning_content":'

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        tail = (
            b',"finish_reason":null,"logprobs":null}]}\n\n'
            if finish is None
            else (b',"finish_reason":"' + finish.encode() + b'","logprobs":null}]}\n\n')
        )
        return self._prefix + _ENCODE.encode(delta) + tail

    def feed(self, event: ev.Event) -> bytes:
        """Encode one IR event (``b""`` for events with no chunk of their own)."""
        kind = type(event)
        if kind is ev.TextDelta:
            return self._text_prefix + _ENCODE_STR(event.text) + _TAIL  # type: ignore[union-attr]
        if kind is ev.ThinkingDelta:
            return self._reason_prefix + _ENCODE_STR(event.thinking) + _TAIL  # type: ignore[union-attr]
        if kind is ev.InputJsonDelta:
            return self._args_prefix + _ENCODE_STR(event.partial_json) + _ARGS_TAIL  # type: ignore[union-attr]
        return self._feed_slow(event)

    def _feed_slow(self, event: ev.Event) -> bytes:
        if self._done:
            raise StreamStateError("stream encoder fed after the end")
        if isinstance(event, ev.MessageStart):
            self._started = True
            self._head(event.id)
            return self._chunk({"role": "assistant", "content": ""})
        if isinstance(event, ev.BlockStart):
            block = event.block
            if isinstance(block, ir.ToolUseBlock):
                self._tool_index += 1
                self._has_calls = True
                index = self._tool_index
                self._args_prefix = (
                    self._prefix + b'{"tool_calls":[{"index":' + str(index).encode()
                    + b',"function":{"arguments":'
                )  # fmt: skip
                call = {"index": index, "id": block.id, "type": "function",
                        "function": {"name": block.name, "arguments": ""}}  # fmt: skip
                return self._chunk({"tool_calls": [call]})
            return b""
        if isinstance(event, ev.MessageDelta):
            self._usage = event.usage
            return self._chunk({}, _finish_reason(event.stop_reason, self._has_calls))
        if isinstance(event, ev.MessageStop):
            return self._end()
        if isinstance(event, ev.StreamError):
            return self.fail(UpstreamError(event.message, kind=event.kind))
        return b""  # BlockStop, SignatureDelta, Ping

    def _end(self) -> bytes:
        self._done = True
        if not self._include_usage:
            return _DONE
        usage = usage_from_ir(self._usage or ir.Usage())
        head = self._prefix[: -len(b',"choices":[{"index":0,"delta":')]
        return head + b',"choices":[],"usage":' + _ENCODE.encode(usage) + b"}\n\n" + _DONE

    def flush(self) -> bytes:
        """End of input: ``b""`` after a proper end, else an error payload (truncation)."""
        if self._done:
            return b""
        return self.fail(UpstreamError("stream ended unexpectedly", kind=ErrorKind.API_ERROR))

    def keepalive(self) -> bytes:
        """An SSE comment, which every SSE parser skips (the openai SDK's included)."""
        return KEEPALIVE

    def fail(self, err: GlmbridgeError) -> bytes:
        """End the stream with an error payload (no ``[DONE]``); nothing may follow."""
        self._done = True
        return error_data(err)


_TAIL = b'},"finish_reason":null,"logprobs":null}]}\n\n'
_ARGS_TAIL = b'}}]},"finish_reason":null,"logprobs":null}]}\n\n'
