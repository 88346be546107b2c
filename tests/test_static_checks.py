"""The code stays type-checked (mypy --strict) and lint-clean (ruff), per the style guide."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_mypy_strict() -> None:
    result = _run("mypy", "--strict", "glmbridge", "glmbridge_server")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_ruff() -> None:
    result = _run("ruff", "check", "glmbridge", "glmbridge_server", "tests", "bench")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
