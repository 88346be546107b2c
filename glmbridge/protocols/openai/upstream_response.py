"""Chat Completions answers (GLM dialect): upstream body -> IR."""

from __future__ import annotations

import logging

import msgspec

from glmbridge import ids, ir
from glmbridge._tool_args import parse_arguments
from glmbridge.errors import UpstreamError, UpstreamProtocolError
from glmbridge.protocols.openai import wire as w
from glmbridge.protocols.openai.wire import GLM, Dialect
from glmbridge.upstream_errors import FINISH_ERRORS, error_from_parts

__all__ = ["response_to_ir"]

logger = logging.getLogger("glmbridge.protocols.openai")


# --- response -----------------------------------------------------------------------


def _tool_use_block(call: w.RespToolCall, position: int) -> ir.ToolUseBlock:
    fn = call.function
    name = fn.name if fn is not None and fn.name else None
    raw = fn.arguments if fn is not None else None
    if raw is None:
        text = ""
    elif isinstance(raw, str):
        text = raw
    else:  # GLM's OpenAPI file types arguments as an object
        text = w.ENCODE.encode(raw).decode()
    args, repaired = parse_arguments(text)
    if repaired:
        logger.warning("tool call %d: arguments were not a valid JSON object; repaired", position)
    index = call.index if call.index is not None else position
    return ir.ToolUseBlock(
        id=ids.sanitize_tool_id(call.id) if call.id else ids.new_tool_use_id(),
        name=name or f"tool_{index}",
        input=args,
    )


def _message_blocks(message: w.RespMessage) -> list[ir.Block]:
    """Blocks of one upstream message: thinking, then text, then tool calls."""
    blocks: list[ir.Block] = []
    reasoning = message.reasoning_content
    if reasoning and not reasoning.isspace():
        sig = ids.thinking_signature(reasoning)
        blocks.append(ir.ThinkingBlock(thinking=reasoning, signature=sig))
    text = message.content
    if text and not text.isspace():
        blocks.append(ir.TextBlock(text=text))
    for position, call in enumerate(message.tool_calls or ()):
        blocks.append(_tool_use_block(call, position))
    return blocks


def response_to_ir(
    body: bytes, *, model: str, dialect: Dialect = GLM, input_estimate: int = 0
) -> ir.Response:
    """Translate a non-stream Chat Completions response into an IR response.

    Args:
        body: the upstream response bytes (HTTP 200).
        model: the model name the client asked for; echoed in the response.
        dialect: the upstream's quirks.
        input_estimate: the input tokens to report if the upstream reports no usage
            (what the stream decoder reports then too).

    Raises:
        UpstreamProtocolError: the body is not a valid response.
        UpstreamError: the body is an in-band ``{"error": ...}``, or the generation
            was aborted (``finish_reason`` ``network_error`` or ``abort``; retryable).
    """
    try:
        parsed = w.DECODE_COMPLETION.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamProtocolError(f"upstream response is not valid JSON: {exc}") from None
    if parsed.error is not None:
        raise error_from_parts(200, parsed.error.code, parsed.error.message)
    if not parsed.choices or parsed.choices[0].message is None:
        raise UpstreamProtocolError("upstream response has no choices[0].message")
    choice = parsed.choices[0]
    failure = FINISH_ERRORS.get(choice.finish_reason or "")
    if failure is not None:  # network_error, abort: the generation was aborted
        raise UpstreamError(failure, status=200, retryable=True)
    blocks = _message_blocks(choice.message)  # type: ignore[arg-type]
    has_tool = any(isinstance(b, ir.ToolUseBlock) for b in blocks)
    return ir.Response(
        id=ids.new_message_id(),
        model=model,
        content=blocks,
        stop_reason=w.stop_reason(choice.finish_reason, has_tool_use=has_tool),
        usage=w.usage_to_ir(parsed.usage, input_estimate=input_estimate),
    )
