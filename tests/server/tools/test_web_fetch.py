"""The web_fetch server tool: the fetcher's SSRF refusals (every resolved address, every
redirect, connections pinned to the checked address), limits and content types; and end to
end through the bridge with the anthropic SDK (refused by default, fetched when private
targets are allowed), stream and non-stream."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import anthropic
import anyio
import httpx2
import pytest
from anthropic.types import WebFetchToolResultErrorBlock

from glmbridge.grammar import validate_anthropic_stream
from glmbridge.webfetch import FetchedPage, FetchFailure, FetchOptions
from glmbridge_server.edge.app import create_app
from glmbridge_server.simulator import Script, ScriptToolCall
from glmbridge_server.tools.web_fetcher import WebFetcher
from tests.support.servers import RunningServer, make_bridge_settings
from tests.support.simulator import chats
from tests.support.sse import sse_events

HTML = b"<html><head><title>Page</title></head><body><p>Secret 4242</p></body></html>"
DNS = {
    "public.test": ["93.184.216.34"],
    "mixed.test": ["93.184.216.34", "10.0.0.7"],
    "local.test": ["127.0.0.1"],
    "meta.test": ["169.254.169.254"],
    "v6local.test": ["::1"],
}


def _fetch(
    url: str,
    handler: Callable[[httpx2.Request], httpx2.Response],
    *,
    options: FetchOptions | None = None,
    **kw: Any,
) -> tuple[FetchedPage | FetchFailure, list[httpx2.Request]]:
    seen: list[httpx2.Request] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return handler(request)

    def resolve(host: str) -> Sequence[str]:
        return DNS.get(host, [])

    fetcher = WebFetcher(transport=httpx2.MockTransport(handle), resolve=resolve, **kw)

    async def go() -> FetchedPage | FetchFailure:
        return await fetcher.fetch(url, options or FetchOptions())

    return anyio.run(go), seen


def _html(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, content=HTML, headers={"content-type": "text/html"})


def test_a_public_page_is_fetched_from_the_checked_address() -> None:
    page, seen = _fetch("https://public.test/a?b=1", _html)
    assert isinstance(page, FetchedPage)
    assert page.title == "Page" and page.text == "Secret 4242"
    assert page.url == "https://public.test/a?b=1" and page.media_type == "text/html"
    (request,) = seen
    # connected to the address that was checked, the name kept for Host and TLS
    assert request.url.host == "93.184.216.34" and request.url.path == "/a"
    assert request.headers["host"] == "public.test"
    assert request.extensions["sni_hostname"] == "public.test"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://local.test/", "url_not_allowed"),
        ("http://127.0.0.1:8080/admin", "url_not_allowed"),
        ("http://[::1]/", "url_not_allowed"),
        ("http://v6local.test/", "url_not_allowed"),
        ("http://meta.test/latest/meta-data/", "url_not_allowed"),
        ("http://169.254.169.254/latest/meta-data/", "url_not_allowed"),
        ("http://mixed.test/", "url_not_allowed"),  # one private address is enough
        ("http://[::ffff:10.0.0.1]/", "url_not_allowed"),
        ("http://nowhere.test/", "url_not_accessible"),
        ("file:///etc/passwd", "invalid_tool_input"),
    ],
)
def test_internal_targets_are_refused_before_connecting(url: str, code: str) -> None:
    failure, seen = _fetch(url, _html)
    assert isinstance(failure, FetchFailure) and failure.error_code == code
    assert seen == []  # nothing was sent


@pytest.mark.parametrize(
    ("location", "code"),
    [
        ("http://169.254.169.254/latest/meta-data/", "url_not_allowed"),
        ("http://local.test/", "url_not_allowed"),
        ("https://mixed.test/", "url_not_allowed"),
        ("file:///etc/passwd", "invalid_tool_input"),
        ("https://elsewhere.test/", "url_not_allowed"),  # outside allowed_domains
    ],
)
def test_redirects_are_checked_at_every_hop(location: str, code: str) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/start":
            return httpx2.Response(302, headers={"location": location})
        return _html(request)

    options = FetchOptions(allowed_domains=("public.test", "local.test", "mixed.test",
                                            "169.254.169.254"))  # fmt: skip
    result, seen = _fetch("https://public.test/start", handler, options=options)
    assert isinstance(result, FetchFailure) and result.error_code == code
    assert [r.url.path for r in seen] == ["/start"]  # the redirect target was never asked


def test_a_redirect_to_a_public_page_is_followed() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/old":
            return httpx2.Response(301, headers={"location": "/new"})
        return _html(request)

    page, seen = _fetch("https://public.test/old", handler)
    assert isinstance(page, FetchedPage) and page.url == "https://public.test/new"
    assert [r.url.path for r in seen] == ["/old", "/new"]


def test_redirect_loops_end() -> None:
    loop, seen = _fetch("https://public.test/x",
                        lambda r: httpx2.Response(302, headers={"location": "/x"}))  # fmt: skip
    assert isinstance(loop, FetchFailure) and loop.error_code == "url_not_accessible"
    assert len(seen) == 6


def test_private_targets_can_be_allowed_by_the_operator() -> None:
    page, _ = _fetch("http://local.test/", _html, allow_private=True)
    assert isinstance(page, FetchedPage)


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (httpx2.Response(200, content=b"\x89PNG", headers={"content-type": "image/png"}),
         "unsupported_content_type"),
        (httpx2.Response(404, text="no"), "url_not_accessible"),
        (httpx2.Response(429, text="slow"), "too_many_requests"),
    ],
)  # fmt: skip
def test_bad_answers_are_failures(response: httpx2.Response, code: str) -> None:
    failure, _ = _fetch("https://public.test/", lambda r: response)
    assert isinstance(failure, FetchFailure) and failure.error_code == code


def test_size_and_time_limits() -> None:
    big = httpx2.Response(200, content=b"x" * 5000, headers={"content-type": "text/plain"})
    page, _ = _fetch("https://public.test/", lambda r: big, max_bytes=1024)
    assert isinstance(page, FetchedPage)
    assert page.text.startswith("x" * 1024) and "[truncated at 1024 bytes]" in page.text

    async def slow(request: httpx2.Request) -> httpx2.Response:
        await anyio.sleep(5)
        return _html(request)

    fetcher = WebFetcher(transport=httpx2.MockTransport(slow), resolve=lambda h: DNS[h],
                         timeout=0.05)  # fmt: skip

    async def go() -> FetchedPage | FetchFailure:
        return await fetcher.fetch("https://public.test/", FetchOptions())

    late = anyio.run(go)
    assert isinstance(late, FetchFailure) and late.error_code == "url_not_accessible"


# --- end to end -----------------------------------------------------------------------------

FETCH_TOOL = {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 3}


def _ask(sdk: anthropic.Anthropic, sim: RunningServer, url: str, **kw: Any) -> Any:
    sim.app.state.script_queue.append(
        Script(tool_calls=[ScriptToolCall(name="web_fetch", arguments={"url": url})])
    )
    return sdk.messages.create(
        model="claude-sonnet-4-5", max_tokens=512, tools=[FETCH_TOOL],
        messages=[{"role": "user", "content": f"What does {url} say?"}], **kw,
    )  # fmt: skip


@pytest.mark.e2e
def test_a_loopback_url_is_refused_but_the_turn_completes(
    client: anthropic.Anthropic, sim: RunningServer
) -> None:
    msg = _ask(client, sim, f"{sim.url}/health")
    kinds = [b.type for b in msg.content if b.type != "thinking"]
    assert kinds == ["server_tool_use", "web_fetch_tool_result", "text"]
    result = msg.content[1]
    # The SDK's own type, not a loose object: Anthropic's name is web_fetch_tool_result_error.
    assert isinstance(result.content, WebFetchToolResultErrorBlock)
    assert result.content.type == "web_fetch_tool_result_error"
    assert result.content.error_code == "url_not_allowed"
    assert msg.stop_reason == "end_turn"
    tool_msg = chats(sim)[-1]["messages"][-1]
    assert tool_msg["role"] == "tool" and "loopback" in tool_msg["content"]


@pytest.mark.e2e
def test_a_page_is_fetched_when_private_targets_are_allowed(
    start_server: Callable[..., RunningServer], sim: RunningServer
) -> None:
    bridge = start_server(create_app(make_bridge_settings(sim.url, web_fetch_allow_private=True)))
    url = f"{sim.url}/health"
    with anthropic.Anthropic(base_url=bridge.url, api_key="x", max_retries=0) as sdk:
        msg = _ask(sdk, sim, url)
    result = msg.content[1]
    assert result.type == "web_fetch_tool_result"
    assert result.content.type == "web_fetch_result" and result.content.url == url
    assert result.content.content.source.data == '{"status":"ok"}'
    assert msg.usage.server_tool_use is not None
    assert msg.usage.server_tool_use.web_fetch_requests == 1
    assert '{"status":"ok"}' in msg.content[-1].text  # GLM read the page

    sim.app.state.script_queue.append(
        Script(tool_calls=[ScriptToolCall(name="web_fetch", arguments={"url": url})])
    )
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 512,
        "stream": True,
        "tools": [FETCH_TOOL],
        "messages": [{"role": "user", "content": "read it"}],
    }
    raw = httpx2.post(f"{bridge.url}/v1/messages", json=body, timeout=30).content
    validate_anthropic_stream(raw)
    starts = [e["content_block"]["type"] for n, e in sse_events(raw) if n == "content_block_start"]
    assert [t for t in starts if t != "thinking"] == [
        "server_tool_use", "web_fetch_tool_result", "text"]  # fmt: skip


# --- hostile pages (issue 24, item 2) -----------------------------------------------------------


def test_a_page_too_complex_to_convert_is_a_fetch_error() -> None:
    page = b"<b>x</b>" * 100_000

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=page, headers={"content-type": "text/html"})

    failure, _ = _fetch("https://public.test/", handler, convert_seconds=0.0)
    assert isinstance(failure, FetchFailure) and failure.error_code == "url_not_accessible"
    assert "converted to text" in failure.message
    fetched, _ = _fetch("https://public.test/", handler)  # within the default budget
    assert isinstance(fetched, FetchedPage) and fetched.text.startswith("x")


@pytest.mark.e2e
def test_health_answers_while_a_hostile_page_is_converted(
    start_server: Callable[..., RunningServer], sim: RunningServer
) -> None:
    """``<a<a<a…`` froze the gateway (55 s for 192 KiB): now /health answers meanwhile."""
    from tests.server.faults import FaultServer, Plan

    hostile = b"<a" * (1 << 20)  # 2 MiB, the page cap
    headers = (("content-type", "text/html"), ("content-length", str(len(hostile))),
               ("connection", "close"))  # fmt: skip
    with FaultServer(Plan(headers=headers, parts=(hostile,), chunked=False)) as page:
        bridge = start_server(
            create_app(make_bridge_settings(sim.url, web_fetch_allow_private=True))
        )
        done: list[Any] = []

        def ask() -> None:
            with anthropic.Anthropic(base_url=bridge.url, api_key="x", max_retries=0) as sdk:
                done.append(_ask(sdk, sim, f"{page.url}/page"))

        import threading
        import time

        worker = threading.Thread(target=ask)
        worker.start()
        worst = 0.0
        with httpx2.Client(base_url=bridge.url, timeout=10) as http:
            while worker.is_alive():
                started = time.perf_counter()
                assert http.get("/health").status_code == 200
                worst = max(worst, time.perf_counter() - started)
                time.sleep(0.02)
        worker.join()
    assert worst < 1.0, f"/health took {worst:.2f} s"
    result = done[0].content[1]
    assert result.type == "web_fetch_tool_result"
    assert result.content.type == "web_fetch_result"  # converted (to nothing: one open tag)
