"""glmbridge-server: a thin Starlette server that puts the Anthropic API in front of Z.ai GLM.

All protocol conversion lives in the :mod:`glmbridge` library; this package owns the sockets:
routes, the upstream client, the key pool and configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glmbridge._version import __version__
    from glmbridge_server.edge.app import create_app

__all__ = ["__version__", "create_app"]


def __getattr__(name: str) -> Any:
    # Imported lazily so `python -m glmbridge_server --help` and the settings module do not
    # pay for Starlette and the converters.
    if name == "__version__":  # lazily: `glmbridge-server statusline` imports only the stdlib
        from glmbridge._version import __version__

        return __version__
    if name == "create_app":
        from glmbridge_server.edge.app import create_app

        return create_app
    raise AttributeError(f"module 'glmbridge_server' has no attribute {name!r}")
