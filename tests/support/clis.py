"""The real clients: Claude Code, Codex CLI and gemini-cli from npm, at the versions whose
traffic is recorded in ``tests/fixtures/``, installed on first use into
``~/.cache/glmbridge-tests/`` (first run: one ``npm install`` each; later runs none).

The ``claude_bin``, ``codex_bin`` and ``gemini_bin`` fixtures (``tests/server/conftest.py``)
install them; test modules that run them carry :data:`NEEDS_NPM`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CLAUDE_CODE", "CODEX", "GEMINI_CLI", "NEEDS_NPM", "NpmClient", "client_env",
           "run_claude", "work_dirs"]  # fmt: skip

NEEDS_NPM = pytest.mark.skipif(
    shutil.which("npm") is None, reason="needs node and npm to install the real clients"
)
CACHE = Path.home() / ".cache" / "glmbridge-tests"


@dataclass(frozen=True)
class NpmClient:
    """One client's npm package, pinned, and where it is installed."""

    package: str
    version: str
    binary: str
    dir_variable: str  # the environment variable that names another install directory
    cache_name: str

    def installed(self) -> Path:
        """The executable, installed from npm on first use."""
        root = Path(
            os.environ.get(self.dir_variable) or CACHE / f"{self.cache_name}-{self.version}"
        )
        binary = root / "node_modules" / ".bin" / self.binary
        if not binary.exists():
            root.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund",
                 f"{self.package}@{self.version}"],
                check=True, capture_output=True, timeout=600,
            )  # fmt: skip
        assert binary.exists(), f"npm did not install {binary}"
        return binary


CLAUDE_CODE = NpmClient("@anthropic-ai/claude-code", "2.1.197", "claude",
                        "GLMBRIDGE_CLAUDE_CODE_DIR", "claude-code")  # fmt: skip
CODEX = NpmClient("@openai/codex", "0.171.0", "codex", "GLMBRIDGE_CODEX_DIR", "codex")
GEMINI_CLI = NpmClient("@google/gemini-cli", "0.61.0", "gemini", "GLMBRIDGE_GEMINI_CLI_DIR",
                       "gemini-cli")  # fmt: skip


def work_dirs(tmp_path: Path, home: str = "home") -> tuple[Path, Path]:
    """A client's own home and its working directory under ``tmp_path`` (made if missing)."""
    dirs = tmp_path / home, tmp_path / "work"
    for folder in dirs:
        folder.mkdir(exist_ok=True)
    return dirs


def client_env(home: Path, **extra: str) -> dict[str, str]:
    """A client's whole environment: this ``PATH``, ``home`` as ``HOME``, UTF-8, and ``extra``."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **extra,
    }


def run_claude(
    claude_bin: Path, url: str, tmp_path: Path, prompt: str, *extra: str, **env: str
) -> tuple[int, dict[str, Any]]:
    """Run ``claude -p PROMPT --output-format json *extra`` against the bridge at ``url`` in a
    fresh HOME; ``env`` adds to its environment."""
    home, work = work_dirs(tmp_path)
    full_env = client_env(
        home,
        IS_SANDBOX="1",  # the CLI refuses some flags as root without it
        ANTHROPIC_BASE_URL=url,
        ANTHROPIC_AUTH_TOKEN="glmbridge-test",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        **env,
    )
    proc = subprocess.run(
        [str(claude_bin), "-p", prompt, "--output-format", "json", *extra],
        cwd=work, env=full_env, capture_output=True, text=True, timeout=180,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout.strip(), f"no output; stderr: {proc.stderr[-2000:]}"
    return proc.returncode, json.loads(proc.stdout)
