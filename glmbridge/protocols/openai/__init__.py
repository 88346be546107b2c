"""OpenAI Chat Completions, both ways: the front door for OpenAI clients, and the upstream
codec for GLM's chat API (its ``GLM`` dialect).

Upstream side: ``wire`` (Structs, :class:`Dialect` with the ``GLM`` and ``OPENAI``
instances, finish-reason and usage tables), ``upstream_request`` (IR -> chat body; its
docstring lists the translation choices), ``upstream_response`` (a chat answer -> IR),
``upstream_stream`` (``StreamDecoder``: chunk payloads -> IR events), ``upstream`` (the
:class:`~glmbridge.roles.UpstreamCodec`), ``tokenizer`` (GLM's tokenizer request).

Door side: ``door_request`` (a client's request -> IR; its docstring lists the choices),
``door_response`` (IR -> ``chat.completion`` bodies), ``door_stream`` (IR events ->
chunk streams), ``door`` (the :class:`~glmbridge.roles.FrontDoor`), ``grammar`` (the
chunk-stream validator).

``errors`` serves both: upstream error bodies in, OpenAI error bodies out.
"""

from __future__ import annotations

from glmbridge.protocols.openai.door import CHAT_DOOR, ChatDoor
from glmbridge.protocols.openai.door_request import decode_request
from glmbridge.protocols.openai.door_response import response_from_ir
from glmbridge.protocols.openai.door_stream import StreamEncoder
from glmbridge.protocols.openai.errors import (
    OPENAI_ERRORS,
    encode_error,
    error_data,
    error_from_upstream,
    error_headers,
)
from glmbridge.protocols.openai.upstream import DIALECTS, ChatUpstream
from glmbridge.protocols.openai.upstream_request import encode_request, request_from_ir
from glmbridge.protocols.openai.upstream_response import response_to_ir
from glmbridge.protocols.openai.upstream_stream import StreamDecoder
from glmbridge.protocols.openai.wire import GLM, OPENAI, ChatCompletionRequest, Dialect

__all__ = [
    "CHAT_DOOR",
    "DIALECTS",
    "GLM",
    "OPENAI",
    "OPENAI_ERRORS",
    "ChatCompletionRequest",
    "ChatDoor",
    "ChatUpstream",
    "Dialect",
    "StreamDecoder",
    "StreamEncoder",
    "decode_request",
    "encode_error",
    "encode_request",
    "error_data",
    "error_from_upstream",
    "error_headers",
    "request_from_ir",
    "response_from_ir",
    "response_to_ir",
]
