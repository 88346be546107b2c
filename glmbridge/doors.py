"""The door registry: which front door (inbound protocol) a request path belongs to.

Written once for the server's routes and security middleware (which see exact paths:
:func:`protocol_for_path`, :func:`door_for_protocol`) and for the SDK transport (which sees
the SDK's base URL in front of the path, so it matches suffixes: :func:`door_for_suffix`,
:func:`gemini_method`).
"""

from __future__ import annotations

from typing import Literal

from glmbridge.exchange import FrontDoor
from glmbridge.protocols import anthropic
from glmbridge.protocols.gemini import GEMINI_DOOR
from glmbridge.protocols.openai import CHAT_DOOR
from glmbridge.protocols.responses import RESPONSES_DOOR

__all__ = [
    "GEMINI_ACTIONS",
    "InboundProtocol",
    "door_for_protocol",
    "door_for_suffix",
    "gemini_method",
    "protocol_for_path",
]

#: The inbound protocols; ``admin`` paths (``/health``, ``/config``, …) answer in Anthropic's
#: error shape.
InboundProtocol = Literal["anthropic", "openai", "gemini", "admin"]

#: Path prefixes of the OpenAI doors (Chat Completions and Responses, plus the endpoints whose
#: errors OpenAI clients must be able to read).
_OPENAI_PATHS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/images/",
    "/v1/videos",
)  # media (issue 21): images and videos

#: The error shape of each protocol (``admin`` uses Anthropic's).
_ERROR_DOORS: dict[str, FrontDoor] = {
    "anthropic": anthropic.DOOR,
    "admin": anthropic.DOOR,
    "openai": CHAT_DOOR,
    "gemini": GEMINI_DOOR,
}

#: Path suffix -> the front door that serves it, for a client whose base URL may carry a prefix.
_SUFFIX_DOORS: tuple[tuple[str, FrontDoor], ...] = (
    ("/v1/messages", anthropic.DOOR),
    ("/chat/completions", CHAT_DOOR),
    ("/responses", RESPONSES_DOOR),
)

#: The Gemini methods served (``…/models/<model>:<action>``).
GEMINI_ACTIONS = ("generateContent", "streamGenerateContent", "countTokens")


def protocol_for_path(path: str) -> InboundProtocol:
    """The inbound protocol a server path belongs to: ``anthropic``, ``openai``, ``gemini``,
    ``admin``."""
    if path.startswith(("/v1beta/", "/v1beta1/")) or path in ("/v1beta", "/v1beta1"):
        return "gemini"
    if path.startswith("/v1/models/") and ":" in path.rpartition("/")[2]:
        return "gemini"  # the v1 alias of generateContent & co
    if path.startswith(_OPENAI_PATHS):
        return "openai"
    if path.startswith("/v1/"):
        return "anthropic"
    return "admin"


def door_for_protocol(protocol: str) -> FrontDoor:
    """The front door whose error shape ``protocol``'s clients understand."""
    return _ERROR_DOORS.get(protocol, anthropic.DOOR)


def door_for_suffix(path: str) -> FrontDoor | None:
    """The model door serving a path that ends with its endpoint (``…/v1/messages``,
    ``…/chat/completions``, ``…/responses``), or ``None``."""
    return next((door for suffix, door in _SUFFIX_DOORS if path.endswith(suffix)), None)


def gemini_method(path: str) -> tuple[str, str] | None:
    """``(model, action)`` of a Gemini method path (``…/models/<model>:<action>``)."""
    _, sep, last = path.rpartition("/models/")
    model, colon, action = last.rpartition(":")
    if sep and colon and model and action in GEMINI_ACTIONS:
        return model, action
    return None
