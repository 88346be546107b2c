"""Anthropic Messages: the front door, and Z.ai's Anthropic-compatible upstream.

Modules (the same names in every protocol package): ``wire`` (msgspec Structs),
``request`` (wire <-> IR requests), ``response`` (wire <-> IR answers), ``stream``
(``StreamEncoder``: IR events -> SSE bytes; ``StreamDecoder``: an upstream's SSE
payloads -> IR events), ``errors`` (error bodies, events and upstream error decoding),
``door`` and ``upstream`` (the two roles of :mod:`glmbridge.exchange`).

Inbound requests decode in two steps. The envelope (``MessageCreateParams``) is one
typed msgspec decode with content blocks left as ``msgspec.Raw``; each block is then
decoded on its own, so that a block type this version does not know becomes
``ir.UnknownBlock`` (logged) instead of failing the request. Every failure is a
:class:`~glmbridge.errors.ClientRequestError` whose message starts with the dotted JSON
path (``messages.2.content.0.tool_use_id: required``).
"""

from __future__ import annotations

from glmbridge.protocols.anthropic.door import DOOR, AnthropicDoor
from glmbridge.protocols.anthropic.errors import (
    ERROR_TYPES,
    encode_error,
    error_event,
    error_from_upstream,
    error_headers,
)
from glmbridge.protocols.anthropic.request import (
    decode_count_tokens_request,
    decode_request,
    request_from_ir,
    request_to_ir,
)
from glmbridge.protocols.anthropic.response import (
    encode_response,
    response_from_ir,
    response_to_ir,
)
from glmbridge.protocols.anthropic.stream import StreamDecoder, StreamEncoder
from glmbridge.protocols.anthropic.upstream import AnthropicUpstream

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
