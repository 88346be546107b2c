"""Summaries of the usage store: per day, model or key, with Coding Plan credits.

Read by ``glmbridge-server usage`` and by ``/status`` (usage today, credits in the last
5 hours and 7 days against the plan's allowances). Credits come from
:class:`glmbridge.pricing.PriceTable`, per row's model and peak flag; models without
multipliers count tokens but no credits (``credits_unknown`` says how many requests).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Literal

from glmbridge.pricing import ALLOWANCES, PriceTable

__all__ = ["GROUPS", "format_table", "summarize", "window_usage"]

# A row is the model that answered (its ``model`` field: the Coding Plan answers legacy ids
# with GLM-5.3 or GLM-5.3-Flash, and bills them so), else the id sent.
_MODEL = "coalesce(served_model, model)"
GROUPS = {"day": "date(ts, 'unixepoch')", "model": _MODEL, "key": "key_id"}
_COLUMNS = ("requests", "errors", "input", "cached", "output", "credits")


def _rows(conn: sqlite3.Connection, group: str, since: float) -> list[tuple[Any, ...]]:
    sql = (
        f"SELECT {group}, {_MODEL}, peak, count(*), sum(status >= 400), sum(input_tokens), "
        "sum(cached_tokens), sum(output_tokens), avg(latency_ms) FROM usage WHERE ts >= ? "
        f"GROUP BY {group}, {_MODEL}, peak ORDER BY 1"
    )
    return conn.execute(sql, (since,)).fetchall()


def summarize(
    conn: sqlite3.Connection,
    *,
    by: Literal["day", "model", "key"] = "day",
    since: float = 0.0,
    prices: PriceTable | None = None,
) -> list[dict[str, Any]]:
    """One entry per day/model/key since ``since`` (Unix time), oldest or smallest first."""
    prices = prices or PriceTable.with_overrides()
    out: dict[Any, dict[str, Any]] = {}
    for group, model, peak, n, errors, inp, cached, output, _ in _rows(conn, GROUPS[by], since):
        entry = out.setdefault(group, {by: group, **dict.fromkeys(_COLUMNS, 0),
                                       "credits_unknown": 0})  # fmt: skip
        entry["requests"] += n
        entry["errors"] += errors or 0
        entry["input"] += inp or 0
        entry["cached"] += cached or 0
        entry["output"] += output or 0
        credits = prices.credits(model or "", inp or 0, cached or 0, output or 0, peak=bool(peak))
        if credits is None:
            entry["credits_unknown"] += n
        else:
            entry["credits"] = round(entry["credits"] + credits, 2)
    return list(out.values())


def window_usage(
    conn: sqlite3.Connection, plan: str, prices: PriceTable | None = None
) -> dict[str, Any]:
    """Today's totals (UTC) and the credits of the last 5 hours and 7 days, with the plan's
    allowances when the plan has some (an estimate from this gateway's own traffic)."""
    now = time.time()
    today = now - now % 86_400

    def total(since: float) -> dict[str, Any]:
        rows = summarize(conn, by="day", since=since, prices=prices)
        keys = (*_COLUMNS, "credits_unknown")
        summed = {k: sum(r[k] for r in rows) for k in keys}
        summed["credits"] = round(summed["credits"], 2)
        return summed

    five_hours, week = total(now - 5 * 3600), total(now - 7 * 86_400)
    allowance = ALLOWANCES.get(plan)
    windows: dict[str, Any] = {
        "5h": {"credits": five_hours["credits"]},
        "weekly": {"credits": week["credits"]},
    }
    if allowance is not None:
        for name, limit in zip(("5h", "weekly"), allowance, strict=True):
            windows[name]["allowance"] = limit
            windows[name]["used_percent"] = round(100 * windows[name]["credits"] / limit, 1)
    return {"today": total(today), "windows": windows}


def format_table(rows: list[dict[str, Any]], by: str) -> str:
    """A plain-text table for the terminal."""
    header = (by, *_COLUMNS)
    lines = [[str(r.get(by) or "-"), *(f"{r[c]:,}" for c in _COLUMNS)] for r in rows]
    widths = [max([len(h), *(len(line[i]) for line in lines)]) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{widths[0]}}}" if i == 0 else f"{{:>{w}}}"
                    for i, w in enumerate(widths))  # fmt: skip
    text = [fmt.format(*header), *(fmt.format(*line) for line in lines)]
    unknown = sum(r["credits_unknown"] for r in rows)
    if unknown:
        text.append(f"({unknown} request(s) on models without a credit price are not in credits)")
    return "\n".join(text)
