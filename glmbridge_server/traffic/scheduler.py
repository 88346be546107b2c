"""Upstream slots per API key, and a priority queue in front of them.

Theory of operation. Z.ai counts requests in flight per key: a Coding Plan key allows one
to three, and one more is answered ``429``/``1302`` (``../shared/reference/user-demand.md``
§1.1). So every upstream attempt first takes a *slot* on its key and gives it back when
the upstream's answer is finished (a stream: when its last byte is read).

* **Limits.** Each key has a configured limit (``key_slots``, else the plan's default:
  :data:`PLAN_SLOTS`). A ``1302`` lowers the key's *learned* limit to one less than what
  was in flight (never below one) for ``slot_learning`` seconds: the plan's concurrency
  changes without notice (zai-org/GLM-4#802), so the limit is learned, not only set.
* **Choosing a key.** The session's key ranking (:meth:`KeyPool.ranking`, rendezvous
  hashing: its prompt cache) is walked in order; the first key that is not cooling down
  and has a free slot wins, so a session stays on its key while that has room and
  spills to the next one when it is full. When every candidate key is cooling down,
  the one that recovers first is used anyway (as :meth:`KeyPool.select` does).
* **The queue.** When no candidate key has a free slot, the request waits. A freed slot
  goes to the waiting request with the lowest *score*, ``enqueued_at + rank × aging``:
  an interactive turn (rank 0) overtakes background calls (rank 2) that arrived up to
  ``2 × aging`` seconds before it, and a background call that has waited longer than
  that is served first: aging is built into the score, so nothing starves.
* **Bounded waits.** Past ``max_queue_wait`` the request fails with a native
  rate-limit error and a ``retry-after`` of the queue's expected drain time (the requests
  waiting times the recent slot hold time, over the slots), with ±25 % jitter so that
  clients rejected together do not come back together. The relay keeps a queued stream
  alive meanwhile (headers after ``commit_after``, then keep-alives) and stops its
  first-output clock while it waits.

Everything runs on one event loop: the state is plain lists and the waiting is one asyncio
future per wait (and one timer for the re-check); the uncontended path takes a slot without
awaiting. With a
shared backend (``redis_url``: :mod:`glmbridge_server.traffic.redis_state`) a request that has its
local slot also waits, holding it, in the key's queue shared by every instance, scored like
the local queue (arrival on the wall clock plus its class times ``aging``), until Redis
grants it a lease; that wait counts in the request's queue wait. Whatever stops an acquire
(a client hanging up, a timeout) at whichever await gives back all it took: the local slot,
the lease, the ticket in the shared queue.
Keys in ``near_exhaustion`` (the optional quota poller, the local credit estimate) are not
offered to background calls.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import random
import time
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from glmbridge.errors import ErrorKind, UpstreamError
from glmbridge.priority import Priority
from glmbridge_server.upstream.keypool import KeyLease, KeyPool

if TYPE_CHECKING:
    from glmbridge_server.traffic.redis_state import RedisState

__all__ = ["PLAN_SLOTS", "QueueTimeout", "Scheduler", "Slot", "Ticket", "UNLIMITED"]

#: "No limit": custom upstreams whose concurrency is unknown (1302s still teach one).
UNLIMITED = 1_000_000
#: Slots per key by plan: Coding Plan keys allow 1-3 (user-demand.md §1.1; wire-specs
#: A.12 "Max > Pro > Lite, dynamically adjusted"); pay-as-you-go limits are per model and
#: account, typically higher (z.ai/manage-apikey/rate-limits).
PLAN_SLOTS = {"lite": 1, "pro": 2, "max": 3, "payg": 10, "unlimited": UNLIMITED}
# The waiters re-check at least this often (cooldowns and learned limits expire by time).
_RECHECK = 1.0
# How often a request in the shared queue asks Redis again (its heartbeat there, too).
_REMOTE_POLL = 0.05
# The longest retry-after a queue timeout suggests, before jitter.
_MAX_RETRY_AFTER = 60.0
# Weight of the newest sample in the moving average of slot hold times.
_EWMA = 0.2


class QueueTimeout(UpstreamError):
    """The request waited ``max_queue_wait`` for a slot: a native rate-limit error."""


@dataclass(slots=True, eq=False)
class Ticket:
    """One request's claim on the slots: its class, its session and the relay's hooks.

    ``on_queue`` runs when the request has to wait, ``on_grant`` when a queued request
    gets its slot: the relay stops and restarts its first-output clock with them.
    ``holding``: the wait is a throttle hold (a 1302 held in the bridge), not a queue.
    """

    priority: Priority = Priority.INTERACTIVE
    session: str | None = None
    on_queue: Callable[[], None] | None = None
    on_grant: Callable[[float], None] | None = None
    waited: float = 0.0
    holding: bool = False
    since: float | None = None  # first time in the queue: retries keep their seniority
    arrived: float | None = None  # wall clock at its first acquire (the shared queue's order)
    tag: str = field(default_factory=lambda: os.urandom(8).hex())  # its id in Redis


@dataclass(slots=True, eq=False)
class Slot:
    """A slot held on one key; :meth:`release` (idempotent) gives it back."""

    lease: KeyLease
    scheduler: Scheduler
    taken_at: float
    released: bool = False
    remote: str | None = None  # the Redis lease, with a shared state backend

    def release(self) -> None:
        """Give the slot back (once) and hand it to the best waiting request."""
        if not self.released:
            self.released = True
            self.scheduler._release(self)
            backend = self.scheduler.remote
            if self.remote is not None and backend is not None:
                backend.release(self.remote)


@dataclass(slots=True, eq=False)
class _Waiter:
    ticket: Ticket
    exclude: Container[int]
    score: float
    seq: int
    wake: asyncio.Future[None] | None = None  # set while the request waits
    slot: Slot | None = None

    def notify(self) -> None:
        """Wake the waiting request (it has a slot now)."""
        _settle(self.wake)


def _settle(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


async def _woken(waiter: _Waiter, timeout: float) -> None:
    """Wait until ``waiter`` is notified or ``timeout`` seconds pass: a plain future and a
    timer, not an anyio event and cancel scope (a queued request waits here, issue 22)."""
    loop = asyncio.get_running_loop()
    wake = waiter.wake = loop.create_future()
    timer = loop.call_later(timeout, _settle, wake)
    try:
        await wake
    finally:
        timer.cancel()
        waiter.wake = None


class Scheduler:
    """Slots per key of a :class:`KeyPool`, and the priority queue (see the module doc).

    Parameters:
        pool: the keys (ranking and cooldowns).
        limits: the configured slots per key (one value per key).
        aging: seconds of waiting worth one priority class.
        learning: how long a limit learned from a ``1302`` holds.
        clock: a monotonic clock (tests inject one).
        rng: the jitter of queue timeouts' ``retry_after`` (tests inject one).
    """

    def __init__(
        self,
        pool: KeyPool,
        limits: Sequence[int],
        *,
        aging: float = 30.0,
        learning: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if len(limits) != len(pool):
            raise ValueError("one slot limit per key is needed")
        self.pool = pool
        self.aging = aging
        self.learning = learning
        self._clock = clock
        self._rng = rng or random.Random()
        self._configured = [max(1, n) for n in limits]
        self._learned: list[tuple[int, float] | None] = [None] * len(pool)
        self._in_use = [0] * len(pool)
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._hold = 10.0  # moving average of slot hold times (seconds), for retry-after
        self.remote: RedisState | None = None  # slots shared with other instances
        #: Keys whose quota window is nearly spent: background calls do not use them.
        self.near_exhaustion: set[int] = set()
        self._held_back: dict[str, set[int]] = {}
        self.granted = 0  # slots handed out (for /status)
        self.queued = 0  # requests that had to wait
        self.timeouts = 0  # requests that gave up waiting

    # -- limits ---------------------------------------------------------------------------

    def configure(self, limits: Sequence[int], *, aging: float, learning: float) -> None:
        """Apply new settings (``POST /config``); learned limits and held slots stay."""
        if len(limits) != len(self._configured):
            raise ValueError("one slot limit per key is needed")
        self._configured = [max(1, n) for n in limits]
        self.aging, self.learning = aging, learning
        if self._waiters:
            self._dispatch()

    def limit(self, index: int) -> int:
        """The effective slot limit of key ``index`` now (learned, else configured)."""
        learned = self._learned[index]
        if learned is not None:
            if learned[1] > self._clock():
                return learned[0]
            self._learned[index] = None
        return self._configured[index]

    def throttled(self, index: int) -> int:
        """Learn from a ``1302`` on key ``index``: fewer slots for ``learning`` seconds.

        The request that got the 1302 still holds its slot, so ``in use - 1`` is what the
        key accepted. Returns the new limit.
        """
        new = max(1, min(self.limit(index), self._in_use[index] - 1))
        self._learned[index] = (new, self._clock() + self.learning)
        if self.remote is not None:  # the other instances (workers) take no more either
            self.remote.share_limit(index, new, self.learning)
        return new

    # -- taking and giving back ---------------------------------------------------------

    def _pick(self, session: str | None, exclude: Container[int], priority: Priority) -> int | None:
        """The key with a free slot for this session, or ``None`` (all full)."""
        candidates = [i for i in self.pool.ranking(session) if i not in exclude]
        if priority is Priority.BACKGROUND and self.near_exhaustion:
            candidates = [i for i in candidates if i not in self.near_exhaustion]
            if not candidates:
                return None  # held back until a window resets (or max_queue_wait)
        if not candidates:
            raise LookupError("no key left")
        healthy = [i for i in candidates if not self.pool.is_cooling(i)]
        if not healthy:  # a request that might succeed beats a certain error
            healthy = [min(candidates, key=self.pool.cooling_remaining)]
        for index in healthy:
            if self._in_use[index] < self.limit(index):
                return index
        return None

    def _take(self, index: int) -> Slot:
        self._in_use[index] += 1
        self.granted += 1
        return Slot(self.pool.lease(index), self, self._clock())

    def try_acquire(self, ticket: Ticket, exclude: Container[int] = ()) -> Slot | None:
        """A slot at once if one is free and nobody better waits for it, else ``None``.

        Raises:
            LookupError: every key is excluded.
        """
        index = self._pick(ticket.session, exclude, ticket.priority)
        if index is None:
            return None
        if self._waiters and not self._beats_waiters(ticket, index):
            return None
        return self._take(index)

    def _beats_waiters(self, ticket: Ticket, index: int) -> bool:
        # A freed slot normally goes to a waiter at once; this only matters when the
        # waiters could not use the free key (excluded, other ranking). Never jump ahead
        # of a better waiter that can use it.
        score = self._clock() + ticket.priority * self.aging
        return not any(
            w.score <= score and index not in w.exclude and w.slot is None for w in self._waiters
        )

    async def acquire(
        self, ticket: Ticket, exclude: Container[int] = (), *, max_wait: float
    ) -> Slot:
        """A slot for ``ticket``: at once, or after waiting in the queue; with a shared
        backend (Redis), also a lease that other instances respect.

        Raises:
            QueueTimeout: no slot within ``max_wait`` seconds.
            LookupError: every key is excluded.
        """
        remote = self.remote
        if remote is None:
            return await self._acquire_local(ticket, exclude, max_wait)
        deadline = anyio.current_time() + max_wait
        if ticket.arrived is None:
            ticket.arrived = time.time()  # the instances' shared order: wall-clock arrival
        slot = await self._acquire_local(ticket, exclude, max_wait)
        try:  # from here on, whatever stops the wait gives the local slot back
            await self._acquire_remote(remote, slot, ticket, deadline)
        except BaseException:
            slot.release()
            raise
        return slot

    async def _acquire_remote(
        self, remote: RedisState, slot: Slot, ticket: Ticket, deadline: float
    ) -> None:
        """Wait in the key's shared queue (Redis) while holding the local slot; sets
        ``slot.remote``. The whole time on Redis counts in ``ticket.waited``."""
        index = slot.lease.index
        assert ticket.arrived is not None
        score = ticket.arrived + ticket.priority * self.aging
        started: float | None = None
        asked = anyio.current_time()  # a wait in the shared queue counts from the first ask
        try:
            while True:
                lease = await remote.take(index, self.limit(index), ticket=ticket.tag,
                                          score=score)  # fmt: skip
                if lease is not None:
                    slot.remote = lease
                    break
                now = anyio.current_time()
                if started is None:
                    started = asked
                    self.queued += 1
                    if ticket.on_queue is not None:
                        ticket.on_queue()
                if now + _REMOTE_POLL > deadline:
                    ahead = remote.ahead.get(index, 0)
                    raise self._timeout(self._clock() + ticket.priority * self.aging,
                                        now - started, queued=ahead)  # fmt: skip
                await anyio.sleep(_REMOTE_POLL)
        except BaseException:
            if started is not None:  # it left the shared queue: other instances go on
                remote.leave(index, ticket.tag)
            raise
        finally:  # the time on Redis counts, queued or not (a slow Redis is a wait too)
            ticket.waited += anyio.current_time() - asked
        if started is not None and ticket.on_grant is not None:
            ticket.on_grant(anyio.current_time() - started)

    async def _acquire_local(
        self, ticket: Ticket, exclude: Container[int], max_wait: float
    ) -> Slot:
        slot = self.try_acquire(ticket, exclude)
        if slot is not None:
            return slot
        now = self._clock()
        if ticket.since is None:
            ticket.since = now
        score = ticket.since + ticket.priority * self.aging
        waiter = _Waiter(ticket, exclude, score, next(self._seq))
        if max_wait <= 0:
            raise self._timeout(score, 0.0)
        self._waiters.append(waiter)
        self.queued += 1
        if ticket.on_queue is not None:
            ticket.on_queue()
        # Waiting runs on the event loop's clock; the injectable clock only orders and ages.
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + max_wait
        try:
            while waiter.slot is None:
                left = deadline - loop.time()
                if left <= 0:
                    break
                await _woken(waiter, min(left, _RECHECK))
                if waiter.slot is None:
                    self._dispatch()  # cooldowns and learned limits expire by time
        except BaseException:
            if waiter.slot is not None:  # granted while being cancelled: give it back
                waiter.slot.release()
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        waited = loop.time() - started
        ticket.waited += waited
        if waiter.slot is None:
            raise self._timeout(waiter.score, waited)
        if ticket.on_grant is not None:
            ticket.on_grant(waited)
        return waiter.slot

    def _release(self, slot: Slot) -> None:
        index = slot.lease.index
        self._in_use[index] -= 1
        held = self._clock() - slot.taken_at
        self._hold += _EWMA * (held - self._hold)
        if self._waiters:
            self._dispatch()

    def _free(self) -> int:
        return sum(max(0, self.limit(i) - used) for i, used in enumerate(self._in_use))

    def _dispatch(self) -> None:
        """Hand free slots to waiters, best score first."""
        free = self._free()
        if free == 0:
            return
        for waiter in sorted(self._waiters, key=lambda w: (w.score, w.seq)):
            if free == 0:
                return
            if waiter.slot is not None:
                continue
            try:
                index = self._pick(waiter.ticket.session, waiter.exclude, waiter.ticket.priority)
            except LookupError:
                continue
            if index is None:
                continue
            waiter.slot = self._take(index)
            self._waiters.remove(waiter)
            waiter.notify()
            free -= 1

    def _timeout(self, score: float, waited: float, *, queued: int = 0) -> QueueTimeout:
        """The 429 for a request that waited too long. Its ``retry_after`` is the queue's
        expected drain time (everyone waiting now, ``queued`` more in a shared queue, times
        the mean slot hold over the slots), with ±25 % jitter: rejected together, clients
        do not all come back together (issue 24, item 7)."""
        self.timeouts += 1
        slots = sum(min(self.limit(i), 1000) for i in range(len(self._in_use)))
        ahead = max(queued, sum(1 for w in self._waiters if w.score < score))
        waiting = max(queued, len(self._waiters))
        drain = self._hold * (waiting + 1) / max(1, slots)
        retry = max(1.0, min(_MAX_RETRY_AFTER, drain) * self._rng.uniform(0.75, 1.25))
        return QueueTimeout(
            f"every upstream slot is busy ({sum(self._in_use)} in flight on "
            f"{len(self._in_use)} key(s)); waited {waited:.0f} s in glmbridge's queue "
            f"(max_queue_wait) with {ahead} request(s) ahead; retry after {math.ceil(retry)} s",
            kind=ErrorKind.RATE_LIMIT,
            retry_after=retry,
            retryable=True,
            status_hint=429,
        )

    def hold_back(self, source: str, keys: set[int]) -> None:
        """Keys whose quota window ``source`` (the poller, the local estimate) says is
        nearly spent; background calls avoid the union of all sources' keys."""
        self._held_back[source] = set(keys)
        self.near_exhaustion = set().union(*self._held_back.values())
        if self._waiters:
            self._dispatch()

    # -- state ------------------------------------------------------------------------------

    def queue_lengths(self) -> dict[Priority, int]:
        """Waiting requests per class."""
        counts = dict.fromkeys(Priority, 0)
        for waiter in self._waiters:
            counts[waiter.ticket.priority] += 1
        return counts

    def status(self) -> list[dict[str, int | bool]]:
        """Per key: ``{index, in_use, limit, learned}`` (no key material)."""
        return [
            {
                "index": i,
                "in_use": self._in_use[i],
                "limit": self.limit(i),
                "learned": self._learned[i] is not None,
            }
            for i in range(len(self._in_use))
        ]
