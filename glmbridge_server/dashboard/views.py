"""The dashboard's data, framework-free: usage from the SQLite store, the settings table.

Usage comes from the same store and the same summaries as ``glmbridge-server usage`` and
``/status`` (:mod:`glmbridge_server.usage_report`), so the numbers agree; the extras here
(a timeline, latency and time-to-first-token percentiles, errors by status) are read from
the same rows. The settings table shows every setting with its value (secrets redacted as
in ``GET /config``), where it came from, and whether changing it needs a restart; the
editable ones carry an editor description read from ``POST /config``'s own schema, so the
page offers exactly what the server accepts.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import msgspec

from glmbridge.pricing import PriceTable
from glmbridge.profiles import PROFILES
from glmbridge_server.settings import Settings
from glmbridge_server.traffic.usage_report import summarize, window_usage

__all__ = ["RANGES", "percentile", "settings_view", "usage_view"]

#: Range name -> (seconds covered, bucket seconds of the timeline).
RANGES: dict[str, tuple[int, int]] = {
    "day": (86_400, 3_600),
    "week": (7 * 86_400, 86_400),
    "month": (30 * 86_400, 86_400),
}
_LATENCY_ROWS = 50_000  # percentiles from at most this many recent requests
_SUMMED = ("requests", "errors", "input", "cached", "output", "credits", "credits_unknown")


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank ``q``-quantile (0-1) of ascending values, ``None`` when empty."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return round(sorted_values[rank], 1)


def _cache_ratio(entry: dict[str, Any]) -> dict[str, Any]:
    seen = entry["input"] + entry["cached"]
    entry["cache_hit_ratio"] = round(entry["cached"] / seen, 4) if seen else None
    return entry


def _timeline(conn: sqlite3.Connection, since: float, bucket: int) -> list[dict[str, Any]]:
    sql = (
        "SELECT CAST(ts / ? AS INTEGER) * ?, count(*), sum(status >= 400), sum(input_tokens), "
        "sum(cached_tokens), sum(output_tokens) FROM usage WHERE ts >= ? GROUP BY 1 ORDER BY 1"
    )
    rows = conn.execute(sql, (bucket, bucket, since)).fetchall()
    return [
        {"start": start, "requests": n, "errors": errors or 0, "input": inp or 0,
         "cached": cached or 0, "output": out or 0}
        for start, n, errors, inp, cached, out in rows
    ]  # fmt: skip


def _latency(conn: sqlite3.Connection, since: float) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT model, latency_ms, ttft_ms FROM usage WHERE ts >= ? AND status < 400 "
        "ORDER BY ts DESC LIMIT ?",
        (since, _LATENCY_ROWS),
    ).fetchall()
    groups: dict[str, tuple[list[float], list[float]]] = {"all": ([], [])}
    for model, latency, ttft in rows:
        for name in ("all", model or "-"):
            total, first = groups.setdefault(name, ([], []))
            if latency is not None:
                total.append(latency)
            if ttft is not None:
                first.append(ttft)
    out: dict[str, Any] = {}
    for name, (total, first) in groups.items():
        total.sort()
        first.sort()
        out[name] = {
            "count": len(total),
            **{f"latency_p{q}": percentile(total, q / 100) for q in (50, 90, 99)},
            **{f"ttft_p{q}": percentile(first, q / 100) for q in (50, 90, 99)},
        }
    return out


def usage_view(
    conn: sqlite3.Connection,
    *,
    range_name: str,
    plan: str,
    now: float | None = None,
    prices: PriceTable | None = None,
) -> dict[str, Any]:
    """Usage over a range (``day``, ``week``, ``month``): totals, a timeline, per model,
    key and client, latency percentiles, errors by status and kind, and the plan's windows."""
    span, bucket = RANGES[range_name]
    now = time.time() if now is None else now
    since = now - span
    prices = prices or PriceTable.with_overrides()
    by_model = [_cache_ratio(r) for r in summarize(conn, by="model", since=since, prices=prices)]
    totals = {k: sum(r[k] for r in by_model) for k in _SUMMED}
    totals["credits"] = round(totals["credits"], 2)
    errors = conn.execute(
        "SELECT status, error_kind, count(*) FROM usage WHERE ts >= ? "
        "AND (status >= 400 OR error_kind IS NOT NULL) GROUP BY 1, 2 ORDER BY 3 DESC",
        (since,),
    ).fetchall()
    return {
        "range": range_name,
        "since": since,
        "now": now,
        "bucket": bucket,
        "totals": _cache_ratio(totals),
        "timeline": _timeline(conn, since, bucket),
        "by_model": by_model,
        "by_key": [_cache_ratio(r) for r in summarize(conn, by="key", since=since, prices=prices)],
        "by_client": [
            _cache_ratio(r) for r in summarize(conn, by="client", since=since, prices=prices)
        ],
        "latency": _latency(conn, since),
        "errors": [{"status": status, "kind": kind, "count": n} for status, kind, n in errors],
        "windows": window_usage(conn, plan, prices),
    }


# --- settings --------------------------------------------------------------------------------


def _source_kind(label: str | None) -> str:
    if label is None:
        return "default"
    for prefix, kind in (
        ("command line", "command line"),
        ("environment", "environment"),
        ("config file", "file"),
        (".env file", ".env file"),
    ):
        if label.startswith(prefix):
            return kind
    return "file"


def _editor(info: msgspec.inspect.Type) -> dict[str, Any]:
    """How the page edits one ``POST /config`` field, from its schema type."""
    if isinstance(info, msgspec.inspect.UnionType):
        info = next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
    if isinstance(info, msgspec.inspect.BoolType):
        return {"type": "bool"}
    if isinstance(info, msgspec.inspect.LiteralType):
        return {"type": "choice", "choices": list(info.values)}
    if isinstance(info, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        bounds = {k: getattr(info, k) for k in ("ge", "gt", "le", "lt")}
        kind = "int" if isinstance(info, msgspec.inspect.IntType) else "number"
        return {"type": kind, **{k: v for k, v in bounds.items() if v is not None}}
    if isinstance(info, msgspec.inspect.ListType):
        return {"type": "int_list"}
    if isinstance(info, msgspec.inspect.DictType):
        return {"type": "map"}
    return {"type": "text"}


def _editor_for(name: str, value: object, fields: dict[str, msgspec.inspect.Type]) -> Any:
    if name not in fields:
        return None
    if name == "upstream":  # a profile name; a custom URL can only change by a restart
        return {"type": "choice", "choices": list(PROFILES)} if value in PROFILES else None
    return _editor(fields[name])


def settings_view(
    settings: Settings, startup: Settings, editable: type[msgspec.Struct]
) -> list[dict[str, Any]]:
    """Every setting: name, value (secrets redacted), source, restart flag, editor.

    ``startup`` is the configuration the server started with: a value that differs from it
    was changed at runtime (``POST /config``). ``editable`` is ``POST /config``'s schema.
    """
    now, then = settings.redacted(), startup.redacted()
    fields = {f.name: f.type for f in msgspec.inspect.type_info(editable).fields}  # type: ignore[attr-defined]
    rows = []
    for name in now:
        label = settings.sources.get(name)
        runtime = now[name] != then[name]
        editor = _editor_for(name, now[name], fields)
        rows.append({
            "name": name,
            "value": now[name],
            "source": "runtime" if runtime else _source_kind(label),
            "source_detail": "POST /config" if runtime else (label or "built-in default"),
            "restart": editor is None,
            "editor": editor,
        })  # fmt: skip
    return rows
