"""``glmbridge-server claude | codex | gemini``: a client on GLM in one command.

``<client> [--mock] [--yolo] [--port N] [--] [client args…]`` finds a glmbridge on the port
(it asks ``/health`` and checks ``"service": "glmbridge"``, so another program on the port
is never mistaken for it) or starts one in the background, then replaces itself with the
client (``execve``: no shell, arguments passed through verbatim) with the environment
pointing the client at the bridge. What differs between the clients is a small table each
(:class:`~glmbridge_server.launch.client.Client`: :mod:`~glmbridge_server.launch.claude`,
:mod:`~glmbridge_server.launch.codex`, :mod:`~glmbridge_server.launch.gemini_cli`),
including the one-line fixes printed before a client's own refusal that the launcher can
foresee, and, for Claude Code in a terminal, the line printed after it exits (the launcher
then runs it as a child instead of becoming it).

A running server is reused only when it serves what this environment asks for: the mock
for ``--mock`` (or ``GLMBRIDGE_MOCK``), else the same upstream with the same number of
keys (an environment without keys reuses a server that has some). Otherwise a server the
launcher started is restarted with this environment, and any other one is refused with the
commands to run; a mock or keyless server is never used silently in place of GLM.

A background server keeps a pid and a log file (:mod:`glmbridge_server.launch.background`);
``status`` and ``stop`` (:mod:`glmbridge_server.launch.control`) use that pid file.

Exit codes: the client's status (the launcher becomes or waits for the client); 127 when
the client is not installed; 1 when the port belongs to another program or the server
cannot be started or used; 2 for usage errors.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmbridge_server.launch.background import (
    LauncherError,
    Mode,
    Target,
    fetch_config,
    probe,
    read_pid_file,
    start_background,
    state_dir,
    terminate,
)
from glmbridge_server.launch.claude import CLAUDE
from glmbridge_server.launch.client import Client, Run
from glmbridge_server.launch.codex import CODEX
from glmbridge_server.launch.gemini_cli import GEMINI
from glmbridge_server.settings import (
    SettingsError,
    key_warnings,
    keys_fingerprint,
    load_settings,
    route_table,
)

__all__ = ["CLIENTS", "launch", "main_claude", "main_codex", "main_gemini", "parse", "report",
           "target_of", "usage"]  # fmt: skip

CLIENTS: dict[str, Client] = {c.command: c for c in (CLAUDE, CODEX, GEMINI)}
"""The clients the launcher runs, by subcommand."""


@dataclass(slots=True)
class Options:
    """The launcher's own options (before the client's arguments)."""

    mock: bool = False
    help: bool = False
    port: str | None = None
    flags: set[str] = field(default_factory=set)


def parse(args: Sequence[str], flags: Sequence[str] | None) -> tuple[Options, list[str]]:
    """Leading launcher options → ``(options, rest)``; parsing stops at the first other word.

    ``flags`` are the client's own launcher flags (``None``: a command without a client,
    which takes only ``--port`` and ``--help``). ``--help`` is the launcher's only when it
    comes before any client argument.
    """
    passthrough = flags is not None
    own = {"--yolo", *(flags or ())}
    opts, i = Options(), 0
    while i < len(args):
        arg = args[i]
        if passthrough and arg in own:
            opts.flags.add(arg)
        elif arg == "--mock" and passthrough:
            opts.mock = True
        elif arg in ("-h", "--help"):
            opts.help = True
            return opts, []
        elif arg == "--port" and i + 1 < len(args):
            i += 1
            opts.port = args[i]
        elif arg.startswith("--port="):
            opts.port = arg.partition("=")[2]
        elif arg == "--" and passthrough:
            i += 1
            break
        elif passthrough:
            break
        else:
            raise LauncherError(f"glmbridge-server: unexpected argument {arg!r}", 2)
        i += 1
    return opts, list(args[i:])


def usage(text: str) -> int:
    """Print a command's ``--help`` text."""
    print(f"usage: {text}")
    return 0


def target_of(port: str | None, *, mock: bool = False) -> Target:
    """The server this environment (and ``--port``, ``--mock``) means."""
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise LauncherError(f"glmbridge-server: --port must be 1-65535, not {port!r}", 2)
    cli: dict[str, object] = {"port": port} if port else {}
    if mock:
        cli["mock"] = True
    try:
        settings = load_settings(cli)
    except SettingsError as exc:
        raise LauncherError(f"glmbridge-server: configuration error: {exc}", 2) from None
    if settings.port == 0:
        raise LauncherError("glmbridge-server: the launcher needs a fixed port, not 0", 2)
    return Target(settings, settings.port)


def report(exc: LauncherError) -> int:
    """Print the problem; the exit status to use."""
    print(exc, file=sys.stderr)
    return exc.status


def _executable(client: Client) -> str:
    executable = shutil.which(client.command)
    if executable is None:
        raise LauncherError(
            f"glmbridge-server: `{client.command}` is not on PATH. Install it with: "
            f"npm install -g {client.package}",
            127,
        )
    return executable


def _bridge(target: Target, command: str) -> tuple[dict[str, Any], str]:
    """The bridge to use (reused, restarted or started in the background), and how.

    Raises:
        LauncherError: the running server is not what the environment asks for and the
            launcher did not start it, or there is nothing to start (no key, no mock).
    """
    wanted = Mode.of_settings(target.settings)
    health = probe(target)
    if health is not None:
        running = Mode.of_health(health)
        why = _difference(target, running, wanted)
        if why is None:
            return health, "using the running glmbridge"
        pid = health.get("pid")
        info = read_pid_file(target.pid_file)
        if not (wanted.mock or wanted.keys) or info is None or info["pid"] != pid:
            raise _mismatch(target, command, running, wanted, f"(pid {pid}) {why}")
        print(f"glmbridge: the glmbridge on port {target.port} {why}: restarting it",
              file=sys.stderr)  # fmt: skip
        terminate(int(info["pid"]))
        target.pid_file.unlink(missing_ok=True)
    elif not (wanted.mock or wanted.keys):
        raise LauncherError(
            "glmbridge-server: no API key configured. Set ZAI_API_KEY (comma-separated for a "
            f"key pool), or try the built-in simulator: glmbridge-server {command} --mock"
        )
    how = "restarted" if health is not None else "started"
    health = start_background(target)
    return health, f"{how} glmbridge in the background (log: {target.log_file})"


