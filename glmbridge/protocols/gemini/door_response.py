"""Gemini answers: IR -> ``GenerateContentResponse`` bodies, and the pieces the stream
encoder shares with them (parts, finish reasons, usage)."""

from __future__ import annotations

from typing import Any

import msgspec

from glmbridge import ir

__all__ = ["FINISH_REASONS", "response_from_ir", "response_id", "usage_metadata"]

_ENCODE = msgspec.json.Encoder(decimal_format="number")

FINISH_REASONS: dict[ir.StopReason, str] = {
    ir.StopReason.END_TURN: "STOP",
    ir.StopReason.STOP_SEQUENCE: "STOP",  # Gemini has no separate reason for it
    ir.StopReason.PAUSE_TURN: "STOP",
    ir.StopReason.TOOL_USE: "STOP",  # calls end with STOP on Gemini too
    ir.StopReason.MAX_TOKENS: "MAX_TOKENS",
    ir.StopReason.MODEL_CONTEXT_WINDOW_EXCEEDED: "MAX_TOKENS",
    ir.StopReason.REFUSAL: "SAFETY",
}


def response_id(message_id: str) -> str:
    """The ``responseId`` for an exchange's message id."""
    return message_id.removeprefix("msg_")


def usage_metadata(usage: ir.Usage) -> dict[str, Any]:
    """Gemini usage: the prompt includes cached tokens; candidates exclude thoughts."""
    prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    thoughts = min(usage.reasoning_tokens or 0, usage.output_tokens)
    out: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": usage.output_tokens - thoughts,
        "totalTokenCount": prompt + usage.output_tokens,
    }
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    if usage.cache_read_input_tokens:
        out["cachedContentTokenCount"] = usage.cache_read_input_tokens
    return out


def function_call(block: ir.ToolUseBlock) -> dict[str, Any]:
    """A ``functionCall`` part (args an object; the id lets clients match the response)."""
    return {"functionCall": {"name": block.name, "args": block.input, "id": block.id}}


def parts_of(content: list[ir.Block], *, include_thoughts: bool) -> list[dict[str, Any]]:
    """The model's parts: thoughts (when asked for), text, function calls."""
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, ir.TextBlock):
            if block.text:
                parts.append({"text": block.text})
        elif isinstance(block, ir.ThinkingBlock):
            if include_thoughts and block.thinking:
                parts.append({"text": block.thinking, "thought": True})
        elif isinstance(block, ir.ToolUseBlock):
            parts.append(function_call(block))
    return parts


def grounding_metadata(content: list[ir.Block]) -> dict[str, Any] | None:
    """``groundingMetadata`` for the searches the gateway ran (``None`` when none): the
    queries and the result pages."""
    queries: list[str] = []
    chunks: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, ir.ServerToolUseBlock) and block.name == "web_search":
            query = block.input.get("query")
            queries.append(query if isinstance(query, str) else "")
        elif isinstance(block, ir.WebSearchToolResultBlock) and isinstance(block.content, list):
            chunks += [
                {"web": {"uri": r["url"], "title": r.get("title") or r["url"]}}
                for r in block.content
                if isinstance(r, dict) and isinstance(r.get("url"), str)
            ]
    if not queries:
        return None
    return {"webSearchQueries": queries, "groundingChunks": chunks}


def response_from_ir(resp: ir.Response, *, include_thoughts: bool = False) -> bytes:
    """A ``GenerateContentResponse`` body (``resp.model``: the model the client named)."""
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": parts_of(resp.content,
                                                       include_thoughts=include_thoughts)},
        "finishReason": FINISH_REASONS.get(resp.stop_reason or ir.StopReason.END_TURN, "STOP"),
        "index": 0,
    }  # fmt: skip
    grounding = grounding_metadata(resp.content)
    if grounding is not None:
        candidate["groundingMetadata"] = grounding
    body = {
        "candidates": [candidate],
        "usageMetadata": usage_metadata(resp.usage),
        "modelVersion": resp.model,
        "responseId": response_id(resp.id),
    }
    return _ENCODE.encode(body)
