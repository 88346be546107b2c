"""One upstream call of an exchange, for every driver: the relay, the server tools' rounds
and the vision describer.

:class:`Call` is what one exchange needs from the app (the upstream client, the settings, the
record it reports to), with the relay's rules for a call: a slot ticket with the request's
priority, the client's retries and key failover, in-band errors retried with the same budget,
the vision fallback and the fallback chain. :meth:`Call.decoded` is the one non-streamed
call-and-decode. :func:`unless_disconnected` runs a non-streamed answer under the one rule
for a client leaving and the server stopping (the streamed one is
:class:`~glmbridge_server.call.stream.StreamingAnswer`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar
from urllib.parse import quote, urlsplit

import anyio
import httpx2

from glmbridge import ir
from glmbridge.errors import ErrorKind, GlmbridgeError, UpstreamError, UpstreamTimeoutError
from glmbridge.exchange import Exchange
from glmbridge.fallback import chain, qualifies
from glmbridge.priority import classify
from glmbridge.routing import Route
from glmbridge.served import served_model
from glmbridge.upstream_errors import scrub
from glmbridge_server.call.asgi import Answer, Receive, WholeAnswer
from glmbridge_server.call.cancel import CancelScope
from glmbridge_server.call.record import Attribute, CallRecord, Step
from glmbridge_server.settings import MOCK_MOUNT, Settings
from glmbridge_server.traffic.scheduler import QueueTimeout, Ticket
from glmbridge_server.upstream.client import (
    Attempt,
    UpstreamClient,
    UpstreamReply,
    backoff_delay,
)
from glmbridge_server.upstream.keypool import session_id_from
from glmbridge_server.upstream.model_follower import note_served

__all__ = [
    "Call",
    "Fallback",
    "as_ir",
    "mock_base",
    "shutting_down",
    "unless_disconnected",
    "upstream_url",
    "on_shutdown",
]

logger = logging.getLogger("glmbridge.server")
T = TypeVar("T")

_FIRST_OUTPUT = "timed out waiting for the upstream's first output (first_output_timeout)"
_STOPPING = "glmbridge is shutting down; this answer was cut short (retry once it is back)"

#: What replaces an exchange whose first call failed (the vision fallback), or ``None``.
Fallback = Callable[[UpstreamError], Awaitable[Exchange | None]]


def as_ir(exchange: Exchange, body: bytes) -> ir.Response:
    """A non-streamed ``200`` answer decoded to IR (an error object in it classified, as
    :meth:`Exchange.complete` does, and scrubbed)."""
    try:
        return exchange.codec.decode_response(
            body, model=exchange.request.model, input_estimate=exchange.input_estimate
        )
    except UpstreamError as err:  # an error object sent with 200
        raise scrub(exchange.classify(err), exchange.secrets) from None


def mock_base(record: CallRecord) -> str:
    """This very server's simulator (``--mock``): ``http://host:port/_mock``."""
    host, port = record.server or ("127.0.0.1", 80)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{MOCK_MOUNT}"


def upstream_url(record: CallRecord, exchange: Exchange) -> str:
    """The exchange's URL; in mock mode, this very server's simulator under ``/_mock``."""
    if not record.settings.mock:
        return exchange.url
    path = urlsplit(exchange.route.upstream.base_url).path
    return f"{mock_base(record)}{path}{exchange.codec.path}"


