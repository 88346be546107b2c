"""glmbridge: lossless, fast converters between the Anthropic Messages API and Z.ai GLM.

The library is sans-I/O: it imports msgspec and the standard library only, opens no
sockets and has no ``async``. Its pieces:

* :mod:`glmbridge.ir` and :mod:`glmbridge.events` — the canonical request/response
  model and canonical stream events every protocol converts to and from.
* :mod:`glmbridge.protocols.anthropic` and :mod:`glmbridge.protocols.openai` — the
  wire codecs, one package per protocol (GLM is the OpenAI format plus the ``GLM``
  dialect; Z.ai's Anthropic-compatible endpoint is the Anthropic one).
* :class:`Exchange` / :class:`ExchangeStream` — one front door composed with one
  upstream codec for one request: prepare, complete, and stream (any chunking).
* :func:`resolve_route` — which GLM model and upstream profile serve a request;
  :func:`model_info` — the capabilities (context window, max output …) behind a model name.
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
from glmbridge.exchange import Exchange, ExchangeStream
from glmbridge.ir import Message, Request, Response, StopReason, Usage
from glmbridge.profiles import PROFILES, UpstreamProfile
from glmbridge.protocols.anthropic.grammar import validate_anthropic_stream
from glmbridge.protocols.stream_grammar import StreamGrammarError
from glmbridge.roles import FrontDoor, UpstreamCodec
from glmbridge.routing import (
    DEFAULT_ROUTE_TABLE,
    ModelSpec,
    Route,
    RouteTable,
    model_info,
    resolve_route,
)
from glmbridge.sse import ServerSentEvent, SSEDecoder
from glmbridge.tokens import TokenEstimator, estimate_request_tokens, estimate_text_tokens

__all__ = [
    "DEFAULT_ROUTE_TABLE",
    "PROFILES",
    "ClientRequestError",
    "ErrorKind",
    "Exchange",
    "ExchangeStream",
    "FrontDoor",
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
    "UpstreamCodec",
    "UnsupportedFeatureError",
    "UpstreamConnectionError",
    "UpstreamError",
    "UpstreamProfile",
    "UpstreamProtocolError",
    "UpstreamTimeoutError",
    "Usage",
    "__version__",
    "accumulate",
    "estimate_request_tokens",
    "estimate_text_tokens",
    "events",
    "ir",
    "model_info",
    "resolve_route",
    "validate_anthropic_stream",
]
