"""httpx2 transports that let the official ``anthropic`` and ``openai`` SDKs talk to GLM
in-process.

No server, no sockets of our own: the SDK's HTTP client hands each request to
:class:`GlmTransport` (or :class:`AsyncGlmTransport`), which runs one
:class:`~glmbridge.exchange.Exchange` for it against the upstream profile (GLM's chat
API by default, or Z.ai's Anthropic endpoint) and returns the answer::

    import anthropic, openai, httpx2
    from glmbridge.transport import GlmTransport

    http = httpx2.Client(transport=GlmTransport(api_key=ZAI_KEY))
    claude = anthropic.Anthropic(api_key="unused", base_url="http://glmbridge.local",
                                 http_client=http)  # the SDKs insist on some key
    gpt = openai.OpenAI(api_key="unused", base_url="http://glmbridge.local/v1",
                        http_client=http)
    claude.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=[...])
    gpt.chat.completions.create(model="glm-4.7", messages=[...])
    gpt.responses.create(model="glm-4.7", input="...")

Served, by path: ``POST …/v1/messages`` (streaming or not; ``?beta=true`` is accepted),
``POST …/v1/messages/count_tokens`` (a local :class:`~glmbridge.tokens.TokenEstimator`
estimate), ``POST …/chat/completions``, ``POST …/responses``, and the Gemini methods
``POST …/models/<model>:generateContent`` / ``:streamGenerateContent`` / ``:countTokens``
(the google-genai SDK: pass the transport through ``HttpOptions(client_args=…)``).
Anything else gets a 404 in the shape of the path's protocol. Errors are native error
bodies with the right status, so each SDK raises its usual exception classes. A stream
is read until it produces output before the response is returned, so an upstream failure
before any output is a real status too; after that, failures arrive in the stream as the
door's error event, and a stream that has delivered its final event ends there whatever
the upstream does next. The header ``x-glmbridge-model`` overrides the routed model.

This transport never retries: the SDK already does (``max_retries``), honouring the
``retry-after`` and ``x-should-retry`` headers set here (``false`` after a read timeout:
the upstream may be generating, and billing, that answer already). Unlike the rest of
``glmbridge``, this module does I/O and imports ``httpx2``; ``import glmbridge`` never
imports it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Generic, TypeVar

import anyio
import httpx2
import msgspec

from glmbridge._version import __version__
from glmbridge.doors import door_for_suffix, gemini_method
from glmbridge.errors import (
    ClientRequestError,
    ErrorKind,
    GlmbridgeError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from glmbridge.exchange import Exchange, ExchangeStream, FrontDoor
from glmbridge.ids import new_request_id
from glmbridge.profiles import DEFAULT_PROFILE, UpstreamProfile, profile_for
from glmbridge.protocols import anthropic, gemini
from glmbridge.protocols.openai import CHAT_DOOR
from glmbridge.routing import DEFAULT_ROUTE_TABLE, RouteTable
from glmbridge.tokens import TokenEstimator
from glmbridge.transport.boundary import (
    DEFAULT_TIMEOUT,
    aread_capped,
    map_upstream_errors,
    read_capped,
    retry_after_from,
    scrub_key,
)

__all__ = ["DEFAULT_FIRST_OUTPUT_TIMEOUT", "AsyncGlmTransport", "GlmTransport"]

#: Longest wait for a stream's first output (the idle timeout bounds each read too).
DEFAULT_FIRST_OUTPUT_TIMEOUT = 300.0
# After the answer, the upstream's epilogue (the chunked-body terminator, normally already in
# flight) is read so that its connection goes back to the pool instead of a new TLS handshake
# per request: async, at most this long before the client's body ends; sync, in a thread.
_DRAIN_SECONDS = 0.25
_DRAIN_BYTES = 64 * 1024
_Upstream = TypeVar("_Upstream", httpx2.BaseTransport, httpx2.AsyncBaseTransport)


def _response(
    status: int, body: bytes, request_id: str, headers: dict[str, str] | None = None
) -> httpx2.Response:
    all_headers = {"content-type": "application/json", "request-id": request_id}
    all_headers.update(headers or {})
    return httpx2.Response(status, headers=all_headers, content=body)


def _error_response(door: FrontDoor, err: GlmbridgeError, request_id: str) -> httpx2.Response:
    """A native error body, with the SDK's retry hints."""
    status, body = door.encode_error(err, request_id=request_id)
    return _response(status, body, request_id, door.error_headers(err))


def _raw_ok(response: httpx2.Response) -> bool:
    """Whether the raw iterator can skip the decoder layer: an uncompressed body not
    already read (a mock transport's response has been read in advance)."""
    encoding = response.headers.get("content-encoding", "identity").lower()
    return encoding == "identity" and not response.is_stream_consumed


