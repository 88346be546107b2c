"""Background tasks that can fail without taking the server with them.

The lifespan runs its background loops (Redis renewals, the quota poller, the local quota
estimate) in one task group. A loop that raised used to end that group, and with it the
lifespan's shared clients: every later model request was a 500 while ``/health`` said ok
(issue 24, item 3). :meth:`Supervisor.run` wraps each loop: an exception is logged (with
its traceback) and the loop starts again after a pause that doubles up to a minute; a loop
that returns is done. :meth:`Supervisor.status` is what ``/health`` shows: each task's
state, ``running``, ``restarting`` (it failed and waits to start again) or ``stopped``;
``/health`` says ``degraded`` while any is not running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

__all__ = ["Supervisor"]

logger = logging.getLogger("glmbridge.server")

_FIRST_PAUSE = 1.0
_LONGEST_PAUSE = 60.0


class Supervisor:
    """Runs named background loops, restarting those that fail (see the module doc)."""

    def __init__(self, *, first_pause: float = _FIRST_PAUSE) -> None:
        self.first_pause = first_pause
        self._states: dict[str, dict[str, Any]] = {}

    async def run(self, name: str, loop: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Run ``loop(*args)`` until it returns or is cancelled; restart it when it raises."""
        pause = self.first_pause
        while True:
            self._states[name] = {"state": "running", "failures": self._failures(name)}
            try:
                await loop(*args)
            except Exception as exc:
                logger.error("background task %s failed (%s); restarting in %.0f s", name,
                             type(exc).__name__, pause, exc_info=True)  # fmt: skip
                self._states[name] = {"state": "restarting", "error": type(exc).__name__,
                                      "failures": self._failures(name) + 1,
                                      "since": time.time()}  # fmt: skip
                await anyio.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE)
                continue
            self._states[name] = {"state": "stopped", "failures": self._failures(name)}
            logger.warning("background task %s stopped", name)
            return

    def _failures(self, name: str) -> int:
        return int(self._states.get(name, {}).get("failures", 0))

    def status(self) -> dict[str, dict[str, Any]]:
        """Per task: its state and, after a failure, the error type and the failure count."""
        return {name: dict(state) for name, state in self._states.items()}

    @property
    def healthy(self) -> bool:
        """Every task is running."""
        return all(s["state"] == "running" for s in self._states.values())
