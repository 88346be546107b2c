"""IR requests -> Anthropic Messages bodies, for Anthropic-compatible upstreams (Z.ai's
``/api/anthropic/v1/messages``)."""

from __future__ import annotations

import logging
from typing import Any, assert_never

import msgspec

from glmbridge import ir
from glmbridge.memo import IdentityMemo
from glmbridge.protocols.anthropic import wire as aw

__all__ = ["request_from_ir"]

logger = logging.getLogger("glmbridge.protocols.anthropic")

# decimal_format: tool input numbers beyond the float range are Decimals (see
# glmbridge._tool_args.exact_float) and must go out as JSON numbers.
_ENCODE = msgspec.json.Encoder(decimal_format="number").encode
#: The encoded tool definitions by the identity of the IR tools they were made from: the
#: Anthropic door hands back the same (remembered) tool objects for a resent definition,
#: so Claude Code's 24 tools, 83% of its request, are not encoded again each turn.
_TOOLS_JSON: IdentityMemo[list[msgspec.Raw]] = IdentityMemo()


def request_from_ir(req: ir.Request) -> bytes:
    """Encode an :class:`ir.Request` as an Anthropic ``/v1/messages`` JSON body.

    Lossy by design for what the IR does not carry (top-level ``cache_control``,
    ``context_management``, document ``citations``, tool ``strict``); ``VideoBlock``
    is dropped with a warning.
    """
    # The blocks' shapes go into the body as they are (typed Any where the wire shape says
    # Raw, which is what the door decodes): one encoder pass writes them, not one per block.
    system: list[Any] = [_text_from_ir(b) for b in req.system]
    params = aw.MessageCreateParams(
        model=req.model,
        messages=[_message_from_ir(m) for m in req.messages],
        max_tokens=req.max_tokens,
        system=system or None,
        metadata=aw.Metadata(user_id=req.user_id) if req.user_id is not None else None,
        stop_sequences=req.stop_sequences or None,
        stream=True if req.stream else None,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        tools=_tools_json(req.tools),
        tool_choice=_tool_choice_from_ir(req.tool_choice),
        thinking=_thinking_from_ir(req.thinking),
        output_config=_output_config_from_ir(req),
    )
    return _ENCODE(params)


def _message_from_ir(m: ir.Message) -> aw.MessageParam:
    c = m.content
    if (
        len(c) == 1
        and type(b := c[0]) is ir.TextBlock
        and b.cache_control is None
        and not b.citations
    ):
        return aw.MessageParam(role=m.role, content=b.text)  # the compact form clients send
    blocks: list[Any] = [p for b in c if (p := _block_from_ir(b)) is not None]
    return aw.MessageParam(role=m.role, content=blocks)


def _cache_from_ir(cc: ir.CacheControl | None) -> aw.CacheControl | None:
    return None if cc is None else aw.CacheControl(type=cc.type, ttl=cc.ttl)


def _text_from_ir(b: ir.TextBlock) -> aw.TextBlockParam:
    return aw.TextBlockParam(
        text=b.text, cache_control=_cache_from_ir(b.cache_control), citations=b.citations
    )


def _source_from_ir(s: ir.MediaSource) -> aw.ImageSource | aw.PlainTextSource:
    if s.type == "base64":
        return aw.Base64Source(media_type=s.media_type or "", data=s.data or "")
    if s.type == "url":
        return aw.URLSource(url=s.url or "")
    if s.type == "file":
        return aw.FileSource(file_id=s.file_id or "")
    return aw.PlainTextSource(data=s.data or "", media_type=s.media_type or "text/plain")


