"""Server-sent event bodies read whole, as the tests check them."""

from __future__ import annotations

import json
from typing import Any

from glmbridge.sse import SSEDecoder

__all__ = ["sse_events"]


def sse_events(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    """``(event name, JSON data)`` of every frame of ``raw``, a trailing unterminated one too."""
    decoder = SSEDecoder()
    frames = decoder.feed(raw) + decoder.flush()
    return [(f.event, json.loads(f.data)) for f in frames]
