"""Anthropic Messages requests from clients (``POST /v1/messages``) -> IR.

Inbound requests decode in two steps. The envelope (``MessageCreateParams``) is one
typed msgspec decode with content blocks left as ``msgspec.Raw``; each block is then
decoded on its own, so that a block type this version does not know becomes
``ir.UnknownBlock`` (logged) instead of failing the request. Tool ``input_schema``
stays ``Raw`` end to end. Every failure is a :class:`ClientRequestError` whose
message starts with the dotted JSON path (``messages.2.content.0.tool_use_id: required``).
"""

from __future__ import annotations

import logging
from typing import Any, assert_never

import msgspec

from glmbridge import ir
from glmbridge._tool_args import JSON_DECODER, exact_float
from glmbridge.errors import (
    ClientRequestError,
)
from glmbridge.inline_base64 import normalize_base64
from glmbridge.memo import RawMemo, RecentArrays
from glmbridge.protocols.anthropic import wire as aw
from glmbridge.protocols.json_errors import decode_body, validation_error

__all__ = ["decode_count_tokens_request", "decode_request", "request_to_ir"]

logger = logging.getLogger("glmbridge.protocols.anthropic")

# Free-form JSON (tool input, schemas, unknown blocks) keeps numbers beyond the float
# range exactly instead of failing the request (see _tool_args.exact_float).
_DECODE_PARAMS = msgspec.json.Decoder(aw.MessageCreateIn, float_hook=exact_float)
_DECODE_TOOL_LIST = msgspec.json.Decoder(list[msgspec.Raw] | None)
_DECODE_BLOCK = msgspec.json.Decoder(aw.BlockParam, float_hook=exact_float)
_DECODE_TOOL = msgspec.json.Decoder(aw.ToolParam, float_hook=exact_float)
_DECODE_ANY = JSON_DECODER
#: Client tool definitions by their JSON: Claude Code resends the same 24 (83% of its
#: request) every turn (glmbridge.memo).
_TOOL_MEMO: RawMemo[ir.Tool] = RawMemo()
#: The last few whole tools arrays: a turn that resends one is answered with one comparison
#: instead of a look at each of its tools.
_RECENT_TOOLS: RecentArrays[tuple[ir.Tool, ...]] = RecentArrays()

_CONTENT_BLOCKS = (
    ir.TextBlock,
    ir.ImageBlock,
    ir.VideoBlock,
    ir.DocumentBlock,
    ir.SearchResultBlock,
    ir.UnknownBlock,
)


# --- msgspec errors -> ClientRequestError -------------------------------------------------

_ALLOWED = {
    "role": "user, assistant or system",
    "tool_choice.type": "auto, any, tool or none",
    "thinking.type": "enabled, disabled or adaptive",
    "format.type": "json_schema",
    "source.type": "base64, url or file (documents also text or content)",
}


def _validation_error(exc: msgspec.ValidationError, prefix: str = "") -> ClientRequestError:
    return validation_error(exc, prefix, _ALLOWED)


# --- request: wire -> IR ------------------------------------------------------------------


def decode_request(body: bytes) -> ir.Request:
    """Decode a ``POST /v1/messages`` body.

    Raises:
        ClientRequestError: the body is not JSON, not an object, or a field is invalid;
            the message starts with the dotted path of the field.
    """
    params = _decode_params(body)
    if params.max_tokens is None:
        raise ClientRequestError("required", path="max_tokens")
    if params.max_tokens < 1:  # Anthropic's own answer: 400, "greater than or equal to 1"
        raise ClientRequestError("must be greater than or equal to 1", path="max_tokens")
    return request_to_ir(params)


def decode_count_tokens_request(body: bytes) -> ir.Request:
    """Decode a ``POST /v1/messages/count_tokens`` body (``max_tokens`` is optional).

    Raises:
        ClientRequestError: as :func:`decode_request`.
    """
    return request_to_ir(_decode_params(body))


def _decode_params(body: bytes) -> aw.MessageCreateIn:
    return decode_body(_DECODE_PARAMS, body, allowed=_ALLOWED)


def request_to_ir(params: aw.MessageCreateIn) -> ir.Request:
    """Convert a decoded ``MessageCreateParams`` into an :class:`ir.Request`.

    Raises:
        ClientRequestError: a content block or tool is invalid (path in the message).
    """
    config = params.output_config
    return ir.Request(
        model=params.model,
        messages=[_message_to_ir(m, i) for i, m in enumerate(params.messages)],
        system=_system_to_ir(params.system),
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,
        stop_sequences=params.stop_sequences or [],
        stream=bool(params.stream),
        tools=_tools_to_ir(params.tools),
        tool_choice=_tool_choice_to_ir(params.tool_choice),
        thinking=_thinking_to_ir(params.thinking),
        effort=config.effort if config is not None else None,
        response_format=_format_to_ir(params),
        user_id=params.metadata.user_id if params.metadata is not None else None,
    )


def _message_to_ir(msg: aw.MessageParam, i: int) -> ir.Message:
    content = msg.content
    if isinstance(content, str):
        return ir.Message(role=msg.role, content=[ir.TextBlock(text=content)])
    prefix = f"messages.{i}.content"
    return ir.Message(
        role=msg.role, content=[_block_to_ir(raw, prefix, j) for j, raw in enumerate(content)]
    )


