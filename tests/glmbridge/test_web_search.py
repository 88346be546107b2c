"""Web search, library side: Z.ai Web Search API shaping (glmbridge.websearch) and the
server-tool loop (glmbridge.server_tools): bounds, failures, citations, and the streamed
form of its answer (grammar-valid, equal to the non-streamed one)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glmbridge import ir
from glmbridge.accumulate import accumulate
from glmbridge.errors import ClientRequestError, ErrorKind, UpstreamError, UpstreamProtocolError
from glmbridge.events import MessageDelta, MessageStart, MessageStop
from glmbridge.profiles import PROFILES
from glmbridge.protocols import anthropic as ac
from glmbridge.protocols.anthropic.grammar import validate_anthropic_stream, validate_event_sequence
from glmbridge.server_tools import SEARCH_FUNCTION, ServerToolLoop, block_events, cite
from glmbridge.websearch import (
    BIGMODEL_SEARCH,
    ZAI_SEARCH,
    SearchFailure,
    SearchHit,
    SearchOptions,
    decode_zai_search,
    domain_allowed,
    encode_zai_search,
    failure_for,
    hit_from_token,
    hit_token,
    search_host,
)

# --- the Web Search API (wire-specs A.15) -----------------------------------------------


def test_options_read_the_anthropic_tool_fields() -> None:
    opts = SearchOptions.from_config(
        {"max_uses": 3, "allowed_domains": ["https://www.Docs.Python.org/3/", "z.ai"],
         "user_location": {"type": "approximate", "country": "DE"}}
    )  # fmt: skip
    assert opts == SearchOptions(
        max_uses=3, allowed_domains=("docs.python.org", "z.ai"), country="DE"
    )


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"max_uses": 0}, "tools.2.max_uses"),
        ({"max_uses": "8"}, "tools.2.max_uses"),
        ({"allowed_domains": "a.com"}, "tools.2.allowed_domains"),
        ({"blocked_domains": [1]}, "tools.2.blocked_domains"),
        ({"allowed_domains": ["a.com"], "blocked_domains": ["b.com"]}, "tools.2"),
    ],
)
def test_bad_tool_settings_name_their_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ClientRequestError) as exc:
        SearchOptions.from_config(config, "tools.2")
    assert exc.value.message.startswith(field + ":") or f"{field}:" in exc.value.message


def test_request_body_uses_the_domain_filter_only_for_one_domain() -> None:
    one = json.loads(encode_zai_search("q", SearchOptions(allowed_domains=("a.com",))))
    assert one == {"search_engine": "search-prime", "search_query": "q", "count": 10,
                   "search_domain_filter": "a.com"}  # fmt: skip
    blocked = json.loads(encode_zai_search("q", SearchOptions(blocked_domains=("a.com",))))
    assert "search_domain_filter" not in blocked and blocked["count"] == 30


def _answer(*links: str) -> bytes:
    results = [
        {"title": f"T{i}", "content": f"C{i}", "link": link, "media": "M",
         "publish_date": "2026-01-02", "refer": f"ref_{i}"}
        for i, link in enumerate(links)
    ]  # fmt: skip
    return json.dumps({"id": "1", "created": 1, "search_result": results}).encode()


def test_answer_is_filtered_deduplicated_and_capped() -> None:
    body = _answer("https://a.com/1", "https://sub.b.com/2", "https://a.com/1", "ftp://x/3",
                   "https://c.com/4")  # fmt: skip
    hits = decode_zai_search(body, SearchOptions(blocked_domains=("b.com",)))
    assert [h.url for h in hits] == ["https://a.com/1", "https://c.com/4"]
    assert hits[0] == SearchHit(url="https://a.com/1", title="T0", content="C0",
                                page_age="2026-01-02", site="M")  # fmt: skip
    assert len(decode_zai_search(body, SearchOptions(), count=1)) == 1


def test_subdomains_match_a_domain_list_and_lookalikes_do_not() -> None:
    allowed = SearchOptions(allowed_domains=("python.org",))
    assert domain_allowed("https://docs.python.org/x", allowed)
    assert not domain_allowed("https://evilpython.org/x", allowed)
    assert not domain_allowed("not a url", allowed)


def test_a_body_that_is_not_an_answer_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        decode_zai_search(b'{"search_result": "nope"}', SearchOptions())


def test_result_tokens_round_trip_and_foreign_ones_are_ignored() -> None:
    hit = SearchHit(url="https://a.com/é", title='A "quoted"', content="x" * 50)
    assert hit_from_token(hit_token(hit)) == hit
    assert hit_from_token("EqkCCkYIBxgCKkD…anthropic") is None
    assert hit_from_token("glmb1.!!!") is None
    assert hit_from_token(None) is None


def test_a_rate_limit_is_too_many_requests_and_anything_else_unavailable() -> None:
    limited = UpstreamError("[1302] slow down", kind=ErrorKind.RATE_LIMIT, status=429)
    assert failure_for(limited).error_code == "too_many_requests"
    assert failure_for(UpstreamError("boom", status=500)).error_code == "unavailable"


# --- the loop -----------------------------------------------------------------------------


def _request(**tool: Any) -> ir.Request:
    return ir.Request(
        model="claude-opus-4-8",
        messages=[ir.Message(role="user", content=[
            ir.TextBlock(text="Perform a web search for the query: glm news")])],
        tools=[ir.Tool(name="web_search", server_type="web_search_20250305",
                       config=tool or None)],
        tool_choice=ir.ToolChoice(type="tool", name="web_search"),
    )  # fmt: skip


def _model(*blocks: ir.Block, stop: ir.StopReason = ir.StopReason.TOOL_USE) -> ir.Response:
    return ir.Response(id="r", model="glm", content=list(blocks), stop_reason=stop,
                       usage=ir.Usage(input_tokens=100, output_tokens=10))  # fmt: skip


def _search(call_id: str, query: Any) -> ir.ToolUseBlock:
    return ir.ToolUseBlock(id=call_id, name="web_search", input={"query": query})


HITS = [SearchHit(url=f"https://site{i}.com/p", title=f"Page {i}", content=f"Fact {i}.")
        for i in (1, 2)]  # fmt: skip


def test_no_server_tool_no_loop() -> None:
    req = ir.Request(model="m", messages=[], tools=[ir.Tool(name="f", input_schema={})])
    assert ServerToolLoop.for_request(req) is None


def test_a_search_round_then_a_cited_answer() -> None:
    loop = ServerToolLoop.for_request(_request(max_uses=8))
    assert loop is not None
    first = loop.next_request()
    assert first.tools == [SEARCH_FUNCTION] and not first.stream
    assert first.tool_choice == ir.ToolChoice(type="tool", name="web_search")  # forced once
    calls = loop.feed(_model(ir.TextBlock(text="Let me look."), _search("c1", " glm  news ")))
    assert [c.argument for c in calls] == ["glm news"]
    use, result = loop.record(calls[0], HITS)
    assert use == ir.ServerToolUseBlock(id=calls[0].id, name="web_search",
                                        input={"query": "glm news"})  # fmt: skip
    assert calls[0].id.startswith("srvtoolu_")
    assert isinstance(result, ir.WebSearchToolResultBlock)
    assert [r["url"] for r in result.content] == [h.url for h in HITS]
    assert all(r["type"] == "web_search_result" and r["encrypted_content"]
               for r in result.content)  # fmt: skip

    second = loop.next_request()
    assert second.tool_choice is None  # auto after the forced round
    assistant, tool_result = second.messages[-2:]
    assert assistant.content[-1] == _search("c1", " glm  news ")
    assert isinstance(tool_result.content[0], ir.ToolResultBlock)
    text = tool_result.content[0].content[0]
    assert isinstance(text, ir.TextBlock) and "[2] Page 2\nURL: https://site2.com/p" in text.text

    assert loop.feed(_model(ir.TextBlock(text="GLM shipped [2]. More soon."),
                            stop=ir.StopReason.END_TURN)) == []  # fmt: skip
    resp = loop.result(message_id="msg_1", model="claude-opus-4-8")
    kinds = [b.__struct_config__.tag for b in resp.content]
    assert kinds == ["text", "server_tool_use", "web_search_tool_result", "text", "text"]
    cited = resp.content[3]
    assert isinstance(cited, ir.TextBlock) and cited.text == "GLM shipped [2]."
    assert cited.citations is not None
    assert cited.citations[0]["url"] == "https://site2.com/p"
    assert cited.citations[0]["type"] == "web_search_result_location"
    assert resp.usage.web_search_requests == 1
    assert resp.usage.input_tokens == 200 and resp.usage.output_tokens == 20
    assert resp.stop_reason is ir.StopReason.END_TURN
    body = json.loads(ac.encode_response(resp))
    assert body["usage"]["server_tool_use"] == {"web_search_requests": 1,
                                                "web_fetch_requests": 0}  # fmt: skip


def test_max_uses_bounds_the_searches_and_then_the_function_is_withdrawn() -> None:
    loop = ServerToolLoop.for_request(_request(max_uses=1))
    assert loop is not None
    calls = loop.feed(_model(_search("a", "one"), _search("b", "two")))
    assert calls[0].failure is None
    assert calls[1].failure == SearchFailure(
        "max_uses_exceeded", calls[1].failure.message if calls[1].failure else ""
    )
    loop.record(calls[0], HITS)
    _, err = loop.record(calls[1], HITS)
    assert isinstance(err, ir.WebSearchToolResultBlock)
    assert err.content == {"type": "web_search_tool_result_error",
                           "error_code": "max_uses_exceeded"}  # fmt: skip
    nxt = loop.next_request()
    assert nxt.tools == [] and nxt.tool_choice is None
    last = nxt.messages[-1].content[1]
    assert isinstance(last, ir.ToolResultBlock) and last.is_error
    assert loop.usage.web_search_requests == 1


def test_a_failed_search_is_an_error_block_and_a_tool_error_not_a_failure() -> None:
    loop = ServerToolLoop.for_request(_request())
    assert loop is not None
    calls = loop.feed(_model(_search("a", "q")))
    _, err = loop.record(calls[0], SearchFailure("too_many_requests", "quota hit"))
    assert isinstance(err, ir.WebSearchToolResultBlock)
    assert err.content["error_code"] == "too_many_requests"
    result = loop.next_request().messages[-1].content[0]
    assert isinstance(result, ir.ToolResultBlock) and result.is_error
    assert "too_many_requests" in msgspec.json.encode(result).decode()


@pytest.mark.parametrize(
    ("query", "code"),
    [("", "invalid_tool_input"), (None, "invalid_tool_input"), ("x" * 401, "query_too_long")],
)
def test_bad_queries_are_refused_without_searching(query: Any, code: str) -> None:
    loop = ServerToolLoop.for_request(_request())
    assert loop is not None
    (call,) = loop.feed(_model(_search("a", query)))
    assert call.failure is not None and call.failure.error_code == code
    loop.record(call, HITS)
    assert loop.usage.web_search_requests == 0


def test_a_client_tool_call_ends_the_loop_with_tool_use() -> None:
    req = msgspec.structs.replace(
        _request(), tools=[*_request().tools, ir.Tool(name="Bash", input_schema={})]
    )
    loop = ServerToolLoop.for_request(req)
    assert loop is not None
    assert [t.name for t in loop.next_request().tools] == ["Bash", "web_search"]
    bash = ir.ToolUseBlock(id="b", name="Bash", input={"command": "ls"})
    calls = loop.feed(_model(_search("a", "q"), bash))
    loop.record(calls[0], HITS)
    assert loop.done
    resp = loop.result(message_id="m", model="m")
    assert resp.stop_reason is ir.StopReason.TOOL_USE
    assert [b.__struct_config__.tag for b in resp.content] == [
        "server_tool_use", "web_search_tool_result", "tool_use"]  # fmt: skip


def test_rounds_are_bounded_even_if_the_model_keeps_calling() -> None:
    loop = ServerToolLoop.for_request(_request(max_uses=2))
    assert loop is not None
    rounds = 0
    while not loop.done:
        rounds += 1
        assert rounds < 10
        offered = loop.next_request().tools
        reply = _model(_search(f"c{rounds}", f"q{rounds}")) if offered else _model(
            ir.TextBlock(text="done"), stop=ir.StopReason.END_TURN)  # fmt: skip
        for call in loop.feed(reply):
            loop.record(call, HITS)
    assert rounds == 3 and loop.usage.web_search_requests == 2


def test_cite_keeps_the_markers_and_ignores_unknown_numbers() -> None:
    blocks = cite("A [1][2] and B [9]. C", HITS)
    assert [b.text for b in blocks] == ["A [1][2]", " and B [9]. C"]
    assert blocks[0].citations is not None
    assert [c["url"] for c in blocks[0].citations] == [h.url for h in HITS]
    assert blocks[1].citations is None
    assert cite("plain", HITS) == [ir.TextBlock(text="plain")]


# --- the streamed form -------------------------------------------------------------------


def _stream_of(resp: ir.Response) -> list[Any]:
    events: list[Any] = [MessageStart(id=resp.id, model=resp.model, usage=ir.Usage())]
    for i, block in enumerate(resp.content):
        events += block_events(i, block)
    assert resp.stop_reason is not None
    events += [MessageDelta(stop_reason=resp.stop_reason, usage=resp.usage), MessageStop()]
    return events


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=3),
    st.text(max_size=60).map(lambda t: t + " [1]"),
    st.booleans(),
)
def test_stream_and_non_stream_agree_and_the_stream_is_grammar_valid(
    queries: list[str], answer: str, fail: bool
) -> None:
    """The loop's answer streamed (block_events) accumulates to the non-streamed answer, and
    both the IR events and the Anthropic SSE pass the grammar validator."""
    loop = ServerToolLoop.for_request(_request(max_uses=2))
    assert loop is not None
    calls = loop.feed(_model(*(_search(f"c{i}", q) for i, q in enumerate(queries))))
    for call in calls:
        loop.record(call, SearchFailure("unavailable", "down") if fail else HITS)
    loop.feed(_model(ir.TextBlock(text=answer), stop=ir.StopReason.END_TURN))
    resp = loop.result(message_id="msg_x", model="claude")
    events = _stream_of(resp)
    validate_event_sequence(events)
    encoder = ac.DOOR.stream_encoder()
    validate_anthropic_stream(b"".join(encoder.feed(e) for e in events))
    streamed = accumulate(events)
    assert streamed.content == resp.content
    assert streamed.usage.web_search_requests == resp.usage.web_search_requests


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=3), st.booleans(), st.booleans())
def test_responses_door_renders_searches_as_web_search_call_items(
    searches: int, fail: bool, thinking: bool
) -> None:
    """The Responses door streams a search turn as grammar-valid web_search_call items, and
    the streamed response.output equals the non-streamed output."""
    from glmbridge.protocols.responses import RESPONSES_DOOR, validate_responses_stream

    loop = ServerToolLoop.for_request(_request(max_uses=3))
    assert loop is not None
    lead = [ir.ThinkingBlock(thinking="let me search")] if thinking else []
    calls = loop.feed(_model(*lead, *(_search(f"c{i}", f"q{i}") for i in range(searches))))
    for call in calls:
        loop.record(call, SearchFailure("unavailable", "down") if fail else HITS)
    loop.feed(_model(ir.TextBlock(text="Answer [1]."), stop=ir.StopReason.END_TURN))
    resp = loop.result(message_id="msg_abc", model="gpt-5")
    door = RESPONSES_DOOR.for_request(_request())
    encoder = door.stream_encoder()
    raw = b"".join(encoder.feed(e) for e in _stream_of(resp))
    final = validate_responses_stream(raw)
    plain = json.loads(door.encode_response(resp))
    assert final["output"] == plain["output"]
    items = [i for i in plain["output"] if i["type"] == "web_search_call"]
    assert [i["action"]["query"] for i in items] == [f"q{i}" for i in range(searches)]
    expected = [] if fail else [{"type": "url", "url": h.url} for h in HITS]
    assert all(i["action"]["sources"] == expected for i in items)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=3), st.booleans())
def test_gemini_door_renders_searches_as_grounding_metadata(searches: int, fail: bool) -> None:
    """The Gemini door gives the searches' queries and pages as groundingMetadata, the same
    in the stream's finish chunk as in the non-streamed candidate; the stream is valid."""
    from glmbridge.protocols.gemini import GEMINI_DOOR
    from glmbridge.protocols.gemini.grammar import validate_gemini_stream

    loop = ServerToolLoop.for_request(_request(max_uses=3))
    assert loop is not None
    calls = loop.feed(_model(*(_search(f"c{i}", f"q{i}") for i in range(searches))))
    for call in calls:
        loop.record(call, SearchFailure("unavailable", "down") if fail else HITS)
    loop.feed(_model(ir.TextBlock(text="Answer [1]."), stop=ir.StopReason.END_TURN))
    resp = loop.result(message_id="msg_abc", model="gemini-2.5-pro")
    door = GEMINI_DOOR.for_request(_request())
    encoder = door.stream_encoder()
    raw = b"".join(encoder.feed(e) for e in _stream_of(resp))
    validate_gemini_stream(raw)
    plain = json.loads(door.encode_response(resp))["candidates"][0]["groundingMetadata"]
    last = json.loads(raw.strip().split(b"\n\n")[-1].removeprefix(b"data: "))
    assert last["candidates"][0]["groundingMetadata"] == plain
    assert plain["webSearchQueries"] == [f"q{i}" for i in range(searches)]
    pages = [] if fail else [{"web": {"uri": h.url, "title": h.title}} for h in HITS] * searches
    assert plain["groundingChunks"] == pages


def test_bigmodels_host_gets_its_engine_intent_and_query_cap() -> None:
    """https://docs.bigmodel.cn/api-reference (网络搜索): search_std … search_pro_quark, a
    required search_intent, 70-character queries; Z.ai: search-prime."""
    assert search_host("https://open.bigmodel.cn/api/paas/v4") is BIGMODEL_SEARCH
    assert search_host("https://api.z.ai/api/paas/v4") is ZAI_SEARCH
    body = msgspec.json.decode(
        encode_zai_search("x" * 100, SearchOptions(), engine="search_std", host=BIGMODEL_SEARCH)
    )
    assert body["search_intent"] is False and body["search_query"] == "x" * 70
    assert "search_intent" not in msgspec.json.decode(encode_zai_search("q", SearchOptions()))
    # BigModel's tokenizer takes only the GLM-4 family (文本分词器): the local estimate there
    assert not PROFILES["bigmodel"].tokenizer and not PROFILES["bigmodel-coding"].tokenizer
    assert PROFILES["zai"].tokenizer and PROFILES["zai-coding"].tokenizer
