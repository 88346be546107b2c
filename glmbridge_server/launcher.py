"""``glmbridge-server claude``, ``status`` and ``stop``: Claude Code on GLM in one command.

``claude [--yolo] [--port N] [--] [claude args…]`` finds a glmbridge on the port (it asks
``/health`` and checks ``"service": "glmbridge"``, so another program on the port is never
mistaken for it) or starts one in the background, then replaces itself with ``claude``
(``execve``: no shell, arguments passed through verbatim) with the environment pointing
Claude Code at the bridge.

A background server writes its output to ``<state dir>/server-<port>.log`` and its pid to
``server-<port>.pid``; the state dir is ``$GLMBRIDGE_STATE_DIR``, else
``$XDG_STATE_HOME/glmbridge``, else ``~/.local/state/glmbridge``. ``status`` and ``stop``
use that pid file, and ``stop`` only signals a pid that the server on the port confirms
as its own.

Exit codes: ``claude`` exits with Claude Code's status (it becomes Claude Code); 127 when
``claude`` is not installed; 1 when the port belongs to another program or the server
cannot be started or used; 2 for usage errors. ``status``: 0 running, 3 not running,
1 another program on the port. ``stop``: 0 stopped or nothing to stop, 1 refused.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from glmbridge_server.settings import Settings, SettingsError, load_settings, route_table

__all__ = [
    "claude_argv",
    "claude_env",
    "main_claude",
    "main_codex",
    "main_gemini",
    "main_status",
    "main_stop",
    "state_dir",
]

API_TIMEOUT_MS = "3000000"  # 50 minutes: GLM may think for a long time before answering
PLACEHOLDER_TOKEN = "glmbridge"  # Claude Code wants some token even when the bridge has none
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


class LauncherError(Exception):
    """A problem to report to the user, with the exit status to use."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where background servers keep their pid and log files."""
    env = os.environ if environ is None else environ
    if env.get("GLMBRIDGE_STATE_DIR"):
        return Path(env["GLMBRIDGE_STATE_DIR"]).expanduser()
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "glmbridge"


@dataclass(frozen=True, slots=True)
class Target:
    """The server the launcher talks to."""

    settings: Settings
    port: int

    @property
    def host(self) -> str:
        """Where to connect: the bound address, or loopback for a wildcard bind."""
        host = self.settings.host.strip("[]")
        return "127.0.0.1" if self.settings.is_wildcard else host

    @property
    def url(self) -> str:
        """The base URL clients use."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        """The pid file of a background server on this port."""
        return state_dir() / f"server-{self.port}.pid"

    @property
    def log_file(self) -> Path:
        """The log file of a background server on this port."""
        return state_dir() / f"server-{self.port}.log"

    def headers(self) -> dict[str, str]:
        """Request headers carrying the auth token, if there is one."""
        token = self.settings.auth_token
        return {"x-api-key": token} if token else {}


def probe(target: Target, timeout: float = 2.0) -> dict[str, Any] | None:
    """``/health`` of the glmbridge on the port; ``None`` when nothing listens there.

    Raises:
        LauncherError: something else answers on the port.
    """
    try:
        response = httpx2.get(f"{target.url}/health", timeout=timeout, trust_env=False)
    except httpx2.ConnectError:
        return None
    except httpx2.HTTPError as exc:
        raise _foreign(
            target, f"its /health did not answer properly ({type(exc).__name__})"
        ) from None
    try:
        health = response.json()
    except ValueError:
        health = None
    if response.status_code != 200 or not isinstance(health, dict):
        raise _foreign(target, f"its /health answered HTTP {response.status_code}")
    if health.get("service") != "glmbridge":
        raise _foreign(target, "its /health does not identify it as glmbridge")
    return health


def _foreign(target: Target, why: str) -> LauncherError:
    return LauncherError(
        f"glmbridge-server: port {target.port} is used by another program ({why}); "
        "stop it or choose another port with --port N"
    )


def _read_pid_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    return stat.rpartition(")")[2].split()[0] != "Z"


def _looks_like_our_server(pid: int) -> bool:
    """Whether ``pid``'s command line is ``… -m glmbridge_server serve …`` (Linux only)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"glmbridge_server" in argv and b"serve" in argv


