"""The launcher's lines around a client's own rules (issue 23, items 4 and 10), with stand-in
clients: the one-line fix before a refusal it can foresee (``codex exec`` outside a git
repository, gemini-cli headless in a folder it does not trust, gemini-cli skipping a settings
file that is not root's alone), and Claude Code's resume line after it exits in a terminal.
The real clients meet the same cases in ``test_first_run.py``.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from glmbridge_server.edge.app import create_app
from glmbridge_server.launch.gemini_cli import settings_refusal
from tests.server.launch.test_launcher import base_env, dump, home, port_of, run, upstream_of
from tests.support.servers import MakeSettings, RunningServer, Start

__all__ = ["home"]  # a fixture

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(start_server: Start, sim: RunningServer, bridge_settings: MakeSettings) -> RunningServer:
    """A bridge whose upstream is the simulator (the environment below asks for it)."""
    return start_server(create_app(bridge_settings(sim.url)))


def env_for(home: Path, sim: RunningServer, **extra: str) -> dict[str, str]:
    return base_env(home, GLMBRIDGE_UPSTREAM=upstream_of(sim), **extra)


def hints(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "to run it here:" in line or
            "to trust this one" in line or "settings file" in line]  # fmt: skip


def test_codex_exec_outside_a_git_repository_gets_the_consent_flag(
    served: RunningServer, sim: RunningServer, home: Path
) -> None:
    port = port_of(served)
    result = run(home, "codex", "--port", port, "--", "-m", "glm-4.7", "exec", "say hi; ls",
                 env=env_for(home, sim))  # fmt: skip
    assert result.returncode == 0, result.stderr
    (line,) = hints(result.stderr)
    command = line.partition("to run it here: ")[2]
    user = ["-m", "glm-4.7", "exec", "--skip-git-repo-check", "say hi; ls"]
    assert shlex.split(command) == ["glmbridge-server", "codex", "--port", port, "--", *user]
    # the client got the user's arguments unchanged: the consent stays the user's
    assert dump(home)["argv"][-4:] == ["-m", "glm-4.7", "exec", "say hi; ls"]
    with_flag = run(home, "codex", "--port", port, "exec", "--skip-git-repo-check", "x",
                    env=env_for(home, sim))  # fmt: skip
    assert not hints(with_flag.stderr)
    (home / ".git").mkdir()
    in_repo = run(home, "codex", "--port", port, "exec", "x", env=env_for(home, sim))
    assert not hints(in_repo.stderr)
    interactive = run(home, "codex", "--port", port, "--", "-m", "exec", env=env_for(home, sim))
    assert not hints(interactive.stderr)  # "exec" is the value of -m here, not a subcommand


def test_yolo_as_root_gets_claude_codes_sandbox_consent(
    served: RunningServer, sim: RunningServer, home: Path
) -> None:
    port = port_of(served)
    result = run(home, "claude", "--port", port, "--yolo", "-p", "hi", env=env_for(home, sim))
    lines = [x for x in result.stderr.splitlines() if "consent with: " in x]
    if os.geteuid() != 0:
        assert not lines  # Claude Code's rule is about root only
        return
    (line,) = lines
    assert shlex.split(line.partition("consent with: ")[2]) == [
        "IS_SANDBOX=1", "glmbridge-server", "claude", "--port", port, "--yolo", "--", "-p", "hi"
    ]  # fmt: skip
    sandbox = env_for(home, sim, IS_SANDBOX="1")
    assert "consent with" not in run(home, "claude", "--port", port, "--yolo", env=sandbox).stderr
    assert "consent with" not in run(home, "claude", "--port", port, "-p", "hi",
                                     env=env_for(home, sim)).stderr  # fmt: skip
    own = run(home, "claude", "--port", port, "--permission-mode", "bypassPermissions",
              env=env_for(home, sim))  # fmt: skip
    assert "consent with" in own.stderr


def test_a_key_of_another_provider_is_warned_about_by_the_launcher(
    served: RunningServer, sim: RunningServer, home: Path
) -> None:
    env = env_for(home, sim, ZAI_API_KEY="sk-ant-api03-not-for-zai")
    result = run(home, "claude", "--port", port_of(served), "-p", "x", env=env)
    assert "glmbridge: warning: ZAI_API_KEY: the key looks like an Anthropic key" in result.stderr
    assert "not-for-zai" not in result.stderr


def test_gemini_headless_in_an_untrusted_folder_gets_skip_trust(
    served: RunningServer, sim: RunningServer, home: Path
) -> None:
    port = port_of(served)
    own = str(home / "own-settings.json")  # the settings-file hint is another test's
    env = env_for(home, sim, GEMINI_CLI_SYSTEM_SETTINGS_PATH=own)
    result = run(home, "gemini", "--port", port, "-p", "it's new", env=env)
    assert result.returncode == 0, result.stderr
    (line,) = hints(result.stderr)
    command = line.partition("for this run: ")[2]
    assert shlex.split(command) == ["glmbridge-server", "gemini", "--port", port, "--",
                                    "--skip-trust", "-p", "it's new"]  # fmt: skip
    assert dump(home)["argv"] == ["-p", "it's new"]
    assert not hints(run(home, "gemini", "--port", port, "--skip-trust", "-p", "x", env=env).stderr)
    trusted = dict(env, GEMINI_CLI_TRUST_WORKSPACE="true")
    assert not hints(run(home, "gemini", "--port", port, "-p", "x", env=trusted).stderr)
    (home / ".gemini").mkdir()
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(home): "TRUST_FOLDER"}))
    assert not hints(run(home, "gemini", "--port", port, "-p", "x", env=env).stderr)
    rules = {str(home): "TRUST_FOLDER", str(home / "sub"): "DO_NOT_TRUST"}
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps(rules))
    (home / "sub").mkdir()
    inner = subprocess.run(
        [sys.executable, "-m", "glmbridge_server", "gemini", "--port", port, "-p", "x"],
        cwd=home / "sub", env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert len(hints(inner.stderr)) == 1  # the most specific rule wins


def test_gemini_settings_file_in_a_shared_folder_is_foreseen(
    served: RunningServer, sim: RunningServer, home: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # like /tmp: gemini-cli will not read a settings file below it
    assert settings_refusal(shared / "state" / "x.json") is not None
    # a folder only root can write (not the checkout, which may itself lie under /tmp)
    assert settings_refusal(Path("/usr/lib/glmbridge-not-there/x.json")) is None or (
        os.geteuid() != 0
    )
    env = env_for(home, sim, GLMBRIDGE_STATE_DIR=str(shared / "state"))
    result = run(home, "gemini", "--port", port_of(served), "--skip-trust", "-p", "x", env=env)
    assert result.returncode == 0, result.stderr
    (line,) = hints(result.stderr)
    reason = settings_refusal(shared / "state" / "gemini-cli-settings.json")
    assert reason is not None and f"({reason})" in line
    assert "is writable by others" in reason or "is not owned by root" in reason
    fix = "GLMBRIDGE_STATE_DIR=" if os.geteuid() == 0 else '"selectedType": "gemini-api-key"'
    assert fix in line
    # the user's own choice of the API-key auth makes the file unnecessary: no hint
    (home / ".gemini").mkdir()
    chosen = {"security": {"auth": {"selectedType": "gemini-api-key"}}}
    (home / ".gemini" / "settings.json").write_text(json.dumps(chosen))
    again = run(home, "gemini", "--port", port_of(served), "--skip-trust", "-p", "x", env=env)
    assert not hints(again.stderr)


def run_in_terminal(home: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    """The launcher with a pseudo-terminal as stdin, stdout and stderr."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "glmbridge_server", *args],
        cwd=home, env=env, stdin=follower, stdout=follower, stderr=follower, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: every writer exited
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return proc.wait(timeout=30), out.decode(errors="replace")


