"""Holding a throttled request in the bridge instead of failing it back.

A ``429``/``1302`` says the key has too many requests in flight. It passes when requests
end elsewhere on the key, in seconds. (Load shedding, ``1305``/``1312``, is not held: the
fallback chain answers it on another route.) Without slots, the client's ``max_retries``
budget decides, and a 1302 that lasts longer is failed back: Claude Code then retries it
up to ten times itself, each a new turn in its log. With slots and the queue
(:mod:`glmbridge_server.traffic.scheduler`), the bridge already owns waiting: a 1302 lowers the
key's learned limit, and the request waits here, backing off exponentially, as long as
its time in the bridge (queue waits and holds) stays within ``max_queue_wait``; only then
is it failed back. While held, the relay's first-output clock is paused, as in the queue.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

from glmbridge.errors import UpstreamError
from glmbridge_server.traffic.scheduler import Ticket

__all__ = ["HELD_CODES", "HOLD_BASE", "HOLD_CAP", "ThrottleHold"]

HELD_CODES = frozenset({"1302"})
"""Concurrency: the key's own requests in flight (the slots' business)."""

HOLD_BASE = 0.25
"""The first hold's longest wait (seconds); each next one doubles, up to :data:`HOLD_CAP`."""
HOLD_CAP = 8.0


class ThrottleHold:
    """The holds of one scheduled upstream call (one per :meth:`UpstreamClient.send`).

    Parameters:
        ticket: the call's claim on the slots: its queue waits count against the budget.
        budget: ``max_queue_wait``, the seconds a request may spend waiting in the bridge.
        rng: the jitter source.
    """

    __slots__ = ("budget", "held", "holds", "rng", "ticket")

    def __init__(self, ticket: Ticket, budget: float, rng: random.Random) -> None:
        self.ticket = ticket
        self.budget = budget
        self.rng = rng
        self.holds = 0
        self.held = 0.0  # seconds slept in holds so far

    def delay(self, err: UpstreamError) -> float | None:
        """How long to hold the call before its next attempt after ``err``, or ``None``:
        not a throttle, or the wait would overrun the budget (the error goes back)."""
        if err.code not in HELD_CODES or err.status != 429:
            return None
        ceiling = min(HOLD_CAP, HOLD_BASE * 2**self.holds)
        wait = self.rng.uniform(ceiling / 2, ceiling)  # half jitter: holds stay spread out
        if err.retry_after is not None:  # (one beyond the client's cap is never held)
            wait = max(wait, err.retry_after)
        if self.ticket.waited + self.held + wait > self.budget:
            return None
        return wait

    async def hold(self, wait: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        """Sleep ``wait`` seconds with the relay's first-output clock paused (``sleep``:
        the client's injectable sleep coroutine function)."""
        ticket = self.ticket
        self.holds += 1
        self.held += wait
        if ticket.on_queue is not None:
            ticket.on_queue()
        await sleep(wait)
        if ticket.on_grant is not None:
            ticket.on_grant(wait)
