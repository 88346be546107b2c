"""Shared state for several glmbridge instances: key slots and cooldowns in Redis.

Theory of operation. Each instance keeps its own :class:`~glmbridge_server.traffic.scheduler.
Scheduler` (its queue and priorities are local); Redis adds one more gate in front of
the upstream: a **distributed semaphore with leases** per key. Taking a slot runs one Lua
script on a sorted set ``glmbridge:slots:<key id>``: expired leases are dropped, and if
fewer than the key's limit remain a new lease (a random id scored with its expiry, on
Redis's own clock) is added. A holder renews its leases every ``ttl / 3`` seconds, so an
instance that dies without releasing frees its slots within ``ttl`` seconds; a release
removes the lease at once.

The lease set comes with **one queue per key across instances** (issue 24, item 6): a
request that finds every lease taken leaves its ticket in ``glmbridge:queue:<key id>``,
scored by its arrival (wall clock) plus its priority class times ``queue_aging`` (the
local queue's score), and asks again every few tens of milliseconds; a lease goes only to a
ticket with fewer better-scored tickets ahead than there are free slots. So the instances
are served in one order, best score first, instead of whichever happens to poll just after
a release. A ticket that stops asking (its instance died) drops out after
:data:`HEARTBEAT` seconds; one that gives up is removed at once. Cancelled while taking, the
instance removes what the script may have added (:meth:`RedisState.take`).

Cooldowns (a key rejected, a spent quota window) are shared the same way: a cooldown
writes ``glmbridge:cool:<key id>`` with the reset time and expires with it; every
instance copies the others' cooldowns into its key pool once a second.

A limit learned from a ``1302`` (:meth:`Scheduler.throttled`) is shared too: it is written
to ``glmbridge:limit:<key id>`` for ``slot_learning`` seconds, and the take script grants
no more leases than the lowest of the caller's limit and that one.

Work that one instance can do for all (the quota poller, the model-list follower) is done
by one of them per round: :meth:`RedisState.lead` is a lock that expires with the round,
and the leader publishes what it found (:meth:`publish`) for the others to read
(:meth:`news`). Several worker processes of one server (``workers``) are instances too.

**Redis down** (or unreachable at start): the instance carries on with its local state
only and logs a warning (at most every 30 s); it retries Redis every few seconds. The
key's limit is then enforced per instance, not across them.

Key ids are hashes (:func:`glmbridge_server.traffic.usage_store.key_id`), never the keys.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import anyio

from glmbridge.quota import QuotaReset
from glmbridge_server.upstream.keypool import KeyPool

__all__ = ["HEARTBEAT", "LOCAL_LEASE", "RedisState"]

logger = logging.getLogger("glmbridge.redis")

#: The lease given while Redis is unreachable: the local limit alone applies.
LOCAL_LEASE = "local"
_PREFIX = "glmbridge"
_RETRY_AFTER_FAILURE = 3.0
#: A waiting ticket that has not asked again for this long leaves the shared queue.
HEARTBEAT = 3.0
_WARN_EVERY = 30.0

# KEYS: the key's lease set, its queue (ticket -> score), the queue's heartbeats (ticket ->
# expiry ms), the limit learned from a 1302 by any instance (expires by itself). ARGV:
# limit, lease id, ttl ms, ticket, score, heartbeat ms. The lower limit wins. Redis's clock for
# expiries, so that the instances' clocks never matter there. A lease is granted only when
# fewer tickets with a better score wait than there are free slots: one queue across
# instances, best score first. A ticket whose instance stopped asking drops out after the
# heartbeat time. Returns {1, 0} when the lease was added, else {0, tickets ahead}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(stale) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
local ticket = ARGV[4]
local ahead = redis.call('ZRANK', KEYS[2], ticket)
if not ahead then
  ahead = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. ARGV[5])
end
local limit = tonumber(ARGV[1])
local learned = tonumber(redis.call('GET', KEYS[4]) or '')
if learned and learned < limit then
  limit = learned
end
local free = limit - redis.call('ZCARD', KEYS[1])
if free > ahead then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 4)
  redis.call('ZREM', KEYS[2], ticket)
  redis.call('ZREM', KEYS[3], ticket)
  return {1, 0}
end
redis.call('ZADD', KEYS[2], 'NX', ARGV[5], ticket)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ticket)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[6]) * 4)
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[6]) * 4)
return {0, ahead}
"""
# KEYS: lease sets; ARGV[1] ttl ms, then one lease id per key. Renews leases still held.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, k in ipairs(KEYS) do
  if redis.call('ZSCORE', k, ARGV[i + 1]) then
    redis.call('ZADD', k, 'XX', now + tonumber(ARGV[1]), ARGV[i + 1])
    redis.call('PEXPIRE', k, tonumber(ARGV[1]) * 4)
  end
