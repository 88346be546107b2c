"""GLM's tokenizer API (``POST /paas/v4/tokenizer``): the request for a chat request.

The documented tokenizer (docs.z.ai OpenAPI ``TokenizerRequest``, zai-fidelity 1.5) takes
``model`` from an enum of three, ``glm-4.6``, ``glm-4.6v`` and ``glm-4.5``, and messages
with the roles ``user``, ``system`` and ``assistant`` only. A chat body for any routed
model is rewritten to fit: ``glm-4.6v`` when a message carries media parts, else
``glm-4.6`` (the text tokenizer the GLM-4.6+ family shares); ``tool`` messages become
``user`` text; an assistant turn's tool calls (and replayed reasoning, which is input
too) become its text; messages left without text are dropped (GLM rejects empty content).

Only the pay-as-you-go path is documented; the Coding Plan path has no documented
tokenizer, so :func:`tokenizer_url` maps a chat base URL to the general one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from glmbridge.routing import TOKENIZER_MODELS, tokenizer_model

__all__ = ["TOKENIZER_MODELS", "tokenizer_body", "tokenizer_url"]

_MEDIA = frozenset({"image_url", "video_url", "file_url", "file"})


def tokenizer_url(chat_base_url: str) -> str:
    """``<base>/tokenizer`` on the documented path: a Coding Plan base
    (``…/api/coding/paas/v4``) becomes the general one (``…/api/paas/v4``)."""
    base = chat_base_url.rstrip("/").replace("/coding/paas/", "/paas/")
    return base + "/tokenizer"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def tokenizer_body(chat_body: bytes) -> bytes:
    """The tokenizer request counting the same input as ``chat_body`` (a GLM chat body)."""
    wire = msgspec.json.decode(chat_body)
    vision = any(
        isinstance(m.get("content"), list)
        and any(isinstance(p, dict) and p.get("type") in _MEDIA for p in m["content"])
        for m in wire.get("messages", ())
    )
    messages: list[dict[str, Any]] = []
    for m in wire.get("messages", ()):
        role, content = m.get("role"), m.get("content")
        if role == "assistant":
            parts = [m.get("reasoning_content") or "", _text(content)]
            if m.get("tool_calls"):
                parts.append(msgspec.json.encode(m["tool_calls"]).decode())
            content = "\n".join(p for p in parts if p)
        elif role == "tool":
            role, content = "user", _text(content)
        elif isinstance(content, list) and not vision:
            content = _text(content)
        if (isinstance(content, str) and content.strip()) or (
            isinstance(content, list) and content
        ):
            messages.append({"role": role, "content": content})
    body: dict[str, Any] = {"model": tokenizer_model(vision=vision), "messages": messages}
    if wire.get("tools"):
        body["tools"] = wire["tools"]
    return msgspec.json.encode(body)
