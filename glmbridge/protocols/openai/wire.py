"""OpenAI Chat Completions wire shapes (GLM is a dialect) and the shared wire tables.

Outbound (request) Structs use ``UNSET`` for every optional key so that "absent"
stays absent on the wire; keys that must always be written have no default
(``assistant.content`` is ``null`` on tool-only turns, never omitted or ``""``).

Inbound (response, chunk, error) Structs are lenient: unknown fields are ignored,
every field is optional, and fields whose type differs between GLM's docs and its
wire (``function.arguments``: string on the wire, object in the OpenAPI file; error
``code``: string or int) are typed ``Any`` and normalised by the codec.

A client's Chat Completions request (the door's side, :mod:`.door_request`) is read by
its own lenient Structs (``ChatRequestIn`` and its parts, named ``...In``): the same wire
seen from the other end, as ``anthropic.wire`` holds both ``MessageCreateParams`` and
``MessageCreateIn``.

This module also holds what the non-stream codec and the stream decoder share, so
both paths translate the same upstream data identically: :class:`Dialect` with the
``GLM`` and ``OPENAI`` instances, and the finish-reason and usage mapping.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, TypeAlias

import msgspec
from msgspec import UNSET, UnsetType

from glmbridge import ir
from glmbridge._tool_args import exact_float
from glmbridge.upstream_errors import FINISH_ERRORS

__all__ = ["GLM", "OPENAI", "ChatCompletionRequest", "Dialect"]

logger = logging.getLogger("glmbridge.protocols.openai")


# --- dialects -------------------------------------------------------------------------


class Dialect(msgspec.Struct, frozen=True, kw_only=True):
    """The quirks of one OpenAI-compatible upstream, as data (converters read flags only)."""

    name: str
    bare_base64_images: bool
    """Send base64 images as bare base64 in ``image_url.url`` (GLM), not as a data URL."""
    max_stop_sequences: int | None
    """How many ``stop`` entries the upstream accepts (GLM: 4); ``None`` = no limit."""
    tool_choice_values: frozenset[str]
    """Accepted ``tool_choice`` values among ``auto``/``none``/``required``/``function``."""
    thinking_param: bool
    """Send ``thinking: {type: enabled|disabled}`` (GLM)."""
    clear_thinking_param: bool
    """Send ``thinking.clear_thinking: false`` when history replays reasoning, so the
    upstream keeps it (GLM: default ``true`` on the pay-as-you-go endpoints)."""
    reasoning_effort_param: bool
    """Send the effort as top-level ``reasoning_effort`` to models that list efforts."""
    reasoning_content_history: bool
    """Replay prior thinking as ``reasoning_content`` on assistant messages."""
    temperature_range: tuple[float, float]
    top_p_range: tuple[float, float]
    open_interval_sampling: bool
    """Temperature at or below the range minimum becomes ``do_sample: false`` (greedy)."""
    stream_options: bool
    """Send ``stream_options: {include_usage: true}`` when streaming."""
    parallel_tool_calls_param: bool
    tool_stream_param: bool
    """Send ``tool_stream: true`` to stream tool arguments (GLM ≥ 4.6)."""
    max_tools: int
    user_id_field: Literal["user_id", "user"] | None
    """Where an end-user id goes; ``None`` drops it."""
    user_id_length: tuple[int, int]
    """Inclusive length bounds of that id; ids outside them are not sent."""
    json_schema_response_format: bool
    """Upstream supports ``response_format: {type: json_schema}``."""
    video_parts: bool
    """Upstream accepts ``video_url`` content parts."""
    file_parts: bool
    """Upstream accepts ``file`` content parts (PDF …) for models with file input."""
    max_completion_tokens: bool
    """Send the output cap as ``max_completion_tokens`` instead of ``max_tokens``."""


GLM = Dialect(
    name="glm",
    bare_base64_images=True,
    max_stop_sequences=4,  # OAS maxItems 4 (the description still says one; zai-fidelity 2.6)
    tool_choice_values=frozenset({"auto"}),
    thinking_param=True,
    clear_thinking_param=True,
    reasoning_effort_param=True,
    reasoning_content_history=True,
    temperature_range=(0.0, 1.0),
    top_p_range=(0.01, 1.0),
    open_interval_sampling=True,
    stream_options=False,  # GLM always sends usage in the last chunk
    parallel_tool_calls_param=False,
    tool_stream_param=True,
    max_tools=128,
    user_id_field="user_id",
    user_id_length=(6, 128),
    json_schema_response_format=False,
    video_parts=True,
    file_parts=True,
    max_completion_tokens=False,
)
"""Z.ai / Zhipu GLM (``/api/paas/v4`` and ``/api/coding/paas/v4``), wire-specs A.4–A.6."""

OPENAI = Dialect(
    name="openai",
    bare_base64_images=False,
    max_stop_sequences=4,
    tool_choice_values=frozenset({"auto", "none", "required", "function"}),
    thinking_param=False,
    clear_thinking_param=False,
    reasoning_effort_param=False,
    reasoning_content_history=False,
    temperature_range=(0.0, 2.0),
    top_p_range=(0.0, 1.0),
    open_interval_sampling=False,
    stream_options=True,
    parallel_tool_calls_param=True,
    tool_stream_param=False,
    max_tools=128,
    user_id_field="user",
    user_id_length=(1, 64),
    json_schema_response_format=True,
    video_parts=False,
    file_parts=False,
    max_completion_tokens=True,
)
"""Plain OpenAI Chat Completions, wire-specs C."""


# --- request ------------------------------------------------------------------------


# gc=False: decoded JSON cannot form reference cycles, and untracked instances spare
# the cyclic collector pauses that grow with the request (issue 13, item 3).
class _Wire(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """Outbound shapes: optional keys default to ``UNSET`` and are omitted."""


class URLRef(_Wire):
    """``{"url": ...}`` inside ``image_url`` / ``video_url`` / ``file_url`` parts."""

    url: str


class TextPart(_Wire, tag_field="type", tag="text"):
    """``{"type": "text", "text": ...}``."""

    text: str


class ImagePart(_Wire, tag_field="type", tag="image_url"):
    """An image: http(s) URL, data URL, or (GLM) bare base64."""

    image_url: URLRef


class VideoPart(_Wire, tag_field="type", tag="video_url"):
    """A video (GLM vision models)."""

    video_url: URLRef


class FileRef(_Wire):
    """``file`` of a file part: exactly one of ``file_id``, ``file_url``, ``file_data``
    (``data:<MIME>;base64,…``), and an optional ``filename`` (OAS)."""

    file_id: str | UnsetType = UNSET
    file_url: str | UnsetType = UNSET
    file_data: str | UnsetType = UNSET
    filename: str | UnsetType = UNSET


class FilePart(_Wire, tag_field="type", tag="file"):
    """A file such as a PDF (GLM models with file input)."""

    file: FileRef


ContentPart: TypeAlias = TextPart | ImagePart | VideoPart | FilePart


class FunctionCall(_Wire):
    """``function`` of an assistant tool call; ``arguments`` is a JSON string."""

    name: str
    arguments: str


class ToolCall(_Wire):
    """An assistant tool call in history."""

    id: str
    type: Literal["function"]
    function: FunctionCall


class SystemMessage(_Wire, tag_field="role", tag="system"):
    """``{"role": "system", "content": str}`` (GLM accepts strings only)."""

    content: str


class UserMessage(_Wire, tag_field="role", tag="user"):
    """A user turn: a string, or parts (vision models only)."""

    content: str | list[ContentPart]


class AssistantMessage(_Wire, tag_field="role", tag="assistant"):
    """An assistant turn; ``content`` is always written (``null`` on tool-only turns)."""

    content: str | None
    tool_calls: list[ToolCall] | UnsetType = UNSET
    reasoning_content: str | UnsetType = UNSET


class ToolMessage(_Wire, tag_field="role", tag="tool"):
    """The result of one tool call."""

    tool_call_id: str
    content: str


ChatMessage: TypeAlias = SystemMessage | UserMessage | AssistantMessage | ToolMessage


class FunctionDef(_Wire):
    """A function tool's definition; ``parameters`` is passed through as raw JSON."""

    name: str
    description: str | UnsetType = UNSET
    parameters: msgspec.Raw | dict[str, Any] | UnsetType = UNSET


