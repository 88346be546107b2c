"""The launchers' one-shots in a fresh folder with the real clients (issue 23, item 4), as the
README shows them: the client's own consent rule stays (it refuses), the launcher prints the
one line that fixes it, and that line, run as printed, works. Also Claude Code's resume line
(item 10): the conversation goes on through the bridge.

The clients are the cached ones (``claude_bin``, ``codex_bin``, ``gemini_bin``:
tests/support/clis.py); the bridge's upstream is the GLM simulator.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from glmbridge_server.edge.app import create_app
from tests.server.launch.test_hints import run_in_terminal
from tests.server.launch.test_launcher import port_of, upstream_of
from tests.support.clis import NEEDS_NPM
from tests.support.servers import MakeSettings, RunningServer, Start
from tests.support.simulator import chats

pytestmark = [pytest.mark.e2e, NEEDS_NPM]


@pytest.fixture
def served(start_server: Start, sim: RunningServer, bridge_settings: MakeSettings) -> RunningServer:
    return start_server(create_app(bridge_settings(sim.url)))


@pytest.fixture
def fresh() -> Iterator[Path]:
    """A new user's home with a new, empty working folder in it, outside any shared folder
    (under /tmp gemini-cli would ignore glmbridge's settings file: the other test's case)."""
    base = Path.home() / ".cache" / "glmbridge-tests"
    base.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="first-run.", dir=base))
    (home / "work").mkdir()
    (home / "bin").mkdir()
    yield home
    subprocess.run(["rm", "-rf", str(home)], check=False)


def env_of(home: Path, sim: RunningServer, **extra: str) -> dict[str, str]:
    env = {
        "PATH": f"{home / 'bin'}:{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GLMBRIDGE_UPSTREAM": upstream_of(sim),
        "CODEX_HOME": str(home / ".codex"),
    }
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    (home / ".codex").mkdir(exist_ok=True)
    env.update(extra)
    return env


def launch(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``glmbridge-server ARGS`` in the fresh folder (the console script is this tree's)."""
    return subprocess.run(
        [sys.executable, "-m", "glmbridge_server", *args],
        cwd=home / "work", env=env, capture_output=True, text=True, timeout=180,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def fix_line(stderr: str, marker: str) -> list[str]:
    """The command the launcher printed after ``marker``, as ``glmbridge-server`` arguments."""
    (line,) = [x for x in stderr.splitlines() if "glmbridge: " in x and marker in x]
    words = shlex.split(line.partition(marker)[2])
    assert words[0] == "glmbridge-server"
    return words[1:]


def choose_api_key_auth(home: Path) -> None:
    """What the launcher's line asks a user who is not root to do once."""
    (home / ".gemini").mkdir(exist_ok=True)
    auth = '{"security": {"auth": {"selectedType": "gemini-api-key"}}}'
    (home / ".gemini" / "settings.json").write_text(auth)


@pytest.mark.codex_cli
def test_codex_exec_in_a_fresh_folder(
    codex_bin: Path, served: RunningServer, sim: RunningServer, fresh: Path
) -> None:
    (fresh / "bin" / "codex").symlink_to(codex_bin)
    env = env_of(fresh, sim)
    refused = launch(fresh, env, "codex", "--port", port_of(served), "--", "exec", "say hello")
    assert refused.returncode == 1
    assert "--skip-git-repo-check was not specified" in refused.stderr  # Codex's own rule
    again = fix_line(refused.stderr, "to run it here: ")
    assert "--skip-git-repo-check" in again
    ran = launch(fresh, env, *again)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "You said:" in ran.stdout  # the simulator answered


@pytest.mark.gemini_cli
def test_gemini_prompt_in_a_fresh_folder(
    gemini_bin: Path, served: RunningServer, sim: RunningServer, fresh: Path
) -> None:
    (fresh / "bin" / "gemini").symlink_to(gemini_bin)
    env = env_of(fresh, sim, GLMBRIDGE_STATE_DIR=str(fresh / "state"))
    refused = launch(fresh, env, "gemini", "--port", port_of(served), "-p", "say hello")
    assert refused.returncode == 55, refused.stderr[-2000:]
    assert "--skip-trust" in refused.stderr  # gemini-cli's own rule
    again = fix_line(refused.stderr, "for this run: ")
    if os.geteuid() != 0:  # the settings file is never root's: the user chooses the auth
        assert "selectedType" in refused.stderr
        choose_api_key_auth(fresh)
    ran = launch(fresh, env, *again)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "You said:" in ran.stdout


@pytest.mark.gemini_cli
def test_gemini_with_its_settings_file_under_a_shared_folder(
    gemini_bin: Path, served: RunningServer, sim: RunningServer, fresh: Path, tmp_path: Path
) -> None:
    (fresh / "bin" / "gemini").symlink_to(gemini_bin)
    env = env_of(fresh, sim, GLMBRIDGE_STATE_DIR=str(tmp_path / "state"))  # under /tmp
    args = ["gemini", "--port", port_of(served), "--", "--skip-trust", "-p", "say hello"]
    refused = launch(fresh, env, *args)
    assert refused.returncode == 41, refused.stderr[-2000:]
    assert "Invalid auth method selected" in refused.stderr  # gemini-cli's own rule
    (line,) = [x for x in refused.stderr.splitlines() if "ignores glmbridge's settings" in x]
    if os.geteuid() == 0:
        assert "export GLMBRIDGE_STATE_DIR=" in line
        env["GLMBRIDGE_STATE_DIR"] = str(fresh / "state")  # a folder only root can write
    else:
        choose_api_key_auth(fresh)
    ran = launch(fresh, env, *args)
    assert ran.returncode == 0, ran.stderr[-2000:]


@pytest.mark.claude_cli
def test_claude_yolo_in_a_fresh_folder(
    claude_bin: Path, served: RunningServer, sim: RunningServer, fresh: Path
) -> None:
    """The README's ``glmbridge-server claude --yolo -p "hi"``: as root Claude Code refuses
    to skip permissions outside a sandbox, and the launcher's line is its consent."""
    (fresh / "bin" / "claude").symlink_to(claude_bin)
    env = env_of(fresh, sim)
    first = launch(fresh, env, "claude", "--port", port_of(served), "--yolo", "-p", "hi")
    if os.geteuid() != 0:
        assert first.returncode == 0, first.stderr[-2000:]
        return
    assert first.returncode == 1
    assert "cannot be used with root/sudo privileges" in first.stderr  # Claude Code's rule
    words = fix_line(first.stderr, "consent with: IS_SANDBOX=1 ")
    ran = launch(fresh, dict(env, IS_SANDBOX="1"), *words)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "You said: hi" in ran.stdout


@pytest.mark.claude_cli
def test_claude_print_in_a_fresh_folder_and_its_resume_line(
    claude_bin: Path, served: RunningServer, sim: RunningServer, fresh: Path
) -> None:
    (fresh / "bin" / "claude").symlink_to(claude_bin)
    env = env_of(fresh, sim)
    status, out = run_in_terminal(fresh / "work", env, "claude", "--port", port_of(served),
                                  "-p", "first question")  # fmt: skip
    assert status == 0, out[-2000:]
    assert "You said: first question" in out
    again = fix_line(out.replace("\r", ""), "through glmbridge with: ")
    assert again[-2] == "--resume"
    resumed = launch(fresh, env, *again, "-p", "second question")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    last = chats(sim)[-1]
    said = " ".join(str(m.get("content")) for m in last["messages"] if m["role"] == "user")
    assert "first question" in said and "second question" in said  # the same conversation