def _block_from_ir(b: ir.Block) -> aw.BlockParam | dict[str, Any] | None:
    match b:
        case ir.TextBlock():
            return _text_from_ir(b)
        case ir.ToolUseBlock():
            cc = _cache_from_ir(b.cache_control)
            return aw.ToolUseBlockParam(id=b.id, name=b.name, input=b.input, cache_control=cc)
        case ir.ToolResultBlock():
            parts: list[Any] = [p for c in b.content if (p := _block_from_ir(c))]
            return aw.ToolResultBlockParam(
                tool_use_id=b.tool_use_id,
                content=parts or None,
                is_error=True if b.is_error else None,
                cache_control=_cache_from_ir(b.cache_control),
            )
        case ir.ThinkingBlock():
            return aw.ThinkingBlockParam(thinking=b.thinking, signature=b.signature or "")
        case ir.RedactedThinkingBlock():
            return aw.RedactedThinkingBlockParam(data=b.data)
        case ir.ImageBlock():
            src = _source_from_ir(b.source)
            if isinstance(src, aw.PlainTextSource):
                logger.warning("dropped an image block with a text source")
                return None
            return aw.ImageBlockParam(source=src, cache_control=_cache_from_ir(b.cache_control))
        case ir.DocumentBlock():
            return aw.DocumentBlockParam(
                source=_source_from_ir(b.source),
                title=b.title,
                context=b.context,
                cache_control=_cache_from_ir(b.cache_control),
            )
        case ir.SearchResultBlock():
            return aw.SearchResultBlockParam(
                source=b.source,
                title=b.title,
                content=[_text_from_ir(t) for t in b.content],
                cache_control=_cache_from_ir(b.cache_control),
            )
        case ir.ServerToolUseBlock():
            return aw.ServerToolUseBlockParam(id=b.id, name=b.name, input=b.input)
        case ir.WebSearchToolResultBlock():
            return aw.WebSearchToolResultBlockParam(tool_use_id=b.tool_use_id, content=b.content)
        case ir.UnknownBlock():
            return b.raw  # passed through verbatim
        case ir.VideoBlock():
            logger.warning("dropped a video block (Anthropic has no video input)")
            return None
    assert_never(b)


def _tools_json(tools: list[ir.Tool]) -> list[msgspec.Raw] | None:
    """The tool definitions as JSON (``None``: no tool), remembered for client tools only
    (a server tool's settings are a dict, not shared between requests)."""
    if not tools:
        return None
    found = _TOOLS_JSON.get(tools)
    if found is not None:  # the entry holds those tools: equal ids are the same objects
        return found
    raws = [msgspec.Raw(_ENCODE(_tool_from_ir(t))) for t in tools]
    if all(t.server_type is None for t in tools):
        _TOOLS_JSON.put(tools, raws)
    return raws


_EMPTY_SCHEMA = msgspec.Raw(b'{"type":"object","properties":{}}')


def _tool_from_ir(t: ir.Tool) -> aw.ToolParam | dict[str, Any]:
    cc = _cache_from_ir(t.cache_control)
    if t.server_type is None:
        schema = t.input_schema
        if schema is None:
            schema = _EMPTY_SCHEMA
        elif not isinstance(schema, msgspec.Raw):
            schema = msgspec.Raw(_ENCODE(schema))
        return aw.ToolParam(
            name=t.name, description=t.description, input_schema=schema, cache_control=cc
        )
    out: dict[str, Any] = {"type": t.server_type, "name": t.name, **(t.config or {})}
    if cc is not None:
        out["cache_control"] = cc
    return out


def _tool_choice_from_ir(tc: ir.ToolChoice | None) -> aw.ToolChoiceParam | None:
    if tc is None:
        return None
    no_parallel = True if tc.disable_parallel_tool_use and tc.type != "none" else None
    return aw.ToolChoiceParam(type=tc.type, name=tc.name, disable_parallel_tool_use=no_parallel)


def _thinking_from_ir(t: ir.Thinking | None) -> aw.ThinkingConfigParam | None:
    if t is None:
        return None
    return aw.ThinkingConfigParam(type=t.type, budget_tokens=t.budget_tokens, display=t.display)


def _output_config_from_ir(req: ir.Request) -> aw.OutputConfig | None:
    rf = req.response_format
    fmt = None
    if rf is not None and rf.type != "text":
        fmt = aw.OutputFormat(type=rf.type, schema=rf.schema)
    if fmt is None and req.effort is None:
        return None
    return aw.OutputConfig(effort=req.effort, format=fmt)
