"""Anthropic ``Message`` bodies toward clients: IR -> wire (the door's answer)."""

from __future__ import annotations

import logging

import msgspec

from glmbridge import ir
from glmbridge.protocols.anthropic import wire as aw

logger = logging.getLogger("glmbridge.protocols.anthropic")

# decimal_format: tool input numbers beyond the float range are Decimals (see
# glmbridge._tool_args.exact_float) and must go out as JSON numbers.
_ENCODE = msgspec.json.Encoder(decimal_format="number").encode

__all__ = ["encode_response", "response_from_ir", "server_tool_usage"]


def response_from_ir(resp: ir.Response) -> aw.Message:
    """Build the wire ``Message`` for an :class:`ir.Response`.

    Thinking blocks always carry a ``signature`` string; unknown blocks pass through
    verbatim; request-only blocks (images, documents, tool results) are dropped.
    """
    content = [c for b in resp.content if (c := _content_from_ir(b)) is not None]
    return aw.Message(
        id=resp.id,
        model=resp.model,
        content=content,
        stop_reason=resp.stop_reason.value if resp.stop_reason is not None else None,
        stop_sequence=resp.stop_sequence,
        usage=_usage_from_ir(resp.usage),
    )


def encode_response(resp: ir.Response) -> bytes:
    """Encode an :class:`ir.Response` as the JSON body of a non-streaming answer."""
    return _ENCODE(response_from_ir(resp))


def _usage_from_ir(u: ir.Usage, *, min_output: int = 0) -> aw.Usage:
    return aw.Usage(
        input_tokens=u.input_tokens,
        output_tokens=max(u.output_tokens, min_output),
        cache_creation_input_tokens=u.cache_creation_input_tokens,
        cache_read_input_tokens=u.cache_read_input_tokens,
        server_tool_use=server_tool_usage(u),
    )


def server_tool_usage(u: ir.Usage) -> aw.ServerToolUsage | msgspec.UnsetType:
    """``usage.server_tool_use`` when the gateway ran server tools, else absent."""
    if not (u.web_search_requests or u.web_fetch_requests):
        return msgspec.UNSET
    return aw.ServerToolUsage(
        web_search_requests=u.web_search_requests, web_fetch_requests=u.web_fetch_requests
    )


def _content_from_ir(b: ir.Block) -> aw.ContentBlock | None:
    match b:
        case ir.TextBlock():
            return aw.TextBlock(text=b.text, citations=b.citations or None)
        case ir.ThinkingBlock():
            return aw.ThinkingBlock(thinking=b.thinking, signature=b.signature or "")
        case ir.ToolUseBlock():
            return aw.ToolUseBlock(id=b.id, name=b.name, input=b.input)
        case ir.RedactedThinkingBlock():
            return aw.RedactedThinkingBlock(data=b.data)
        case ir.ServerToolUseBlock():
            return aw.ServerToolUseBlock(id=b.id, name=b.name, input=b.input)
        case ir.WebSearchToolResultBlock():
            return aw.WebSearchToolResultBlock(tool_use_id=b.tool_use_id, content=b.content)
        case ir.UnknownBlock():
            return b.raw
    logger.warning("dropped a %s block from a response", b.__struct_config__.tag)
    return None
