"""Scheduler overhead per request: classification plus taking and giving back a key slot.

What the relay adds to every scheduled request, in-process (no network):

* ``classify``: the priority class of the recorded 76 KB Claude Code main request;
* ``acquire+release``: one uncontended slot on a 3-key pool (the fast path);
* ``queued handoff``: a slot handed from a releasing request to a waiting one (the
  queue's path, per request, measured over batches of waiters).

Run: ``python bench/bench_scheduler.py`` (``--quick`` for a smoke run). Target: the
uncontended path (classify + acquire + release) within 50 µs per request. Results:
``docs/performance.md``.
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
from glmbridge_server.keypool import KeyPool
from glmbridge_server.scheduler import Scheduler, Ticket

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, repeats = (2_000, 5) if args.quick else (20_000, 15)
    req = anthropic.DOOR.decode_request(FIXTURE.read_bytes())
    gc.collect()
    cls = _time(lambda: classify(req, claude_code=True), n, repeats)
    fast, handoff = anyio.run(_async_time, n, repeats)
    rows = [("classify (76 KB Claude Code request)", cls), ("acquire + release", fast),
            ("queued handoff (per waiter)", handoff)]  # fmt: skip
    print("| operation | median µs | p95 µs |\n|---|---:|---:|")
    for name, samples in rows:
        p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) > 1 else samples[0]
        print(f"| {name} | {statistics.median(samples):.2f} | {p95:.2f} |")
    total = statistics.median(cls) + statistics.median(fast)
    verdict = "PASS" if total <= TARGET_US else "FAIL"
    print(f"\nuncontended scheduler overhead per request: {total:.2f} µs "
          f"(target {TARGET_US:.0f} µs): {verdict}")  # fmt: skip
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
