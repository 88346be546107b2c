"""gemini-cli comfort: ``glmbridge-server gemini`` and the settings it needs.

gemini-cli (0.61, recorded in ``tests/fixtures/gemini_cli/README.md``) talks to a custom
server through ``GOOGLE_GEMINI_BASE_URL``, but then picks the "gateway" auth type, which
its headless mode refuses, unless settings say ``security.auth.selectedType =
"gemini-api-key"``. It also assumes a 1,048,576-token window for every model and only
compresses its history at half of that, far past GLM's windows. The launcher therefore
writes a small settings file to glmbridge's state directory and points
``GEMINI_CLI_SYSTEM_SETTINGS_PATH`` at it (system settings win over the user's own, and
the user's ``~/.gemini/settings.json`` is never touched): the auth type, and a
``model.compressionThreshold`` that starts compression at 70 % of the routed model's
real window.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from glmbridge.routing import RouteTable
from glmbridge_server.launch.client import Client, Run

__all__ = ["ASSUMED_WINDOW", "GEMINI", "gemini_env", "system_settings"]

ASSUMED_WINDOW = 1_048_576
"""The context window gemini-cli assumes for every model."""
_COMPRESS_AT = 0.7


def system_settings(table: RouteTable) -> dict[str, object]:
    """The settings gemini-cli needs to use glmbridge well."""
    spec = table.models.get(table.default_model)
    window = spec.context_window if spec is not None else 200_000
    threshold = round(min(0.5, _COMPRESS_AT * window / ASSUMED_WINDOW), 3)
    return {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "model": {"compressionThreshold": threshold},
    }


def gemini_env(environ: Mapping[str, str], base_url: str, token: str | None,
               table: RouteTable, state: Path) -> dict[str, str]:  # fmt: skip
    """gemini-cli's environment: the bridge's URL and token, and the settings file."""
    env = dict(environ)
    env["GOOGLE_GEMINI_BASE_URL"] = base_url
    env["GEMINI_API_KEY"] = token or "glmbridge"
    env.pop("GOOGLE_API_KEY", None)  # a real Google key is never sent to the bridge
    if "GEMINI_CLI_SYSTEM_SETTINGS_PATH" not in env:
        state.mkdir(parents=True, exist_ok=True)
        path = state / "gemini-cli-settings.json"
        path.write_text(json.dumps(system_settings(table), indent=2) + "\n")
        env["GEMINI_CLI_SYSTEM_SETTINGS_PATH"] = str(path)
    return env


def _env(run: Run) -> dict[str, str]:
    return gemini_env(run.environ, run.target.url, run.token, run.table, run.state)


GEMINI = Client(
    command="gemini",
    package="@google/gemini-cli",
    usage="glmbridge-server gemini [--mock] [--port N] [--] [gemini args...]\n\n"
    "Start gemini-cli on glmbridge (a background server if needed; see `claude --help`).",
    argv=lambda run: ["gemini", *run.args],
    env=_env,
)