SESSION_WRITER = f"""#!{sys.executable}
import os, pathlib, sys
cwd = os.getcwd()
slug = "".join(c if c.isascii() and c.isalnum() else "-" for c in cwd)
folder = pathlib.Path(os.environ["HOME"]) / ".claude" / "projects" / slug
folder.mkdir(parents=True, exist_ok=True)
(folder / "5d0c5ed2-5e55-4f0b-9d8e-6b7c2f0c1a11.jsonl").write_text("{{}}\\n")
print("Resume this session with:\\nclaude --resume 5d0c5ed2-5e55-4f0b-9d8e-6b7c2f0c1a11")
sys.exit(4)
"""


def test_claude_in_a_terminal_ends_with_the_resume_line_through_the_bridge(
    served: RunningServer, sim: RunningServer, home: Path
) -> None:
    (home / "bin" / "claude").write_text(SESSION_WRITER)
    env = env_for(home, sim)
    status, out = run_in_terminal(home, env, "claude", "--port", port_of(served))
    assert status == 4, out  # Claude Code's own status
    last = out.strip().splitlines()[-1]
    assert last == (
        "glmbridge: resume this conversation through glmbridge with: glmbridge-server claude "
        f"--port {port_of(served)} --resume 5d0c5ed2-5e55-4f0b-9d8e-6b7c2f0c1a11"
    )
    # Not in a terminal (a script): the launcher becomes claude, as before, no line after.
    result = run(home, "claude", "--port", port_of(served), env=env)
    assert result.returncode == 4 and "resume this conversation" not in result.stderr


def test_claude_in_a_terminal_without_a_new_session_prints_no_resume_line(
    served: RunningServer, sim: RunningServer, home: Path
) -> None:
    env = env_for(home, sim)
    status, out = run_in_terminal(home, env, "claude", "--port", port_of(served), "--version")
    assert status == 0, out
    assert "resume this conversation" not in out
    assert dump(home)["argv"][-1] == "--version"


JOB = f"""#!{sys.executable}
import os, pathlib, signal, sys, time
os.kill(os.getpid(), signal.SIGSTOP)  # what a TUI does for Ctrl-Z in raw mode
pathlib.Path("resumed").write_text("yes")
if os.environ.get("WAIT_FOR_TERM"):
    time.sleep(30)
sys.exit(5)
"""


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_in_a_terminal_the_launcher_behaves_like_a_shell_job(
    served: RunningServer, sim: RunningServer, home: Path
) -> None:
    """Claude Code stopping itself (Ctrl-Z) stops the launcher too, so the shell sees the job
    stopped and ``fg`` (SIGCONT) resumes both; SIGTERM to the launcher reaches Claude Code."""
    (home / "bin" / "claude").write_text(JOB)
    leader, follower = pty.openpty()
    for wait in ("", "1"):
        (home / "resumed").unlink(missing_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "glmbridge_server", "claude", "--port", port_of(served)],
            cwd=home, env=env_for(home, sim, WAIT_FOR_TERM=wait),
            stdin=follower, stdout=follower, stderr=follower,
        )  # fmt: skip
        _wait_for(lambda p=proc.pid: _state(p) == "T")  # the launcher stopped with its client
        os.kill(proc.pid, signal.SIGCONT)  # the shell's fg
        _wait_for(lambda: (home / "resumed").exists())
        if wait:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 128 + signal.SIGTERM
        else:
            assert proc.wait(timeout=20) == 5
    os.close(follower)
    os.close(leader)
