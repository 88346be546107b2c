"""The exchange: one front door and one upstream codec, composed for one request.

Theory of operation
-------------------
Every front door (the protocol a client speaks) and every upstream codec (the protocol
an upstream speaks) meets the other only in the IR, so N doors and M upstreams cost
N + M codecs. Their roles are the ``typing.Protocol`` classes of :mod:`glmbridge.roles`
(re-exported here). An :class:`Exchange` composes one of each for one request; it is
sans-I/O, and written once. The server and the in-process SDK transports are its thin drivers::

    ex = Exchange.prepare(door, body, table=table, upstream=profile)   # decode, route
    POST ex.url with ex.body and ex.headers(key)                          # driver: I/O
    non-stream:  client_body = ex.complete(upstream_body)
    stream:      s = ex.open_stream()
                 for chunk in upstream: send(s.feed(chunk)); if s.finished: break
                 else: send(s.flush())
                 on a transport failure:  send(s.fail(err))

:class:`ExchangeStream` runs the four stages of a streamed answer as one machine::

    upstream bytes --SSEDecoder--> payloads --codec decoder--> IR events --door encoder--> bytes

and watches the IR events for what a driver decides on:

* ``started`` — client bytes exist (the driver commits its ``200`` then).
* ``content_started`` — a content block has opened. Until then an upstream error
  *raises* :class:`UpstreamError` from :meth:`ExchangeStream.feed` instead of becoming
  an event, so the driver can still answer with a real status, or retry.
* ``finished`` — the door's final event has been produced (the answer ended, or an
  error event ended it). Nothing follows it: later ``feed`` calls return ``b""``
  without reading their input, so a reset, timeout or garbage after the end never
  reaches the client. A driver stops reading the upstream at once.
* ``usage`` / ``stop_reason`` / ``first_output`` / ``error`` — accounting.

**Early commit.** :meth:`ExchangeStream.preamble` produces the door's start event
(Anthropic ``message_start``) before the upstream has said anything, so a driver can
commit a streaming response and send keep-alives while the upstream is silent. The
upstream's own start event is then swallowed; a retry after a preamble continues the
same client stream (``open_stream(preamble_sent=True)``).

**Failures after the first byte** (:meth:`ExchangeStream.fail`): if the upstream had
already delivered the final stop reason (``answered``), the answer is completed
normally; otherwise the door's error event ends the stream.

Errors are sticky: after an exception, every later call raises ``StreamStateError``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum
from typing import TypedDict, Unpack

import msgspec

from glmbridge import events as ev
from glmbridge import ids, ir
from glmbridge.accumulate import Accumulator
from glmbridge.errors import ErrorKind, GlmbridgeError, StreamStateError, UpstreamError
from glmbridge.profiles import UpstreamProfile
from glmbridge.protocols import upstream_codec
from glmbridge.reasoning_gate import ReasoningDropper, drop_reasoning, wants_reasoning
from glmbridge.roles import DoorStreamEncoder, FrontDoor, UpstreamCodec, UpstreamStreamDecoder
from glmbridge.routing import (
    DEFAULT_ROUTE_TABLE,
    ModelSpec,
    Route,
    RouteTable,
    accepted_effort,
    resolve_route,
)
from glmbridge.served import ServedAs
from glmbridge.sse import SSEDecoder
from glmbridge.tokens import TokenEstimator, estimate_request_tokens
from glmbridge.upstream_errors import plan_error, scrub

__all__ = [
    "DoorStreamEncoder",
    "Exchange",
    "ExchangeStream",
    "FrontDoor",
    "RoutingOptions",
    "UpstreamCodec",
    "UpstreamStreamDecoder",
    "adapt_request",
]

logger = logging.getLogger("glmbridge.exchange")


# --- request adaptation (protocol-independent) --------------------------------------------


def adapt_request(req: ir.Request, spec: ModelSpec) -> ir.Request:
    """Fit a request to the routed model, whatever the upstream protocol.

    ``thinking: disabled`` is never sent to a model that cannot stop thinking (GLM-5.3
    answers 1210 "this model always thinks": farion1231/cc-switch#6737); it is dropped
    and, unless the client chose an effort, the lowest effort is asked instead (the
    fix cc-switch PR#6739 ships). An effort the model does not accept is rounded to
    one it does (:func:`glmbridge.routing.accepted_effort`: GLM-5.3 ``medium`` ->
    ``high``), also for Z.ai's Anthropic endpoint.
    """
    thinking = req.thinking
    if thinking is not None and thinking.type == "disabled" and spec.thinking == "always":
        logger.debug("thinking disabled dropped: %s always thinks", spec.id)
        req = msgspec.structs.replace(req, thinking=None, effort=req.effort or "low")
    if req.effort is not None and spec.efforts and req.effort not in spec.efforts:
        # a level the model rejects ("anything else errors" on GLM-5.3: OAS) is rounded
        req = msgspec.structs.replace(req, effort=accepted_effort(req.effort, spec))
    return req


# --- the exchange ------------------------------------------------------------------------------


class RoutingOptions(TypedDict, total=False):
    """The keyword options of :meth:`Exchange.prepare`, as :meth:`Exchange.from_request`
    takes them (see its arguments)."""

    table: RouteTable
    upstream: UpstreamProfile | None
    override: str | None
    thinking: ir.Thinking | None
    estimator: TokenEstimator | None
    learned: ServedAs | None


class Exchange:
    """One request from a front door to the upstream its route names, and back.

    Build it with :meth:`prepare`. Attributes: ``door``, ``codec``, ``request`` (the
    decoded IR), ``route`` (model, spec, profile), ``url``, ``body`` (the upstream
    request bytes), ``stream``, ``input_estimate``, ``message_id``, and, once known,
    ``usage``.
    """

    def __init__(
        self,
        door: FrontDoor,
        request: ir.Request,
        route: Route,
        *,
        input_estimate: int = 0,
        message_id: str | None = None,
    ) -> None:
        self.door = door.for_request(request)
        self.show_reasoning = wants_reasoning(request, door.name)
        """Whether the client asked for reasoning (:mod:`glmbridge.reasoning_gate`):
        decided on the request as sent, before :func:`adapt_request`."""
        self.request = adapt_request(request, route.spec)
        self.route = route
        self.codec: UpstreamCodec = upstream_codec(route.upstream)
        self.url = route.upstream.base_url + self.codec.path
        self.body = self.codec.encode_request(self.request, route)
        self.stream = request.stream
        self.input_estimate = input_estimate
        self.message_id = message_id or ids.new_message_id()
        self.usage: ir.Usage | None = None
        self.stop_reason: ir.StopReason | None = None  # of a non-streamed answer
        self.secrets: tuple[str, ...] = ()
        """What no upstream-derived message may carry to a client or a log (the API keys):
        a driver sets it, and every upstream error of this exchange is scrubbed of it."""
        self.on_complete: Callable[[ir.Response], None] | None = None
        """Called with the whole answer once it is complete (streamed or not); a driver
        sets it to keep the answer (the Responses store)."""

    @classmethod
    def prepare(cls, door: FrontDoor, body: bytes, **options: Unpack[RoutingOptions]) -> Exchange:
        """Decode ``body``, route it, and encode it for the upstream.

        Args:
            door: the client's protocol.
            options: how to route it (:class:`RoutingOptions`, passed to :meth:`from_request`).

        Raises:
            ClientRequestError: the body is not a valid request (names the field).
        """
        return cls.from_request(door, door.decode_request(body), **options)

    @classmethod
    def from_request(
        cls,
        door: FrontDoor,
        req: ir.Request,
        *,
        table: RouteTable = DEFAULT_ROUTE_TABLE,
        upstream: UpstreamProfile | None = None,
        override: str | None = None,
        thinking: ir.Thinking | None = None,
        estimator: TokenEstimator | None = None,
        learned: ServedAs | None = None,
    ) -> Exchange:
        """:meth:`prepare` for a request already decoded (a driver that amended it, e.g.
        with a stored conversation).

        Args:
            door: the client's protocol.
            req: the decoded request.
            table: the routing table.
            upstream: the default upstream profile (routes may name another).
            override: a model id that wins over routing (``x-glmbridge-model``).
            thinking: the thinking setting for requests that carry none.
            estimator: a caller-owned token estimator (memoised across requests).
            learned: which model answers which id, as answers taught (the router applies
                the serving model's spec: :func:`glmbridge.routing.resolve_route`).
        """
        # routed on the request as the client sent it (a server thinking default does not
        # make a main-loop request a side request)
        route = resolve_route(req, table, override=override, upstream=upstream, learned=learned)
        if req.thinking is None and thinking is not None:
            req = msgspec.structs.replace(req, thinking=thinking)
        estimate = (
            estimator.request_tokens(req) if estimator is not None else estimate_request_tokens(req)
        )
        return cls(door, req, route, input_estimate=estimate)

    def headers(self, key: str) -> dict[str, str]:
        """The upstream request headers: auth, content negotiation, the codec's own."""
        out = self.route.upstream.auth_headers(key)
        out.update(self.codec.headers)
        out["content-type"] = "application/json"
        if self.stream:
            out["accept"] = "text/event-stream"
            out["accept-encoding"] = "identity"  # compression only delays small SSE chunks
        else:
            out["accept"] = "application/json"
        return out

    def decode_error(
        self, status: int, body: bytes, *, retry_after: float | None = None
    ) -> UpstreamError:
        """The error behind a non-200 upstream answer (scrubbed of ``secrets``)."""
        err = self.codec.decode_error(status, body, retry_after=retry_after)
        return scrub(self.classify(err), self.secrets)

    def classify(self, err: UpstreamError) -> UpstreamError:
        """``err`` as "model not in your plan" when the routed profile is a plan endpoint
        and that is what it means (:func:`glmbridge.upstream_errors.plan_error`)."""
        profile = self.route.upstream
        in_plan = profile.serves(self.route.model) if profile.plan else None
        title = profile.title or profile.name
        return plan_error(err, model=self.route.model, plan=title, in_plan=in_plan)

    def complete(self, body: bytes) -> bytes:
        """The client's body for a non-streamed ``200`` upstream answer.

        Raises:
            UpstreamError: the body is an error object sent with HTTP 200.
            UpstreamProtocolError: the body is not a valid answer.
        """
        try:
            resp = self.codec.decode_response(
                body, model=self.request.model, input_estimate=self.input_estimate
            )
        except UpstreamError as err:  # an error object sent with 200
            raise scrub(self.classify(err), self.secrets) from None
        if resp.id != self.message_id:  # one id scheme whatever the upstream uses
            resp = msgspec.structs.replace(resp, id=self.message_id)
        if not self.show_reasoning:
            resp = drop_reasoning(resp)
        self.usage = resp.usage
        self.stop_reason = resp.stop_reason
        out = self.door.encode_response(resp)
        if self.on_complete is not None:
            self.on_complete(resp)
        return out

    def open_stream(self, *, preamble_sent: bool = False) -> ExchangeStream:
        """A fresh stream machine for one upstream attempt.

        Args:
            preamble_sent: the client already has the door's start event (an early
                commit, or an earlier attempt that failed before any content).
        """
        stream = ExchangeStream.between(
            self.door,
            self.codec,
            model=self.request.model,
            message_id=self.message_id,
            input_tokens_estimate=self.input_estimate,
            preamble_sent=preamble_sent,
            show_reasoning=self.show_reasoning,
        )
        stream.secrets = self.secrets
        stream.classify = self.classify
        if self.on_complete is not None:
            stream.collect(self.on_complete)
        return stream

    def error_response(
        self, err: GlmbridgeError, *, request_id: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers, body)`` for an error before the first byte."""
        status, body = self.door.encode_error(err, request_id=request_id)
        return status, self.door.error_headers(err), body


# --- the stream machine ------------------------------------------------------------------------


class _State(Enum):
    STREAMING = "streaming"
    FINISHED = "finished"
    CLOSED = "closed"
    ERROR = "error"


# A global, not ``_State.STREAMING`` (a slow enum-class lookup in CPython 3.11), per chunk.
_STREAMING = _State.STREAMING
_CONTENT_DELTAS = (ev.TextDelta, ev.ThinkingDelta, ev.InputJsonDelta)
_FAST_DELTAS = frozenset(_CONTENT_DELTAS)  # exact-type check; subclasses use isinstance
_FINAL = (ev.MessageStop, ev.StreamError)
# An error before any content is worth retrying when it is transient.
_RETRYABLE_KINDS = frozenset({ErrorKind.API_ERROR, ErrorKind.OVERLOADED, ErrorKind.TIMEOUT})
_HEAD_LIMIT = 64 * 1024  # an error object is small JSON


class ExchangeStream:
    """Upstream stream bytes in, the door's stream bytes out; any chunking.

    See the module docstring for the attributes a driver reads and the rules it relies
    on. Made by :meth:`Exchange.open_stream`.
    """

    def __init__(
        self,
        decoder: UpstreamStreamDecoder,
        encoder: DoorStreamEncoder,
        door: FrontDoor,
        start: ev.MessageStart,
        *,
        preamble_sent: bool = False,
        decode_error: Callable[[int, bytes], UpstreamError] | None = None,
    ) -> None:
        self._sse = SSEDecoder()
        # Until the first event: the raw body, in case it is a JSON error object sent with
        # HTTP 200 instead of a stream (it has no SSE events, only its own bytes tell why).
        self._decode_error = decode_error
        self._head: bytearray | None = bytearray() if decode_error is not None else None
        self._decoder = decoder
        self._encoder = encoder
        self._door = door
        self._start = start
        self._state = _State.STREAMING
        self._skip_start = preamble_sent
        if preamble_sent:  # the client has the start event: bring the encoder level
            encoder.feed(start)
        self.started = preamble_sent
        self.content_started = False
        self.first_output = False
        self.finished = False
        self.usage: ir.Usage | None = None
        self.stop_reason: ir.StopReason | None = None
        self.error: GlmbridgeError | None = None
        self._accumulator: Accumulator | None = None
        self._on_complete: Callable[[ir.Response], None] | None = None
        self.secrets: tuple[str, ...] = ()  # scrubbed from every upstream error
        self.classify: Callable[[UpstreamError], UpstreamError] = lambda err: err
        """Reinterprets an upstream error before the client sees it (plan errors)."""

    @classmethod
    def between(
        cls,
        door: FrontDoor,
        codec: UpstreamCodec,
        *,
        model: str,
        message_id: str | None = None,
        input_tokens_estimate: int = 0,
        preamble_sent: bool = False,
        show_reasoning: bool = True,
    ) -> ExchangeStream:
        """A stream machine from ``codec``'s stream to ``door``'s.

        Args:
            model: the model name the client asked for (echoed in the start event).
            message_id: the message id; generated when omitted.
            input_tokens_estimate: the start event's input tokens (and the fallback
                where the upstream reports none).
            preamble_sent: see :meth:`Exchange.open_stream`.
            show_reasoning: pass thinking blocks on (else they are dropped).
        """
        message_id = message_id or ids.new_message_id()
        decoder: UpstreamStreamDecoder = codec.stream_decoder(
            model=model, message_id=message_id, input_tokens_estimate=input_tokens_estimate
        )
        if not show_reasoning:
            decoder = ReasoningDropper(decoder)
        usage = ir.Usage(input_tokens=input_tokens_estimate)
        start = ev.MessageStart(id=message_id, model=model, usage=usage)
        return cls(
            decoder,
            door.stream_encoder(),
            door,
            start,
            preamble_sent=preamble_sent,
            decode_error=codec.decode_error,
        )

    def collect(self, on_complete: Callable[[ir.Response], None]) -> None:
        """Also fold the events into the whole answer, and pass it to ``on_complete`` when
        the stream completes (not when it fails). Costs one accumulator step per event."""
        self._accumulator = Accumulator()
        self._on_complete = on_complete
        if self._skip_start:  # the start event went out before this stream existed
            self._accumulator.feed(self._start)

    @property
    def answered(self) -> bool:
        """Whether the upstream has delivered the final stop reason."""
        return self.finished or self._decoder.answered

    def keepalive(self) -> bytes:
        """A keep-alive frame for an idle client stream (``b""`` before it started or
        after it finished)."""
        if not self.started or self._state is not _State.STREAMING:
            return b""
        return self._encoder.keepalive()

    @property
    def can_preamble(self) -> bool:
        """Whether :meth:`preamble` can still start the client's stream (nothing sent yet,
        nothing failed). The preamble itself may be empty (Gemini has no start event)."""
        return not self.started and self._state is _State.STREAMING

    def preamble(self) -> bytes:
        """The door's start event, now (early commit); ``b""`` if already started."""
        if not self.can_preamble:
            return b""
        self._skip_start = True
        self.started = True
        if self._accumulator is not None:
            self._accumulator.feed(self._start)
        return self._encoder.feed(self._start)

    def feed(self, chunk: bytes) -> bytes:
        """Consume upstream bytes; return the client bytes they complete.

        Returns ``b""`` without reading ``chunk`` once the stream is finished.

        Raises:
            UpstreamError: the upstream reported an error before any content.
            UpstreamProtocolError: the upstream bytes are malformed.
        """
        if self._state is not _STREAMING:
            if self._state is _State.FINISHED:
                if chunk:
                    logger.debug("%d upstream bytes after the end ignored", len(chunk))
                return b""
            self._check()
        try:
            data = self._sse.feed_single_data(chunk)
            if data is not None:  # the usual case: one complete event per network chunk
                out = self._decoder.feed(data)
                # Hot path: one content delta after the first (no flag or state to update).
                if (
                    len(out) == 1
                    and self.first_output
                    and type(out[0]) in _FAST_DELTAS
                    and self._accumulator is None
                ):
                    return self._encoder.feed(out[0])
            else:
                out = []
                for sse in self._sse.feed(chunk):
                    out.extend(self._decoder.feed(sse.data))
                if self._head is not None and not out and len(self._head) < _HEAD_LIMIT:
                    self._head += chunk
            return self._encode(out)
        except BaseException:
            self._state = _State.ERROR
            raise

    def flush(self) -> bytes:
        """Signal the end of upstream input; return the closing client bytes."""
        if self._state is _State.FINISHED:
            self._state = _State.CLOSED
            return b""
        self._check()
        try:
            self._raise_json_error()
            out: list[ev.Event] = []
            for sse in self._sse.flush():
                out.extend(self._decoder.feed(sse.data))
            out.extend(self._decoder.flush())
            data = self._encode(out) + self._encoder.flush()
        except BaseException:
            self._state = _State.ERROR
            raise
        self._state = _State.CLOSED
        return data

    def fail(self, err: GlmbridgeError) -> bytes:
        """The upstream failed after the client's stream began: the closing bytes.

        A finished stream gets nothing more; an answered one is completed normally (the
        failure only cut the upstream's epilogue); otherwise the door's error event.
        """
        if self._state is _State.FINISHED or self._state is _State.CLOSED:
            logger.debug("upstream failure after the end ignored: %s", err.message)
            return b""
        if self._state is _State.STREAMING and self._decoder.answered:
            logger.debug("upstream failure after the final event: %s", err.message)
            return self.flush()
        self._state = _State.CLOSED
        self.finished = True
        self.error = err
        return self._encoder.fail(err)

    def _raise_json_error(self) -> None:
        head = self._head
        if head is None or self.started or not self._decode_error:
            return
        body = bytes(head).strip()
        if body.startswith(b"{") and b'"error"' in body:
            raise scrub(self.classify(self._decode_error(200, body)), self.secrets)

    def _check(self) -> None:
        if self._state is not _State.STREAMING:
            raise StreamStateError(f"can't feed a stream in state {self._state.value}")

    def _encode(self, events: list[ev.Event]) -> bytes:
        if not self.content_started:
            if events:
                events = self._before_content(events)
            decoder = self._decoder
            if isinstance(decoder, ReasoningDropper) and decoder.dropped:
                self.content_started = True  # the upstream is answering; the client sees later
                self._head = None
        if not events:
            return b""
        parts = []
        encode = self._encoder.feed
        if self._accumulator is not None:
            self._accumulate(events)
        for event in events:
            if type(event) in _FAST_DELTAS or isinstance(event, _CONTENT_DELTAS):
                self.first_output = True
            elif isinstance(event, ev.MessageDelta):
                self.usage = event.usage
                self.stop_reason = event.stop_reason
            elif isinstance(event, _FINAL):
                self.finished = True
                self._state = _State.FINISHED
                if isinstance(event, ev.StreamError):
                    # The whole error (business code, retry-after), not only the event's
                    # kind and text: OpenAI doors map GLM 1261 to context_length_exceeded.
                    self.error = scrub(
                        self._decoder.error or UpstreamError(event.message, kind=event.kind),
                        self.secrets,
                    )
                    parts.append(self._encoder.fail(self.error))
                    continue
            parts.append(encode(event))
        self.started = True
        return b"".join(parts)

    def _accumulate(self, events: list[ev.Event]) -> None:
        acc = self._accumulator
        assert acc is not None
        try:
            for event in events:
                if isinstance(event, ev.StreamError):
                    self._accumulator = None  # a failed answer is not kept
                    return
                acc.feed(event)
                if isinstance(event, ev.MessageStop) and self._on_complete is not None:
                    self._accumulator = None
                    self._on_complete(acc.flush())
                    return
        except GlmbridgeError as err:  # keeping the answer must never break the stream
            logger.warning("answer not kept: %s", err.message)
            self._accumulator = None

    def _before_content(self, events: list[ev.Event]) -> list[ev.Event]:
        """Drop a start event the client already has; raise an error that came before
        any content (the driver can still answer with a status, or retry)."""
        self._head = None  # the body is a stream after all
        if self._skip_start and isinstance(events[0], ev.MessageStart):
            events = events[1:]
        for event in events:
            if isinstance(event, (ev.BlockStart, ev.MessageDelta, *_CONTENT_DELTAS)):
                self.content_started = True
                return events
            if isinstance(event, ev.StreamError):
                err = self._decoder.error or UpstreamError(
                    event.message, kind=event.kind, retryable=event.kind in _RETRYABLE_KINDS
                )
                raise scrub(self.classify(err), self.secrets)
        return events
