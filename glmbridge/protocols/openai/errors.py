"""Upstream errors in the OpenAI / GLM shapes -> :class:`~glmbridge.errors.UpstreamError`."""

from __future__ import annotations

import msgspec

from glmbridge.errors import UpstreamError
from glmbridge.protocols.openai.wire import DECODE_COMPLETION
from glmbridge.upstream_errors import error_from_parts

__all__ = ["error_from_upstream"]


def error_from_upstream(
    status: int, body: bytes, *, retry_after: float | None = None
) -> UpstreamError:
    """Translate an upstream error response into an :class:`UpstreamError`.

    Accepts GLM bodies (``{"error": {"code": "1302", "message": ...}}``, code as
    string or int), OpenAI bodies (``code`` a string like ``rate_limit_exceeded``),
    top-level ``{"code", "msg"}`` gateway bodies, and non-JSON bodies. The meaning of
    codes and statuses is :func:`glmbridge.upstream_errors.error_from_parts`'s; a
    non-JSON body is never copied into the message.
    """
    try:
        parsed = DECODE_COMPLETION.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        parsed = None
    if parsed is not None and parsed.error is not None:
        return error_from_parts(
            status, parsed.error.code, parsed.error.message, retry_after=retry_after
        )
    if parsed is not None and (parsed.code is not None or parsed.msg or parsed.message):
        return error_from_parts(
            status, parsed.code, parsed.msg or parsed.message, retry_after=retry_after
        )
    return error_from_parts(status, None, None, retry_after=retry_after)
