"""Video jobs: create a CogVideoX-3 task, poll it with the key that made it, and open the
finished MP4 (or its cover image) for streaming.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

from glmbridge.errors import ClientRequestError, ErrorKind, UpstreamError
from glmbridge.media.videos import VideoJob, parse_task, parse_task_result
from glmbridge_server.media.client import MediaClient
from glmbridge_server.media.tasks import Task, TaskTable

__all__ = ["MAX_VIDEO_BYTES", "create_task", "open_content", "poll_task"]

#: A generated clip larger than this is not relayed (a 10 s 4K clip is far smaller).
MAX_VIDEO_BYTES = 512 * 1024 * 1024
MAX_COVER_BYTES = 20 * 1024 * 1024


async def create_task(client: MediaClient, table: TaskTable, job: VideoJob) -> Task:
    """Start the task on Z.ai and remember it."""
    body, index = await client.post("videos/generations", job.zai_body())
    try:
        zai_id = parse_task(body)
    except ValueError as exc:
        raise UpstreamError(f"Z.ai's video answer was malformed: {exc}", status_hint=502) from None
    return table.add(job, zai_id, index)


async def poll_task(client: MediaClient, task: Task) -> Task:
    """Ask Z.ai for the task's state (once it has ended, nothing more is asked)."""
    if task.result is not None and task.result.status != "PROCESSING":
        return task
    body = await client.get(f"async-result/{task.zai_id}", task.key_index)
    try:
        task.result = parse_task_result(body)
    except ValueError as exc:
        raise UpstreamError(f"Z.ai's task answer was malformed: {exc}", status_hint=502) from None
    return task


def not_found(video_id: str) -> ClientRequestError:
    """The 404 for an id this gateway does not know (or has forgotten after a day)."""
    return ClientRequestError(f"video {video_id[:80]!r} not found (tasks are kept for a day)",
                              kind=ErrorKind.NOT_FOUND)  # fmt: skip


async def open_content(
    client: MediaClient, task: Task, variant: str, stack: AsyncExitStack
) -> tuple[str, AsyncIterator[bytes]]:
    """The MP4 (``variant`` ``video``) or the cover image (``thumbnail``) of a finished task,
    opened on ``stack``: ``(content type, chunks)``."""
    if variant not in ("video", "thumbnail"):
        raise ClientRequestError("variant must be video or thumbnail (Z.ai makes no "
                                 "spritesheet)", path="variant")  # fmt: skip
    await poll_task(client, task)
    result = task.result
    if result is None or result.status != "SUCCESS":
        state = "failed" if result is not None and result.status == "FAIL" else "not finished"
        raise ClientRequestError(f"video {task.id} is {state}; its content is not available",
                                 kind=ErrorKind.NOT_FOUND)  # fmt: skip
    url = result.url if variant == "video" else result.cover_url
    if url is None:
        raise ClientRequestError(f"video {task.id} has no thumbnail", kind=ErrorKind.NOT_FOUND)
    limit = MAX_VIDEO_BYTES if variant == "video" else MAX_COVER_BYTES
    ctype, chunks = await stack.enter_async_context(client.open(url, limit))
    wanted = "video/" if variant == "video" else "image/"
    if not ctype.startswith(wanted):
        ctype = "video/mp4" if variant == "video" else "image/png"
    return ctype, chunks