def _difference(target: Target, running: Mode, wanted: Mode) -> str | None:
    """How the running server differs from what the environment asks for (``None``: no
    difference). Same mode, upstream and key count, but other keys, is a difference too
    (the keys were rotated): ``GET /config`` gives their fingerprint, never the keys."""
    if not running.serves(wanted):
        return f"serves {running.describe()}, but this environment asks for {wanted.describe()}"
    if wanted.keys:
        theirs = fetch_config(target).get("api_keys")
        fingerprint = theirs.get("fingerprint") if isinstance(theirs, dict) else None
        if fingerprint != keys_fingerprint(target.settings.api_keys):
            return (
                f"serves {running.describe()}, but other keys than this environment's "
                "(ZAI_API_KEY changed?)"
            )
    return None


def _mismatch(target: Target, command: str, running: Mode, wanted: Mode, why: str) -> LauncherError:
    """The refusal to use a server that is not what the environment asks for."""
    port = f" --port {target.port}" if target.port != 4567 else ""
    head = f"glmbridge-server: the glmbridge on port {target.port} {why}"
    if not (wanted.mock or wanted.keys):
        mock = "keep using the mock" if running.mock else "try the built-in simulator"
        return LauncherError(
            f"{head}; this environment has no API key. Set ZAI_API_KEY to use GLM, or "
            f"{mock}: glmbridge-server {command}{port} --mock"
        )
    return LauncherError(
        f"{head}, and the launcher did not start it. Stop it where it runs (Ctrl-C in its "
        f"terminal), then run glmbridge-server {command}{port}"
        f"{' --mock' if wanted.mock else ''}; or use another port: "
        f"glmbridge-server {command} --port {target.port + 1}"
    )


def _announce(how: str, target: Target, health: dict[str, Any], hints: Sequence[str]) -> None:
    """What the launcher did, and the hints of the client's table, on stderr."""
    print(f"glmbridge: {how} at {target.url} (pid {health.get('pid')})", file=sys.stderr)
    print(f"glmbridge: serving {Mode.of_health(health).describe()}", file=sys.stderr)
    if health.get("mock"):
        print(
            "glmbridge: MOCK MODE: no API key is used; steer the simulated model with "
            "[[sim:...]] in a prompt (docs/simulator.md), or ask it to `use <tool>`",
            file=sys.stderr,
        )
    for line in hints:
        print(f"glmbridge: {line}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()


def _follow(executable: str, argv: list[str], env: dict[str, str]) -> int:
    """Run the client as a child in this terminal and wait for it; its exit status.

    Like a shell running a foreground job: Ctrl-C and Ctrl-\\ go to the client (the
    terminal sends them to the whole process group), SIGTERM is passed on, and when the
    client stops (Ctrl-Z) the launcher stops too, so the shell's ``fg`` resumes both.
    """
    pid = os.posix_spawn(executable, argv, env)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGQUIT)}
    previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, lambda *_: _signal(pid))
    try:
        while True:
            _, status = os.waitpid(pid, os.WUNTRACED)
            if os.WIFSTOPPED(status):
                os.kill(os.getpid(), signal.SIGSTOP)
                _signal(pid, signal.SIGCONT)
                continue
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code  # killed by a signal: 128 + its number
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _signal(pid: int, signum: int = signal.SIGTERM) -> None:
    """Pass a signal on to the client (gone already: nothing to do)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def launch(client: Client, args: Sequence[str]) -> int:
    """``glmbridge-server <client>``: returns only on failure or, when the client has lines
    for after its exit and runs in a terminal, with its exit status (otherwise the launcher
    *is* the client)."""
    try:
        opts, rest = parse(args, client.flags)
        if opts.help:
            return usage(client.usage)
        target = target_of(opts.port, mock=opts.mock)
        for line in key_warnings(() if opts.mock else target.settings.api_keys):
            print(f"glmbridge: {line}", file=sys.stderr)
        executable = _executable(client)
        health, how = _bridge(target, client.command)
        table = route_table(target.settings.models, target.settings.upstreams)
        run = Run(tuple(rest), target, table, os.environ, Path.cwd(), state_dir(),
                  frozenset(opts.flags), time.time(), client.command)  # fmt: skip
        argv, env = client.argv(run), client.env(run)
        hints = client.hints(run)
    except LauncherError as exc:
        return report(exc)
    _announce(how, target, health, hints)
    if client.after is None or not (sys.stdin.isatty() and sys.stdout.isatty()):
        os.execve(executable, argv, env)
    status = _follow(executable, argv, env)
    for line in client.after(run):
        print(f"glmbridge: {line}", file=sys.stderr)
    return status


def main_claude(args: Sequence[str]) -> int:
    """``glmbridge-server claude``: Claude Code on glmbridge."""
    return launch(CLAUDE, args)


def main_codex(args: Sequence[str]) -> int:
    """``glmbridge-server codex``: Codex CLI on glmbridge."""
    return launch(CODEX, args)


def main_gemini(args: Sequence[str]) -> int:
    """``glmbridge-server gemini``: gemini-cli on glmbridge."""
    return launch(GEMINI, args)
