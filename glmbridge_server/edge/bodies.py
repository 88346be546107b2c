"""Request bodies: read within a size limit, decompressed, decoded off the event loop when
large. No web framework: a request is anything with ``headers`` and ``stream()``."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol, TypeVar

import anyio

from glmbridge.errors import ClientRequestError, ErrorKind
from glmbridge_server.settings import Settings

__all__ = [
    "OFF_LOOP_BYTES",
    "BodyRequest",
    "check_object_count",
    "decompress",
    "off_loop",
    "read_body",
    "read_model_body",
]


class BodyRequest(Protocol):
    """What reading a body needs of an HTTP request."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    def stream(self) -> AsyncIterator[bytes]: ...


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


async def read_model_body(request: BodyRequest, settings: Settings) -> bytes:
    """The body of a model request, within ``max_body_bytes`` and ``max_json_objects``."""
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


async def read_body(request: BodyRequest, limit: int) -> bytes:
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
