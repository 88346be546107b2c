"""The upstream client renders a POST's request line and headers once per URL and header set
(issue 22): what goes on the wire is byte for byte what an ``httpx2.Request`` would send."""

from __future__ import annotations

import httpx2

from glmbridge_server.upstream.client import _Head
from glmbridge_server.upstream.http11 import request_head

URL = httpx2.URL("http://127.0.0.1:8/api/coding/paas/v4/chat/completions?x=1")
HEADERS = {"authorization": "Bearer k", "content-type": "application/json",
           "accept": "text/event-stream"}  # fmt: skip


def _client() -> httpx2.AsyncClient:
    return httpx2.AsyncClient(headers={"User-Agent": "glmbridge/t", "Accept-Language": "en"})


def test_the_rendered_head_is_what_httpx2_sends() -> None:
    client = _client()
    head = _Head.of(client, URL, HEADERS)
    assert head is not None
    for body in (b"{}", b"x" * 76_344):
        merged = client.headers.copy()
        merged.update(HEADERS)
        expected = request_head(httpx2.Request("POST", URL, content=body, headers=merged))
        assert head.with_length(len(body)) == expected


def test_a_caller_s_own_length_header_takes_the_generic_path() -> None:
    assert _Head.of(_client(), URL, {**HEADERS, "Content-Length": "5"}) is None
    assert _Head.of(_client(), URL, {**HEADERS, "Transfer-Encoding": "chunked"}) is None


def test_the_responses_request_names_the_method_url_and_headers() -> None:
    head = _Head.of(_client(), URL, HEADERS)
    assert head is not None
    assert head.request.method == "POST" and head.request.url == URL
    assert head.request.headers["authorization"] == "Bearer k"
