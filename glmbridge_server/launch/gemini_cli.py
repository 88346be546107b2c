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
real window. gemini-cli reads that file only when it and every folder above it are root's
alone (:func:`settings_refusal`); when it will not, and for a headless run in a folder
gemini-cli does not trust, the launcher prints the line that fixes it (:func:`gemini_hints`).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from glmbridge.routing import RouteTable
from glmbridge_server.launch.client import Client, Run, command_line, read_json

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
        path = state / SETTINGS_FILE
        path.write_text(json.dumps(system_settings(table), indent=2) + "\n")
        env["GEMINI_CLI_SYSTEM_SETTINGS_PATH"] = str(path)
    return env


def _env(run: Run) -> dict[str, str]:
    return gemini_env(run.environ, run.target.url, run.token, run.table, run.state)


SETTINGS_FILE = "gemini-cli-settings.json"
_ROOT_STATE = "/root/.local/state/glmbridge"  # root's default, outside any shared folder


def settings_refusal(path: Path) -> str | None:
    """Why gemini-cli (0.61) would skip a system settings file at ``path`` (``None``: it
    reads it): the file and every folder above it must be owned by root and writable by
    no one else (its ``isFileAndDirectorySecureSync``)."""
    for place in (*reversed(path.parents), path):
        try:
            info = place.stat()
        except OSError:
            return None  # not there yet: gemini-cli checks what exists
        if info.st_uid != 0:
            return f"{place} is not owned by root"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{place} is writable by others"
    return None


def _gemini_home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("GEMINI_CLI_HOME") or environ.get("HOME") or "~").expanduser()


def _headless(run: Run) -> bool:
    """Whether gemini-cli will run headless (its ``isHeadlessMode``: a prompt flag, a
    stdin or stdout that is not a terminal, or CI)."""
    prompt = any(a in ("-p", "--prompt") or a.startswith("--prompt=") for a in run.args)
    ci = run.environ.get("CI") == "true" or run.environ.get("GITHUB_ACTIONS") == "true"
    return prompt or ci or not (sys.stdin.isatty() and sys.stdout.isatty())


def _trusted(run: Run) -> bool:
    """Whether gemini-cli trusts the folder (its ``checkPathTrust``, rules from
    ``trustedFolders.json``; the most specific rule wins)."""
    env = run.environ
    if "--skip-trust" in run.args or env.get("GEMINI_CLI_TRUST_WORKSPACE") == "true":
        return True
    user = read_json(_gemini_home(env) / ".gemini" / "settings.json")
    if ((user.get("security") or {}).get("folderTrust") or {}).get("enabled") is False:
        return True
    path = env.get("GEMINI_CLI_TRUSTED_FOLDERS_PATH")
    rules = read_json(Path(path) if path else _gemini_home(env) / ".gemini" / "trustedFolders.json")
    best: tuple[int, bool] = (-1, False)
    for folder, level in rules.items():
        root = Path(folder).parent if level == "TRUST_PARENT" else Path(folder)
        if (run.cwd == root or root in run.cwd.parents) and len(root.parts) > best[0]:
            best = (len(root.parts), level in ("TRUST_FOLDER", "TRUST_PARENT"))
    return best[1]


def _auth_selected(environ: Mapping[str, str]) -> bool:
    user = read_json(_gemini_home(environ) / ".gemini" / "settings.json")
    auth = (user.get("security") or {}).get("auth") or {}
    return isinstance(auth, dict) and auth.get("selectedType") == "gemini-api-key"


def gemini_hints(run: Run) -> list[str]:
    """gemini-cli's refusals the launcher foresees, each with the line that fixes it.

    Headless (``-p``) in a folder it does not trust: exit 55, fixed with ``--skip-trust``
    (consent for this run). The launcher's settings file skipped because its folder is
    not root's alone (every user but root, or a state directory under ``/tmp``): gemini-cli
    then picks the "gateway" auth it refuses ("Invalid auth method selected", exit 41),
    unless the user's own settings select the API-key auth.
    """
    hints = []
    if _headless(run) and not _trusted(run):
        hints.append(
            "gemini-cli runs headless only in a folder it trusts (else exit 55); to trust "
            f"this one for this run: {command_line(run, ['--skip-trust', *run.args])}"
        )
    own = run.environ.get("GEMINI_CLI_SYSTEM_SETTINGS_PATH")
    why = None if own else settings_refusal(run.state / SETTINGS_FILE)
    if why is not None and not _auth_selected(run.environ):
        hints.append(
            f"gemini-cli ignores glmbridge's settings file ({why}) and would refuse the "
            "bridge's auth (Invalid auth method selected). "
            + (
                "Select the API-key auth once in ~/.gemini/settings.json: "
                '{"security": {"auth": {"selectedType": "gemini-api-key"}}}'
                if os.geteuid() != 0
                else "Keep glmbridge's state in a folder only root can write: "
                f"export GLMBRIDGE_STATE_DIR={_ROOT_STATE}"
            )
        )
    return hints


GEMINI = Client(
    command="gemini",
    package="@google/gemini-cli",
    usage="glmbridge-server gemini [--mock] [--port N] [--] [gemini args...]\n\n"
    "Start gemini-cli on glmbridge (a background server if needed; see `claude --help`).",
    argv=lambda run: ["gemini", *run.args],
    env=_env,
    hints=gemini_hints,
)
