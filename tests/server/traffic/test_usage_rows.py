"""Usage rows that once killed the writer (issue 24, item 4): a token count of 2**63 or
more, and any other value SQLite refuses. Values are clamped on the way in; a bad row that
gets through anyway loses only itself; lost rows are counted exactly and shown in /status
and /metrics."""

from __future__ import annotations

import math
from pathlib import Path

import httpx2
from hypothesis import given, settings
from hypothesis import strategies as st

from glmbridge_server.edge.app import create_app
from glmbridge_server.traffic.usage_store import (
    _VALUES,
    UsageStore,
    _clean_values,
    clean_row,
    open_readonly,
)
from tests.server.faults import FaultServer, glm_completion, json_plan
from tests.server.traffic.test_usage_store import _row
from tests.support.servers import Start, make_bridge_settings


def test_values_are_clamped_to_their_columns() -> None:
    row = clean_row(_row(input_tokens=2**64, cached_tokens=-3, output_tokens=1e300,
                         latency_ms=math.nan, ttft_ms=math.inf, status=2**70,
                         queue_wait_ms=-1.0, model="m" * 5000, key_id=["a"],
                         ts=math.nan))  # type: ignore[arg-type]  # fmt: skip
    assert row.input_tokens == 2**63 - 1 and row.cached_tokens == 0
    assert row.output_tokens == 2**63 - 1 and row.status == 2**63 - 1
    assert row.latency_ms == 0.0 and row.ttft_ms is None and row.queue_wait_ms == 0.0
    assert row.model == "m" * 200 and row.key_id is None and math.isfinite(row.ts)


_ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=260),
    st.just(""),
    st.lists(st.integers(), max_size=1),
)
_COLUMNS = ("client", "route", "key_id", "model", "input_tokens", "cached_tokens",
            "output_tokens", "latency_ms", "ttft_ms", "status", "queue_wait_ms", "peak",
            "cost_usd", "served_model", "error_kind")  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_COLUMNS), _ANY_VALUE, max_size=6))
def test_the_fast_check_keeps_exactly_what_the_cleaners_keep(changes: dict[str, object]) -> None:
    """The request path checks a row at C speed and cleans only a row that fails (issue 22):
    whatever the values, what is queued is what the cleaners make of them."""
    row = _row(**changes)  # type: ignore[arg-type]
    assert _clean_values(row) == _VALUES(clean_row(row))


def test_the_writer_survives_a_row_sqlite_refuses(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "u.sqlite3")
    store.record(_row(input_tokens=2**63))  # clamped: written
    # as if they got past the clamp: each is lost alone
    store._queue.put(_VALUES(_row(input_tokens=2**63)))
    store._queue.put(_VALUES(_row(output_tokens=object())))  # type: ignore[arg-type]
    for _ in range(5):
        store.record(_row())
    store.flush()
    assert store._thread.is_alive()
    assert (store.written, store.lost) == (6, 2)
    store.record(_row())  # and it goes on writing
    store.close()
    assert store.written == 7
    count = open_readonly(tmp_path / "u.sqlite3").execute("SELECT count(*) FROM usage")
    assert count.fetchone()[0] == 7


def test_lost_rows_are_counted_exactly(tmp_path: Path) -> None:
    (tmp_path / "u.sqlite3").mkdir()  # a directory where the file should be
    store = UsageStore(tmp_path / "u.sqlite3")
    for _ in range(400):
        store.record(_row())
    store.flush()
    assert store.stats() == {"written": 0, "lost": 400, "queued": 0}
    store.close()


def test_a_huge_token_count_from_the_upstream_is_stored_and_shown(
    start_server: Start, tmp_path: Path
) -> None:
    huge = glm_completion("Hi")
    huge["usage"] = {"prompt_tokens": 2**64, "completion_tokens": 2**63, "total_tokens": 2**65}
    with FaultServer(json_plan(huge), json_plan(glm_completion("Hi"))) as upstream:
        bridge = start_server(create_app(make_bridge_settings(upstream.url,
                                                              data_dir=str(tmp_path))))  # fmt: skip
        body = {"model": "glm-4.7", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
        for _ in range(2):
            assert httpx2.post(f"{bridge.url}/v1/messages", json=body).status_code == 200
        bridge.app.state.usage_store.flush()
        status = httpx2.get(f"{bridge.url}/status").json()
        metrics = httpx2.get(f"{bridge.url}/metrics").text
    assert status["usage_rows"] == {"written": 2, "lost": 0, "queued": 0}
    assert 'glmbridge_usage_rows_total{outcome="written"} 2.0' in metrics
    assert 'glmbridge_usage_rows_total{outcome="lost"} 0.0' in metrics
