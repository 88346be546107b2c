"""Chat Completions requests from clients (``POST /v1/chat/completions``) -> IR.

Translation choices (the rest is one-to-one):

* ``system`` and ``developer`` messages before the first other message are the system
  prompt; later ones become ``role: "system"`` IR messages (the upstream codec turns
  them into reminders, so GLM's prefix cache survives).
* ``tool`` messages become ``tool_result`` blocks of one user turn (consecutive ones
  together), right after the assistant turn that called them.
* ``image_url`` parts (http(s) or data URL) become image blocks; ``file`` parts with
  ``file_data`` become documents. ``input_audio``, ``file_id`` references and audio
  output are refused with a 400 naming the part: GLM cannot take them.
* ``custom`` tools (free-form text input) are offered as functions with one string
  argument ``input``; their calls come back as function calls with that argument.
* ``tool_choice``: ``none``/``auto``/``required``/named map to the IR's
  ``none``/``auto``/``any``/``tool``; ``allowed_tools`` narrows the tool list.
  ``parallel_tool_calls: false`` sets ``disable_parallel_tool_use``. (GLM knows only
  ``auto``; the upstream codec emulates the rest, see :mod:`.request`.)
* ``reasoning_effort``: ``none`` disables thinking; any other level enables it and
  becomes the IR effort (``minimal`` → ``low``, ``xhigh`` → ``max``). GLM's own
  ``thinking: {type}`` extension is accepted too.
* ``n`` > 1 is refused; ``seed``, ``user``, penalties, ``logit_bias`` and ``logprobs``
  are dropped with a debug log; ``metadata``, ``store``, ``service_tier``,
  ``prompt_cache_key`` and the like are ignored.
"""

from __future__ import annotations

import logging
import mimetypes
from typing import Any, NotRequired, Protocol, TypedDict, Unpack

import msgspec

from glmbridge import ir
from glmbridge._tool_args import exact_float, parse_arguments
from glmbridge.errors import ClientRequestError
from glmbridge.inline_base64 import normalize_base64
from glmbridge.memo import RecentArrays
from glmbridge.protocols.json_errors import decode_body
from glmbridge.protocols.openai.wire import (
    AssistantIn,
    ChatRequestIn,
    CustomTool,
    DeveloperIn,
    FilePartIn,
    FileRefIn,
    FunctionTool,
    ImagePartIn,
    MessageIn,
    ResponseFormatIn,
    SystemIn,
    TextPartIn,
    ToolCallIn,
    ToolIn,
    UserIn,
    UserPart,
)

__all__ = [
    "FREEFORM_SCHEMA",
    "DoorFields",
    "SharedParams",
    "call_arguments",
    "decode_request",
    "effort_to_ir",
    "freeform_tool",
    "function_tool",
    "shared_request",
]

logger = logging.getLogger("glmbridge.protocols.openai")


_DECODE = msgspec.json.Decoder(ChatRequestIn, float_hook=exact_float)
_DECODE_TOOLS = msgspec.json.Decoder(list[FunctionTool | CustomTool] | None, float_hook=exact_float)
#: The last few ``tools`` arrays: an agent resends the same array every turn, and the same IR
#: tools come back, whose token count and upstream JSON are remembered by identity (issue 22).
_RECENT_TOOLS: RecentArrays[tuple[ir.Tool, ...]] = RecentArrays()
_ALLOWED = {  # first match wins: longer suffixes before the ones they end with
    "response_format.type": "text, json_object or json_schema",
    "role": "system, developer, user, assistant or tool",
    "type": "a known part or tool type",
    "tool_choice": "none, auto, required or a named tool",
}
_DROPPED = ("seed", "frequency_penalty", "presence_penalty", "logit_bias", "logprobs",
            "top_logprobs", "modalities")  # fmt: skip
_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high",
            "xhigh": "max", "max": "max"}  # fmt: skip
MAX_STOP = 4

FREEFORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's free-form input."}},
    "required": ["input"],
    "additionalProperties": False,
}
"""The function schema a free-form (``custom``) tool is offered to GLM with."""


def function_tool(name: str, description: str | None, parameters: msgspec.Raw) -> ir.Tool:
    """An IR tool for an OpenAI function definition (Chat's ``function`` object, a Responses
    ``function`` tool): the ``parameters`` schema is kept raw, and absent or ``null`` is none."""
    first = bytes(memoryview(parameters)[:1])  # look at one byte only
    schema = None if first in (b"", b"n") else parameters
    return ir.Tool(name=name, description=description, input_schema=schema)