class ToolDef(_Wire):
    """``{"type": "function", "function": {...}}``."""

    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Wire):
    """``{"name": ...}`` inside a named tool choice."""

    name: str


class NamedToolChoice(_Wire):
    """``{"type": "function", "function": {"name": ...}}`` (OpenAI only)."""

    type: Literal["function"]
    function: NamedFunction


class ThinkingParam(_Wire):
    """GLM ``thinking: {type: enabled|disabled, clear_thinking?}``."""

    type: Literal["enabled", "disabled"]
    clear_thinking: bool | UnsetType = UNSET


class StreamOptions(_Wire):
    """OpenAI ``stream_options``."""

    include_usage: bool


class JsonSchemaFormat(_Wire):
    """OpenAI ``response_format.json_schema``."""

    name: str
    schema: dict[str, Any] | UnsetType = UNSET


class ResponseFormat(_Wire):
    """``{"type": "json_object"}`` or (OpenAI) ``{"type": "json_schema", ...}``."""

    type: Literal["json_object", "json_schema"]
    json_schema: JsonSchemaFormat | UnsetType = UNSET


class ChatCompletionRequest(_Wire):
    """The body of ``POST /chat/completions``."""

    model: str
    messages: list[ChatMessage]
    stream: bool | UnsetType = UNSET
    stream_options: StreamOptions | UnsetType = UNSET
    max_tokens: int | UnsetType = UNSET
    max_completion_tokens: int | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    top_p: float | UnsetType = UNSET
    do_sample: bool | UnsetType = UNSET
    stop: list[str] | UnsetType = UNSET
    tools: list[ToolDef] | UnsetType = UNSET
    tool_choice: str | NamedToolChoice | UnsetType = UNSET
    parallel_tool_calls: bool | UnsetType = UNSET
    tool_stream: bool | UnsetType = UNSET
    thinking: ThinkingParam | UnsetType = UNSET
    reasoning_effort: str | UnsetType = UNSET
    response_format: ResponseFormat | UnsetType = UNSET
    user_id: str | UnsetType = UNSET
    user: str | UnsetType = UNSET


