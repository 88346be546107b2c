"""Optional: poll Z.ai's quota endpoint and throttle background traffic near exhaustion.

Off by default (``quota_poll = 0``): the endpoint (``GET /api/monitor/usage/quota/limit``
on the upstream's host) is undocumented; it is what Z.ai's console uses
(``../shared/reference/user-demand.md`` §0). With ``quota_poll = N`` every key is asked
every N seconds; the answer is read tolerantly (:func:`glmbridge.quota.parse_quota_limits`;
it answers 200 even for a bad key, so only the envelope says whether it worked; sources
disagree on a ``Bearer`` prefix, so the bare key is sent, as the console's scripts do,
and ``Bearer`` is tried when that fails).

Without polling, an explicit ``plan`` (lite, pro, max) and the usage store give a local
estimate instead (:func:`estimate_quotas`: this gateway's credits per key in the last 5
hours and 7 days against the plan's allowances; other clients of the key are not seen).

Every field of the answer is untrusted: a value of the wrong type or out of range is read
as absent, an answer over 256 KiB is ignored, and anything else unexpected is logged once
(per key and kind) and ignored; the poller never stops on an answer.

When a key's token or credit window reaches ``background_throttle`` percent, background
calls stop using that key (they wait, then get the queue's 429) so the interactive turn
and subagents keep working until the reset. The windows are shown in ``/status``.

Several instances sharing Redis (or the worker processes of one server) poll once per round
between them: :func:`poll_quotas`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import httpx2
import msgspec

from glmbridge.pricing import ALLOWANCES
from glmbridge.quota import QuotaWindow, parse_quota_limits
from glmbridge_server.settings import Settings
from glmbridge_server.traffic.scheduler import Scheduler
from glmbridge_server.traffic.usage_report import summarize
from glmbridge_server.traffic.usage_store import key_id, open_readonly
from glmbridge_server.upstream.keypool import KeyPool

__all__ = ["QUOTA_PATH", "estimate_quotas", "poll_quotas", "quota_url"]

logger = logging.getLogger("glmbridge.quota")

QUOTA_PATH = "/api/monitor/usage/quota/limit"
_TIMEOUT = httpx2.Timeout(5.0)
_ESTIMATE_EVERY = 30.0
_FOLLOW_EVERY = 5.0  # seconds between two reads of the windows another instance polled
_MAX_ANSWER = 256 * 1024


def quota_url(settings: Settings) -> str:
    """The quota endpoint on the upstream's host."""
    parts = urlsplit(settings.upstream_base_url)
    return f"{parts.scheme}://{parts.netloc}{QUOTA_PATH}"


async def _fetch(http: httpx2.AsyncClient, url: str, key: str) -> list[QuotaWindow] | None:
    for auth in (key, f"Bearer {key}"):
        try:
            async with http.stream(
                "GET", url, headers={"Authorization": auth}, timeout=_TIMEOUT
            ) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_ANSWER:
                        return None  # no quota answer is this long
            windows = parse_quota_limits(msgspec.json.decode(bytes(body)))
        except (httpx2.HTTPError, msgspec.DecodeError):
            return None
        if windows is not None:
            return windows
    return None


def _as_json(window: QuotaWindow) -> dict[str, Any]:
    return {
        "kind": window.kind,
        "window": window.window,
        "used_percent": window.used_percent,
        "resets_at": window.resets_at.isoformat() if window.resets_at else None,
    }


async def poll_quotas(
    state: Any, settings: Settings, pool: KeyPool, scheduler: Scheduler, http: httpx2.AsyncClient
) -> None:
    """Poll every key's windows every ``quota_poll`` seconds, until cancelled; the results
    go to ``state.quota_windows`` (by key index) and ``scheduler.near_exhaustion``.

    With a shared state backend (Redis) one instance (or worker process) polls per round and
    publishes the windows by key id; the others read them every few seconds instead of
    asking Z.ai themselves."""
    url = quota_url(settings)
    complained: set[tuple[int, str]] = set()  # (key, error type) already logged
    key_ids = [key_id(pool.lease(i).key) for i in range(len(pool))]
    round_name = "quota:" + key_id(",".join(key_ids))  # instances polling the same keys
    every = settings.quota_poll
    while True:
        remote = scheduler.remote
        if remote is None or await remote.lead(round_name, every):
            near = await _poll_round(state, settings, pool, scheduler, http, url, complained)
            if remote is not None:
                shared = {kid: state.quota_windows.get(i) for i, kid in enumerate(key_ids)}
                await remote.publish(round_name, json.dumps(shared), 3 * every)
        else:
            news = await remote.news(round_name)
            near = _adopt(state, settings, scheduler, key_ids, news)
        _announce(near, scheduler, settings.background_throttle, "Z.ai's quota endpoint")
        scheduler.hold_back("polled", near)
        await anyio.sleep(every if remote is None else min(every, _FOLLOW_EVERY))


