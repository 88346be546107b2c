"""Anthropic Messages wire schemas as msgspec Structs; shapes only, no conversion logic.

Names follow the Anthropic SDK (``TextBlockParam`` for requests, ``TextBlock`` for
responses). Inbound structs are lenient where Anthropic's own API is lenient and
never ``forbid_unknown_fields``: new Anthropic fields must not break old bridges.

Two deliberate ``msgspec.Raw`` slots keep decoding cheap and forward compatible:

* message ``content`` and ``system`` arrive as ``list[Raw]``, because msgspec fails a
  whole tagged-union decode on an unknown tag; the codec decodes each block on its
  own and keeps unknown types as ``ir.UnknownBlock``;
* a tool's ``input_schema`` stays ``Raw`` (Claude Code sends ~100 KB of schemas on
  every request; nothing in the bridge needs them as dicts).

Outbound structs (``Message``, stream events, errors) do not omit defaults where
Anthropic always writes the key (``stop_reason: null``, ``signature: ""``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

import msgspec

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


# gc=False: decoded JSON cannot form reference cycles, and untracked instances spare
# the cyclic collector pauses that grow with the request (issue 13, item 3).
class _Wire(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """Inbound/outbound params: absent and ``null`` both mean "not set"."""


class _Out(msgspec.Struct, kw_only=True, gc=False):
    """Outbound shapes whose optional keys Anthropic always writes (as ``null``)."""


class CacheControl(_Wire):
    """``{"type": "ephemeral", "ttl": "5m" | "1h"}``."""

    type: str
    ttl: str | None = None


# --- media sources ------------------------------------------------------------------


class Base64Source(_Wire, tag_field="type", tag="base64"):
    """Inline base64 bytes of an image or PDF."""

    media_type: str
    data: str


class URLSource(_Wire, tag_field="type", tag="url"):
    """A URL Anthropic fetches itself."""

    url: str


class FileSource(_Wire, tag_field="type", tag="file"):
    """A Files-API reference."""

    file_id: str


class PlainTextSource(_Out, tag_field="type", tag="text"):
    """A plain-text document; ``media_type`` is always written (Anthropic requires it)."""

    data: str
    media_type: str = "text/plain"


class ContentSource(_Wire, tag_field="type", tag="content"):
    """A document made of content blocks (text and images) or one string."""

    content: str | list[TextBlockParam | ImageBlockParam]


ImageSource: TypeAlias = Base64Source | URLSource | FileSource
DocumentSource: TypeAlias = Base64Source | URLSource | FileSource | PlainTextSource | ContentSource


# --- request content blocks -----------------------------------------------------------


class _Block(_Wire, tag_field="type"):
    """Base of request content blocks."""


class TextBlockParam(_Block, tag="text"):
    """``{"type":"text","text":...}``."""

    text: str
    cache_control: CacheControl | None = None
    citations: list[dict[str, Any]] | None = None


class ImageBlockParam(_Block, tag="image"):
    """``{"type":"image","source":...}``."""

    source: ImageSource
    cache_control: CacheControl | None = None


class DocumentBlockParam(_Block, tag="document"):
    """``{"type":"document","source":...,"title"?,"context"?,"citations"?}``."""

    source: DocumentSource
    title: str | None = None
    context: str | None = None
    citations: dict[str, Any] | None = None
    cache_control: CacheControl | None = None


class SearchResultBlockParam(_Block, tag="search_result"):
    """A client-supplied search result (RAG)."""

    source: str
    title: str
    content: list[TextBlockParam]
    citations: dict[str, Any] | None = None
    cache_control: CacheControl | None = None


class _CallParam(_Block):
    """Base of an assistant's tool calls in a request (client and server tools alike)."""

    id: str
    name: str
    input: dict[str, Any]
    cache_control: CacheControl | None = None


class ToolUseBlockParam(_CallParam, tag="tool_use"):
    """An assistant's client-tool call."""


