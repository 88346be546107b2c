"""The httpx2 boundary, shared by the in-process transports and the server.

httpx2 exceptions become glmbridge upstream errors here and nowhere else; error bodies
are read with a cap; ``Retry-After`` is parsed; keys are scrubbed from upstream text.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractContextManager
from email.utils import parsedate_to_datetime
from types import TracebackType

import httpx2

from glmbridge.errors import (
    ErrorKind,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from glmbridge.upstream_errors import scrub

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_ERROR_BODY",
    "aread_capped",
    "map_upstream_errors",
    "parse_retry_after",
    "read_capped",
    "retry_after_from",
    "scrub_key",
]

#: Connect within 10 s; then up to 300 s of silence between chunks (no total limit).
DEFAULT_TIMEOUT = httpx2.Timeout(connect=10.0, read=300.0, write=300.0, pool=10.0)
#: Error bodies are small JSON; never buffer more of one.
MAX_ERROR_BODY = 64 * 1024

# Failures after which the upstream may already be generating (and billing) an answer:
# retrying them starts a second generation, so they are final.
_AFTER_SEND = (httpx2.ReadTimeout, httpx2.WriteTimeout, httpx2.ReadError)


class _UpstreamErrors(AbstractContextManager[None]):
    """:func:`map_upstream_errors`: a plain context manager, not a generator one (it wraps
    every upstream call and every streamed body; a generator's set-up cost several times
    as much, issue 22)."""

    __slots__ = ()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, httpx2.TransportError):
            return
        if isinstance(exc, httpx2.PoolTimeout):
            # Every pooled connection is busy (the server's upstream_connections): say so
            # at once, natively, rather than let the client wait out a timeout.
            raise UpstreamError(
                "glmbridge has no free upstream connection (upstream_connections is "
                "reached); try again shortly",
                kind=ErrorKind.OVERLOADED,
                retry_after=1.0,
                retryable=False,
            ) from exc
        if isinstance(exc, httpx2.TimeoutException):
            phase = {
                httpx2.ConnectTimeout: "connecting to",
                httpx2.WriteTimeout: "sending to",
            }.get(type(exc), "waiting for data from")
            raise UpstreamTimeoutError(
                f"timed out {phase} the upstream", retryable=not isinstance(exc, _AFTER_SEND)
            ) from exc
        detail = str(exc)[:200] or type(exc).__name__
        raise UpstreamConnectionError(
            f"upstream connection failed: {detail}", retryable=not isinstance(exc, _AFTER_SEND)
        ) from exc


_MAP_UPSTREAM_ERRORS = _UpstreamErrors()


def map_upstream_errors() -> AbstractContextManager[None]:
    """Translate httpx2 transport exceptions into glmbridge upstream errors.

    Timeouts become :class:`UpstreamTimeoutError` (saying in which phase), other
    transport failures :class:`UpstreamConnectionError`. Only failures before the
    request reached the upstream (connect, pool, a dropped keep-alive connection) are
    ``retryable``: after it, each retry would be a new billed generation.
    """
    return _MAP_UPSTREAM_ERRORS


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    ``None`` when absent or unreadable; ``0.0`` for a moment already past.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return 0.0
    return seconds


def retry_after_from(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from a response's headers: ``retry-after-ms`` (milliseconds, what
    Z.ai's Anthropic endpoint was logged sending with a 1310: Yeachan-Heo/gajae-code#1821,
    and what the OpenAI and Anthropic SDKs read first) else ``retry-after``."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis.strip()) / 1000
        except ValueError:
            value = None
        if value is not None and value == value:  # not NaN
            return max(0.0, value)
    return parse_retry_after(headers.get("retry-after"), now=now)


def scrub_key(err: UpstreamError, key: str) -> UpstreamError:
    """Remove ``key`` from an upstream error message (some gateways echo what they got)."""
    return scrub(err, (key,))


def read_capped(chunks: Iterator[bytes], limit: int = MAX_ERROR_BODY) -> bytes:
    """At most ``limit`` bytes of a body."""
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(parts)[:limit]


async def aread_capped(chunks: AsyncIterator[bytes], limit: int = MAX_ERROR_BODY) -> bytes:
    """The async twin of :func:`read_capped`."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(parts)[:limit]
