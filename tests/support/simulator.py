"""The GLM simulator's state as the tests read and reset it, and its ``[[sim:…]]`` directives."""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette

from glmbridge_server.simulator.catalog import CODING_SERVED_AS
from glmbridge_server.simulator.limits import reset_limits
from glmbridge_server.simulator.media import init_media
from tests.support.servers import RunningServer

__all__ = ["chats", "directive", "last_chat", "reset_simulator"]


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


def chats(sim: RunningServer) -> list[dict[str, Any]]:
    """The chat-completions bodies the simulator received (tokenizer bodies included: they
    carry ``messages`` too)."""
    return [r for r in sim.app.state.requests if isinstance(r, dict) and "messages" in r]


def last_chat(sim: RunningServer) -> dict[str, Any]:
    """The last chat-completions body the simulator received."""
    found = chats(sim)
    assert found, "the simulator received no chat request"
    return found[-1]


def directive(**script: Any) -> str:
    """A JSON ``[[sim:{…}]]`` directive for the simulator."""
    return f"[[sim:{json.dumps(script)}]]"
