"""The simulator's media APIs: images it draws, tiny MP4s, and video tasks.

Shapes (docs.z.ai/api-reference/image/generate-image, …/video/generate-video,
…/video/get-video-status; ../docs/media.md):

* ``POST {paas/v4}/images/generations`` ``{model, prompt, size, quality}`` -> ``{created,
  data: [{url}], content_filter: [{role, level}]}``. The image is a PNG the simulator draws
  at the asked size (a disc on a background, both colours a function of the prompt) with
  the prompt in a ``tEXt`` chunk, served from the simulator's own ``…/files/`` path.
* ``POST {paas/v4}/videos/generations`` -> ``{model, id, request_id, task_status:
  "PROCESSING"}``; ``GET {paas/v4}/async-result/{id}`` is ``PROCESSING`` for
  ``app.state.media_polls`` polls (2), then ``SUCCESS`` with ``video_result: [{url,
  cover_image_url}]`` (``FAIL`` when the prompt says ``[[sim:fail]]``). A task belongs to
  the key that made it: polled with another key it does not exist. The MP4 is one PNG frame
  (the cover) lasting the asked duration: ``ftyp``, ``mdat``, ``moov`` with a ``png ``
  sample entry.
* On the Coding Plan path every media endpoint answers 429/1113, as Z.ai does for a plan
  key (openclaw docs commit 531b31e; zhayujie/CowAgent#2910). Keys in ``invalid_keys`` get
  401/1000, keys in ``quota_keys`` 429/1113.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
import time
import zlib
from collections import OrderedDict
from typing import Any

import msgspec

from glmbridge_server.simulator.asgi import (
    Reply,
    Request,
    gave_up,
    json_reply,
    wait_unless_disconnected,
)
from glmbridge_server.simulator.catalog import ERROR_CODES

__all__ = ["ENDPOINTS", "draw_png", "init_media", "tiny_mp4"]

_MAX_FILES = 32
#: Z.ai's image models: (min side, max side, step, max pixels, default size); the simulator's
#: own reading of docs.z.ai/api-reference/image/generate-image, not glmbridge's.
_IMAGE_MODELS = {
    "glm-image": (1024, 2048, 32, 2**22, "1280x1280"),
    "cogview-4-250304": (512, 2048, 16, 2**21, "1024x1024"),
}


def init_media(state: Any) -> None:
    """Media state on the simulator's ``app.state`` (also what a test reset restores)."""
    state.media_files = OrderedDict()  # name -> (bytes, content type)
    state.media_tasks = {}  # task id -> task facts
    state.media_requests = []  # every media request body, in order
    state.media_polls = 2
    state.media_latency = 0.0  # seconds an image takes (glm-image's hd takes ~20 s)


def _error(code: str, detail: str | None = None) -> Reply:
    status, message = ERROR_CODES[code]
    text = message.replace("{field}", detail or "request") if "{field}" in message else message
    return json_reply({"error": {"code": code, "message": text}}, status)


def _on_grid(size: object, model: str) -> bool:
    low, high, step, most, _ = _IMAGE_MODELS[model]
    w, sep, h = str(size).partition("x")
    if not sep or not w.isdigit() or not h.isdigit():
        return False
    width, height = int(w), int(h)
    return all(low <= v <= high and v % step == 0 for v in (width, height)) and (
        width * height <= most
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def draw_png(width: int, height: int, prompt: str) -> bytes:
    """A ``width``×``height`` RGB PNG: a disc on a background (colours from the prompt's
    hash), the prompt in a ``tEXt`` chunk."""
    digest = hashlib.sha256(prompt.encode()).digest()
    bg, fg = digest[0:3], bytes(255 - b for b in digest[0:3])
    cx, cy, r = width / 2, height / 2, min(width, height) / 3
    rows = []
    for y in range(height):
        dy = y + 0.5 - cy
        half = (r * r - dy * dy) ** 0.5 if dy * dy < r * r else 0.0
        x0, x1 = int(cx - half), int(cx + half)
        rows.append(b"\x00" + bg * x0 + fg * (x1 - x0) + bg * (width - x1))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    text = b"prompt\x00" + prompt.encode("latin-1", "replace")[:2000]
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"tEXt", text)
            + _chunk(b"IDAT", zlib.compress(b"".join(rows), 1)) + _chunk(b"IEND", b""))  # fmt: skip


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full(kind: bytes, version_flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version_flags), *parts)


