"""OpenAI Responses requests (``POST /v1/responses``) -> IR.

Translation choices:

* ``instructions`` and the ``system``/``developer`` messages before any other item are
  the system prompt; later ones become ``role: "system"`` IR messages.
* Items are grouped into turns: ``message`` (assistant), ``reasoning``,
  ``function_call`` and ``custom_tool_call`` items make an assistant turn; user
  messages and tool outputs make a user turn. A tool output is a ``tool_result``.
* ``reasoning`` items carry our own ``encrypted_content`` (see :mod:`.items`): GLM's
  reasoning, returned in history as the IR thinking block it came from. Reasoning we
  cannot read (another provider's) falls back to its raw ``reasoning_text`` content,
  else its summary text, else it is dropped.
* ``custom`` tools (Codex's ``apply_patch``) are offered as functions with one string
  argument ``input``; ``namespace`` tools are flattened into functions named
  ``<namespace>__<tool>``, and calls are mapped back (see :mod:`.items`).
* The hosted ``web_search`` tool becomes the gateway's web search server tool
  (:mod:`glmbridge.server_tools` runs it; answers carry ``web_search_call`` items).
  Other hosted tools GLM cannot run (``file_search``, ``code_interpreter``,
  ``image_generation``, ``computer_use``, ``mcp``, ``local_shell``) are dropped with
  a log line; so are item types with no GLM meaning (``web_search_call`` …).
* ``reasoning.effort``: ``none`` disables thinking, any other level enables it
  (``minimal`` → ``low``, ``xhigh`` → ``max``); a ``summary`` request alone enables it.
* ``previous_response_id`` and ``conversation`` need server-side state: a 400 unless
  the server resolves them first (see ``echo``).
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import msgspec

from glmbridge import ir
from glmbridge.errors import ClientRequestError
from glmbridge.memo import RecentArrays
from glmbridge.protocols.json_errors import decode_body
from glmbridge.protocols.openai.door_request import (
    call_arguments,
    document_block,
    effort_to_ir,
    freeform_tool,
    function_tool,
    media_source,
    shared_request,
)
from glmbridge.protocols.responses import wire as rw
from glmbridge.protocols.responses.items import NAMESPACE_SEPARATOR, decode_reasoning

__all__ = ["decode_request", "decode_params", "request_to_ir"]

logger = logging.getLogger("glmbridge.protocols.responses")

_HOSTED_TOOLS = frozenset({
    "web_search", "web_search_preview", "web_search_2025_08_26", "file_search",
    "code_interpreter", "image_generation", "computer_use_preview", "computer_use", "mcp",
    "local_shell", "shell", "apply_patch", "tool_search",
})  # fmt: skip
_ASSISTANT_ITEMS = frozenset({"reasoning", "function_call", "custom_tool_call"})
_OUTPUT_ITEMS = frozenset({"function_call_output", "custom_tool_call_output"})
_DECODE_HEAD = msgspec.json.Decoder(rw.ToolHead)
_DECODE_FUNCTION = msgspec.json.Decoder(rw.FunctionToolIn)
_DECODE_CUSTOM = msgspec.json.Decoder(rw.CustomToolIn)
_DECODE_NAMESPACE = msgspec.json.Decoder(rw.NamespaceToolIn)
_DECODE_ANY = msgspec.json.Decoder()
_DECODE_TOOL_LIST = msgspec.json.Decoder(list[msgspec.Raw] | None)


class _ToolSet(NamedTuple):
    """What a ``tools`` array decodes to."""

    tools: tuple[ir.Tool, ...]
    freeform: tuple[str, ...]  # the free-form tools' names
    namespaced: dict[str, list[str]]  # flat name -> [namespace, name]; never changed
    echo: msgspec.Raw  # the array as the response object repeats it
    shareable: bool  # nothing logged, no settings dict: the same for every request


_NO_TOOLS = _ToolSet((), (), {}, msgspec.Raw(b"[]"), True)
#: The last few ``tools`` arrays: Codex resends the same array every turn, and the same IR
#: tools come back, whose token count and upstream JSON are remembered by identity (issue 22).
_RECENT_TOOLS: RecentArrays[_ToolSet] = RecentArrays()


def decode_params(body: bytes) -> rw.ResponseCreateParams:
    """The typed request (raises :class:`ClientRequestError` naming the field)."""
    return decode_body(rw.DECODE_REQUEST, body)


def decode_request(body: bytes) -> ir.Request:
    """Decode a ``POST /v1/responses`` body into an IR request.

    ``echo`` keeps what the response object repeats back (instructions, tools as raw
    JSON, tool choice, reasoning and text settings …) and the names of free-form and
    namespaced tools, so calls can be mapped back.

    Raises:
        ClientRequestError: the body is invalid, or needs stored state
            (``previous_response_id``, ``conversation``, ``item_reference`` items).
    """
    params = decode_params(body)
    if params.previous_response_id is not None:
        raise ClientRequestError(
            "previous_response_id needs stored responses, and this server keeps none; "
            "send the whole conversation in input (store: false)",
            path="previous_response_id",
        )
    return request_to_ir(params)


def request_to_ir(
    params: rw.ResponseCreateParams, history: list[ir.Message] | None = None
) -> ir.Request:
    """Convert a decoded request; ``history`` (a stored conversation) goes first."""
    if params.conversation is not None:
        raise ClientRequestError("conversations are not supported; send the whole "
                                 "conversation in input", path="conversation")  # fmt: skip
    if params.background:
        raise ClientRequestError("background responses are not supported", path="background")
    tool_set = _tool_set(params.tools)
    tools = list(tool_set.tools)  # a new list: callers may change it
    system, messages = _items(params)
    thinking, effort = _reasoning(params.reasoning)
    echo: dict[str, Any] = {
        "instructions": params.instructions,
        "tools": tool_set.echo,
        "tool_choice": params.tool_choice if params.tool_choice is not None else "auto",
        "parallel_tool_calls": params.parallel_tool_calls is not False,
        "reasoning": {
            "effort": params.reasoning.effort if params.reasoning else None,
            "summary": params.reasoning.summary if params.reasoning else None,
        },
        "max_output_tokens": params.max_output_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "text": {"format": _format_echo(params.text)},
        "store": params.store is not False,
        "metadata": params.metadata or {},
        "prompt_cache_key": params.prompt_cache_key,
        "include": params.include or [],
        "freeform": list(tool_set.freeform),
        "namespaced": tool_set.namespaced,
    }
    if params.max_output_tokens is not None and params.max_output_tokens < 1:
        raise ClientRequestError("must be at least 1", path="max_output_tokens")
    return shared_request(
        params,
        _tool_choice(params, tools),
        (thinking, effort),
        messages=[*(history or []), *messages],
        system=system,
        max_tokens=params.max_output_tokens,
        response_format=_format(params.text),
        user_id=params.safety_identifier or params.user or params.prompt_cache_key,
        echo=echo,
    )


def _raw_list(items: list[msgspec.Raw]) -> msgspec.Raw:
    return msgspec.Raw(b"[" + b",".join(bytes(r) for r in items) + b"]")


# --- items ---------------------------------------------------------------------------------


class _Turns:
    """Groups items into alternating IR turns."""

    def __init__(self) -> None:
        self.messages: list[ir.Message] = []
        self.role: str | None = None
        self.blocks: list[ir.Block] = []

    def add(self, role: str, block: ir.Block) -> None:
        if role != self.role:
            self.close()
            self.role = role
        self.blocks.append(block)

    def close(self) -> None:
        if self.blocks and self.role is not None:
            self.messages.append(ir.Message(role=self.role, content=self.blocks))  # type: ignore[arg-type]
        self.role, self.blocks = None, []


def _items(params: rw.ResponseCreateParams) -> tuple[list[ir.TextBlock], list[ir.Message]]:
    system: list[ir.TextBlock] = []
    if params.instructions:
        system.append(ir.TextBlock(text=params.instructions))
    items = params.input
    if items is None:
        raise ClientRequestError("required", path="input")
    if isinstance(items, str):
        return system, [ir.Message(role="user", content=[ir.TextBlock(text=items)])]
    turns = _Turns()
    for i, item in enumerate(items):
        _item(item, f"input.{i}", turns, system)
    turns.close()
    return system, turns.messages


def _item(item: rw.InputItem, path: str, turns: _Turns, system: list[ir.TextBlock]) -> None:
    kind = item.type or "message"
    if kind == "message":
        _message(item, path, turns, system)
    elif kind in _ASSISTANT_ITEMS:
        block = _assistant_item(item, kind, path)
        if block is not None:
            turns.add("assistant", block)
    elif kind in _OUTPUT_ITEMS:
        if not item.call_id:
            raise ClientRequestError("required", path=f"{path}.call_id")
        content = _output_content(item.output, f"{path}.output")
        turns.add("user", ir.ToolResultBlock(tool_use_id=item.call_id, content=content))
    elif kind == "item_reference":
        raise ClientRequestError("item references need stored responses; send the items "
                                 "themselves", path=path)  # fmt: skip
    else:
        logger.info("%s: input item of type %.40r dropped (GLM has no equivalent)", path, kind)


def _message(item: rw.InputItem, path: str, turns: _Turns, system: list[ir.TextBlock]) -> None:
    role = item.role
    if role in ("system", "developer"):
        text = _text(item.content, "\n\n")  # separate sections (Codex sends several)
        if not text:
            return
        if not turns.messages and turns.role is None:
            system.append(ir.TextBlock(text=text))
        else:
            turns.close()
            turns.messages.append(ir.Message(role="system", content=[ir.TextBlock(text=text)]))
    elif role == "assistant":
        text = _text(item.content)
        if text:
            turns.add("assistant", ir.TextBlock(text=text))
    elif role == "user":
        for block in _user_content(item.content, f"{path}.content"):
            turns.add("user", block)
    else:
        raise ClientRequestError("invalid value, expected user, assistant, system or developer",
                                 path=f"{path}.role")  # fmt: skip


def _text(content: str | list[rw.ContentPart] | None, sep: str = "") -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return sep.join(t for p in content if (t := p.text or p.refusal or ""))


def _user_content(content: str | list[rw.ContentPart] | None, path: str) -> list[ir.Block]:
    if content is None:
        return []
    if isinstance(content, str):
        return [ir.TextBlock(text=content)]
    return [_part(p, f"{path}.{j}") for j, p in enumerate(content)]


def _part(part: rw.ContentPart, path: str) -> ir.ContentBlock:
    if part.type in ("input_text", "output_text", "text"):
        return ir.TextBlock(text=part.text or "")
    if part.type == "input_image":
        if part.image_url:
            return ir.ImageBlock(source=media_source(part.image_url, f"{path}.image_url"))
        raise ClientRequestError(
            "file_id images are not supported (no Files API); send image_url", path=path
        )
    if part.type == "input_file":
        if part.file_url:
            source = ir.MediaSource(type="url", url=part.file_url)
            return ir.DocumentBlock(source=source, title=part.filename)
        return document_block(part.file_data, part.file_id, part.filename, path)
    raise ClientRequestError(f"content part type {part.type[:40]!r} is not supported",
                             path=f"{path}.type")  # fmt: skip


def _output_content(output: str | list[rw.ContentPart] | None, path: str) -> list[ir.ContentBlock]:
    if output is None or isinstance(output, str):
        return [ir.TextBlock(text=output or "")]
    return [_part(p, f"{path}.{j}") for j, p in enumerate(output)]


def _assistant_item(item: rw.InputItem, kind: str, path: str) -> ir.Block | None:
    if kind == "reasoning":
        block = decode_reasoning(item.encrypted_content)
        if block is not None:
            return block
        # Raw reasoning text (``content``: reasoning_text parts) is the full reasoning;
        # the summary is the fallback.
        parts = item.content if isinstance(item.content, list) else ()
        text = "".join(p.text or "" for p in parts if p.type == "reasoning_text")
        text = text or "".join(p.text or "" for p in item.summary or ())
        return ir.ThinkingBlock(thinking=text) if text else None
    if not item.call_id:
        raise ClientRequestError("required", path=f"{path}.call_id")
    if not item.name:
        raise ClientRequestError("required", path=f"{path}.name")
    if kind == "custom_tool_call":
        return ir.ToolUseBlock(id=item.call_id, name=item.name, input={"input": item.input or ""})
    name = item.name
    if item.namespace:
        name = f"{item.namespace}{NAMESPACE_SEPARATOR}{name}"
    args = call_arguments(item.arguments, f"{path}.arguments")
    return ir.ToolUseBlock(id=item.call_id, name=name, input=args)


# --- tools and settings --------------------------------------------------------------------


def _tool_set(raw: msgspec.Raw) -> _ToolSet:
    """The request's tools (``raw``: the whole array, as sent; empty when absent). An array
    byte for byte one of the last few comes back as the same objects; otherwise it is
    decoded (:func:`_tools`)."""
    if not raw:
        return _NO_TOOLS
    key = bytes(raw)  # a copy: a remembered array must not keep this request's body alive
    found = _RECENT_TOOLS.get(key)
    if found is None:
        raws = decode_body(_DECODE_TOOL_LIST, key, "tools")
        found = _tools(raws or [])
        if found.shareable:
            _RECENT_TOOLS.put(key, found)
    return found


def _tools(raws: list[msgspec.Raw]) -> _ToolSet:
    """Decode each tool of a ``tools`` array."""
    tools: list[ir.Tool] = []
    freeform: list[str] = []
    namespaced: dict[str, list[str]] = {}
    shareable = True
    for i, raw in enumerate(raws):
        path = f"tools.{i}"
        head = decode_body(_DECODE_HEAD, raw, path)
        if head.type == "function":
            tools.append(_function(raw, path))
        elif head.type == "custom":
            c = decode_body(_DECODE_CUSTOM, raw, path)
            tools.append(freeform_tool(c.name, c.description, c.format))
            freeform.append(c.name)
        elif head.type == "namespace":
            ns = decode_body(_DECODE_NAMESPACE, raw, path)
            for j, inner in enumerate(ns.tools):
                tool = _function(inner, f"{path}.tools.{j}")
                flat = f"{ns.name}{NAMESPACE_SEPARATOR}{tool.name}"
                namespaced[flat] = [ns.name, tool.name]
                tools.append(msgspec.structs.replace(tool, name=flat))
        elif head.type.startswith("web_search"):  # run by the gateway (glmbridge.server_tools)
            tools.append(search := _web_search(raw, head.type))
            shareable = shareable and search.config is None
        elif head.type in _HOSTED_TOOLS:
            logger.info("%s: hosted tool %r dropped (GLM cannot run it here)", path, head.type)
            shareable = False
        else:
            logger.warning("%s: tool type %.40r dropped (unknown)", path, head.type)
            shareable = False
    return _ToolSet(tuple(tools), tuple(freeform), namespaced, _raw_list(raws), shareable)


def _web_search(raw: msgspec.Raw, kind: str) -> ir.Tool:
    """The hosted ``web_search`` tool as the gateway's web search server tool: its
    ``filters.allowed_domains`` and ``user_location`` map onto Anthropic's fields."""
    obj = _DECODE_ANY.decode(raw)
    config: dict[str, Any] = {}
    filters = obj.get("filters") if isinstance(obj, dict) else None
    if isinstance(filters, dict) and isinstance(filters.get("allowed_domains"), list):
        config["allowed_domains"] = filters["allowed_domains"]
    location = obj.get("user_location") if isinstance(obj, dict) else None
    if isinstance(location, dict):
        config["user_location"] = location
    return ir.Tool(name="web_search", server_type=kind, config=config or None)


