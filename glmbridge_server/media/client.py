"""Calls to Z.ai's media APIs, and downloads of what they made.

One :class:`MediaClient` per media request: it sends with a key of the media pool (the
next key when one is refused: credentials, balance, quota), polls with the key that made a
task, and downloads generated files only from the media upstream's own hosts
(:func:`glmbridge.media.hosts.allowed_download`), capped in size, following at most three
redirects, each checked the same way.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2

from glmbridge.errors import ErrorKind, UpstreamError
from glmbridge.media.hosts import allowed_download
from glmbridge.protocols.openai.errors import error_from_upstream
from glmbridge.transport.boundary import (
    MAX_ERROR_BODY,
    aread_capped,
    map_upstream_errors,
    parse_retry_after,
    scrub_key,
)
from glmbridge.upstream_errors import is_key_failure
from glmbridge_server.media.access import MediaAccess
from glmbridge_server.upstream.keypool import KeyLease, KeyPool

__all__ = ["MediaClient"]

logger = logging.getLogger("glmbridge.media")

#: Image generation takes ~20 s (glm-image, hd); a video task answers at once.
CALL_TIMEOUT = httpx2.Timeout(connect=10.0, read=180.0, write=30.0, pool=5.0)
DOWNLOAD_TIMEOUT = httpx2.Timeout(connect=10.0, read=60.0, write=30.0, pool=5.0)
MAX_REDIRECTS = 3


class MediaClient:
    """Z.ai media calls for one request (see the module)."""

    def __init__(
        self, http: httpx2.AsyncClient, access: MediaAccess, pool: KeyPool, cooldown: float
    ) -> None:
        self.http = http
        self.access = access
        self.pool = pool
        self.cooldown = cooldown

    def _headers(self, key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}", "content-type": "application/json"}

    async def _send(self, method: str, path: str, body: bytes | None, key: str) -> bytes:
        url = f"{self.access.base_url}/{path}"
        with map_upstream_errors():
            timeout = {"timeout": CALL_TIMEOUT.as_dict()}
            headers = self._headers(key)
            request = self.http.build_request(
                method, url, content=body, headers=headers, extensions=timeout
            )
            response = await self.http.send(request, stream=True)
            try:
                data = await aread_capped(response.aiter_bytes(), 1024 * 1024)
            finally:
                await response.aclose()
        if response.status_code == 200:
            return data
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        err = error_from_upstream(response.status_code, data[:MAX_ERROR_BODY],
                                  retry_after=retry_after)  # fmt: skip
        raise scrub_key(err, key)

    async def post(
        self, path: str, body: bytes, *, session: str | None = None
    ) -> tuple[bytes, int]:
        """POST ``body`` to ``{base}/{path}``; the answer and the index of the key that made it.
        A key Z.ai refuses (credentials, balance, quota) cools down and the next one is tried."""
        tried: set[int] = set()
        while True:
            lease: KeyLease | None = self.pool.select(session, exclude=tried)
            if lease is None:
                raise UpstreamError("every media key is cooling down after refusals; retry later",
                                    kind=ErrorKind.RATE_LIMIT, status_hint=429)  # fmt: skip
            try:
                return await self._send("POST", path, body, lease.key), lease.index
            except UpstreamError as err:
                if not is_key_failure(err) or len(tried) + 1 >= len(self.pool):
                    raise
                logger.warning("media key #%d refused (%s); trying the next", lease.index,
                               err.code or err.status)  # fmt: skip
                self.pool.cool_down(lease.index, self.cooldown)
                tried.add(lease.index)

    async def get(self, path: str, key_index: int) -> bytes:
        """GET ``{base}/{path}`` with the key at ``key_index`` (the one that made the task)."""
        if key_index >= len(self.pool):
            raise UpstreamError("the key that created this task is no longer configured",
                                kind=ErrorKind.NOT_FOUND, status_hint=404)  # fmt: skip
        return await self._send("GET", path, None, self.pool.lease(key_index).key)

    @asynccontextmanager
    async def open(self, url: str, limit: int) -> AsyncIterator[tuple[str, AsyncIterator[bytes]]]:
        """A download from the media upstream's own hosts: ``(content type, chunks)``; the
        chunks stop with an error past ``limit`` bytes."""
        for _ in range(MAX_REDIRECTS + 1):
            if not allowed_download(url, self.access.base_url):
                raise UpstreamError("the media upstream answered with a URL outside its own "
                                    "file hosts; not downloaded", status_hint=502)  # fmt: skip
            with map_upstream_errors():
                request = self.http.build_request(
                    "GET", url, extensions={"timeout": DOWNLOAD_TIMEOUT.as_dict()}
                )
                response = await self.http.send(request, stream=True)
            if response.status_code in (301, 302, 303, 307, 308):
                await response.aclose()
                url = str(response.headers.get("location", ""))
                continue
            try:
                if response.status_code != 200:
                    raise UpstreamError(f"downloading the generated file: HTTP "
                                        f"{response.status_code}", status=response.status_code,
                                        status_hint=502)  # fmt: skip
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise UpstreamError(f"the generated file is larger than {limit} bytes",
                                        status_hint=502)  # fmt: skip
                ctype = response.headers.get("content-type", "application/octet-stream")
                yield ctype.partition(";")[0].strip().lower(), _capped(response, limit)
                return
            finally:
                await response.aclose()
        raise UpstreamError("too many redirects downloading the generated file", status_hint=502)

    async def fetch(self, url: str, limit: int) -> tuple[bytes, str]:
        """The whole file at ``url`` (see :meth:`open`) and its content type."""
        async with self.open(url, limit) as (ctype, chunks):
            return b"".join([chunk async for chunk in chunks]), ctype


async def _capped(response: httpx2.Response, limit: int) -> AsyncIterator[bytes]:
    size = 0
    with map_upstream_errors():
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise UpstreamError(f"the generated file is larger than {limit} bytes",
                                    status_hint=502)  # fmt: skip
            yield chunk
