"""Anthropic error bodies, retry headers and ``error`` events."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from glmbridge.errors import (
    ErrorKind,
    GlmbridgeError,
    UpstreamError,
)
from glmbridge.protocols.anthropic import wire as aw
from glmbridge.protocols.retry_hints import retry_headers
from glmbridge.upstream_errors import BUSINESS_CODES, error_from_parts

logger = logging.getLogger("glmbridge.protocols.anthropic")

# decimal_format: tool input numbers beyond the float range are Decimals (see
# glmbridge._tool_args.exact_float) and must go out as JSON numbers.
_ENCODE = msgspec.json.Encoder(decimal_format="number").encode

__all__ = [
    "ERROR_TYPES",
    "encode_error",
    "error_event",
    "error_frame",
    "error_from_upstream",
    "error_headers",
]

# ErrorKind -> Anthropic ``error.type``.
ERROR_TYPES: dict[ErrorKind, str] = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.BILLING: "billing_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.REQUEST_TOO_LARGE: "request_too_large",
    ErrorKind.RATE_LIMIT: "rate_limit_error",
    ErrorKind.API_ERROR: "api_error",
    ErrorKind.OVERLOADED: "overloaded_error",
    ErrorKind.TIMEOUT: "timeout_error",
}


# --- errors --------------------------------------------------------------------------------


def encode_error(err: GlmbridgeError, *, request_id: str | None = None) -> tuple[int, bytes]:
    """Render an error as ``(status, body)``: Anthropic's ``{"type":"error",...}``."""
    body = aw.ErrorResponse(
        error=aw.ErrorObject(type=ERROR_TYPES[err.kind], message=err.message),
        request_id=request_id,
    )
    return err.status_hint, _ENCODE(body)


def error_headers(err: GlmbridgeError) -> dict[str, str]:
    """HTTP headers that tell Anthropic SDKs whether and when to retry ``err``.

    ``retry-after`` (whole seconds) when the upstream said how long to wait on a 429,
    503 or 529; ``x-should-retry: false`` for upstream errors that a retry cannot fix
    (exhausted quota or balance, bad credentials): the SDKs would otherwise retry them.
    """
    return retry_headers(err)


def error_event(err: GlmbridgeError) -> bytes:
    """Render an error as an SSE ``error`` event (for failures after the headers went out)."""
    return error_frame(err.kind, err.message)


def error_frame(kind: ErrorKind, message: str) -> bytes:
    body = aw.ErrorResponse(error=aw.ErrorObject(type=ERROR_TYPES[kind], message=message))
    return b"event: error\ndata: " + _ENCODE(body) + b"\n\n"


# --- upstream errors (Z.ai's Anthropic-compatible endpoint) -----------------------------------

_KINDS_BY_TYPE = {name: kind for kind, name in ERROR_TYPES.items()}


class _ErrorBody(msgspec.Struct):
    type: Any = None
    code: Any = None
    message: Any = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorBody | None = None
    # GLM gateways sometimes answer with top-level {"code", "msg"}.
    code: Any = None
    msg: Any = None


_DECODE_ERROR = msgspec.json.Decoder(_ErrorEnvelope)


def error_from_upstream(
    status: int, body: bytes, *, retry_after: float | None = None
) -> UpstreamError:
    """Translate an Anthropic-shaped upstream error (an HTTP error body, or the data of an
    in-band ``error`` event with ``status=200``) into an :class:`UpstreamError`.

    Z.ai's Anthropic endpoint puts its business code beside the Anthropic type:
    ``{"type":"error","error":{"type":"rate_limit_error","code":"1113","message":"[1113]…"}}``
    (zai-org/feedback#789); the code decides, exactly as on the chat path
    (:func:`glmbridge.upstream_errors.error_from_parts`). Without a known code, the HTTP
    status decides, and for an in-band error the Anthropic ``error.type`` does.
    """
    try:
        parsed = _DECODE_ERROR.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        parsed = _ErrorEnvelope()
    inner = parsed.error or _ErrorBody(code=parsed.code, message=parsed.msg)
    err = error_from_parts(status, inner.code, inner.message, retry_after=retry_after)
    typed = _KINDS_BY_TYPE.get(inner.type) if isinstance(inner.type, str) else None
    if typed is not None and err.code not in BUSINESS_CODES and not 400 <= status < 600:
        retryable = typed in (ErrorKind.API_ERROR, ErrorKind.OVERLOADED, ErrorKind.TIMEOUT)
        return UpstreamError(
            err.message,
            kind=typed,
            status=status,
            code=err.code,
            retry_after=retry_after,
            retryable=retryable,
        )
    return err
