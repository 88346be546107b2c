"""``glmbridge-server`` at start (issue 23, items 3, 7, 8 and 10): a setting whose optional
package is missing is a one-line configuration error before the banner, a key that cannot be
a Z.ai key is warned about, ``--help`` says what the server serves and where the key goes,
``statusline --help`` prints help, and a port that is in use says who holds it.

The server runs as a real process (``python -m glmbridge_server``) where the exit status or
the banner is the behaviour.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.applications import Starlette

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings, key_warnings
from tests.support.servers import RunningServer

pytestmark = pytest.mark.e2e


def serve(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
          timeout: float = 30) -> subprocess.CompletedProcess[str]:  # fmt: skip
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd or Path.cwd())}
    if "PYTHONPATH" in os.environ:
        base["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run(
        [sys.executable, "-m", "glmbridge_server", *args],
        env={**base, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def hide_module(folder: Path, name: str) -> dict[str, str]:
    """An environment in which ``import name`` fails as if the package were not installed."""
    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text(
        f"raise ModuleNotFoundError({f'No module named {name!r}'!r}, name={name!r})\n"
    )
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths)}


def test_redis_url_without_the_redis_package_is_a_configuration_error(tmp_path: Path) -> None:
    env = hide_module(tmp_path / "hidden", "redis")
    env["GLMBRIDGE_REDIS_URL"] = "redis://127.0.0.1:1/0"
    result = serve("--mock", "--port", "0", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "glmbridge-server: configuration error: redis_url needs the redis package, which is "
        "not installed: pip install 'glmbridge[redis]'"
    ]  # one line, before the banner, no traceback


def test_the_server_packages_are_checked_too(tmp_path: Path) -> None:
    env = hide_module(tmp_path / "hidden", "httptools")
    result = serve("--mock", "--port", "0", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "pip install 'glmbridge[server]'" in result.stderr
    assert "Traceback" not in result.stderr and "listening" not in result.stderr


def test_keys_of_other_providers_are_warned_about_never_shown() -> None:
    zai = "0123456789abcdef0123456789abcdef.AbCdEfGhIjKlMnOp"
    anthropic_key = "sk-ant-api03-secretsecret"
    warnings = key_warnings((zai, anthropic_key, "sk-proj-secret"))
    assert len(warnings) == 2
    assert "key 2 of 3 looks like an Anthropic key" in warnings[0]
    assert "key 3 of 3 looks like an OpenAI-style key" in warnings[1]
    assert all("secret" not in w for w in warnings)
    assert "https://z.ai/manage-apikey/apikey-list" in warnings[0]
    assert key_warnings((zai,)) == []


def test_the_banner_warns_about_an_anthropic_key(tmp_path: Path) -> None:
    env = {"ZAI_API_KEY": "sk-ant-api03-secretsecret", "GLMBRIDGE_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "glmbridge_server", "--port", "0"],
        env={**os.environ, **env}, cwd=tmp_path, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "Ctrl-C stops it" in line:
            break
    proc.terminate()
    proc.wait(timeout=10)
    banner = "".join(lines)
    assert "warning: ZAI_API_KEY: the key looks like an Anthropic key" in banner
    assert "secretsecret" not in banner
    # the manual Claude Code line keeps Claude Code from updating itself (issue 23, item 10)
    assert "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1" in banner


def test_help_names_every_api_and_the_key(tmp_path: Path) -> None:
    out = serve("--help", cwd=tmp_path).stdout
    assert "Serve the Anthropic Messages API" not in out
    for word in ("OpenAI", "Gemini", "ZAI_API_KEY", "GLMBRIDGE_UPSTREAM=zai", "GLMBRIDGE_PLAN"):
        assert word in out.replace("\n", " "), word
    assert "codex [--mock]" in out.replace("\n", " ")


def test_statusline_help_prints_help(tmp_path: Path) -> None:
    result = serve("statusline", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: glmbridge-server statusline")
    assert "unreachable" not in result.stdout


def test_port_in_use_by_a_glmbridge_says_so(
    start_server: Callable[[Starlette], RunningServer],
    bridge_settings: Callable[..., Settings],
    sim: RunningServer,
    tmp_path: Path,
) -> None:
    running = start_server(create_app(bridge_settings(sim.url)))
    port = running.url.rpartition(":")[2]
    result = serve("--mock", "--port", port, cwd=tmp_path)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "a glmbridge already runs there" in last and f"--port {int(port) + 1}" in last


def test_port_in_use_by_another_program_says_so(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = serve("--mock", "--port", str(port), cwd=tmp_path)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "another program holds the port" in last and f"--port {port + 1}" in last
