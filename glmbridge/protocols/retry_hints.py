"""The retry hints a door sends with an error: ``retry-after`` and ``x-should-retry``.

The Anthropic and OpenAI SDKs read both headers (``x-should-retry: false`` stops their
automatic retries); the google-genai SDK reads ``retry-after`` only.
"""

from __future__ import annotations

import math

from glmbridge.errors import GlmbridgeError, UpstreamError

__all__ = ["retry_headers"]

# The statuses on which a client's SDK honours ``retry-after``.
_THROTTLED = (429, 503, 529)


def retry_headers(
    err: GlmbridgeError, *, min_wait: int | None = None, should_retry: bool = True
) -> dict[str, str]:
    """The retry hints for ``err`` (none for errors that are not the upstream's).

    Args:
        err: the error being answered.
        min_wait: if set, every retryable 429/503/529 gets a ``retry-after`` of at least
            this many seconds, even when the upstream gave none (Codex retries a 429 only
            when told how long to wait). Otherwise ``retry-after`` (whole seconds) only
            when the upstream said how long to wait.
        should_retry: also send ``x-should-retry: false`` for upstream errors a retry
            cannot fix (exhausted quota or balance, bad credentials).
    """
    headers: dict[str, str] = {}
    if isinstance(err, UpstreamError):
        throttled = err.status_hint in _THROTTLED
        if min_wait is not None and err.retryable and throttled:
            wait = err.retry_after if err.retry_after is not None else min_wait
            headers["retry-after"] = str(max(min_wait, math.ceil(wait)))
        elif err.retry_after is not None and throttled:
            headers["retry-after"] = str(max(0, math.ceil(err.retry_after)))
        if should_retry and not err.retryable:
            headers["x-should-retry"] = "false"
    return headers
