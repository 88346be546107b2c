"""Google-shaped errors for the Gemini door: ``{"error": {"code", "message", "status",
"details"}}`` with the ``google.rpc`` status names the SDKs and gemini-cli read."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from glmbridge.errors import KIND_STATUS, ErrorKind, GlmbridgeError, UpstreamError
from glmbridge.protocols.retry_hints import retry_headers
from glmbridge.upstream_errors import QUOTA_CODES

__all__ = ["GOOGLE_ERRORS", "encode_error", "error_headers", "error_object"]

# ErrorKind -> (HTTP status, google.rpc status, ErrorInfo reason).
GOOGLE_ERRORS: dict[ErrorKind, tuple[int, str, str]] = {
    ErrorKind.INVALID_REQUEST: (400, "INVALID_ARGUMENT", "INVALID_REQUEST"),
    ErrorKind.AUTHENTICATION: (401, "UNAUTHENTICATED", "API_KEY_INVALID"),
    ErrorKind.BILLING: (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
    ErrorKind.PERMISSION: (403, "PERMISSION_DENIED", "FORBIDDEN"),
    ErrorKind.NOT_FOUND: (404, "NOT_FOUND", "NOT_FOUND"),
    ErrorKind.REQUEST_TOO_LARGE: (413, "INVALID_ARGUMENT", "REQUEST_TOO_LARGE"),
    ErrorKind.RATE_LIMIT: (429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED"),
    ErrorKind.API_ERROR: (500, "INTERNAL", "INTERNAL"),
    ErrorKind.OVERLOADED: (503, "UNAVAILABLE", "OVERLOADED"),
    ErrorKind.TIMEOUT: (504, "DEADLINE_EXCEEDED", "TIMEOUT"),
}
_ENCODE = msgspec.json.Encoder()
_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA = "type.googleapis.com/google.rpc.QuotaFailure"


def error_object(err: GlmbridgeError) -> tuple[int, dict[str, Any]]:
    """``(status, error object)`` for ``err``.

    ``details`` carry an ``ErrorInfo`` (reason, domain ``glmbridge``, the upstream's
    business code), a ``RetryInfo`` when the wait is known, and for an exhausted GLM
    quota a ``QuotaFailure``, which gemini-cli reads to tell a spent quota from a
    passing rate limit.
    """
    status, rpc, reason = GOOGLE_ERRORS[err.kind]
    if err.status_hint != KIND_STATUS[err.kind] and err.kind is not ErrorKind.OVERLOADED:
        status = err.status_hint  # a route's own status (405 …)
    code = err.code if isinstance(err, UpstreamError) else None
    info: dict[str, Any] = {"@type": _INFO, "reason": reason, "domain": "glmbridge"}
    if code:
        info["metadata"] = {"upstream_code": code}
    details: list[dict[str, Any]] = [info]
    if code in QUOTA_CODES:
        # gemini-cli stops retrying at once when a violated quotaId contains "PerDay"; a
        # spent GLM quota (5-hour, weekly, balance) will not come back within its retries.
        violation = {"subject": "glm", "quotaId": f"GlmQuota{code}PerDay",
                     "description": err.message}  # fmt: skip
        details.append({"@type": _QUOTA, "violations": [violation]})
    retry_after = err.retry_after if isinstance(err, UpstreamError) else None
    if retry_after is not None and status in (429, 503):
        details.append({"@type": _RETRY, "retryDelay": f"{max(0, math.ceil(retry_after))}s"})
    return status, {"code": status, "message": err.message, "status": rpc, "details": details}


def encode_error(err: GlmbridgeError, *, request_id: str | None = None) -> tuple[int, bytes]:
    """``(status, body)`` in Google's error shape."""
    del request_id  # carried in the request-id header
    status, obj = error_object(err)
    return status, _ENCODE.encode({"error": obj})


def error_headers(err: GlmbridgeError) -> dict[str, str]:
    """``retry-after`` when the upstream said how long to wait."""
    return retry_headers(err, should_retry=False)
