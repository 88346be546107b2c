"""Optional: in-process httpx2 transports for the official SDKs (thin drivers of
:class:`glmbridge.exchange.Exchange`), and the httpx2 boundary the server shares.

Imports ``httpx2``; ``import glmbridge`` never imports this package. The ``anthropic``
and ``openai`` SDKs are served (:class:`GlmTransport`, :class:`AsyncGlmTransport`: one
transport, the front door chosen by the request's path); ``google-genai`` arrives with
its front door.
"""

from __future__ import annotations

from glmbridge.transport.boundary import (
    DEFAULT_TIMEOUT,
    map_upstream_errors,
    parse_retry_after,
    scrub_key,
)
from glmbridge.transport.sdk import (
    DEFAULT_FIRST_OUTPUT_TIMEOUT,
    AsyncGlmTransport,
    GlmTransport,
)

__all__ = [
    "DEFAULT_FIRST_OUTPUT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "AsyncGlmTransport",
    "GlmTransport",
    "map_upstream_errors",
    "parse_retry_after",
    "scrub_key",
]
