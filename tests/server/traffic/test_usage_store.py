"""The usage store: rows survive a restart, summaries, /status, the CLI, the statusline;
a broken database never fails a request."""

from __future__ import annotations

import concurrent.futures
import io
import json
import multiprocessing
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

import anthropic
import httpx2
import pytest

from glmbridge_server.cli import main
from glmbridge_server.edge.app import create_app
from glmbridge_server.launch import statusline
from glmbridge_server.settings import Settings
from glmbridge_server.traffic.usage_report import summarize
from glmbridge_server.traffic.usage_store import UsageRow, UsageStore, open_readonly
from tests.support.servers import RunningServer, Start


def _row(**kw: object) -> UsageRow:
    values: dict[str, object] = dict(
        ts=time.time(), client="anthropic", route="/v1/messages", key_id="abc", model="glm-4.7",
        client_model="claude-sonnet-4-5", upstream="zai-coding", input_tokens=10_000,
        cached_tokens=0, output_tokens=1_000, latency_ms=12.0, ttft_ms=None, status=200,
        fallback=None, priority="interactive", queue_wait_ms=None, peak=True,
    )  # fmt: skip
    values.update(kw)
    return UsageRow(**values)  # type: ignore[arg-type]


def test_rows_are_written_and_summarised(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "u.sqlite3")
    store.record(_row())
    store.record(_row(model="glm-4.5-air", status=429, input_tokens=5, output_tokens=0))
    store.record(_row(ts=time.time() - 100 * 86_400))  # past retention: deleted at start
    store.close()
    conn = open_readonly(tmp_path / "u.sqlite3")
    by_model = {r["model"]: r for r in summarize(conn, by="model")}
    assert by_model["glm-4.7"]["credits"] == pytest.approx((10_000 * 4.6 + 1_000 * 16) / 10_000)
    assert by_model["glm-4.5-air"]["errors"] == 1
    assert by_model["glm-4.5-air"]["credits_unknown"] == 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _write_rows(path: Path, writer: int, count: int) -> tuple[int, int]:
    """One writer process (a worker): ``count`` rows in small bursts, then a clean close."""
    store = UsageStore(path)
    for i in range(count):
        store.record(_row(client=f"w{writer}", input_tokens=i))
        if i % 50 == 49:
            time.sleep(0.01)  # bursts, so the writers' batches interleave
    store.close()
    return store.written, store.lost