class _Call:
    """One SDK request: its exchange, the upstream request, and the first-output deadline."""

    __slots__ = ("_opening", "deadline", "exchange", "request_id", "upstream")

    def __init__(self, exchange: Exchange, upstream: httpx2.Request, request_id: str,
                 deadline: float) -> None:  # fmt: skip
        self.exchange, self.upstream, self.request_id = exchange, upstream, request_id
        self.deadline = deadline
        self._opening = b""

    def first(self, stream: ExchangeStream, chunk: bytes) -> bool:
        """Feed one chunk before the first output, within the first-output deadline; whether
        the client would now see output (the driver stops reading then)."""
        self._opening = stream.feed(chunk)
        if stream.started:
            return True
        if time.monotonic() > self.deadline:
            raise UpstreamTimeoutError(
                "timed out waiting for the upstream's first output", retryable=False
            )
        return False

    def opening(self, stream: ExchangeStream) -> bytes:
        """The client's first bytes: the output of the chunk that started the answer, or, if
        the upstream body ended before any output, the flush, which must produce some."""
        if stream.started:
            return self._opening
        out = stream.flush()
        if not stream.started:
            raise UpstreamProtocolError("the upstream closed the stream without any event")
        return out

    def answer(self, relay: httpx2.SyncByteStream | httpx2.AsyncByteStream) -> httpx2.Response:
        """The streaming ``200`` whose body is ``relay``."""
        headers = {"content-type": self.exchange.door.stream_content_type,
                   "cache-control": "no-cache", "request-id": self.request_id}  # fmt: skip
        return httpx2.Response(200, headers=headers, stream=relay)


class _Core:
    """Configuration and the pure request/response steps both transports share."""

    def __init__(self, api_key: str, upstream: str | UpstreamProfile, route_table: RouteTable,
                 timeout: httpx2.Timeout, first_output_timeout: float) -> None:  # fmt: skip
        self.api_key = api_key
        self.profile = upstream if isinstance(upstream, UpstreamProfile) else profile_for(upstream)
        self.route_table = route_table
        # httpx2 fixes a request's read timeout for all its reads, so the first-output bound
        # also caps the wait between chunks here (the server's relay keeps them apart).
        read = timeout.read
        if read is None or read > first_output_timeout:
            read = first_output_timeout
        self.timeout = httpx2.Timeout(
            connect=timeout.connect, read=read, write=timeout.write, pool=timeout.pool
        )
        self.first_output_timeout = first_output_timeout
        self.estimator = TokenEstimator()

    def dispatch(self, request: httpx2.Request, body: bytes) -> _Call | httpx2.Response:
        """An immediate response (404, count_tokens, a 400), or the upstream call to make."""
        rid = new_request_id()
        path = request.url.path.rstrip("/")
        door = door_for_suffix(path)
        try:
            gemini_call = gemini_method(path) if request.method == "POST" else None
            if gemini_call is not None:
                return self._gemini(request, body, rid, *gemini_call)
            if request.method == "POST" and path.endswith("/v1/messages/count_tokens"):
                door = anthropic.DOOR
                req = anthropic.decode_count_tokens_request(body)
                count = self.estimator.request_tokens(req)
                return _response(200, msgspec.json.encode({"input_tokens": count}), rid)
            if request.method != "POST" or door is None:
                anthropic_sdk = "anthropic-version" in request.headers or "/v1/messages" in path
                door = door or (anthropic.DOOR if anthropic_sdk else CHAT_DOOR)
                raise ClientRequestError(
                    f"{request.method} {path or '/'} is not served by glmbridge",
                    kind=ErrorKind.NOT_FOUND,
                )
            exchange = Exchange.from_request(
                door,
                door.decode_request(body),
                table=self.route_table,
                upstream=self.profile,
                override=request.headers.get("x-glmbridge-model") or None,
                estimator=self.estimator,
            )
        except GlmbridgeError as err:
            return _error_response(door or anthropic.DOOR, err, rid)
        return self._call_for(exchange, rid)

    def _gemini(self, request: httpx2.Request, body: bytes, rid: str, model: str,
                action: str) -> _Call | httpx2.Response:  # fmt: skip
        """A Gemini method (the model is in the path; countTokens is a local estimate)."""
        alt = request.url.params.get("alt", "")
        door = gemini.GEMINI_DOOR if alt == "sse" else gemini.GEMINI_ARRAY_DOOR
        try:
            req = gemini.decode_request(body, model=model,
                                        stream=action == "streamGenerateContent")  # fmt: skip
            if action == "countTokens":
                count = self.estimator.request_tokens(req)
                return _response(200, msgspec.json.encode({"totalTokens": count}), rid)
            exchange = Exchange.from_request(
                door, req, table=self.route_table, upstream=self.profile,
                override=request.headers.get("x-glmbridge-model") or None,
                estimator=self.estimator,
            )  # fmt: skip
        except GlmbridgeError as err:
            return _error_response(door, err, rid)
        return self._call_for(exchange, rid)

    def _call_for(self, exchange: Exchange, rid: str) -> _Call:
        exchange.secrets = (self.api_key,)  # in-band upstream errors echo it too
        headers = exchange.headers(self.api_key)
        headers["user-agent"] = f"glmbridge/{__version__}"
        upstream = httpx2.Request(
            "POST",
            exchange.url,
            headers=headers,
            content=exchange.body,
            extensions={"timeout": self.timeout.as_dict()},
        )
        deadline = time.monotonic() + self.first_output_timeout
        return _Call(exchange, upstream, rid, deadline)

    def failure(self, call: _Call, response: httpx2.Response, body: bytes) -> GlmbridgeError:
        """The error behind a non-200 upstream answer; the key is scrubbed from it."""
        retry_after = retry_after_from(response.headers)
        err = call.exchange.decode_error(response.status_code, body, retry_after=retry_after)
        return scrub_key(err, self.api_key)

    @staticmethod
    def complete(call: _Call, body: bytes) -> httpx2.Response:
        """The non-streamed answer from a ``200`` upstream body."""
        try:
            out = call.exchange.complete(body)
        except GlmbridgeError as err:
            return _error_response(call.exchange.door, err, call.request_id)
        return _response(200, out, call.request_id)


