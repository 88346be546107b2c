"""Z.ai's Anthropic-compatible endpoint (``/api/anthropic/v1/messages``) as an upstream codec.

The request is the client's IR re-encoded as Anthropic Messages, with the
normalisation users of that endpoint report needing (each with its source):

* ``model`` is the routed GLM id (``[1m]`` and other suffixes already stripped by the
  router; the endpoint answers 1211 to them: Kohaku-Lab/KohakuTerrarium#73).
* ``max_tokens`` is always sent and capped at the model's output limit (a missing
  ``max_tokens`` is a 500 there: zai-org/zai-coding-plugins#15).
* Empty text blocks are dropped, and a message left empty with them (GLM rejects
  empty text: zed-industries/zed#38153; earendil-works/pi PR#358 filters them).
* A history ``tool_use`` whose ``input`` is not an object is wrapped as
  ``{"value": …}`` (an array input is a 500 there: zai-org/zai-coding-plugins#14).
* Mid-conversation ``role: "system"`` messages become ``<system-reminder>`` user text,
  as on the chat path (the Messages API has no such role).
* ``thinking: disabled`` on an always-thinking model is handled by
  :func:`glmbridge.exchange.adapt_request` for every upstream.
* ``tool_search_tool_*`` server tools are dropped: the IR does not carry
  ``defer_loading``, so every tool is offered directly, and Z.ai's tool search defers
  all tools and fails whole sessions (zai-org/feedback#172, farion1231/cc-switch#4989).
* The path carries ``?beta=true``, as Claude Code sends it: without it Claude Code's
  ``web_search`` server tool is a 1210 there (farion1231/cc-switch#3090).

What the IR does not carry (top-level ``cache_control``, ``context_management``,
citations, beta headers) is not forwarded: no source shows the endpoint honouring
it, and ``anthropic-beta`` tool features misbehave there (zai-org/feedback#172,
farion1231/cc-switch#4989).
"""

from __future__ import annotations

import logging
from operator import attrgetter
from typing import Any

import msgspec

from glmbridge import ir
from glmbridge.errors import UpstreamError
from glmbridge.protocols.anthropic.errors import error_from_upstream
from glmbridge.protocols.anthropic.upstream_request import request_from_ir
from glmbridge.protocols.anthropic.upstream_response import response_to_ir
from glmbridge.protocols.anthropic.upstream_stream import StreamDecoder
from glmbridge.routing import Route

__all__ = ["AnthropicUpstream", "for_upstream"]

logger = logging.getLogger("glmbridge.protocols.anthropic")

_DEFAULT_MAX_TOKENS = 32_000  # Claude Code's own default output budget
_TOOL_SEARCH = "tool_search_tool"
_SERVER_TYPE = attrgetter("server_type")


def _clean_block(block: ir.Block) -> ir.Block | None:
    if isinstance(block, ir.TextBlock):
        return block if block.text else None
    if isinstance(block, ir.ToolUseBlock) and not isinstance(block.input, dict):
        logger.debug("tool_use %s input wrapped in an object", block.id)
        value: Any = block.input
        return msgspec.structs.replace(block, input={"value": value})
    if isinstance(block, ir.ToolResultBlock) and any(
        isinstance(b, ir.TextBlock) and not b.text for b in block.content
    ):
        kept = [b for b in block.content if not (isinstance(b, ir.TextBlock) and not b.text)]
        return msgspec.structs.replace(block, content=kept)
    return block


def _clean_message(msg: ir.Message) -> ir.Message | None:
    if msg.role == "system":
        text = "\n\n".join(b.text for b in msg.content if isinstance(b, ir.TextBlock) and b.text)
        if not text:
            return None
        reminder = ir.TextBlock(text=f"<system-reminder>\n{text}\n</system-reminder>")
        return ir.Message(role="user", content=[reminder])
    if not msg.content:
        return None
    for i, block in enumerate(msg.content):
        cleaned = _clean_block(block)
        if cleaned is not block:
            return _cleaned_from(msg, i, cleaned)
    return msg  # the usual case: nothing to clean (no copy)


def _cleaned_from(msg: ir.Message, i: int, first: ir.Block | None) -> ir.Message | None:
    """``msg`` cleaned, its blocks before ``i`` unchanged and block ``i`` now ``first``."""
    blocks = msg.content
    content = blocks[:i] if first is None else [*blocks[:i], first]
    content += [c for b in blocks[i + 1 :] if (c := _clean_block(b)) is not None]
    return ir.Message(role=msg.role, content=content) if content else None


def for_upstream(req: ir.Request, route: Route) -> ir.Request:
    """The request as Z.ai's Anthropic endpoint takes it (see the module docstring)."""
    limit = route.spec.max_output
    messages = [m for msg in req.messages if (m := _clean_message(msg)) is not None]
    tools = list(req.tools)
    if any(map(_SERVER_TYPE, tools)):  # client tools only (the usual case): nothing to drop
        tools = [t for t in req.tools if not (t.server_type or "").startswith(_TOOL_SEARCH)]
        if len(tools) != len(req.tools):
            logger.debug("tool search server tools dropped (Z.ai defers every tool behind them)")
    return msgspec.structs.replace(
        req,
        model=route.model,
        messages=messages,
        system=[b for b in req.system if b.text],
        tools=tools,
        max_tokens=min(req.max_tokens or _DEFAULT_MAX_TOKENS, limit),
    )


class AnthropicUpstream:
    """Implements :class:`glmbridge.roles.UpstreamCodec` for Anthropic-compatible upstreams."""

    path = "/v1/messages?beta=true"
    # Optional on Z.ai (research notes: both absent and present work); sent as the SDKs do.
    headers = {"anthropic-version": "2023-06-01"}

    def encode_request(self, req: ir.Request, route: Route) -> bytes:
        """The ``/v1/messages`` body for ``route``."""
        return request_from_ir(for_upstream(req, route))

    def decode_response(self, body: bytes, *, model: str, input_estimate: int) -> ir.Response:
        """A ``200`` body -> IR (raises ``UpstreamError`` for an error object)."""
        return response_to_ir(body, model=model, input_estimate=input_estimate)

    def stream_decoder(
        self, *, model: str, message_id: str, input_tokens_estimate: int
    ) -> StreamDecoder:
        """A fresh decoder for one streamed answer."""
        return StreamDecoder(
            model=model, message_id=message_id, input_tokens_estimate=input_tokens_estimate
        )

    def decode_error(
        self, status: int, body: bytes, *, retry_after: float | None = None
    ) -> UpstreamError:
        """A non-200 answer -> :class:`UpstreamError` (Z.ai business codes included)."""
        return error_from_upstream(status, body, retry_after=retry_after)
