"""Cancel scopes on plain asyncio, for the call wing's hot path.

Theory of operation. A streamed answer needs four cancellations: the client leaving, the
server stopping, the first-output deadline and the guard's idle wait. anyio's cancel scopes
do all of it, but each costs a backend lookup, a weak reference and a task lookup on entry
and exit; six of them were 5.5% of the instructions of a Claude Code turn (issue 22). This
module is the small subset the call wing uses, with the same words (``cancel()``,
``deadline``, ``cancel_called``, ``cancelled_caught``), on the event loop's own clock.

A :class:`CancelScope` belongs to the task that enters it. ``cancel()`` (or the deadline) cancels
that task with ``Task.cancel()``; the ``CancelledError`` travels outward and the outermost
cancelled scope on its way swallows it (``Task.uncancel()``), so a cancelled inner scope
inside a cancelled outer one ends both. Three rules keep plain asyncio's edge-triggered
cancellation exact:

* **Never from inside.** The task is only ever cancelled while it is suspended: a scope
  cancelled from its own task fires from the next turn of the loop, and only if it is still
  entered. So the ``CancelledError`` is always raised at an ``await`` inside the scope.
* **Once per delivery.** While one cancellation of the task by these scopes is on its way,
  a second scope that fires does not cancel the task again (a second ``Task.cancel()``
  would leave a cancellation pending after the first was swallowed); the one on its way
  passes through it, and the outermost cancelled scope swallows it.
* **Foreign cancellations pass.** A ``CancelledError`` these scopes did not cause (the
  server cancelling the request's task, an anyio scope inside) is never swallowed, and a
  scope that has fired swallows only when no other cancellation of the task is pending
  (``Task.uncancel()`` returns the count at entry).

Not thread-safe; one event loop.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from functools import partial
from types import TracebackType

__all__ = ["CancelScope", "LoopTimer", "end_task"]

# The innermost entered scope of each task, and whether a cancellation these scopes caused
# is on its way to it.
_INNERMOST: dict[asyncio.Task[object], CancelScope] = {}
_PENDING: set[asyncio.Task[object]] = set()


class LoopTimer:
    """One callback pending on an event loop, armed, re-armed and disarmed in place: a cancel
    scope's deadline, an inbound connection's header and body timeouts."""

    __slots__ = ("_callback", "_handle", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.Handle | None = None

    @property
    def armed(self) -> bool:
        """Whether the callback is pending."""
        return self._handle is not None

    def at(self, when: float) -> None:
        """Call back at ``when`` on the loop's clock (instead of any pending call)."""
        self.disarm()
        self._handle = self._loop.call_at(when, self._fire)

    def after(self, delay: float) -> None:
        """Call back ``delay`` seconds from now (instead of any pending call)."""
        self.disarm()
        self._handle = self._loop.call_later(delay, self._fire)

    def soon(self) -> None:
        """Call back from the loop's next turn (instead of any pending call)."""
        self.disarm()
        self._handle = self._loop.call_soon(self._fire)

    def disarm(self) -> None:
        """Drop the pending call, if any."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._callback()


class CancelScope:
    """A cancel scope for the current task (see the module docstring).

    Parameters:
        deadline: when the scope cancels itself, on the loop's clock (``loop.time()``);
            ``math.inf``: never.
    """

    __slots__ = (
        "_deadline",
        "_entry_cancelling",
        "_loop",
        "_parent",
        "_task",
        "_timer",
        "cancel_called",
        "cancelled_caught",
    )

    def __init__(self, deadline: float = math.inf) -> None:
        self._deadline = deadline
        self._task: asyncio.Task[object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._parent: CancelScope | None = None
        # Made when first needed: most scopes are cancelled from another task, with no timer.
        self._timer: LoopTimer | None = None
        self._entry_cancelling = 0
        #: ``cancel()`` was called or the deadline passed.
        self.cancel_called = False
        #: This scope swallowed the cancellation it caused.
        self.cancelled_caught = False

    def __enter__(self) -> CancelScope:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a CancelScope is entered inside a task")
        self._task = task
        self._loop = task.get_loop()
        self._entry_cancelling = task.cancelling()
        self._parent = _INNERMOST.get(task)
        _INNERMOST[task] = self
        if self.cancel_called:  # cancelled before it was entered
            self._timer_for(self._loop).soon()
        else:
            self._arm()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        task = self._task
        assert task is not None, "a CancelScope is exited once, by the task that entered it"
        self._disarm()
        self._task = None
        parent = self._parent
        if parent is None:
            del _INNERMOST[task]
        else:
            _INNERMOST[task] = parent
        if not self.cancel_called or task not in _PENDING or _cancelled_around(parent):
            return False  # not ours (or not delivered), or an enclosing scope takes it
        _PENDING.discard(task)  # the delivery ends here, whatever became of it inside
        if task.uncancel() > self._entry_cancelling or kind is not asyncio.CancelledError:
            return False  # someone else cancels the task too, or the code turned it
        self.cancelled_caught = True  # into another exception (or swallowed it)
        return True

    def cancel(self) -> None:
        """Cancel the scope: at the task's next ``await`` inside it, or (called by the task
        itself) from the loop's next turn."""
        if self.cancel_called:
            return
        self.cancel_called = True
        if self._task is None:
            return  # not entered yet (``__enter__`` fires it) or already exited
        self._disarm()
        if asyncio.current_task() is self._task:
            self._timer_for(self._loop).soon()  # type: ignore[arg-type]
        else:
            self._fire()

    @property
    def deadline(self) -> float:
        """When the scope cancels itself (``loop.time()``); settable while entered."""
        return self._deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        self._deadline = value
        if self._task is not None and not self.cancel_called:
            self._disarm()
            self._arm()

    # -- the cancellation --------------------------------------------------------------

    def _timer_for(self, loop: asyncio.AbstractEventLoop) -> LoopTimer:
        timer = self._timer
        if timer is None:
            timer = self._timer = LoopTimer(loop, self._fire)
        return timer

    def _arm(self) -> None:
        if self._deadline != math.inf:
            assert self._loop is not None
            self._timer_for(self._loop).at(self._deadline)

    def _disarm(self) -> None:
        timer = self._timer
        if timer is not None:
            timer.disarm()

    def _fire(self) -> None:
        task = self._task
        if task is None:
            return  # exited meanwhile
        self.cancel_called = True
        if task not in _PENDING:  # once per delivery (module docstring)
            _PENDING.add(task)
            task.cancel()


def _cancelled_around(scope: CancelScope | None) -> bool:
    """Whether ``scope`` or a scope around it (same task) has been cancelled."""
    while scope is not None:
        if scope.cancel_called:
            return True
        scope = scope._parent
    return False


async def end_task(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has ended, even if this task is cancelled meanwhile
    (the cancellation is carried on once it has)."""
    task.cancel()
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        ended = task.get_loop().create_future()  # asyncio.wait, without its set and timer
        settle = partial(_settle, ended)
        task.add_done_callback(settle)
        try:
            await ended
        except asyncio.CancelledError as exc:
            task.remove_done_callback(settle)
            cancelled = exc
    if cancelled is not None:
        raise cancelled


def _settle(future: asyncio.Future[None], task: asyncio.Task[None]) -> None:
    if not future.done():
        future.set_result(None)
