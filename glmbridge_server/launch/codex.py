"""Codex CLI comfort: the model catalog Codex reads, and ``glmbridge-server codex``.

**The catalog.** Codex (0.171, recorded in ``tests/fixtures/codex/README.md``) asks a
custom provider for model metadata only when the provider sets ``model_catalog_url``; it
then calls ``GET <url>?client_version=…`` and expects ``{"models": [ModelInfo…]}``.
Without it Codex warns "Model metadata … not found", knows no context window (so it never
compacts), offers no ``apply_patch`` tool, and sends no reasoning effort. ``/v1/models``
therefore answers Codex's shape whenever ``client_version`` is in the query. Every
field Codex 0.171 requires is sent (it rejects the whole catalog when one is missing);
``context_window`` is the model's real window, so auto-compaction (at 90 % of it)
works, and ``input_modalities`` says whether images may be attached.

**The launcher.** ``glmbridge-server codex [--port N] [--] [codex args…]`` finds or
starts the bridge like ``claude`` does, then runs ``codex`` with ``-c`` overrides that
define a ``glmbridge`` provider (``wire_api = "responses"``, the catalog URL, the key
in ``GLMBRIDGE_API_KEY``): the user's ``~/.codex/config.toml`` is never touched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from glmbridge.routing import ModelSpec, RouteTable
from glmbridge_server.launch.client import Client, Run, command_line

__all__ = ["BASE_INSTRUCTIONS", "CODEX", "codex_argv", "codex_catalog", "codex_env", "config_toml"]

PROVIDER = "glmbridge"
KEY_VARIABLE = "GLMBRIDGE_API_KEY"

BASE_INSTRUCTIONS = """\
You are a coding agent running in the Codex CLI on a GLM model (served through glmbridge). \
You work in the user's repository on their machine: read code, run commands, and edit files \
to complete the task, then report briefly what you did.

- Run shell commands with the `exec_command` tool (use `rg` to search; keep output small). \
Use `write_stdin` to interact with a running process.
- Edit files with the `apply_patch` tool. Its input is raw patch text, not JSON:
  *** Begin Patch
  *** Update File: path/to/file.py
  @@ def context_line
  -old line
  +new line
  *** End Patch
  Use `*** Add File: path` (every line prefixed with `+`) and `*** Delete File: path` too.
- Follow the repository's conventions; keep changes focused; do not revert changes you did \
not make. Verify your work (tests, build) when you can.
- When you are done, answer concisely: what changed and anything the user must know."""

_EFFORTS = (
    ("low", "Fast answers with light reasoning"),
    ("medium", "Balanced reasoning"),
    ("high", "Deep reasoning for hard problems"),
)


def _model_info(spec: ModelSpec, priority: int) -> dict[str, Any]:
    reasoning = spec.thinking != "none"
    name = spec.display_name or spec.id.upper()
    return {
        "slug": spec.id,
        "display_name": name,
        "description": f"Z.ai {name} through glmbridge",
        "default_reasoning_level": "high" if reasoning else None,
        "supported_reasoning_levels": (
            [{"effort": e, "description": d} for e, d in _EFFORTS] if reasoning else []
        ),
        "shell_type": "shell_command",
        "visibility": "list",
        "supported_in_api": True,
        "priority": priority,
        "base_instructions": BASE_INSTRUCTIONS,
        "support_verbosity": False,
        "apply_patch_tool_type": "freeform",
        "truncation_policy": {"mode": "tokens", "limit": 10_000},
        "supports_parallel_tool_calls": True,
        "context_window": spec.context_window,
        "experimental_supported_tools": [],
        "input_modalities": ["text", "image"] if spec.vision else ["text"],
    }


def codex_catalog(table: RouteTable) -> dict[str, Any]:
    """``{"models": [...]}`` for every GLM model of the routing table, default first."""
    ids = sorted(table.models, key=lambda i: (i != table.default_model, i))
    return {"models": [_model_info(table.models[i], n) for n, i in enumerate(ids, start=1)]}


def config_toml(base_url: str, model: str) -> str:
    """A ``~/.codex/config.toml`` snippet for a glmbridge at ``base_url`` (docs, README)."""
    return (
        f'model = "{model}"\n'
        f'model_provider = "{PROVIDER}"\n\n'
        f"[model_providers.{PROVIDER}]\n"
        f'name = "glmbridge"\n'
        f'base_url = "{base_url}/v1"\n'
        f'wire_api = "responses"\n'
        f'env_key = "{KEY_VARIABLE}"\n'
        f'model_catalog_url = "{base_url}/v1/models"\n'
    )


def codex_argv(args: Sequence[str], base_url: str, model: str) -> list[str]:
    """``codex``'s argv: provider overrides (``-c``), then the user's arguments verbatim."""
    provider = f"model_providers.{PROVIDER}"
    overrides = {
        f"{provider}.name": "glmbridge",
        f"{provider}.base_url": f"{base_url}/v1",
        f"{provider}.wire_api": "responses",
        f"{provider}.env_key": KEY_VARIABLE,
        f"{provider}.model_catalog_url": f"{base_url}/v1/models",
        "model_provider": PROVIDER,
        "model": model,
    }
    flags = [part for k, v in overrides.items() for part in ("-c", f"{k}={json.dumps(v)}")]
    return ["codex", *flags, *args]


def codex_env(environ: Mapping[str, str], token: str | None) -> dict[str, str]:
    """The environment for ``codex``: the bridge's token (or a placeholder) as the key."""
    env = dict(environ)
    env[KEY_VARIABLE] = token or "glmbridge"
    return env


