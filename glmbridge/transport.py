"""httpx2 transports that let the official ``anthropic`` SDK talk to GLM in-process.

No server, no sockets of our own: the SDK's HTTP client hands each request to
:class:`GlmTransport` (or :class:`AsyncGlmTransport`), which converts it with the
library's codecs, calls Z.ai's OpenAI-style API and converts the answer back::

    import anthropic, httpx2
    from glmbridge.transport import GlmTransport

    client = anthropic.Anthropic(
        api_key="unused",  # the SDK insists on one; the transport uses its own key
        base_url="http://glmbridge.local",
        http_client=httpx2.Client(transport=GlmTransport(api_key=ZAI_KEY)),
    )
    client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=[...])

Served: ``POST …/v1/messages`` (streaming or not; ``?beta=true`` is accepted) and
``POST …/v1/messages/count_tokens`` (a local :class:`~glmbridge.tokens.TokenEstimator`
estimate; the upstream tokenizer is not called). Anything else gets ``404
not_found_error``. Errors are native Anthropic error bodies with the right status, so
the SDK raises its usual exception classes (``RateLimitError``, ``BadRequestError`` …).
A stream is read until it produces output before the response is returned, so an
upstream failure before any output is a real status too; after that, failures arrive
as ``error`` events. The header ``x-glmbridge-model`` overrides the routed model.

This transport never retries: the SDK already does (``max_retries``), honouring the
``retry-after`` and ``x-should-retry`` headers set here. Unlike the rest of
``glmbridge``, this module does I/O and imports ``httpx2``; ``import glmbridge``
never imports it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx2
import msgspec

from glmbridge import ir
from glmbridge._version import __version__
from glmbridge.errors import (
    ClientRequestError,
    ErrorKind,
    GlmbridgeError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from glmbridge.ids import new_request_id
from glmbridge.pipeline import GlmToAnthropicStream
from glmbridge.protocols import anthropic, openai
from glmbridge.routing import DEFAULT_ROUTE_TABLE, RouteTable, resolve_route
from glmbridge.tokens import TokenEstimator

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_UPSTREAM",
    "AsyncGlmTransport",
    "GlmTransport",
    "map_upstream_errors",
    "parse_retry_after",
    "scrub_key",
]

DEFAULT_UPSTREAM = "https://api.z.ai/api/coding/paas/v4"
#: Connect within 10 s; then up to 300 s of silence between chunks (no total limit).
DEFAULT_TIMEOUT = httpx2.Timeout(connect=10.0, read=300.0, write=300.0, pool=10.0)

_MAX_ERROR_BODY = 64 * 1024  # error bodies are small JSON; never buffer more of one
# Quota/billing codes: retrying soon cannot help, so tell the SDK not to.
_SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
_ENCODE = msgspec.json.encode


@dataclass(slots=True)
class _Call:
    """A decoded, routed ``/v1/messages`` request ready for the upstream."""

    request: ir.Request
    upstream: httpx2.Request
    request_id: str


# --- pure parts: shared by the sync and async transports -----------------------------------


def _response(
    status: int, body: bytes, request_id: str, headers: dict[str, str] | None = None
) -> httpx2.Response:
    all_headers = {"content-type": "application/json", "request-id": request_id}
    all_headers.update(headers or {})
    return httpx2.Response(status, headers=all_headers, content=body)


def _error_response(err: GlmbridgeError, request_id: str) -> httpx2.Response:
    """A native Anthropic error body, with the SDK's retry hints."""
    status, body = anthropic.encode_error(err, request_id=request_id)
    return _response(status, body, request_id, anthropic.error_headers(err))


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


def scrub_key(err: UpstreamError, key: str) -> UpstreamError:
    """Remove ``key`` from an upstream error message (some gateways echo what they got)."""
    if key and key in err.message:
        err.message = err.message.replace(key, "[redacted]")
        err.args = (err.message,)
    return err


def _upstream_error(response: httpx2.Response, body: bytes, api_key: str) -> UpstreamError:
    """The error behind a non-200 upstream answer; the key is scrubbed from its message."""
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    err = openai.error_from_upstream(response.status_code, body, retry_after=retry_after)
    return scrub_key(err, api_key)


@contextmanager
def map_upstream_errors() -> Iterator[None]:
    """Translate httpx2 transport exceptions into glmbridge upstream errors.

    Timeouts become :class:`UpstreamTimeoutError` (saying in which phase), other
    transport failures :class:`UpstreamConnectionError`; both are retryable.
    """
    try:
        yield
    except httpx2.TimeoutException as exc:
        phase = {
            httpx2.ConnectTimeout: "connecting to",
            httpx2.PoolTimeout: "waiting for a connection to",
            httpx2.WriteTimeout: "sending to",
        }.get(type(exc), "waiting for data from")
        raise UpstreamTimeoutError(f"timed out {phase} the upstream") from exc
    except httpx2.TransportError as exc:
        detail = str(exc)[:200] or type(exc).__name__
        raise UpstreamConnectionError(f"upstream connection failed: {detail}") from exc


