"""The public path of the app factory: ``glmbridge_server.app.create_app`` (it lives in edge)."""

from glmbridge_server.edge.app import begin_shutdown, create_app

__all__ = ["begin_shutdown", "create_app"]