class _Configured(Generic[_Upstream]):
    """The constructor both transports share (their docstrings describe the arguments)."""

    def __init__(
        self,
        *,
        api_key: str,
        upstream: str | UpstreamProfile = DEFAULT_PROFILE,
        route_table: RouteTable = DEFAULT_ROUTE_TABLE,
        upstream_transport: _Upstream | None = None,
        timeout: httpx2.Timeout = DEFAULT_TIMEOUT,
        first_output_timeout: float = DEFAULT_FIRST_OUTPUT_TIMEOUT,
    ) -> None:
        self._core = _Core(api_key, upstream, route_table, timeout, first_output_timeout)
        self._upstream: _Upstream = upstream_transport or self._default_upstream()

    def _default_upstream(self) -> _Upstream:
        """A pooled transport of the right kind (sync or async)."""
        raise NotImplementedError


# --- sync ------------------------------------------------------------------------------------


class _SyncRelay(httpx2.SyncByteStream):
    """The client's body: the first output, then the rest of the upstream's stream."""

    def __init__(self, first: bytes, upstream: httpx2.Response, chunks: Iterator[bytes],
                 stream: ExchangeStream) -> None:  # fmt: skip
        self._first, self._upstream, self._chunks, self._stream = first, upstream, chunks, stream
        self._handed_off = False

    def __iter__(self) -> Iterator[bytes]:
        stream = self._stream
        try:
            yield self._first
            if stream.finished:
                return self._drain()  # the answer is complete: don't wait for the upstream
            try:
                with map_upstream_errors():
                    for chunk in self._chunks:
                        out = stream.feed(chunk)
                        if out:
                            yield out
                        if stream.finished:
                            return self._drain()
                out = stream.flush()
            except GlmbridgeError as err:
                out = stream.fail(err)
            yield out
        finally:
            self.close()

    def _drain(self) -> None:
        """Read the upstream's epilogue in a daemon thread, so that its connection can go
        back to the pool while the client already has its whole answer."""
        self._handed_off = True
        upstream, chunks = self._upstream, self._chunks

        def drain() -> None:
            with contextlib.suppress(Exception):
                _read_epilogue(chunks)
            with contextlib.suppress(Exception):
                upstream.close()

        threading.Thread(target=drain, name="glmbridge-drain", daemon=True).start()

    def close(self) -> None:
        """Close the upstream response (the client finished or went away)."""
        if not self._handed_off:
            self._upstream.close()


def _read_epilogue(chunks: Iterator[bytes]) -> None:
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > _DRAIN_BYTES:
            return


