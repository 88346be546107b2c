"""The key slots and the priority queue (glmbridge_server.traffic.scheduler), in-process."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from glmbridge.priority import Priority
from glmbridge_server.traffic.scheduler import QueueTimeout, Scheduler, Slot, Ticket
from glmbridge_server.upstream.keypool import KeyPool

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _scheduler(keys: int = 1, limit: int = 1, **kw: float) -> tuple[Scheduler, Clock]:
    clock = Clock()
    pool = KeyPool([f"k{i}" for i in range(keys)], clock=clock)
    return Scheduler(pool, [limit] * keys, clock=clock, **kw), clock


async def test_uncontended_acquire_is_immediate_and_released() -> None:
    s, _ = _scheduler(limit=2)
    a = await s.acquire(Ticket(), max_wait=1)
    b = await s.acquire(Ticket(), max_wait=1)
    assert s.status()[0]["in_use"] == 2
    assert s.try_acquire(Ticket()) is None
    a.release()
    a.release()  # idempotent
    assert s.status()[0]["in_use"] == 1
    b.release()
    assert s.status()[0]["in_use"] == 0


async def _queue(
    s: Scheduler, order: list[str], name: str, priority: Priority, hold: float = 0.0
) -> None:
    slot = await s.acquire(Ticket(priority), max_wait=5)
    order.append(name)
    await anyio.sleep(hold)
    slot.release()


async def test_interactive_overtakes_queued_background() -> None:
    s, clock = _scheduler(aging=30)
    first = await s.acquire(Ticket(), max_wait=1)
    order: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_queue, s, order, "bg1", Priority.BACKGROUND)
        tg.start_soon(_queue, s, order, "bg2", Priority.BACKGROUND)
        await anyio.sleep(0.05)
        clock.now += 10  # the interactive turn arrives 10 s later
        tg.start_soon(_queue, s, order, "sub", Priority.SUBAGENT)
        tg.start_soon(_queue, s, order, "main", Priority.INTERACTIVE)
        await anyio.sleep(0.05)
        assert s.queue_lengths()[Priority.BACKGROUND] == 2
        first.release()
    assert order == ["main", "sub", "bg1", "bg2"]


async def test_aging_serves_a_long_waiting_background_call_first() -> None:
    s, clock = _scheduler(aging=30)
    first = await s.acquire(Ticket(), max_wait=1)
    order: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_queue, s, order, "bg", Priority.BACKGROUND)
        await anyio.sleep(0.05)
        clock.now += 61  # waited more than two classes' worth
        tg.start_soon(_queue, s, order, "main", Priority.INTERACTIVE)
        await anyio.sleep(0.05)
        first.release()
    assert order == ["bg", "main"]


async def test_queue_timeout_is_a_rate_limit_with_retry_after() -> None:
    s, _ = _scheduler()
    held = await s.acquire(Ticket(), max_wait=1)
    ticket = Ticket(Priority.BACKGROUND)
    with pytest.raises(QueueTimeout) as info:
        await s.acquire(ticket, max_wait=0.1)
    err = info.value
    assert err.status_hint == 429 and err.retryable
    assert err.retry_after is not None and 1 <= err.retry_after <= 60
    assert "max_queue_wait" in err.message
    assert ticket.waited >= 0.1
    assert s.queue_lengths()[Priority.BACKGROUND] == 0  # the waiter left the queue
    with pytest.raises(QueueTimeout):
        await s.acquire(Ticket(), max_wait=0)  # 0: never queue
    held.release()
    assert s.status()[0]["in_use"] == 0


async def test_cancelled_waiter_leaves_no_slot_behind() -> None:
    s, _ = _scheduler()
    held = await s.acquire(Ticket(), max_wait=1)
    with anyio.move_on_after(0.05):
        await s.acquire(Ticket(), max_wait=5)
    assert sum(s.queue_lengths().values()) == 0
    held.release()
    assert s.status()[0]["in_use"] == 0
    (await s.acquire(Ticket(), max_wait=1)).release()


async def test_a_slot_handed_to_a_waiter_being_cancelled_is_given_back() -> None:
    s, _ = _scheduler()
    held = await s.acquire(Ticket(), max_wait=1)
    waiting = asyncio.create_task(s.acquire(Ticket(), max_wait=5))
    await asyncio.sleep(0.01)
    assert sum(s.queue_lengths().values()) == 1
    held.release()  # handed to the waiter at once...
    waiting.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert s.status()[0]["in_use"] == 0
    assert sum(s.queue_lengths().values()) == 0


async def test_a_waiter_is_woken_by_a_release_not_by_its_recheck() -> None:
    s, _ = _scheduler()
    held = await s.acquire(Ticket(), max_wait=1)
    loop = asyncio.get_running_loop()
    waiting = asyncio.create_task(s.acquire(Ticket(), max_wait=5))
    await asyncio.sleep(0.01)
    released = loop.time()
    held.release()
    slot = await waiting
    assert loop.time() - released < 0.5  # the re-check is 1 s away
    slot.release()


async def test_queue_hooks_run_only_when_waiting() -> None:
    s, _ = _scheduler()
    events: list[str] = []
    ticket = Ticket(on_queue=lambda: events.append("queued"),
                    on_grant=lambda w: events.append("granted"))  # fmt: skip
    a = await s.acquire(ticket, max_wait=1)
    assert events == []

    async def later() -> None:
        await anyio.sleep(0.05)
        a.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(later)
        b = await s.acquire(ticket, max_wait=1)
    assert events == ["queued", "granted"] and ticket.waited > 0
    b.release()


async def test_a_full_key_spills_to_the_next_one() -> None:
    s, _ = _scheduler(keys=2)
    a = await s.acquire(Ticket(session="s1"), max_wait=1)
    b = await s.acquire(Ticket(session="s1"), max_wait=1)
    assert {a.lease.index, b.lease.index} == {0, 1}
    # the same session prefers the same key while it has room
    a.release()
    b.release()
    pref = s.pool.ranking("s1")[0]
    for _ in range(3):
        slot = await s.acquire(Ticket(session="s1"), max_wait=1)
        assert slot.lease.index == pref
        slot.release()


async def test_excluded_and_cooling_keys_are_skipped() -> None:
    s, _ = _scheduler(keys=2, limit=3)
    s.pool.cool_down(0, 60)
    slot = await s.acquire(Ticket(), max_wait=1)
    assert slot.lease.index == 1
    other = await s.acquire(Ticket(), exclude={1}, max_wait=1)
    assert other.lease.index == 0  # only cooling keys left: the soonest back is tried
    with pytest.raises(LookupError):
        await s.acquire(Ticket(), exclude={0, 1}, max_wait=1)


async def test_1302_lowers_the_limit_for_a_while() -> None:
    s, clock = _scheduler(limit=3, learning=300)
    slots: list[Slot] = [await s.acquire(Ticket(), max_wait=1) for _ in range(3)]
    assert s.throttled(0) == 2  # three in flight, one refused: two fit
    assert s.status()[0] == {"index": 0, "in_use": 3, "limit": 2, "learned": True}
    for slot in slots:
        slot.release()
    assert s.throttled(0) == 1  # alone and still refused: never below one
    clock.now += 301
    assert s.limit(0) == 3 and not s.status()[0]["learned"]