def tiny_mp4(frame: bytes, width: int, height: int, seconds: int) -> bytes:
    """An MP4 of one PNG ``frame`` shown for ``seconds`` (timescale 1000)."""
    duration = seconds * 1000
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2mp41")
    mdat = _box(b"mdat", frame)
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _full(b"mvhd", 0, struct.pack(">IIII", 0, 0, 1000, duration),
                 struct.pack(">IH10x", 0x10000, 0x100), matrix, bytes(24),
                 struct.pack(">I", 2))  # fmt: skip
    tkhd = _full(b"tkhd", 3, struct.pack(">IIIII", 0, 0, 1, 0, duration), bytes(8),
                 struct.pack(">hhhH", 0, 0, 0, 0), matrix,
                 struct.pack(">II", width << 16, height << 16))  # fmt: skip
    mdhd = _full(b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, 1000, duration, 0x55C4, 0))
    hdlr = _full(b"hdlr", 0, bytes(4), b"vide", bytes(12), b"glmbridge simulator\x00")
    entry = _box(b"png ", bytes(6), struct.pack(">H", 1), bytes(16),
                 struct.pack(">HHIIIH", width, height, 0x480000, 0x480000, 0, 1),
                 bytes(32), struct.pack(">Hh", 0x18, -1))  # fmt: skip
    offset = len(ftyp) + 8  # the frame starts right after mdat's header
    stbl = _box(b"stbl",
                _full(b"stsd", 0, struct.pack(">I", 1), entry),
                _full(b"stts", 0, struct.pack(">III", 1, 1, duration)),
                _full(b"stsc", 0, struct.pack(">IIII", 1, 1, 1, 1)),
                _full(b"stsz", 0, struct.pack(">III", 0, 1, len(frame))),
                _full(b"stco", 0, struct.pack(">II", 1, offset)))  # fmt: skip
    dinf = _box(b"dinf", _full(b"dref", 0, struct.pack(">I", 1), _full(b"url ", 1)))
    minf = _box(b"minf", _full(b"vmhd", 1, bytes(8)), dinf, stbl)
    moov = _box(b"moov", mvhd, _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf)))
    return ftyp + mdat + moov


def _key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else auth.strip()


async def _body(request: Request) -> tuple[dict[str, Any] | None, Reply | None]:
    """The JSON body (recorded), or the error a real endpoint would answer instead."""
    st = request.app.state
    raw = await request.body()
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        body = None
    st.media_requests.append({"path": request.url.path, "body": body})
    key = _key(request)
    if "/coding/" in request.url.path or key in st.quota_keys:
        return None, _error("1113")
    if key in st.invalid_keys or not key:
        return None, _error("1000")
    if not isinstance(body, dict):
        return None, _error("1214", "body")
    return body, None


def _store(request: Request, name: str, data: bytes, ctype: str) -> str:
    files: OrderedDict[str, tuple[bytes, str]] = request.app.state.media_files
    files[name] = (data, ctype)
    while len(files) > _MAX_FILES:
        files.popitem(last=False)
    # The simulator's own file host: this very server, under the API prefix asked.
    base = request.url.path
    for marker in ("/images/generations", "/async-result/"):
        base = base.rsplit(marker, 1)[0]
    url = f"http://{request.headers.get('host', '127.0.0.1')}{base}"
    return f"{url}/files/{name}"


