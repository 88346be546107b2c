"""The canonical model (IR): one block-based request/response shape for every protocol.

The IR is a superset of Anthropic Messages semantics. A request is a list of
messages, each an ordered list of typed blocks; a response is the same blocks plus
a stop reason and usage. Each wire protocol has two codecs (``*_to_ir`` and
``*_from_ir``), so adding a protocol adds two functions, not N converters.

All types are frozen :mod:`msgspec` Structs. Blocks form a tagged union on the
``type`` field, with tags equal to Anthropic's block names, so an IR value encodes
to readable JSON for logs and fixtures. Nothing here knows about model names.

Blocks that a converter does not understand arrive as :class:`UnknownBlock` (the
original JSON kept), so a new block type never fails a whole request; each target
codec decides to pass it through or drop it with a log line.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, TypeAlias

import msgspec

__all__ = [
    "Block",
    "CacheControl",
    "ContentBlock",
    "DocumentBlock",
    "ImageBlock",
    "MediaSource",
    "Message",
    "RedactedThinkingBlock",
    "Request",
    "Response",
    "ResponseFormat",
    "Role",
    "SearchResultBlock",
    "ServerToolUseBlock",
    "StopReason",
    "TextBlock",
    "Thinking",
    "ThinkingBlock",
    "Tool",
    "ToolChoice",
    "ToolResultBlock",
    "ToolUseBlock",
    "UnknownBlock",
    "Usage",
    "VideoBlock",
    "WebSearchToolResultBlock",
]


# gc=False: decoded JSON cannot form reference cycles, and untracked instances spare
# the cyclic collector pauses that grow with the request (issue 13, item 3).
class _IR(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Shared configuration of every IR struct."""


class StopReason(StrEnum):
    """Why the model stopped; Anthropic's vocabulary, the richest of the protocols."""

    END_TURN = "end_turn"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"
    TOOL_USE = "tool_use"
    PAUSE_TURN = "pause_turn"
    REFUSAL = "refusal"
    MODEL_CONTEXT_WINDOW_EXCEEDED = "model_context_window_exceeded"


Role: TypeAlias = Literal["user", "assistant", "system"]


class CacheControl(_IR, frozen=True):
    """A prompt-cache breakpoint (``{"type":"ephemeral","ttl":"5m"}``)."""

    type: str = "ephemeral"
    ttl: str | None = None


class MediaSource(_IR, frozen=True):
    """Where the bytes of an image, video or document come from.

    ``type`` is ``"base64"`` (``data`` holds bare base64, ``media_type`` its MIME
    type), ``"url"`` (``url``), ``"text"`` (``data`` holds plain text), or
    ``"file"`` (``file_id``, a provider file reference).
    """

    type: Literal["base64", "url", "text", "file"]
    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    file_id: str | None = None


class _Block(_IR, tag_field="type", frozen=True):
    """Base of all content blocks."""


class TextBlock(_Block, tag="text", frozen=True):
    """Plain text. ``citations`` are kept verbatim (protocol-specific JSON)."""

    text: str
    cache_control: CacheControl | None = None
    citations: list[dict[str, Any]] | None = None


class _MediaBlock(_Block, frozen=True):
    """Base of the blocks that are only media bytes (an image, a video)."""

    source: MediaSource
    cache_control: CacheControl | None = None


class ImageBlock(_MediaBlock, tag="image", frozen=True):
    """An image, as base64 bytes or a URL."""


class VideoBlock(_MediaBlock, tag="video", frozen=True):
    """A video (GLM vision models and Gemini accept them; Anthropic has no such block)."""


class DocumentBlock(_Block, tag="document", frozen=True):
    """A document (PDF as base64/URL, or plain text)."""

    source: MediaSource
    title: str | None = None
    context: str | None = None
    cache_control: CacheControl | None = None


class ThinkingBlock(_Block, tag="thinking", frozen=True):
    """Model reasoning. ``signature`` is opaque and must travel back unmodified."""

    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(_Block, tag="redacted_thinking", frozen=True):
    """Encrypted reasoning; opaque, never shown or sent as text."""

    data: str


class ToolUseBlock(_Block, tag="tool_use", frozen=True):
    """A call of a client tool. ``input`` is the parsed argument object."""

    id: str
    name: str
    input: dict[str, Any]
    cache_control: CacheControl | None = None


class SearchResultBlock(_Block, tag="search_result", frozen=True):
    """A search result supplied by the client (RAG), citable by the model."""

    source: str
    title: str
    content: list[TextBlock]
    cache_control: CacheControl | None = None


