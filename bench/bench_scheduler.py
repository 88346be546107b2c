"""Scheduler overhead per request: classification plus taking and giving back a key slot.

What the relay adds to every scheduled request, in-process (no network):

* ``classify``: the priority class of the recorded 76 KB Claude Code main request;
* ``acquire+release``: one uncontended slot on a 3-key pool (the fast path);
* ``queued handoff``: a slot handed from a releasing request to a waiting one (the
  queue's path, per request, measured over batches of waiters).

* ``acquire+release with Redis``: the same with a Redis lease (``--redis URL``, e.g. a
  ``redis-server`` on loopback), release included (it is sent in the background).

Run: ``python bench/bench_scheduler.py`` (``--quick`` for a smoke run). Targets: the
uncontended path (classify + acquire + release) within 50 µs per request in-process and
within 1 ms with Redis on loopback. Results: ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import anyio

from glmbridge.priority import Priority, classify
from glmbridge.protocols import anthropic
from glmbridge_server.traffic.scheduler import Scheduler, Ticket
from glmbridge_server.upstream.keypool import KeyPool

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/claude_code/request_main.json"
TARGET_US = 50.0


def _time(fn: object, n: int, repeats: int) -> list[float]:
    assert callable(fn)
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - start) / n * 1e6)
    return out


async def _async_time(n: int, repeats: int) -> tuple[list[float], list[float]]:
    pool = KeyPool(["a", "b", "c"])
    sched = Scheduler(pool, [2, 2, 2])
    fast: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            slot = await sched.acquire(Ticket(session=f"s{i % 7}"), max_wait=1)
            slot.release()
        fast.append((time.perf_counter() - start) / n * 1e6)

    handoff: list[float] = []
    single = Scheduler(KeyPool(["a"]), [1])
    for _ in range(repeats):
        held = await single.acquire(Ticket(), max_wait=1)
        batch = max(10, n // 100)
        async with anyio.create_task_group() as tg:

            async def waiter(priority: Priority) -> None:
                slot = await single.acquire(Ticket(priority), max_wait=60)
                await anyio.lowlevel.checkpoint()
                slot.release()

            for i in range(batch):
                tg.start_soon(waiter, Priority(i % 3))
            await anyio.sleep(0.01)
            start = time.perf_counter()
            held.release()
        handoff.append((time.perf_counter() - start) / batch * 1e6)
    return fast, handoff


async def _redis_time(url: str, n: int, repeats: int) -> list[float]:
    from glmbridge_server.traffic.redis_state import LOCAL_LEASE, RedisState

    pool = KeyPool(["a", "b", "c"])
    sched = Scheduler(pool, [2, 2, 2])
    remote = RedisState(url, ["bench-a", "bench-b", "bench-c"])
    sched.remote = remote
    out: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            slot = await sched.acquire(Ticket(session=f"s{i % 7}"), max_wait=5)
            assert slot.remote not in (None, LOCAL_LEASE), "Redis is not answering"
            slot.release()
            await anyio.lowlevel.checkpoint()
        out.append((time.perf_counter() - start) / n * 1e6)
    await anyio.sleep(0.2)  # let the background releases finish
    await remote.aclose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis", metavar="URL", help="also time slots shared through Redis")
    args = parser.parse_args()
    n, repeats = (2_000, 5) if args.quick else (20_000, 15)
    req = anthropic.DOOR.decode_request(FIXTURE.read_bytes())
    gc.collect()
    cls = _time(lambda: classify(req, claude_code=True), n, repeats)
    fast, handoff = anyio.run(_async_time, n, repeats)
    rows = [("classify (76 KB Claude Code request)", cls), ("acquire + release", fast),
            ("queued handoff (per waiter)", handoff)]  # fmt: skip
    redis_us = None
    if args.redis:
        samples = anyio.run(_redis_time, args.redis, n // 10, repeats)
        rows.append(("acquire + release with Redis", samples))
        redis_us = statistics.median(cls) + statistics.median(samples)
    print("| operation | median µs | p95 µs |\n|---|---:|---:|")
    for name, samples in rows:
        p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) > 1 else samples[0]
        print(f"| {name} | {statistics.median(samples):.2f} | {p95:.2f} |")
    total = statistics.median(cls) + statistics.median(fast)
    verdict = "PASS" if total <= TARGET_US else "FAIL"
    print(f"\nuncontended scheduler overhead per request: {total:.2f} µs "
          f"(target {TARGET_US:.0f} µs): {verdict}")  # fmt: skip
    if redis_us is not None:
        ok = redis_us <= 1000
        verdict = verdict if ok else "FAIL"
        print(f"with Redis: {redis_us:.0f} µs (target 1000 µs): {'PASS' if ok else 'FAIL'}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