def start_background(target: Target) -> dict[str, Any]:
    """Start ``python -m glmbridge_server serve --port N`` detached; wait for ``/health``."""
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(target.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} started by the launcher\n".encode())
        log.flush()
        process = subprocess.Popen(
            [sys.executable, "-m", "glmbridge_server", "serve", "--port", str(target.port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the terminal's process group
            close_fds=True,
        )
    info = {"pid": process.pid, "port": target.port, "log": str(target.log_file)}
    target.pid_file.write_text(json.dumps(info), encoding="utf-8")
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        health = probe(target, timeout=1.0)
        if health is not None:
            return health  # ours, or one another launcher started a moment earlier
        if process.poll() is not None:
            target.pid_file.unlink(missing_ok=True)
            raise LauncherError(
                f"glmbridge-server: the background server exited ({process.returncode}); "
                f"last lines of {target.log_file}:\n{_tail(target.log_file)}"
            )
        time.sleep(0.1)
    raise LauncherError(f"glmbridge-server: the server did not answer within {_START_TIMEOUT} s")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def fetch_models(target: Target) -> dict[str, str]:
    """The running server's effective model map (``GET /config``)."""
    response = httpx2.get(
        f"{target.url}/config", headers=target.headers(), timeout=5.0, trust_env=False
    )
    if response.status_code == 401:
        raise LauncherError(
            f"glmbridge-server: the glmbridge on port {target.port} requires an auth token; "
            "set GLMBRIDGE_AUTH_TOKEN to the token it was started with"
        )
    if response.status_code != 200:
        raise LauncherError(f"glmbridge-server: GET /config answered {response.status_code}")
    models = response.json().get("effective_models")
    if not isinstance(models, dict):
        raise LauncherError("glmbridge-server: GET /config has no effective_models")
    return {str(k): str(v) for k, v in models.items()}


def claude_env(
    base: Mapping[str, str], url: str, token: str | None, models: Mapping[str, str]
) -> dict[str, str]:
    """Claude Code's environment: the caller's, pointed at the bridge."""
    env = dict(base)
    # A real Anthropic key must not be sent to the bridge (nor clash with the token).
    env.pop("ANTHROPIC_API_KEY", None)
    env.update(
        ANTHROPIC_BASE_URL=url,
        ANTHROPIC_AUTH_TOKEN=token or PLACEHOLDER_TOKEN,
        ANTHROPIC_DEFAULT_OPUS_MODEL=models["opus"],
        ANTHROPIC_DEFAULT_SONNET_MODEL=models["sonnet"],
        ANTHROPIC_DEFAULT_HAIKU_MODEL=models["haiku"],
        API_TIMEOUT_MS=API_TIMEOUT_MS,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    return env


def claude_argv(args: Sequence[str], *, yolo: bool, statusline: bool = False) -> list[str]:
    """``claude``'s argv: the user's arguments verbatim, ``--yolo`` made explicit, and with
    ``statusline`` the gateway's status line (``glmbridge-server statusline``, which finds
    the bridge and its token in Claude Code's environment) through ``--settings``."""
    flag = "--dangerously-skip-permissions"
    extra = [flag] if yolo and flag not in args else []
    if statusline:
        command = f"{shlex.quote(sys.executable)} -m glmbridge_server statusline"
        settings = {"statusLine": {"type": "command", "command": command}}
        extra += ["--settings", json.dumps(settings)]
    return ["claude", *extra, *args]


def take_flag(args: Sequence[str], flag: str) -> tuple[bool, list[str]]:
    """Remove a launcher ``flag`` given among the leading launcher options."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == flag:
            return True, [*args[:i], *args[i + 1 :]]
        if arg == "--port":
            i += 2
            continue
        if arg == "--" or not arg.startswith("--"):
            break
        i += 1
    return False, list(args)


def _parse(args: Sequence[str], *, passthrough: bool) -> tuple[bool, str | None, list[str]]:
    """Leading launcher options → ``(yolo, port, rest)``; parsing stops at the first other word."""
    yolo, port, i = False, None, 0
    while i < len(args):
        arg = args[i]
        if arg == "--yolo" and passthrough:
            yolo = True
        elif arg == "--port" and i + 1 < len(args):
            i += 1
            port = args[i]
        elif arg.startswith("--port="):
            port = arg.partition("=")[2]
        elif arg == "--" and passthrough:
            i += 1
            break
        elif passthrough:
            break
        else:
            raise LauncherError(f"glmbridge-server: unexpected argument {arg!r}", 2)
        i += 1
    return yolo, port, list(args[i:])


def _target(port: str | None) -> Target:
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise LauncherError(f"glmbridge-server: --port must be 1-65535, not {port!r}", 2)
    try:
        settings = load_settings({"port": port} if port else {})
    except SettingsError as exc:
        raise LauncherError(f"glmbridge-server: configuration error: {exc}", 2) from None
    if settings.port == 0:
        raise LauncherError("glmbridge-server: the launcher needs a fixed port, not 0", 2)
    return Target(settings, settings.port)


def _report(exc: LauncherError) -> int:
    print(exc, file=sys.stderr)
    return exc.status


def _client(name: str, install: str) -> str:
    executable = shutil.which(name)
    if executable is None:
        raise LauncherError(
            f"glmbridge-server: `{name}` is not on PATH. Install it with: npm install -g {install}",
            127,
        )
    return executable


def _bridge(target: Target) -> tuple[dict[str, Any], str]:
    """The running bridge's health (started in the background if needed), and how."""
    health = probe(target)
    if health is not None:
        return health, "using the running glmbridge"
    return start_background(target), f"started glmbridge in the background (log: {target.log_file})"


def _become(executable: str, argv: list[str], env: dict[str, str], how: str, target: Target,
            health: dict[str, Any]) -> int:  # fmt: skip
    print(f"glmbridge: {how} at {target.url} (pid {health.get('pid')})", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(executable, argv, env)
    return 1  # not reached


def main_claude(args: Sequence[str]) -> int:
    """``glmbridge-server claude``: returns only on failure (on success it *is* Claude Code)."""
    try:
        statusline, args = take_flag(args, "--statusline")
        yolo, port, rest = _parse(args, passthrough=True)
        target = _target(port)
        executable = _client("claude", "@anthropic-ai/claude-code")
        health, how = _bridge(target)
        env = claude_env(os.environ, target.url, target.settings.auth_token, fetch_models(target))
    except LauncherError as exc:
        return _report(exc)
    argv = claude_argv(rest, yolo=yolo, statusline=statusline)
    return _become(executable, argv, env, how, target, health)


def main_codex(args: Sequence[str]) -> int:
    """``glmbridge-server codex``: returns only on failure (on success it *is* Codex CLI).

    Codex gets a ``glmbridge`` provider through ``-c`` overrides (see
    :mod:`glmbridge_server.codex`); ``--yolo`` is not translated (Codex's own flag is
    ``--dangerously-bypass-approvals-and-sandbox``).
    """
    from glmbridge_server.codex import codex_argv, codex_env

    try:
        _, port, rest = _parse(args, passthrough=True)
        target = _target(port)
        executable = _client("codex", "@openai/codex")
        health, how = _bridge(target)
        table = route_table(target.settings.models, target.settings.upstreams)
        argv = codex_argv(rest, target.url, table.default_model)
        env = codex_env(os.environ, target.settings.auth_token)
    except LauncherError as exc:
        return _report(exc)
    return _become(executable, argv, env, how, target, health)


def main_gemini(args: Sequence[str]) -> int:
    """``glmbridge-server gemini``: returns only on failure (on success it *is* gemini-cli).

    See :mod:`glmbridge_server.gemini_cli` for the environment and settings it gets.
    """
    from glmbridge_server.gemini_cli import gemini_env

    try:
        _, port, rest = _parse(args, passthrough=True)
        target = _target(port)
        executable = _client("gemini", "@google/gemini-cli")
        health, how = _bridge(target)
        table = route_table(target.settings.models, target.settings.upstreams)
        env = gemini_env(os.environ, target.url, target.settings.auth_token, table,
                         state_dir())  # fmt: skip
    except LauncherError as exc:
        return _report(exc)
    return _become(executable, ["gemini", *rest], env, how, target, health)


def main_status(args: Sequence[str]) -> int:
    """``glmbridge-server status [--port N]``."""
    try:
        _, port, _ = _parse(args, passthrough=False)
        target = _target(port)
        info = _read_pid_file(target.pid_file)
        health = probe(target)
    except LauncherError as exc:
        return _report(exc)
    if health is not None:
        pid = health.get("pid")
        ours = info is not None and info["pid"] == pid
        origin = "started by the launcher" if ours else "not started by the launcher"
        print(
            f"glmbridge {health.get('version')} is running at {target.url} (pid {pid}, {origin}); "
            f"upstream {health.get('upstream')}, {health.get('keys')} key(s), "
            f"{health.get('keys_healthy')} healthy"
            + (f"; log: {info.get('log')}" if ours and info else "")
        )
        return 0
    if info is not None and not process_alive(info["pid"]):
        target.pid_file.unlink(missing_ok=True)
        print(f"glmbridge is not running on port {target.port} (removed a stale pid file)")
        return 3
    print(f"glmbridge is not running on port {target.port}")
    return 3


def main_stop(args: Sequence[str]) -> int:
    """``glmbridge-server stop [--port N]``: stop the background server the launcher started."""
    try:
        _, port, _ = _parse(args, passthrough=False)
        target = _target(port)
        info = _read_pid_file(target.pid_file)
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
        if not (health and health.get("pid") == pid) and not _looks_like_our_server(pid):
            target.pid_file.unlink(missing_ok=True)
            raise LauncherError(
                f"glmbridge-server: pid {pid} is not the glmbridge on port {target.port}; "
                "removed the stale pid file and stopped nothing"
            )
    except LauncherError as exc:
        return _report(exc)
    _terminate(pid)
    target.pid_file.unlink(missing_ok=True)
    print(f"stopped glmbridge (pid {pid}) on port {target.port}")
    return 0


def _terminate(pid: int) -> None:
    """SIGTERM (graceful: running streams get a few seconds), then SIGKILL if needed."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
