"""OpenAI's ``/v1/videos`` job shape on Z.ai's CogVideoX-3 tasks, sans-I/O.

OpenAI's Videos API (``POST /v1/videos`` with ``model, prompt, seconds, size,
input_reference``, then ``GET /v1/videos/{id}`` and ``GET /v1/videos/{id}/content``) was shut
down with Sora 2 on 2026-09-24, but gateways keep its shape (LiteLLM's ``/v1/videos``,
QuantumNous/new-api PR#1997) and the openai SDK still speaks it. Z.ai's side
(docs.z.ai/api-reference/video/generate-video, …/get-video-status):

* ``POST {paas/v4}/videos/generations`` ``{model: "cogvideox-3", prompt (≤512 chars),
  image_url (URL or base64; png/jpeg ≤5 MB), quality: speed|quality, with_audio, size (up to
  3840x2160), fps: 30|60, duration: 5|10}`` -> ``{model, id, request_id, task_status}``.
* ``GET {paas/v4}/async-result/{id}`` -> ``{model, task_status: PROCESSING|SUCCESS|FAIL,
  video_result: [{url, cover_image_url}], request_id}``. The URLs expire after a day.

OpenAI's ``seconds`` (``4``/``8``/``12``) become ``duration`` 5 or 10 (the nearest, never
shorter than asked but for 12, which is 10); ``quality``, ``fps`` and ``with_audio`` pass as
extra fields. Z.ai reports no progress, so :func:`video_object` estimates it from the time
elapsed (:data:`TYPICAL_SECONDS`) and says 100 only when the task succeeded.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from glmbridge.errors import ClientRequestError

__all__ = [
    "TYPICAL_SECONDS",
    "VideoJob",
    "VideoResult",
    "decode_video_request",
    "parse_task",
    "parse_task_result",
    "video_object",
]

VIDEO_MODEL = "cogvideox-3"
MAX_PROMPT_CHARS = 512
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_SIDE = 3840
#: A CogVideoX-3 clip typically takes this long (for the progress estimate only).
TYPICAL_SECONDS = 120.0
#: OpenAI's video model names, served by CogVideoX-3.
OPENAI_VIDEO_MODELS = ("sora-2", "sora-2-pro")

Status = Literal["queued", "in_progress", "completed", "failed"]


class VideoJob(msgspec.Struct, frozen=True, kw_only=True):
    """One decoded ``POST /v1/videos``: Z.ai's body and what the client asked for."""

    prompt: str
    client_model: str
    seconds: str
    size: str
    duration: int
    image_url: str | None = None
    quality: Literal["speed", "quality"] | None = None
    fps: int | None = None
    with_audio: bool | None = None

    def zai_body(self) -> bytes:
        """The JSON body of ``POST videos/generations``."""
        body: dict[str, Any] = {"model": VIDEO_MODEL, "prompt": self.prompt,
                                "size": self.size, "duration": self.duration}  # fmt: skip
        for name in ("image_url", "quality", "fps", "with_audio"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        return msgspec.json.encode(body)


def _text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or isinstance(value, str):
        return value.strip() if isinstance(value, str) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ClientRequestError(f"{name} must be a string", path=name)


def _size(text: str | None) -> str:
    if not text:
        return "1280x720"
    w, sep, h = text.lower().partition("x")
    if (
        not sep
        or not w.isdigit()
        or not h.isdigit()
        or not (
            0 < int(w) <= MAX_SIDE and 0 < int(h) <= MAX_SIDE and int(w) * int(h) <= 3840 * 2160
        )
    ):
        raise ClientRequestError(f"size {text[:30]!r} must be WIDTHxHEIGHT up to 3840x2160",
                                 path="size")  # fmt: skip
    return f"{int(w)}x{int(h)}"


def _duration(seconds: str | None) -> int:
    if not seconds:
        return 5
    try:
        value = float(seconds)
    except ValueError:
        raise ClientRequestError("seconds must be a number", path="seconds") from None
    if not 0 < value <= 20:
        raise ClientRequestError("seconds must be 1-20 (Z.ai makes 5 or 10)", path="seconds")
    return 5 if value <= 5 else 10


def _image(fields: Mapping[str, Any]) -> str | None:
    ref = fields.get("input_reference")
    if ref is None:
        return None
    if isinstance(ref, tuple) and len(ref) == 2:  # an uploaded file: (bytes, content type)
        data, ctype = ref
        if ctype not in ("image/png", "image/jpeg", "image/jpg"):
            raise ClientRequestError("input_reference must be a PNG or JPEG image",
                                     path="input_reference")  # fmt: skip
        if len(data) > MAX_IMAGE_BYTES:
            raise ClientRequestError("input_reference is larger than 5 MB",
                                     path="input_reference")  # fmt: skip
        return f"data:{ctype};base64,{base64.b64encode(data).decode()}"
    if isinstance(ref, Mapping):
        ref = ref.get("image_url") or ref.get("url")
    if isinstance(ref, str) and ref.startswith(("https://", "http://", "data:image/")):
        return ref
    raise ClientRequestError("input_reference must be an image file, URL or data URL",
                             path="input_reference")  # fmt: skip


def decode_video_request(fields: Mapping[str, Any]) -> VideoJob:
    """Decode ``POST /v1/videos`` fields (a JSON object, or multipart fields where an
    uploaded ``input_reference`` is ``(bytes, content_type)``). Raises a 400 for what
    CogVideoX-3 cannot make."""
    prompt = _text(fields, "prompt")
    if not prompt:
        raise ClientRequestError("prompt is required", path="prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ClientRequestError(f"prompt is longer than {MAX_PROMPT_CHARS} characters "
                                 "(CogVideoX-3's limit)", path="prompt")  # fmt: skip
    model = (_text(fields, "model") or VIDEO_MODEL).lower()
    if model != VIDEO_MODEL and not model.startswith(OPENAI_VIDEO_MODELS):
        raise ClientRequestError(f"model {model[:40]!r} is not a video model (use {VIDEO_MODEL})",
                                 path="model")  # fmt: skip
    seconds = _text(fields, "seconds")
    quality = _text(fields, "quality")
    if quality is not None and quality not in ("speed", "quality"):
        raise ClientRequestError("quality must be speed or quality", path="quality")
    fps = _text(fields, "fps")
    if fps is not None and fps not in ("30", "60"):
        raise ClientRequestError("fps must be 30 or 60", path="fps")
    audio = fields.get("with_audio")
    if isinstance(audio, str):
        audio = audio.strip().lower() in ("true", "1", "yes")
    if audio is not None and not isinstance(audio, bool):
        raise ClientRequestError("with_audio must be a boolean", path="with_audio")
    duration = _duration(seconds)
    return VideoJob(
        prompt=prompt,
        client_model=model,
        seconds=seconds or str(duration),
        size=_size(_text(fields, "size")),
        duration=duration,
        image_url=_image(fields),
        quality=quality,  # type: ignore[arg-type]
        fps=int(fps) if fps else None,
        with_audio=audio,
    )


def parse_task(body: bytes) -> str:
    """The task id of Z.ai's ``{model, id, request_id, task_status}``; ``ValueError``."""
    try:
        task_id = msgspec.json.decode(body)["id"]
    except (msgspec.DecodeError, KeyError, TypeError):
        raise ValueError("the video answer has no task id") from None
    if not isinstance(task_id, str) or not task_id or len(task_id) > 200:
        raise ValueError("the video answer has no task id")
    return task_id


class VideoResult(msgspec.Struct, frozen=True, kw_only=True):
    """A polled task: Z.ai's status, and the video and cover URLs once it succeeded."""

    status: Literal["PROCESSING", "SUCCESS", "FAIL"]
    url: str | None = None
    cover_url: str | None = None


def parse_task_result(body: bytes) -> VideoResult:
    """Z.ai's ``async-result`` answer; ``ValueError`` when malformed."""
    try:
        data = msgspec.json.decode(body)
        status = data["task_status"]
    except (msgspec.DecodeError, KeyError, TypeError):
        raise ValueError("the task answer has no task_status") from None
    if status not in ("PROCESSING", "SUCCESS", "FAIL"):
        raise ValueError(f"unknown task_status {str(status)[:20]!r}")
    if status != "SUCCESS":
        return VideoResult(status=status)
    results = data.get("video_result")
    first = results[0] if isinstance(results, list) and results else None
    url = first.get("url") if isinstance(first, dict) else None
    cover = first.get("cover_image_url") if isinstance(first, dict) else None
    if not isinstance(url, str) or not url:
        raise ValueError("a successful task has no video_result[0].url")
    return VideoResult(status="SUCCESS", url=url,
                       cover_url=cover if isinstance(cover, str) and cover else None)  # fmt: skip


def video_object(
    video_id: str,
    job: VideoJob,
    *,
    created: float,
    expires: float,
    result: VideoResult | None,
    now: float | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """OpenAI's ``video`` object for a task (``result`` ``None``: not polled yet)."""
    now = time.time() if now is None else now
    status: Status
    if error is not None or (result is not None and result.status == "FAIL"):
        status, progress = "failed", 0
    elif result is None:
        status, progress = "queued", 0
    elif result.status == "SUCCESS":
        status, progress = "completed", 100
    else:
        status = "in_progress"
        progress = min(95, max(1, int((now - created) / TYPICAL_SECONDS * 100)))
    body: dict[str, Any] = {
        "id": video_id, "object": "video", "model": job.client_model, "status": status,
        "progress": progress, "created_at": int(created), "completed_at": None,
        "expires_at": int(expires), "prompt": job.prompt, "seconds": job.seconds,
        "size": job.size, "remixed_from_video_id": None, "error": None,
    }  # fmt: skip
    if status == "completed":
        body["completed_at"] = int(now)
    if status == "failed":
        body["error"] = {"code": "video_generation_failed",
                         "message": error or "Z.ai reported the task as failed"}  # fmt: skip
    return body
