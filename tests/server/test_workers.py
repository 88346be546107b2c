"""``glmbridge-server --workers N`` (issue 22, item 5): several processes on one port.

Real server processes (``python -m glmbridge_server``) on loopback; the upstream is the
test session's simulator (its in-flight counters see every worker's calls) or each worker's
own (``--mock``), and Redis is a real ``redis-server`` started for the module.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from glmbridge_server import cli
from glmbridge_server.launch.background import Target, process_alive, start_background
from glmbridge_server.settings import load_settings
from tests.server.redis_server import RedisServer
from tests.server.test_cli_start import serve
from tests.support.servers import SIM_KEY, RunningServer

pytestmark = pytest.mark.e2e

_LISTENING = re.compile(r"listening on (http://\S+)")


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "GLMBRIDGE_DATA_DIR": str(tmp_path / "data"),
        "GLMBRIDGE_STATE_DIR": str(tmp_path / "state"),
        "GLMBRIDGE_MODELS_REFRESH": "0",
    }
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return {**env, **extra}


class Workers:
    """A running ``glmbridge-server --workers N`` process (the supervisor) and its log."""

    def __init__(self, tmp_path: Path, env: dict[str, str], *args: str) -> None:
        self.log = tmp_path / "server.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "glmbridge_server", "--port", "0", *args],
                env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not (found := _LISTENING.search(self.log.read_text())):
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)
        self.url = found.group(1)

    def worker_pids(self, count: int) -> set[int]:
        return worker_pids(self.url, self.proc.pid, count)

    def pinned(self, pid: int, count: int) -> list[httpx2.Client]:
        """``count`` clients, each with one connection that worker ``pid`` accepted."""
        out: list[httpx2.Client] = []
        while len(out) < count:
            http = httpx2.Client(base_url=self.url, timeout=60, limits=httpx2.Limits(
                max_connections=1, max_keepalive_connections=1))  # fmt: skip
            if http.get("/health").json()["worker"]["pid"] == pid:
                out.append(http)
            else:
                http.close()
        return out

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(30)


def worker_pids(url: str, server_pid: int, count: int) -> set[int]:
    """The workers' pids, once ``count`` distinct ones answered ``/health`` (each on a new
    connection, which any worker may accept)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while len(seen) < count:
        assert time.monotonic() < deadline, f"only {seen} answered"
        try:
            with httpx2.Client(timeout=5) as http:
                health = http.get(f"{url}/health").json()
        except httpx2.TransportError:  # still starting
            time.sleep(0.05)
            continue
        assert health["pid"] == server_pid  # what `stop` signals: the supervisor
        assert health["worker"]["count"] == count
        seen.add(health["worker"]["pid"])
    return seen


