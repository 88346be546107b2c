"""Real uvicorn servers on 127.0.0.1 in background threads, and bridge settings for them.

The fixtures that start them (``sim``, ``bridge``, ``start_server`` …) are in
``tests/server/conftest.py``; this module is what test modules import to type and start them.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette

from glmbridge_server.cli import _bind
from glmbridge_server.edge.inbound import uvicorn_options
from glmbridge_server.settings import Settings

__all__ = ["SIM_KEY", "MakeSettings", "RunningServer", "Start", "free_port",
           "make_bridge_settings", "run_in_thread"]  # fmt: skip

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


Start = Callable[[Starlette], RunningServer]
"""The ``start_server`` fixture: starts an app for one test."""
MakeSettings = Callable[..., Settings]
"""The ``bridge_settings`` fixture: :func:`make_bridge_settings`."""


def free_port() -> int:
    """A loopback port nothing listens on (the OS chose it; it is free again once closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    # Off the main thread uvicorn installs no signal handlers (uvicorn.Server.capture_signals).
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn failed to start")
        time.sleep(0.01)
    return RunningServer(app, f"http://127.0.0.1:{port}", server, thread)


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