class ToolResultBlockParam(_Block, tag="tool_result"):
    """A tool result; ``content`` is a string or a list of blocks (decoded one by one)."""

    tool_use_id: str
    content: str | list[msgspec.Raw] | None = None
    is_error: bool | None = None
    cache_control: CacheControl | None = None


class ThinkingBlockParam(_Out, tag_field="type", tag="thinking"):
    """Signed reasoning; ``signature`` is always written (Anthropic requires the key)."""

    thinking: str
    signature: str | None = None


class RedactedThinkingBlockParam(_Block, tag="redacted_thinking"):
    """Encrypted reasoning."""

    data: str


class ServerToolUseBlockParam(_CallParam, tag="server_tool_use"):
    """An assistant's server-tool call (``web_search`` …)."""


class WebSearchToolResultBlockParam(_Block, tag="web_search_tool_result"):
    """Server web-search results; ``content`` kept verbatim."""

    tool_use_id: str
    content: Any
    cache_control: CacheControl | None = None


BlockParam: TypeAlias = (
    TextBlockParam
    | ImageBlockParam
    | DocumentBlockParam
    | SearchResultBlockParam
    | ToolUseBlockParam
    | ToolResultBlockParam
    | ThinkingBlockParam
    | RedactedThinkingBlockParam
    | ServerToolUseBlockParam
    | WebSearchToolResultBlockParam
)

# Block ``type`` tags this module models; any other tag becomes ``ir.UnknownBlock``.
BLOCK_TAGS: frozenset[str] = frozenset(
    {
        "text",
        "image",
        "document",
        "search_result",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
    }
)


# --- request --------------------------------------------------------------------------


class ToolParam(_Wire):
    """A client tool (``type`` absent or ``"custom"``) or a server tool (``type`` set).

    Only the fields the codec reads are declared; a server tool's settings are read
    again from the raw JSON into ``ir.Tool.config``.
    """

    name: _NonEmpty
    type: str | None = None
    description: str | None = None
    input_schema: msgspec.Raw = msgspec.Raw()  # empty when absent (Raw cannot be Optional)
    cache_control: CacheControl | None = None


class ToolChoiceParam(_Wire):
    """``{"type": "auto"|"any"|"tool"|"none", "name"?, "disable_parallel_tool_use"?}``."""

    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingConfigParam(_Wire):
    """``{"type": "enabled", "budget_tokens"} | {"type": "disabled"} | {"type": "adaptive"}``."""

    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None
    display: str | None = None


class Metadata(_Wire):
    """Request metadata; only ``user_id`` exists."""

    user_id: str | None = None


class OutputFormat(_Wire):
    """Structured output: ``{"type": "json_schema", "schema": {...}}``."""

    type: Literal["json_schema", "json_object", "text"]
    schema: dict[str, Any] | None = None


class OutputConfig(_Wire):
    """``output_config``: reasoning ``effort`` and structured-output ``format``."""

    effort: str | None = None
    format: OutputFormat | None = None


class MessageParam(_Wire):
    """One turn; ``content`` is a string or a list of raw blocks."""

    role: Literal["user", "assistant", "system"]
    content: str | list[msgspec.Raw]


class MessageCreateParams(_Wire):
    """The body of ``POST /v1/messages`` (and of ``count_tokens``, without ``max_tokens``).

    Anthropic-only fields the IR does not carry (``cache_control`` at top level,
    ``context_management``, ``service_tier``, ``container``, ``inference_geo``,
    ``mcp_servers`` …) are not declared, so msgspec skips them without validating.
    """

    model: _NonEmpty
    messages: list[MessageParam]
    max_tokens: Annotated[int, msgspec.Meta(ge=0)] | None = None
    system: str | list[msgspec.Raw] | None = None
    metadata: Metadata | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[msgspec.Raw] | None = None
    tool_choice: ToolChoiceParam | None = None
    thinking: ThinkingConfigParam | None = None
    output_config: OutputConfig | None = None
    output_format: OutputFormat | None = None  # the structured-outputs beta spelling


