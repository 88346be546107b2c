"""End to end: Anthropic's web search server tool through glmbridge, which runs the searches
itself on the simulator's Web Search API (anthropic SDK → glmbridge → GLM simulator).

Also the replay of Claude Code's real WebSearch and WebFetch side requests
(tests/fixtures/claude_code/web_search_request.json, web_fetch_request.json).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from glmbridge.grammar import validate_anthropic_stream
from glmbridge.websearch import hit_from_token
from glmbridge_server.edge.app import create_app
from glmbridge_server.simulator import Script, ScriptError, ScriptToolCall
from tests.support.servers import RunningServer, make_bridge_settings, run_in_thread
from tests.support.simulator import chats
from tests.support.sse import sse_events

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parents[2] / "fixtures" / "claude_code"
SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
ASK = "Perform a web search for the query: glmbridge release notes"


@pytest.fixture(scope="module")
def _search_bridge(sim: RunningServer) -> Iterator[RunningServer]:
    server = run_in_thread(create_app(make_bridge_settings(sim.url)))
    yield server
    server.stop()


@pytest.fixture
def search_bridge(_search_bridge: RunningServer, bridge: RunningServer,
                  sim: RunningServer) -> RunningServer:  # fmt: skip
    """A bridge whose search engine is the simulator's; caches and quotas reset."""
    sim.app.state.search_quota, sim.app.state.search_calls = None, 0
    _search_bridge.app.state.search_engine = None  # made again on first use
    return _search_bridge


@pytest.fixture
def sdk(search_bridge: RunningServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=search_bridge.url, api_key="x", max_retries=0) as c:
        yield c


def _kwargs(**over: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": ASK}],
        "tools": [SEARCH_TOOL],
        "tool_choice": {"type": "tool", "name": "web_search"},
        "thinking": {"type": "disabled"},
        **over,
    }


def test_non_streamed_search_answer(sdk: anthropic.Anthropic, sim: RunningServer) -> None:
    msg = sdk.messages.create(**_kwargs())
    kinds = [b.type for b in msg.content]
    assert kinds[:2] == ["server_tool_use", "web_search_tool_result"]
    use, result = msg.content[0], msg.content[1]
    assert use.type == "server_tool_use" and use.input == {"query": "glmbridge release notes"}
    assert use.id.startswith("srvtoolu_")
    assert result.type == "web_search_tool_result" and result.tool_use_id == use.id
    assert isinstance(result.content, list) and len(result.content) == 5
    first = result.content[0]
    assert first.url == "https://example-1.com/glmbridge-release-notes/1"
    assert first.title == "glmbridge release notes - result 1"
    assert first.page_age == "2026-01-01"
    hit = hit_from_token(first.encrypted_content)
    assert hit is not None and hit.url == first.url
    # GLM answered from result [1]; the text citing it carries the citation.
    texts = [b for b in msg.content if b.type == "text"]
    assert "Simulated page 1 about glmbridge release notes" in "".join(t.text for t in texts)
    cited = [c for t in texts for c in (t.citations or [])]
    assert cited and cited[0].type == "web_search_result_location"
    assert cited[0].url == first.url
    assert msg.usage.server_tool_use is not None
    assert msg.usage.server_tool_use.web_search_requests == 1
    assert msg.stop_reason == "end_turn"
    # GLM was offered a web_search function (forced by instruction on the first round), and
    # got the numbered results back as a tool message.
    bodies = chats(sim)
    assert [t["function"]["name"] for t in bodies[-2]["tools"]] == ["web_search"]
    assert bodies[-2].get("stream") in (None, False)
    tool_msg = bodies[-1]["messages"][-1]
    assert (
        tool_msg["role"] == "tool"
        and "[1] glmbridge release notes - result 1" in (tool_msg["content"])
    )
    assert sim.app.state.search_calls == 1