def _argv(run: Run) -> list[str]:
    return codex_argv(run.args, run.target.url, run.table.default_model)


def _env(run: Run) -> dict[str, str]:
    return codex_env(run.environ, run.token)


# Codex's options that take a value (so the word after them is not a subcommand).
_VALUED = frozenset({"-c", "--config", "-m", "--model", "-p", "--profile", "-C", "--cd", "-i",
                     "--image", "-s", "--sandbox", "-a", "--ask-for-approval", "--add-dir",
                     "--local-provider", "--output-schema", "-o", "--output-last-message",
                     "--color"})  # fmt: skip


def _exec_at(args: Sequence[str]) -> int | None:
    """Where the ``exec`` (alias ``e``) subcommand is in Codex's arguments, if it is there."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _VALUED:
            i += 2
            continue
        if not arg.startswith("-"):
            return i if arg in ("exec", "e") else None
        i += 1
    return None


def _workdir(run: Run) -> Path:
    """The directory Codex works in: ``-C``/``--cd`` if given, else the launcher's."""
    folder = run.cwd
    for i, arg in enumerate(run.args[:-1]):
        if arg in ("-C", "--cd"):
            folder = run.cwd / run.args[i + 1]
    return folder


def _in_git_repository(folder: Path) -> bool:
    """Whether ``folder`` is in a git work tree: what Codex 0.171's ``exec`` requires (a
    project trusted in its config.toml does not count, tried)."""
    return any((p / ".git").exists() for p in (folder, *folder.parents))


def exec_hints(run: Run) -> list[str]:
    """``codex exec`` outside a git repository refuses to run ("Not inside a trusted
    directory and --skip-git-repo-check was not specified"): the command with Codex's
    consent flag, for this run only."""
    at = _exec_at(run.args)
    if at is None or "--skip-git-repo-check" in run.args or _in_git_repository(_workdir(run)):
        return []
    args = [*run.args[: at + 1], "--skip-git-repo-check", *run.args[at + 1 :]]
    return [
        "codex exec runs only inside a git repository; to run it here: " + command_line(run, args)
    ]


CODEX = Client(
    command="codex",
    package="@openai/codex",
    usage="glmbridge-server codex [--mock] [--port N] [--] [codex args...]\n\n"
    "Start Codex CLI on glmbridge (a background server if needed; see `claude --help`).",
    # --yolo is taken but not translated: Codex's own flag is
    # --dangerously-bypass-approvals-and-sandbox.
    argv=_argv,
    env=_env,
    hints=exec_hints,
)
