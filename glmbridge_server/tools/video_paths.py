"""Videos named by path in the user's turn, attached for a video-capable model (opt-in).

The glmproxy seed let a user write "what happens in /home/me/clip.mp4?" and sent the file to
GLM's vision model. Read naively that is a file-disclosure hole: any client could name any
file. Here it is off unless ``video_dirs`` lists directories, and then a path is attached only
when all of these hold:

- it is absolute (or ``~/``) and ends in a video extension (``.mp4 .m4v .mov .webm .mkv .avi``);
- resolved (symlinks followed), it lies inside one of ``video_dirs`` (also resolved), so a
  symlink or ``..`` cannot escape them; this is checked on the opened file itself (the
  real path of its descriptor), so a file swapped after the check cannot slip through;
- it is a regular file of at most ``video_max_bytes`` (checked with ``fstat``: a FIFO or
  device swapped in is refused without blocking, as it is opened ``O_NONBLOCK``);
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
import stat
from collections.abc import Sequence

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


# (Windows has neither O_NOFOLLOW nor O_NONBLOCK: the descriptor checks below still hold.)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
for _flag in ("O_NOFOLLOW", "O_NONBLOCK", "O_CLOEXEC", "O_NOCTTY"):
    _OPEN_FLAGS |= getattr(os, _flag, 0)


def _descriptor_path(fd: int, expected: str) -> str | None:
    """The path the open descriptor ``fd`` refers to now: ``/proc/self/fd`` (Linux),
    ``F_GETPATH`` (macOS); elsewhere ``expected`` if it still names the same file."""
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
        return None if real.endswith(" (deleted)") else real
    except OSError:
        pass
    try:
        import fcntl

        getpath = getattr(fcntl, "F_GETPATH", None)
        if getpath is not None:
            return fcntl.fcntl(fd, getpath, b"\0" * 1024).rstrip(b"\0").decode()
    except OSError:
        return None
    opened, named = os.fstat(fd), os.stat(expected, follow_symlinks=False)
    return expected if (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino) else None


def _read_all(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = os.read(fd, min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def find_video(text_path: str, dirs: Sequence[str], max_bytes: int) -> ir.VideoBlock | None:
    """The video at ``text_path`` as a base64 block, or None when a check fails.

    The file is opened once (``O_NOFOLLOW | O_NONBLOCK``: a symlink or a FIFO swapped in
    after the path was resolved is refused, and opening never blocks), then the descriptor
    is checked (a regular file of at most ``max_bytes``, whose real path lies inside
    ``video_dirs``) and read; nothing is looked up by name after the open, so a file
    swapped between the checks and the read cannot be sent (issue 24, item 5).
    """
    kind, media_type = _KINDS[os.path.splitext(text_path)[1].lower()]
    try:
        roots = [os.path.realpath(os.path.expanduser(d)) for d in dirs]
        resolved = os.path.realpath(os.path.expanduser(text_path), strict=True)
        fd = os.open(resolved, _OPEN_FLAGS)
    except (OSError, ValueError):  # missing, unreadable, a symlink loop, a NUL byte
        logger.debug("video path unreadable: %s", text_path)
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            logger.debug("video path not a file or over video_max_bytes: %s", text_path)
            return None
        real = _descriptor_path(fd, resolved)
        if real is None or not any(_inside(real, root) for root in roots):
            logger.debug("video path outside video_dirs: %s", text_path)
            return None
        data = _read_all(fd, max_bytes)
    except OSError:
        logger.debug("video path unreadable: %s", text_path)
        return None
    finally:
        os.close(fd)
    if len(data) > max_bytes or not _container_ok(data[:16], kind):
        logger.debug("video path is not the container its name says: %s", text_path)
        return None
    encoded = base64.b64encode(data).decode("ascii")
    source = ir.MediaSource(type="base64", media_type=media_type, data=encoded)
    return ir.VideoBlock(source=source)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


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