class GlmTransport(_Configured[httpx2.BaseTransport], httpx2.BaseTransport):
    """An ``httpx2`` transport that answers Anthropic Messages, OpenAI Chat Completions and
    OpenAI Responses requests from Z.ai GLM.

    Args:
        api_key: the Z.ai (or BigModel) API key.
        upstream: a profile name (``zai-coding``, ``zai-anthropic``, ``zai-auto`` …, see
            :mod:`glmbridge.profiles`), an OpenAI-compatible base URL, or a profile.
        route_table: how client model names map to GLM models.
        upstream_transport: the transport that reaches the upstream (default: a pooled
            ``httpx2.HTTPTransport()``); tests pass a mock or a loopback one.
        timeout: connect and per-chunk idle timeouts for upstream calls.
        first_output_timeout: the longest wait for a stream's first output; it also caps
            the idle timeout (httpx2 has one read timeout per request).

    Retries are left to the SDK (``max_retries``). See the module docstring for an example.
    """

    def _default_upstream(self) -> httpx2.BaseTransport:
        return httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one SDK request (never raises for upstream failures: error responses)."""
        call = self._core.dispatch(request, request.read())
        if isinstance(call, httpx2.Response):
            return call
        try:
            return self._call(call)
        except GlmbridgeError as err:
            return _error_response(call.exchange.door, err, call.request_id)

    def _call(self, call: _Call) -> httpx2.Response:
        relay: _SyncRelay | None = None
        with map_upstream_errors():
            response = self._upstream.handle_request(call.upstream)
            try:
                if response.status_code != 200:
                    raise self._core.failure(call, response, read_capped(response.iter_bytes()))
                if not call.exchange.stream:
                    return self._core.complete(call, response.read())
                stream = call.exchange.open_stream()
                chunks = response.iter_raw() if _raw_ok(response) else response.iter_bytes()
                for chunk in chunks:  # read until the client would see output
                    if call.first(stream, chunk):
                        break
                relay = _SyncRelay(call.opening(stream), response, chunks, stream)
            finally:
                if relay is None:
                    response.close()
        return call.answer(relay)

    def close(self) -> None:
        """Close the upstream connection pool."""
        self._upstream.close()


# --- async -----------------------------------------------------------------------------------


class _AsyncRelay(httpx2.AsyncByteStream):
    """The async twin of :class:`_SyncRelay`."""

    def __init__(self, first: bytes, upstream: httpx2.Response, chunks: AsyncIterator[bytes],
                 stream: ExchangeStream) -> None:  # fmt: skip
        self._first, self._upstream, self._chunks, self._stream = first, upstream, chunks, stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        stream = self._stream
        try:
            yield self._first
            if stream.finished:
                await self._drain()
                return
            try:
                with map_upstream_errors():
                    async for chunk in self._chunks:
                        out = stream.feed(chunk)
                        if out:
                            yield out
                        if stream.finished:
                            await self._drain()
                            return
                out = stream.flush()
            except GlmbridgeError as err:
                out = stream.fail(err)
            yield out
        finally:
            await self.aclose()

    async def _drain(self) -> None:
        """Read the upstream's epilogue, briefly, so that its connection can be reused."""
        size = 0
        with anyio.move_on_after(_DRAIN_SECONDS), contextlib.suppress(httpx2.HTTPError):
            async for chunk in self._chunks:
                size += len(chunk)
                if size > _DRAIN_BYTES:
                    return

    async def aclose(self) -> None:
        """Close the upstream response (the client finished or went away)."""
        await self._upstream.aclose()


class AsyncGlmTransport(_Configured[httpx2.AsyncBaseTransport], httpx2.AsyncBaseTransport):
    """The asyncio/trio twin of :class:`GlmTransport`, for ``anthropic.AsyncAnthropic``.

    Same arguments, except that ``upstream_transport`` is an ``httpx2.AsyncBaseTransport``
    (default: a pooled ``httpx2.AsyncHTTPTransport()``).
    """

    def _default_upstream(self) -> httpx2.AsyncBaseTransport:
        return httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one SDK request (never raises for upstream failures: error responses)."""
        call = self._core.dispatch(request, await request.aread())
        if isinstance(call, httpx2.Response):
            return call
        try:
            return await self._call(call)
        except GlmbridgeError as err:
            return _error_response(call.exchange.door, err, call.request_id)

    async def _call(self, call: _Call) -> httpx2.Response:
        relay: _AsyncRelay | None = None
        with map_upstream_errors():
            response = await self._upstream.handle_async_request(call.upstream)
            try:
                if response.status_code != 200:
                    body = await aread_capped(response.aiter_bytes())
                    raise self._core.failure(call, response, body)
                if not call.exchange.stream:
                    return self._core.complete(call, await response.aread())
                stream = call.exchange.open_stream()
                chunks = response.aiter_raw() if _raw_ok(response) else response.aiter_bytes()
                async for chunk in chunks:  # read until the client would see output
                    if call.first(stream, chunk):
                        break
                relay = _AsyncRelay(call.opening(stream), response, chunks, stream)
            finally:
                if relay is None:
                    await response.aclose()
        return call.answer(relay)

    async def aclose(self) -> None:
        """Close the upstream connection pool."""
        await self._upstream.aclose()
