"""Videos named by path in the user's turn, attached for a video-capable model (opt-in).

The glmproxy seed let a user write "what happens in /home/me/clip.mp4?" and sent the file to
GLM's vision model. Read naively that is a file-disclosure hole: any client could name any
file. Here it is off unless ``video_dirs`` lists directories, and then a path is attached only
when all of these hold:

- it is absolute (or ``~/``) and ends in a video extension (``.mp4 .m4v .mov .webm .mkv .avi``);
- resolved (symlinks followed), it lies inside one of ``video_dirs`` (also resolved), so a
  symlink or ``..`` cannot escape them;
- it is a regular file of at most ``video_max_bytes``;
- its first bytes are the container its extension claims (``ftyp`` for MP4/MOV, EBML for
  WebM/MKV, ``RIFF…AVI`` for AVI).

Only the last user message is searched (its text blocks), at most :data:`MAX_VIDEOS` paths.
A path that fails a check is left as text and logged at debug (paths are part of the prompt).
The attached :class:`~glmbridge.ir.VideoBlock` makes the router pick a video-capable model for
the turn, as any video block does.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import msgspec

from glmbridge import ir

__all__ = ["MAX_VIDEOS", "attach_videos", "find_video"]

logger = logging.getLogger("glmbridge.server")

MAX_VIDEOS = 2

_PATH = re.compile(
    r"""(?:^|(?<=[\s"'`(\[<]))(~?/[^\s"'`<>|()\[\]]+?\.(?:mp4|m4v|mov|webm|mkv|avi))(?=$|[\s"'`)\]>.,;:!?])""",
    re.IGNORECASE,
)
# extension -> (container check, media type)
_KINDS = {
    ".mp4": ("ftyp", "video/mp4"),
    ".m4v": ("ftyp", "video/mp4"),
    ".mov": ("ftyp", "video/quicktime"),
    ".webm": ("ebml", "video/webm"),
    ".mkv": ("ebml", "video/x-matroska"),
    ".avi": ("riff", "video/x-msvideo"),
}


def _container_ok(head: bytes, kind: str) -> bool:
    if kind == "ftyp":
        return head[4:8] == b"ftyp"
    if kind == "ebml":
        return head[:4] == b"\x1a\x45\xdf\xa3"
    return head[:4] == b"RIFF" and head[8:12] == b"AVI "


def find_video(text_path: str, dirs: Sequence[str], max_bytes: int) -> ir.VideoBlock | None:
    """The video at ``text_path`` as a base64 block, or None when a check fails."""
    kind, media_type = _KINDS[os.path.splitext(text_path)[1].lower()]
    try:
        real = Path(os.path.expanduser(text_path)).resolve(strict=True)
        roots = [Path(os.path.expanduser(d)).resolve() for d in dirs]
        if not any(real.is_relative_to(root) for root in roots):
            logger.debug("video path outside video_dirs: %s", text_path)
            return None
        if not real.is_file() or real.stat().st_size > max_bytes:
            logger.debug("video path not a file or over video_max_bytes: %s", text_path)
            return None
        with real.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except (OSError, RuntimeError):  # missing, unreadable, a symlink loop
        logger.debug("video path unreadable: %s", text_path)
        return None
    if len(data) > max_bytes or not _container_ok(data[:16], kind):
        logger.debug("video path is not the container its name says: %s", text_path)
        return None
    encoded = base64.b64encode(data).decode("ascii")
    source = ir.MediaSource(type="base64", media_type=media_type, data=encoded)
    return ir.VideoBlock(source=source)


def attach_videos(req: ir.Request, dirs: Sequence[str], max_bytes: int) -> ir.Request:
    """``req`` with the videos its last user message names attached to that message."""
    if not dirs:
        return req
    for index in range(len(req.messages) - 1, -1, -1):
        message = req.messages[index]
        if message.role == "user":
            break
    else:
        return req
    paths: list[str] = []
    for block in message.content:
        if isinstance(block, ir.TextBlock):
            for found in _PATH.findall(block.text):
                if found not in paths:
                    paths.append(found)
    videos = [v for p in paths[:MAX_VIDEOS] if (v := find_video(p, dirs, max_bytes)) is not None]
    if not videos:
        return req
    logger.info("attached %d video(s) named in the user's turn", len(videos))
    content = [*message.content, *videos]
    messages = list(req.messages)
    messages[index] = msgspec.structs.replace(message, content=content)
    return msgspec.structs.replace(req, messages=messages)