# --- client requests (the Chat Completions door; inbound, lenient) ----------------------


class _ClientIn(msgspec.Struct, kw_only=True):
    """A client's request shapes: unknown fields are ignored."""


class ImageURL(_ClientIn):
    url: str
    detail: str | None = None


class FileRefIn(_ClientIn):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class TextPartIn(_ClientIn, tag_field="type", tag="text"):
    text: str


class ImagePartIn(_ClientIn, tag_field="type", tag="image_url"):
    image_url: ImageURL


class AudioPart(_ClientIn, tag_field="type", tag="input_audio"):
    input_audio: Any = None


class FilePartIn(_ClientIn, tag_field="type", tag="file"):
    file: FileRefIn


class RefusalPart(_ClientIn, tag_field="type", tag="refusal"):
    refusal: str


UserPart: TypeAlias = TextPartIn | ImagePartIn | AudioPart | FilePartIn
AssistantPart: TypeAlias = TextPartIn | RefusalPart


class CallFunction(_ClientIn):
    name: str
    arguments: Any = None  # a JSON string by the spec; some clients send the object


class CustomCall(_ClientIn):
    name: str
    input: str = ""


class ToolCallIn(_ClientIn):
    id: str
    type: Literal["function", "custom"] = "function"
    function: CallFunction | None = None
    custom: CustomCall | None = None


class SystemIn(_ClientIn, tag_field="role", tag="system"):
    content: str | list[TextPartIn]


class DeveloperIn(_ClientIn, tag_field="role", tag="developer"):
    content: str | list[TextPartIn]


class UserIn(_ClientIn, tag_field="role", tag="user"):
    content: str | list[UserPart]


class AssistantIn(_ClientIn, tag_field="role", tag="assistant"):
    content: str | list[AssistantPart] | None = None
    tool_calls: list[ToolCallIn] | None = None
    reasoning_content: str | None = None
    refusal: str | None = None


class ToolIn(_ClientIn, tag_field="role", tag="tool"):
    tool_call_id: str
    content: str | list[TextPartIn]


MessageIn: TypeAlias = SystemIn | DeveloperIn | UserIn | AssistantIn | ToolIn


class FunctionDefIn(_ClientIn):
    name: str
    description: str | None = None
    parameters: msgspec.Raw = msgspec.Raw(b"")  # kept raw: never re-encoded
    strict: bool | None = None


class FunctionTool(_ClientIn, tag_field="type", tag="function"):
    function: FunctionDefIn


class CustomDefIn(_ClientIn):
    name: str
    description: str | None = None
    format: dict[str, Any] | None = None


class CustomTool(_ClientIn, tag_field="type", tag="custom"):
    custom: CustomDefIn


class NamedFunctionIn(_ClientIn):
    name: str


class NamedChoice(_ClientIn):
    type: Literal["function", "custom", "allowed_tools"]
    function: NamedFunctionIn | None = None
    custom: NamedFunctionIn | None = None
    allowed_tools: dict[str, Any] | None = None


class StreamOptionsIn(_ClientIn):
    include_usage: bool | None = None


class JsonSchemaIn(_ClientIn):
    name: str = "response"
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormatIn(_ClientIn):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaIn | None = None


class ThinkingIn(_ClientIn):
    type: Literal["enabled", "disabled", "adaptive"]


