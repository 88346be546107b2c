"""The video task table: which Z.ai task a ``video_…`` id is, and which key made it.

A task is polled with the key that created it (Z.ai's tasks belong to an account). The
table is bounded (the oldest task goes first) and forgets a task once Z.ai's one-day URL
lifetime has passed (docs.bigmodel.cn: video URLs expire after 1 day).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from glmbridge.media.videos import VideoJob, VideoResult

__all__ = ["Task", "TaskTable"]

LIFETIME = 24 * 3600.0
MAX_TASKS = 1000


@dataclass
class Task:
    """One video job: the client's request, Z.ai's task, the key, and what polling found."""

    id: str
    job: VideoJob
    zai_id: str
    key_index: int
    created: float
    result: VideoResult | None = None

    @property
    def expires(self) -> float:
        """When Z.ai's URLs (and so this entry) expire."""
        return self.created + LIFETIME


class TaskTable:
    """Bounded id -> :class:`Task` (see the module)."""

    def __init__(self, *, limit: int = MAX_TASKS, clock: Callable[[], float] = time.time) -> None:
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self._limit = limit
        self._clock = clock

    def __len__(self) -> int:
        return len(self._tasks)

    def add(self, job: VideoJob, zai_id: str, key_index: int) -> Task:
        """Remember a new task under a fresh ``video_…`` id."""
        self._forget_expired()
        task = Task(f"video_{secrets.token_hex(12)}", job, zai_id, key_index, self._clock())
        self._tasks[task.id] = task
        while len(self._tasks) > self._limit:
            self._tasks.popitem(last=False)
        return task

    def get(self, video_id: str) -> Task | None:
        """The task, or ``None`` (unknown, evicted or expired)."""
        self._forget_expired()
        return self._tasks.get(video_id)

    def _forget_expired(self) -> None:
        now = self._clock()
        while self._tasks:
            oldest = next(iter(self._tasks.values()))
            if oldest.expires > now:
                break
            self._tasks.popitem(last=False)
