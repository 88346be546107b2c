"""``glmbridge-server claude``, ``status`` and ``stop``: Claude Code on GLM in one command.

``claude [--mock] [--yolo] [--port N] [--] [claude args…]`` finds a glmbridge on the port (it
asks ``/health`` and checks ``"service": "glmbridge"``, so another program on the port is
never mistaken for it) or starts one in the background, then replaces itself with ``claude``
(``execve``: no shell, arguments passed through verbatim) with the environment pointing
Claude Code at the bridge.

A running server is reused only when it serves what this environment asks for: the mock
for ``--mock`` (or ``GLMBRIDGE_MOCK``), else the same upstream with the same number of
keys (an environment without keys reuses a server that has some). Otherwise a server the
launcher started is restarted with this environment, and any other one is refused with the
commands to run; a mock or keyless server is never used silently in place of GLM.

A background server keeps a pid and a log file (:mod:`glmbridge_server.launch.background`);
``status`` and ``stop`` use that pid file, and ``stop`` only signals a pid that the server
on the port confirms as its own.

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
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2

from glmbridge import ir
from glmbridge.routing import RouteTable, model_info, normalize_model_name, resolve_route
from glmbridge_server.launch.background import (
    LauncherError,
    Mode,
    Target,
    looks_like_our_server,
    probe,
    process_alive,
    read_pid_file,
    start_background,
    state_dir,
    terminate,
)
from glmbridge_server.settings import SettingsError, keys_fingerprint, load_settings, route_table

__all__ = [
    "claude_argv",
    "claude_env",
    "context_window",
    "main_claude",
    "main_codex",
    "main_gemini",
    "main_status",
    "main_stop",
    "model_env",
    "process_alive",
    "state_dir",
]

API_TIMEOUT_MS = "3000000"  # 50 minutes: GLM may think for a long time before answering
PLACEHOLDER_TOKEN = "glmbridge"  # Claude Code wants some token even when the bridge has none


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


@dataclass(slots=True)
class _Options:
    yolo: bool = False
    mock: bool = False
    help: bool = False
    port: str | None = None


def _parse(args: Sequence[str], *, passthrough: bool) -> tuple[_Options, list[str]]:
    """Leading launcher options → ``(options, rest)``; parsing stops at the first other word.

    ``--help`` is the launcher's only when it comes before any client argument.
    """
    opts, i = _Options(), 0
    while i < len(args):
        arg = args[i]
        if arg == "--yolo" and passthrough:
            opts.yolo = True
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


_USAGE = {
    "claude": "glmbridge-server claude [--mock] [--yolo] [--statusline] [--port N] [--] "
    "[claude args...]\n\n"
    "Start Claude Code on glmbridge: reuse the glmbridge on the port if it serves what this\n"
    "environment asks for, else start one in the background (log and pid file in\n"
    "$GLMBRIDGE_STATE_DIR, default ~/.local/state/glmbridge), then run claude.\n\n"
    "  --mock     answer from the built-in GLM simulator (no API key; see docs/simulator.md)\n"
    "  --yolo     pass --dangerously-skip-permissions to claude\n"
    "  --statusline  show the gateway's status line in Claude Code (model, queue, quota)\n"
    "  --port N   the server's port (default 4567, or GLMBRIDGE_PORT)\n"
    "Every other argument goes to claude verbatim (claude's own help: claude -- --help).",
    "codex": "glmbridge-server codex [--mock] [--port N] [--] [codex args...]\n\n"
    "Start Codex CLI on glmbridge (a background server if needed; see `claude --help`).",
    "gemini": "glmbridge-server gemini [--mock] [--port N] [--] [gemini args...]\n\n"
    "Start gemini-cli on glmbridge (a background server if needed; see `claude --help`).",
    "status": "glmbridge-server status [--port N]\n\n"
    "Show the glmbridge on the port: pid, mode (mock or GLM), upstream, number of API keys\n"
    "(never the keys), whether the launcher started it, and its log file.\n"
    "Exit status: 0 running, 3 not running, 1 another program on the port.",
    "stop": "glmbridge-server stop [--port N]\n\n"
    "Stop the background glmbridge the launcher started on the port (SIGTERM: open\n"
    "streams end with an error event). A server started by hand is stopped where it runs.\n"
    "Exit status: 0 stopped or nothing to stop, 1 refused.",
}


def _usage(command: str) -> int:
    print(f"usage: {_USAGE[command]}")
    return 0


def _target(port: str | None, *, mock: bool = False) -> Target:
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


def _mismatch(
    target: Target, command: str, running: Mode, wanted: Mode, why: str
) -> LauncherError:
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


def _become(executable: str, argv: list[str], env: dict[str, str], how: str, target: Target,
            health: dict[str, Any]) -> int:  # fmt: skip
    print(f"glmbridge: {how} at {target.url} (pid {health.get('pid')})", file=sys.stderr)
    print(f"glmbridge: serving {Mode.of_health(health).describe()}", file=sys.stderr)
    if health.get("mock"):
        print(
            "glmbridge: MOCK MODE: no API key is used; steer the simulated model with "
            "[[sim:...]] in a prompt (docs/simulator.md), or ask it to `use <tool>`",
            file=sys.stderr,
        )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(executable, argv, env)
    return 1  # not reached


def main_claude(args: Sequence[str]) -> int:
    """``glmbridge-server claude``: returns only on failure (on success it *is* Claude Code)."""
    try:
        statusline, args = take_flag(args, "--statusline")
        opts, rest = _parse(args, passthrough=True)
        if opts.help:
            return _usage("claude")
        target = _target(opts.port, mock=opts.mock)
        executable = _client("claude", "@anthropic-ai/claude-code")
        health, how = _bridge(target, "claude")
        models = fetch_models(target)
        table = route_table(target.settings.models, target.settings.upstreams)
        window = context_window(models, rest, os.environ, table)
        env = claude_env(os.environ, target.url, target.settings.auth_token, models, window)
    except LauncherError as exc:
        return _report(exc)
    argv = claude_argv(rest, yolo=opts.yolo, statusline=statusline)
    return _become(executable, argv, env, how, target, health)


def main_codex(args: Sequence[str]) -> int:
    """``glmbridge-server codex``: returns only on failure (on success it *is* Codex CLI).

    Codex gets a ``glmbridge`` provider through ``-c`` overrides (see
    :mod:`glmbridge_server.launch.codex`); ``--yolo`` is not translated (Codex's own flag is
    ``--dangerously-bypass-approvals-and-sandbox``).
    """
    from glmbridge_server.launch.codex import codex_argv, codex_env

    try:
        opts, rest = _parse(args, passthrough=True)
        if opts.help:
            return _usage("codex")
        target = _target(opts.port, mock=opts.mock)
        executable = _client("codex", "@openai/codex")
        health, how = _bridge(target, "codex")
        table = route_table(target.settings.models, target.settings.upstreams)
        argv = codex_argv(rest, target.url, table.default_model)
        env = codex_env(os.environ, target.settings.auth_token)
    except LauncherError as exc:
        return _report(exc)
    return _become(executable, argv, env, how, target, health)


def main_gemini(args: Sequence[str]) -> int:
    """``glmbridge-server gemini``: returns only on failure (on success it *is* gemini-cli).

    See :mod:`glmbridge_server.launch.gemini_cli` for the environment and settings it gets.
    """
    from glmbridge_server.launch.gemini_cli import gemini_env

    try:
        opts, rest = _parse(args, passthrough=True)
        if opts.help:
            return _usage("gemini")
        target = _target(opts.port, mock=opts.mock)
        executable = _client("gemini", "@google/gemini-cli")
        health, how = _bridge(target, "gemini")
        table = route_table(target.settings.models, target.settings.upstreams)
        env = gemini_env(os.environ, target.url, target.settings.auth_token, table,
                         state_dir())  # fmt: skip
    except LauncherError as exc:
        return _report(exc)
    return _become(executable, ["gemini", *rest], env, how, target, health)


def main_status(args: Sequence[str]) -> int:
    """``glmbridge-server status [--port N]``."""
    try:
        opts, _ = _parse(args, passthrough=False)
        if opts.help:
            return _usage("status")
        target = _target(opts.port)
        info = read_pid_file(target.pid_file)
        health = probe(target)
    except LauncherError as exc:
        return _report(exc)
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
    if ours and info:
        print(f"log: {info.get('log')}")
    wanted = Mode.of_settings(target.settings)
    if not running.serves(wanted):
        then = "restart it" if ours else "refuse it"
        print(f"note: this environment asks for {wanted.describe()}; "
              f"`glmbridge-server claude` would {then}")  # fmt: skip


def main_stop(args: Sequence[str]) -> int:
    """``glmbridge-server stop [--port N]``: stop the background server the launcher started."""
    try:
        opts, _ = _parse(args, passthrough=False)
        if opts.help:
            return _usage("stop")
        target = _target(opts.port)
        info = read_pid_file(target.pid_file)
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
    except LauncherError as exc:
        return _report(exc)
    terminate(pid)
    target.pid_file.unlink(missing_ok=True)
    print(f"stopped glmbridge (pid {pid}) on port {target.port}")
    return 0


