"""Optional: poll Z.ai's quota endpoint and throttle background traffic near exhaustion.

Off by default (``quota_poll = 0``): the endpoint (``GET /api/monitor/usage/quota/limit``
on the upstream's host) is undocumented; it is what Z.ai's console uses
(``../shared/reference/user-demand.md`` §0). With ``quota_poll = N`` every key is asked
every N seconds; the answer is read tolerantly (:func:`glmbridge.quota.parse_quota_limits`;
it answers 200 even for a bad key, so only the envelope says whether it worked; sources
disagree on a ``Bearer`` prefix, so the bare key is sent, as the console's scripts do,
and ``Bearer`` is tried when that fails).

When a key's token or credit window reaches ``background_throttle`` percent, background
calls stop using that key (they wait, then get the queue's 429) so the interactive turn
and subagents keep working until the reset. The windows are shown in ``/status``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import msgspec

from glmbridge.quota import QuotaWindow, parse_quota_limits
from glmbridge_server.keypool import KeyPool
from glmbridge_server.scheduler import Scheduler
from glmbridge_server.settings import Settings

__all__ = ["QUOTA_PATH", "poll_quotas", "quota_url"]

logger = logging.getLogger("glmbridge.quota")

QUOTA_PATH = "/api/monitor/usage/quota/limit"
_TIMEOUT = httpx2.Timeout(5.0)


def quota_url(settings: Settings) -> str:
    """The quota endpoint on the upstream's host."""
    parts = urlsplit(settings.upstream_base_url)
    return f"{parts.scheme}://{parts.netloc}{QUOTA_PATH}"


async def _fetch(http: httpx2.AsyncClient, url: str, key: str) -> list[QuotaWindow] | None:
    for auth in (key, f"Bearer {key}"):
        try:
            response = await http.get(url, headers={"Authorization": auth}, timeout=_TIMEOUT)
            windows = parse_quota_limits(msgspec.json.decode(response.content))
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
    go to ``state.quota_windows`` (by key index) and ``scheduler.near_exhaustion``."""
    url = quota_url(settings)
    while True:
        for index in range(len(pool)):
            windows = await _fetch(http, url, pool.lease(index).key)
            if windows is None:
                logger.info("quota endpoint gave no usable answer for key #%d", index)
                continue
            state.quota_windows[index] = [_as_json(w) for w in windows]
            near = any(
                w.kind != "TIME_LIMIT"
                and w.used_percent is not None
                and w.used_percent >= settings.background_throttle
                for w in windows
            )
            if near and index not in scheduler.near_exhaustion:
                logger.warning("key #%d: a quota window is past %g%%; background calls are "
                               "held back", index, settings.background_throttle)  # fmt: skip
            if near:
                scheduler.near_exhaustion.add(index)
            else:
                scheduler.near_exhaustion.discard(index)
        await anyio.sleep(settings.quota_poll)
