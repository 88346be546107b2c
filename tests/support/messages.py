"""Message lists for request bodies (Anthropic Messages and OpenAI Chat share this shape), and
the text of an SDK's answer."""

from __future__ import annotations

from typing import Any

__all__ = ["text_of", "user"]


def user(text: str) -> list[dict[str, Any]]:
    """One user turn with ``text``: a whole ``messages`` list."""
    return [{"role": "user", "content": text}]


def text_of(message: Any) -> str:
    """The text blocks of an ``anthropic`` SDK message, joined."""
    return "".join(b.text for b in message.content if b.type == "text")