async def _poll_round(
    state: Any,
    settings: Settings,
    pool: KeyPool,
    scheduler: Scheduler,
    http: httpx2.AsyncClient,
    url: str,
    complained: set[tuple[int, str]],
) -> set[int]:
    """Ask Z.ai for every key's windows once; the keys past ``background_throttle``."""
    near: set[int] = set()
    for index in range(len(pool)):
        try:
            windows = await _fetch(http, url, pool.lease(index).key)
            if _poll_key(state, settings, scheduler, index, windows):
                near.add(index)
        except Exception as exc:  # an answer nobody foresaw: logged once, ignored
            if (index, type(exc).__name__) not in complained:
                complained.add((index, type(exc).__name__))
                logger.warning("quota answer for key #%d ignored (%s)", index,
                               type(exc).__name__)  # fmt: skip
            near |= scheduler.near_exhaustion & {index}
    return near


def _adopt(
    state: Any, settings: Settings, scheduler: Scheduler, key_ids: list[str], news: str | None
) -> set[int]:
    """Take the windows another instance published (``news``); the keys past the threshold.
    Nothing published yet (or unreadable): the last verdicts stand."""
    try:
        shared = json.loads(news) if news else None
    except ValueError:
        shared = None
    if not isinstance(shared, dict):
        return set(scheduler.near_exhaustion)
    near: set[int] = set()
    for index, kid in enumerate(key_ids):
        windows = shared.get(kid)
        if not isinstance(windows, list):
            near |= scheduler.near_exhaustion & {index}
            continue
        state.quota_windows[index] = windows
        if _past(windows, settings.background_throttle):
            near.add(index)
    return near


def _past(windows: list[dict[str, Any]], threshold: float) -> bool:
    """Whether a token or credit window (not the tool-call one) is past ``threshold`` %."""
    return any(
        isinstance(w, dict)
        and w.get("kind") != "TIME_LIMIT"
        and isinstance(w.get("used_percent"), int | float)
        and w["used_percent"] >= threshold
        for w in windows
    )


def _poll_key(
    state: Any,
    settings: Settings,
    scheduler: Scheduler,
    index: int,
    windows: list[QuotaWindow] | None,
) -> bool:
    """Record key ``index``'s windows; whether one is past ``background_throttle``."""
    if windows is None:
        logger.info("quota endpoint gave no usable answer for key #%d", index)
        return index in scheduler.near_exhaustion  # keep the last verdict
    state.quota_windows[index] = [_as_json(w) for w in windows]
    return _past(state.quota_windows[index], settings.background_throttle)


def _announce(near: set[int], scheduler: Scheduler, threshold: float, source: str) -> None:
    for index in sorted(near - scheduler.near_exhaustion):
        logger.warning("key #%d: a quota window is past %g%% (%s); background calls are "
                       "held back", index, threshold, source)  # fmt: skip


async def estimate_quotas(
    settings: Settings, scheduler: Scheduler, db: Path, key_ids: list[str]
) -> None:
    """Without polling: this gateway's own credits per key (usage store) against the plan's
    allowances (an explicit ``plan`` of lite, pro or max), every ``_ESTIMATE_EVERY`` s."""
    allowance = ALLOWANCES[settings.plan]
    while True:
        await anyio.sleep(_ESTIMATE_EVERY)
        try:
            spent = await anyio.to_thread.run_sync(_credits_by_key, db)
        except (sqlite3.Error, OSError) as exc:
            logger.info("usage store unreadable for the quota estimate: %s", exc)
            continue
        limit = settings.background_throttle / 100
        near = {
            i for i, kid in enumerate(key_ids)
            if spent[0].get(kid, 0.0) >= allowance[0] * limit
            or spent[1].get(kid, 0.0) >= allowance[1] * limit
        }  # fmt: skip
        _announce(near, scheduler, settings.background_throttle, "local estimate")
        scheduler.hold_back("estimated", near)


def _credits_by_key(db: Path) -> tuple[dict[str, float], dict[str, float]]:
    now = time.time()
    conn = open_readonly(db)
    try:
        five = summarize(conn, by="key", since=now - 5 * 3600)
        week = summarize(conn, by="key", since=now - 7 * 86_400)
    finally:
        conn.close()
    return ({r["key"]: r["credits"] for r in five}, {r["key"]: r["credits"] for r in week})
