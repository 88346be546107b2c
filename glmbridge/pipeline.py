"""Composed stream machines: upstream SSE bytes in, client SSE bytes out.

Theory of operation
-------------------
A streamed answer passes four stages, each a ``feed``/``flush`` machine::

    upstream bytes --SSEDecoder--> ServerSentEvent --openai.StreamDecoder--> IR events
                   --anthropic.StreamEncoder--> Anthropic SSE bytes

:class:`GlmToAnthropicStream` runs them as one machine with the same interface, so a
server (or any gateway) needs one object per stream and one loop::

    stream = GlmToAnthropicStream(model=request.model)
    async for chunk in upstream:
        send(stream.feed(chunk))
    send(stream.flush())

It also watches the IR events as they pass, which a server needs for two things:

* **Late commit of the HTTP status.** Until the first event has produced output
  (``started``), nothing has been written to the client, so an upstream error can
  still become a real HTTP status. If the upstream reports an error before any
  output (``{"error":…}`` as the first payload), ``feed`` raises the
  :class:`~glmbridge.errors.UpstreamError` instead of emitting an ``error`` event.
  After output has started, errors become Anthropic ``error`` events.
* **Accounting.** ``usage`` and ``stop_reason`` hold the final values once the
  answer's ``MessageDelta`` has passed; ``first_output`` is set by the first content
  delta (time-to-first-token for logs and metrics).

Errors are sticky: after a raise, every later call raises ``StreamStateError``.
"""

from __future__ import annotations

from enum import Enum

from glmbridge import events as ev
from glmbridge.errors import ErrorKind, GlmbridgeError, StreamStateError, UpstreamError
from glmbridge.ir import StopReason, Usage
from glmbridge.protocols import anthropic, openai
from glmbridge.sse import SSEDecoder

__all__ = ["GlmToAnthropicStream"]


class _State(Enum):
    STREAMING = "streaming"
    DONE = "done"
    ERROR = "error"


_CONTENT_DELTAS = (ev.TextDelta, ev.ThinkingDelta, ev.InputJsonDelta)
_FAST_DELTAS = frozenset(_CONTENT_DELTAS)  # exact-type check; subclasses use isinstance
# Events after which the client has seen content, so an error can no longer be a status.
_COMMITTING = (*_CONTENT_DELTAS, ev.BlockStart, ev.MessageDelta)
# An error before any content is worth retrying when it is transient.
_RETRYABLE_KINDS = frozenset({ErrorKind.API_ERROR, ErrorKind.OVERLOADED, ErrorKind.TIMEOUT})


class GlmToAnthropicStream:
    """GLM (OpenAI-style) SSE bytes in, Anthropic SSE bytes out; any chunking.

    Args:
        model: the model name the client asked for (echoed in ``message_start``).
        message_id: the ``msg_…`` id to use; generated when omitted.
        input_tokens_estimate: seeds ``message_start.usage.input_tokens``.
        dialect: the upstream's OpenAI dialect (GLM by default).

    Attributes:
        started: ``True`` once any bytes have been produced for the client.
        first_output: ``True`` once the first content delta has passed.
        usage: final usage, once known.
        stop_reason: final stop reason, once known.
        error: the error reported to the client as an ``error`` event, if any.
    """

    def __init__(
        self,
        *,
        model: str,
        message_id: str | None = None,
        input_tokens_estimate: int = 0,
        dialect: openai.Dialect = openai.GLM,
    ) -> None:
        self._sse = SSEDecoder()
        self._decoder = openai.StreamDecoder(
            model=model,
            message_id=message_id,
            input_tokens_estimate=input_tokens_estimate,
            dialect=dialect,
        )
        self._encoder = anthropic.StreamEncoder()
        self._state = _State.STREAMING
        self.started = False
        self.first_output = False
        self.usage: Usage | None = None
        self.stop_reason: StopReason | None = None
        self.error: GlmbridgeError | None = None

    def feed(self, chunk: bytes) -> bytes:
        """Consume upstream bytes; return the client bytes they complete.

        Raises:
            UpstreamError: the upstream reported an error before any output.
            UpstreamProtocolError: the upstream bytes are malformed.
        """
        if self._state is not _State.STREAMING:
            self._check()
        try:
            data = self._sse.feed_single_data(chunk)
            if data is not None:  # the usual case: one complete event per network chunk
                out = self._decoder.feed(data)
                # Hot path: one content delta after the first (no flag or status to update).
                if len(out) == 1 and self.first_output and type(out[0]) in _FAST_DELTAS:
                    return self._encoder.feed(out[0])
            else:
                out = []
                for sse in self._sse.feed(chunk):
                    out.extend(self._decoder.feed(sse.data))
            return self._encode(out)
        except BaseException:
            self._state = _State.ERROR
            raise

    def flush(self) -> bytes:
        """Signal end of upstream input; return the closing client bytes."""
        self._check()
        try:
            out: list[ev.Event] = []
            for sse in self._sse.flush():
                out.extend(self._decoder.feed(sse.data))
            out.extend(self._decoder.flush())
            data = self._encode(out) + self._encoder.flush()
        except BaseException:
            self._state = _State.ERROR
            raise
        self._state = _State.DONE
        return data

    def _check(self) -> None:
        if self._state is not _State.STREAMING:
            raise StreamStateError(f"can't feed a stream in state {self._state.value}")

    def _encode(self, events: list[ev.Event]) -> bytes:
        if not events:
            return b""
        if not self.started:
            self._raise_early_error(events, self._decoder.error)
        parts = []
        encode = self._encoder.feed
        for event in events:
            if type(event) in _FAST_DELTAS or isinstance(event, _CONTENT_DELTAS):
                self.first_output = True
            elif isinstance(event, ev.MessageDelta):
                self.usage = event.usage
                self.stop_reason = event.stop_reason
            elif isinstance(event, ev.StreamError):
                self.error = self._decoder.error or UpstreamError(event.message, kind=event.kind)
            parts.append(encode(event))
        self.started = True
        return b"".join(parts)

    @staticmethod
    def _raise_early_error(events: list[ev.Event], detail: UpstreamError | None) -> None:
        # Nothing has reached the client yet: an error before any content becomes a
        # real HTTP status instead of a 200 with an error event.
        for event in events:
            if isinstance(event, _COMMITTING):
                return
            if isinstance(event, ev.StreamError):
                # The decoder keeps the full error (status, business code, retryable).
                raise detail or UpstreamError(
                    event.message, kind=event.kind, retryable=event.kind in _RETRYABLE_KINDS
                )
