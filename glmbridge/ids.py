"""Identifier factories and the thinking signature.

Anthropic clients expect ``msg_…`` message ids and ``toolu_…`` tool ids made of
``[A-Za-z0-9_-]``; GLM's ids (``call_-8303649628005950554``) mostly fit, but other
OpenAI-compatible upstreams send ids such as ``functions.Bash:0`` that Anthropic
rejects on replay, so every upstream tool id passes through :func:`sanitize_tool_id`.

GLM reasoning carries no signature, yet Anthropic clients replay thinking blocks with
one. :func:`thinking_signature` gives a deterministic, clearly namespaced value
(``glmbridge.v1.<hex>``) that can never be mistaken for a real Anthropic signature,
so a gateway can recognise and strip it before any Anthropic-bound request.
"""

from __future__ import annotations

import hashlib
import os
import re

__all__ = [
    "SIGNATURE_PREFIX",
    "is_glmbridge_signature",
    "new_message_id",
    "new_request_id",
    "new_tool_use_id",
    "sanitize_tool_id",
    "thinking_signature",
]

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_CHARS = 24
# Random bytes below 248 (= 4 * 62) map uniformly onto base62; the others are dropped.
# 32 bytes give 24 usable ones but with probability ~1e-7 (then more are drawn).
_TO_BASE62 = bytes(ord(_BASE62[i % 62]) for i in range(248)) + bytes(8)
_OVER_248 = bytes(range(248, 256))
_VALID_TOOL_ID = re.compile(r"[A-Za-z0-9_-]+")
_BAD_TOOL_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")
SIGNATURE_PREFIX = "glmbridge.v1."


def _random_base62() -> str:
    # bytes.translate instead of 24 divmods of a big integer: ids are made several times
    # per request (issue 22)
    chars = b""
    while len(chars) < _ID_CHARS:
        chars += os.urandom(32).translate(_TO_BASE62, _OVER_248)
    return chars[:_ID_CHARS].decode("ascii")


def new_message_id() -> str:
    """Return a fresh Anthropic-style message id: ``msg_`` + 24 random base62 chars."""
    return "msg_" + _random_base62()


def new_request_id() -> str:
    """Return a fresh Anthropic-style request id: ``req_`` + 24 random base62 chars."""
    return "req_" + _random_base62()


def new_tool_use_id() -> str:
    """Return a fresh Anthropic-style tool-use id: ``toolu_`` + 24 random base62 chars."""
    return "toolu_" + _random_base62()


def sanitize_tool_id(id: str) -> str:
    """Map an upstream tool-call id onto Anthropic's ``^[a-zA-Z0-9_-]+$``.

    Valid ids are returned unchanged. Otherwise bad characters become ``_`` and an
    8-hex-digit hash of the original is appended, so the mapping is deterministic
    (the same id always maps the same way) and distinct ids that differ only in
    their bad characters (``a.b`` / ``a:b``) do not collide.
    """
    if _VALID_TOOL_ID.fullmatch(id):
        return id
    digest = hashlib.sha256(id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    cleaned = _BAD_TOOL_ID_CHARS.sub("_", id)
    return f"{cleaned}_{digest}" if cleaned else f"toolu_{digest}"


def thinking_signature(text: str) -> str:
    """Return the opaque signature glmbridge attaches to a GLM thinking block.

    Deterministic (``glmbridge.v1.`` + the first 32 hex digits of SHA-256 of the
    text), so a streamed and a non-streamed answer with the same reasoning carry the
    same signature, and a replayed block can be checked for tampering.
    """
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return SIGNATURE_PREFIX + digest[:32]


def is_glmbridge_signature(signature: str | None) -> bool:
    """Whether ``signature`` was made by :func:`thinking_signature` (not by Anthropic)."""
    return signature is not None and signature.startswith(SIGNATURE_PREFIX)
