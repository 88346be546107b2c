"""What an upstream failure means: Z.ai business codes and HTTP statuses -> UpstreamError.

This is the one place that knows GLM's business error codes (docs.z.ai/api-reference/
api-code, and the codes seen in the field: ``../shared/reference/user-demand.md`` §0).
Every upstream codec parses its own error *shape* (GLM's ``{"error": {"code", "message"}}``,
the Anthropic endpoint's ``{"type": "error", "error": {"type", "code", "message"}}``) and
hands the parts to :func:`error_from_parts`; the server's key pool reads the code sets
below to decide between retry, cool-down and failover.
"""

from __future__ import annotations

import re
from typing import Any

from glmbridge.errors import ErrorKind, UpstreamError

__all__ = [
    "AUTH_CODES",
    "BUSINESS_CODES",
    "HTTP_STATUSES",
    "QUOTA_CODES",
    "THROTTLE_CODES",
    "error_from_parts",
    "is_key_failure",
    "scrub",
]

_QUOTA_HINT = "GLM quota or balance exhausted; retrying will not help until it resets"

#: Concurrency and load codes: worth a retry with backoff.
THROTTLE_CODES = frozenset({"1302", "1303", "1305", "1312"})
#: Quota and balance codes: this key is spent until its window resets.
QUOTA_CODES = frozenset({"1113", "1308", "1309", "1310"})
#: Credential codes: this key is unusable.
AUTH_CODES = frozenset({"1000", "1001", "1002", "1003", "1004"})

# business code -> (kind, status_hint, retryable, hint appended to the message)
BUSINESS_CODES: dict[str, tuple[ErrorKind, int, bool, str]] = {
    **{c: (ErrorKind.AUTHENTICATION, 401, False, "") for c in AUTH_CODES},
    **{c: (ErrorKind.RATE_LIMIT, 429, False, _QUOTA_HINT) for c in QUOTA_CODES},
    **{c: (ErrorKind.RATE_LIMIT, 429, True, "") for c in THROTTLE_CODES},
    "1304": (ErrorKind.RATE_LIMIT, 429, False, "daily call limit reached"),
    "1313": (ErrorKind.RATE_LIMIT, 429, False, "fair-use restriction"),
    "1261": (ErrorKind.INVALID_REQUEST, 400, False, "prompt is too long"),
    # "网络错误，请稍后重试" (network error, retry later), as a 400 or inside a 200 stream
    # (llm-simple-router recommended-retry-rules, commit db72374): transient.
    "1234": (ErrorKind.API_ERROR, 500, True, "upstream network error"),
    **{
        c: (ErrorKind.INVALID_REQUEST, 400, False, "")
        for c in ("1210", "1212", "1213", "1214", "1215")
    },
    "1211": (ErrorKind.NOT_FOUND, 404, False, "model not found"),
    "1220": (ErrorKind.PERMISSION, 403, False, ""),
    "1311": (ErrorKind.PERMISSION, 403, False, "model not included in the plan"),
    "1301": (ErrorKind.INVALID_REQUEST, 400, False, "content policy"),
}
# HTTP status -> (kind, retryable), used when the business code is unknown.
HTTP_STATUSES: dict[int, tuple[ErrorKind, bool]] = {
    400: (ErrorKind.INVALID_REQUEST, False),
    401: (ErrorKind.AUTHENTICATION, False),
    403: (ErrorKind.PERMISSION, False),
    404: (ErrorKind.NOT_FOUND, False),
    408: (ErrorKind.TIMEOUT, True),
    413: (ErrorKind.REQUEST_TOO_LARGE, False),
    429: (ErrorKind.RATE_LIMIT, True),
    434: (ErrorKind.PERMISSION, False),
    435: (ErrorKind.REQUEST_TOO_LARGE, False),
    500: (ErrorKind.API_ERROR, True),
    # A gateway in front of GLM that is down, busy or timing out: the client's native
    # "overloaded, try again" is what it means and what clients back off on.
    502: (ErrorKind.OVERLOADED, True),
    503: (ErrorKind.OVERLOADED, True),
    504: (ErrorKind.OVERLOADED, True),
    529: (ErrorKind.OVERLOADED, True),
}
_MAX_MESSAGE = 500
# The Anthropic endpoint repeats the code inside the message: "[1113][余额不足][req id]".
_CODE_PREFIX = re.compile(r"^\s*\[(\d{3,5})\]\s*")
_TEXT_AND_RID = re.compile(r"^\[(?P<text>.*)\]\[(?P<rid>[^\[\]]*)\]$", re.DOTALL)


def _classify_status(status: int) -> tuple[ErrorKind, bool]:
    known = HTTP_STATUSES.get(status)
    if known is not None:
        return known
    if 500 <= status < 600:
        return ErrorKind.API_ERROR, True
    if 400 <= status < 500:
        return ErrorKind.INVALID_REQUEST, False
    return ErrorKind.API_ERROR, False  # e.g. an in-band error inside a 200


def error_from_parts(
    status: int, code: Any, message: Any, *, retry_after: float | None = None
) -> UpstreamError:
    """Build the :class:`UpstreamError` for a parsed upstream error (code + message).

    A known business code decides the kind (``BUSINESS_CODES``), else the HTTP status
    (``HTTP_STATUSES``). A code missing from ``code`` but leading the message
    (``"[1302] ..."``) counts too. The message is kept, prefixed once with the code.
    """
    code_str = str(code) if code not in (None, "") and not isinstance(code, bool) else None
    text = message if isinstance(message, str) and message else f"upstream HTTP {status}"
    found = _CODE_PREFIX.match(text)
    if found is not None:
        code_str = code_str or found.group(1)
        if found.group(1) == code_str:
            text = text[found.end() :] or f"upstream HTTP {status}"
            wrapped = _TEXT_AND_RID.match(text)
            if wrapped is not None:  # "[1113][余额不足][<request id>]": unwrap, keep the id
                rid = wrapped["rid"]
                text = wrapped["text"] + (f" (request {rid})" if rid else "")
    entry = BUSINESS_CODES.get(code_str or "")
    status_hint: int | None
    if entry is not None:
        kind, status_hint, retryable, hint = entry
        if hint:
            text = f"{text} ({hint})"
    else:
        kind, retryable = _classify_status(status)
        status_hint = None
    if code_str:
        text = f"[{code_str}] {text}"
    return UpstreamError(
        text[:_MAX_MESSAGE],
        kind=kind,
        status=status,
        code=code_str,
        retry_after=retry_after,
        retryable=retryable,
        status_hint=status_hint,
    )


def scrub(err: UpstreamError, secrets: tuple[str, ...]) -> UpstreamError:
    """``err`` with every secret in its message replaced by ``[redacted]``.

    Upstreams (and gateways before them) echo what they got, the API key included
    ("bad key Bearer <key>"), in HTTP error bodies, in a JSON error sent with ``200``, and
    in ``error`` chunks inside a stream. Every upstream-derived message passes here
    before it reaches a client or a log line.
    """
    message = err.message
    for secret in secrets:
        if secret and secret in message:
            message = message.replace(secret, "[redacted]")
    if message is not err.message:
        err.message = message
        err.args = (message,)
    return err


def is_key_failure(err: UpstreamError) -> bool:
    """Whether ``err`` says the key itself is unusable now (credentials, quota, balance)."""
    return err.status in (401, 403) or err.code in AUTH_CODES or err.code in QUOTA_CODES
