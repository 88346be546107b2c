"""glmbridge: lossless, fast converters between the Anthropic Messages API and Z.ai GLM.

The library is sans-I/O: it imports msgspec and the standard library only, opens no
sockets and has no ``async``. Its pieces:

* :mod:`glmbridge.ir` and :mod:`glmbridge.events` — the canonical request/response
  model and canonical stream events every protocol converts to and from.
* :mod:`glmbridge.protocols.anthropic` and :mod:`glmbridge.protocols.openai` — the
  wire codecs (GLM is the OpenAI format plus the ``GLM`` dialect).
* :class:`GlmToAnthropicStream` — upstream SSE bytes in, Anthropic SSE bytes out.
* :func:`resolve_route` — which GLM model serves a request, from a data table.
* :func:`validate_anthropic_stream` — the stream grammar validator.
"""

from __future__ import annotations

from glmbridge import events, ir
from glmbridge._version import __version__
from glmbridge.accumulate import accumulate
from glmbridge.errors import (
    ClientRequestError,
    ErrorKind,
    GlmbridgeError,
    StreamStateError,
    UnsupportedFeatureError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from glmbridge.grammar import StreamGrammarError, validate_anthropic_stream
from glmbridge.ir import Message, Request, Response, StopReason, Usage
from glmbridge.pipeline import GlmToAnthropicStream
from glmbridge.routing import DEFAULT_ROUTE_TABLE, ModelSpec, Route, RouteTable, resolve_route
from glmbridge.sse import ServerSentEvent, SSEDecoder
from glmbridge.tokens import TokenEstimator, estimate_request_tokens, estimate_text_tokens

__all__ = [
    "DEFAULT_ROUTE_TABLE",
    "ClientRequestError",
    "ErrorKind",
    "GlmToAnthropicStream",
    "GlmbridgeError",
    "Message",
    "ModelSpec",
    "Request",
    "Response",
    "Route",
    "RouteTable",
    "SSEDecoder",
    "ServerSentEvent",
    "StopReason",
    "StreamGrammarError",
    "StreamStateError",
    "TokenEstimator",
    "UnsupportedFeatureError",
    "UpstreamConnectionError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamTimeoutError",
    "Usage",
    "__version__",
    "accumulate",
    "estimate_request_tokens",
    "estimate_text_tokens",
    "events",
    "ir",
    "resolve_route",
    "validate_anthropic_stream",
]
