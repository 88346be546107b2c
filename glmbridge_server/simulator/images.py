"""How the simulated vision models "see" images: PNG size and text, and corrupt images.

* A vision model asked to describe an image ("Describe this image…") answers with what a
  real one would report: the size, and the text it can read. The simulator reads an image's
  "visible text" from its PNG ``tEXt``/``iTXt`` chunks (tests embed the text they want a
  model to see, e.g. a prompt injection); other formats have no readable text.
* A PNG whose bytes stop before its ``IEND`` chunk is corrupt: GLM answers ``1210`` to an
  image it cannot decode (anomalyco/opencode#2944, cc-switch#5025: "every later turn also
  fails"). Other bytes are accepted as they always were (tests send ``aGVsbG8=``).
* Inline data that is not standard base64 (RFC 4648 §4: the URL-safe ``-``/``_`` alphabet
  google-genai writes, a missing ``=``) is ``1210`` too: GLM cannot decode it either.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from typing import Any

__all__ = ["image_bytes", "is_corrupt", "not_base64", "png_facts"]

_PNG = b"\x89PNG\r\n\x1a\n"


def _inline_data(part: dict[str, Any]) -> str | None:
    """The base64 text of an ``image_url`` part with inline data (data URL or bare
    base64); ``None`` for an http(s) URL or a malformed part."""
    ref = part.get("image_url")
    url = ref.get("url") if isinstance(ref, dict) else None
    if not isinstance(url, str) or url.startswith(("http://", "https://")):
        return None
    return url.split(",", 1)[1] if url.startswith("data:") else url


def image_bytes(part: dict[str, Any]) -> bytes | None:
    """The bytes of an ``image_url`` part with inline data (data URL or bare base64)."""
    data = _inline_data(part)
    if data is None:
        return None
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None


def not_base64(part: dict[str, Any]) -> bool:
    """Whether an ``image_url`` part's inline data is not strict, standard base64."""
    data = _inline_data(part)
    if data is None:
        return False
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return True
    return False


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], len(_PNG)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        out.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def is_corrupt(data: bytes) -> bool:
    """A PNG that ends before its ``IEND`` chunk."""
    return data.startswith(_PNG) and not any(k == b"IEND" for k, _ in _chunks(data))


def png_facts(data: bytes) -> tuple[int, int, list[str]] | None:
    """``(width, height, texts)`` of a PNG, or ``None`` for other bytes."""
    if not data.startswith(_PNG):
        return None
    width = height = 0
    texts: list[str] = []
    for kind, body in _chunks(data):
        if kind == b"IHDR" and len(body) >= 8:
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"tEXt":
            texts.append(body.partition(b"\0")[2].decode("latin-1"))
        elif kind == b"zTXt":
            raw = body.partition(b"\0")[2][1:]
            texts.append(zlib.decompress(raw).decode("latin-1", "replace"))
        elif kind == b"iTXt":
            rest = body.partition(b"\0")[2][2:]
            rest = rest.partition(b"\0")[2].partition(b"\0")[2]
            texts.append(rest.decode("utf-8", "replace"))
    return width, height, texts
