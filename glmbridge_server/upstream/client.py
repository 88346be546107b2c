"""The upstream HTTP client: pooling, retries, key failover, error mapping.

One :class:`UpstreamClient` per app holds one shared ``httpx2.AsyncClient``. A call
(:meth:`UpstreamClient.send`) loops over attempts until it has a ``200`` response:

- failures before the request reached the upstream (connect errors and timeouts, pool
  timeouts, a dropped keep-alive connection), ``5xx`` and ``429`` with a throttling code
  are retried, with exponential backoff and full jitter, honouring ``Retry-After``; a
  read timeout after the request was sent is not (each retry would be a new billed
  generation);
- ``401``/``403`` and quota codes cool the key down and fail over to the session's next key;
- anything else (``400`` …) is returned at once as an :class:`UpstreamError`.

Nothing is retried once the caller has the response: for a stream, bytes may already have
reached the client. httpx2 exceptions become glmbridge errors in one place,
:func:`glmbridge.transport.boundary.map_upstream_errors`. What the request looks like
(URL, auth header, body) and what an error body means come from the caller's
:class:`~glmbridge.exchange.Exchange`, so this client knows no protocol.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import httpx2

from glmbridge._version import __version__
from glmbridge.errors import (
    ErrorKind,
    UpstreamError,
)
from glmbridge.quota import parse_quota_reset
from glmbridge.transport.boundary import (
    MAX_ERROR_BODY,
    aread_capped,
    map_upstream_errors,
    retry_after_from,
    scrub_key,
)
from glmbridge.upstream_errors import QUOTA_CODES, THROTTLE_CODES, is_key_failure
from glmbridge_server.settings import MOCK_API_KEY, Settings
from glmbridge_server.traffic.scheduler import Scheduler, Slot, Ticket
from glmbridge_server.upstream.http11 import Http11Transport, request_head
from glmbridge_server.upstream.keypool import KeyLease, KeyPool
from glmbridge_server.upstream.throttle_hold import ThrottleHold

if TYPE_CHECKING:
    from glmbridge_server.traffic.metrics import Metrics

__all__ = [
    "Attempt",
    "AttemptObserver",
    "ErrorDecoder",
    "HeaderFactory",
    "UpstreamClient",
    "UpstreamReply",
    "backoff_delay",
]

logger = logging.getLogger("glmbridge.upstream")

BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
# A Retry-After longer than this is not waited out: the client gets the 429 and the header.
RETRY_AFTER_CAP = 20.0

#: Builds the request headers for one key (auth, content negotiation).
HeaderFactory = Callable[[str], dict[str, str]]
#: Reads a non-200 answer: ``(status, body, retry_after) -> UpstreamError``.
ErrorDecoder = Callable[[int, bytes, float | None], UpstreamError]


def _nothing() -> None:
    return None


@dataclass(slots=True)
class Attempt:
    """One upstream attempt, for whoever traces calls (``time.perf_counter()`` values):
    ``asked`` when a key was asked for, ``sent`` when the request went out (the difference
    is the wait for a slot), ``answered`` when the status arrived or the attempt failed."""

    number: int
    asked: float
    sent: float
    answered: float
    key_index: int | None
    status: int | None
    error: str | None = None


#: Told about every attempt (see :meth:`UpstreamClient.send`).
AttemptObserver = Callable[[Attempt], None]


@dataclass(slots=True)
class UpstreamReply:
    """A successful (``200``) upstream response.

    For ``stream=True`` the body is unread: iterate ``response.aiter_raw()`` inside
    :func:`map_upstream_errors` and always ``await response.aclose()``.
    """

    response: httpx2.Response
    key_index: int | None
    attempts: int
    #: Gives the attempt's key slot back; the caller runs it once the stream is read.
    release: Callable[[], None] = _nothing


def backoff_delay(attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
    """Delay before retry ``attempt`` (1-based): ``Retry-After`` if given, else full jitter."""
    if retry_after is not None:
        return min(retry_after, RETRY_AFTER_CAP)
    return rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))


def _should_retry(err: UpstreamError) -> bool:
    if err.status is None:  # transport failure before any response
        return err.retryable
    if err.retry_after is not None and err.retry_after > RETRY_AFTER_CAP:
        return False
    if err.status >= 500:
        return True
    return err.status == 429 and err.code in THROTTLE_CODES


def _web_page(response: httpx2.Response) -> str | None:
    """The content type of an HTML answer (never GLM's), else None."""
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind if kind in ("text/html", "application/xhtml+xml") else None


def _is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


_UNSET: Any = object()


@dataclass(slots=True)
class _Head:
    """A POST's request line and headers for one URL and header set, less the length."""

    prefix: bytes
    #: What the responses name as their request: this method, URL and headers (the body
    #: is not kept).
    request: httpx2.Request
    timeouts: dict[str, Any]

    @classmethod
    def of(cls, http: httpx2.AsyncClient, url: httpx2.URL, headers: dict[str, str]) -> _Head | None:
        """The head for ``headers`` merged over the client's; ``None`` when the length
        line is not the last (the caller set a length or framing header itself)."""
        merged = http.headers.copy()
        merged.update(headers)
        # With a body, httpx2 adds Content-Length last: that line is what changes per call.
        request = httpx2.Request("POST", url, content=b"-", headers=merged)
        head = request_head(request)
        line = b"Content-Length: 1\r\n\r\n"
        if not head.endswith(b"\r\n" + line):
            return None
        return cls(head[: -len(line)], request, http.timeout.as_dict())

    def with_length(self, length: int) -> bytes:
        return self.prefix + b"Content-Length: %d\r\n\r\n" % length


class UpstreamClient:
    """Sends requests to the GLM upstream with pooling, retries and key failover.

    Parameters:
        settings: the server settings (timeouts, retries, cooldowns, upstream URL).
        keys: the key pool.
        transport: an httpx2 transport to use instead of the network (tests).
        sleep: the coroutine used to wait between retries (tests patch it).
        rng: the jitter source.
        metrics: where retries and key cooldowns are counted, if anywhere.
        scheduler: the key slots and their queue (calls with a ``ticket`` use it).

    ``settings`` only fixes what the shared ``httpx2`` client needs (timeouts, proxy
    policy); each :meth:`send` may pass the request's own settings snapshot, so a runtime
    configuration change (another upstream profile, retry budget, cooldowns) applies to new
    requests while the connection pool is kept.
    """

    def __init__(
        self,
        settings: Settings,
        keys: KeyPool,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.keys = keys
        self.scheduler = scheduler
        self._limits_from: Settings | None = None
        self.sleep = sleep
        self.rng = rng or random.Random()
        timeout = httpx2.Timeout(
            connect=settings.connect_timeout,
            read=settings.idle_timeout,  # between chunks; there is no total timeout
            write=settings.idle_timeout,
            pool=settings.pool_timeout,  # a full pool answers "overloaded" at once
        )
        limits = httpx2.Limits(
            max_connections=settings.upstream_connections,
            max_keepalive_connections=min(50, settings.upstream_connections),
            keepalive_expiry=60.0,
        )
        # Proxy variables must not hijack a loopback upstream (the simulator, --mock).
        trust_env = not (settings.mock or _is_loopback_url(settings.upstream_base_url))
        if transport is None:  # ours: httptools parsing, one piece per socket read (issue 22)
            transport = Http11Transport(limits=limits, trust_env=trust_env)
        self._targets: dict[str, tuple[httpx2.URL, httpx2.AsyncBaseTransport | None]] = {}
        self._merged: dict[tuple[tuple[str, str], ...], httpx2.Headers] = {}
        # Rendered request heads (our transport): None where httpx2 would lay one out
        # otherwise (a caller's own length or framing header), which takes the generic path.
        self._heads: dict[tuple[str, tuple[tuple[str, str], ...]], _Head | None] = {}
        self.http = httpx2.AsyncClient(
            transport=transport,
            timeout=timeout,
            limits=limits,  # proxied URLs get httpx2's own transports, with these limits
            trust_env=trust_env,
            follow_redirects=False,
            headers={"User-Agent": f"glmbridge/{__version__}", "Accept-Language": "en-US,en"},
        )

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self.http.aclose()

    async def _post(self, url: str, body: bytes, headers: dict[str, str],
                    extensions: dict[str, Any] | None) -> httpx2.Response:  # fmt: skip
        """POST through the shared client, streamed. Where no proxy mount serves the URL,
        the request goes to the client's transport directly: the client's own layers
        (auth, redirects, cookies, hooks) do nothing for these calls and cost ~10% of a
        request's time in the server (issue 22); its default headers are merged the same."""
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= 64:  # profiles x paths: a handful; never unbounded
                self._targets.clear()
            target = self._targets[url] = self._target(url)
        parsed, direct = target
        if direct is None:
            request = self.http.build_request(
                "POST", parsed, content=body, headers=headers, extensions=extensions
            )
            return await self.http.send(request, stream=True)
        signature = tuple(headers.items())  # a route's headers for a key: a handful of sets
        if isinstance(direct, Http11Transport):  # ours: no httpx2.Request per call
            head = self._heads.get((url, signature), _UNSET)
            if head is _UNSET:
                if len(self._heads) >= 64:
                    self._heads.clear()
                head = self._heads[(url, signature)] = _Head.of(self.http, parsed, headers)
            if head is not None:
                timeouts = extensions["timeout"] if extensions else head.timeouts
                response = await direct.post(parsed, head.with_length(len(body)), body, timeouts)
                response.request = head.request
                return response
        merged = self._merged.get(signature)
        if merged is None:
            if len(self._merged) >= 64:
                self._merged.clear()
            merged = self._merged[signature] = self.http.headers.copy()
            merged.update(headers)  # the Request copies it (and adds the length to its copy)
        if extensions is None:  # the client's own timeouts, as build_request applies them
            extensions = {"timeout": self.http.timeout.as_dict()}
        request = httpx2.Request("POST", parsed, content=body, headers=merged,
                                 extensions=extensions)  # fmt: skip
        response = await direct.handle_async_request(request)
        response.request = request
        return response

    def _target(self, url: str) -> tuple[httpx2.URL, httpx2.AsyncBaseTransport | None]:
        """``url`` parsed, and the transport to hand its requests to directly (``None``: a
        proxy mount serves it, or the client cannot tell; the client then sends them)."""
        parsed = httpx2.URL(url)
        which = getattr(self.http, "_transport_for_url", None)
        own = getattr(self.http, "_transport", None)
        if which is None or own is None or which(parsed) is not own:
            return parsed, None
        return parsed, own

    async def send(
        self,
        url: str,
        body: bytes,
        *,
        headers: HeaderFactory,
        decode_error: ErrorDecoder,
        stream: bool,
        session_id: str | None = None,
        max_retries: int | None = None,
        timeout: httpx2.Timeout | None = None,
        settings: Settings | None = None,
        ticket: Ticket | None = None,
        observe: AttemptObserver | None = None,
    ) -> UpstreamReply:
        """POST ``body`` to ``url`` and return the first ``200`` response.

        Args:
            headers: the request headers for a key (an exchange's ``headers``).
            decode_error: what a non-200 answer means (an exchange's ``decode_error``).
            ticket: schedule every attempt through the key slots (see
                :mod:`glmbridge_server.traffic.scheduler`); a streamed reply then holds its slot
                until ``reply.release()``. Without one, no slot is taken (tokenizer calls).
            observe: told about each attempt (its timings, key, status), for traces.

        Raises:
            UpstreamError: the final failure (kind, status and business code set), including
                ``UpstreamTimeoutError`` / ``UpstreamConnectionError`` for transport failures.
        """
        settings = settings or self.settings
        retries = settings.max_retries if max_retries is None else max_retries
        tried_keys: set[int] = set()
        attempt = 0
        hold = ThrottleHold(ticket, settings.max_queue_wait, self.rng) if ticket else None
        while True:
            attempt += 1
            asked = time.perf_counter()
            lease, slot = await self._take(settings, session_id, tried_keys, ticket)
            sent = time.perf_counter()
            index = lease.index if lease else None
            try:
                response = await self._attempt(
                    url, body, lease, settings, headers, decode_error, stream, timeout
                )
            except UpstreamError as err:
                if observe is not None:
                    observe(Attempt(attempt, asked, sent, time.perf_counter(), index, err.status,
                                    err.kind.value))  # fmt: skip
                if slot is not None:
                    if err.code == "1302":
                        self._learn(slot)
                    slot.release()
                if lease is None and err.quota and err.retry_after is None:
                    # no key to rest (--mock): the client still learns when it resets
                    window = parse_quota_reset(err.code, err.message)
                    err.retry_after = window.seconds_left() if window is not None else None
                throttled = slot is not None and hold is not None
                if not await self._again(
                    err, attempt, retries, settings, lease, tried_keys, hold if throttled else None
                ):
                    raise
                continue
            except BaseException:
                if slot is not None:
                    slot.release()
                raise
            if observe is not None:
                observe(Attempt(attempt, asked, sent, time.perf_counter(), index,
                                response.status_code))  # fmt: skip
            reply = UpstreamReply(response, index, attempt)
            if slot is not None:
                if stream:  # held until the caller has read the stream
                    reply.release = slot.release
                else:
                    slot.release()
            return reply

    async def _again(
        self,
        err: UpstreamError,
        attempt: int,
        retries: int,
        settings: Settings,
        lease: KeyLease | None,
        tried_keys: set[int],
        hold: ThrottleHold | None = None,
    ) -> bool:
        """After a failed attempt: whether to try again (on another key at once, after a
        throttle hold, or on any key after the backoff delay); ``False``: ``err`` is final.
        ``hold``: the call's throttle hold, when it waited for a slot (see
        :mod:`glmbridge_server.upstream.throttle_hold`); its holds spend no retries."""
        if lease is not None and is_key_failure(err):
            self._cool_down(settings, lease, err)
            tried_keys.add(lease.index)
            if len(tried_keys) < len(self.keys):
                logger.warning("failing over from key #%d", lease.index)
                return True
            return False
        wait = hold.delay(err) if hold is not None and _should_retry(err) else None
        if hold is not None and wait is not None:  # held in the bridge, not failed back
            logger.warning("key #%s throttled (code %s); request held %.2f s",
                           lease.index if lease else "-", err.code, wait)  # fmt: skip
            await hold.hold(wait, self.sleep)
            return True
        spent = attempt - (hold.holds if hold is not None else 0)
        if spent > retries or not _should_retry(err):
            return False
        delay = backoff_delay(spent, self.rng, err.retry_after)
        logger.warning("upstream attempt %d failed (%s%s); retrying in %.2f s (key #%s)",
                       attempt, err.status or type(err).__name__,
                       f", code {err.code}" if err.code else "", delay,
                       lease.index if lease else "-")  # fmt: skip
        if self.metrics is not None:
            self.metrics.retry(str(err.status or type(err).__name__))
        await self.sleep(delay)
        return True

    async def _take(
        self,
        settings: Settings,
        session_id: str | None,
        tried: set[int],
        ticket: Ticket | None,
    ) -> tuple[KeyLease | None, Slot | None]:
        """The key for the next attempt, with a slot on it when the call is scheduled."""
        scheduler = self.scheduler
        if not settings.mock:
            self._check_spent(tried)
        if ticket is None or scheduler is None or settings.mock or len(self.keys) == 0:
            return self._lease(settings, session_id, tried), None
        if settings is not self._limits_from:
            scheduler.configure(
                settings.slot_limits(),
                aging=settings.queue_aging,
                learning=settings.slot_learning,
            )
            self._limits_from = settings
        ticket.session = session_id
        slot = await scheduler.acquire(ticket, tried, max_wait=settings.max_queue_wait)
        return slot.lease, slot

    def _learn(self, slot: Slot) -> None:
        assert self.scheduler is not None
        index = slot.lease.index
        limit = self.scheduler.throttled(index)
        logger.warning("key #%d answered 1302 (too many requests in flight): "
                       "limit lowered to %d slot(s) for a while", index, limit)  # fmt: skip

    def _lease(
        self, settings: Settings, session_id: str | None, tried: set[int]
    ) -> KeyLease | None:
        if settings.mock:
            return None
        if len(self.keys) == 0:
            raise UpstreamError(
                "no Z.ai API key is configured: set ZAI_API_KEY (comma-separated for several "
                "keys) in the environment or in .env, or api_keys in the config file; or run "
                "`glmbridge-server --mock` to try it without a key",
                kind=ErrorKind.AUTHENTICATION,
                status_hint=401,
            )
        return self.keys.select(session_id, exclude=tried)

    def _cool_down(self, settings: Settings, lease: KeyLease, err: UpstreamError) -> None:
        quota = err.quota or err.code in QUOTA_CODES
        seconds = settings.quota_cooldown if quota else settings.auth_cooldown
        window = parse_quota_reset(err.code, err.message)
        if window is not None:  # a spent 5-hour/weekly window: rest until it resets
            seconds = max(seconds, window.seconds_left())
            err.message = f"{err.message}; key #{lease.index}: {window.describe()}"
            err.args = (err.message,)
        self.keys.cool_down(lease.index, seconds, window)
        remote = self.scheduler.remote if self.scheduler is not None else None
        if remote is not None:  # the other instances rest the key too
            remote.share_cooldown(lease.index, seconds, window)
        if window is not None:
            # Every key may be spent now: the client may come back at the first reset.
            err.retry_after = self._first_recovery(seconds)
        if self.metrics is not None:
            self.metrics.cooldown(lease.index, "quota" if quota else "auth")
        logger.warning(
            "key #%d cooling down for %.0f s after %s%s",
            lease.index,
            seconds,
            err.status,
            f" (code {err.code})" if err.code else "",
        )

    def _first_recovery(self, fallback: float) -> float:
        left = [self.keys.cooling_remaining(i) for i in range(len(self.keys))]
        return min((s for s in left if s > 0), default=fallback)

    def _check_spent(self, tried: set[int]) -> None:
        """Fail at once when every remaining key waits for a spent quota window: the
        upstream would only repeat its 1308/1310 (the key is not asked again until then)."""
        spent = self.keys.all_spent(tried) if len(self.keys) else None
        if spent is None:
            return
        left = spent.seconds_left()
        raise UpstreamError(
            f"[{spent.code}] every API key's quota is spent: {spent.describe()}",
            kind=ErrorKind.RATE_LIMIT,
            status=429,
            code=spent.code,
            retry_after=max(1.0, left),
            retryable=False,
            status_hint=429,
        )

    async def _attempt(
        self,
        url: str,
        body: bytes,
        lease: KeyLease | None,
        settings: Settings,
        headers: HeaderFactory,
        decode_error: ErrorDecoder,
        stream: bool,
        timeout: httpx2.Timeout | None,
    ) -> httpx2.Response:
        # Mock mode calls this very server's /_mock mount, which the auth token guards too.
        key = lease.key if lease else (settings.auth_token or MOCK_API_KEY)
        extensions = {"timeout": timeout.as_dict()} if timeout else None
        with map_upstream_errors():
            response = await self._post(url, body, headers(key), extensions)
            page = _web_page(response)
            try:
                if response.status_code == 200 and page is None:
                    if not stream:
                        await response.aread()
                    return response
                err_body = await aread_capped(response.aiter_bytes(), MAX_ERROR_BODY)
            finally:
                if not stream or response.status_code != 200 or page is not None:
                    await response.aclose()
        if page is not None and response.status_code == 200:
            # A proxy, captive portal or login page answered: retrying reaches it again.
            raise UpstreamError(
                f"the upstream answered HTTP 200 with a web page ({page}) instead of "
                f"{'an event stream' if stream else 'JSON'}: is a proxy or login page in the "
                "way of the upstream URL?",
                kind=ErrorKind.API_ERROR,
                status_hint=502,
            )
        retry_after = retry_after_from(response.headers)
        err = decode_error(response.status_code, err_body, retry_after)
        raise scrub_key(err, key)