class MessageCreateIn(MessageCreateParams):
    """:class:`MessageCreateParams` as the door decodes it: ``tools`` is kept raw, whole, so
    that an array byte for byte one the door has seen is recognised by one comparison
    (absent: empty bytes); the door decodes it to ``list[Raw]`` otherwise."""

    tools: msgspec.Raw = msgspec.Raw(b"")  # type: ignore[assignment]


# --- response ---------------------------------------------------------------------------


class TextBlock(_Wire, tag_field="type", tag="text"):
    """Response text; ``citations`` written only when present."""

    text: str
    citations: list[dict[str, Any]] | None = None


class ThinkingBlock(_Out, tag_field="type", tag="thinking"):
    """Response reasoning; ``signature`` is always a string."""

    thinking: str
    signature: str


class RedactedThinkingBlock(_Out, tag_field="type", tag="redacted_thinking"):
    """Response encrypted reasoning."""

    data: str


class _Call(_Out, tag_field="type"):
    """Base of the response's tool calls (client and server tools alike)."""

    id: str
    name: str
    input: dict[str, Any]


class ToolUseBlock(_Call, tag="tool_use"):
    """Response client-tool call."""


class ServerToolUseBlock(_Call, tag="server_tool_use"):
    """Response server-tool call."""


class WebSearchToolResultBlock(_Out, tag_field="type", tag="web_search_tool_result"):
    """Response web-search results."""

    tool_use_id: str
    content: Any


# ``dict`` is an unknown block passed through verbatim.
ContentBlock: TypeAlias = (
    TextBlock
    | ThinkingBlock
    | RedactedThinkingBlock
    | ToolUseBlock
    | ServerToolUseBlock
    | WebSearchToolResultBlock
    | dict[str, Any]
)


class ServerToolUsage(_Out):
    """``usage.server_tool_use``: the server tools the gateway ran."""

    web_search_requests: int = 0
    web_fetch_requests: int = 0


class Usage(_Out):
    """Response usage; the three input fields are disjoint."""

    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    server_tool_use: ServerToolUsage | msgspec.UnsetType = msgspec.UNSET


class Message(_Out, kw_only=True):
    """The non-streaming response body (and ``message_start.message``)."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[ContentBlock]
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage


class OutputTokensDetails(_Wire):
    """``usage.output_tokens_details`` (newer responses)."""

    thinking_tokens: int | None = None


class UsageIn(_Wire):
    """Usage as read from an upstream; every field may be absent or ``null``."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens_details: OutputTokensDetails | None = None


class MessageIn(_Wire):
    """An upstream Anthropic response; ``content`` decoded block by block."""

    id: str
    content: list[msgspec.Raw]
    model: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: UsageIn | None = None


# --- stream events and errors -----------------------------------------------------------


class MessageStartEvent(_Out, tag_field="type", tag="message_start"):
    """``message_start``."""

    message: Message


class ContentBlockStartEvent(_Out, tag_field="type", tag="content_block_start"):
    """``content_block_start``."""

    index: int
    content_block: ContentBlock


class MessageDeltaBody(_Out):
    """``message_delta.delta``."""

    stop_reason: str | None
    stop_sequence: str | None = None


class MessageDeltaUsage(_Out):
    """``message_delta.usage``: final and cumulative."""

    output_tokens: int
    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    server_tool_use: ServerToolUsage | msgspec.UnsetType = msgspec.UNSET


class MessageDeltaEvent(_Out, tag_field="type", tag="message_delta"):
    """``message_delta``."""

    delta: MessageDeltaBody
    usage: MessageDeltaUsage


class ErrorObject(_Out):
    """``{"type": "invalid_request_error", "message": ...}``."""

    type: str
    message: str


class ErrorResponse(_Wire, tag_field="type", tag="error"):
    """An error body (HTTP) or the payload of an ``error`` stream event."""

    error: ErrorObject
    request_id: str | None = None
