"""The background server behind the launcher: where it keeps its pid and log, how it is
probed, started, identified and stopped, and the mode (mock or GLM) it serves.

A background server writes its output to ``<state dir>/server-<port>.log`` and its pid to
``server-<port>.pid``; the state dir is ``$GLMBRIDGE_STATE_DIR``, else
``$XDG_STATE_HOME/glmbridge``, else ``~/.local/state/glmbridge``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from glmbridge_server.settings import Settings, redact_url

__all__ = [
    "LauncherError",
    "Mode",
    "Target",
    "fetch_config",
    "fetch_models",
    "probe",
    "process_alive",
    "read_pid_file",
    "start_background",
    "state_dir",
    "terminate",
]

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


@dataclass(frozen=True, slots=True)
class Mode:
    """What a server answers from: the mock, or an upstream with some number of keys.

    ``upstream`` is the upstream's base URL without user info or query (never a secret);
    ``name`` is its label (a profile name, or the URL's host).
    """

    mock: bool
    name: str = ""
    upstream: str = ""
    keys: int = 0

    @classmethod
    def of_settings(cls, settings: Settings) -> Mode:
        """The mode these settings ask for."""
        if settings.mock:
            return cls(mock=True)
        url = redact_url(settings.upstream_base_url)
        return cls(False, settings.upstream_name, url, len(settings.api_keys))

    @classmethod
    def of_health(cls, health: Mapping[str, Any]) -> Mode:
        """The mode a running server reports on ``/health``."""
        if health.get("mock"):
            return cls(mock=True)
        keys = health.get("keys")
        url = health.get("upstream_url")
        name = str(health.get("upstream") or "")
        return cls(False, name, str(url) if url else name, keys if isinstance(keys, int) else 0)

    def describe(self) -> str:
        """``the mock (built-in GLM simulator)`` / ``zai-coding (https://…) with 2 API keys``."""
        if self.mock:
            return "the mock (built-in GLM simulator)"
        keys = f"{self.keys} API key{'' if self.keys == 1 else 's'}" if self.keys else "no API key"
        where = self.name if self.name == self.upstream else f"{self.name} ({self.upstream})"
        return f"{where} with {keys}"

    def serves(self, wanted: Mode) -> bool:
        """Whether a server in this mode gives what ``wanted`` asks for.

        An environment without keys accepts any keyed server on its upstream: the keys live
        in the server (another terminal started it), and that is what the user means.
        """
        if wanted.mock or self.mock:
            return wanted.mock and self.mock
        if self.upstream != wanted.upstream or self.keys == 0:
            return False
        return wanted.keys in (0, self.keys)


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


def fetch_config(target: Target) -> dict[str, Any]:
    """The running server's configuration view (``GET /config``, secrets redacted)."""
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
    config = response.json()
    if not isinstance(config, dict):
        raise LauncherError("glmbridge-server: GET /config is not a JSON object")
    return config


def fetch_models(target: Target) -> dict[str, str]:
    """The running server's effective model map (from ``GET /config``)."""
    models = fetch_config(target).get("effective_models")
    if not isinstance(models, dict):
        raise LauncherError("glmbridge-server: GET /config has no effective_models")
    return {str(k): str(v) for k, v in models.items()}


def read_pid_file(path: Path) -> dict[str, Any] | None:
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


def looks_like_our_server(pid: int) -> bool:
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
        mock = ["--mock"] if target.settings.mock else []
        process = subprocess.Popen(
            [sys.executable, "-m", "glmbridge_server", "serve", "--port", str(target.port), *mock],
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


def terminate(pid: int) -> None:
    """SIGTERM (graceful: running streams get a few seconds), then SIGKILL if needed."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
