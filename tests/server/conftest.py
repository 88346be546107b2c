"""Fixtures for server tests: real uvicorn servers on 127.0.0.1 in background threads.

``sim`` is the GLM simulator; ``bridge`` is glmbridge pointed at it with one key. Both
are shared by the session and reset between tests. ``start_server(app)`` starts any
other app (a bridge with different settings) for one test. ``claude_bin``, ``codex_bin`` and
``gemini_bin`` are the real clients. What test modules import is in ``tests/support/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from starlette.applications import Starlette

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from glmbridge_server.simulator import create_simulator_app
from tests.server.faults import FaultServer
from tests.support.clis import CLAUDE_CODE, CODEX, GEMINI_CLI
from tests.support.servers import SIM_KEY, RunningServer, make_bridge_settings, run_in_thread
from tests.support.simulator import reset_simulator


@pytest.fixture(scope="session")
def sim() -> Iterator[RunningServer]:
    """The GLM simulator for the session; key ``bad-key`` is invalid, ``broke-key`` has no quota."""
    app = create_simulator_app(invalid_keys={"bad-key"}, quota_keys={"broke-key"})
    server = run_in_thread(app)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _bridge(sim: RunningServer) -> Iterator[RunningServer]:
    server = run_in_thread(create_app(make_bridge_settings(sim.url)))
    yield server
    server.stop()


@pytest.fixture
def bridge(_bridge: RunningServer, sim: RunningServer) -> RunningServer:
    """glmbridge in front of the simulator (one key, no retries); simulator state reset."""
    reset_simulator(sim.app)
    return _bridge


@pytest.fixture
def start_server(sim: RunningServer) -> Iterator[Callable[[Starlette], RunningServer]]:
    """Start extra servers for one test; they are stopped afterwards."""
    reset_simulator(sim.app)
    started: list[RunningServer] = []

    def start(app: Starlette) -> RunningServer:
        server = run_in_thread(app)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def client(bridge: RunningServer) -> Iterator[anthropic.Anthropic]:
    """The official SDK pointed at ``bridge``."""
    with anthropic.Anthropic(base_url=bridge.url, api_key="x", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def bridge_settings() -> Callable[..., Settings]:
    """``bridge_settings(upstream_url, **overrides)``: settings for an extra bridge."""
    return make_bridge_settings


@pytest.fixture
def sim_key() -> str:
    """The key the session bridge uses (the simulator accepts any key but two)."""
    return SIM_KEY


# --- the real clients (tests/support/clis.py), installed from npm on first use -------------------


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """The `claude` executable."""
    return CLAUDE_CODE.installed()


@pytest.fixture(scope="session")
def codex_bin() -> Path:
    """The `codex` executable."""
    return CODEX.installed()


@pytest.fixture(scope="session")
def gemini_bin() -> Path:
    """The `gemini` executable."""
    return GEMINI_CLI.installed()


# --- a fault-injection upstream (tests/server/faults.py) shared by a test module --------------


@pytest.fixture(scope="module")
def _shared() -> Iterator[tuple[FaultServer, dict[tuple[Any, ...], RunningServer]]]:
    """One fault server and the bridges in front of it (one per distinct settings) for the
    whole module: starting a uvicorn per test would cost more than most tests take."""
    up = FaultServer().start()
    bridges: dict[tuple[Any, ...], RunningServer] = {}
    yield up, bridges
    up.stop()  # releases hanging connections first
    for server in bridges.values():
        server.stop()


@pytest.fixture
def upstream(
    _shared: tuple[FaultServer, dict[tuple[Any, ...], RunningServer]],
) -> Callable[..., FaultServer]:
    """``upstream(*plans)``: the module's fault server, following ``plans`` from now on."""
    return _shared[0].reset


@pytest.fixture
def bridge_for(
    _shared: tuple[FaultServer, dict[tuple[Any, ...], RunningServer]],
) -> Callable[..., str]:
    """``bridge_for(upstream, **settings)``: the URL of a bridge in front of ``upstream``
    (shared by every test with the same settings).

    Defaults: a long idle timeout (30 s), so a test that finishes quickly proves the relay
    did not wait for it; no retries; pings rare.
    """
    bridges = _shared[1]

    def make(up: FaultServer, **overrides: Any) -> str:
        values: dict[str, Any] = {"idle_timeout": 30.0, "first_output_timeout": 10.0}
        values.update(overrides)
        key = (up.url, *sorted(values.items()))
        if key not in bridges:
            bridges[key] = run_in_thread(create_app(make_bridge_settings(up.url, **values)))
        return str(bridges[key].url)

    return make