def freeform_tool(name: str, description: str | None, fmt: dict[str, Any] | None) -> ir.Tool:
    """An IR tool for an OpenAI ``custom`` tool: one string argument ``input``.

    A grammar in ``fmt`` (Codex sends a Lark grammar for ``apply_patch``) is appended to
    the description, so the model knows the syntax its input must follow.
    """
    text = description or ""
    grammar = fmt.get("grammar") if isinstance(fmt, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(grammar, dict):
        definition, syntax = grammar.get("definition"), grammar.get("syntax", "lark")
    elif isinstance(fmt, dict) and fmt.get("type") == "grammar":
        definition, syntax = fmt.get("definition"), fmt.get("syntax", "lark")
    else:
        definition, syntax = None, None
    if isinstance(definition, str) and definition:
        note = f"The `input` string must follow this {syntax} grammar:\n{definition}"
        text = f"{text}\n\n{note}" if text else note
    return ir.Tool(name=name, description=text or None, input_schema=FREEFORM_SCHEMA, freeform=True)


def effort_to_ir(effort: str | None, path: str) -> tuple[ir.Thinking | None, str | None]:
    """OpenAI ``reasoning_effort`` -> ``(thinking, effort)`` of the IR."""
    if effort is None:
        return None, None
    if effort == "none":
        return ir.Thinking(type="disabled"), None
    mapped = _EFFORTS.get(effort)
    if mapped is None:
        raise ClientRequestError(
            "invalid value, expected none, minimal, low, medium, high, xhigh or max", path=path
        )
    return ir.Thinking(type="enabled"), mapped


class SharedParams(Protocol):
    """What a Chat Completions and a Responses body both say, and both doors read alike."""

    @property
    def model(self) -> str: ...
    @property
    def temperature(self) -> float | None: ...
    @property
    def top_p(self) -> float | None: ...
    @property
    def stream(self) -> bool | None: ...


class DoorFields(TypedDict):
    """The fields of the IR request that each OpenAI-family door decodes its own way."""

    messages: list[ir.Message]
    system: list[ir.TextBlock]
    max_tokens: int | None
    response_format: ir.ResponseFormat | None
    user_id: str | None
    echo: dict[str, Any]
    stop_sequences: NotRequired[list[str]]


def shared_request(
    params: SharedParams,
    tools: tuple[list[ir.Tool], ir.ToolChoice | None],
    reasoning: tuple[ir.Thinking | None, str | None],
    **fields: Unpack[DoorFields],
) -> ir.Request:
    """The IR request of an OpenAI-family door: model, sampling and stream from
    ``params``, the tools with their choice and the ``(thinking, effort)`` pair as the
    door decoded them, the rest as given."""
    (tool_list, choice), (thinking, effort) = tools, reasoning
    return ir.Request(
        model=params.model,
        temperature=params.temperature,
        top_p=params.top_p,
        stream=bool(params.stream),
        tools=tool_list,
        tool_choice=choice,
        thinking=thinking,
        effort=effort,
        **fields,
    )


def decode_request(body: bytes) -> ir.Request:
    """Decode a client's ``POST /v1/chat/completions`` body into an IR request.

    ``echo`` carries ``include_usage`` for the stream encoder.

    Raises:
        ClientRequestError: the body is invalid or asks for something GLM cannot do
            (``n`` > 1, audio, file ids); the message starts with the field's path.
    """
    params = decode_body(_DECODE, body, allowed=_ALLOWED)
    tools = _tools(params.tools)
    if params.n is not None and params.n != 1:
        raise ClientRequestError("only n=1 is supported (GLM returns one choice)", path="n")
    if not params.messages:
        raise ClientRequestError("at least one message is required", path="messages")
    for name in _DROPPED:
        if getattr(params, name) is not None:
            logger.debug("%s dropped (GLM has no equivalent)", name)
    if params.audio is not None or (params.modalities and "audio" in params.modalities):
        raise ClientRequestError("audio output is not supported by GLM models", path="audio")
    if params.functions is not None:
        raise ClientRequestError("legacy functions are not supported; use tools",
                                 path="functions")  # fmt: skip
    thinking, effort = effort_to_ir(params.reasoning_effort, "reasoning_effort")
    if params.thinking is not None:
        thinking = ir.Thinking(type=params.thinking.type)
    system, messages = _messages(params.messages)
    options = params.stream_options
    return shared_request(
        params,
        _tool_choice(params, tools),
        (thinking, effort),
        messages=messages,
        system=system,
        max_tokens=_max_tokens(params),
        stop_sequences=_stop(params.stop),
        response_format=_response_format(params.response_format),
        user_id=params.safety_identifier or params.user,
        echo={"include_usage": bool(options is not None and options.include_usage)},
    )


def _max_tokens(params: ChatRequestIn) -> int | None:
    value = params.max_completion_tokens
    name = "max_completion_tokens"
    if value is None:
        value, name = params.max_tokens, "max_tokens"
    if value is not None and value < 1:
        raise ClientRequestError("must be at least 1", path=name)
    return value


def _stop(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if len(stops) > MAX_STOP:
        raise ClientRequestError(f"at most {MAX_STOP} stop sequences are allowed", path="stop")
    return [s for s in stops if s]


# --- messages --------------------------------------------------------------------------


def _text(content: str | list[TextPartIn]) -> str:
    return content if isinstance(content, str) else "".join(p.text for p in content)


def _messages(items: list[MessageIn]) -> tuple[list[ir.TextBlock], list[ir.Message]]:
    system: list[ir.TextBlock] = []
    out: list[ir.Message] = []
    results: list[ir.Block] = []  # tool results waiting for their user turn
    for i, msg in enumerate(items):
        path = f"messages.{i}"
        if isinstance(msg, ToolIn):
            content: list[ir.ContentBlock] = [ir.TextBlock(text=_text(msg.content))]
            results.append(ir.ToolResultBlock(tool_use_id=msg.tool_call_id, content=content))
            continue
        if results:
            out.append(ir.Message(role="user", content=results))
            results = []
        if isinstance(msg, (SystemIn, DeveloperIn)):
            text = _text(msg.content)
            if not out:
                if text:
                    system.append(ir.TextBlock(text=text))
            elif text:
                out.append(ir.Message(role="system", content=[ir.TextBlock(text=text)]))
        elif isinstance(msg, UserIn):
            out.append(ir.Message(role="user", content=_user_blocks(msg.content, path)))
        else:
            out.append(ir.Message(role="assistant", content=_assistant_blocks(msg, path)))
    if results:
        out.append(ir.Message(role="user", content=results))
    return system, out


def _user_blocks(content: str | list[UserPart], path: str) -> list[ir.Block]:
    if isinstance(content, str):
        return [ir.TextBlock(text=content)]
    blocks: list[ir.Block] = []
    for j, part in enumerate(content):
        ppath = f"{path}.content.{j}"
        if isinstance(part, TextPartIn):
            blocks.append(ir.TextBlock(text=part.text))
        elif isinstance(part, ImagePartIn):
            blocks.append(ir.ImageBlock(source=media_source(part.image_url.url, ppath)))
        elif isinstance(part, FilePartIn):
            blocks.append(_document(part.file, ppath))
        else:
            raise ClientRequestError(
                "input_audio is not supported: GLM models cannot take audio", path=ppath
            )
    return blocks


def media_source(url: str, path: str) -> ir.MediaSource:
    """An image URL (http(s) or a base64 data URL) as an IR media source."""
    if url.startswith("data:"):
        header, sep, data = url.partition(",")
        if not sep or not header.endswith(";base64"):
            raise ClientRequestError("data URLs must be base64 (data:<type>;base64,...)",
                                     path=path)  # fmt: skip
        media_type = header[5:].removesuffix(";base64") or "application/octet-stream"
        data = normalize_base64(data, path)
        return ir.MediaSource(type="base64", media_type=media_type, data=data)
    if url.startswith(("http://", "https://")):
        return ir.MediaSource(type="url", url=url)
    raise ClientRequestError("must be an http(s) URL or a base64 data URL", path=path)


def document_block(data: str | None, file_id: str | None, name: str | None,
                   path: str) -> ir.DocumentBlock:  # fmt: skip
    """A file given inline (base64 or a data URL) as an IR document."""
    if file_id is not None and data is None:
        raise ClientRequestError(
            "file_id references are not supported (glmbridge has no Files API); "
            "send the file inline as file_data",
            path=path,
        )
    if not data:
        raise ClientRequestError("file_data is required", path=path)
    if data.startswith("data:"):
        return ir.DocumentBlock(source=media_source(data, path), title=name)
    media_type = (mimetypes.guess_type(name)[0] if name else None) or "application/pdf"
    data = normalize_base64(data, path)
    source = ir.MediaSource(type="base64", media_type=media_type, data=data)
    return ir.DocumentBlock(source=source, title=name)


def _document(ref: FileRefIn, path: str) -> ir.DocumentBlock:
    return document_block(ref.file_data, ref.file_id, ref.filename, f"{path}.file")


def _assistant_blocks(msg: AssistantIn, path: str) -> list[ir.Block]:
    blocks: list[ir.Block] = []
    if msg.reasoning_content:
        blocks.append(ir.ThinkingBlock(thinking=msg.reasoning_content))
    content = msg.content
    if isinstance(content, str):
        if content:
            blocks.append(ir.TextBlock(text=content))
    elif content:
        text = "".join(p.text if isinstance(p, TextPartIn) else p.refusal for p in content)
        if text:
            blocks.append(ir.TextBlock(text=text))
    for k, call in enumerate(msg.tool_calls or ()):
        blocks.append(_call(call, f"{path}.tool_calls.{k}"))
    return blocks


def _call(call: ToolCallIn, path: str) -> ir.ToolUseBlock:
    if call.type == "custom":
        if call.custom is None:
            raise ClientRequestError("required", path=f"{path}.custom")
        return ir.ToolUseBlock(id=call.id, name=call.custom.name,
                               input={"input": call.custom.input})  # fmt: skip
    fn = call.function
    if fn is None:
        raise ClientRequestError("required", path=f"{path}.function")
    args = call_arguments(fn.arguments, f"{path}.function.arguments")
    return ir.ToolUseBlock(id=call.id, name=fn.name, input=args)


def call_arguments(raw: Any, path: str) -> dict[str, Any]:
    """A history call's arguments: a JSON string by the spec (repaired when it is not an
    object, as GLM's own truncated calls can be), or an object some clients send."""
    if isinstance(raw, dict):
        return raw
    args, repaired = parse_arguments(raw if isinstance(raw, str) else "")
    if repaired:
        logger.debug("%s: not a JSON object; repaired", path)
    return args


# --- tools, choice, format -----------------------------------------------------------------


def _tools(raw: msgspec.Raw) -> list[ir.Tool]:
    """The request's tools (``raw``: the whole array, as sent; empty when absent). An array
    byte for byte one of the last few comes back as the same tool objects (a new list:
    callers may change it)."""
    if not raw:
        return []
    key = bytes(raw)  # a copy: a remembered array must not keep this request's body alive
    tools = _RECENT_TOOLS.get(key)
    if tools is None:
        decoded = decode_body(_DECODE_TOOLS, key, "tools", _ALLOWED)
        tools = tuple(_tool(t) for t in decoded or ())
        _RECENT_TOOLS.put(key, tools)  # plain definitions, no settings dict: shareable
    return list(tools)


def _tool(tool: FunctionTool | CustomTool) -> ir.Tool:
    if isinstance(tool, CustomTool):
        c = tool.custom
        return freeform_tool(c.name, c.description, c.format)
    fn = tool.function
    return function_tool(fn.name, fn.description, fn.parameters)


def _tool_choice(
    params: ChatRequestIn, tools: list[ir.Tool]
) -> tuple[list[ir.Tool], ir.ToolChoice | None]:
    choice = params.tool_choice
    no_parallel = params.parallel_tool_calls is False
    if choice is None:
        return tools, ir.ToolChoice(disable_parallel_tool_use=True) if no_parallel else None
    if isinstance(choice, str):
        kind = {"none": "none", "auto": "auto", "required": "any"}[choice]
        return tools, ir.ToolChoice(type=kind, disable_parallel_tool_use=no_parallel)  # type: ignore[arg-type]
    if choice.type == "allowed_tools":
        allowed = choice.allowed_tools or {}
        names = {
            (t.get("function") or t.get("custom") or {}).get("name") or t.get("name")
            for t in allowed.get("tools") or ()
            if isinstance(t, dict)
        }
        tools = [t for t in tools if t.name in names]
        kind = "any" if allowed.get("mode") == "required" else "auto"
        return tools, ir.ToolChoice(type=kind, disable_parallel_tool_use=no_parallel)  # type: ignore[arg-type]
    named = choice.function if choice.type == "function" else choice.custom
    if named is None:
        raise ClientRequestError("required", path=f"tool_choice.{choice.type}")
    if not any(t.name == named.name for t in tools):
        raise ClientRequestError("names a tool that is not in tools", path="tool_choice")
    return tools, ir.ToolChoice(type="tool", name=named.name, disable_parallel_tool_use=no_parallel)


def _response_format(fmt: ResponseFormatIn | None) -> ir.ResponseFormat | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return ir.ResponseFormat(type="json_object")
    spec = fmt.json_schema
    if spec is None:
        raise ClientRequestError("required", path="response_format.json_schema")
    return ir.ResponseFormat(type="json_schema", schema=spec.schema, name=spec.name)
