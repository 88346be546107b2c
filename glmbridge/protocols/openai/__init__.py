"""OpenAI Chat Completions; Z.ai GLM's chat API is its ``GLM`` dialect (an upstream now,
a front door with the next issue).

Modules (the same names in every protocol package): ``wire`` (Structs, :class:`Dialect`
with the ``GLM`` and ``OPENAI`` instances, finish-reason and usage tables), ``request``
(IR -> chat body; its docstring lists the translation choices), ``response`` (a chat
answer -> IR), ``stream`` (``StreamDecoder``: chunk payloads -> IR events), ``errors``
(upstream error bodies), ``upstream`` (the upstream role of :mod:`glmbridge.exchange`).
"""

from __future__ import annotations

from glmbridge.protocols.openai.errors import error_from_upstream
from glmbridge.protocols.openai.request import encode_request, request_from_ir
from glmbridge.protocols.openai.response import response_to_ir
from glmbridge.protocols.openai.stream import StreamDecoder
from glmbridge.protocols.openai.upstream import DIALECTS, ChatUpstream
from glmbridge.protocols.openai.wire import GLM, OPENAI, ChatCompletionRequest, Dialect

__all__ = [
    "DIALECTS",
    "GLM",
    "OPENAI",
    "ChatCompletionRequest",
    "ChatUpstream",
    "Dialect",
    "StreamDecoder",
    "encode_request",
    "error_from_upstream",
    "request_from_ir",
    "response_to_ir",
]