def _system_to_ir(system: str | list[msgspec.Raw] | None) -> list[ir.TextBlock]:
    if not system:
        return []
    if isinstance(system, str):
        return [ir.TextBlock(text=system)]
    out: list[ir.TextBlock] = []
    for j, raw in enumerate(system):
        block = _block_to_ir(raw, "system", j)
        if isinstance(block, ir.TextBlock):
            out.append(block)
        else:
            logger.warning("dropped a non-text block at system.%d", j)
    return out


def _cache_to_ir(cc: aw.CacheControl | None) -> ir.CacheControl | None:
    return None if cc is None else ir.CacheControl(type=cc.type, ttl=cc.ttl)


def _text_to_ir(p: aw.TextBlockParam) -> ir.TextBlock:
    return ir.TextBlock(
        text=p.text, cache_control=_cache_to_ir(p.cache_control), citations=p.citations
    )


def _block_to_ir(raw: msgspec.Raw, prefix: str, j: int) -> ir.Block:
    """Decode one raw block at ``{prefix}.{j}``; unknown types become ``ir.UnknownBlock``."""
    try:
        p = _DECODE_BLOCK.decode(raw)
    except msgspec.ValidationError as exc:
        return _unknown_block(raw, exc, f"{prefix}.{j}")
    match p:
        case aw.TextBlockParam():
            return _text_to_ir(p)
        case aw.ToolUseBlockParam():
            cc = _cache_to_ir(p.cache_control)
            return ir.ToolUseBlock(id=p.id, name=p.name, input=p.input, cache_control=cc)
        case aw.ToolResultBlockParam():
            return _tool_result_to_ir(p, f"{prefix}.{j}")
        case aw.ThinkingBlockParam():
            return ir.ThinkingBlock(thinking=p.thinking, signature=p.signature)
        case aw.RedactedThinkingBlockParam():
            return ir.RedactedThinkingBlock(data=p.data)
        case aw.ImageBlockParam():
            cc = _cache_to_ir(p.cache_control)
            source = _source_to_ir(p.source, f"{prefix}.{j}")
            return ir.ImageBlock(source=source, cache_control=cc)
        case aw.DocumentBlockParam():
            return _document_to_ir(p, raw, f"{prefix}.{j}")
        case aw.SearchResultBlockParam():
            return ir.SearchResultBlock(
                source=p.source,
                title=p.title,
                content=[_text_to_ir(t) for t in p.content],
                cache_control=_cache_to_ir(p.cache_control),
            )
        case aw.ServerToolUseBlockParam():
            return ir.ServerToolUseBlock(id=p.id, name=p.name, input=p.input)
        case aw.WebSearchToolResultBlockParam():
            return ir.WebSearchToolResultBlock(tool_use_id=p.tool_use_id, content=p.content)
    assert_never(p)


def _unknown_block(raw: msgspec.Raw, exc: msgspec.ValidationError, path: str) -> ir.Block:
    # A failed decode is either a new block type (keep it) or a bad known block (400).
    obj = _DECODE_ANY.decode(raw)
    kind = obj.get("type") if isinstance(obj, dict) else None
    if isinstance(kind, str) and kind not in aw.BLOCK_TAGS:
        # web_fetch_tool_result: this gateway's own server-tool block (glmbridge.server_tools)
        log = logger.debug if kind == "web_fetch_tool_result" else logger.warning
        log("kept content block of unknown type %.64r at %s", kind, path)
        return ir.UnknownBlock(original_type=kind, raw=obj)
    raise _validation_error(exc, path) from None


def _tool_result_to_ir(p: aw.ToolResultBlockParam, path: str) -> ir.ToolResultBlock:
    content = p.content
    blocks: list[ir.ContentBlock] = []
    if isinstance(content, str):
        # "" and an absent content mean the same: an empty result
        blocks = [ir.TextBlock(text=content)] if content else []
    elif content:
        prefix = f"{path}.content"
        for k, raw in enumerate(content):
            block = _block_to_ir(raw, prefix, k)
            if not isinstance(block, _CONTENT_BLOCKS):
                kind = block.__struct_config__.tag
                logger.warning(
                    "kept %s block inside tool_result at %s.%d as unknown", kind, prefix, k
                )
                block = ir.UnknownBlock(original_type=str(kind), raw=_DECODE_ANY.decode(raw))
            blocks.append(block)
    return ir.ToolResultBlock(
        tool_use_id=p.tool_use_id,
        content=blocks,
        is_error=bool(p.is_error),
        cache_control=_cache_to_ir(p.cache_control),
    )


def _source_to_ir(src: aw.ImageSource | aw.PlainTextSource, path: str) -> ir.MediaSource:
    match src:
        case aw.Base64Source():
            data = normalize_base64(src.data, f"{path}.source.data")
            return ir.MediaSource(type="base64", media_type=src.media_type, data=data)
        case aw.URLSource():
            return ir.MediaSource(type="url", url=src.url)
        case aw.FileSource():
            return ir.MediaSource(type="file", file_id=src.file_id)
        case aw.PlainTextSource():
            return ir.MediaSource(type="text", media_type=src.media_type, data=src.data)
    assert_never(src)


