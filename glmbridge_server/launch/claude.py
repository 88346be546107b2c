"""Claude Code's table for the launcher: ``glmbridge-server claude``.

Executable ``claude`` (npm ``@anthropic-ai/claude-code``). Environment:
``ANTHROPIC_BASE_URL`` and ``ANTHROPIC_AUTH_TOKEN`` (the bridge's token, or a placeholder),
the three model slots mapped to the GLM models the bridge serves for them, the model's real
context window, a long ``API_TIMEOUT_MS``, and ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC``
(no self-update, no telemetry); ``ANTHROPIC_API_KEY`` is removed. Command line: one
``--settings`` (the WebFetch preflight skipped; with ``--statusline`` the gateway's status
line), ``--yolo`` as ``--dangerously-skip-permissions``, then the user's arguments. No file
is written. In a terminal the launcher waits for Claude Code and then prints the line that
resumes the conversation through the bridge: Claude Code's own hint, ``claude --resume
<id>``, would bypass it.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from glmbridge import ir
from glmbridge.routing import RouteTable, model_info, normalize_model_name, resolve_route
from glmbridge_server.launch.background import fetch_models
from glmbridge_server.launch.client import Client, Run, command_line

__all__ = [
    "CLAUDE",
    "CLAUDE_SETTINGS",
    "claude_argv",
    "claude_env",
    "context_window",
    "model_env",
    "resume_line",
]

API_TIMEOUT_MS = "3000000"  # 50 minutes: GLM may think for a long time before answering
PLACEHOLDER_TOKEN = "glmbridge"  # Claude Code wants some token even when the bridge has none


def claude_env(
    base: Mapping[str, str],
    url: str,
    token: str | None,
    models: Mapping[str, str],
    context_window: int | None = None,
) -> dict[str, str]:
    """Claude Code's environment: the caller's, pointed at the bridge.

    With ``context_window`` (see :func:`context_window`), Claude Code is told the GLM
    model's real window: ``CLAUDE_CODE_MAX_CONTEXT_TOKENS`` is the window Claude Code
    2.1 assumes for a model id that is not ``claude-*`` (200K otherwise), and
    ``CLAUDE_CODE_DISABLE_1M_CONTEXT`` stops it from treating its default ``opus[1m]`` as a
    1M window (it would auto-compact about 5x too late on a 200K model). Values the caller
    set already are kept.
    """
    env = dict(base)
    # A real Anthropic key must not be sent to the bridge (nor clash with the token).
    env.pop("ANTHROPIC_API_KEY", None)
    slots = model_env(models)
    env.update(
        ANTHROPIC_BASE_URL=url,
        ANTHROPIC_AUTH_TOKEN=token or PLACEHOLDER_TOKEN,
        API_TIMEOUT_MS=API_TIMEOUT_MS,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        **slots,
    )
    if context_window is not None:
        for name, value in model_env(models, context_window).items():
            env.setdefault(name, value)  # the caller's own context settings win
    return env


_SLOTS = ("opus", "sonnet", "haiku")


def model_env(models: Mapping[str, str], window: int | None = None) -> dict[str, str]:
    """The model (and, with ``window``, context) variables Claude Code needs on GLM.

    Claude Code applies ``CLAUDE_CODE_MAX_CONTEXT_TOKENS`` only to model ids that are not
    ``claude-*``, so the slots name the GLM models themselves (see :func:`claude_env`).
    """
    env = {
        "ANTHROPIC_DEFAULT_OPUS_MODEL": models["opus"],
        "ANTHROPIC_DEFAULT_SONNET_MODEL": models["sonnet"],
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": models["haiku"],
    }
    if window is not None:
        env.update(CLAUDE_CODE_DISABLE_1M_CONTEXT="1", CLAUDE_CODE_MAX_CONTEXT_TOKENS=str(window))
    return env


def context_window(
    models: Mapping[str, str], args: Sequence[str], environ: Mapping[str, str], table: RouteTable
) -> int:
    """The real window of the GLM model Claude Code will converse with.

    That is the model of ``--model`` in ``args`` (else ``ANTHROPIC_MODEL``): a slot alias
    (``opus``, ``sonnet``, ``haiku``, with or without ``[1m]``) means the model the bridge
    maps it to (``models``, from ``GET /config``), any other name the model the bridge
    routes it to. Without one, Claude Code starts on ``opus`` and ``/model`` offers
    ``sonnet``: the smaller of those two windows, since a window overstated makes the
    conversation overflow before it compacts, and one understated only compacts early.
    Haiku's side requests (titles, summaries) are small and are not counted.
    """
    chosen = _model_arg(args) or environ.get("ANTHROPIC_MODEL")
    name = normalize_model_name(chosen) if chosen else ""
    if name in _SLOTS:
        ids = [models[name]]
    elif name and name not in ("default", "opusplan", "best"):
        ids = [resolve_route(ir.Request(model=name, messages=[]), table).model]
    else:
        ids = [models["opus"], models["sonnet"]]
    return min(model_info(model_id, table).context_window for model_id in ids)


def _model_arg(args: Sequence[str]) -> str | None:
    """The value of the last ``--model X`` / ``--model=X`` in Claude Code's arguments."""
    found = None
    for i, arg in enumerate(args):
        if arg == "--model" and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--model="):
            found = arg.partition("=")[2]
    return found