class Call:
    """One exchange's upstream calls, reported to the call's record."""

    def __init__(self, record: CallRecord, exchange: Exchange) -> None:
        self.record = record
        self.exchange = exchange
        self.upstream: UpstreamClient = record.app.client()
        self.settings: Settings = record.settings
        self.url = upstream_url(record, exchange)
        headers = record.headers
        self.session = session_id_from(headers.session_id, exchange.request.user_id)
        self.deadline = time.monotonic() + self.settings.first_output_timeout
        priority, rule = classify(
            exchange.request, header=headers.priority, claude_code=headers.session_id is not None
        )
        self.ticket = Ticket(priority)
        self.first_route = exchange.route
        self._fallbacks: list[Route] | None = None
        record.priority = priority.name.lower()
        logger.debug("request %s is %s (%s)", record.request_id, record.priority, rule)
        # Upstreams echo keys in errors, also inside a 200: the exchange scrubs them all.
        token = self.settings.auth_token
        exchange.secrets = (*self.settings.api_keys, *((token,) if token else ()))
        #: The vision fallback (glmbridge_server.tools.vision_fallback); used once.
        self.fallback: Fallback | None = None

    async def fall_back(self, err: GlmbridgeError) -> bool:
        """Whether ``err`` (before the client got a byte) was answered by switching to
        another exchange: the vision fallback first (once), else the next route of the
        fallback chain."""
        fallback, self.fallback = self.fallback, None
        if fallback is not None and isinstance(err, UpstreamError):
            twin = await fallback(err)
            if twin is not None:
                self.exchange = self.record.exchange = twin
                self.url = upstream_url(self.record, twin)
                return True
        return self._next_route(err)

    async def send(self) -> UpstreamReply:
        """One upstream call (with the client's own retries); notes key and status."""
        ex = self.exchange
        record = self.record
        headers = ex.headers
        sim = record.headers.sim
        if sim and self.settings.mock:  # the simulator's x-sim-* controls pass through
            headers = lambda key: {**ex.headers(key), **sim}  # noqa: E731
        capture = record.capture
        if capture is not None:  # the inspector is on: our translation, key hidden
            capture.upstream_request("POST", self.url, headers("***").items(), ex.body)
        try:
            reply = await self.upstream.send(
                self.url,
                ex.body,
                headers=headers,
                decode_error=lambda status, body, retry: ex.decode_error(
                    status, body, retry_after=retry
                ),
                stream=ex.stream,
                session_id=self.session,
                settings=self.settings,
                ticket=self.ticket,
                observe=self._attempted,
            )
        except QueueTimeout:
            record.queue_timeout = True
            record.queue_wait_ms = round(self.ticket.waited * 1000, 1)
            raise
        except UpstreamError as err:
            if capture is not None:
                capture.upstream_bytes(f"[{err.status or '-'} {err.kind.value}] {err}".encode())
            raise
        record.key_index = reply.key_index
        record.upstream_status = reply.response.status_code
        record.upstream_attempts = (record.upstream_attempts or 0) + reply.attempts
        if self.ticket.waited:
            record.queue_wait_ms = round(self.ticket.waited * 1000, 1)
        if capture is not None:
            response = reply.response
            capture.upstream_response(response.status_code, response.headers.items())
            if ex.stream:  # recorded as the relay reads it
                response.stream = _Tap(response.stream, capture.upstream_bytes)
            else:
                capture.upstream_bytes(response.content)
        return reply

    def _attempted(self, attempt: Attempt) -> None:
        """Note one upstream attempt (and its wait for a slot) on the record, for traces."""
        steps = self.record.steps
        if attempt.sent - attempt.asked >= 0.0005:
            queued: dict[str, Attribute] = {"glmbridge.priority": self.record.priority or ""}
            steps.append(Step("queue", attempt.asked, attempt.sent, queued))
        facts: dict[str, Attribute] = {
            "glmbridge.attempt": attempt.number,
            "gen_ai.request.model": self.exchange.route.model,
            "glmbridge.upstream": self.exchange.route.upstream.name,
        }
        if attempt.key_index is not None:
            facts["glmbridge.key_index"] = attempt.key_index
        if attempt.status is not None:
            facts["http.response.status_code"] = attempt.status
        steps.append(Step("upstream attempt", attempt.sent, attempt.answered, facts,
                          attempt.error))  # fmt: skip

    async def decoded(self, decode: Callable[[Exchange, bytes], T], *, answers: bool = True) -> T:
        """The one non-streamed call-and-decode: ``decode`` of the answer's body (e.g.
        :func:`as_ir`, :meth:`Exchange.complete`); an in-band error (an error object sent
        with ``200``) is retried with the retry budget, then raised. ``answers``: this call
        answers the client (its model is the record's served model; a describer's is not)."""
        attempt = 0
        while True:
            attempt += 1
            reply = await self.send()
            if answers:
                self.note_served(served_model(reply.response.content))
            try:
                return decode(self.exchange, reply.response.content)
            except UpstreamError as err:
                if await self.retry_in_band(err, attempt):
                    continue
                raise

    def pause_clock_while_queued(self, scope: CancelScope) -> None:
        """Stop ``scope``'s first-output deadline while the request waits for a slot."""
        left: float | None = None  # the clock's remaining time while it is paused

        def queued() -> None:
            nonlocal left
            if left is None:
                left, scope.deadline = scope.deadline - _now(), math.inf

        def granted(waited: float) -> None:
            nonlocal left
            if left is not None:
                scope.deadline, left = _now() + left, None

        self.ticket.on_queue, self.ticket.on_grant = queued, granted

    async def retry_in_band(self, err: UpstreamError, attempt: int) -> bool:
        """Whether to retry an error the upstream reported in-band before any content."""
        if not err.retryable or attempt > self.settings.max_retries:
            return False
        delay = backoff_delay(attempt, self.upstream.rng, err.retry_after)
        if self.upstream.metrics is not None:
            self.upstream.metrics.retry("in_band")
        logger.warning(
            "upstream answer failed before any output (%s); retrying in %.2f s",
            err.message,
            delay,
        )
        await self.upstream.sleep(delay)
        return True

    def timeout(self) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(_FIRST_OUTPUT, retryable=False)

    def _next_route(self, err: GlmbridgeError) -> bool:
        """Switch to the next route of the fallback chain if ``err`` qualifies (only ever
        called before the client got a byte); ``False``: no (more) fallback."""
        if not qualifies(err):
            return False
        ex = self.exchange
        if self._fallbacks is None:
            table = self.record.runtime.route_table
            self._fallbacks = chain(ex.request, ex.route, table, self.settings.fallbacks)
        if not self._fallbacks:
            return False
        route = self._fallbacks.pop(0)
        new = Exchange(ex.door, ex.request, route, input_estimate=ex.input_estimate,
                       message_id=ex.message_id)  # fmt: skip
        new.secrets, new.on_complete = ex.secrets, ex.on_complete
        logger.warning("falling back from %s (%s) to %s (%s) after: %s", ex.route.model,
                       ex.route.upstream.name, route.model, route.upstream.name,
                       err.message)  # fmt: skip
        self.exchange = self.record.exchange = new
        self.url = upstream_url(self.record, new)
        first = self.first_route
        record = self.record
        record.routed_model = route.model
        record.upstream = route.upstream.name
        record.fallback = f"{first.model}@{first.upstream.name}"
        return True

    def note_served(self, model: str | None) -> None:
        """The model the upstream's answer names (the truth: the Coding Plan answers legacy
        ids with another model); recorded and learned from."""
        note_served(self.record.app, self.record, model)

    def served_headers(self) -> list[tuple[bytes, bytes]]:
        """Which model and profile answered, the id sent for it, and what it fell back from
        (if it did). Before the answer names its model (a stream committed early), the
        model the router expects to serve it."""
        route, first = self.exchange.route, self.first_route
        served = self.record.served_model or route.spec.id
        out = [
            (b"x-glmbridge-served-model", _header_value(served)),
            (b"x-glmbridge-routed-model", _header_value(route.model)),
            (b"x-glmbridge-served-upstream", _header_value(route.upstream.name)),
        ]
        if route is not first:
            origin = f"{first.model}@{first.upstream.name}"
            out.append((b"x-glmbridge-fallback-from", _header_value(origin)))
        return out


