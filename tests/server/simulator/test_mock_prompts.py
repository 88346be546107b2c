"""The mock answers the user's prompt, not the client's injected context (issue 23, item
5): the recorded Codex and gemini-cli requests (tests/fixtures/) through a ``--mock``
bridge, a file named in the prompt read where the client works, no shell tool said so,
and the simulator's ``x-sim-*`` headers passed through the bridge."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from tests.support.servers import RunningServer, run_in_thread

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parents[3] / "tests" / "fixtures"


@pytest.fixture(scope="module")
def mock() -> Iterator[RunningServer]:
    server = run_in_thread(create_app(Settings(mock=True)))
    yield server
    server.stop()


def recorded(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / name).read_text())["body"]
    return copy.deepcopy(body)


def sse_text(raw: str) -> str:
    """All text deltas of an SSE body, joined (Responses and Gemini shapes)."""
    out = []
    for line in raw.splitlines():
        if not line.startswith("data:") or line.strip() == "data: [DONE]":
            continue
        event = json.loads(line[5:])
        if event.get("type") == "response.output_text.delta":
            out.append(event["delta"])
        for cand in event.get("candidates") or ():
            for part in (cand.get("content") or {}).get("parts") or ():
                if "text" in part and not part.get("thought"):
                    out.append(part["text"])
    return "".join(out)


def gemini_turn(mock: RunningServer, body: dict[str, Any]) -> httpx2.Response:
    url = f"{mock.url}/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse"
    return httpx2.post(url, json=body, headers={"x-goog-api-key": "x"}, timeout=30)


def test_codex_prompt_not_its_environment_context(mock: RunningServer) -> None:
    body = recorded("codex/text-1.json")
    reply = httpx2.post(f"{mock.url}/v1/responses", json=body, timeout=30)
    assert reply.status_code == 200
    text = sse_text(reply.text)
    assert "You said: say hi" in text
    assert "environment_context" not in text


def test_gemini_cli_prompt_not_its_session_context(mock: RunningServer) -> None:
    reply = gemini_turn(mock, recorded("gemini_cli/text-2.json"))
    assert reply.status_code == 200
    text = sse_text(reply.text)
    assert "You said: say hi" in text
    assert "session_context" not in text


def test_gemini_cli_reads_the_named_file_in_its_workspace(mock: RunningServer) -> None:
    body = recorded("gemini_cli/text-2.json")
    body["contents"][-1]["parts"][-1] = {"text": "use read_file to show notes.txt"}
    reply = gemini_turn(mock, body)
    calls = [
        part["functionCall"]
        for line in reply.text.splitlines()
        if line.startswith("data:")
        for cand in json.loads(line[5:]).get("candidates") or ()
        for part in (cand.get("content") or {}).get("parts") or ()
        if "functionCall" in part
    ]
    assert calls and calls[0]["name"] == "read_file"
    assert calls[0]["args"]["file_path"] == "/tmp/gemwd.v3aC/notes.txt"  # its workspace


def test_headless_gemini_cli_has_no_shell_and_says_so(mock: RunningServer) -> None:
    body = recorded("gemini_cli/text-2.json")
    body["contents"][-1]["parts"][-1] = {"text": "run `ls`"}
    text = sse_text(gemini_turn(mock, body).text)
    assert "cannot run `ls`" in text and "no shell tool" in text
    assert "You said" not in text


def test_claude_code_reads_the_named_file_relative_to_its_cwd(mock: RunningServer) -> None:
    body = json.loads((FIXTURES / "claude_code/request_main.json").read_text())
    body = body.get("body", body)
    body["messages"] = [{"role": "user", "content": "use Read to show notes.txt"}]
    body["stream"] = False
    with anthropic.Anthropic(base_url=mock.url, api_key="x", max_retries=0) as sdk:
        msg = sdk.messages.create(
            model=body["model"], max_tokens=1024, system=body["system"],
            tools=body["tools"], messages=body["messages"],
        )  # fmt: skip
    (call,) = [b for b in msg.content if b.type == "tool_use"]
    assert call.name == "Read"
    assert call.input["file_path"] == "/tmp/cc/work/notes.txt"  # not a fixed demo path


def test_x_sim_headers_pass_through_the_bridge_in_mock_mode(mock: RunningServer) -> None:
    script = json.dumps({"text": "scripted through the bridge", "reasoning": ""})
    with anthropic.Anthropic(base_url=mock.url, api_key="x", max_retries=0) as sdk:
        msg = sdk.messages.create(
            model="glm-4.7",
            max_tokens=64,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-sim-script": script},
        )
    assert [b.text for b in msg.content if b.type == "text"] == ["scripted through the bridge"]