def _document_to_ir(p: aw.DocumentBlockParam, raw: msgspec.Raw, path: str) -> ir.Block:
    src = p.source
    if isinstance(src, aw.ContentSource):
        # The IR has no "content" source: text-only content becomes a text source;
        # content with images is kept verbatim as an unknown block.
        parts = src.content
        if isinstance(parts, str):
            text = parts
        elif all(isinstance(b, aw.TextBlockParam) for b in parts):
            text = "\n\n".join(b.text for b in parts if isinstance(b, aw.TextBlockParam))
        else:
            logger.warning("kept a document with a content source holding images as unknown")
            return ir.UnknownBlock(original_type="document", raw=_DECODE_ANY.decode(raw))
        source = ir.MediaSource(type="text", media_type="text/plain", data=text)
    else:
        source = _source_to_ir(src, path)
    return ir.DocumentBlock(
        source=source, title=p.title, context=p.context, cache_control=_cache_to_ir(p.cache_control)
    )


def _tools_to_ir(raw: msgspec.Raw) -> list[ir.Tool]:
    """The request's tools (``raw``: the whole array, as sent). An array byte for byte one
    of the last few comes back as the same tool objects (a new list: callers may change
    it); otherwise each tool goes through the per-tool memo (:func:`_tool_to_ir`)."""
    if not raw:
        return []
    key = bytes(raw)  # a copy: a remembered array must not keep this request's body alive
    tools = _RECENT_TOOLS.get(key)
    if tools is not None:
        return list(tools)
    try:
        raws = _DECODE_TOOL_LIST.decode(key)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc, "tools") from None
    decoded = [_tool_to_ir(r, i) for i, r in enumerate(raws or ())]
    if all(t.server_type is None for t in decoded):
        # server tools carry a dict of settings: not shared between requests
        _RECENT_TOOLS.put(key, tuple(decoded))
    return decoded


def _tool_to_ir(raw: msgspec.Raw, i: int) -> ir.Tool:
    """A tool definition, decoded once per distinct definition (:data:`_TOOL_MEMO`)."""
    key = bytes(raw)  # a copy: the memo must not keep this request's body alive
    tool = _TOOL_MEMO.get(key, i)
    if tool is None:
        tool = _decode_tool(raw, i)
        if tool.server_type is None:  # a server tool's config is a dict: not shareable
            schema = tool.input_schema  # a view of this request's body: a copy instead
            if isinstance(schema, msgspec.Raw):
                tool = msgspec.structs.replace(tool, input_schema=msgspec.Raw(bytes(schema)))
            _TOOL_MEMO.put(key, tool, i)
    return tool


def _decode_tool(raw: msgspec.Raw, i: int) -> ir.Tool:
    try:
        p = _DECODE_TOOL.decode(raw)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc, f"tools.{i}") from None
    cc = _cache_to_ir(p.cache_control)
    if p.type is None or p.type == "custom":
        schema = p.input_schema
        first = bytes(memoryview(schema)[:1])  # the schema stays raw: look at one byte only
        if first in (b"", b"n"):  # absent or null
            raise ClientRequestError("required", path=f"tools.{i}.input_schema")
        if first != b"{":
            raise ClientRequestError("must be a JSON object", path=f"tools.{i}.input_schema")
        return ir.Tool(
            name=p.name, description=p.description, input_schema=schema, cache_control=cc
        )
    # Server tool (web_search_20250305, bash_20250124 …): its settings go to config.
    config: dict[str, Any] = _DECODE_ANY.decode(raw)
    for key in ("type", "name", "cache_control"):
        config.pop(key, None)
    return ir.Tool(name=p.name, server_type=p.type, config=config or None, cache_control=cc)


def _tool_choice_to_ir(tc: aw.ToolChoiceParam | None) -> ir.ToolChoice | None:
    if tc is None:
        return None
    if tc.type == "tool" and not tc.name:
        raise ClientRequestError("required", path="tool_choice.name")
    return ir.ToolChoice(
        type=tc.type,
        name=tc.name if tc.type == "tool" else None,
        disable_parallel_tool_use=bool(tc.disable_parallel_tool_use),
    )


def _thinking_to_ir(t: aw.ThinkingConfigParam | None) -> ir.Thinking | None:
    if t is None:
        return None
    budget = t.budget_tokens if t.type == "enabled" else None
    return ir.Thinking(type=t.type, budget_tokens=budget, display=t.display)


def _format_to_ir(params: aw.MessageCreateParams) -> ir.ResponseFormat | None:
    config = params.output_config
    if config is not None and config.format is not None:
        fmt, path = config.format, "output_config.format"
    elif params.output_format is not None:
        fmt, path = params.output_format, "output_format"
    else:
        return None
    if fmt.type == "json_schema" and fmt.schema is None:
        raise ClientRequestError("required", path=f"{path}.schema")
    return ir.ResponseFormat(type=fmt.type, schema=fmt.schema)