def test_streamed_search_answer_is_grammar_valid_and_matches(
    search_bridge: RunningServer, sdk: anthropic.Anthropic
) -> None:
    body = {**_kwargs(), "stream": True}
    response = httpx2.post(f"{search_bridge.url}/v1/messages", json=body, timeout=30)
    assert response.status_code == 200
    validate_anthropic_stream(response.content)
    events = sse_events(response.content)
    starts = [e for name, e in events if name == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts][:2] == [
        "server_tool_use", "web_search_tool_result"]  # fmt: skip
    # Claude Code shows "Searching: Q" from the server_tool_use block's input_json_delta …
    use_index = starts[0]["index"]
    partial = "".join(
        e["delta"]["partial_json"]
        for name, e in events
        if name == "content_block_delta" and e["index"] == use_index
    )
    assert json.loads(partial) == {"query": "glmbridge release notes"}
    assert starts[0]["content_block"]["input"] == {}
    # … and counts results from the web_search_tool_result start event.
    assert len(starts[1]["content_block"]["content"]) == 5
    delta = next(e for name, e in events if name == "message_delta")
    assert delta["usage"]["server_tool_use"]["web_search_requests"] == 1
    # The SDK's streamed final message equals the non-streamed answer (ids aside).
    with sdk.messages.stream(**_kwargs()) as stream:
        streamed = stream.get_final_message()
    plain = sdk.messages.create(**_kwargs())

    def shape(m: anthropic.types.Message) -> list[Any]:
        out = []
        for b in m.model_dump()["content"]:
            b.pop("id", None)
            b.pop("tool_use_id", None)
            out.append(b)
        return out

    assert shape(streamed) == shape(plain)
    assert streamed.usage.server_tool_use == plain.usage.server_tool_use


def test_claude_code_web_search_request_replayed(
    search_bridge: RunningServer, sim: RunningServer
) -> None:
    """Claude Code 2.1.197's recorded WebSearch request (forced server tool, thinking
    disabled, streamed) gets one search and a grammar-valid stream."""
    body = json.loads((FIXTURES / "web_search_request.json").read_text())
    headers = json.loads((FIXTURES / "web_search_headers.json").read_text())
    headers["authorization"] = "Bearer test-token"
    headers.pop("accept-encoding", None)
    assert body["tools"] == [SEARCH_TOOL] and body["stream"] is True
    response = httpx2.post(f"{search_bridge.url}/v1/messages?beta=true", json=body,
                           headers=headers, timeout=30)  # fmt: skip
    assert response.status_code == 200
    validate_anthropic_stream(response.content)
    events = sse_events(response.content)
    types = [e["content_block"]["type"] for n, e in events if n == "content_block_start"]
    assert types.count("server_tool_use") == types.count("web_search_tool_result") == 1
    assert types[-1] == "text"
    assert sim.app.state.search_calls == 1
    # A side request: GLM-5.3-Flash, which always thinks, so "disabled" is never sent (GLM-5.3
    # answers 400 to it: openclaw/openclaw PR#148642); the answer still has no thinking.
    assert chats(sim)[0]["model"] == "glm-5.3-flash" and "thinking" not in chats(sim)[0]
    assert "thinking" not in types


def test_claude_code_web_fetch_request_is_answered_with_text(
    bridge: RunningServer, sim: RunningServer
) -> None:
    """WebFetch's page-processing request (no tools, thinking disabled) is routed and its
    answer's first block is text."""
    body = json.loads((FIXTURES / "web_fetch_request.json").read_text())
    assert body["tools"] == [] and body["thinking"] == {"type": "disabled"}
    response = httpx2.post(f"{bridge.url}/v1/messages?beta=true", json=body,
                           headers={"authorization": "Bearer t"}, timeout=30)  # fmt: skip
    assert response.status_code == 200
    validate_anthropic_stream(response.content)
    events = sse_events(response.content)
    first = next(e for n, e in events if n == "content_block_start")
    assert first["content_block"]["type"] == "text"
    assert "The secret number is 4242" in "".join(
        e["delta"].get("text", "") for n, e in events if n == "content_block_delta"
    )


def test_a_rate_limited_search_is_an_error_block_not_a_failed_turn(
    sdk: anthropic.Anthropic, sim: RunningServer
) -> None:
    sim.app.state.search_quota = 0  # the next search is a 429 / 1302
    msg = sdk.messages.create(**_kwargs())
    result = msg.content[1]
    assert result.type == "web_search_tool_result"
    assert result.content.type == "web_search_tool_result_error"
    assert result.content.error_code == "too_many_requests"
    assert msg.content[-1].type == "text" and msg.stop_reason == "end_turn"
    tool_msg = chats(sim)[-1]["messages"][-1]
    assert tool_msg["role"] == "tool" and "too_many_requests" in tool_msg["content"]
    # The engine now pauses: a second turn does not spend another call.
    calls = sim.app.state.search_calls
    again = sdk.messages.create(**_kwargs(stream=False))
    assert again.content[1].content.error_code == "too_many_requests"
    assert sim.app.state.search_calls == calls


def test_results_are_cached(sdk: anthropic.Anthropic, sim: RunningServer) -> None:
    sdk.messages.create(**_kwargs())
    sdk.messages.create(**_kwargs())
    assert sim.app.state.search_calls == 1


def test_allowed_domains_reach_the_engine(sdk: anthropic.Anthropic) -> None:
    tool = {**SEARCH_TOOL, "allowed_domains": ["docs.example.org"]}
    msg = sdk.messages.create(**_kwargs(tools=[tool]))
    urls = [r.url for r in msg.content[1].content]
    assert urls and all(u.startswith("https://docs.example.org/") for u in urls)


