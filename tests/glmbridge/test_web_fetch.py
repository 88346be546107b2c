"""Web fetch, library side (glmbridge.webfetch): URL and address rules (SSRF), content
types, HTML to text, and the fetch tool in the server-tool loop."""

from __future__ import annotations

import json
from typing import Any

import pytest

from glmbridge import ir
from glmbridge.errors import ClientRequestError
from glmbridge.protocols import anthropic as ac
from glmbridge.server_tools import FETCH_FUNCTION, SEARCH_FUNCTION, ServerToolLoop
from glmbridge.webfetch import (
    FetchedPage,
    FetchFailure,
    FetchOptions,
    address_refusal,
    charset_of,
    check_url,
    content_kind,
    html_to_text,
)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://example.com/a?b=1", None),
        ("ftp://example.com/", "invalid_tool_input"),
        ("file:///etc/passwd", "invalid_tool_input"),
        ("gopher://127.0.0.1:6379/_INFO", "invalid_tool_input"),
        ("https://user:pw@example.com/", "url_not_allowed"),
        ("http://example.com:99999/", "invalid_tool_input"),
        ("https://" + "a" * 2000 + ".com/", "url_too_long"),
        ("", "invalid_tool_input"),
        (None, "invalid_tool_input"),
    ],
)
def test_url_rules(url: Any, code: str | None) -> None:
    failure = check_url(url, FetchOptions())
    assert (failure.error_code if failure else None) == code


def test_domain_lists_apply_to_urls() -> None:
    opts = FetchOptions(allowed_domains=("docs.python.org",))
    assert check_url("https://docs.python.org/3/", opts) is None
    refused = check_url("https://evil.example/", opts)
    assert refused is not None and refused.error_code == "url_not_allowed"


@pytest.mark.parametrize(
    ("address", "refused", "with_private"),
    [
        ("93.184.216.34", False, False),
        ("2606:4700::1111", False, False),
        ("127.0.0.1", True, False),
        ("127.8.9.10", True, False),
        ("::1", True, False),
        ("10.0.0.5", True, False),
        ("172.16.3.4", True, False),
        ("192.168.1.1", True, False),
        ("169.254.169.254", True, False),  # cloud metadata
        ("fe80::1", True, False),
        ("fd12:3456::1", True, False),
        ("100.64.0.1", True, False),  # carrier-grade NAT
        ("::ffff:127.0.0.1", True, False),  # IPv4-mapped loopback
        ("::ffff:10.0.0.1", True, False),
        ("0.0.0.0", True, True),
        ("224.0.0.1", True, True),
        ("240.0.0.1", True, True),  # reserved
        ("not-an-ip", True, True),
        ("fe80::1%eth0", True, False),
        # IPv4 wrapped in IPv6 (issue 24, item 8): judged by the IPv4 address inside
        ("64:ff9b::127.0.0.1", True, False),  # NAT64 (RFC 6052)
        ("64:ff9b::a9fe:a9fe", True, False),
        ("64:ff9b::8.8.8.8", False, False),
        ("64:ff9b::240.0.0.1", True, True),
        ("64:ff9b:1::7f00:1", True, True),  # local-use NAT64: where the IPv4 sits is unknown
        ("64:ff9b:1:7f00:1::", True, True),
        ("2002:7f00:1::", True, False),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::1", True, False),
        ("2002:808:808::1", False, False),
        ("::127.0.0.1", True, False),  # IPv4-compatible
        ("::10.0.0.1", True, False),
        ("::ffff:0:127.0.0.1", True, False),  # IPv4-translated
        ("::ffff:0:a9fe:a9fe", True, False),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", True, False),  # Teredo client 127.0.0.1
        ("fec0::1", True, False),  # deprecated site-local
        ("fec0:1::1%eth0", True, False),
    ],
)
def test_address_rules(address: str, refused: bool, with_private: bool) -> None:
    """Only global unicast addresses may be reached; allowing private targets opens
    loopback/private/link-local, never unspecified, multicast or reserved ones."""
    assert (address_refusal(address) is not None) is refused
    if refused:
        opened = address_refusal(address, allow_private=True) is None
        assert opened is not with_private


