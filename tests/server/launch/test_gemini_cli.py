"""The real gemini-cli (headless ``-p``) against glmbridge's Gemini door, with the GLM
simulator as the upstream.

The CLI is installed from npm by the ``gemini_bin`` fixture (tests/support/clis.py: pinned to
the version whose traffic is recorded in tests/fixtures/gemini_cli/) into a cache directory. It
is pointed at the bridge as the recordings were made (tests/fixtures/gemini_cli/README.md):
``GOOGLE_GEMINI_BASE_URL`` and ``GEMINI_API_KEY``, a fresh ``HOME`` whose
``.gemini/settings.json`` selects the ``gemini-api-key`` auth type (headless mode refuses
the "gateway" type a custom base URL implies otherwise: ``validateAuthMethod`` in its
packages/cli/src/config/auth.ts has no branch for it, google-gemini/gemini-cli#27550), and
``--skip-trust``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.clis import NEEDS_NPM, client_env, work_dirs
from tests.support.servers import RunningServer
from tests.support.simulator import chats

SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
}
ROUTER_ANSWER = {"complexity_reasoning": "Architecture work.", "complexity_score": 100}

pytestmark = [pytest.mark.e2e, pytest.mark.gemini_cli, NEEDS_NPM]


def run_gemini(
    gemini_bin: Path, bridge: RunningServer, tmp_path: Path, prompt: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """``gemini --skip-trust <args> -p <prompt>`` in a fresh HOME and working directory."""
    home, work = work_dirs(tmp_path)
    (home / ".gemini").mkdir(exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(SETTINGS))
    env = client_env(
        home,
        GEMINI_API_KEY="glmbridge-test",
        GOOGLE_GEMINI_BASE_URL=bridge.url,
        TMPDIR=str(tmp_path),  # its error reports (gemini-client-error-*.json) go there
    )
    return subprocess.run(
        [str(gemini_bin), "--skip-trust", *args, "-p", prompt],
        cwd=work, env=env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def tool_names(body: dict[str, Any]) -> set[str]:
    return {t["function"]["name"] for t in body.get("tools") or ()}


def test_gemini_cli_answers_through_the_auto_router(
    gemini_bin: Path, bridge: RunningServer, sim: RunningServer, tmp_path: Path
) -> None:
    """The default model ``auto``: a JSON-mode router call to ``gemini-*-flash-lite``
    (``responseJsonSchema`` with upper-case types), then the streamed main turn to the model
    the router's score picked (a high score: a pro model, which the CLI's own default is
    not, so the stats show that the router's JSON was accepted and used)."""
    queue = sim.app.state.script_queue
    queue.append({"text": json.dumps(ROUTER_ANSWER)})  # what the router call gets
    queue.append({"reasoning": "A greeting deserves one.", "text": "Hello from GLM!"})
    proc = run_gemini(gemini_bin, bridge, tmp_path, "say hi", "-o", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[ERROR]" not in proc.stderr
    out = json.loads(proc.stdout)
    assert out["response"] == "Hello from GLM!"  # thoughts are not printed headless
    roles = {name: set(m["roles"]) for name, m in out["stats"]["models"].items()}
    (router_model,) = [n for n, r in roles.items() if r == {"utility_router"}]
    (main_model,) = [n for n, r in roles.items() if r == {"main"}]
    assert "flash-lite" in router_model and "pro" in main_model, roles
    assert all(m["api"]["totalErrors"] == 0 for m in out["stats"]["models"].values())
    router, main = chats(sim)
    # gemini-*flash-lite -> the small model, in JSON mode with the schema in the prompt
    assert router["model"] == "glm-5.3-flash" and not router.get("stream")
    assert router["response_format"] == {"type": "json_object"}
    assert '"complexity_score":{"type":"integer"' in router["messages"][0]["content"]
    assert not router.get("tools")
    # the main turn (a gemini-*-pro name) -> the default model, streamed, read-only tools
    assert main["model"] == "glm-5.3" and main["stream"] is True
    assert main["thinking"] == {"type": "enabled"}
    assert {"read_file", "list_directory", "grep_search"} <= tool_names(main)
    assert "run_shell_command" not in tool_names(main)  # not offered without --yolo
    assert main["messages"][-1]["content"].endswith("say hi")


def test_gemini_cli_answers_in_text_with_an_unscripted_router(
    gemini_bin: Path, bridge: RunningServer, sim: RunningServer, tmp_path: Path
) -> None:
    """Unscripted, the simulator answers a JSON-schema prompt with an object of the
    schema's shape (a score of 1): the router call is not retried, and the main turn's
    echo is printed as plain text."""
    proc = run_gemini(gemini_bin, bridge, tmp_path, "say hi")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the prompt, not gemini-cli's <session_context> (issue 23), printed once
    assert proc.stdout.strip() == "You said: say hi"
    assert "[ERROR]" not in proc.stderr
    router, main = chats(sim)  # the router once, then the main turn
    assert router["response_format"] == {"type": "json_object"} and main["stream"] is True


def test_gemini_cli_runs_its_shell_tool_through_the_bridge(
    gemini_bin: Path, bridge: RunningServer, sim: RunningServer, tmp_path: Path
) -> None:
    prompt = "please run it [[sim:bash:echo hello-from-gemini]]"
    proc = run_gemini(gemini_bin, bridge, tmp_path, prompt, "--yolo", "-m", "glm-4.7",
                      "-o", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[ERROR]" not in proc.stderr
    out = json.loads(proc.stdout)
    assert out["response"].startswith("The command output was:")
    assert "Output: hello-from-gemini" in out["response"]
    stats = out["stats"]
    assert stats["tools"]["byName"]["run_shell_command"]["success"] == 1
    (model,) = stats["models"]  # -m glm-4.7: no router call
    assert model == "glm-4.7" and stats["models"][model]["api"]["totalRequests"] == 2
    assert stats["models"][model]["tokens"]["prompt"] > 0
    first, second = chats(sim)
    assert first["model"] == second["model"] == "glm-4.7"
    assert "run_shell_command" in tool_names(first)  # offered with --yolo
    # Turn two carries the call (the bridge's id, echoed back by the CLI) and its output.
    assistant = next(m for m in second["messages"] if m["role"] == "assistant")
    (call,) = assistant["tool_calls"]
    assert call["function"]["name"] == "run_shell_command"
    assert json.loads(call["function"]["arguments"])["command"] == "echo hello-from-gemini"
    (tool,) = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool["tool_call_id"] == call["id"] and call["id"].startswith("call_")
    assert "Output: hello-from-gemini" in tool["content"]


def test_gemini_cli_stops_at_a_spent_quota(
    gemini_bin: Path, bridge: RunningServer, sim: RunningServer, tmp_path: Path
) -> None:
    """GLM's 1308 reaches the CLI as 429 with a ``PerDay`` QuotaFailure: a terminal quota
    error, reported at once (its other 429s are retried for minutes)."""
    proc = run_gemini(gemini_bin, bridge, tmp_path, "hi [[sim:error:1308]]", "-m", "glm-4.7")
    assert proc.returncode == 1
    assert "TerminalQuotaError" in proc.stderr and "[1308] Usage limit reached" in proc.stderr
    assert len(chats(sim)) == 1  # neither the bridge nor the CLI retried
    assert list(tmp_path.glob("gemini-client-error-*.json"))
