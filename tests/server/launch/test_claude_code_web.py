"""The real Claude Code CLI's WebSearch and WebFetch through glmbridge (GLM simulator
upstream, the simulator's Web Search API as the search engine).

WebSearch: Claude Code's main loop calls its WebSearch tool, which sends the separate
server-tool request; glmbridge runs the search and Claude Code shows the results to the
main loop, whose answer uses a result. WebFetch: with ``skipWebFetchPreflight`` (what
``glmbridge-server claude`` passes) Claude Code fetches an HTTPS page itself and asks the
model to process it through the bridge.
"""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from glmbridge_server.edge.app import create_app
from glmbridge_server.launch.claude import CLAUDE_SETTINGS
from tests.support.certificates import self_signed
from tests.support.clis import NEEDS_NPM, run_claude
from tests.support.servers import RunningServer, make_bridge_settings, run_in_thread
from tests.support.simulator import chats

pytestmark = [pytest.mark.e2e, pytest.mark.claude_cli, NEEDS_NPM]


@pytest.fixture(scope="module")
def web_bridge(sim: RunningServer) -> Iterator[RunningServer]:
    server = run_in_thread(create_app(make_bridge_settings(sim.url)))
    yield server
    server.stop()


def _claude(binary: Path, url: str, tmp_path: Path, prompt: str, tool: str,
            **env: str) -> dict[str, Any]:  # fmt: skip
    """Claude Code as ``glmbridge-server claude`` runs it (its settings), with one tool allowed."""
    _, result = run_claude(binary, url, tmp_path, prompt, "--settings", CLAUDE_SETTINGS,
                           "--allowedTools", tool, **env)  # fmt: skip
    return result


def test_claude_code_searches_the_web_and_answers_from_a_result(
    claude_bin: Path,
    web_bridge: RunningServer,
    sim: RunningServer,
    tmp_path: Path,
) -> None:
    sim.app.state.search_quota, sim.app.state.search_calls = None, 0
    call = {"name": "WebSearch", "arguments": {"query": "glmbridge web search"}}
    prompt = f"Search the web [[sim:{json.dumps({'tool_calls': [call]})}]]"
    result = _claude(claude_bin, web_bridge.url, tmp_path, prompt, "WebSearch")
    assert result["is_error"] is False, result
    assert sim.app.state.search_calls == 1  # the bridge ran the search
    # Claude Code counted the search (from usage.server_tool_use) …
    usage = next(iter(result["modelUsage"].values()))
    assert usage["webSearchRequests"] == 1
    # … and its final answer uses result 1 (the simulator answers from the first link).
    assert "glmbridge web search - result 1" in result["result"]
    assert "https://example-1.com/glmbridge-web-search/1" in result["result"]


@pytest.fixture
def https_page(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 (self-signed) serving /page.html."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "page.html").write_text(
        "<html><head><title>Fetch me</title></head><body><h1>Hello page</h1>"
        "<p>The secret number is 4242.</p></body></html>"
    )
    cert, key = self_signed(tmp_path)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(site), **kw)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/page.html"
    server.shutdown()
    server.server_close()


def test_claude_code_fetches_a_page_and_the_bridge_processes_it(
    claude_bin: Path,
    web_bridge: RunningServer,
    sim: RunningServer,
    tmp_path: Path,
    https_page: str,
) -> None:
    call = {"name": "WebFetch", "arguments": {"url": https_page, "prompt": "The number?"}}
    prompt = f"Fetch it [[sim:{json.dumps({'tool_calls': [call]})}]]"
    result = _claude(claude_bin, web_bridge.url, tmp_path, prompt, "WebFetch",
                     NODE_TLS_REJECT_UNAUTHORIZED="0")  # fmt: skip
    assert result["is_error"] is False, result
    # The page-processing request (Claude Code sends it with thinking off and no tools) reached
    # GLM-5.3-Flash, the side-request model, which cannot stop thinking: "disabled" is not sent
    # (GLM-5.3 answers 400 to it: openclaw/openclaw PR#148642) …
    bodies = chats(sim)
    page_requests = [b for b in bodies if "Web page content" in json.dumps(b["messages"])
                     and not b.get("tools")]  # fmt: skip
    assert page_requests, "WebFetch's page-processing request never reached GLM"
    assert page_requests[0]["model"] == "glm-5.3-flash"
    assert page_requests[0].get("thinking", {}).get("type") != "disabled"
    # … and its text answer went back to the main loop (the simulator echoes the page).
    assert "The secret number is 4242" in result["result"]
