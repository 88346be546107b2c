"""HTTP routes, one module per front door, plus the helpers they share.

The helpers here are deliberately few: the per-request configuration snapshot, reading a
bounded request body, preparing an exchange for any front door, and rendering a glmbridge
error in the shape of the path's protocol (Anthropic's for the admin endpoints).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import Response

from glmbridge import ir
from glmbridge.errors import ClientRequestError, ErrorKind, GlmbridgeError, UpstreamError
from glmbridge.exchange import Exchange, FrontDoor
from glmbridge.protocols import anthropic as anthropic_protocol
from glmbridge.routing import RouteTable
from glmbridge_server.settings import Settings
from glmbridge_server.video_paths import attach_videos

__all__ = [
    "Runtime",
    "anthropic_client",
    "door_for",
    "gemini_client",
    "error_response",
    "prepare",
    "read_body",
    "request_id",
    "runtime",
    "snapshot",
]

logger = logging.getLogger("glmbridge.server")


@dataclass(frozen=True, slots=True)
class Runtime:
    """The configuration one request runs with, taken once when it arrives.

    ``POST /config`` replaces ``app.state.settings``/``route_table``/``model_catalog``
    together; a request that is already running keeps the snapshot it started with.
    """

    settings: Settings
    route_table: RouteTable
    model_catalog: dict[str, dict[str, str]]


def snapshot(app: Any) -> Runtime:
    """The app's current configuration as one immutable :class:`Runtime`."""
    st = app.state
    return Runtime(st.settings, st.route_table, st.model_catalog)


def runtime(request: Request) -> Runtime:
    """This request's configuration snapshot (taken by the request-context middleware)."""
    state = request.scope.setdefault("state", {})
    current: Runtime | None = state.get("runtime")
    if current is None:
        current = state["runtime"] = snapshot(request.app)
    return current


# Quota/billing codes: retrying soon cannot help, so tell SDKs not to.
def request_id(request: Request) -> str | None:
    """The ``req_…`` id the request-context middleware assigned to this request."""
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else None


T = TypeVar("T")

#: Bodies larger than this are decoded in a worker thread (small ones are faster inline).
OFF_LOOP_BYTES = 256 * 1024


def check_object_count(body: bytes, limit: int) -> None:
    """Refuse (413) a body with more than ``limit`` JSON objects before decoding it.

    Decoding holds the interpreter for time proportional to the number of objects (a million
    one-line messages take seconds), which no worker thread can hide. ``{`` is counted,
    braces inside strings included, so the limit is an upper bound that real conversations,
    whose size the model's context bounds, stay far below.
    """
    if len(body) > limit and body.count(b"{") > limit:
        raise ClientRequestError(
            f"request body has more than {limit} JSON objects (max_json_objects); "
            "compact or shorten the conversation",
            kind=ErrorKind.REQUEST_TOO_LARGE,
        )


async def read_model_body(request: Request) -> bytes:
    """The body of a model request, within ``max_body_bytes`` and ``max_json_objects``."""
    settings = runtime(request).settings
    body = await read_body(request, settings.max_body_bytes)
    check_object_count(body, settings.max_json_objects)
    return body


async def off_loop(body: bytes, work: Callable[[], T], *, force: bool = False) -> T:
    """``work()`` (decoding ``body``, converting it): in a worker thread when ``body`` is
    large (or ``force``: it may read files), so /health and every other stream keep being
    served meanwhile."""
    if force or len(body) > OFF_LOOP_BYTES:
        return await anyio.to_thread.run_sync(work)
    return work()


