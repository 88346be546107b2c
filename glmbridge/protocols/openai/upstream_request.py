"""OpenAI Chat Completions codec; Z.ai GLM is the ``GLM`` dialect of it.

``request_from_ir`` turns an IR request into a Chat Completions body for one model
(capabilities from its ``ModelSpec``, quirks from a :class:`Dialect`), and
``response_to_ir`` / :class:`StreamDecoder` turn the upstream answer back into the
IR. Converters read spec and dialect flags only, never model names.

Documented translation choices (GLM dialect):

* The system prompt is one ``system`` message (text blocks joined by a blank line).
  Mid-conversation ``role: "system"`` messages become ``user`` messages wrapped in
  ``<system-reminder>``: rewriting the leading system message instead would change
  the first bytes of the prompt on every turn and defeat GLM's prefix cache.
* ``tool_result`` blocks become ``tool`` messages right after their assistant turn
  (``is_error`` → content prefixed ``"Error: "``), then the rest of the user turn.
  Images/PDFs inside a tool result follow in a user message (tool messages are
  text-only). Orphans are repaired: a call without a result gets ``"(no result)"``,
  a result without a call becomes user text.
* ``tool_choice``: GLM only knows ``auto``. ``none`` omits ``tools``; ``any`` and
  ``tool`` are emulated: ``auto`` plus one line at the end of the system prompt ("you
  must call a tool" / "you must call the `X` tool"), which GLM follows in practice.
* ``response_format`` ``json_schema``: GLM has only ``json_object``; the schema is
  appended to the system prompt.
* Sampling: values are clamped to the dialect's ranges; with open-interval sampling
  a temperature at or below the minimum means greedy decoding (``do_sample: false``,
  no temperature/top_p). 1.0 is sent as 1.0 (current GLM docs accept ``[0, 1]``).
* Answers: thinking first (signed with ``ids.thinking_signature``), then text, then
  tool calls; whitespace-only text or reasoning yields no block, so an empty answer
  has no content blocks — exactly what the stream decoder produces.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET

from glmbridge import ir
from glmbridge.errors import ClientRequestError
from glmbridge.memo import IdentityMemo
from glmbridge.protocols.openai import wire as w
from glmbridge.protocols.openai.wire import GLM, ChatCompletionRequest, Dialect
from glmbridge.routing import accepted_effort
from glmbridge.websearch import hit_from_token

if TYPE_CHECKING:
    from glmbridge.routing import ModelSpec

__all__ = ["encode_request", "request_from_ir"]

logger = logging.getLogger("glmbridge.protocols.openai")

_ENCODE_REQUEST = msgspec.json.Encoder(decimal_format="number")
NO_RESULT = "(no result)"
EMPTY_RESULT = "(no output)"
ERROR_PREFIX = "Error: "
_NO_VISION = "[{what} omitted: the selected model cannot read {what}s]"
_TOOL_MEDIA_NOTE = "[{what} returned by this tool follows in the next message]"
_SCHEMA_NOTE = "Respond only with a JSON object that conforms to this JSON Schema:\n"


def encode_request(wire: ChatCompletionRequest) -> bytes:
    """Serialise a request built by :func:`request_from_ir`."""
    return _ENCODE_REQUEST.encode(wire)


# --- request: content parts ----------------------------------------------------------


class _Ctx:
    """Per-request conversion context (capabilities and dialect)."""

    __slots__ = ("dialect", "spec")

    def __init__(self, spec: ModelSpec, dialect: Dialect) -> None:
        self.spec = spec
        self.dialect = dialect


def _media_url(src: ir.MediaSource, ctx: _Ctx, path: str, *, bare: bool) -> str:
    if src.type == "url" and src.url:
        return src.url
    if src.type == "base64" and src.data is not None:
        if bare:
            return src.data
        return f"data:{src.media_type or 'application/octet-stream'};base64,{src.data}"
    raise ClientRequestError(
        f"{src.type} sources are not supported by the {ctx.dialect.name} upstream", path=path
    )


def _text_of(blocks: list[ir.TextBlock]) -> str:
    return "\n\n".join(b.text for b in blocks if b.text and not b.text.isspace())


def _search_result_text(block: ir.SearchResultBlock) -> str:
    return f"Search result: {block.title}\nSource: {block.source}\n\n{_text_of(block.content)}"


def _document_part(block: ir.DocumentBlock, ctx: _Ctx, path: str) -> w.ContentPart:
    src = block.source
    if src.type == "text":
        text = src.data or ""
        return w.TextPart(text=f"{block.title}\n\n{text}" if block.title else text)
    if ctx.spec.files and ctx.dialect.file_parts:
        # The unified file part (OAS): base64 as a data URL in file_data, a URL in file_url,
        # an uploaded file by id; the legacy file_url part is "not recommended" (2.15).
        ref = _file_ref(block, ctx, path)
        return w.FilePart(file=ref)
    raise ClientRequestError(
        "PDF/file documents need a model with file support; this route has none", path=path
    )


def _file_ref(block: ir.DocumentBlock, ctx: _Ctx, path: str) -> w.FileRef:
    src = block.source
    name = block.title or UNSET
    if src.type == "file" and src.file_id:
        return w.FileRef(file_id=src.file_id, filename=name)
    if src.type == "url" and src.url:
        return w.FileRef(file_url=src.url, filename=name)
    return w.FileRef(file_data=_media_url(src, ctx, path, bare=False), filename=name)


def _content_part(block: ir.Block, ctx: _Ctx, path: str) -> w.ContentPart | None:
    """Convert one user-side block; ``None`` means dropped (logged)."""
    if isinstance(block, ir.TextBlock):
        return w.TextPart(text=block.text) if block.text and not block.text.isspace() else None
    if isinstance(block, ir.ImageBlock):
        if not ctx.spec.vision:
            logger.warning("%s: image replaced by a placeholder (model has no vision)", path)
            return w.TextPart(text=_NO_VISION.format(what="image"))
        url = _media_url(block.source, ctx, path, bare=ctx.dialect.bare_base64_images)
        return w.ImagePart(image_url=w.URLRef(url=url))
    if isinstance(block, ir.VideoBlock):
        if not (ctx.spec.video and ctx.dialect.video_parts):
            logger.warning("%s: video replaced by a placeholder (model has no video input)", path)
            return w.TextPart(text=_NO_VISION.format(what="video"))
        url = _media_url(block.source, ctx, path, bare=ctx.dialect.bare_base64_images)
        return w.VideoPart(video_url=w.URLRef(url=url))
    if isinstance(block, ir.DocumentBlock):
        return _document_part(block, ctx, path)
    if isinstance(block, ir.SearchResultBlock):
        return w.TextPart(text=_search_result_text(block))
    if isinstance(block, ir.UnknownBlock):
        logger.warning("%s: dropped block of unknown type %r", path, block.original_type)
    elif isinstance(block, (ir.ThinkingBlock, ir.RedactedThinkingBlock)):
        logger.debug("%s: thinking in a user turn dropped", path)
    else:
        logger.warning("%s: dropped %s block in a user turn", path, type(block).__name__)
    return None


_MEDIA_NAMES: dict[type, str] = {w.ImagePart: "image", w.VideoPart: "video", w.FilePart: "file"}


def _is_empty_text(part: w.ContentPart) -> bool:
    """GLM rejects an empty text part ("messages[4].content[1].text:不能为空",
    zed-industries/zed#38153): such parts are dropped."""
    return isinstance(part, w.TextPart) and (not part.text or part.text.isspace())


def _user_content(parts: list[w.ContentPart]) -> str | list[w.ContentPart]:
    """Text-only turns become one string (GLM text models reject part arrays)."""
    if all(isinstance(p, w.TextPart) for p in parts):
        return "\n\n".join(p.text for p in parts)  # type: ignore[union-attr]
    return parts


# --- request: messages ---------------------------------------------------------------


class _History:
    """Builds the wire message list, keeping tool calls and results adjacent."""

    def __init__(self, ctx: _Ctx) -> None:
        self.ctx = ctx
        self.out: list[w.ChatMessage] = []
        self.pending: dict[str, None] = {}  # tool_call ids of the last assistant turn
        self.deferred: list[w.ChatMessage] = []  # reminders that arrived mid tool-call

    def close_pending(self) -> None:
        """Answer still-open tool calls with a synthetic result, then flush reminders."""
        for call_id in self.pending:
            logger.warning("tool call %s has no tool_result; sent %r", call_id, NO_RESULT)
            self.out.append(w.ToolMessage(tool_call_id=call_id, content=NO_RESULT))
        self.pending = {}
        self.out.extend(self.deferred)
        self.deferred = []

    def system(self, msg: ir.Message, path: str) -> None:
        text = "\n\n".join(
            b.text for b in msg.content if isinstance(b, ir.TextBlock) and b.text.strip()
        )
        if not text:
            return
        reminder = w.UserMessage(content=f"<system-reminder>\n{text}\n</system-reminder>")
        # Never split an assistant tool call from its results.
        (self.deferred if self.pending else self.out).append(reminder)

    def assistant(self, msg: ir.Message, path: str) -> None:
        self.close_pending()
        texts: list[str] = []
        thinking: list[str] = []
        calls: list[w.ToolCall] = []
        for j, block in enumerate(msg.content):
            if isinstance(block, ir.TextBlock):
                if block.text and not block.text.isspace():
                    texts.append(block.text)
            elif isinstance(block, ir.ToolUseBlock):
                args = w.ENCODE.encode(block.input).decode()
                fn = w.FunctionCall(name=block.name, arguments=args)
                calls.append(w.ToolCall(id=block.id, type="function", function=fn))
            elif isinstance(block, ir.ThinkingBlock):
                thinking.append(block.thinking)
            elif isinstance(block, ir.RedactedThinkingBlock):
                logger.debug("%s.content.%d: redacted_thinking dropped", path, j)
            elif isinstance(block, ir.WebSearchToolResultBlock):
                texts.append(_web_search_text(block))
            elif isinstance(block, ir.ServerToolUseBlock):
                logger.debug("%s.content.%d: server_tool_use dropped", path, j)
            elif (
                isinstance(block, ir.UnknownBlock)
                and block.original_type == "web_fetch_tool_result"
            ):
                texts.append(_web_fetch_text(block))
            else:
                logger.warning("%s.content.%d: dropped %s block", path, j, type(block).__name__)
        reasoning = "".join(thinking) if self.ctx.dialect.reasoning_content_history else ""
        if not texts and not calls:
            # Nothing to say but (maybe) reasoning: GLM rejects empty content (1213).
            logger.debug("%s: assistant turn without text or calls dropped", path)
            return
        # Joined with "": GLM produced them as one string, so the replay matches its cache.
        content = "".join(texts) if texts else None
        self.out.append(
            w.AssistantMessage(
                content=content,
                tool_calls=calls or UNSET,
                reasoning_content=reasoning or UNSET,
            )
        )
        self.pending = {c.id: None for c in calls}

    def user(self, msg: ir.Message, path: str) -> None:
        parts: list[w.ContentPart] = []
        media: list[w.ContentPart] = []
        for j, block in enumerate(msg.content):
            bpath = f"{path}.content.{j}"
            if isinstance(block, ir.ToolResultBlock):
                self._tool_result(block, bpath, parts, media)
            else:
                part = _content_part(block, self.ctx, bpath)
                if part is not None and not _is_empty_text(part):
                    parts.append(part)
        self.close_pending()
        if media or parts:
            self.out.append(w.UserMessage(content=_user_content(media + parts)))

    def _tool_result(
        self,
        block: ir.ToolResultBlock,
        path: str,
        parts: list[w.ContentPart],
        media: list[w.ContentPart],
    ) -> None:
        texts: list[str] = []
        for k, item in enumerate(block.content):
            part = _content_part(item, self.ctx, f"{path}.content.{k}")
            if isinstance(part, w.TextPart):
                texts.append(part.text)
            elif part is not None:
                texts.append(_TOOL_MEDIA_NOTE.format(what=_MEDIA_NAMES[type(part)]))
                media.append(part)
        text = "\n\n".join(t for t in texts if t and not t.isspace())
        if block.is_error:
            text = ERROR_PREFIX + text if text else ERROR_PREFIX.rstrip(": ")
        elif not text:
            # GLM rejects empty content: 400/1213 (earendil-works/pi#3309, zai-fidelity 2.16).
            text = EMPTY_RESULT
        if block.tool_use_id in self.pending:
            del self.pending[block.tool_use_id]
            self.out.append(w.ToolMessage(tool_call_id=block.tool_use_id, content=text))
            return
        logger.warning("%s: tool_result without a matching tool call sent as text", path)
        parts.append(w.TextPart(text=f"[tool result {block.tool_use_id}]\n{text}"))


def _web_search_text(block: ir.WebSearchToolResultBlock) -> str:
    lines = ["Web search results:"]
    if isinstance(block.content, list):
        for item in block.content:
            if isinstance(item, dict) and item.get("url"):
                lines.append(f"- {item.get('title') or item['url']} ({item['url']})")
                # this gateway's own results carry their text (glmbridge.websearch)
                hit = hit_from_token(item.get("encrypted_content"))
                if hit is not None and hit.content:
                    lines.append(f"  {hit.content}")
    return "\n".join(lines) + "\n\n"


def _web_fetch_text(block: ir.UnknownBlock) -> str:
    """A ``web_fetch_tool_result`` of an earlier turn: the page text GLM read then."""
    content = block.raw.get("content")
    if not isinstance(content, dict):
        return "Web fetch failed.\n\n"
    doc = content.get("content")
    source = doc.get("source") if isinstance(doc, dict) else None
    if not isinstance(source, dict) or not isinstance(source.get("data"), str):
        return "Web fetch failed.\n\n"
    return f"Fetched {content.get('url')}:\n{source['data']}\n\n"


def _messages(req: ir.Request, ctx: _Ctx, system_extra: str) -> list[w.ChatMessage]:
    history = _History(ctx)
    system = "\n\n".join(t for t in (_text_of(req.system), system_extra) if t)
    if system:
        history.out.append(w.SystemMessage(content=system))
    for i, msg in enumerate(req.messages):
        path = f"messages.{i}"
        if msg.role == "assistant":
            history.assistant(msg, path)
        elif msg.role == "user":
            history.user(msg, path)
        else:
            history.system(msg, path)
    history.close_pending()
    return history.out


# --- request: tools and parameters ---------------------------------------------------


def _tools(req: ir.Request, dialect: Dialect) -> list[w.ToolDef]:
    out: list[w.ToolDef] = []
    for i, tool in enumerate(req.tools):
        if tool.server_type is not None:
            _note_server_tool(i, tool)
            continue
        params = tool.input_schema if tool.input_schema is not None else UNSET
        fn = w.FunctionDef(name=tool.name, description=tool.description or UNSET, parameters=params)
        out.append(w.ToolDef(type="function", function=fn))
    if len(out) > dialect.max_tools:
        raise ClientRequestError(
            f"{len(out)} tools given; the {dialect.name} upstream accepts at most "
            f"{dialect.max_tools}",
            path="tools",
        )
    return out


def _note_server_tool(i: int, tool: ir.Tool) -> None:
    """Log a server tool left out of the upstream request."""
    assert tool.server_type is not None
    if tool.server_type.startswith(("web_search", "web_fetch")):
        # the gateway runs it (glmbridge.server_tools) unless web search is off
        logger.debug("tools.%d: server tool %s not sent upstream", i, tool.name)
    else:
        logger.warning("tools.%d: server tool %r dropped", i, tool.server_type)


_CHOICE_VALUES = {"auto": "auto", "any": "required", "tool": "function", "none": "none"}


_MUST_CALL = "In this response you must call at least one of the available tools."
_MUST_CALL_NAMED = "In this response you must call the `{name}` tool."


def _tool_choice(
    req: ir.Request, tools: msgspec.Raw | None, dialect: Dialect, body: dict[str, Any]
) -> str:
    """Set ``tools`` (the array's JSON, ``None`` when no tool is sent), ``tool_choice`` and
    ``parallel_tool_calls`` in ``body``; return the system-prompt line that emulates a
    choice the dialect lacks (or ``""``)."""
    if tools is None:
        return ""
    choice = req.tool_choice or ir.ToolChoice()
    value = _CHOICE_VALUES[choice.type]
    note = ""
    if value not in dialect.tool_choice_values:
        if value == "none":
            logger.debug("tool_choice none: tools omitted (%s has no 'none')", dialect.name)
            return ""
        logger.debug("tool_choice %s emulated on %s by an instruction", choice.type,
                     dialect.name)  # fmt: skip
        note = _MUST_CALL_NAMED.format(name=choice.name) if choice.name else _MUST_CALL
        value = "auto"
    body["tools"] = tools
    if value == "function" and choice.name:
        body["tool_choice"] = w.NamedToolChoice(
            type="function", function=w.NamedFunction(name=choice.name)
        )
    elif value != "function":
        body["tool_choice"] = value
    if choice.disable_parallel_tool_use and dialect.parallel_tool_calls_param:
        body["parallel_tool_calls"] = False
    return note


#: The encoded ``tools`` array by the identity of the IR tools it was made from, per
#: dialect: a door that remembers its tool definitions (glmbridge.memo) hands back the
#: same objects every turn, and their JSON, 83% of a Claude Code request, is then not
#: encoded again (issue 22). With it, whether the list holds a server tool (left out,
#: and logged on every request).
_TOOLS_JSON: dict[str, IdentityMemo[tuple[msgspec.Raw, bool]]] = {}


def _tools_json(req: ir.Request, dialect: Dialect) -> msgspec.Raw | None:
    """``req``'s tools as the dialect's JSON array (what the request encoder would write
    for them; ``None``: no tool to send), remembered by the identity of the tools."""
    memo = _TOOLS_JSON.get(dialect.name)
    if memo is None:
        memo = _TOOLS_JSON.setdefault(dialect.name, IdentityMemo())
    found = memo.get(req.tools)
    if found is not None:  # the entry holds those tools: equal ids are the same objects
        if found[1]:  # Codex offers web_search every turn
            for i, tool in enumerate(req.tools):
                if tool.server_type is not None:
                    _note_server_tool(i, tool)
        return found[0]
    tools = _tools(req, dialect)
    if not tools:
        return None
    raw = msgspec.Raw(_ENCODE_REQUEST.encode(tools))
    memo.put(req.tools, (raw, len(tools) != len(req.tools)))
    return raw


def _sampling(req: ir.Request, dialect: Dialect, body: dict[str, Any]) -> None:
    lo, hi = dialect.temperature_range
    if req.temperature is not None:
        if dialect.open_interval_sampling and req.temperature <= lo:
            body["do_sample"] = False  # greedy; GLM then ignores temperature and top_p
            return
        body["temperature"] = min(max(req.temperature, lo), hi)
    if req.top_p is not None:
        p_lo, p_hi = dialect.top_p_range
        body["top_p"] = min(max(req.top_p, p_lo), p_hi)
    if req.top_k is not None:
        logger.debug("top_k dropped (not supported by %s)", dialect.name)


def _limits(req: ir.Request, spec: ModelSpec, dialect: Dialect, body: dict[str, Any]) -> None:
    if req.max_tokens is not None:
        cap = max(1, min(req.max_tokens, spec.max_output))
        body["max_completion_tokens" if dialect.max_completion_tokens else "max_tokens"] = cap
    stops = [s for s in req.stop_sequences if s]
    limit = dialect.max_stop_sequences
    if limit is not None and len(stops) > limit:
        logger.info(
            "%d stop sequences dropped (%s accepts %d)", len(stops) - limit, dialect.name, limit
        )
        stops = stops[:limit]
    if stops:
        body["stop"] = stops
    if req.user_id and dialect.user_id_field is not None:
        lo, hi = dialect.user_id_length
        if lo <= len(req.user_id) <= hi:
            body[dialect.user_id_field] = req.user_id
        elif len(req.user_id) > hi:
            # Claude Code's user_id is a ~150-char JSON document: a stable digest keeps
            # the per-user attribution the upstream wants within its length limit.
            digest = hashlib.sha256(req.user_id.encode()).hexdigest()
            body[dialect.user_id_field] = digest[: min(hi, len(digest))]
        else:
            logger.debug("user_id not sent: shorter than %d characters", lo)


def _thinking(
    req: ir.Request, spec: ModelSpec, dialect: Dialect, *, replays_reasoning: bool
) -> w.ThinkingParam | None:
    """GLM ``thinking``. When history replays reasoning, ``clear_thinking: false`` keeps it
    (preserved thinking): GLM's default is ``true`` (drop it) on the pay-as-you-go
    endpoints and ``false`` on the Coding Plan (zai-fidelity 2.2, TMODE)."""
    if not dialect.thinking_param or spec.thinking == "none":
        return None
    disabled = req.thinking is not None and req.thinking.type == "disabled"
    if replays_reasoning and dialect.clear_thinking_param and not disabled:
        return w.ThinkingParam(type="enabled", clear_thinking=False)
    if req.thinking is None:
        return None
    return w.ThinkingParam(type="disabled" if disabled else "enabled")


def _response_format(req: ir.Request, dialect: Dialect) -> tuple[w.ResponseFormat | None, str]:
    """Return the wire response_format and any text to append to the system prompt."""
    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return None, ""
    if fmt.type == "json_schema" and dialect.json_schema_response_format:
        schema = w.JsonSchemaFormat(name=fmt.name or "response", schema=fmt.schema or UNSET)
        return w.ResponseFormat(type="json_schema", json_schema=schema), ""
    note = ""
    if fmt.type == "json_schema" and fmt.schema is not None:
        note = _SCHEMA_NOTE + w.ENCODE.encode(fmt.schema).decode()
    return w.ResponseFormat(type="json_object"), note


def request_from_ir(
    req: ir.Request, *, model: str, spec: ModelSpec, dialect: Dialect = GLM
) -> ChatCompletionRequest:
    """Build the Chat Completions body for ``model`` from an IR request.

    Args:
        req: the protocol-neutral request.
        model: the upstream model id to put in the body.
        spec: the model's capabilities (``max_output``, ``vision``, ``thinking`` …).
        dialect: the upstream's quirks.

    Raises:
        ClientRequestError: content the upstream cannot take and that must not be
            dropped silently (a PDF for a model without file input, a file-id
            source), or too many tools; the message names the JSON path.
    """
    ctx = _Ctx(spec, dialect)
    response_format, system_extra = _response_format(req, dialect)
    body: dict[str, Any] = {}
    choice_note = _tool_choice(req, _tools_json(req, dialect), dialect, body)
    if choice_note:
        system_extra = f"{system_extra}\n\n{choice_note}" if system_extra else choice_note
    _sampling(req, dialect, body)
    _limits(req, spec, dialect, body)
    messages = _messages(req, ctx, system_extra)
    replays = any(
        isinstance(m, w.AssistantMessage) and m.reasoning_content is not UNSET for m in messages
    )
    thinking = _thinking(req, spec, dialect, replays_reasoning=replays)
    if thinking is not None:
        body["thinking"] = thinking
    disabled = req.thinking is not None and req.thinking.type == "disabled"
    effort = accepted_effort(req.effort, spec) if dialect.reasoning_effort_param else None
    if effort is not None and not disabled:
        body["reasoning_effort"] = effort
    if response_format is not None:
        body["response_format"] = response_format
    if req.stream:
        body["stream"] = True
        if dialect.stream_options:
            body["stream_options"] = w.StreamOptions(include_usage=True)
        if "tools" in body and spec.tool_stream and dialect.tool_stream_param:
            body["tool_stream"] = True
    return ChatCompletionRequest(model=model, messages=messages, **body)