class _Tap(httpx2.AsyncByteStream):
    """An upstream answer's byte stream that also hands each chunk to ``sink``."""

    def __init__(self, inner: httpx2.AsyncByteStream | httpx2.SyncByteStream,
                 sink: Callable[[bytes], None]) -> None:  # fmt: skip
        assert isinstance(inner, httpx2.AsyncByteStream)
        self.inner, self.sink = inner, sink

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.sink(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


def on_shutdown(record: CallRecord, callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` when the server starts to shut down (never, outside a lifespan);
    returns the function that unsubscribes it (:class:`~glmbridge_server.call.shutdown.
    Shutdown`: a subscription, not a waiting task per call)."""
    stopping = record.app.stopping
    return stopping.subscribe(callback) if stopping is not None else _nothing


def _nothing() -> None:
    return None


def shutting_down() -> UpstreamError:
    """The error an answer ends with when the server stops before it is complete."""
    # Not the upstream's failure, but the same for the client: the answer could not be
    # completed here, and retrying (elsewhere, or once the server is back) may work.
    return UpstreamError(_STOPPING, kind=ErrorKind.OVERLOADED, status_hint=503, retryable=True)


def _now() -> float:
    """The event loop's clock (what a :class:`CancelScope` deadline is on)."""
    return asyncio.get_running_loop().time()


async def unless_disconnected(
    record: CallRecord, receive: Receive, work: Callable[[], Awaitable[Answer]]
) -> Answer:
    """Run ``work``, cancelling it (and its upstream call) the moment the client leaves, or
    with an ``overloaded`` error when the server starts to shut down.

    The body has been read, so the next ASGI message can only be ``http.disconnect``. The
    work runs in this task; one helper task watches the client.
    """
    result: Answer | None = None
    error: GlmbridgeError | None = None
    async with anyio.create_task_group() as tg:
        every = tg.cancel_scope

        def stop() -> None:
            nonlocal error
            error = shutting_down()
            every.cancel()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            record.disconnected = True
            every.cancel()

        tg.start_soon(watch)
        unsubscribe = on_shutdown(record, stop)
        try:
            result = await work()
        except GlmbridgeError as exc:  # carried out of the task group unwrapped
            error = exc
        finally:
            unsubscribe()
        every.cancel()
    if error is not None:
        raise error
    return result if result is not None else WholeAnswer(b"", 499, media_type=None)


def _header_value(text: str) -> bytes:
    """A header-safe value: model names pass through from clients (``glm-*``,
    ``x-glmbridge-model``), so control characters, non-ASCII and length are not theirs."""
    return quote(text[:200], safe="!#$&'()*+,-./:;<=>?@[]^_`{|}~").encode("ascii")
