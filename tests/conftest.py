"""Shared test configuration: hypothesis profiles, and a private data directory.

Servers record usage under ``$XDG_DATA_HOME/glmbridge`` by default; the tests point it at
a temporary directory so that no test writes into the home directory.

``--fast`` runs a quick subset (see :func:`_slow`).

``ci`` (selected when the ``CI`` environment variable is set) is reproducible: a fixed
seed derivation (``derandomize``), no deadline (shared runners are slow and noisy), and
the failing example's blob printed for ``@reproduce_failure``. ``dev`` only drops the
deadline. ``HYPOTHESIS_PROFILE`` picks a profile explicitly.
"""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import settings

os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="glmbridge-tests-")

settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="a quick subset for iteration: no real servers or CLIs (e2e), no property "
        "searches (hypothesis), no mypy/ruff runs",
    )


# Fixtures that start a real uvicorn server (tests/server/conftest.py) or a Redis server.
_SERVERS = frozenset({"sim", "bridge", "_bridge", "start_server", "client", "redis_url"})


def _slow(item: pytest.Item) -> bool:
    """What ``--fast`` leaves out: the tests that start servers or clients, search for
    examples, or run the type checker and the linter (the full run has them all)."""
    if item.get_closest_marker("e2e") is not None:
        return True
    if _SERVERS.intersection(getattr(item, "fixturenames", ())):
        return True
    if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
        return True
    return item.nodeid.startswith("tests/test_static_checks.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--fast"):
        return
    dropped = [item for item in items if _slow(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not _slow(item)]
