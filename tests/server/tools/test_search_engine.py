"""The server's web search engine (Z.ai Web Search API over httpx2): cache, rate-limit
pause, failures as SearchFailure values (never exceptions), keys scrubbed."""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import httpx2
import pytest

from glmbridge.websearch import SearchFailure, SearchHit, SearchOptions
from glmbridge_server.tools.search_engine import ZaiSearchEngine, search_base_url

KEY = "sk-search-secret-123"
RESULT = {"search_result": [{"title": "T", "content": "C", "link": "https://a.com/x"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _engine(
    handler: Callable[[httpx2.Request], httpx2.Response], clock: Clock, **kw: float
) -> tuple[ZaiSearchEngine, list[httpx2.Request]]:
    seen: list[httpx2.Request] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return handler(request)

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handle))
    url = ZaiSearchEngine.endpoint("https://api.z.ai/api/paas/v4")
    return ZaiSearchEngine(http, url=url, clock=clock, **kw), seen


def _run(engine: ZaiSearchEngine, query: str = "q") -> object:
    async def go() -> object:
        return await engine.search(query, SearchOptions(), key=KEY)

    return anyio.run(go)


def test_a_search_posts_the_api_body_and_caches_the_results() -> None:
    clock = Clock()
    engine, seen = _engine(lambda r: httpx2.Response(200, json=RESULT), clock, ttl=60)
    assert _run(engine) == [SearchHit(url="https://a.com/x", title="T", content="C")]
    request = seen[0]
    assert str(request.url) == "https://api.z.ai/api/paas/v4/web_search"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(request.content)["search_query"] == "q"
    _run(engine)
    assert len(seen) == 1  # cached
    clock.now += 61
    _run(engine)
    assert len(seen) == 2  # expired


def test_a_429_pauses_the_engine_and_is_too_many_requests() -> None:
    clock = Clock()
    body = {"error": {"code": "1302", "message": f"slow down, key {KEY}"}}
    engine, seen = _engine(
        lambda r: httpx2.Response(429, json=body, headers={"retry-after": "90"}), clock
    )
    failure = _run(engine)
    assert isinstance(failure, SearchFailure) and failure.error_code == "too_many_requests"
    assert KEY not in failure.message and "1302" in failure.message
    clock.now += 60
    again = _run(engine, "other")
    assert isinstance(again, SearchFailure) and again.error_code == "too_many_requests"
    assert len(seen) == 1  # paused for Retry-After (90 s): no call spent
    clock.now += 31
    _run(engine, "other")
    assert len(seen) == 2


@pytest.mark.parametrize(
    "response",
    [httpx2.Response(500, text="<html>oops</html>"), httpx2.Response(200, text="not json")],
)
def test_failures_are_unavailable(response: httpx2.Response) -> None:
    engine, _ = _engine(lambda r: response, Clock())
    failure = _run(engine)
    assert isinstance(failure, SearchFailure) and failure.error_code == "unavailable"


def test_a_slow_engine_times_out_as_unavailable() -> None:
    async def go() -> object:
        async def handle(request: httpx2.Request) -> httpx2.Response:
            await anyio.sleep(5)
            return httpx2.Response(200, json=RESULT)

        http = httpx2.AsyncClient(transport=httpx2.MockTransport(handle))
        engine = ZaiSearchEngine(http, url="https://x/web_search", timeout=0.05)
        return await engine.search("q", SearchOptions(), key=KEY)

    failure = anyio.run(go)
    assert isinstance(failure, SearchFailure) and failure.error_code == "unavailable"
    assert "more than" in failure.message


def test_the_search_base_follows_the_upstream_host() -> None:
    assert search_base_url("https://api.z.ai/api/coding/paas/v4") == "https://api.z.ai/api/paas/v4"
    assert search_base_url("https://open.bigmodel.cn/api/anthropic") == (
        "https://open.bigmodel.cn/api/paas/v4"
    )
