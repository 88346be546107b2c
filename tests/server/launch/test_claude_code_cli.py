"""The real Claude Code CLI against glmbridge, with the GLM simulator as the upstream.

The CLI is installed from npm by the ``claude_bin`` fixture (tests/support/clis.py: pinned to
the version whose traffic was recorded in tests/fixtures/claude_code/) into a cache directory,
so the first run costs one `npm install` (~10 s) and later runs none. The simulator scripts
the model through a `[[sim:...]]` directive in the prompt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from glmbridge.routing import model_info
from tests.support.clis import NEEDS_NPM, run_claude
from tests.support.servers import RunningServer
from tests.support.simulator import chats

pytestmark = [pytest.mark.e2e, pytest.mark.claude_cli, NEEDS_NPM]


def test_claude_code_runs_a_bash_tool_call_and_reports_its_output(
    claude_bin: Path, bridge: RunningServer, sim: RunningServer, tmp_path: Path
) -> None:
    # The shell computes 42, so the text can only appear if Claude Code really ran it.
    code, result = run_claude(
        claude_bin, bridge.url, tmp_path,
        "Please [[sim:bash:echo hello-from-glmbridge-$((6*7))]]", "--allowedTools", "Bash",
    )  # fmt: skip
    assert code == 0, result
    assert result["is_error"] is False
    assert result["num_turns"] == 2
    assert "hello-from-glmbridge-42" in result["result"]

    # What reached GLM: the tool call went out as tool_calls, its result came back as a
    # `tool` message right after it, with the command's real output.
    bodies = chats(sim)
    follow_up = bodies[-1]["messages"]
    calls = [m for m in follow_up if m["role"] == "assistant" and m.get("tool_calls")]
    assert calls, "the assistant tool call was not replayed to GLM"
    call = calls[-1]["tool_calls"][0]
    assert call["function"]["name"] == "Bash"
    assert "hello-from-glmbridge" in json.loads(call["function"]["arguments"])["command"]
    at = follow_up.index(calls[-1])
    tool_msg = follow_up[at + 1]
    assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == call["id"]
    assert "hello-from-glmbridge-42" in tool_msg["content"]
    # Claude Code's 24 tools went upstream as GLM function tools, in a streaming request.
    assert bodies[-1]["stream"] is True
    assert len(bodies[-1]["tools"]) >= 20


def test_claude_code_plain_answer(
    claude_bin: Path, bridge: RunningServer, sim: RunningServer, tmp_path: Path
) -> None:
    code, result = run_claude(claude_bin, bridge.url, tmp_path, "[[sim:text]] tell me about GLM")
    assert code == 0, result
    assert result["is_error"] is False
    assert "tell me about GLM" in result["result"]
    assert result["usage"]["input_tokens"] > 1000  # Claude Code's prompt, counted
    # Default routing on the Coding Plan (issue 19): the main loop on GLM-5.3, side requests
    # on GLM-5.3-Flash, and no request asks an always-thinking model to stop thinking.
    bodies = chats(sim)
    main = [b for b in bodies if len(b.get("tools") or ()) >= 20]
    assert main and {b["model"] for b in main} == {"glm-5.3"}
    assert {b["model"] for b in bodies} <= {"glm-5.3", "glm-5.3-flash"}
    assert all(b.get("thinking", {}).get("type") != "disabled" for b in bodies)


def test_claude_code_shows_a_non_retryable_upstream_error(
    claude_bin: Path, bridge: RunningServer, tmp_path: Path
) -> None:
    # GLM 1261 (prompt too long) becomes a 400 invalid_request_error carrying GLM's
    # message; Claude Code does not retry it and recognises it as its own "prompt is too
    # long" condition (which drives its compaction logic).
    code, result = run_claude(claude_bin, bridge.url, tmp_path, "[[sim:error:1261]]")
    assert code == 1
    assert result["is_error"] is True
    assert "prompt is too long" in result["result"].lower()


def test_the_launcher_gives_claude_code_the_real_context_window(
    claude_bin: Path, bridge: RunningServer, sim: RunningServer, tmp_path: Path
) -> None:
    # Left alone, Claude Code 2.1 starts on "opus[1m]" and counts its own 1M window, not
    # the GLM model's (1,048,576 for GLM-5.3 and Flash). Through the launcher,
    # its own /context shows the routed model's real window.
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{claude_bin.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "LANG": "C.UTF-8",
        "IS_SANDBOX": "1",
        "DISABLE_AUTOUPDATER": "1",
        "GLMBRIDGE_UPSTREAM": f"{sim.url}/api/coding/paas/v4",  # what `bridge` serves
        # the launcher under test is this tree's (as the bridge is), not an installed one
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
    }
    port = bridge.url.rpartition(":")[2]
    for args, model in (([], "glm-5.3"), (["--model", "haiku"], "glm-5.3-flash")):
        proc = subprocess.run(
            [sys.executable, "-m", "glmbridge_server", "claude", "--port", port,
             "-p", "/context", *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        window = model_info(model).context_window
        assert f"**Model:** {model}" in proc.stdout, proc.stdout[:500]
        # Claude Code prints a window of a million or more as "1m" (GLM-5.3: 1,048,576)
        shown = f"{window / 1e6:.0f}m" if window >= 1e6 else f"{window / 1000:.1f}k"
        assert f"/ {shown}" in proc.stdout, proc.stdout[:500]
