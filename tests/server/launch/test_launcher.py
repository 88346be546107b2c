"""``glmbridge-server claude|status|stop`` with a stand-in ``claude`` that records its argv/env.

The launcher always runs as a real subprocess (it ``exec``s), against a server started by
a fixture or against the background server it starts itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from glmbridge.routing import DEFAULT_ROUTE_TABLE, ModelSpec, RouteTable, model_info
from glmbridge_server.edge.app import create_app
from glmbridge_server.launch.background import process_alive
from glmbridge_server.launch.claude import (
    CLAUDE_SETTINGS,
    claude_argv,
    claude_env,
    context_window,
)
from glmbridge_server.settings import Settings
from tests.support.servers import SIM_KEY, MakeSettings, RunningServer, Start, free_port

pytestmark = pytest.mark.e2e

TOKEN = "tok-launcher-0b7e"
STAND_IN = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["CLAUDE_DUMP"], "w") as f:
    json.dump({{"argv": sys.argv[1:], "env": dict(os.environ)}}, f)
sys.exit(int(os.environ.get("CLAUDE_EXIT", "0")))
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A working directory with a ``bin/claude`` stand-in and a private state dir."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "codex", "gemini"):
        stand_in = bin_dir / name
        stand_in.write_text(STAND_IN)
        stand_in.chmod(0o755)
    (tmp_path / "empty").mkdir()
    return tmp_path


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": f"{home / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "CLAUDE_DUMP": str(home / "dump.json"),
    }
    if "PYTHONPATH" in os.environ:  # the tree under test, when it is not the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env.update(extra)
    return env


def run(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "glmbridge_server", *args],
        cwd=home,
        env=env if env is not None else base_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )


def dump(home: Path) -> dict[str, Any]:
    return json.loads((home / "dump.json").read_text())


def upstream_of(sim: RunningServer) -> str:
    """The upstream of the ``bridge`` and ``guarded`` servers (the environment must match)."""
    return f"{sim.url}/api/coding/paas/v4"


def port_of(server: RunningServer) -> str:
    return server.url.rpartition(":")[2]


@pytest.fixture
def guarded(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> RunningServer:
    settings = bridge_settings(sim.url, auth_token=TOKEN, models={"opus": "glm-4.6"})
    return start_server(create_app(settings))


# --- reusing a running server -------------------------------------------------------------

TRICKY_ARGS = [
    "-p", "say $(touch pwned) `id` ; rm -rf / && echo 'hi'",
    "--model", "opus", "--port", "1", "--yolo", "*", "", "a b", "--", "-x",
]  # fmt: skip


SKIP_PREFLIGHT = ["--settings", CLAUDE_SETTINGS]


def test_environment_and_verbatim_arguments(
    guarded: RunningServer, sim: RunningServer, home: Path
) -> None:
    env = base_env(home, GLMBRIDGE_AUTH_TOKEN=TOKEN, ANTHROPIC_API_KEY="sk-ant-real-key",
                   CLAUDE_EXIT="7", GLMBRIDGE_UPSTREAM=upstream_of(sim))  # fmt: skip
    result = run(home, "claude", "--port", port_of(guarded), *TRICKY_ARGS, env=env)
    assert result.returncode == 7, result.stderr  # the launcher became claude
    got = dump(home)
    # after the first claude argument nothing is parsed; WebFetch's preflight is skipped
    assert got["argv"] == [*SKIP_PREFLIGHT, *TRICKY_ARGS]
    assert not (home / "pwned").exists()
    e = got["env"]
    assert e["ANTHROPIC_BASE_URL"] == guarded.url
    assert e["ANTHROPIC_AUTH_TOKEN"] == TOKEN
    assert e["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "glm-4.6"
    assert e["ANTHROPIC_DEFAULT_SONNET_MODEL"] == "glm-5.3"
    assert e["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "glm-5.3-flash"
    assert e["API_TIMEOUT_MS"] == "3000000"
    assert e["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    # Claude Code is told the real window of the model it talks to (--model opus: glm-4.6),
    # and not to take its default opus[1m] as a 1M window.
    assert e["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == str(model_info("glm-4.6").context_window)
    assert e["CLAUDE_CODE_DISABLE_1M_CONTEXT"] == "1"
    assert "ANTHROPIC_API_KEY" not in e  # a real Anthropic key is never sent to the bridge
    assert e["HOME"] == str(home)  # the rest of the environment passes through
    assert "using the running glmbridge" in result.stderr
    assert not (home / "state" / "glmbridge" / f"server-{port_of(guarded)}.pid").exists()


def test_codex_gets_a_glmbridge_provider_and_verbatim_arguments(
    guarded: RunningServer, sim: RunningServer, home: Path
) -> None:
    env = base_env(home, GLMBRIDGE_AUTH_TOKEN=TOKEN, CLAUDE_EXIT="3",
                   GLMBRIDGE_UPSTREAM=upstream_of(sim))  # fmt: skip
    result = run(home, "codex", "--port", port_of(guarded), "--", *TRICKY_ARGS, env=env)
    assert result.returncode == 3, result.stderr  # the launcher became codex
    got = dump(home)
    argv = got["argv"]
    flags = dict(argv[i + 1].split("=", 1) for i in range(0, 14, 2) if argv[i] == "-c")
    assert argv[14:] == TRICKY_ARGS
    assert json.loads(flags["model_providers.glmbridge.base_url"]) == f"{guarded.url}/v1"
    assert json.loads(flags["model_providers.glmbridge.wire_api"]) == "responses"
    assert json.loads(flags["model_providers.glmbridge.model_catalog_url"]) == (
        f"{guarded.url}/v1/models"
    )
    assert json.loads(flags["model_provider"]) == "glmbridge"
    assert json.loads(flags["model"]) == "glm-5.3"
    assert got["env"]["GLMBRIDGE_API_KEY"] == TOKEN
    # the catalog URL really answers Codex's shape
    catalog = httpx2.get(
        f"{guarded.url}/v1/models?client_version=0.171.0",
        headers={"authorization": f"Bearer {TOKEN}"},
    ).json()
    assert {"slug", "context_window", "base_instructions"} <= set(catalog["models"][0])


def test_gemini_gets_the_bridge_and_its_settings(
    guarded: RunningServer, sim: RunningServer, home: Path
) -> None:
    env = base_env(home, GLMBRIDGE_AUTH_TOKEN=TOKEN, GOOGLE_API_KEY="real-google-key",
                   GLMBRIDGE_UPSTREAM=upstream_of(sim))  # fmt: skip
    result = run(home, "gemini", "--port", port_of(guarded), *TRICKY_ARGS, env=env)
    assert result.returncode == 0, result.stderr
    got = dump(home)
    assert got["argv"] == TRICKY_ARGS
    e = got["env"]
    assert e["GOOGLE_GEMINI_BASE_URL"] == guarded.url
    assert e["GEMINI_API_KEY"] == TOKEN
    assert "GOOGLE_API_KEY" not in e  # a real Google key is never sent to the bridge
    settings = json.loads(Path(e["GEMINI_CLI_SYSTEM_SETTINGS_PATH"]).read_text())
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"
    # compress at 70% of the routed model's window, as a share of the 1M window gemini-cli
    # assumes, at most its own 0.5: GLM-5.3's 1,048,576 window leaves gemini-cli's default
    assert settings["model"]["compressionThreshold"] == 0.5
    assert not (home / ".gemini").exists()  # the user's own settings are not touched


def test_codex_missing_exits_127(bridge: RunningServer, home: Path) -> None:
    (home / "bin" / "codex").unlink()
    env = base_env(home)
    env["PATH"] = str(home / "bin")
    result = run(home, "codex", "--port", port_of(bridge), env=env)
    assert result.returncode == 127
    assert "npm install -g @openai/codex" in result.stderr


def test_yolo_and_double_dash(guarded: RunningServer, sim: RunningServer, home: Path) -> None:
    env = base_env(home, GLMBRIDGE_AUTH_TOKEN=TOKEN, GLMBRIDGE_UPSTREAM=upstream_of(sim))
    result = run(home, "claude", "--yolo", "--port", port_of(guarded), "--", "--yolo", env=env)
    assert result.returncode == 0, result.stderr
    assert dump(home)["argv"] == ["--dangerously-skip-permissions", *SKIP_PREFLIGHT, "--yolo"]
    run(home, "claude", f"--port={port_of(guarded)}", "--yolo", "--dangerously-skip-permissions",
        env=env)  # fmt: skip
    assert dump(home)["argv"] == [*SKIP_PREFLIGHT, "--dangerously-skip-permissions"]  # once


def test_without_a_token_the_placeholder_is_used(
    bridge: RunningServer, sim: RunningServer, home: Path
) -> None:
    env = base_env(home, GLMBRIDGE_UPSTREAM=upstream_of(sim))
    result = run(home, "claude", "--port", port_of(bridge), "-p", "hi", env=env)
    assert result.returncode == 0, result.stderr
    assert dump(home)["env"]["ANTHROPIC_AUTH_TOKEN"] == "glmbridge"
    assert dump(home)["argv"] == [*SKIP_PREFLIGHT, "-p", "hi"]


def test_wrong_token_is_reported(guarded: RunningServer, sim: RunningServer, home: Path) -> None:
    env = base_env(home, GLMBRIDGE_UPSTREAM=upstream_of(sim))
    result = run(home, "claude", "--port", port_of(guarded), env=env)
    assert result.returncode == 1
    assert "requires an auth token" in result.stderr and "GLMBRIDGE_AUTH_TOKEN" in result.stderr
    assert not (home / "dump.json").exists()


def test_claude_missing_exits_127(bridge: RunningServer, home: Path) -> None:
    env = base_env(home, PATH=str(home / "empty"))
    result = run(home, "claude", "--port", port_of(bridge), env=env)
    assert result.returncode == 127
    assert "npm install -g @anthropic-ai/claude-code" in result.stderr


# --- a foreign program on the port ------------------------------------------------------------


class _Other(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"status": "ok", "service": "something-else"}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def foreign_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Other)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_foreign_program_on_the_port_is_refused(foreign_port: int, home: Path) -> None:
    result = run(home, "claude", "--port", str(foreign_port))
    assert result.returncode == 1
    assert "another program" in result.stderr
    assert not (home / "dump.json").exists()
    assert run(home, "status", "--port", str(foreign_port)).returncode == 1
    assert not (home / "state" / "glmbridge" / f"server-{foreign_port}.pid").exists()


# --- starting a background server, status, stop ------------------------------------------------


def test_auto_start_status_stop(home: Path) -> None:
    port = free_port()
    env = base_env(home, GLMBRIDGE_MOCK="1")
    pid_file = home / "state" / "glmbridge" / f"server-{port}.pid"
    pid = None
    try:
        result = run(home, "claude", "--port", str(port), "-p", "hello", env=env)
        assert result.returncode == 0, result.stderr
        assert "started glmbridge in the background" in result.stderr
        pid = json.loads(pid_file.read_text())["pid"]
        got = dump(home)
        assert got["env"]["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{port}"
        assert got["argv"] == [*SKIP_PREFLIGHT, "-p", "hello"]
        health = httpx2.get(f"http://127.0.0.1:{port}/health").json()
        assert health["service"] == "glmbridge" and health["pid"] == pid and health["mock"]
        assert (home / "state" / "glmbridge" / f"server-{port}.log").exists()

        again = run(home, "claude", "--port", str(port), env=env)  # reuses it
        assert again.returncode == 0 and "using the running glmbridge" in again.stderr

        status = run(home, "status", "--port", str(port), env=env)
        assert status.returncode == 0, status.stderr
        assert f"pid {pid}" in status.stdout and "started by the launcher" in status.stdout

        stop = run(home, "stop", "--port", str(port), env=env)
        assert stop.returncode == 0, stop.stderr
        assert f"stopped glmbridge (pid {pid})" in stop.stdout
        assert not process_alive(pid)
        assert not pid_file.exists()
        with pytest.raises(httpx2.ConnectError):
            httpx2.get(f"http://127.0.0.1:{port}/health")
        assert run(home, "status", "--port", str(port), env=env).returncode == 3
        assert run(home, "stop", "--port", str(port), env=env).returncode == 0  # nothing to stop
    finally:
        if pid is not None and process_alive(pid):
            os.kill(pid, 9)


def test_status_and_stop_clean_up_a_stale_pid_file(home: Path) -> None:
    port = free_port()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_file = home / "state" / "glmbridge" / f"server-{port}.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(json.dumps({"pid": dead.pid, "port": port}))
    status = run(home, "status", "--port", str(port))
    assert status.returncode == 3 and "stale pid file" in status.stdout
    assert not pid_file.exists()
    pid_file.write_text(json.dumps({"pid": dead.pid, "port": port}))
    assert run(home, "stop", "--port", str(port)).returncode == 0
    assert not pid_file.exists()


def test_stop_never_signals_a_process_that_is_not_the_server(home: Path) -> None:
    port = free_port()
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        pid_file = home / "state" / "glmbridge" / f"server-{port}.pid"
        pid_file.parent.mkdir(parents=True)
        pid_file.write_text(json.dumps({"pid": bystander.pid, "port": port}))  # a reused pid
        result = run(home, "stop", "--port", str(port))
        assert result.returncode == 1 and "stopped nothing" in result.stderr
        assert bystander.poll() is None  # still running
        assert not pid_file.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_stop_refuses_a_server_it_did_not_start(bridge: RunningServer, home: Path) -> None:
    result = run(home, "stop", "--port", port_of(bridge))
    assert result.returncode == 1 and "not started by the launcher" in result.stderr
    assert httpx2.get(bridge.url + "/health").status_code == 200


# --- pure helpers ---------------------------------------------------------------------------


def test_claude_env_and_argv_helpers() -> None:
    models = {"opus": "glm-5.1", "sonnet": "glm-4.7", "haiku": "glm-4.5-air"}
    env = claude_env({"ANTHROPIC_API_KEY": "sk", "KEEP": "1"}, "http://h:1", None, models)
    assert env["ANTHROPIC_AUTH_TOKEN"] == "glmbridge" and env["KEEP"] == "1"
    assert "ANTHROPIC_API_KEY" not in env
    assert claude_argv(["-p", "x"], yolo=True) == [
        "claude",
        "--dangerously-skip-permissions",
        *SKIP_PREFLIGHT,
        "-p",
        "x",
    ]
    assert claude_argv(["-p", "x"], yolo=False) == ["claude", *SKIP_PREFLIGHT, "-p", "x"]
    assert json.loads(CLAUDE_SETTINGS) == {"skipWebFetchPreflight": True}
    # a user's own --settings wins (Claude Code takes one)
    for own in (["--settings", "my.json"], ["--settings=my.json"]):
        assert claude_argv(own, yolo=False) == ["claude", *own]


def test_context_window_is_the_routed_models_real_one() -> None:
    def spec(model_id: str, window: int) -> ModelSpec:
        return ModelSpec(id=model_id, context_window=window, max_output=1024)

    table = RouteTable.from_mapping(
        {"aliases": {"fancy": "glm-small"}},
        base=RouteTable(
            models={**DEFAULT_ROUTE_TABLE.models, "glm-small": spec("glm-small", 64_000),
                    "glm-big": spec("glm-big", 1_000_000), "glm-mid": spec("glm-mid", 200_000)},
            aliases=DEFAULT_ROUTE_TABLE.aliases,
        ),
    )  # fmt: skip
    models = {"opus": "glm-big", "sonnet": "glm-mid", "haiku": "glm-small"}
    assert context_window(models, [], {}, table) == 200_000  # the smaller of opus and sonnet
    assert context_window(models, ["--model", "opus"], {}, table) == 1_000_000
    assert context_window(models, ["--model=Opus[1m]"], {}, table) == 1_000_000
    assert context_window(models, ["-p", "x", "--model", "haiku"], {}, table) == 64_000
    assert context_window(models, ["--model", "glm-big"], {}, table) == 1_000_000
    assert context_window(models, ["--model", "claude-fancy-9"], {}, table) == 64_000
    assert context_window(models, [], {"ANTHROPIC_MODEL": "sonnet"}, table) == 200_000
    assert context_window(models, ["--model", "opusplan"], {}, table) == 200_000
    # an unknown GLM id gets the conservative window routing assumes
    assert context_window(models, ["--model", "glm-99"], {}, table) == (
        model_info("glm-99").context_window)  # fmt: skip
    env = claude_env({"CLAUDE_CODE_MAX_CONTEXT_TOKENS": "5000"}, "http://h:1", None, models, 9)
    assert env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "5000"  # the user's own value wins


def test_bad_port_is_a_usage_error(home: Path) -> None:
    for args in (["claude", "--port", "x"], ["status", "--port", "99999"], ["stop", "--yolo"]):
        result = run(home, *args)
        assert result.returncode == 2, (args, result.stderr)


# --- the running server must be what the environment asks for ---------------------------------


def _health(port: int | str) -> dict[str, Any]:
    return httpx2.get(f"http://127.0.0.1:{port}/health").json()  # type: ignore[no-any-return]


def test_a_server_in_another_mode_is_restarted_never_silently_reused(
    sim: RunningServer, home: Path
) -> None:
    port = free_port()
    keyed = base_env(home, ZAI_API_KEY="k-one.secret,k-two.secret",
                     GLMBRIDGE_UPSTREAM=upstream_of(sim))  # fmt: skip
    pids: list[int] = []
    try:
        mock = run(home, "claude", "--mock", "--port", str(port), "-p", "hi")
        assert mock.returncode == 0, mock.stderr
        assert "the mock" in mock.stderr and "[[sim:" in mock.stderr  # says how to drive it
        assert dump(home)["argv"] == [*SKIP_PREFLIGHT, "-p", "hi"]  # --mock is not claude's
        pids.append(_health(port)["pid"])
        assert _health(port)["mode"] == "mock"

        # Keys in the environment: the mock is not what it asks for, and the launcher
        # started it, so it is restarted with the keys.
        real = run(home, "claude", "--port", str(port), env=keyed)
        assert real.returncode == 0, real.stderr
        assert "serves the mock" in real.stderr and "restarting it" in real.stderr
        health = _health(port)
        pids.append(health["pid"])
        assert pids[1] != pids[0] and not process_alive(pids[0])
        assert (health["mode"], health["keys"], health["upstream_url"]) == (
            "keys",
            2,
            upstream_of(sim),
        )

        # A terminal without the keys reuses the keyed server (the keys live in it).
        plain = run(home, "claude", "--port", str(port),
                    env=base_env(home, GLMBRIDGE_UPSTREAM=upstream_of(sim)))  # fmt: skip
        assert plain.returncode == 0 and "using the running glmbridge" in plain.stderr
        assert _health(port)["pid"] == pids[1]

        # The same number of other keys (ZAI_API_KEY rotated): restarted as well.
        rotated = run(home, "claude", "--port", str(port),
                      env={**keyed, "ZAI_API_KEY": "k-three.secret,k-four.secret"})  # fmt: skip
        assert rotated.returncode == 0, rotated.stderr
        assert "other keys" in rotated.stderr and "restarting it" in rotated.stderr
        pids.append(_health(port)["pid"])
        assert pids[-1] != pids[1]
        same = run(home, "claude", "--port", str(port),
                   env={**keyed, "ZAI_API_KEY": "k-four.secret,k-three.secret"})  # fmt: skip
        assert same.returncode == 0 and "using the running glmbridge" in same.stderr

        # One key instead of two is another mode too.
        one = run(home, "claude", "--port", str(port),
                  env={**keyed, "ZAI_API_KEY": "k-one.secret"})  # fmt: skip
        assert one.returncode == 0 and "restarting it" in one.stderr
        pids.append(_health(port)["pid"])
        assert _health(port)["keys"] == 1

        status = run(home, "status", "--port", str(port), env=keyed)
        assert status.returncode == 0, status.stderr
        assert "mode: keys" in status.stdout and "API keys: 1" in status.stdout
        assert f"upstream: 127.0.0.1:{sim.url.rpartition(':')[2]}" in status.stdout
        assert "note: this environment asks for" in status.stdout  # it has two keys
        assert "secret" not in status.stdout + status.stderr  # a count, never a key

        back = run(home, "claude", "--mock", "--port", str(port))
        assert back.returncode == 0 and "restarting it" in back.stderr
        pids.append(_health(port)["pid"])
        assert _health(port)["mode"] == "mock"
        status = run(home, "status", "--port", str(port))
        assert "mode: mock" in status.stdout
    finally:
        run(home, "stop", "--port", str(port))
        for pid in pids:
            if process_alive(pid):
                os.kill(pid, 9)


def test_a_server_the_launcher_did_not_start_is_refused_with_the_command(
    bridge: RunningServer, sim: RunningServer, home: Path
) -> None:
    port = port_of(bridge)
    result = run(home, "claude", "--mock", "--port", port)
    assert result.returncode == 1
    assert "asks for the mock" in result.stderr and "did not start it" in result.stderr
    assert f"glmbridge-server claude --port {port} --mock" in result.stderr
    assert not (home / "dump.json").exists()
    assert _health(port)["mode"] == "keys"  # untouched

    other = run(home, "codex", "--port", port,
                env=base_env(home, ZAI_API_KEY="k", GLMBRIDGE_UPSTREAM="zai"))  # fmt: skip
    assert other.returncode == 1 and "zai (https://api.z.ai/api/paas/v4)" in other.stderr

    # the same upstream and number of keys, but another key
    rotated = run(
        home,
        "claude",
        "--port",
        port,
        env=base_env(home, ZAI_API_KEY="k-new", GLMBRIDGE_UPSTREAM=upstream_of(sim)),
    )
    assert rotated.returncode == 1, rotated.stderr
    assert "other keys than this environment's" in rotated.stderr
    assert "k-new" not in rotated.stderr and SIM_KEY not in rotated.stderr
    assert not (home / "dump.json").exists()


def test_a_keyless_environment_never_gets_the_mock_or_a_keyless_server(
    start_server: Start, home: Path
) -> None:
    mock = start_server(create_app(Settings(mock=True)))
    result = run(home, "claude", "--port", port_of(mock))
    assert result.returncode == 1
    assert "serves the mock" in result.stderr and "Set ZAI_API_KEY" in result.stderr
    assert f"glmbridge-server claude --port {port_of(mock)} --mock" in result.stderr
    assert not (home / "dump.json").exists()

    keyless = start_server(create_app(Settings()))
    result = run(home, "claude", "--port", port_of(keyless))
    assert result.returncode == 1 and "with no API key" in result.stderr

    nothing = str(free_port())
    result = run(home, "claude", "--port", nothing)
    assert result.returncode == 1
    assert "no API key configured" in result.stderr
    assert "glmbridge-server claude --mock" in result.stderr
    assert not (home / "state" / "glmbridge" / f"server-{nothing}.pid").exists()


def test_help_of_each_command(home: Path) -> None:
    for command in ("claude", "codex", "gemini", "status", "stop"):
        for flag in ("--help", "-h"):
            result = run(home, command, flag)
            assert result.returncode == 0, (command, result.stderr)
            assert result.stdout.startswith(f"usage: glmbridge-server {command}")
    assert "--mock" in run(home, "claude", "--help").stdout
    assert not (home / "dump.json").exists()  # claude did not run
    # after the launcher's options, --help belongs to claude
    assert "claude -- --help" in run(home, "claude", "--help").stdout


def test_claude_argv_with_the_statusline() -> None:
    import json as _json
    import sys as _sys

    from glmbridge_server.launch.claude import CLAUDE
    from glmbridge_server.launch.launcher import parse

    opts, rest = parse(["--yolo", "--statusline", "-p", "x"], CLAUDE.flags)
    assert opts.flags == {"--yolo", "--statusline"} and rest == ["-p", "x"]
    opts, rest = parse(["--port", "5000", "--statusline"], CLAUDE.flags)
    assert opts.flags == {"--statusline"} and opts.port == "5000" and rest == []
    # after the first claude argument it belongs to claude
    opts, rest = parse(["-p", "--statusline"], CLAUDE.flags)
    assert not opts.flags and rest == ["-p", "--statusline"]
    argv = claude_argv(["-p", "x"], yolo=False, statusline=True)
    assert argv[:2] == ["claude", "--settings"] and argv[3:] == ["-p", "x"]
    settings = _json.loads(argv[2])
    assert settings["skipWebFetchPreflight"] is True  # one --settings carries both
    command = settings["statusLine"]["command"]
    assert command.endswith("-m glmbridge_server statusline") and _sys.executable in command