def _raw_ok(response: httpx2.Response) -> bool:
    """Whether the raw iterator can skip the decoder layer: an uncompressed body not
    already read (a mock transport's response has been read in advance)."""
    encoding = response.headers.get("content-encoding", "identity").lower()
    return encoding == "identity" and not response.is_stream_consumed


def _finish_early(pipeline: GlmToAnthropicStream) -> bytes:
    """The upstream body ended before any output: flush, which must produce some."""
    out = pipeline.flush()
    if not pipeline.started:
        raise UpstreamProtocolError("the upstream closed the stream without any event")
    return out


class _Core:
    """Configuration and the pure request/response steps both transports share."""

    def __init__(
        self, api_key: str, upstream: str, route_table: RouteTable, timeout: httpx2.Timeout
    ) -> None:
        self.api_key = api_key
        self.base = upstream.rstrip("/")
        self.route_table = route_table
        self.timeout = timeout
        self.estimator = TokenEstimator()

    def dispatch(self, request: httpx2.Request, body: bytes) -> _Call | httpx2.Response:
        """An immediate response (404, count_tokens, a 400), or the upstream call to make."""
        rid = new_request_id()
        path = request.url.path.rstrip("/")
        try:
            if request.method == "POST" and path.endswith("/v1/messages/count_tokens"):
                req = anthropic.decode_count_tokens_request(body)
                count = self.estimator.request_tokens(req)
                return _response(200, _ENCODE({"input_tokens": count}), rid)
            if request.method != "POST" or not path.endswith("/v1/messages"):
                raise ClientRequestError(
                    f"{request.method} {path or '/'} is not served by glmbridge",
                    kind=ErrorKind.NOT_FOUND,
                )
            req = anthropic.decode_request(body)
            route = resolve_route(
                req, self.route_table, override=request.headers.get("x-glmbridge-model") or None
            )
            wire = openai.request_from_ir(req, model=route.model, spec=route.spec)
        except GlmbridgeError as err:
            return _error_response(err, rid)
        headers = {
            "authorization": f"Bearer {self.api_key}",
            "content-type": "application/json",
            "accept": "text/event-stream" if req.stream else "application/json",
            "user-agent": f"glmbridge/{__version__}",
        }
        if req.stream:  # compression would only add latency to small SSE chunks
            headers["accept-encoding"] = "identity"
        upstream = httpx2.Request(
            "POST",
            f"{self.base}/chat/completions",
            headers=headers,
            content=openai.encode_request(wire),
            extensions={"timeout": self.timeout.as_dict()},
        )
        return _Call(request=req, upstream=upstream, request_id=rid)

    def pipeline(self, call: _Call) -> GlmToAnthropicStream:
        estimate = self.estimator.request_tokens(call.request)
        return GlmToAnthropicStream(model=call.request.model, input_tokens_estimate=estimate)

    @staticmethod
    def complete(call: _Call, body: bytes) -> httpx2.Response:
        """The non-streamed answer from a ``200`` upstream body."""
        try:
            response = openai.response_to_ir(body, model=call.request.model)
        except GlmbridgeError as err:
            return _error_response(err, call.request_id)
        return _response(200, anthropic.encode_response(response), call.request_id)


# --- sync ------------------------------------------------------------------------------------


class _SyncRelay(httpx2.SyncByteStream):
    """The client's body: the first output, then the rest of the upstream through the pipeline."""

    def __init__(self, first: bytes, upstream: httpx2.Response, chunks: Iterator[bytes],
                 pipeline: GlmToAnthropicStream) -> None:  # fmt: skip
        self._first, self._upstream, self._chunks = first, upstream, chunks
        self._pipeline = pipeline

    def __iter__(self) -> Iterator[bytes]:
        pipeline = self._pipeline
        try:
            yield self._first
            try:
                with map_upstream_errors():
                    for chunk in self._chunks:
                        out = pipeline.feed(chunk)
                        if out:
                            yield out
                        if pipeline.error is not None:
                            return  # an error event is terminal; stop reading
                out = pipeline.flush()
            except GlmbridgeError as err:
                out = anthropic.error_event(err)
            yield out
        finally:
            self.close()

    def close(self) -> None:
        """Close the upstream response (the client finished or went away)."""
        self._upstream.close()