def test_every_embedded_ipv4_form_is_unwrapped() -> None:
    from ipaddress import IPv4Address, IPv6Address

    from glmbridge.webfetch import embedded_ipv4

    loop = IPv4Address("127.0.0.1")
    for form in ("::ffff:127.0.0.1", "::ffff:0:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1",
                 "2002:7f00:1::5", "64:ff9b:1::7f00:1"):  # fmt: skip
        assert loop in embedded_ipv4(IPv6Address(form)), form
    # RFC 6052 §2.2: a /48 prefix puts it in bits 48-63 and 72-87 (bits 64-71 are zero)
    assert embedded_ipv4(IPv6Address("64:ff9b:1:7f00:0:100::")) == [
        loop, IPv4Address("0.0.1.0"), IPv4Address("0.1.0.0"), IPv4Address("0.0.0.0")
    ]  # fmt: skip
    server, client = embedded_ipv4(IPv6Address("2001:0:4136:e378:8000:63bf:80ff:fffe"))
    assert (str(server), str(client)) == ("65.54.227.120", "127.0.0.1")
    assert embedded_ipv4(IPv6Address("::1")) == [] and embedded_ipv4(IPv6Address("::")) == []
    assert embedded_ipv4(IPv6Address("2606:4700::1111")) == []


def test_content_type_allow_list() -> None:
    assert content_kind("text/html; charset=UTF-8") == "text/html"
    assert content_kind("application/json") == "application/json"
    assert content_kind(None) == "text/plain"
    for refused in ("image/png", "application/pdf", "application/octet-stream", "video/mp4"):
        assert content_kind(refused) is None
    assert charset_of("text/html; charset=ISO-8859-1") == "iso-8859-1"
    assert charset_of("text/html; charset=bogus-42") == "utf-8"


def test_html_to_text_keeps_content_and_drops_code() -> None:
    title, text = html_to_text(
        "<html><head><title>  The  Title </title><style>p{color:red}</style>"
        "<script>alert('x')</script></head><body><nav>Menu</nav><h2>Part</h2>"
        "<p>One &amp; two,\n   three.</p><ul><li>a</li><li>b</li></ul>"
        "<pre>  indented\n  code</pre><script>steal()</script></body></html>"
    )
    assert title == "The Title"
    assert "## Part" in text and "One & two, three." in text
    assert "- a" in text and "- b" in text and "  indented\n  code" in text
    for dropped in ("alert", "steal", "color:red", "Menu"):
        assert dropped not in text


def test_bad_fetch_settings_name_their_field() -> None:
    with pytest.raises(ClientRequestError, match=r"tools\.1\.max_content_tokens"):
        FetchOptions.from_config({"max_content_tokens": 0}, "tools.1")
    opts = FetchOptions.from_config({"max_uses": 2, "citations": {"enabled": True}})
    assert opts.max_uses == 2 and opts.citations


# --- the loop ----------------------------------------------------------------------------


def _request(**config: Any) -> ir.Request:
    return ir.Request(
        model="m",
        messages=[ir.Message(role="user", content=[ir.TextBlock(text="read example.com")])],
        tools=[
            ir.Tool(name="web_search", server_type="web_search_20250305"),
            ir.Tool(name="web_fetch", server_type="web_fetch_20250910", config=config or None),
        ],
    )


def _model(*blocks: ir.Block) -> ir.Response:
    stop = ir.StopReason.TOOL_USE if any(isinstance(b, ir.ToolUseBlock) for b in blocks) else (
        ir.StopReason.END_TURN)  # fmt: skip
    return ir.Response(id="r", model="m", content=list(blocks), stop_reason=stop,
                       usage=ir.Usage(input_tokens=10, output_tokens=5))  # fmt: skip


PAGE = FetchedPage(url="https://example.com/", title="Example", text="Hello " * 10,
                   media_type="text/html", retrieved_at="2026-12-01T10:00:00Z")  # fmt: skip