end
return 1
"""


class RedisState:
    """The Redis side of the scheduler and the key pool (see the module docstring).

    Parameters:
        url: a ``redis://`` URL.
        key_ids: the hashed id of each key, in pool order.
        ttl: seconds a lease lives without renewal.
    """

    def __init__(self, url: str, key_ids: Sequence[str], *, ttl: float = 15.0) -> None:
        import redis.asyncio as aioredis

        self._client: Any = aioredis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, decode_responses=True
        )
        # EVALSHA (the script text is sent once, then only its hash)
        self._take_script = self._client.register_script(_TAKE)
        self._renew_script = self._client.register_script(_RENEW)
        self._key_ids = list(key_ids)
        self._ttl_ms = int(ttl * 1000)
        self._held: dict[str, str] = {}  # lease id -> slot set
        self._down_until = 0.0
        self._last_warning = 0.0
        self._tasks: set[Any] = set()  # fire-and-forget releases, kept from the GC
        self._me = f"{os.getpid()}-{os.urandom(4).hex()}"  # this instance, in lead locks
        self.degraded = False
        #: Per key index: tickets ahead in the shared queue at the last refused take.
        self.ahead: dict[int, int] = {}

    def _slots(self, index: int) -> str:
        return f"{_PREFIX}:slots:{self._key_ids[index]}"

    def _queue(self, index: int) -> str:
        return f"{_PREFIX}:queue:{self._key_ids[index]}"

    def _beats(self, index: int) -> str:
        return f"{_PREFIX}:beats:{self._key_ids[index]}"

    def _cool(self, index: int) -> str:
        return f"{_PREFIX}:cool:{self._key_ids[index]}"

    def _limit(self, index: int) -> str:
        return f"{_PREFIX}:limit:{self._key_ids[index]}"

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + _RETRY_AFTER_FAILURE
        self.degraded = True
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY:
            self._last_warning = now
            logger.warning("Redis unavailable (%s): using local state only; key limits now "
                           "hold per instance", type(exc).__name__)  # fmt: skip

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    # -- the semaphore ---------------------------------------------------------------------

    async def take(
        self, index: int, limit: int, *, ticket: str | None = None, score: float = 0.0
    ) -> str | None:
        """A lease on key ``index`` if fewer than ``limit`` are held across instances and
        no better ``ticket`` waits for one; ``None`` when not (the ticket then keeps its
        place in the key's queue: ask again within :data:`HEARTBEAT`, or :meth:`leave`);
        :data:`LOCAL_LEASE` when Redis is down. ``score`` orders the queue (lower first).

        Cancelled at any point, it takes nothing: a lease Redis may have added is removed.
        """
        if not self._available():
            return LOCAL_LEASE
        lease = os.urandom(8).hex()
        ticket = ticket or lease
        keys = [self._slots(index), self._queue(index), self._beats(index), self._limit(index)]
        args: list[str | int] = [
            limit, lease, self._ttl_ms, ticket, repr(float(score)), int(HEARTBEAT * 1000)
        ]  # fmt: skip
        try:
            ok, ahead = await self._take_script(keys=keys, args=args)
        except Exception as exc:  # redis.RedisError, OSError, timeouts: degrade, never fail
            self._failed(exc)
            return LOCAL_LEASE
        except BaseException:  # cancelled: the script may have run all the same
            self._spawn(self._forget(keys, lease, ticket))
            raise
        if self.degraded:
            self.degraded = False
            logger.warning("Redis is back: key slots are shared again")
        if not ok:
            self.ahead[index] = int(ahead)
            return None
        self._held[lease] = keys[0]
        return lease

    def leave(self, index: int, ticket: str) -> None:
        """Take ``ticket`` out of key ``index``'s queue (it stopped waiting)."""
        if self._available():
            keys = [self._slots(index), self._queue(index), self._beats(index)]
            self._spawn(self._forget(keys, None, ticket))

    async def _forget(self, keys: list[str], lease: str | None, ticket: str) -> None:
        try:
            with anyio.move_on_after(2.0):
                if lease is not None:
                    await self._client.zrem(keys[0], lease)
                await self._client.zrem(keys[1], ticket)
                await self._client.zrem(keys[2], ticket)
        except Exception as exc:  # the lease and the ticket expire by themselves
            self._failed(exc)

    def release(self, lease: str) -> None:
        """Give a lease back (in the background: callers are synchronous)."""
        slots = self._held.pop(lease, None)
        if slots is None:
            return
        self._spawn(self._zrem(slots, lease))

    async def _zrem(self, slots: str, lease: str) -> None:
        try:
            await self._client.zrem(slots, lease)
        except Exception as exc:  # the lease expires by itself within ttl
            self._failed(exc)

    def _spawn(self, coro: Any) -> None:
        import asyncio

        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- cooldowns ------------------------------------------------------------------------

    def share_cooldown(self, index: int, seconds: float, quota: QuotaReset | None) -> None:
        """Publish a key's cooldown to the other instances."""
        value = json.dumps({
            "until": time.time() + seconds,
            "quota": None if quota is None else {
                "code": quota.code, "window": quota.window,
                "resets_at": quota.resets_at.isoformat(),
            },
        })  # fmt: skip
        if seconds > 0 and self._available():
            self._spawn(self._set(self._cool(index), value, seconds))

    async def _set(self, name: str, value: str, seconds: float) -> None:
        try:
            await self._client.set(name, value, px=max(1, int(seconds * 1000)))
        except Exception as exc:
            self._failed(exc)

    async def _pull_cooldowns(self, pool: KeyPool) -> None:
        names = [self._cool(i) for i in range(len(self._key_ids))]
        values = await self._client.mget(names)
        now = time.time()
        for index, raw in enumerate(values):
            if not raw:
                continue
            data = json.loads(raw)
            left = float(data["until"]) - now
            q = data.get("quota")
            quota = None
            if q:
                resets = datetime.fromisoformat(q["resets_at"]).astimezone(UTC)
                quota = QuotaReset(q["code"], q["window"], resets)
            if left > 0 and pool.cooling_remaining(index) < left - 1:
                pool.cool_down(index, left, quota)

    def share_limit(self, index: int, limit: int, seconds: float) -> None:
        """Publish a limit learned from a ``1302`` on key ``index`` for ``seconds``."""
        if seconds > 0 and self._available():
            self._spawn(self._set(self._limit(index), str(limit), seconds))

    # -- work done by one instance for all ------------------------------------------------

    async def lead(self, name: str, seconds: float) -> bool:
        """Whether this instance does the ``name`` work of the round: the first to ask in
        each ``seconds`` wins; every instance does its own while Redis is unavailable."""
        if not self._available():
            return True
        try:
            won = await self._client.set(f"{_PREFIX}:lead:{name}", self._me, nx=True,
                                         px=max(1, int(seconds * 1000)))  # fmt: skip
        except Exception as exc:
            self._failed(exc)
            return True
        return bool(won)

    async def publish(self, name: str, value: str, seconds: float) -> None:
        """Leave the ``name`` work's result for the other instances for ``seconds``."""
        if self._available():
            await self._set(f"{_PREFIX}:news:{name}", value, seconds)

    async def news(self, name: str) -> str | None:
        """The last result of the ``name`` work another instance published, if any."""
        if not self._available():
            return None
        try:
            value = await self._client.get(f"{_PREFIX}:news:{name}")
        except Exception as exc:
            self._failed(exc)
            return None
        return value if isinstance(value, str) else None

    async def shared_status(self) -> list[dict[str, int | None]] | None:
        """Per key, across every instance: leases held, tickets queued, and the learned
        limit (``None``: none); ``None`` when Redis does not answer."""
        if not self._available():
            return None
        try:
            with anyio.fail_after(0.5):
                async with self._client.pipeline(transaction=False) as pipe:
                    for i in range(len(self._key_ids)):  # (a dead instance's lease: ttl)
                        pipe.zcard(self._slots(i))
                        pipe.zcard(self._queue(i))
                        pipe.get(self._limit(i))
                    values = await pipe.execute()
        except Exception as exc:
            self._failed(exc)
            return None
        return [
            {"in_use": int(held), "queued": int(queued),
             "learned_limit": int(learned) if learned else None}
            for held, queued, learned in zip(values[::3], values[1::3], values[2::3], strict=True)
        ]  # fmt: skip

    # -- the background loop -----------------------------------------------------------

    async def run(self, pool: KeyPool) -> None:
        """Renew held leases and copy shared cooldowns, until cancelled."""
        interval = min(1.0, self._ttl_ms / 3000)
        while True:
            await anyio.sleep(interval)
            if not self._available():
                continue
            try:
                if self._held:
                    leases = list(self._held.items())
                    keys = [slots for _, slots in leases]
                    args: list[str | int] = [self._ttl_ms, *(lease for lease, _ in leases)]
                    await self._renew_script(keys=keys, args=args)
                await self._pull_cooldowns(pool)
            except Exception as exc:
                self._failed(exc)

    async def aclose(self) -> None:
        """Release every held lease and close the connection."""
        try:
            with anyio.move_on_after(1.0):
                for lease, slots in list(self._held.items()):
                    await self._client.zrem(slots, lease)
            await self._client.aclose()
        except Exception as exc:  # shutting down: nothing to save
            logger.debug("closing Redis: %s", exc)