async def images(request: Request) -> Reply:
    """``POST …/images/generations``."""
    body, refused = await _body(request)
    if refused is not None or body is None:
        return refused or _error("1214", "body")
    model = str(body.get("model", ""))
    prompt = body.get("prompt")
    if model not in _IMAGE_MODELS:
        return _error("1211")
    if not isinstance(prompt, str) or not prompt.strip():
        return _error("1214", "prompt")
    size = body.get("size") or _IMAGE_MODELS[model][4]
    if not _on_grid(size, model):
        return _error("1214", "size")
    latency = request.app.state.media_latency
    if latency > 0 and not await wait_unless_disconnected(request, latency):
        return gave_up()
    width, height = (int(v) for v in str(size).split("x"))
    png = draw_png(width, height, prompt)
    url = _store(request, f"{secrets.token_hex(8)}.png", png, "image/png")
    return json_reply({"created": int(time.time()), "data": [{"url": url}],
                       "content_filter": [{"role": "assistant", "level": 3}]})  # fmt: skip


async def videos(request: Request) -> Reply:
    """``POST …/videos/generations``: a new task, ``PROCESSING``."""
    body, refused = await _body(request)
    if refused is not None or body is None:
        return refused or _error("1214", "body")
    if body.get("model") != "cogvideox-3":
        return _error("1211")
    prompt, image = body.get("prompt"), body.get("image_url")
    if not (isinstance(prompt, str) and prompt.strip()) and not isinstance(image, str):
        return _error("1214", "prompt")
    task_id = f"{int(time.time())}-{secrets.token_hex(6)}"
    request.app.state.media_tasks[task_id] = {
        "key": _key(request), "polls": 0, "prompt": prompt or "", "size": body.get("size"),
        "duration": body.get("duration", 5),
    }  # fmt: skip
    return json_reply({"model": "cogvideox-3", "id": task_id, "request_id": secrets.token_hex(8),
                       "task_status": "PROCESSING"})  # fmt: skip


def _finish(request: Request, task_id: str, task: dict[str, Any]) -> dict[str, Any]:
    size = task["size"] if isinstance(task["size"], str) else "1280x720"
    width, height = (int(v) for v in size.split("x")) if "x" in size else (1280, 720)
    scale = max(1, max(width, height) // 320)  # the cover is drawn small: tests stay fast
    cover = draw_png(max(16, width // scale), max(16, height // scale), task["prompt"])
    seconds = task["duration"] if task["duration"] in (5, 10) else 5
    mp4 = tiny_mp4(cover, max(16, width // scale), max(16, height // scale), seconds)
    return {"url": _store(request, f"{task_id}.mp4", mp4, "video/mp4"),
            "cover_image_url": _store(request, f"{task_id}.png", cover, "image/png")}  # fmt: skip


async def async_result(request: Request) -> Reply:
    """``GET …/async-result/{id}``: ``PROCESSING`` for a few polls, then the result."""
    st = request.app.state
    st.media_requests.append({"path": request.url.path, "body": None})
    if "/coding/" in request.url.path:
        return _error("1113")
    task_id = request.url.path.rpartition("/")[2]
    task = st.media_tasks.get(task_id)
    if task is None or task["key"] != _key(request):
        return _error("1214", "id")
    task["polls"] += 1
    answer: dict[str, Any] = {"model": "cogvideox-3", "request_id": secrets.token_hex(8),
                              "task_status": "PROCESSING"}  # fmt: skip
    if task["polls"] > st.media_polls:
        if "[[sim:fail]]" in task["prompt"]:
            answer["task_status"] = "FAIL"
        else:
            task.setdefault("result", _finish(request, task_id, task))
            answer.update(task_status="SUCCESS", video_result=[task["result"]])
    return json_reply(answer)


async def files(request: Request) -> Reply:
    """``GET …/files/{name}``: a generated file (the simulator's file host)."""
    found = request.app.state.media_files.get(request.url.path.rpartition("/")[2])
    if found is None:
        return Reply(b"", 404, None)
    return Reply(found[0], media_type=found[1])


#: The media endpoints: (method, path under an API prefix, handler); ``app`` routes them.
ENDPOINTS = (
    ("POST", "/images/generations", images),
    ("POST", "/videos/generations", videos),
    ("GET", "/async-result/{task_id}", async_result),
    ("GET", "/files/{name}", files),
)
