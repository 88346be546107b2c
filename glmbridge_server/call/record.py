"""The per-call record: everything one request through the bridge is and becomes.

The HTTP edge builds one :class:`CallRecord` per request, as it arrives (from the ASGI scope:
no web framework here), and hands it to the drivers. The relay, the server tools, the vision
fallback, the metrics, the access log and the usage store read and fill it; none of them
sees the HTTP request. It is on the hot path: a slotted class, made with a handful of
assignments and one pass over the headers.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from glmbridge.exchange import Exchange
from glmbridge.ir import Usage
from glmbridge.routing import RouteTable
from glmbridge.tokens import TokenEstimator
from glmbridge.vision import Description
from glmbridge_server.settings import Settings
from glmbridge_server.tools.search_engine import ZaiSearchEngine
from glmbridge_server.upstream.client import UpstreamClient

if TYPE_CHECKING:  # the dashboard's inspector writes through it; the call only carries it
    from glmbridge_server.call.shutdown import Shutdown
    from glmbridge_server.dashboard.inspector import Capture

__all__ = [
    "AppServices",
    "Attribute",
    "CallRecord",
    "ClientHeaders",
    "Runtime",
    "Step",
    "client_name",
    "snapshot",
]


class AppServices(Protocol):
    """What a call uses of the app it runs in (the edge's ``AppState`` is one): the
    configuration to snapshot, the upstream client, the shutdown signal and the shared
    caches."""

    settings: Settings
    route_table: RouteTable
    model_catalog: dict[str, dict[str, str]]
    token_estimator: TokenEstimator
    stopping: Shutdown | None
    search_engine: ZaiSearchEngine | None
    image_descriptions: collections.OrderedDict[str, Description] | None

    def client(self) -> UpstreamClient:
        """The upstream client."""
        ...


@dataclass(frozen=True, slots=True)
class Runtime:
    """The configuration one request runs with, taken once when it arrives.

    ``POST /config`` replaces the app's ``settings``/``route_table``/``model_catalog``
    together; a request that is already running keeps the snapshot it started with.
    """

    settings: Settings
    route_table: RouteTable
    model_catalog: dict[str, dict[str, str]]


def snapshot(state: AppServices) -> Runtime:
    """The app's current configuration as one immutable :class:`Runtime`."""
    return Runtime(state.settings, state.route_table, state.model_catalog)


#: The client headers a call needs, by their (lower-case) wire names.
_WANTED = {
    b"x-claude-code-session-id": "session_id",
    b"x-glmbridge-priority": "priority",
    b"x-glmbridge-model": "model_override",
    b"traceparent": "traceparent",
    b"tracestate": "tracestate",
    b"user-agent": "user_agent",
}
# User-Agent fragments of the clients people ask about by name (the dashboard, the usage store).
_CLIENTS = (
    ("claude-cli", "Claude Code"),
    ("claude-code", "Claude Code"),
    ("codex", "Codex"),
    ("geminicli", "gemini-cli"),
    ("gemini-cli", "gemini-cli"),
)


def client_name(user_agent: str | None) -> str:
    """Which client sent a request, by its User-Agent: ``Claude Code``, ``Codex``,
    ``gemini-cli``, else ``SDK`` (any other program)."""
    agent = (user_agent or "").lower()
    return next((name for part, name in _CLIENTS if part in agent), "SDK")


@dataclass(slots=True)
class ClientHeaders:
    """The few request headers the drivers read (``None``: absent)."""

    session_id: str | None = None
    priority: str | None = None
    model_override: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    user_agent: str | None = None
    #: ``x-sim-*`` controls for the simulator (forwarded to it in ``--mock`` mode only).
    sim: dict[str, str] | None = None

    @classmethod
    def from_raw(cls, raw: list[tuple[bytes, bytes]]) -> ClientHeaders:
        """The wanted headers of an ASGI header list (the first of each name wins)."""
        out = cls()
        for name, value in raw:
            attr = _WANTED.get(name)
            if attr is None:
                if name.startswith(b"x-sim-"):
                    sim = out.sim if out.sim is not None else {}
                    sim[name.decode("latin-1")] = value.decode("latin-1")
                    out.sim = sim
            elif getattr(out, attr) is None:
                setattr(out, attr, value.decode("latin-1"))
        return out


#: A trace attribute's value.
Attribute = str | int | float | bool | list[str]


@dataclass(slots=True)
class Step:
    """A timed part of a call, for its trace: a wait for a key slot, an upstream attempt, a
    server-tool round (``time.perf_counter()`` values)."""

    name: str
    start: float
    end: float
    attributes: dict[str, Attribute] = field(default_factory=dict)
    error: str | None = None


@dataclass(slots=True, eq=False)
class CallRecord:
    """One request through the bridge (see the module docstring).

    Timings are ``time.perf_counter()`` values (``None``: not reached): ``received`` when the
    edge saw the request, ``first_byte`` when the answer's status went out, ``first_output``
    when its first content token did, ``done`` when it ended. ``queue_wait_ms`` is the time
    spent waiting for a key slot.
    """

    request_id: str
    method: str
    path: str
    #: ``anthropic``, ``openai``, ``gemini`` or ``admin`` (the path's, then the client's).
    protocol: str
    runtime: Runtime
    app: AppServices
    headers: ClientHeaders
    #: ``(host, port)`` the request came in on (mock mode calls this very server).
    server: tuple[str, int] | None = None
    received: float = 0.0
    # -- the routing decision ------------------------------------------------------------
    #: The exchange being answered (after a fallback, the one that answers).
    exchange: Exchange | None = None
    #: The model the client named, the model routed to, and the upstream profile's name.
    client_model: str | None = None
    routed_model: str | None = None
    #: The model the upstream's answer names (the Coding Plan serves legacy ids with another).
    served_model: str | None = None
    upstream: str | None = None
    stream: bool | None = None
    #: ``"<model>@<upstream>"`` the call fell back from, if it did.
    fallback: str | None = None
    # -- traffic ---------------------------------------------------------------------------
    #: The priority class (``interactive``, ``subagent``, ``background``) and the slot wait.
    priority: str | None = None
    queue_wait_ms: float | None = None
    queue_timeout: bool = False
    #: The key that answered (an index: keys are never logged) and the upstream's status.
    key_index: int | None = None
    upstream_status: int | None = None
    #: Upstream attempts, retries and key failovers included.
    upstream_attempts: int | None = None
    # -- the outcome -----------------------------------------------------------------------
    first_byte: float | None = None
    first_output: float | None = None
    done: float | None = None
    #: The HTTP status the client got (``0``: none yet), the token usage, the error kind.
    status: int = 0
    usage: Usage | None = None
    #: Why the answer ended (``end_turn``, ``max_tokens``, ``tool_use``…), when it did.
    finish_reason: str | None = None
    error_type: str | None = None
    #: The client left before its answer was complete.
    disconnected: bool = False
    # -- observers -------------------------------------------------------------------------
    #: The timed parts of the call (queue waits, upstream attempts, server-tool rounds).
    steps: list[Step] = field(default_factory=list)
    #: The dashboard inspector's recording of this call while the inspector is on.
    capture: Capture | None = None

    @classmethod
    def arriving(cls, scope: dict[str, Any] | Any, request_id: str, protocol: str,
                 app: AppServices) -> CallRecord:  # fmt: skip
        """The record of a request that just arrived (``scope``: its ASGI scope)."""
        return cls(
            request_id,
            scope["method"],
            scope["path"],
            protocol,
            snapshot(app),
            app,
            ClientHeaders.from_raw(scope["headers"]),
            scope.get("server"),
            time.perf_counter(),
        )

    @property
    def settings(self) -> Settings:
        """This call's settings (from its configuration snapshot)."""
        return self.runtime.settings

    @property
    def client(self) -> str:
        """The client by name (``Claude Code``, ``Codex``, ``gemini-cli``, ``SDK``)."""
        return client_name(self.headers.user_agent)

    @property
    def ttft(self) -> float | None:
        """Seconds from arrival to the first content token, if one went out."""
        return None if self.first_output is None else self.first_output - self.received

    def route_noted(self, exchange: Exchange) -> None:
        """Record the routing decision (the access log and the metrics show it)."""
        req, route = exchange.request, exchange.route
        self.exchange = exchange
        self.client_model = req.model
        self.routed_model = route.model
        self.stream = req.stream
        self.upstream = route.upstream.name

    def failed(self, kind: str, upstream_status: int | None = None) -> None:
        """Record an error the client is answered with."""
        self.error_type = kind
        if upstream_status is not None:
            self.upstream_status = upstream_status
