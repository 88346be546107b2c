"""``glmbridge-server status`` and ``stop``: the background server the launcher started.

``status``: 0 running, 3 not running, 1 another program on the port. ``stop`` only signals
a pid that the server on the port confirms as its own: 0 stopped or nothing to stop,
1 refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from glmbridge_server.launch.background import (
    LauncherError,
    Mode,
    Target,
    looks_like_our_server,
    probe,
    process_alive,
    read_pid_file,
    terminate,
)
from glmbridge_server.launch.launcher import parse, report, target_of, usage

__all__ = ["main_status", "main_stop"]

USAGE = {
    "status": "glmbridge-server status [--port N]\n\n"
    "Show the glmbridge on the port: pid, mode (mock or GLM), upstream, number of API keys\n"
    "(never the keys), whether the launcher started it, and its log file.\n"
    "Exit status: 0 running, 3 not running, 1 another program on the port.",
    "stop": "glmbridge-server stop [--port N]\n\n"
    "Stop the background glmbridge the launcher started on the port (SIGTERM: open\n"
    "streams end with an error event). A server started by hand is stopped where it runs.\n"
    "Exit status: 0 stopped or nothing to stop, 1 refused.",
}


def _command(name: str, args: Sequence[str]) -> Target | None:
    """The target of ``status`` / ``stop`` (``None``: ``--help`` was printed)."""
    opts, _ = parse(args, None)
    if opts.help:
        usage(USAGE[name])
        return None
    return target_of(opts.port)


def _run(
    name: str, args: Sequence[str], act: Callable[[Target, dict[str, Any] | None], int]
) -> int:
    """Parse ``args``, then ``act`` on the target and its pid file (``None``: none); a
    :class:`LauncherError` is reported and becomes the exit status."""
    try:
        target = _command(name, args)
        if target is None:
            return 0
        return act(target, read_pid_file(target.pid_file))
    except LauncherError as exc:
        return report(exc)


def main_status(args: Sequence[str]) -> int:
    """``glmbridge-server status [--port N]``."""
    return _run("status", args, _status)


def _status(target: Target, info: dict[str, Any] | None) -> int:
    health = probe(target)
    if health is not None:
        _print_status(target, health, info)
        return 0
    if info is not None and not process_alive(info["pid"]):
        target.pid_file.unlink(missing_ok=True)
        print(f"glmbridge is not running on port {target.port} (removed a stale pid file)")
        return 3
    print(f"glmbridge is not running on port {target.port}")
    return 3


def _print_status(target: Target, health: dict[str, Any], info: dict[str, Any] | None) -> None:
    """The running server, in a few lines: mode, upstream, keys (a count), origin, log."""
    pid = health.get("pid")
    ours = info is not None and info["pid"] == pid
    running = Mode.of_health(health)
    origin = "started by the launcher" if ours else "not started by the launcher"
    print(f"glmbridge {health.get('version')} is running at {target.url} (pid {pid}, {origin})")
    if running.mock:
        print("mode: mock (answers come from the built-in GLM simulator; no API key is used)")
    else:
        print(f"mode: {health.get('mode', 'keys')}")
        print(f"upstream: {running.name} ({running.upstream})")
        print(f"API keys: {running.keys}, {health.get('keys_healthy')} healthy")
    worker = health.get("worker")
    if isinstance(worker, dict) and isinstance(worker.get("count"), int) and worker["count"] > 1:
        print(f"workers: {worker['count']} processes share the port (stop stops them all)")
    if ours and info:
        print(f"log: {info.get('log')}")
    wanted = Mode.of_settings(target.settings)
    if not running.serves(wanted):
        then = "restart it" if ours else "refuse it"
        print(f"note: this environment asks for {wanted.describe()}; "
              f"`glmbridge-server claude` would {then}")  # fmt: skip


def main_stop(args: Sequence[str]) -> int:
    """``glmbridge-server stop [--port N]``: stop the background server the launcher started."""
    return _run("stop", args, _stop)


def _stop(target: Target, info: dict[str, Any] | None) -> int:
    if info is None or not process_alive(info["pid"]):
        target.pid_file.unlink(missing_ok=True)
        health = probe(target)
        if health is not None:
            raise LauncherError(
                f"glmbridge-server: the glmbridge on port {target.port} (pid "
                f"{health.get('pid')}) was not started by the launcher; stop it where it runs"
            )
        print(f"glmbridge is not running on port {target.port}; nothing to stop")
        return 0
    pid = info["pid"]
    try:
        health = probe(target)
    except LauncherError:
        health = None
    if not (health and health.get("pid") == pid) and not looks_like_our_server(pid):
        target.pid_file.unlink(missing_ok=True)
        raise LauncherError(
            f"glmbridge-server: pid {pid} is not the glmbridge on port {target.port}; "
            "removed the stale pid file and stopped nothing"
        )
    terminate(pid)
    target.pid_file.unlink(missing_ok=True)
    print(f"stopped glmbridge (pid {pid}) on port {target.port}")
    return 0
