"""The dashboard: usage and quota, a live inspector, settings and a playground at ``/dashboard``.

Served by the server itself on its own port, with no build step and nothing from another
origin: plain HTML, CSS and small JavaScript modules of our own under ``static/``, charts
drawn as SVG by that code, data from JSON endpoints under ``/dashboard/api/`` and one
event stream. Modules:

* :mod:`.session`: the login (token exchanged for an ``HttpOnly`` cookie), read by the
  security middleware;
* :mod:`.inspector`: the live inspector's bounded memory and its fan-out to viewers;
* :mod:`.observe`: the ASGI middleware that feeds the inspector and the traces;
* :mod:`.views`: usage and settings data (framework-free);
* :mod:`.otel`: OpenTelemetry spans (the optional ``glmbridge[otel]`` extra);
* :mod:`.routes`: the HTTP endpoints, one plain ASGI app (no module here imports Starlette).

The per-app state is one :class:`Dashboard` on ``app.state.dashboard``. See
``docs/dashboard.md``.
"""

from __future__ import annotations

from glmbridge_server.dashboard.inspector import Inspector
from glmbridge_server.dashboard.otel import Tracing
from glmbridge_server.dashboard.session import LoginThrottle, SessionStore
from glmbridge_server.settings import Settings

__all__ = ["Dashboard"]


class Dashboard:
    """The dashboard's state for one app: sessions, the inspector, the tracer.

    ``startup`` is the configuration the server started with (the settings view tells a
    runtime change from it).
    """

    def __init__(self, settings: Settings) -> None:
        self.startup = settings
        self.sessions = SessionStore()
        self.throttle = LoginThrottle()
        secrets = (*settings.api_keys, settings.auth_token or "")
        self.inspector = Inspector(secrets=secrets)
        self.tracing = Tracing.from_environment()

    def close(self) -> None:
        """Flush and stop the tracer (at shutdown)."""
        if self.tracing is not None:
            self.tracing.shutdown()
