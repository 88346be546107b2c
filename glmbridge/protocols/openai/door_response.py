"""Chat Completions answers toward clients: IR -> ``chat.completion`` bodies, and the pieces
the chunk stream (:mod:`glmbridge.protocols.openai.door_stream`) shares with them.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec

from glmbridge import ir

__all__ = ["FINISH_REASONS", "chat_id", "response_from_ir", "usage_from_ir"]

logger = logging.getLogger("glmbridge.protocols.openai")

_ENCODE = msgspec.json.Encoder(decimal_format="number")

FINISH_REASONS: dict[ir.StopReason, str] = {
    ir.StopReason.END_TURN: "stop",
    ir.StopReason.STOP_SEQUENCE: "stop",
    ir.StopReason.PAUSE_TURN: "stop",
    ir.StopReason.MAX_TOKENS: "length",
    ir.StopReason.MODEL_CONTEXT_WINDOW_EXCEEDED: "length",
    ir.StopReason.TOOL_USE: "tool_calls",
    ir.StopReason.REFUSAL: "content_filter",
}


def chat_id(message_id: str) -> str:
    """The ``chatcmpl-…`` id for an exchange's message id."""
    return "chatcmpl-" + message_id.removeprefix("msg_")


def usage_from_ir(usage: ir.Usage) -> dict[str, Any]:
    """OpenAI usage: ``prompt_tokens`` includes cached tokens, completion includes reasoning."""
    prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
    }


def _finish_reason(reason: ir.StopReason | None, has_calls: bool) -> str:
    if has_calls and reason in (None, ir.StopReason.END_TURN, ir.StopReason.TOOL_USE):
        return "tool_calls"
    finish = FINISH_REASONS.get(reason or ir.StopReason.END_TURN, "stop")
    return "stop" if finish == "tool_calls" else finish


_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(?P<body>.*?)\n?```\s*$", re.DOTALL)


def json_text(text: str) -> str:
    """JSON mode: ``text`` if it parses; else its JSON without a Markdown fence or prose
    around it (GLM sometimes adds them); else ``text`` unchanged, with a warning."""
    try:
        msgspec.json.decode(text)
        return text
    except msgspec.DecodeError:
        pass
    fenced = _FENCE.match(text)
    candidates = [fenced["body"]] if fenced else []
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            msgspec.json.decode(candidate)
            return candidate.strip()
        except msgspec.DecodeError:
            continue
    logger.warning("JSON mode: the model's answer is not valid JSON; sent unchanged")
    return text


def tool_call(block: ir.ToolUseBlock) -> dict[str, Any]:
    """One ``tool_calls`` entry (free-form tools are functions with one ``input`` string)."""
    arguments = _ENCODE.encode(block.input).decode()
    return {"id": block.id, "type": "function",
            "function": {"name": block.name, "arguments": arguments}}  # fmt: skip


def response_from_ir(resp: ir.Response, *, created: int, json_mode: bool = False) -> bytes:
    """A ``chat.completion`` body for an IR answer.

    Args:
        resp: the answer (``model`` is the name the client asked for).
        created: the Unix time to report.
        json_mode: the client asked for JSON; the text is checked (see :func:`json_text`).
    """
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in resp.content:
        if isinstance(block, ir.TextBlock):
            texts.append(block.text)
        elif isinstance(block, ir.ThinkingBlock):
            reasoning.append(block.thinking)
        elif isinstance(block, ir.ToolUseBlock):
            calls.append(tool_call(block))
    text = "".join(texts)
    if json_mode and text:
        text = json_text(text)
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    body = {
        "id": chat_id(resp.id),
        "object": "chat.completion",
        "created": created,
        "model": resp.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish_reason(resp.stop_reason, bool(calls)),
                "logprobs": None,
            }
        ],
        "usage": usage_from_ir(resp.usage),
    }
    return _ENCODE.encode(body)
