"""Anthropic Messages: the front door, and Z.ai's Anthropic-compatible upstream.

Both roles, so every module name of :mod:`glmbridge.protocols`: ``door_request``,
``door_response``, ``door_stream`` (``StreamEncoder``), ``grammar``
(:func:`validate_anthropic_stream`), ``door``; ``upstream_request``,
``upstream_response``, ``upstream_stream`` (``StreamDecoder``), ``upstream``; ``wire``
and ``errors`` (error bodies, events and upstream error decoding).

Inbound requests decode in two steps. The envelope (``MessageCreateParams``) is one
typed msgspec decode with content blocks left as ``msgspec.Raw``; each block is then
decoded on its own, so that a block type this version does not know becomes
``ir.UnknownBlock`` (logged) instead of failing the request. Every failure is a
:class:`~glmbridge.errors.ClientRequestError` whose message starts with the dotted JSON
path (``messages.2.content.0.tool_use_id: required``).
"""

from __future__ import annotations

from glmbridge.protocols.anthropic.door import DOOR, AnthropicDoor
from glmbridge.protocols.anthropic.door_request import (
    decode_count_tokens_request,
    decode_request,
    request_to_ir,
)
from glmbridge.protocols.anthropic.door_response import encode_response, response_from_ir
from glmbridge.protocols.anthropic.door_stream import StreamEncoder
from glmbridge.protocols.anthropic.errors import (
    ERROR_TYPES,
    encode_error,
    error_event,
    error_from_upstream,
    error_headers,
)
from glmbridge.protocols.anthropic.upstream import AnthropicUpstream
from glmbridge.protocols.anthropic.upstream_request import request_from_ir
from glmbridge.protocols.anthropic.upstream_response import response_to_ir
from glmbridge.protocols.anthropic.upstream_stream import StreamDecoder

__all__ = [
    "DOOR",
    "ERROR_TYPES",
    "AnthropicDoor",
    "AnthropicUpstream",
    "StreamDecoder",
    "StreamEncoder",
    "decode_count_tokens_request",
    "decode_request",
    "encode_error",
    "encode_response",
    "error_event",
    "error_from_upstream",
    "error_headers",
    "request_from_ir",
    "request_to_ir",
    "response_from_ir",
    "response_to_ir",
]