def _function(raw: msgspec.Raw, path: str) -> ir.Tool:
    fn = decode_body(_DECODE_FUNCTION, raw, path)
    if fn.type != "function":
        raise ClientRequestError("only function tools may be nested in a namespace",
                                 path=f"{path}.type")  # fmt: skip
    return function_tool(fn.name, fn.description, fn.parameters)


def _tool_choice(
    params: rw.ResponseCreateParams, tools: list[ir.Tool]
) -> tuple[list[ir.Tool], ir.ToolChoice | None]:
    choice = params.tool_choice
    no_parallel = params.parallel_tool_calls is False
    if choice is None or choice == "auto":
        return tools, ir.ToolChoice(disable_parallel_tool_use=True) if no_parallel else None
    if choice in ("none", "required"):
        simple = "none" if choice == "none" else "any"
        return tools, ir.ToolChoice(type=simple, disable_parallel_tool_use=no_parallel)  # type: ignore[arg-type]
    if not isinstance(choice, dict):
        raise ClientRequestError("invalid value, expected none, auto, required or a tool",
                                 path="tool_choice")  # fmt: skip
    kind: Any = choice.get("type")
    if kind == "allowed_tools":
        names = {t.get("name") for t in choice.get("tools") or () if isinstance(t, dict)}
        tools = [t for t in tools if t.name in names]
        mode = "any" if choice.get("mode") == "required" else "auto"
        return tools, ir.ToolChoice(type=mode, disable_parallel_tool_use=no_parallel)  # type: ignore[arg-type]
    name = choice.get("name")
    if kind in ("function", "custom") and isinstance(name, str):
        if not any(t.name == name for t in tools):
            raise ClientRequestError("names a tool that is not in tools", path="tool_choice")
        return tools, ir.ToolChoice(type="tool", name=name, disable_parallel_tool_use=no_parallel)
    logger.info("tool_choice %.40r (a hosted tool) treated as auto", kind)
    return tools, None


def _reasoning(reasoning: rw.ReasoningIn | None) -> tuple[ir.Thinking | None, str | None]:
    if reasoning is None:
        return None, None
    thinking, effort = effort_to_ir(reasoning.effort, "reasoning.effort")
    if thinking is None and (reasoning.summary or reasoning.generate_summary):
        thinking = ir.Thinking(type="enabled")
    return thinking, effort


def _format(text: rw.TextIn | None) -> ir.ResponseFormat | None:
    fmt = text.format if text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return ir.ResponseFormat(type="json_object")
    if fmt.type == "json_schema":
        return ir.ResponseFormat(type="json_schema", schema=fmt.schema, name=fmt.name)
    raise ClientRequestError("invalid value, expected text, json_object or json_schema",
                             path="text.format.type")  # fmt: skip


def _format_echo(text: rw.TextIn | None) -> dict[str, Any]:
    fmt = text.format if text is not None else None
    if fmt is None:
        return {"type": "text"}
    out: dict[str, Any] = {"type": fmt.type}
    if fmt.type == "json_schema":
        out.update(name=fmt.name or "response", schema=fmt.schema or {}, strict=fmt.strict)
    return out