class GlmTransport(httpx2.BaseTransport):
    """An ``httpx2`` transport that answers Anthropic Messages requests from Z.ai GLM.

    Args:
        api_key: the Z.ai (or BigModel) API key, sent as ``Authorization: Bearer``.
        upstream: the OpenAI-style base URL; ``/chat/completions`` is appended.
        route_table: how client model names map to GLM models.
        upstream_transport: the transport that reaches the upstream (default: a pooled
            ``httpx2.HTTPTransport()``); tests pass a mock or a loopback one.
        timeout: connect and per-chunk idle timeouts for upstream calls.

    Retries are left to the SDK (``max_retries``). See the module docstring for an example.
    """

    def __init__(
        self,
        *,
        api_key: str,
        upstream: str = DEFAULT_UPSTREAM,
        route_table: RouteTable = DEFAULT_ROUTE_TABLE,
        upstream_transport: httpx2.BaseTransport | None = None,
        timeout: httpx2.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self._core = _Core(api_key, upstream, route_table, timeout)
        self._upstream = upstream_transport or httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one SDK request (never raises for upstream failures: error responses)."""
        call = self._core.dispatch(request, request.read())
        if isinstance(call, httpx2.Response):
            return call
        try:
            return self._call(call)
        except GlmbridgeError as err:
            return _error_response(err, call.request_id)

    def _call(self, call: _Call) -> httpx2.Response:
        relay: _SyncRelay | None = None
        with map_upstream_errors():
            response = self._upstream.handle_request(call.upstream)
            try:
                if response.status_code != 200:
                    body = _read_capped(response.iter_bytes())
                    raise _upstream_error(response, body, self._core.api_key)
                if not call.request.stream:
                    return self._core.complete(call, response.read())
                pipeline = self._core.pipeline(call)
                chunks = response.iter_raw() if _raw_ok(response) else response.iter_bytes()
                for chunk in chunks:  # read until the client would see output
                    first = pipeline.feed(chunk)
                    if pipeline.started:
                        break
                else:
                    first = _finish_early(pipeline)
                relay = _SyncRelay(first, response, chunks, pipeline)
            finally:
                if relay is None:
                    response.close()
        headers = {**_SSE_HEADERS, "request-id": call.request_id}
        return httpx2.Response(200, headers=headers, stream=relay)

    def close(self) -> None:
        """Close the upstream connection pool."""
        self._upstream.close()


def _read_capped(chunks: Iterator[bytes]) -> bytes:
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size >= _MAX_ERROR_BODY:
            break
    return b"".join(parts)[:_MAX_ERROR_BODY]


# --- async -----------------------------------------------------------------------------------


class _AsyncRelay(httpx2.AsyncByteStream):
    """The async twin of :class:`_SyncRelay`."""

    def __init__(self, first: bytes, upstream: httpx2.Response, chunks: AsyncIterator[bytes],
                 pipeline: GlmToAnthropicStream) -> None:  # fmt: skip
        self._first, self._upstream, self._chunks = first, upstream, chunks
        self._pipeline = pipeline

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pipeline = self._pipeline
        try:
            yield self._first
            try:
                with map_upstream_errors():
                    async for chunk in self._chunks:
                        out = pipeline.feed(chunk)
                        if out:
                            yield out
                        if pipeline.error is not None:
                            return
                out = pipeline.flush()
            except GlmbridgeError as err:
                out = anthropic.error_event(err)
            yield out
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the upstream response (the client finished or went away)."""
        await self._upstream.aclose()


class AsyncGlmTransport(httpx2.AsyncBaseTransport):
    """The asyncio/trio twin of :class:`GlmTransport`, for ``anthropic.AsyncAnthropic``.

    Same arguments, except that ``upstream_transport`` is an ``httpx2.AsyncBaseTransport``
    (default: a pooled ``httpx2.AsyncHTTPTransport()``).
    """

    def __init__(
        self,
        *,
        api_key: str,
        upstream: str = DEFAULT_UPSTREAM,
        route_table: RouteTable = DEFAULT_ROUTE_TABLE,
        upstream_transport: httpx2.AsyncBaseTransport | None = None,
        timeout: httpx2.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self._core = _Core(api_key, upstream, route_table, timeout)
        self._upstream = upstream_transport or httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one SDK request (never raises for upstream failures: error responses)."""
        call = self._core.dispatch(request, await request.aread())
        if isinstance(call, httpx2.Response):
            return call
        try:
            return await self._call(call)
        except GlmbridgeError as err:
            return _error_response(err, call.request_id)

    async def _call(self, call: _Call) -> httpx2.Response:
        relay: _AsyncRelay | None = None
        with map_upstream_errors():
            response = await self._upstream.handle_async_request(call.upstream)
            try:
                if response.status_code != 200:
                    body = await _aread_capped(response.aiter_bytes())
                    raise _upstream_error(response, body, self._core.api_key)
                if not call.request.stream:
                    return self._core.complete(call, await response.aread())
                pipeline = self._core.pipeline(call)
                chunks = response.aiter_raw() if _raw_ok(response) else response.aiter_bytes()
                async for chunk in chunks:  # read until the client would see output
                    first = pipeline.feed(chunk)
                    if pipeline.started:
                        break
                else:
                    first = _finish_early(pipeline)
                relay = _AsyncRelay(first, response, chunks, pipeline)
            finally:
                if relay is None:
                    await response.aclose()
        headers = {**_SSE_HEADERS, "request-id": call.request_id}
        return httpx2.Response(200, headers=headers, stream=relay)

    async def aclose(self) -> None:
        """Close the upstream connection pool."""
        await self._upstream.aclose()


async def _aread_capped(chunks: AsyncIterator[bytes]) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size >= _MAX_ERROR_BODY:
            break
    return b"".join(parts)[:_MAX_ERROR_BODY]
