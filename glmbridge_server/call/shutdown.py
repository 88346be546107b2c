"""The server's shutdown signal, which open calls subscribe to instead of waiting for it.

A call that must end when the server stops used to spend a task on it (one waiting on an
event, per open call, cancelled when the call was done): for a short answer that task's
start and cancellation cost more than the rest of the call's bookkeeping (issue 22). A
subscription is a set entry: :meth:`Shutdown.subscribe` adds a callback, the call removes it
when it is done, and :meth:`Shutdown.set` (on the event loop: the server's ``shutdown``)
calls every callback still there. Loops that poll or wait (the dashboard's live feed) use
:meth:`Shutdown.is_set` and :meth:`Shutdown.wait` as with an event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

__all__ = ["Shutdown"]

logger = logging.getLogger("glmbridge.server")


class Shutdown:
    """An event with subscribers (see the module docstring)."""

    __slots__ = ("_event", "_subscribers")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._subscribers: set[Callable[[], None]] = set()

    def is_set(self) -> bool:
        """Whether the server has started to stop."""
        return self._event.is_set()

    async def wait(self) -> None:
        """Return once the server starts to stop."""
        await self._event.wait()

    def set(self) -> None:
        """The server starts to stop: tell every subscriber (once)."""
        if self._event.is_set():
            return
        self._event.set()
        for callback in list(self._subscribers):
            try:
                callback()
            except Exception:  # one call's failure must not keep the others open
                logger.exception("error while ending an open call at shutdown")

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the server starts to stop (at once if it has); returns
        the function that unsubscribes it."""
        if self._event.is_set():
            callback()
            return _nothing
        self._subscribers.add(callback)
        return lambda: self._subscribers.discard(callback)


def _nothing() -> None:
    return None
