"""The real Codex CLI (``codex exec``) against glmbridge's Responses door, with the GLM
simulator as the upstream.

The CLI is installed from npm by the ``codex_bin`` fixture (tests/support/clis.py: pinned to
the version whose traffic is recorded in tests/fixtures/codex/) into a cache directory. Codex
is pointed at the bridge exactly as ``glmbridge-server codex`` does it (``codex_argv``:
``-c`` overrides defining a ``glmbridge`` provider with ``wire_api = "responses"`` and the
model catalog URL), in a fresh ``CODEX_HOME``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from glmbridge_server.launch.codex import codex_argv
from tests.support.clis import NEEDS_NPM, client_env, work_dirs
from tests.support.servers import RunningServer
from tests.support.simulator import chats

pytestmark = [pytest.mark.e2e, pytest.mark.codex_cli, NEEDS_NPM]


def run_codex(
    codex_bin: Path, bridge: RunningServer, tmp_path: Path, prompt: str, model: str = "glm-5.3"
) -> tuple[subprocess.CompletedProcess[str], Path]:
    home, work = work_dirs(tmp_path, "codex-home")
    argv = codex_argv(
        ["exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", prompt],
        bridge.url,
        model,
    )
    env = client_env(tmp_path, CODEX_HOME=str(home), GLMBRIDGE_API_KEY="glmbridge-test")
    proc = subprocess.run(
        [str(codex_bin), *argv[1:]],
        cwd=work, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return proc, work


def test_codex_runs_exec_command_and_reports_its_output(
    codex_bin: Path, bridge: RunningServer, sim: RunningServer, tmp_path: Path
) -> None:
    proc, _ = run_codex(codex_bin, bridge, tmp_path, "please run `echo hello-from-codex`")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "hello-from-codex" in proc.stdout
    assert "metadata" not in proc.stderr  # the catalog was read: no fallback-metadata warning
    first, second = chats(sim)[-2:]
    # Codex's own tools reached GLM as functions: exec_command, apply_patch (free-form, as a
    # one-string function), and the namespace's tools flattened; web_search was dropped.
    names = {t["function"]["name"] for t in first["tools"]}
    assert {"exec_command", "apply_patch"} <= names
    assert any(n.startswith("multi_agent_v1__") for n in names)
    assert "web_search" not in names
    patch = next(t for t in first["tools"] if t["function"]["name"] == "apply_patch")
    assert patch["function"]["parameters"]["required"] == ["input"]
    # Turn two carries the call, its output, and GLM's reasoning back (encrypted_content).
    assistant = next(m for m in second["messages"] if m["role"] == "assistant")
    assert assistant["tool_calls"][0]["function"]["name"] == "exec_command"
    assert "I will use the shell tool" in assistant["reasoning_content"]
    tool = next(m for m in second["messages"] if m["role"] == "tool")
    assert "hello-from-codex" in tool["content"]


def test_codex_applies_a_freeform_patch(
    codex_bin: Path, bridge: RunningServer, sim: RunningServer, tmp_path: Path
) -> None:
    patch = "*** Begin Patch\n*** Add File: hello.txt\n+written by glm\n*** End Patch\n"
    directive = json.dumps({"tool_calls": [{"name": "apply_patch", "arguments": {"input": patch}}]})
    proc, work = run_codex(codex_bin, bridge, tmp_path, f"create the file [[sim:{directive}]]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / "hello.txt").read_text() == "written by glm\n"
    second = chats(sim)[-1]
    result = next(m for m in second["messages"] if m["role"] == "tool")
    assert "hello.txt" in result["content"]


def test_codex_reports_a_quota_error_without_retrying(
    codex_bin: Path, bridge: RunningServer, sim: RunningServer, tmp_path: Path
) -> None:
    before = len(chats(sim))
    proc, _ = run_codex(codex_bin, bridge, tmp_path, "hi [[sim:error:1308]]")
    assert proc.returncode != 0
    assert "Quota exceeded" in proc.stderr or "Quota exceeded" in proc.stdout
    assert len(chats(sim)) - before == 1  # insufficient_quota: neither we nor Codex retried
