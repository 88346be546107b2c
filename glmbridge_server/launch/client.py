"""What the launcher knows about one client: a small table (:class:`Client`) per program.

The launcher (:mod:`glmbridge_server.launch.launcher`) does the same for every client: parse
its own options, find or start the bridge, then replace itself with the client. What differs
is in the client's table: the executable and where to get it, the launcher flags it takes,
how its command line and environment point it at the bridge (and the settings file it
writes, if any), and the one-line hints for the client's own refusals that the launcher can
foresee (a consent the client asks for, which the user gives with one flag).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmbridge.routing import RouteTable
from glmbridge_server.launch.background import Target

DEFAULT_PORT = 4567

__all__ = ["Client", "Run", "command_line", "no_hints", "read_json"]


@dataclass(frozen=True, slots=True)
class Run:
    """One launch: what a client's table builds its command line and environment from."""

    args: tuple[str, ...]
    """The client's own arguments, verbatim (everything after the launcher's options)."""
    target: Target
    """The bridge (its URL, port and the settings of this environment)."""
    table: RouteTable
    """The routing table of this environment's settings."""
    environ: Mapping[str, str]
    """The launcher's environment, which the client inherits."""
    cwd: Path
    """The directory the client starts in."""
    state: Path
    """glmbridge's state directory (background server files, settings files it writes)."""
    flags: frozenset[str] = frozenset()
    """The launcher flags given (``--yolo``, ``--statusline``)."""
    started: float = 0.0
    """When the launch began (``time.time()``)."""
    command: str = ""
    """The launcher's subcommand (``claude``, ``codex``, ``gemini``)."""

    @property
    def token(self) -> str | None:
        """The bridge's auth token, if it has one."""
        return self.target.settings.auth_token


def command_line(run: Run, args: Sequence[str], *, rest: bool = True) -> str:
    """The launcher command that runs this client again with ``args`` (shell-quoted), with
    this run's ``--port``, ``--mock`` and launcher flags; ``rest``: ``--`` before ``args``."""
    words = ["glmbridge-server", run.command]
    if run.target.port != DEFAULT_PORT:
        words += ["--port", str(run.target.port)]
    if run.target.settings.mock:
        words.append("--mock")
    words += sorted(run.flags)
    return shlex.join([*words, *(["--"] if rest else []), *args])


def read_json(path: Path) -> dict[str, Any]:
    """A client's JSON settings file as a dict (``{}`` when missing or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def no_hints(run: Run) -> list[str]:
    """A client whose refusals the launcher cannot foresee."""
    return []


@dataclass(frozen=True, slots=True)
class Client:
    """One client the launcher runs, in the terms the launcher needs."""

    command: str
    """The launcher's subcommand, and the name of the client's executable."""
    package: str
    """The npm package that installs it (for the "not on PATH" message)."""
    usage: str
    """The ``--help`` text, starting with the synopsis."""
    argv: Callable[[Run], list[str]]
    """The client's argv (``argv[0]`` is its name): launcher flags translated, then the
    user's arguments verbatim."""
    env: Callable[[Run], dict[str, str]]
    """The client's environment: the caller's, pointed at the bridge (it may write a
    settings file under ``run.state`` and point at it)."""
    flags: tuple[str, ...] = ("--yolo",)
    """Launcher flags (besides ``--mock`` and ``--port``) taken before the client's arguments."""
    hints: Callable[[Run], list[str]] = no_hints
    """Lines for the user before the client starts: the fix for a refusal that is coming."""
    after: Callable[[Run], list[str]] | None = None
    """Lines for the user after the client exits. With it, in a terminal the launcher
    waits for the client instead of becoming it."""
