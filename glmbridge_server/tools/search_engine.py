"""The web search engine the gateway's server tools use: Z.ai's Web Search API over httpx2.

:class:`ZaiSearchEngine` POSTs :func:`glmbridge.websearch.encode_zai_search` bodies to
``{base}/web_search`` with a key from the server's key pool, and never fails a turn: every
failure becomes a :class:`~glmbridge.websearch.SearchFailure` that the server-tool loop
turns into a ``web_search_tool_result`` error block and a tool error for the model.

* **Cache.** Results are kept for ``ttl`` seconds per (query, domain lists, engine), at most
  ``_CACHE_SIZE`` entries, oldest out first: search quotas are small (Lite 100 searches and
  reads a month: wire-specs A.14) and Claude Code repeats queries.
* **Rate limits.** A ``429`` (users see 1302 after a handful of calls: zai-org/GLM-5#151)
  pauses the engine for its ``Retry-After`` (at least ``_PAUSE_MIN`` seconds): searches in the
  pause fail at once with ``too_many_requests`` instead of spending more quota. The key is
  not cooled down in the chat key pool: a search quota says nothing about chat.
* **Time.** A search has ``timeout`` seconds in all; a timeout is ``unavailable``.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Sequence

import anyio
import httpx2

from glmbridge.errors import GlmbridgeError, UpstreamError, UpstreamTimeoutError
from glmbridge.protocols.openai.errors import error_from_upstream
from glmbridge.transport.boundary import (
    MAX_ERROR_BODY,
    aread_capped,
    map_upstream_errors,
    retry_after_from,
)
from glmbridge.upstream_errors import scrub
from glmbridge.websearch import (
    ZAI_SEARCH_PATH,
    SearchFailure,
    SearchHit,
    SearchHost,
    SearchOptions,
    decode_zai_search,
    encode_zai_search,
    failure_for,
    search_host,
)

__all__ = ["ZaiSearchEngine", "search_base_url"]

logger = logging.getLogger("glmbridge.search")

_CACHE_SIZE = 256
_PAUSE_MIN = 30.0
_MAX_ANSWER = 4 * 1024 * 1024

#: The ``paas/v4`` base of each upstream host: the Web Search API is not on the Coding
#: Plan's ``coding/paas/v4`` path (wire-specs A.15; the coding key works there).
_HOST_BASES = {
    "open.bigmodel.cn": "https://open.bigmodel.cn/api/paas/v4",
}
_DEFAULT_BASE = "https://api.z.ai/api/paas/v4"


def search_base_url(upstream_base_url: str) -> str:
    """The Web Search API base for an upstream: same host (Z.ai or BigModel), ``paas/v4``."""
    for host, base in _HOST_BASES.items():
        if f"://{host}/" in upstream_base_url + "/":
            return base
    return _DEFAULT_BASE


class ZaiSearchEngine:
    """Searches through Z.ai's Web Search API (see the module docstring).

    Parameters:
        http: the shared httpx2 client.
        url: the full endpoint URL (``…/paas/v4/web_search``).
        engine: the ``search_engine`` name (empty: the host's default, ``search-prime`` on
            Z.ai, ``search_std`` on BigModel).
        ttl: seconds a result list is cached (0: no cache).
        timeout: seconds one search may take.
        secrets: scrubbed from every error message (the API keys).
        clock: the monotonic clock (tests).
        host: the host's Web Search rules (default: from ``url``).
    """

    def __init__(
        self,
        http: httpx2.AsyncClient,
        *,
        url: str,
        engine: str = "",
        ttl: float = 600.0,
        timeout: float = 20.0,
        secrets: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
        host: SearchHost | None = None,
    ) -> None:
        self.http = http
        self.url = url
        self.host = host or search_host(url)
        self.asked = engine  # as configured ("" = the host's default)
        self.engine = engine or self.host.engine
        self.ttl = ttl
        self.timeout = timeout
        self.secrets = secrets
        self.clock = clock
        self.calls = 0  # requests actually sent (cache misses)
        self._cache: collections.OrderedDict[tuple[object, ...], tuple[float, list[SearchHit]]]
        self._cache = collections.OrderedDict()
        self._paused_until = 0.0

    @classmethod
    def endpoint(cls, base_url: str) -> str:
        """``base_url`` (a ``paas/v4`` base) with the Web Search API path."""
        return base_url.rstrip("/") + ZAI_SEARCH_PATH

    async def search(
        self, query: str, options: SearchOptions, *, key: str
    ) -> Sequence[SearchHit] | SearchFailure:
        """Results for ``query``, or why there are none. Never raises a glmbridge error."""
        cache_key = (query, options.allowed_domains, options.blocked_domains, self.engine)
        now = self.clock()
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] > now:
            logger.debug("web search cache hit")
            return cached[1]
        if now < self._paused_until:
            wait = self._paused_until - now
            return SearchFailure(
                "too_many_requests",
                f"web search is rate limited for another {wait:.0f} s; do not search again "
                "now, answer from what you know and say so",
            )
        try:
            hits = await self._post(query, options, key)
        except GlmbridgeError as err:
            if isinstance(err, UpstreamError):
                err = scrub(err, (*self.secrets, key))
                if err.status == 429:
                    pause = max(_PAUSE_MIN, err.retry_after or 0.0)
                    self._paused_until = self.clock() + pause
            logger.warning("web search failed: %s", err.message)
            return failure_for(err)
        if self.ttl > 0:
            self._cache[cache_key] = (self.clock() + self.ttl, hits)
            self._cache.move_to_end(cache_key)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return hits

    async def _post(self, query: str, options: SearchOptions, key: str) -> list[SearchHit]:
        body = encode_zai_search(query, options, engine=self.engine, host=self.host)
        headers = {
            "authorization": f"Bearer {key}",
            "content-type": "application/json",
            "accept": "application/json",
        }
        self.calls += 1
        request = self.http.build_request("POST", self.url, content=body, headers=headers)
        try:
            with anyio.fail_after(self.timeout), map_upstream_errors():
                response = await self.http.send(request, stream=True)
                try:
                    data = await aread_capped(
                        response.aiter_bytes(),
                        _MAX_ANSWER if response.status_code == 200 else MAX_ERROR_BODY,
                    )
                finally:
                    await response.aclose()
        except TimeoutError:
            raise UpstreamTimeoutError(f"web search took more than {self.timeout:.0f} s") from None
        if response.status_code != 200:
            retry = retry_after_from(response.headers)
            raise error_from_upstream(response.status_code, data, retry_after=retry)
        return decode_zai_search(data, options)
