"""Fixtures for server tests: real uvicorn servers on 127.0.0.1 in background threads.

``sim`` is the GLM simulator; ``bridge`` is glmbridge pointed at it with one key. Both
are shared by the session and reset between tests. ``start_server(app)`` starts any
other app (a bridge with different settings) for one test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import pytest
import uvicorn
from starlette.applications import Starlette

from glmbridge_server.cli import _bind
from glmbridge_server.edge.app import create_app
from glmbridge_server.edge.inbound import uvicorn_options
from glmbridge_server.settings import Settings
from glmbridge_server.simulator import create_simulator_app
from glmbridge_server.simulator.catalog import CODING_SERVED_AS
from glmbridge_server.simulator.limits import reset_limits
from glmbridge_server.simulator.media import init_media
from tests.server.faults import FaultServer

SIM_KEY = "sim-key-0001.secret"


@dataclass
class RunningServer:
    """A uvicorn server running ``app`` in a thread."""

    app: Starlette
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "uvicorn did not stop"


def run_in_thread(app: Starlette) -> RunningServer:
    """Start ``app`` on 127.0.0.1 with an OS-chosen port; return once it accepts connections."""
    sock = _bind("127.0.0.1", 0)  # the server's own listener (TCP_NODELAY on connections)
    port = sock.getsockname()[1]
    settings = getattr(app.state, "settings", None)
    # A bridge runs with the inbound limits `glmbridge-server` sets (glmbridge_server.edge.inbound).
    limits = uvicorn_options(settings) if isinstance(settings, Settings) else {}
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        **limits,
    )
    server = uvicorn.Server(config)
    # The main thread owns signals; a server thread must not install handlers.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn failed to start")
        time.sleep(0.01)
    return RunningServer(app, f"http://127.0.0.1:{port}", server, thread)


def reset_simulator(app: Starlette) -> None:
    """Forget recorded requests, queued scripts and counters."""
    st = app.state
    st.requests.clear()
    st.script_queue.clear()
    st.cancelled = 0
    st.prefix_cache.clear()
    st.served_as = dict(CODING_SERVED_AS)
    st.gated_keys = set()
    st.search_host = "zai"
    st.model_lists = {}
    reset_limits(st)
    init_media(st)


def make_bridge_settings(sim_url: str, **overrides: Any) -> Settings:
    """Settings for a bridge whose upstream is the simulator at ``sim_url``."""
    values: dict[str, Any] = {
        "upstream": f"{sim_url}/api/coding/paas/v4",
        "api_keys": (SIM_KEY,),
        "max_retries": 0,
        "ping_interval": 10.0,
        "web_search_url": f"{sim_url}/api/paas/v4",  # server tools search the simulator
        # A lasting 1302 ([[sim:error:1302]]) is held within max_queue_wait before the
        # client gets its 429 (glmbridge_server/throttle_hold.py): seconds, not minutes.
        "max_queue_wait": 3.0,
        "models_refresh": 0,  # no GET /models in the request logs (test_coding_plan_e2e reads it)
    }
    values.update(overrides)
    return Settings(**values)


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