class ChatRequestIn(_ClientIn):
    """The fields of a client's Chat Completions request that glmbridge reads."""

    model: str
    messages: list[MessageIn]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: StreamOptionsIn | None = None
    # the whole array, as sent: a resent array is recognised by its bytes (door_request)
    tools: msgspec.Raw = msgspec.Raw(b"")
    tool_choice: Literal["none", "auto", "required"] | NamedChoice | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    response_format: ResponseFormatIn | None = None
    thinking: ThinkingIn | None = None  # GLM's own extension
    user: str | None = None
    safety_identifier: str | None = None
    # Dropped (logged at debug): GLM has no equivalent.
    seed: Any = None
    frequency_penalty: Any = None
    presence_penalty: Any = None
    logit_bias: Any = None
    logprobs: Any = None
    top_logprobs: Any = None
    modalities: Any = None
    audio: Any = None
    functions: Any = None


# --- responses and chunks (inbound, lenient) ---------------------------------------


class _In(msgspec.Struct, gc=False):
    """Inbound shapes: every field optional, unknown fields ignored."""


class RespFunction(_In):
    """``function`` of a returned tool call; ``arguments`` is a string or an object."""

    name: str | None = None
    arguments: Any = None


class RespToolCall(_In):
    """A returned tool call (``index`` is present even when not streaming on GLM)."""

    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: RespFunction | None = None


class RespMessage(_In):
    """``choices[0].message`` (non-stream) or ``choices[0].delta`` (stream)."""

    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[RespToolCall] | None = None
    refusal: str | None = None


class RespChoice(_In):
    """One choice of a response or chunk."""

    index: int = 0
    message: RespMessage | None = None
    delta: RespMessage | None = None
    finish_reason: str | None = None


class PromptTokensDetails(_In):
    """``usage.prompt_tokens_details``."""

    cached_tokens: int | None = None


class CompletionTokensDetails(_In):
    """``usage.completion_tokens_details``."""

    reasoning_tokens: int | None = None


class RespUsage(_In):
    """``usage`` (``prompt_tokens`` includes cached tokens)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class ErrorObject(_In):
    """``{"code": "1302" | 1302, "message": ..., "type": ...}``."""

    code: Any = None
    message: Any = None
    type: Any = None


class ChatCompletion(_In):
    """A non-stream response, a stream chunk, or an in-band ``{"error": ...}`` body.

    GLM omits ``object``; nothing here depends on it.
    """

    choices: list[RespChoice] | None = None
    usage: RespUsage | None = None
    error: ErrorObject | None = None
    # Some gateways answer errors as top-level {"code": ..., "msg": ...}.
    code: Any = None
    msg: Any = None
    message: Any = None


DECODE_COMPLETION = msgspec.json.Decoder(ChatCompletion, float_hook=exact_float)
ENCODE = msgspec.json.Encoder(decimal_format="number")


# --- shared mapping -----------------------------------------------------------------

FINISH_REASONS: dict[str, ir.StopReason] = {
    "stop": ir.StopReason.END_TURN,
    "length": ir.StopReason.MAX_TOKENS,
    "tool_calls": ir.StopReason.TOOL_USE,
    "function_call": ir.StopReason.TOOL_USE,
    "sensitive": ir.StopReason.REFUSAL,
    "content_filter": ir.StopReason.REFUSAL,
    "model_context_window_exceeded": ir.StopReason.MODEL_CONTEXT_WINDOW_EXCEEDED,
}
NETWORK_ERROR = "network_error"
NETWORK_ERROR_MESSAGE = FINISH_ERRORS[NETWORK_ERROR]


def stop_reason(finish_reason: str | None, *, has_tool_use: bool) -> ir.StopReason:
    """Map a finish reason; ``length`` wins over tool calls, tool_use needs a tool block.

    ``stop`` with tool calls present becomes ``tool_use`` (some OpenAI-compatible
    upstreams say ``stop``; an Anthropic client only runs tools on ``tool_use``).
    """
    reason = FINISH_REASONS.get(finish_reason or "")
    if reason is None:
        logger.info("unknown finish_reason %r mapped to end_turn", finish_reason)
        reason = ir.StopReason.END_TURN
    if reason is ir.StopReason.TOOL_USE and not has_tool_use:
        return ir.StopReason.END_TURN
    if reason is ir.StopReason.END_TURN and has_tool_use:
        return ir.StopReason.TOOL_USE
    return reason


def usage_to_ir(usage: RespUsage | None, *, input_estimate: int = 0) -> ir.Usage:
    """Map upstream usage to Anthropic semantics (the three input fields are disjoint)."""
    if usage is None:
        return ir.Usage(input_tokens=input_estimate)
    prompt = usage.prompt_tokens or 0
    details = usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details is not None else 0
    completion = usage.completion_tokens_details
    return ir.Usage(
        input_tokens=max(prompt - cached, 0),
        output_tokens=usage.completion_tokens or 0,
        cache_read_input_tokens=cached,
        reasoning_tokens=completion.reasoning_tokens if completion is not None else None,
    )
