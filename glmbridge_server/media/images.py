"""Making images: ``n`` Z.ai calls at once (bounded), each downloaded when base64 is
wanted, and one usage row per image.

Used by ``POST /v1/images/generations``, Gemini image output and the Responses door's
hosted ``image_generation`` tool.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio

from glmbridge.errors import UpstreamError
from glmbridge.media.images import ImageJob, parse_zai_image
from glmbridge.pricing import is_peak
from glmbridge_server.media.client import MediaClient
from glmbridge_server.traffic.usage_store import UsageRow, UsageStore, key_id

__all__ = ["MadeImage", "first_error", "make_images", "record_images"]

#: At most this many images are made at once for one request.
PARALLEL = 4
#: A generated image larger than this is not downloaded (glm-image PNGs are ~2-6 MB).
MAX_IMAGE_BYTES = 20 * 1024 * 1024
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF", b"GIF8")


@dataclass
class MadeImage:
    """One generated image: Z.ai's URL, the base64 bytes when downloaded, the verdicts."""

    url: str
    key_index: int
    b64: str | None = None
    mime: str = "image/png"
    content_filter: list[dict[str, Any]] = field(default_factory=list)


async def _one(
    client: MediaClient, job: ImageJob, session: str | None, download: bool
) -> MadeImage:
    body, index = await client.post("images/generations", job.zai_body(), session=session)
    try:
        answer = parse_zai_image(body)
    except ValueError as exc:
        raise UpstreamError(f"Z.ai's image answer was malformed: {exc}", status_hint=502) from None
    made = MadeImage(url=answer.url, key_index=index, content_filter=list(answer.content_filter))
    if download:
        data, ctype = await client.fetch(answer.url, MAX_IMAGE_BYTES)
        if not data.startswith(_SIGNATURES):
            raise UpstreamError("the generated file is not an image", status_hint=502)
        made.b64 = base64.b64encode(data).decode()
        made.mime = ctype if ctype.startswith("image/") else "image/png"
    return made


async def make_images(
    client: MediaClient, job: ImageJob, *, session: str | None = None, download: bool | None = None
) -> list[MadeImage]:
    """``job.n`` images, made concurrently (at most :data:`PARALLEL` at once). The first
    failure fails the whole request (the others are cancelled), as OpenAI's API does."""
    want = job.response_format == "b64_json" if download is None else download
    made: list[MadeImage | None] = [None] * job.n
    limiter = anyio.CapacityLimiter(PARALLEL)

    async def run(i: int) -> None:
        async with limiter:
            made[i] = await _one(client, job, session, want)

    try:
        async with anyio.create_task_group() as tg:
            for i in range(job.n):
                tg.start_soon(run, i)
    except BaseExceptionGroup as group:  # the first failure, as itself
        raise first_error(group) from None
    return [m for m in made if m is not None]


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The first leaf exception of a task group's ``group``."""
    found: BaseException = group
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    return found


def record_images(
    store: UsageStore | None,
    job: ImageJob,
    images: list[MadeImage],
    keys: tuple[str, ...],
    *,
    client: str,
    route: str,
    latency: float,
) -> None:
    """One usage row per image made (the per-image price is ``job.price_usd``)."""
    if store is None:
        return
    now = time.time()
    for image in images:
        store.record(UsageRow(
            ts=now, client=client, route=route,
            key_id=key_id(keys[image.key_index]) if image.key_index < len(keys) else None,
            model=job.model.id, client_model=job.client_model[:200], upstream="media",
            input_tokens=0, cached_tokens=0, output_tokens=0,
            latency_ms=round(latency * 1000, 1), ttft_ms=None, status=200, fallback=None,
            priority=None, queue_wait_ms=None, peak=is_peak(datetime.fromtimestamp(now, UTC)),
            cost_usd=job.price_usd,
        ))  # fmt: skip
