"""``glmbridge-server``: run the server (``serve``, the default), or the launcher.

``claude``, ``codex``, ``gemini``, ``status`` and ``stop`` are the launcher
(:mod:`glmbridge_server.launch`); ``usage`` prints the recorded usage and ``statusline`` is
Claude Code's status line command (:mod:`glmbridge_server.launch.statusline`).

The server runs in the foreground until Ctrl-C (or SIGTERM): open answers then end at once
with an error (an error event in a stream), and it exits 0 without a traceback.

Exit codes of ``serve``: 0 after a clean shutdown (Ctrl-C or SIGTERM), 1 when the address cannot
be bound (or, with ``--workers N``, a worker cannot start), 2 for usage and configuration
errors, including a non-loopback address without an auth token and several workers without
Redis (:mod:`glmbridge_server.workers`).
"""

from __future__ import annotations

import argparse
import errno
import json
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from glmbridge_server.logs import (
    JsonFormatter,
    RedactingFormatter,
    configure_logging,
    secrets_of,
)

# Only the standard library at import time: `glmbridge-server statusline` must answer
# within ~50 ms, and the glmbridge package takes longer than that to import.
if TYPE_CHECKING:
    from glmbridge_server.settings import Settings

__all__ = [
    "JsonFormatter",
    "RedactingFormatter",
    "build_parser",
    "configure_logging",
    "main",
    "missing_extra",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``serve`` command line (also used without the ``serve`` word)."""
    parser = argparse.ArgumentParser(
        prog="glmbridge-server",
        description="Serve Z.ai's GLM models to Anthropic Messages, OpenAI Chat and Responses, "
        "and Gemini API clients (Claude Code, Codex CLI, gemini-cli, the SDKs).",
        epilog="API keys: ZAI_API_KEY (comma-separated for a key pool); the default upstream "
        "is Z.ai's GLM Coding Plan (Pro: 2 requests at a time per key); a pay-as-you-go key "
        "needs GLMBRIDGE_UPSTREAM=zai, a Lite or Max plan GLMBRIDGE_PLAN=lite or max. "
        "The server runs in the foreground until Ctrl-C. "
        "Subcommands: serve (default); claude [--mock] [--yolo] [--statusline] [--port N] "
        "[claude args...] (start Claude Code on glmbridge); codex [--mock] [--port N] "
        "[codex args...] (start Codex CLI on glmbridge); gemini [--mock] [--port N] "
        "[gemini args...] (start gemini-cli on glmbridge); status, stop [--port N] (the "
        "background server); each takes --help; usage (recorded usage); statusline (Claude "
        "Code's status line). "
        "Configuration: see docs/configuration.md; security: docs/security.md.",
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", help="port to bind (default 4567; 0 = any free port)")
    parser.add_argument("--config", metavar="FILE", help="TOML config file (or GLMBRIDGE_CONFIG)")
    parser.add_argument(
        "--mock",
        action="store_true",
        default=None,
        help="answer from the built-in GLM simulator (no key needed); steer it with "
        "[[sim:SCENARIO]] in a prompt, e.g. [[sim:tool]], [[sim:error:1302]] (docs/simulator.md)",
    )
    parser.add_argument(
        "--workers",
        help="worker processes on the one port (default 1); more than 1 needs redis_url "
        "(docs/configuration.md)",
    )
    parser.add_argument("--log-level", help="debug, info (default), warning, error")
    parser.add_argument("--log-format", help="text (default) or json")
    from glmbridge._version import __version__

    parser.add_argument("--version", action="version", version=f"glmbridge {__version__}")
    return parser


def _bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """Bind the listening socket ourselves, so ``--port 0`` can report the real port
    (``reuse_port``: one of a group of sockets on one port, :func:`_bind_workers`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    infos = socket.getaddrinfo(host, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM)
    family, _, _, _, address = infos[0] if infos else (family, 0, 0, "", (host, port))
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only
    # then. Without it every small SSE frame waits for the client's delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _bind_workers(host: str, port: int, count: int) -> list[socket.socket]:
    """One listening socket per worker, all on one port (``SO_REUSEPORT``: Linux spreads
    new connections over them), or one socket they all share where ``SO_REUSEPORT`` does
    not spread connections (macOS, BSD: the last socket bound would get them all).

    Why not one shared socket everywhere: every worker's event loop accepts every connection
    waiting on it in one go (asyncio), so a burst of connections (a client pool opening 16)
    all went to one worker. The sockets stay open in the supervisor: connections that arrive
    for a worker being replaced wait for it instead of being refused.
    """
    if not sys.platform.startswith("linux"):
        return [_bind(host, port)]
    if port != 0:  # any program on the port, SO_REUSEPORT or not, makes this fail
        _bind(host, port).close()
    first = _bind(host, port, reuse_port=True)
    port = first.getsockname()[1]
    try:
        return [first, *(_bind(host, port, reuse_port=True) for _ in range(count - 1))]
    except OSError:
        first.close()
        raise


def _announce(settings: Settings, url: str) -> None:
    from glmbridge._version import __version__

    err = sys.stderr
    print(f"glmbridge {__version__} listening on {url}", file=err)
    if settings.mock:
        print(
            "MOCK MODE: answers come from the built-in GLM simulator "
            f"({url}/_mock); no API key is used and nothing leaves this machine.\n"
            "  Drive it from a prompt: ask it to run `ls` or to use a tool by name, or write "
            "[[sim:tool]], [[sim:thinking]], [[sim:error:1302]], [[sim:slow]] ... "
            "(docs/simulator.md)",
            file=err,
        )
    else:
        print(
            f"upstream: {settings.upstream_name} ({settings.upstream_base_url}), "
            f"{len(settings.api_keys)} API key(s)",
            file=err,
        )
        if not settings.api_keys:
            print(
                "warning: no API key configured; model requests will answer 401. "
                "Set ZAI_API_KEY (or run with --mock).",
                file=err,
            )
        from glmbridge_server.settings import key_warnings

        for line in key_warnings(settings.api_keys):
            print(line, file=err)
    if not settings.is_loopback:
        print(
            f"note: listening on {settings.host}, reachable from other machines; every "
            "request but /health needs the auth token",
            file=err,
        )
    token = "$GLMBRIDGE_AUTH_TOKEN" if settings.auth_token else "glmbridge"
    mock = " --mock" if settings.mock else ""
    print(f"use it: glmbridge-server claude --port {url.rpartition(':')[2]}{mock}", file=err)
    manual = " ".join(f"{k}={v}" for k, v in _manual_env(settings).items())
    # no self-update (a global npm install) and no telemetry while on the bridge
    quiet = "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1"
    print(f"    or: ANTHROPIC_BASE_URL={url} ANTHROPIC_AUTH_TOKEN={token} {quiet} {manual} claude",
          file=err)  # fmt: skip
    print("running in the foreground; Ctrl-C stops it", file=err)
    err.flush()


# The modules each optional feature needs, and the extra that installs them. uvloop is not
# here: uvicorn uses it when present and asyncio otherwise; zstandard is checked per request
# (a zstd body without it is a 415).
_SERVER_MODULES = ("starlette", "uvicorn", "httpx2", "anyio", "prometheus_client", "httptools")


def missing_extra(settings: Settings) -> str | None:
    """The configuration error for a setting whose optional dependency is not installed
    (``None``: everything the settings need imports)."""
    import importlib

    needs = [(m, "server", "the server") for m in _SERVER_MODULES]
    if settings.redis_url:
        needs.append(("redis", "redis", "redis_url"))
    for module, extra, what in needs:
        try:
            importlib.import_module(module)
        except ImportError:
            return (
                f"{what} needs the {module} package, which is not installed: "
                f"pip install 'glmbridge[{extra}]'"
            )
    return None


def _manual_env(settings: Settings) -> dict[str, str]:
    """What the launcher would give Claude Code for models and context, for a manual start."""
    from glmbridge_server.edge.routes.config import effective_models
    from glmbridge_server.launch.claude import context_window, model_env
    from glmbridge_server.settings import route_table

    table = route_table(settings.models, settings.upstreams)
    models = effective_models(table)
    return model_env(models, context_window(models, (), {}, table))


def _port_holder(settings: Settings) -> str:
    """Who holds the port, and what to do: a glmbridge (its ``/health``) or another program."""
    from glmbridge_server.launch.background import LauncherError, Mode, Target, probe

    other = f"--port {settings.port + 1}" if settings.port < 65535 else "--port N"
    target = Target(settings, settings.port)
    try:
        health = probe(target, timeout=1.0)
    except LauncherError:
        health = None
    if health is None:
        return f"another program holds the port; choose another: glmbridge-server {other}"
    mode = Mode.of_health(health).describe()
    return (
        f"a glmbridge already runs there (pid {health.get('pid')}, serving {mode}): use it as "
        f"it is, stop it (glmbridge-server stop --port {settings.port}, or Ctrl-C where it "
        f"runs), or choose another port: glmbridge-server {other}"
    )


def serve(settings: Settings) -> int:
    """Run the server until interrupted."""
    from glmbridge_server.edge.security import bind_refusal
    from glmbridge_server.workers import run_server, supervise

    refusal = bind_refusal(settings)
    if refusal is not None:
        print(f"glmbridge-server: {refusal}", file=sys.stderr)
        return 2
    try:
        if settings.workers > 1:
            sockets = _bind_workers(settings.host, settings.port, settings.workers)
        else:
            sockets = [_bind(settings.host, settings.port)]
    except OSError as exc:
        where = f"{settings.host}:{settings.port}"
        print(f"glmbridge-server: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        if exc.errno == errno.EADDRINUSE:
            print(f"glmbridge-server: {_port_holder(settings)}", file=sys.stderr)
        return 1
    configure_logging(settings.log_level, settings.log_format, secrets_of(settings),
                      process=settings.workers > 1)  # fmt: skip
    host, port = sockets[0].getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    _announce(settings, url)
    if settings.workers > 1:
        return supervise(settings, sockets)
    run_server(settings, sockets[0])
    return 0


def usage(argv: Sequence[str]) -> int:
    """``glmbridge-server usage``: usage summaries per day, model or key, with credits."""
    import time

    from glmbridge_server.settings import SettingsError, load_settings
    from glmbridge_server.traffic.usage_report import format_table, summarize
    from glmbridge_server.traffic.usage_store import open_readonly

    parser = argparse.ArgumentParser(
        prog="glmbridge-server usage",
        description="Usage recorded by the server (requests, tokens, Coding Plan credits).",
    )
    parser.add_argument("--by", choices=("day", "model", "key"), default="day")
    parser.add_argument("--days", type=int, default=7, help="how far back (default 7)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--config", help="the server's TOML config (for data_dir)")
    try:
        ns = parser.parse_args(argv)
        settings = load_settings({"config": ns.config})
    except SystemExit as exc:
        return int(exc.code or 0)
    except SettingsError as exc:
        print(f"glmbridge-server: configuration error: {exc}", file=sys.stderr)
        return 2
    path = settings.usage_db
    if path is None:
        print("glmbridge-server: usage is not recorded (usage_store = false)", file=sys.stderr)
        return 2
    if not path.exists():
        print(f"no usage recorded yet ({path})")
        return 0
    conn = open_readonly(path)
    try:
        rows = summarize(conn, by=ns.by, since=time.time() - ns.days * 86_400)
    finally:
        conn.close()
    print(json.dumps(rows, indent=2) if ns.json else format_table(rows, ns.by))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``glmbridge-server`` and ``python -m glmbridge_server``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "statusline":
        from glmbridge_server.launch import statusline

        return statusline.main(args[1:])
    if args and args[0] == "usage":
        return usage(args[1:])
    if args and args[0] in ("claude", "codex", "gemini", "status", "stop"):
        from glmbridge_server.launch import control, launcher

        command = {
            "claude": launcher.main_claude,
            "codex": launcher.main_codex,
            "gemini": launcher.main_gemini,
            "status": control.main_status,
            "stop": control.main_stop,
        }[args[0]]
        try:
            return command(args[1:])
        except KeyboardInterrupt:  # Ctrl-C while the launcher waits for a server
            print(file=sys.stderr)
            return 0
    if args and args[0] == "serve":
        args = args[1:]
    from glmbridge_server.settings import SettingsError, load_settings

    parser = build_parser()
    try:
        ns = parser.parse_args(args)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help/--version
        return int(exc.code or 0)
    cli = {k: v for k, v in vars(ns).items() if v is not None}
    try:
        settings = load_settings(cli)
    except SettingsError as exc:
        print(f"glmbridge-server: configuration error: {exc}", file=sys.stderr)
        return 2
    from glmbridge_server.workers import refusal

    missing = missing_extra(settings) or refusal(settings)
    if missing is not None:
        print(f"glmbridge-server: configuration error: {missing}", file=sys.stderr)
        return 2
    return serve(settings)