def test_both_domain_lists_are_a_clear_400(sdk: anthropic.Anthropic) -> None:
    tool = {**SEARCH_TOOL, "allowed_domains": ["a.com"], "blocked_domains": ["b.com"]}
    with pytest.raises(anthropic.BadRequestError) as exc:
        sdk.messages.create(**_kwargs(tools=[tool]))
    assert "tools.0" in str(exc.value)


def test_max_uses_is_enforced(sdk: anthropic.Anthropic, sim: RunningServer) -> None:
    again = Script(tool_calls=[ScriptToolCall(name="web_search", arguments={"query": "more"})])
    sim.app.state.script_queue.extend([
        Script(tool_calls=[ScriptToolCall(name="web_search", arguments={"query": "first"})]),
        again,
    ])  # fmt: skip
    tool = {**SEARCH_TOOL, "max_uses": 1}
    msg = sdk.messages.create(**_kwargs(tools=[tool], messages=[
        {"role": "user", "content": "find things"}]))  # fmt: skip
    results = [b for b in msg.content if b.type == "web_search_tool_result"]
    assert isinstance(results[0].content, list)
    assert results[1].content.error_code == "max_uses_exceeded"
    assert msg.usage.server_tool_use is not None
    assert msg.usage.server_tool_use.web_search_requests == 1
    assert sim.app.state.search_calls == 1
    assert "tools" not in chats(sim)[-1]  # the last round offers no search


def test_web_search_off_keeps_the_old_behaviour(start_server: Any, sim: RunningServer) -> None:
    settings = make_bridge_settings(sim.url, web_search_engine="off")
    server = start_server(create_app(settings))
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as c:
        msg = c.messages.create(**_kwargs())
    assert [b.type for b in msg.content] == ["text"]
    assert "tools" not in chats(sim)[-1]


# --- the OpenAI Responses door's hosted web_search tool ---------------------------------------


def test_responses_web_search_tool_is_run_by_the_gateway(
    start_server: Any, sim: RunningServer
) -> None:
    import openai

    from glmbridge.protocols.responses import validate_responses_stream

    settings = make_bridge_settings(sim.url, responses_web_search=True)
    search_bridge = start_server(create_app(settings))
    sim.app.state.search_quota, sim.app.state.search_calls = None, 0

    kwargs: dict[str, Any] = {
        "model": "gpt-5-codex",
        "input": ASK,
        "tools": [{"type": "web_search", "filters": {"allowed_domains": ["docs.example.org"]}}],
    }
    with openai.OpenAI(base_url=f"{search_bridge.url}/v1", api_key="x", max_retries=0) as oai:
        resp = oai.responses.create(**kwargs)
        streamed = oai.responses.create(**kwargs, stream=True)
        final = [e for e in streamed if e.type == "response.completed"][0].response
    kinds = [item.type for item in resp.output if item.type != "reasoning"]
    assert kinds == ["web_search_call", "message"]
    call = next(item for item in resp.output if item.type == "web_search_call")
    assert call.status == "completed"
    assert call.action.type == "search" and call.action.query == "glmbridge release notes"
    urls = [s.url for s in call.action.sources or []]
    assert urls and all(u.startswith("https://docs.example.org/") for u in urls)
    assert "Simulated page 1" in resp.output_text  # GLM answered from a result
    assert sim.app.state.search_calls == 1  # the stream's search came from the cache

    # the stream's items equal the non-streamed ones (ids aside)
    def shape(items: list[Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in i.model_dump().items() if k != "id"} for i in items]

    assert shape(final.output) == shape(resp.output)
    body = {**kwargs, "stream": True}
    raw = httpx2.post(f"{search_bridge.url}/v1/responses", json=body, timeout=30).content
    done = validate_responses_stream(raw)
    assert "web_search_call" in [i["type"] for i in done["output"]]
    assert b"response.web_search_call.searching" in raw


def test_responses_web_search_is_opt_in(search_bridge: RunningServer, sim: RunningServer) -> None:
    """Off by default: Codex offers web_search on every turn and keeps token streaming."""
    import openai

    with openai.OpenAI(base_url=f"{search_bridge.url}/v1", api_key="x", max_retries=0) as oai:
        resp = oai.responses.create(model="gpt-5-codex", input="hello",
                                    tools=[{"type": "web_search"}])  # fmt: skip
    assert [i.type for i in resp.output if i.type != "reasoning"] == ["message"]
    assert "tools" not in chats(sim)[-1] and sim.app.state.search_calls == 0