def test_several_writer_processes_lose_no_row(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"  # a new file: the writers also race to create it
    with concurrent.futures.ProcessPoolExecutor(
        3, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        results = list(pool.map(_write_rows, [path] * 3, range(3), [2000] * 3))
    assert results == [(2000, 0)] * 3
    conn = open_readonly(path)
    try:
        counts = dict(conn.execute("SELECT client, count(*) FROM usage GROUP BY client"))
    finally:
        conn.close()
    assert counts == {"w0": 2000, "w1": 2000, "w2": 2000}


def test_an_unusable_database_loses_rows_not_requests(tmp_path: Path) -> None:
    (tmp_path / "u.sqlite3").mkdir()  # a directory where the file should be
    store = UsageStore(tmp_path / "u.sqlite3")
    store.record(_row())  # never raises
    store.flush()
    assert store.lost == 1 and store.written == 0
    store.close()


def _ask(url: str) -> None:
    with anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as sdk:
        sdk.messages.create(model="claude-sonnet-4-5", max_tokens=50,
                            messages=[{"role": "user", "content": "hi"}])  # fmt: skip


def test_usage_survives_a_restart_and_status_has_no_keys(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
    sim_key: str, tmp_path: Path,
) -> None:  # fmt: skip
    settings = bridge_settings(sim.url, data_dir=str(tmp_path), plan="pro")
    first = start_server(create_app(settings))
    _ask(first.url)
    _ask(first.url)
    first.stop()  # the lifespan writes what is queued
    second = start_server(create_app(settings))
    _ask(second.url)
    status = httpx2.get(f"{second.url}/status")
    assert status.status_code == 200
    assert sim_key not in status.text
    data = status.json()
    assert data["plan"] == "pro" and data["slots"] == {"in_use": 0, "limit": 2}
    assert data["keys"][0]["key_id"] and data["keys"][0]["healthy"]
    assert data["last_served"]["model"]
    today = data["usage"]["today"]
    assert today["requests"] >= 2  # the third may still be in the writer's queue
    assert data["usage"]["windows"]["5h"]["allowance"] == 12_000
    second.stop()
    conn = open_readonly(tmp_path / "usage.sqlite3")
    rows = summarize(conn, by="day")
    assert rows[0]["requests"] == 3 and rows[0]["output"] > 0
    # the CLI reads the same file
    config = tmp_path / "glmbridge.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["usage", "--by", "model", "--json", "--config", str(config)]) == 0
    assert sum(r["requests"] for r in json.loads(out.getvalue())) == 3


def test_statusline_line_from_a_live_bridge(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    bridge = start_server(create_app(bridge_settings(sim.url, data_dir=str(tmp_path))))
    _ask(bridge.url)
    info = {
        "model": {"id": "claude-sonnet-4-5", "display_name": "Sonnet"},
        "context_window": {"total_input_tokens": 50_000, "context_window_size": 200_000},
    }
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(info)))
    # the 40 ms budget is for an idle desktop; this test checks the line, not the time
    monkeypatch.setattr(statusline, "_TIMEOUT", 10.0)
    out = io.StringIO()
    with redirect_stdout(out):
        assert statusline.main(["--url", bridge.url]) == 0
    line = out.getvalue().strip()
    assert line.startswith("glm-") and "ctx 25%" in line and "slots 0/" in line
    assert "\n" not in line


def test_statusline_formats() -> None:
    status = {
        "last_served": {"model": "glm-4.7", "upstream": "zai-coding"},
        "keys": [{"quota": {"window": "5-hour", "resets_at": "2026-08-27T13:31:39+00:00"}}],
        "slots": {"in_use": 1, "limit": 2},
        "queue": {"interactive": 1, "subagent": 0, "background": 2},
        "usage": None,
    }
    assert statusline.format_line({}, status) == (
        "glm-4.7 · 5-hour spent until 13:31 UTC · slots 1/2 · queue 3"
    )
    assert statusline.format_line({"model": {"id": "x"}}, None) == "x · glmbridge unreachable"
    status["keys"] = [{"quota": None}]
    status["usage"] = {"windows": {"5h": {"used_percent": 23.4}}}
    assert " · 5h 23% · " in statusline.format_line({}, status)


def test_local_credit_estimate_holds_background_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyio

    from glmbridge_server.traffic import quota_poller
    from glmbridge_server.traffic.scheduler import Scheduler
    from glmbridge_server.upstream.keypool import KeyPool

    db = tmp_path / "usage.sqlite3"
    store = UsageStore(db)
    # Lite: 2,000 credits per 5 h; 4,000,000 GLM-4.7 input tokens at peak = 1,840 (92 %)
    store.record(_row(key_id="kid-a", input_tokens=4_000_000, output_tokens=0))
    store.record(_row(key_id="kid-b", input_tokens=1_000_000, output_tokens=0))  # 23 %
    store.close()
    monkeypatch.setattr(quota_poller, "_ESTIMATE_EVERY", 0.01)
    settings = Settings(plan="lite", api_keys=("a", "b"))
    scheduler = Scheduler(KeyPool(["a", "b"]), [1, 1])

    async def main() -> None:
        with anyio.move_on_after(1.0):
            await quota_poller.estimate_quotas(settings, scheduler, db, ["kid-a", "kid-b"])

    anyio.run(main)
    assert scheduler.near_exhaustion == {0}