class UnknownBlock(_Block, tag="unknown", frozen=True):
    """A block of a type this version does not model; ``raw`` is the original JSON."""

    original_type: str
    raw: dict[str, Any]


ContentBlock: TypeAlias = (
    TextBlock | ImageBlock | VideoBlock | DocumentBlock | SearchResultBlock | UnknownBlock
)


class ToolResultBlock(_Block, tag="tool_result", frozen=True):
    """The result of a tool call; ``content`` may hold text, images, documents."""

    tool_use_id: str
    content: list[ContentBlock] = []
    is_error: bool = False
    cache_control: CacheControl | None = None


class ServerToolUseBlock(_Block, tag="server_tool_use", frozen=True):
    """A call of a server-side tool (``web_search``, ``web_fetch`` …)."""

    id: str
    name: str
    input: dict[str, Any]


class WebSearchToolResultBlock(_Block, tag="web_search_tool_result", frozen=True):
    """Results of a server-side web search; ``content`` kept verbatim."""

    tool_use_id: str
    content: Any


Block: TypeAlias = (
    TextBlock
    | ImageBlock
    | VideoBlock
    | DocumentBlock
    | ThinkingBlock
    | RedactedThinkingBlock
    | ToolUseBlock
    | ToolResultBlock
    | ServerToolUseBlock
    | WebSearchToolResultBlock
    | SearchResultBlock
    | UnknownBlock
)


class Message(_IR, frozen=True):
    """One turn. ``role="system"`` marks a mid-conversation system message."""

    role: Role
    content: list[Block]


class Tool(_IR, frozen=True):
    """A tool the model may call.

    Client tools have ``server_type=None`` and a JSON Schema ``input_schema``
    (kept as raw JSON bytes when it came from the wire, to avoid re-encoding).
    Server tools (Anthropic ``web_search_20250305`` …) carry their wire ``type`` in
    ``server_type`` and their settings in ``config``.
    """

    name: str
    description: str | None = None
    input_schema: msgspec.Raw | dict[str, Any] | None = None
    server_type: str | None = None
    config: dict[str, Any] | None = None
    cache_control: CacheControl | None = None
    freeform: bool = False
    """The tool takes one free-form string, not JSON (OpenAI ``custom`` tools such as
    Codex's ``apply_patch``). ``input_schema`` is then the wrapper
    ``{"input": string}`` that function-only upstreams are offered, and a call's
    ``input`` is ``{"input": text}``."""


class ToolChoice(_IR, frozen=True):
    """How the model must use tools: ``auto``, ``any``, ``tool`` (``name``), ``none``."""

    type: Literal["auto", "any", "tool", "none"] = "auto"
    name: str | None = None
    disable_parallel_tool_use: bool = False


class Thinking(_IR, frozen=True):
    """Reasoning control: ``enabled`` (optional budget), ``disabled`` or ``adaptive``."""

    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None
    display: str | None = None


class ResponseFormat(_IR, frozen=True):
    """Structured output request: ``json_object`` or ``json_schema`` (with ``schema``)."""

    type: Literal["text", "json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str | None = None


class Request(_IR, frozen=True):
    """A protocol-neutral model request.

    ``model`` is the name the client asked for; routing decides the upstream id.
    ``effort`` is Anthropic ``output_config.effort`` (or an OpenAI reasoning effort).
    ``user_id`` is an opaque end-user id (Anthropic ``metadata.user_id``).
    """

    model: str
    messages: list[Message]
    system: list[TextBlock] = []
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] = []
    stream: bool = False
    tools: list[Tool] = []
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    effort: str | None = None
    response_format: ResponseFormat | None = None
    user_id: str | None = None
    echo: dict[str, Any] = {}
    """What the front door needs back to render its answer (OpenAI ``include_usage``,
    a Responses request's ``instructions`` and ``tools`` …); opaque to routing, token
    counting and upstream codecs."""


class Usage(_IR, frozen=True):
    """Token usage, Anthropic semantics: the three input fields are disjoint."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int | None = None
    web_search_requests: int = 0
    """Searches the gateway ran for server tools (Anthropic
    ``usage.server_tool_use.web_search_requests``)."""
    web_fetch_requests: int = 0
    """Pages the gateway fetched for server tools (``…web_fetch_requests``)."""


class Response(_IR, frozen=True):
    """A complete model answer."""

    id: str
    model: str
    content: list[Block]
    stop_reason: StopReason | None = None
    stop_sequence: str | None = None
    usage: Usage = Usage()