def _gone(pids: set[int], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while any(process_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _burst(url: str, count: int) -> list[dict[str, Any]]:
    """``/health`` on ``count`` connections opened at once (one pool, as clients do)."""

    async def run() -> list[dict[str, Any]]:
        limits = httpx2.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx2.AsyncClient(limits=limits, timeout=10) as http:
            answers = await asyncio.gather(*(http.get(f"{url}/health") for _ in range(count)))
        return [dict(a.json()) for a in answers]

    return asyncio.run(run())


def _stream(http: httpx2.Client, text: str) -> str:
    """A streamed Anthropic turn; the text it answered."""
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": f"{text} [[sim:slow:0.05]]"}]}  # fmt: skip
    with http.stream("POST", "/v1/messages", json=body, headers={"x-api-key": "x"}) as answer:
        assert answer.status_code == 200, answer.read()
        return "".join(answer.iter_text())


def test_two_workers_share_the_port_and_stop_together(tmp_path: Path) -> None:
    server = Workers(tmp_path, _env(tmp_path), "--mock", "--workers", "2")
    try:
        pids = server.worker_pids(2)
        for pid in pids:  # each worker answers from its own simulator
            (http,) = server.pinned(pid, 1)
            try:
                assert "event: message_stop" in _stream(http, "hello")
                status = http.get("/status").json()
                assert status["worker"] == {"index": status["worker"]["index"], "count": 2,
                                            "pid": pid}  # fmt: skip
                metrics = http.get("/metrics").text
                index = status["worker"]["index"]
                assert f'glmbridge_worker_info{{worker="{index}",pid="{pid}",workers="2"}}' in (
                    metrics
                )
                assert f'glmbridge_requests_in_progress{{worker="{index}"}}' in metrics
                changed = http.post("/config", json={"thinking": "enabled"})
                assert changed.status_code == 409  # it would change one worker of two
                assert "2 worker processes" in changed.json()["error"]["message"]
            finally:
                http.close()
        # a client pool opening its connections at once gets both workers, not one
        assert {health["worker"]["pid"] for health in _burst(server.url, 16)} == pids
        # a second server cannot take the port over, with workers or without
        port = server.url.rpartition(":")[2]
        for extra in ((), ("--workers", "2")):
            second = serve("--mock", "--port", port, *extra, env=_env(tmp_path), cwd=tmp_path)
            assert second.returncode == 1
            assert f"a glmbridge already runs there (pid {server.proc.pid}" in second.stderr
        log = server.log.read_text()
        assert "2 worker processes (pids" in log
        assert all(f"glmbridge.access[{pid}]: POST /v1/messages 200" in log for pid in pids)
    finally:
        code = server.stop()
    assert code == 0
    assert _gone(pids)
    assert "Traceback" not in server.log.read_text()


def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    server = Workers(tmp_path, _env(tmp_path), "--mock", "--workers", "2")
    try:
        first = server.worker_pids(2)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        assert _gone({victim})
        now = server.worker_pids(2)  # a new worker took its place on the same port
        assert victim not in now and len(now & first) == 1
        assert "exited (exit code -9); starting another" in server.log.read_text()
    finally:
        assert server.stop(signal.SIGINT) == 0  # Ctrl-C: the same clean stop
    assert _gone(now)
    assert "Traceback" not in server.log.read_text()


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    server = Workers(tmp_path, _env(tmp_path), "--mock", "--workers", "2")
    try:
        pids = server.worker_pids(2)
    finally:
        server.proc.kill()  # SIGKILL: the supervisor cannot stop them
        server.proc.wait(10)
    assert _gone(pids)  # each noticed within a second and stopped as on SIGTERM


def test_several_workers_without_redis_are_refused(tmp_path: Path) -> None:
    env = _env(tmp_path, ZAI_API_KEY="0123456789abcdef0123456789abcdef.AbCdEfGhIjKlMnOp")
    result = serve("--port", "0", "--workers", "2", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()  # one line, before the banner
    assert line.startswith("glmbridge-server: configuration error: workers = 2 needs redis_url")
    assert "workers_local_state = true" in line
    # the explicit choice of per-worker limits starts
    env["GLMBRIDGE_WORKERS_LOCAL_STATE"] = "true"
    server = Workers(tmp_path, env, "--workers", "2")
    try:
        pids = server.worker_pids(2)
        assert "each with its own slots and key rests" in server.log.read_text()
    finally:
        assert server.stop() == 0
    assert _gone(pids)


def test_slots_hold_across_workers_and_every_usage_row_lands(
    sim: RunningServer, redis: RedisServer, tmp_path: Path
) -> None:
    sim.app.state.concurrency = 2  # the Coding Plan's Pro limit: a third call is a 1302
    env = _env(
        tmp_path, ZAI_API_KEY=SIM_KEY, GLMBRIDGE_UPSTREAM=f"{sim.url}/api/coding/paas/v4",
        GLMBRIDGE_KEY_SLOTS="2", GLMBRIDGE_REDIS_URL=redis.url, GLMBRIDGE_MAX_RETRIES="0",
        GLMBRIDGE_MAX_QUEUE_WAIT="60",
    )  # fmt: skip
    server = Workers(tmp_path, env, "--workers", "2")
    clients: list[httpx2.Client] = []
    try:
        pids = server.worker_pids(2)
        for pid in sorted(pids):  # three streams on each worker, six at once
            clients += server.pinned(pid, 3)
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            tries = [pool.submit(_stream, http, f"q{i}") for i, http in enumerate(clients)]
            answers = [t.exception(60) or t.result() for t in tries]
        assert all(isinstance(a, str) and "event: message_stop" in a for a in answers), answers
        assert sim.app.state.peak_in_flight[SIM_KEY] == 2  # never more, across both workers
        assert sim.app.state.rejected_1302 == 0
        queued = [c.get("/status").json()["scheduled"]["queued"] for c in clients[::3]]
        assert sum(queued) >= 4  # the rest waited in the shared queue
    finally:
        for http in clients:
            http.close()
        code = server.stop()  # at once: rows still queued in the writers must be written
    assert code == 0
    assert _gone(pids)
    conn = sqlite3.connect(tmp_path / "data" / "usage.sqlite3")
    try:
        rows = conn.execute("SELECT status, count(*) FROM usage GROUP BY status").fetchall()
    finally:
        conn.close()
    assert rows == [(200, 6)]
    log = server.log.read_text()
    assert all(log.count(f"glmbridge.access[{pid}]: POST /v1/messages 200") == 3 for pid in pids)


def test_stop_stops_every_worker_of_a_background_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _env(tmp_path, GLMBRIDGE_WORKERS="2").items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    port = cli._bind("127.0.0.1", 0).getsockname()[1]  # a free port (closed again)
    target = Target(load_settings({"mock": True, "port": port}), port)
    health = start_background(target)
    server_pid = health["pid"]
    try:
        pids = worker_pids(target.url, server_pid, 2)
    except BaseException:
        os.kill(server_pid, signal.SIGTERM)
        raise
    assert cli.main(["stop", "--port", str(port)]) == 0
    assert _gone({server_pid, *pids})