async def read_body(request: Request, limit: int) -> bytes:
    """Read the request body, refusing (413) as soon as it exceeds ``limit`` bytes.

    A too-large ``Content-Length`` is refused before reading anything, and a chunked
    body is refused at the first chunk past the limit, so memory stays bounded.
    """
    too_large = ClientRequestError(
        f"request body exceeds the {limit}-byte limit (max_body_bytes)",
        kind=ErrorKind.REQUEST_TOO_LARGE,
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        parts.append(chunk)
    body = b"".join(parts)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    # In a worker thread: inflating up to the limit (a bomb's worth) takes the loop's time.
    return await anyio.to_thread.run_sync(decompress, body, encoding, limit, too_large)


def decompress(body: bytes, encoding: str, limit: int, too_large: ClientRequestError) -> bytes:
    """A compressed request body (``gzip``, ``deflate``, ``zstd``), at most ``limit`` bytes
    once decompressed (a small bomb never becomes a large body). Codex CLI compresses with
    zstd for OpenAI's own provider; ``zstd`` needs the ``zstandard`` package."""
    if encoding not in ("gzip", "x-gzip", "deflate", "zstd"):
        raise ClientRequestError(
            f"content-encoding {encoding[:20]!r} is not supported (use gzip, deflate or zstd)",
            status_hint=415,
        )
    try:
        if encoding == "zstd":
            out = _unzstd(body, limit + 1)
        else:
            wbits = zlib.MAX_WBITS if encoding == "deflate" else 16 + zlib.MAX_WBITS
            out = zlib.decompressobj(wbits).decompress(body, limit + 1)
    except ClientRequestError:
        raise
    except Exception:  # zlib.error, zstandard.ZstdError …
        raise ClientRequestError(f"body is not valid {encoding} data") from None
    if len(out) > limit:
        raise too_large
    return out


def _unzstd(body: bytes, max_size: int) -> bytes:
    try:
        import zstandard  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ClientRequestError(
            "content-encoding zstd needs the zstandard package on the server; "
            "send the body uncompressed or gzip",
            status_hint=415,
        ) from None
    with zstandard.ZstdDecompressor().stream_reader(body) as reader:
        return bytes(reader.read(max_size))


def anthropic_client(request: Request) -> bool:
    """Whether the client identifies as an Anthropic one (``anthropic-version`` or
    ``x-api-key``): what decides the shape on paths the doors share (``/v1/models``,
    an unknown ``/v1/…`` path)."""
    headers = request.headers
    return "anthropic-version" in headers or "x-api-key" in headers


def gemini_client(request: Request) -> bool:
    """Whether the client is a Google one (``x-goog-api-key``/``x-goog-api-client`` or
    ``?key=``): google-genai lists models under ``/v1`` when its api_version is v1."""
    headers = request.headers
    return (
        "x-goog-api-key" in headers
        or "x-goog-api-client" in headers
        or "key" in request.query_params
    )


def door_for(request: Request) -> FrontDoor:
    """The front door whose error shape a path's clients understand: the path's protocol,
    and for shared or unknown ``/v1/`` paths the client's headers."""
    protocol = request.scope.get("state", {}).get("protocol")
    if protocol is None:
        from glmbridge_server.security import protocol_for_path  # it imports this module

        protocol = protocol_for_path(request.url.path)
    shared = protocol == "anthropic" and not request.url.path.startswith("/v1/messages")
    if protocol == "openai" or (shared and not anthropic_client(request)):
        from glmbridge.protocols.openai import CHAT_DOOR

        return CHAT_DOOR
    if protocol == "gemini":
        from glmbridge.protocols.gemini import GEMINI_DOOR

        return GEMINI_DOOR
    return anthropic_protocol.DOOR


def error_response(
    err: GlmbridgeError, request: Request, door: FrontDoor | None = None
) -> Response:
    """An error body in ``door``'s shape (by default the path's protocol; Anthropic's for
    admin endpoints) with the right status and retry headers."""
    door = door or door_for(request)
    status, body = door.encode_error(err, request_id=request_id(request))
    headers = door.error_headers(err)
    state = request.scope.setdefault("state", {})
    state["error_type"] = err.kind.value
    if isinstance(err, UpstreamError) and err.status is not None:
        state["upstream_status"] = err.status
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def prepare(
    request: Request, door: FrontDoor, decode: Callable[[bytes], ir.Request] | None = None
) -> Exchange:
    """Read the body (bounded) and prepare the :class:`Exchange` for ``door`` with this
    request's configuration: routing table, default upstream profile, thinking default,
    the ``x-glmbridge-model`` override and the shared token estimator. ``decode`` replaces
    the door's own request decoding (the Responses store amends requests).
    """
    current = runtime(request)
    settings = current.settings
    body = await read_model_body(request)
    thinking = None if settings.thinking == "auto" else ir.Thinking(type=settings.thinking)

    def build() -> Exchange:
        req = (decode or door.decode_request)(body)
        if settings.video_dirs:  # opt-in: videos named by path in the turn (video_paths.py)
            req = attach_videos(req, settings.video_dirs, settings.video_max_bytes)
        exchange = Exchange.from_request(
            door,
            req,
            table=current.route_table,
            upstream=settings.upstream_profile,
            override=request.headers.get("x-glmbridge-model") or None,
            thinking=thinking,
            estimator=request.app.state.token_estimator,
            learned=getattr(request.app.state, "served_as", None),
        )
        if req.thinking is None and thinking is None and not settings.reasoning_content:
            exchange.show_reasoning = False  # reasoning_content = false: only when asked
        return exchange

    exchange = await off_loop(body, build, force=bool(settings.video_dirs))
    note_route(request, exchange)
    # Prompts are for debugging only: never above DEBUG.
    if logger.isEnabledFor(logging.DEBUG):
        text = body[:4096].decode("utf-8", "replace")
        logger.debug("request %s body: %s", request_id(request), text)
    return exchange


def note_route(request: Request, exchange: Exchange) -> None:
    """Record the routing decision for the access log and metrics."""
    req, route = exchange.request, exchange.route
    state = request.scope.setdefault("state", {})
    state.update(
        client_model=req.model,
        routed_model=route.model,
        stream=req.stream,
        upstream=route.upstream.name,
    )
    logger.debug("route %s -> %s via %s (%s)", req.model, route.model, route.upstream.name,
                 route.reason)  # fmt: skip
