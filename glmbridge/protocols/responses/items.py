"""Responses output items and the response object, built the same way for the
non-streamed body and for every event of a stream.

**Reasoning round trip.** GLM's reasoning is plain text; Responses clients such as
Codex run with ``store: false`` and send reasoning back only as an item's opaque
``encrypted_content``. We put the thinking text and its signature there (base64 JSON
behind a ``gb1:`` prefix; not secret, only opaque to the client), so the next request
returns GLM's reasoning to GLM in history, as the chat API's ``reasoning_content``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from glmbridge import ir
from glmbridge.protocols.openai.door_response import usage_from_ir as chat_usage

__all__ = [
    "NAMESPACE_SEPARATOR",
    "Naming",
    "decode_reasoning",
    "encode_reasoning",
    "response_object",
    "search_sources",
    "usage_object",
]

NAMESPACE_SEPARATOR = "__"
"""Joins a namespace and a tool name into one function name (``mcp__server__tool``)."""

_REASONING_PREFIX = "gb1:"
_ENCODE = msgspec.json.Encoder()


class _Reasoning(msgspec.Struct):
    t: str
    s: str | None = None


_DECODE_REASONING = msgspec.json.Decoder(_Reasoning)


def encode_reasoning(thinking: str, signature: str | None) -> str:
    """The ``encrypted_content`` that carries GLM's reasoning back to us."""
    raw = _ENCODE.encode(_Reasoning(t=thinking, s=signature))
    return _REASONING_PREFIX + base64.b64encode(raw).decode()


def decode_reasoning(content: str | None) -> ir.ThinkingBlock | None:
    """The thinking block inside our own ``encrypted_content``; ``None`` for anything else."""
    if not content or not content.startswith(_REASONING_PREFIX):
        return None
    try:
        parsed = _DECODE_REASONING.decode(base64.b64decode(content[len(_REASONING_PREFIX) :]))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None
    return ir.ThinkingBlock(thinking=parsed.t, signature=parsed.s)


def usage_object(usage: ir.Usage) -> dict[str, Any]:
    """Responses usage (input includes cached tokens, output includes reasoning)."""
    chat = chat_usage(usage)
    return {
        "input_tokens": chat["prompt_tokens"],
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_input_tokens,
            "cache_write_tokens": usage.cache_creation_input_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": chat["total_tokens"],
    }


class Naming:
    """Per-request item naming: ids from the message id, and tool calls mapped back
    (free-form tools -> ``custom_tool_call``, flattened namespaces -> ``namespace``)."""

    def __init__(self, message_id: str, echo: dict[str, Any]) -> None:
        self.base = message_id.removeprefix("msg_")
        self.freeform = frozenset(echo.get("freeform") or ())
        self.namespaced: dict[str, list[str]] = echo.get("namespaced") or {}

    def item_id(self, prefix: str, index: int) -> str:
        return f"{prefix}_{self.base}{index}"

    def reasoning(
        self, index: int, text: str, signature: str | None, status: str
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": self.item_id("rs", index),
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text}] if text else [],
            "status": status,
        }
        # Always, not only when ``include`` asks: a client without it has no other way to
        # return GLM's reasoning (we keep no responses for previous_response_id).
        item["encrypted_content"] = encode_reasoning(text, signature)
        return item

    def message(self, index: int, text: str | None, status: str) -> dict[str, Any]:
        content = [] if text is None else [output_text(text)]
        return {"id": self.item_id("msg", index), "type": "message", "role": "assistant",
                "status": status, "content": content}  # fmt: skip

    def call(self, index: int, block: ir.ToolUseBlock, payload: str | None,
             status: str) -> dict[str, Any]:  # fmt: skip
        """A ``function_call`` or ``custom_tool_call`` item; ``payload`` is the arguments
        JSON (or the free-form input), ``None`` while in progress."""
        if block.name in self.freeform:
            return {"id": self.item_id("ctc", index), "type": "custom_tool_call",
                    "call_id": block.id, "name": block.name, "input": payload or "",
                    "status": status}  # fmt: skip
        item = {"id": self.item_id("fc", index), "type": "function_call", "call_id": block.id,
                "name": block.name, "arguments": payload or "", "status": status}  # fmt: skip
        split = self.namespaced.get(block.name)
        if split is not None:
            item["namespace"], item["name"] = split
        return item

    def search(self, index: int, query: str, sources: list[str] | None,
               status: str) -> dict[str, Any]:  # fmt: skip
        """A ``web_search_call`` item: a search the gateway ran (``sources``: the result
        URLs, ``None`` while in progress)."""
        action: dict[str, Any] = {"type": "search", "query": query}
        if sources is not None:
            action["sources"] = [{"type": "url", "url": url} for url in sources]
        return {"id": self.item_id("ws", index), "type": "web_search_call",
                "status": status, "action": action}  # fmt: skip

    def is_freeform(self, name: str) -> bool:
        return name in self.freeform


def search_sources(block: ir.WebSearchToolResultBlock) -> list[str]:
    """The result URLs of a search's result block (none for an error)."""
    content = block.content
    if not isinstance(content, list):
        return []
    return [r["url"] for r in content if isinstance(r, dict) and isinstance(r.get("url"), str)]


def output_text(text: str) -> dict[str, Any]:
    """An ``output_text`` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def freeform_input(arguments: dict[str, Any]) -> str:
    """The free-form input inside a call's ``{"input": …}`` arguments."""
    value = arguments.get("input")
    if isinstance(value, str):
        return value
    return "" if value is None else _ENCODE.encode(value).decode()


_STOP_STATUS: dict[ir.StopReason, tuple[str, str | None]] = {
    ir.StopReason.MAX_TOKENS: ("incomplete", "max_output_tokens"),
    ir.StopReason.MODEL_CONTEXT_WINDOW_EXCEEDED: ("incomplete", "max_output_tokens"),
    ir.StopReason.REFUSAL: ("incomplete", "content_filter"),
}


def status_of(reason: ir.StopReason | None) -> tuple[str, str | None]:
    """``(status, incomplete reason)`` for a stop reason."""
    return _STOP_STATUS.get(reason or ir.StopReason.END_TURN, ("completed", None))


def response_object(
    *,
    response_id: str,
    created_at: int,
    model: str,
    echo: dict[str, Any],
    status: str,
    output: list[dict[str, Any]],
    usage: ir.Usage | None = None,
    incomplete_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``response`` object, echoing the request's settings as OpenAI does."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": echo.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": echo.get("reasoning") or {"effort": None, "summary": None},
        "store": echo.get("store", False),
        "temperature": echo.get("temperature"),
        "text": echo.get("text") or {"format": {"type": "text"}},
        "tool_choice": echo.get("tool_choice", "auto"),
        "tools": echo.get("tools") or [],
        "top_p": echo.get("top_p"),
        "truncation": "disabled",
        "usage": usage_object(usage) if usage is not None else None,
        "metadata": echo.get("metadata") or {},
    }
