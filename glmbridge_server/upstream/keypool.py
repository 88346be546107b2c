"""The upstream API key pool: sticky per client session, with cooldown and failover.

GLM's prompt cache is per key, so a client session should keep using one key. Each
session id ranks the keys by rendezvous hashing (highest ``blake2b(session, key index)``
first): the same session always prefers the same key, and when that key cools down its
sessions spread over the remaining keys instead of piling onto one neighbour. Requests
without a session id go round robin.

A key that the upstream rejects (401/403) or that ran out of quota (codes 1113,
1308–1310) cools down for a while; callers then fail over to the next key in the
session's ranking. A spent 5-hour or weekly window (1308/1310) cools its key until the
window resets (:mod:`glmbridge.quota`), and the pool remembers which window it was.
Keys are identified by their index in logs and errors, never by value.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass

from glmbridge.quota import QuotaReset

__all__ = ["KeyLease", "KeyPool", "session_id_from"]

_SESSION_IN_USER_ID = re.compile(r"_session_([0-9A-Za-z-]{8,})")


@dataclass(frozen=True, slots=True)
class KeyLease:
    """A key chosen for one upstream attempt; ``index`` is what logs may show."""

    index: int
    key: str

    def __repr__(self) -> str:
        return f"KeyLease(index={self.index})"


class KeyPool:
    """A set of API keys with per-session affinity and cooldowns.

    Parameters:
        keys: the API keys, in configuration order.
        clock: a monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, keys: Sequence[str], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = tuple(keys)
        self._clock = clock
        self._cool_until = [0.0] * len(self._keys)
        self._quota: list[QuotaReset | None] = [None] * len(self._keys)
        self._round_robin = itertools.count()

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyPool({len(self._keys)} keys, {self.healthy_count()} healthy)"

    def healthy_count(self) -> int:
        """How many keys are not cooling down now."""
        now = self._clock()
        return sum(1 for until in self._cool_until if until <= now)

    def is_cooling(self, index: int) -> bool:
        """Whether key ``index`` is cooling down now."""
        return self._cool_until[index] > self._clock()

    def cooling_remaining(self, index: int) -> float:
        """Seconds until key ``index`` is back in rotation (0 when healthy)."""
        return max(0.0, self._cool_until[index] - self._clock())

    def lease(self, index: int) -> KeyLease:
        """The lease for key ``index`` (the scheduler picks the index)."""
        return KeyLease(index, self._keys[index])

    def ranking(self, session_id: str | None) -> list[int]:
        """Key indices in this session's order of preference (round robin without a session)."""
        n = len(self._keys)
        if n == 0:
            return []
        if session_id is None:
            start = next(self._round_robin) % n
            return [(start + i) % n for i in range(n)]
        seed = session_id.encode("utf-8", "surrogatepass")

        def score(index: int) -> bytes:
            return hashlib.blake2b(seed + b"\x00" + str(index).encode(), digest_size=8).digest()

        return sorted(range(n), key=score, reverse=True)

    def select(self, session_id: str | None, *, exclude: Container[int] = ()) -> KeyLease | None:
        """The key to use for a session, skipping ``exclude`` (keys already tried).

        Healthy keys are preferred in ranking order. When every remaining key is cooling
        down, the one that recovers first is returned anyway: a request that might succeed
        is better than a certain error (the user may have topped up the account).
        Returns ``None`` when no key is left.
        """
        candidates = [i for i in self.ranking(session_id) if i not in exclude]
        if not candidates:
            return None
        now = self._clock()
        healthy = [i for i in candidates if self._cool_until[i] <= now]
        index = healthy[0] if healthy else min(candidates, key=lambda i: self._cool_until[i])
        return KeyLease(index, self._keys[index])

    def cool_down(self, index: int, seconds: float, quota: QuotaReset | None = None) -> None:
        """Take key ``index`` out of rotation for ``seconds`` (extends, never shortens);
        ``quota`` is the spent window that caused it, if known."""
        self._cool_until[index] = max(self._cool_until[index], self._clock() + seconds)
        if quota is not None:
            self._quota[index] = quota

    def quota(self, index: int) -> QuotaReset | None:
        """The spent window key ``index`` is cooling for, if any (``None`` once it reset)."""
        spent = self._quota[index]
        if spent is not None and not self.is_cooling(index):
            self._quota[index] = spent = None
        return spent

    def all_spent(self, exclude: Container[int] = ()) -> QuotaReset | None:
        """The window that resets first when every key not in ``exclude`` is cooling for a
        spent quota window (a request now would certainly fail), else ``None``."""
        spent = [self.quota(i) for i in range(len(self._keys)) if i not in exclude]
        if not spent or any(q is None for q in spent):
            return None
        return min((q for q in spent if q is not None), key=lambda q: q.resets_at)

    def status(self) -> list[dict[str, object]]:
        """Per-key health, without the keys: ``[{index, healthy, cooldown_remaining,
        quota}]``; ``quota`` names a spent window and its reset (ISO 8601, UTC)."""
        now = self._clock()
        out: list[dict[str, object]] = []
        for i, until in enumerate(self._cool_until):
            spent = self.quota(i)
            out.append({
                "index": i,
                "healthy": until <= now,
                "cooldown_remaining": max(0.0, until - now),
                "quota": None if spent is None else {
                    "code": spent.code,
                    "window": spent.window,
                    "resets_at": spent.resets_at.isoformat(),
                },
            })  # fmt: skip
        return out


def session_id_from(header: str | None, user_id: str | None) -> str | None:
    """The client session id used for key affinity.

    Order: the ``x-claude-code-session-id`` header; else a session id inside Anthropic
    ``metadata.user_id`` (a JSON object with ``session_id``, or Claude Code's
    ``user_<hash>_account_<uuid>_session_<uuid>`` form); else the whole ``user_id``
    (one end user keeps one key); else ``None`` (round robin).
    """
    if header and header.strip():
        return header.strip()
    if not user_id:
        return None
    if user_id.lstrip().startswith("{"):
        try:
            decoded = json.loads(user_id)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            value = decoded.get("session_id")
            if isinstance(value, str) and value:
                return value
    match = _SESSION_IN_USER_ID.search(user_id)
    return match.group(1) if match else user_id
