"""Optional: in-process httpx2 transports for the official SDKs (thin drivers of
:class:`glmbridge.exchange.Exchange`), and the httpx2 boundary the server shares.

Imports ``httpx2``; ``import glmbridge`` never imports this package. The ``anthropic``
SDK is served now (:class:`GlmTransport`, :class:`AsyncGlmTransport`); the ``openai``
and ``google-genai`` SDKs arrive with their front doors.
"""

from __future__ import annotations

from glmbridge.transport.anthropic import (
    DEFAULT_FIRST_OUTPUT_TIMEOUT,
    AsyncGlmTransport,
    GlmTransport,
)
from glmbridge.transport.boundary import (
    DEFAULT_TIMEOUT,
    map_upstream_errors,
    parse_retry_after,
    scrub_key,
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
