"""The app's shared state, typed: what :func:`~glmbridge_server.edge.app.create_app` builds
and its lifespan completes. It is ``app.state`` (Starlette's untyped ``State`` replaced), and
every call's record points to it. Nothing here imports Starlette.
"""

from __future__ import annotations

import collections
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from glmbridge.doors import protocol_for_path
from glmbridge.routing import RouteTable
from glmbridge.served import ServedAs
from glmbridge.tokens import TokenEstimator
from glmbridge.vision import Description
from glmbridge_server.call.record import CallRecord
from glmbridge_server.call.shutdown import Shutdown
from glmbridge_server.dashboard import Dashboard
from glmbridge_server.edge.supervisor import Supervisor
from glmbridge_server.media.access import MediaState
from glmbridge_server.settings import Settings
from glmbridge_server.tools.responses_store import ResponseStore
from glmbridge_server.tools.search_engine import ZaiSearchEngine
from glmbridge_server.traffic.metrics import Metrics
from glmbridge_server.traffic.scheduler import Scheduler
from glmbridge_server.traffic.usage_store import UsageStore
from glmbridge_server.upstream.client import UpstreamClient
from glmbridge_server.upstream.keypool import KeyPool

__all__ = ["RECORD", "AppState", "Worker", "record_in"]

#: Where the edge keeps the call's record in the ASGI scope's state.
RECORD = "glmbridge.call"


@dataclass(frozen=True, slots=True)
class Worker:
    """The process this app serves in: one of ``count`` workers on one port (``workers``);
    ``server_pid`` is the process ``glmbridge-server stop`` signals (the supervisor, or this
    process when it serves alone)."""

    index: int = 0
    count: int = 1
    server_pid: int = field(default_factory=os.getpid)

    def view(self) -> dict[str, int]:
        """What ``/health``, ``/status`` and ``/metrics`` say about it."""
        return {"index": self.index, "count": self.count, "pid": os.getpid()}


@dataclass(eq=False)
class AppState:
    """Everything the app's requests share.

    ``settings``, ``route_table`` and ``model_catalog`` are replaced together by
    ``POST /config``; a running request keeps the snapshot its record took. Fields with
    defaults are filled in later (the lifespan, a first use).
    """

    settings: Settings
    route_table: RouteTable
    model_catalog: dict[str, dict[str, str]]
    key_pool: KeyPool
    scheduler: Scheduler
    metrics: Metrics
    key_ids: list[str]
    token_estimator: TokenEstimator
    responses_store: ResponseStore | None
    #: The built-in simulator's ASGI app (``--mock``), else ``None``.
    simulator: Any = None
    #: Set by the lifespan: the upstream client, the shutdown signal, the usage store.
    upstream: UpstreamClient | None = None
    stopping: Shutdown | None = None
    usage_store: UsageStore | None = None
    #: What answered last (for the statusline), and the quota poller's windows by key index.
    last_served: dict[str, Any] | None = None
    quota_windows: dict[int, Any] = field(default_factory=dict)
    #: Which model answers which id, per profile (learned from answers; model_follower).
    served_as: ServedAs = field(default_factory=ServedAs)
    #: Profile name -> the ids its ``/models`` list names (model_follower).
    live_models: dict[str, frozenset[str]] = field(default_factory=dict)
    #: the lifespan's background loops, supervised (``/health`` shows them)
    supervisor: Supervisor = field(default_factory=Supervisor)
    #: Tokenizer URL -> monotonic time to ask it again.
    tokenizer_unavailable: dict[str, float] = field(default_factory=dict)
    #: Made on first use, remade when the settings change.
    search_engine: ZaiSearchEngine | None = None
    image_descriptions: collections.OrderedDict[str, Description] | None = None
    #: The dashboard's sessions, inspector and tracer (glmbridge_server.dashboard).
    dashboard: Dashboard | None = None
    #: media (issue 21): the media keys' pool and the video task table.
    media: MediaState = field(default_factory=MediaState)
    #: which worker process this is (``workers`` > 1; glmbridge_server/workers.py)
    worker: Worker = field(default_factory=Worker)

    def client(self) -> UpstreamClient:
        """The upstream client (the lifespan makes it before the first request)."""
        if self.upstream is None:
            raise RuntimeError("the app is not serving: its lifespan has not started")
        return self.upstream


def record_in(scope: MutableMapping[str, Any]) -> CallRecord:
    """The record of the request ``scope`` belongs to: the one the request-context
    middleware built as it arrived (or, for an app run without it, a new one)."""
    state = scope.setdefault("state", {})
    record: CallRecord | None = state.get(RECORD)
    if record is None:
        app_state: AppState = scope["app"].state
        protocol = protocol_for_path(scope["path"])
        record = state[RECORD] = CallRecord.arriving(scope, "", protocol, app_state)
    return record