def test_a_fetch_round_gives_fetch_blocks_and_the_page_to_the_model() -> None:
    loop = ServerToolLoop.for_request(_request(max_content_tokens=5, citations={"enabled": True}))
    assert loop is not None
    assert loop.next_request().tools == [SEARCH_FUNCTION, FETCH_FUNCTION]
    fetch = ir.ToolUseBlock(id="c1", name="web_fetch", input={"url": "https://example.com/"})
    (call,) = loop.feed(_model(fetch))
    assert call.name == "web_fetch" and call.argument == "https://example.com/"
    use, result = loop.record(call, PAGE)
    assert use == ir.ServerToolUseBlock(id=call.id, name="web_fetch",
                                        input={"url": "https://example.com/"})  # fmt: skip
    assert isinstance(result, ir.UnknownBlock) and result.original_type == "web_fetch_tool_result"
    content = result.raw["content"]
    assert result.raw["tool_use_id"] == call.id
    assert content["type"] == "web_fetch_result" and content["url"] == PAGE.url
    assert content["retrieved_at"] == PAGE.retrieved_at
    document = content["content"]
    assert document["type"] == "document" and document["title"] == "Example"
    assert document["source"] == {"type": "text", "media_type": "text/plain",
                                  "data": PAGE.text[:20]}  # max_content_tokens * 4  # fmt: skip
    assert document["citations"] == {"enabled": True}
    tool_result = loop.next_request().messages[-1].content[0]
    assert isinstance(tool_result, ir.ToolResultBlock) and not tool_result.is_error
    text = tool_result.content[0]
    assert isinstance(text, ir.TextBlock) and "Content (truncated):" in text.text
    loop.feed(_model(ir.TextBlock(text="It says hello.")))
    resp = loop.result(message_id="msg_1", model="m")
    assert resp.usage.web_fetch_requests == 1 and resp.usage.web_search_requests == 0
    body = json.loads(ac.encode_response(resp))
    assert [b["type"] for b in body["content"]] == [
        "server_tool_use", "web_fetch_tool_result", "text"]  # fmt: skip
    assert body["usage"]["server_tool_use"] == {"web_search_requests": 0,
                                                "web_fetch_requests": 1}  # fmt: skip


def test_a_refused_url_is_an_error_block_without_fetching() -> None:
    loop = ServerToolLoop.for_request(_request())
    assert loop is not None
    bad = ir.ToolUseBlock(id="c1", name="web_fetch", input={"url": "file:///etc/passwd"})
    (call,) = loop.feed(_model(bad))
    assert call.failure == FetchFailure("invalid_tool_input",
                                        "only http and https URLs can be fetched")  # fmt: skip
    _, result = loop.record(call, PAGE)
    assert isinstance(result, ir.UnknownBlock)
    assert result.raw["content"] == {"type": "web_fetch_tool_result_error",
                                     "error_code": "invalid_tool_input"}  # fmt: skip
    assert loop.usage.web_fetch_requests == 0


def test_fetch_only_requests_offer_only_the_fetch_function() -> None:
    req = _request()
    only_fetch = ir.Request(model="m", messages=req.messages, tools=req.tools[1:])
    loop = ServerToolLoop.for_request(only_fetch)
    assert loop is not None and loop.next_request().tools == [FETCH_FUNCTION]
    off = ServerToolLoop.for_request(req, search=False)
    assert off is not None and off.next_request().tools == [FETCH_FUNCTION]


def test_later_turns_give_glm_the_text_of_earlier_server_tool_results() -> None:
    """A follow-up turn replays this gateway's search results (their text, read back from
    encrypted_content) and fetched pages to GLM as assistant text."""
    from glmbridge.exchange import Exchange
    from glmbridge.websearch import SearchHit, hit_token

    token = hit_token(SearchHit(url="https://a.com", title="A", content="alpha fact"))
    assistant = [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
         "input": {"query": "q"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
            {"type": "web_search_result", "url": "https://a.com", "title": "A",
             "encrypted_content": token}]},
        {"type": "server_tool_use", "id": "srvtoolu_2", "name": "web_fetch",
         "input": {"url": "https://b.com"}},
        {"type": "web_fetch_tool_result", "tool_use_id": "srvtoolu_2", "content": {
            "type": "web_fetch_result", "url": "https://b.com", "content": {
                "type": "document", "source": {"type": "text", "media_type": "text/plain",
                                               "data": "page B"}}}},
        {"type": "text", "text": "answer"},
    ]  # fmt: skip
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": assistant},
        {"role": "user", "content": "more"}]}  # fmt: skip
    ex = Exchange.prepare(ac.DOOR, json.dumps(body).encode())
    replayed = json.loads(ex.body)["messages"][1]
    assert replayed == {
        "role": "assistant",
        "content": "Web search results:\n- A (https://a.com)\n  alpha fact\n\n"
        "Fetched https://b.com:\npage B\n\nanswer",
    }
