"""``pytest --fast`` (issue 23, item 6): the quick subset leaves out what is slow (real
servers and clients, property searches, mypy and ruff) and keeps the rest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ["tests/glmbridge/test_tokens.py", "tests/server/launch/test_hints.py",
         "tests/test_static_checks.py", "tests/test_docs_references.py"]  # fmt: skip


def collected(*options: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *options, *FILES],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    return {line for line in out.splitlines() if "::" in line}


def test_fast_leaves_out_servers_property_searches_and_static_checks() -> None:
    everything, fast = collected(), collected("--fast")
    assert fast < everything
    left_out = everything - fast
    assert any("test_hints.py" in t for t in left_out)  # real servers (e2e)
    assert any("test_static_checks.py" in t for t in left_out)  # mypy, ruff
    assert any("test_tokens.py" in t for t in left_out)  # @given property searches
    assert not any("test_hints.py" in t or "test_static_checks.py" in t for t in fast)
    assert any("test_docs_references.py" in t for t in fast)  # plain tests stay
    assert any("test_tokens.py" in t for t in fast)
