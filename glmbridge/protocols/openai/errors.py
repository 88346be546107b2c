"""OpenAI-shaped errors: upstream error bodies -> :class:`~glmbridge.errors.UpstreamError`
(GLM and OpenAI upstreams), and glmbridge errors -> OpenAI error bodies (the doors)."""

from __future__ import annotations

from typing import Any

import msgspec

from glmbridge.errors import (
    KIND_STATUS,
    ClientRequestError,
    ErrorKind,
    GlmbridgeError,
    UpstreamError,
)
from glmbridge.protocols.openai.wire import DECODE_COMPLETION
from glmbridge.protocols.retry_hints import retry_headers
from glmbridge.upstream_errors import QUOTA_CODES, error_from_parts

__all__ = [
    "OPENAI_ERRORS",
    "encode_error",
    "error_data",
    "error_from_upstream",
    "error_headers",
    "openai_error",
]


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


# --- errors toward OpenAI clients (Chat Completions and Responses doors) -------------------

# ErrorKind -> (HTTP status, error.type, error.code). OpenAI's SDKs pick the exception
# class from the status; Codex reads ``code`` (``context_length_exceeded`` starts its
# compaction, ``insufficient_quota`` stops retrying).
OPENAI_ERRORS: dict[ErrorKind, tuple[int, str, str | None]] = {
    ErrorKind.INVALID_REQUEST: (400, "invalid_request_error", None),
    ErrorKind.AUTHENTICATION: (401, "invalid_request_error", "invalid_api_key"),
    ErrorKind.BILLING: (429, "insufficient_quota", "insufficient_quota"),
    ErrorKind.PERMISSION: (403, "invalid_request_error", "forbidden"),
    ErrorKind.NOT_FOUND: (404, "invalid_request_error", "not_found"),
    ErrorKind.REQUEST_TOO_LARGE: (413, "invalid_request_error", "request_too_large"),
    ErrorKind.RATE_LIMIT: (429, "requests", "rate_limit_exceeded"),
    ErrorKind.API_ERROR: (500, "server_error", "server_error"),
    ErrorKind.OVERLOADED: (503, "server_error", "server_is_overloaded"),
    ErrorKind.TIMEOUT: (504, "server_error", "timeout"),
}
# GLM business codes with a more precise OpenAI code.
_CODES_BY_BUSINESS_CODE = {
    "1261": (400, "invalid_request_error", "context_length_exceeded"),
    **{c: (429, "insufficient_quota", "insufficient_quota") for c in QUOTA_CODES},
    "1211": (404, "invalid_request_error", "model_not_found"),
    "1311": (403, "invalid_request_error", "model_not_found"),
}
_ENCODE = msgspec.json.Encoder()


def openai_error(err: GlmbridgeError) -> tuple[int, dict[str, Any]]:
    """``(status, error object)`` for ``err``: ``{"message", "type", "param", "code"}``."""
    status, err_type, code = OPENAI_ERRORS[err.kind]
    upstream_code = err.code if isinstance(err, UpstreamError) else None
    precise = _CODES_BY_BUSINESS_CODE.get(upstream_code or "")
    if precise is not None:
        status, err_type, code = precise
    elif err.status_hint != KIND_STATUS[err.kind]:
        status = err.status_hint  # a route's own status (405, 413 …)
    param = err.path.split(".", 1)[0] if isinstance(err, ClientRequestError) and err.path else None
    obj = {"message": err.message, "type": err_type, "param": param, "code": code}
    return status, obj


def encode_error(err: GlmbridgeError, *, request_id: str | None = None) -> tuple[int, bytes]:
    """``(status, body)`` in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    del request_id  # OpenAI carries it in the x-request-id header, not the body
    status, obj = openai_error(err)
    return status, _ENCODE.encode({"error": obj})


def error_headers(err: GlmbridgeError) -> dict[str, str]:
    """``retry-after`` when the upstream said how long to wait; ``x-should-retry: false``
    for errors a retry cannot fix (the openai SDK honours both)."""
    # Codex retries a 429 only when told how long to wait (its recorded behaviour).
    return retry_headers(err, min_wait=1)


def error_data(err: GlmbridgeError) -> bytes:
    """The SSE ``data:`` frame that ends a Chat Completions stream with ``err``."""
    return b"data: " + _ENCODE.encode({"error": openai_error(err)[1]}) + b"\n\n"
