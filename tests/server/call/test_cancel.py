"""The call wing's cancel scopes on plain asyncio (glmbridge_server.call.cancel): each
cancellation lands at an ``await`` inside its scope, is swallowed by the outermost cancelled
scope, never leaks past it, and never swallows one it did not cause."""

from __future__ import annotations

import asyncio
import math

import pytest

from glmbridge_server.call.cancel import CancelScope, LoopTimer, end_task

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _now() -> float:
    return asyncio.get_running_loop().time()


async def test_a_deadline_ends_the_scope_and_is_swallowed() -> None:
    with CancelScope(_now() + 0.01) as scope:
        await asyncio.sleep(5)
        pytest.fail("not cancelled")
    assert scope.cancel_called and scope.cancelled_caught
    await asyncio.sleep(0)  # nothing left pending


async def test_a_deadline_can_be_lifted_and_set_again() -> None:
    with CancelScope(_now() + 0.01) as scope:
        scope.deadline = math.inf
        await asyncio.sleep(0.03)  # would have been cancelled
        scope.deadline = _now() + 0.01
        await asyncio.sleep(5)
    assert scope.cancelled_caught


async def test_another_task_cancels_at_the_await() -> None:
    reached: list[str] = []

    async def work(scope: CancelScope) -> None:
        with scope:
            reached.append("in")
            await asyncio.sleep(5)
            reached.append("after")  # never
        reached.append("out")

    scope = CancelScope()
    task = asyncio.get_running_loop().create_task(work(scope))
    await asyncio.sleep(0)
    scope.cancel()
    await task
    assert reached == ["in", "out"] and scope.cancelled_caught


async def test_cancelling_itself_lands_at_the_next_await_not_before() -> None:
    steps: list[str] = []
    with CancelScope() as scope:
        scope.cancel()
        steps.append("still running")  # no await yet: nothing raised
        await asyncio.sleep(5)
        steps.append("never")
    assert steps == ["still running"] and scope.cancelled_caught


async def test_a_self_cancelled_scope_left_before_any_await_leaves_nothing_pending() -> None:
    with CancelScope() as scope:
        scope.cancel()
    assert scope.cancel_called and not scope.cancelled_caught
    await asyncio.sleep(0.01)  # the task is not cancelled later
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_nested_cancelled_scopes_end_at_the_outermost_once() -> None:
    async def work(outer: CancelScope, inner: CancelScope) -> str:
        with outer:
            with inner:
                await asyncio.sleep(5)
            return "inner swallowed it"
        await asyncio.sleep(0.01)  # no second cancellation left over
        return "outer"

    outer, inner = CancelScope(), CancelScope()
    task = asyncio.get_running_loop().create_task(work(outer, inner))
    await asyncio.sleep(0)
    inner.cancel()
    outer.cancel()
    assert await task == "outer"
    assert outer.cancelled_caught and not inner.cancelled_caught
    assert task.cancelling() == 0


async def test_an_inner_cancellation_stays_inside() -> None:
    with CancelScope() as outer:
        with CancelScope(_now()) as inner:
            await asyncio.sleep(5)
        await asyncio.sleep(0.01)
    assert inner.cancelled_caught and not outer.cancel_called


async def test_a_foreign_cancellation_is_never_swallowed() -> None:
    async def work(scope: CancelScope) -> None:
        with scope:
            await asyncio.sleep(5)

    scope = CancelScope()
    task = asyncio.get_running_loop().create_task(work(scope))
    await asyncio.sleep(0)
    task.cancel()  # the server cancels the request's task
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not scope.cancelled_caught


async def test_a_foreign_cancellation_beside_ours_still_ends_the_task() -> None:
    async def work(scope: CancelScope) -> None:
        with scope:
            await asyncio.sleep(5)
        await asyncio.sleep(5)

    scope = CancelScope()
    task = asyncio.get_running_loop().create_task(work(scope))
    await asyncio.sleep(0)
    scope.cancel()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_end_task_waits_for_the_task_even_when_cancelled_meanwhile() -> None:
    ended = asyncio.Event()

    async def slow_to_end() -> None:
        try:
            await asyncio.sleep(5)
        finally:
            await asyncio.sleep(0.02)  # cleanup that takes a moment
            ended.set()

    async def ender(helper: asyncio.Task[None]) -> None:
        await end_task(helper)

    helper = asyncio.get_running_loop().create_task(slow_to_end())
    await asyncio.sleep(0)
    task = asyncio.get_running_loop().create_task(ender(helper))
    await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended.is_set() and helper.done()


async def test_loop_timer_arms_rearms_and_disarms() -> None:
    """One pending call at a time: re-arming replaces it, disarming drops it, firing clears
    ``armed`` before the callback runs."""
    loop = asyncio.get_running_loop()
    seen: list[bool] = []
    timer: LoopTimer

    def callback() -> None:
        seen.append(timer.armed)

    timer = LoopTimer(loop, callback)
    assert not timer.armed
    timer.after(0.01)
    timer.at(loop.time() + 0.02)  # replaces the first: one call only
    assert timer.armed
    await asyncio.sleep(0.05)
    assert seen == [False] and not timer.armed
    timer.soon()
    timer.disarm()
    await asyncio.sleep(0.01)
    assert seen == [False]
    timer.soon()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert seen == [False, False]