# WebFetch first asks api.anthropic.com whether a domain is safe; behind the bridge (or
# offline) that fails and WebFetch gives up ("Unable to verify if domain … is safe to
# fetch"). This Claude Code setting skips the check; `--settings` adds it for this run only
# (a user's own `--settings` wins: Claude Code takes one).
CLAUDE_SETTINGS = '{"skipWebFetchPreflight":true}'


def claude_argv(args: Sequence[str], *, yolo: bool, statusline: bool = False) -> list[str]:
    """``claude``'s argv: the user's arguments verbatim, ``--yolo`` made explicit, and one
    ``--settings`` with :data:`CLAUDE_SETTINGS` (and, with ``statusline``, the gateway's
    status line: ``glmbridge-server statusline``, which finds the bridge and its token in
    Claude Code's environment), unless the user passes ``--settings``: Claude Code takes
    only one."""
    flag = "--dangerously-skip-permissions"
    extra = [flag] if yolo and flag not in args else []
    own = any(a == "--settings" or a.startswith("--settings=") for a in args)
    if not own:
        settings: dict[str, Any] = json.loads(CLAUDE_SETTINGS)
        if statusline:
            command = f"{shlex.quote(sys.executable)} -m glmbridge_server statusline"
            settings["statusLine"] = {"type": "command", "command": command}
        extra += ["--settings", json.dumps(settings, separators=(",", ":"))]
    return ["claude", *extra, *args]


def _env(run: Run) -> dict[str, str]:
    models = fetch_models(run.target)
    window = context_window(models, run.args, run.environ, run.table)
    return claude_env(run.environ, run.target.url, run.token, models, window)


def _argv(run: Run) -> list[str]:
    return claude_argv(run.args, yolo="--yolo" in run.flags, statusline="--statusline" in run.flags)


def _projects(environ: Mapping[str, str]) -> Path:
    """Where Claude Code keeps its conversations (one folder per working directory)."""
    config = environ.get("CLAUDE_CONFIG_DIR")
    base = Path(config).expanduser() if config else Path(environ.get("HOME", "~")) / ".claude"
    return base.expanduser() / "projects"


def _session_since(projects: Path, cwd: Path, since: float) -> str | None:
    """The id of the conversation Claude Code saved for ``cwd`` since ``since``, if any.

    Claude Code names the folder after the directory with every character but ASCII
    letters and digits replaced by ``-`` (a long name is cut, with a hash appended).
    """
    slug = "".join(c if c.isascii() and c.isalnum() else "-" for c in str(cwd))
    try:
        folders = [p for p in projects.iterdir() if p.name == slug or
                   (len(slug) > 200 and p.name.startswith(slug[:200]))]  # fmt: skip
        files = [f for d in folders for f in d.glob("*.jsonl")]
        recent = [(f.stat().st_mtime, f.stem) for f in files if f.stat().st_mtime >= since]
    except OSError:
        return None
    return max(recent)[1] if recent else None


def resume_line(run: Run) -> list[str]:
    """After Claude Code exits: the command that resumes its conversation through the bridge."""
    session = _session_since(_projects(run.environ), run.cwd, run.started)
    if session is None:
        return []
    again = command_line(run, ["--resume", session], rest=False)
    return [f"resume this conversation through glmbridge with: {again}"]


def _skips_permissions(run: Run) -> bool:
    args = run.args
    mode = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--permission-mode"]
    mode += [a.partition("=")[2] for a in args if a.startswith("--permission-mode=")]
    return (
        "--yolo" in run.flags
        or "--dangerously-skip-permissions" in args
        or ("bypassPermissions" in mode)
    )


def root_hints(run: Run) -> list[str]:
    """Claude Code (2.1) refuses to skip permissions as root unless told it runs in a
    sandbox (``IS_SANDBOX=1``): the command with that consent, for a container or VM."""
    sandboxed = run.environ.get("IS_SANDBOX") == "1" or run.environ.get("CLAUDE_CODE_BUBBLEWRAP")
    if os.geteuid() != 0 or sandboxed or not _skips_permissions(run):
        return []
    again = command_line(run, run.args)
    return [
        "Claude Code refuses to skip permissions (--yolo) as root outside a sandbox; in a "
        f"container or VM meant for it, consent with: IS_SANDBOX=1 {again}"
    ]


CLAUDE = Client(
    command="claude",
    package="@anthropic-ai/claude-code",
    usage="glmbridge-server claude [--mock] [--yolo] [--statusline] [--port N] [--] "
    "[claude args...]\n\n"
    "Start Claude Code on glmbridge: reuse the glmbridge on the port if it serves what this\n"
    "environment asks for, else start one in the background (log and pid file in\n"
    "$GLMBRIDGE_STATE_DIR, default ~/.local/state/glmbridge), then run claude.\n\n"
    "  --mock     answer from the built-in GLM simulator (no API key; see docs/simulator.md)\n"
    "  --yolo     pass --dangerously-skip-permissions to claude\n"
    "  --statusline  show the gateway's status line in Claude Code (model, queue, quota)\n"
    "  --port N   the server's port (default 4567, or GLMBRIDGE_PORT)\n"
    "Every other argument goes to claude verbatim (claude's own help: claude -- --help).\n"
    "In a terminal the launcher waits for claude, then prints the command that resumes the\n"
    "conversation through glmbridge (claude's own `claude --resume` hint would bypass it).",
    argv=_argv,
    env=_env,
    flags=("--yolo", "--statusline"),
    hints=root_hints,
    after=resume_line,
)
