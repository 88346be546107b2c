"""OpenAI Responses wire shapes a client sends (``POST /v1/responses``), read leniently.

Input items are one Struct with every field optional (``type`` says which apply), so a
long Codex history decodes in a single typed pass, and an item type this version does
not know is logged and skipped instead of failing the request. Tools stay ``Raw``: they
are echoed back verbatim in the response object, and each is decoded on its own (a
``tools`` array resent byte for byte is not decoded again).
"""

from __future__ import annotations

from typing import Any

import msgspec

from glmbridge._tool_args import exact_float

__all__ = ["DECODE_REQUEST", "ContentPart", "InputItem", "ResponseCreateParams"]


# gc=False: decoded JSON cannot form reference cycles, and untracked instances spare
# the cyclic collector pauses that grow with the request (issue 13, item 3).
class _In(msgspec.Struct, kw_only=True, gc=False):
    """Inbound shapes: unknown fields are ignored."""


class ContentPart(_In):
    """A part of a message's or a tool output's content.

    ``input_text`` / ``output_text`` (``text``), ``refusal`` (``refusal``),
    ``input_image`` (``image_url`` or ``file_id``), ``input_file`` (``file_data``,
    ``file_id``, ``file_url``, ``filename``), ``summary_text`` / ``reasoning_text``.
    """

    type: str
    text: str | None = None
    refusal: str | None = None
    image_url: str | None = None
    file_id: str | None = None
    file_data: str | None = None
    file_url: str | None = None
    filename: str | None = None
    detail: str | None = None


class InputItem(_In):
    """One input item; ``type`` absent means a message (``{"role", "content"}``)."""

    type: str | None = None
    id: str | None = None
    role: str | None = None
    content: str | list[ContentPart] | None = None
    # function_call / custom_tool_call (and their outputs)
    call_id: str | None = None
    name: str | None = None
    namespace: str | None = None
    arguments: Any = None
    input: str | None = None
    output: str | list[ContentPart] | None = None
    # reasoning
    summary: list[ContentPart] | None = None
    encrypted_content: str | None = None


class FunctionToolIn(_In):
    """``{"type": "function", "name", "description", "parameters", "strict"}``."""

    type: str
    name: str
    description: str | None = None
    parameters: msgspec.Raw = msgspec.Raw(b"")  # kept raw: never re-encoded


class CustomToolIn(_In):
    """``{"type": "custom", "name", "description", "format"}`` (free-form input)."""

    type: str
    name: str
    description: str | None = None
    format: dict[str, Any] | None = None


class NamespaceToolIn(_In):
    """``{"type": "namespace", "name", "description", "tools": [...]}`` (Codex)."""

    type: str
    name: str
    description: str | None = None
    tools: list[msgspec.Raw] = []


class ToolHead(_In):
    """Just a tool's ``type`` (and ``name``), to pick the Struct for the rest."""

    type: str
    name: str | None = None


class ReasoningIn(_In):
    effort: str | None = None
    summary: str | None = None
    generate_summary: str | None = None


class TextFormatIn(_In):
    type: str
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class TextIn(_In):
    format: TextFormatIn | None = None
    verbosity: str | None = None


class ResponseCreateParams(_In):
    """The request fields glmbridge reads; the rest is ignored."""

    model: str
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    # the whole array, as sent: a resent array is recognised by its bytes (door_request)
    tools: msgspec.Raw = msgspec.Raw(b"")
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: ReasoningIn | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    text: TextIn | None = None
    stream: bool | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    conversation: Any = None
    include: list[str] | None = None
    prompt_cache_key: str | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    background: bool | None = None
    n: Any = None


DECODE_REQUEST = msgspec.json.Decoder(ResponseCreateParams, float_hook=exact_float)