def test_gemini_google_search_is_run_by_the_gateway(
    search_bridge: RunningServer, sim: RunningServer
) -> None:
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=search_bridge.url, timeout=30_000)
    config = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])
    with genai.Client(api_key="x", http_options=options) as client:
        resp = client.models.generate_content(model="gemini-2.5-pro", contents=ASK,
                                              config=config)  # fmt: skip
        chunks = list(
            client.models.generate_content_stream(
                model="gemini-2.5-pro", contents=ASK, config=config
            )
        )
    grounding = resp.candidates[0].grounding_metadata
    assert grounding.web_search_queries == ["glmbridge release notes"]
    uris = [c.web.uri for c in grounding.grounding_chunks]
    assert uris[0] == "https://example-1.com/glmbridge-release-notes/1" and len(uris) == 5
    assert "Simulated page 1" in resp.text
    streamed = [c.candidates[0].grounding_metadata for c in chunks
                if c.candidates and c.candidates[0].grounding_metadata]  # fmt: skip
    assert streamed and streamed[-1].web_search_queries == grounding.web_search_queries
    assert sim.app.state.search_calls == 1  # the stream's search came from the cache


@pytest.mark.parametrize("upstream", ["zai-anthropic", "zai-coding"])
def test_mock_mode_searches_through_either_upstream_protocol(
    start_server: Any, upstream: str
) -> None:
    """--mock: the rounds go to the simulator's chat or Anthropic endpoint, the searches to
    its Web Search API under /_mock."""
    from glmbridge_server.settings import Settings

    server = start_server(create_app(Settings(mock=True, upstream=upstream)))
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as c:
        msg = c.messages.create(**_kwargs())
        with c.messages.stream(**_kwargs()) as stream:
            streamed = stream.get_final_message()
    kinds = ["server_tool_use", "web_search_tool_result", "text"]
    assert [b.type for b in msg.content] == [b.type for b in streamed.content] == kinds
    assert msg.usage.server_tool_use is not None
    assert msg.usage.server_tool_use.web_search_requests == 1
    assert server.app.state.simulator.state.search_calls == 1  # the second one was cached


def test_a_round_failing_before_any_output_is_a_native_error_status(
    search_bridge: RunningServer, sim: RunningServer
) -> None:
    """Nothing was sent yet: the client gets GLM's 429 as a status it can retry on (a
    1303: a 1302 is first held in the bridge, glmbridge_server/throttle_hold.py)."""
    sim.app.state.script_queue.append(Script(error=ScriptError(status=429, code="1303")))
    body = {**_kwargs(), "stream": True}
    reply = httpx2.post(f"{search_bridge.url}/v1/messages", json=body, timeout=30)
    assert reply.status_code == 429
    assert reply.json()["error"]["type"] == "rate_limit_error"


def test_a_slow_turn_commits_early_and_pings(start_server: Any, sim: RunningServer) -> None:
    """The relay's rule: after commit_after seconds of silence the stream starts, pings
    follow while the rounds run, and the stream stays grammar-valid."""
    settings = make_bridge_settings(sim.url, commit_after=0.05, ping_interval=0.05)
    server = start_server(create_app(settings))
    sim.app.state.search_quota, sim.app.state.search_calls = None, 0
    sim.app.state.latency = 0.3  # before every model answer
    try:
        body = {**_kwargs(), "stream": True}
        reply = httpx2.post(f"{server.url}/v1/messages", json=body, timeout=30)
    finally:
        sim.app.state.latency = 0.0
    assert reply.status_code == 200
    validate_anthropic_stream(reply.content)
    names = [name for name, _ in sse_events(reply.content)]
    assert names[0] == "message_start" and "ping" in names
    assert names.index("ping") < names.index("content_block_start")


def test_a_stopping_server_ends_an_open_search_stream_with_an_error_event(
    start_server: Any, sim: RunningServer
) -> None:
    from glmbridge_server.edge.app import begin_shutdown

    server = start_server(create_app(make_bridge_settings(sim.url, commit_after=0.1)))
    body = {**_kwargs(), "stream": True,
            "messages": [{"role": "user", "content": f"{ASK} [[sim:slow:30]]"}]}  # fmt: skip
    with (
        httpx2.Client(timeout=10) as http,
        http.stream("POST", f"{server.url}/v1/messages", json=body) as response,
    ):
        assert response.status_code == 200  # committed early: the first round is slow
        loop = server.server.servers[0].get_loop()
        loop.call_soon_threadsafe(begin_shutdown, server.app)
        raw = response.read()
    events = [e for e, _ in sse_events(raw)]
    assert events[0] == "message_start"
    assert events[-1] == "error"
    assert b"overloaded_error" in raw
