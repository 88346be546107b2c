"""Gemini ``generateContent`` requests -> IR.

Translation choices:

* ``systemInstruction`` is the system prompt; ``contents`` roles ``user`` and ``model``
  (also ``function``, what older clients used for function responses) become user and
  assistant turns; consecutive contents of one role are one turn.
* Parts: ``text`` (``thought: true`` text in a model turn is thinking, sent back to GLM as
  its reasoning), ``inlineData`` (image, video or PDF by MIME type), ``fileData`` with an
  http(s) URI (a Files-API URI is a 400: glmbridge has no Files API), ``functionCall``
  and ``functionResponse``. ``thoughtSignature`` is accepted and ignored (GLM has none).
  ``executableCode`` / ``codeExecutionResult`` become text.
* Function calls often carry no id on the Gemini API: ids are made up deterministically
  (``call_<turn>_<n>``), and a ``functionResponse`` without an id (or with one no call
  has) answers the oldest unanswered call of the same name.
* ``functionDeclarations``: ``parametersJsonSchema`` is used as is; ``parameters``
  (Gemini's OpenAPI subset: ``OBJECT``/``STRING``…, ``nullable``) is converted to JSON
  Schema. ``googleSearch`` (and ``googleSearchRetrieval``) becomes the gateway's web
  search server tool (:mod:`glmbridge.server_tools`; answers carry ``groundingMetadata``);
  the other hosted tools are dropped with a log line.
* ``toolConfig.functionCallingConfig``: ``AUTO``/``VALIDATED`` → auto, ``ANY`` → any (one
  allowed name → that tool), ``NONE`` → none; ``allowedFunctionNames`` narrows the tools.
* ``generationConfig``: ``candidateCount`` > 1 is a 400; ``responseMimeType:
  application/json`` with ``responseSchema`` / ``responseJsonSchema`` is JSON mode with
  the schema; ``thinkingConfig``: ``thinkingBudget: 0`` disables thinking, another
  budget enables it (and, without a level, sets the effort: ≤2K low, ≤8K medium, ≤24K
  high, more max), ``thinkingLevel`` MINIMAL/LOW/MEDIUM/HIGH is the effort, and
  ``includeThoughts`` decides whether the answer shows thought parts (``echo``).
* ``safetySettings``, ``cachedContent``, ``presencePenalty``, ``frequencyPenalty`` and
  ``seed`` are dropped: Z.ai's chat API documents none of them (``seed`` is only in its
  SDK). With DEBUG logging on, one line names the dropped fields (names, never values).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec

from glmbridge import ir
from glmbridge._tool_args import exact_float
from glmbridge.errors import ClientRequestError
from glmbridge.inline_base64 import decode_base64, normalize_base64
from glmbridge.protocols.gemini import wire as gw

__all__ = ["decode_request", "request_to_ir", "schema_to_json"]

logger = logging.getLogger("glmbridge.protocols.gemini")

_LEVELS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
_MODES = {"AUTO": "auto", "VALIDATED": "auto", "MODE_UNSPECIFIED": "auto", "ANY": "any",
          "NONE": "none"}  # fmt: skip
_HOSTED = ("google_search", "google_search_retrieval", "code_execution", "url_context")
_SEARCH = frozenset({"google_search", "google_search_retrieval"})


def decode_request(body: bytes, *, model: str, stream: bool = False) -> ir.Request:
    """Decode a ``generateContent`` / ``streamGenerateContent`` body for ``model``.

    Raises:
        ClientRequestError: the body is invalid, or asks for what GLM cannot do
            (several candidates, audio output, Files-API references).
    """
    return request_to_ir(gw.decode_request(body), model=model, stream=stream)


def request_to_ir(
    req: gw.GenerateContentRequest, *, model: str, stream: bool = False
) -> ir.Request:
    """Convert a decoded request (``model`` is the path's model id, ``models/`` stripped)."""
    if req.generate_content_request is not None:  # countTokens' wrapped form
        inner = gw.decode_request(_encode(req.generate_content_request))
        return request_to_ir(inner, model=model, stream=stream)
    config = req.generation_config or gw.GenerationConfig()
    if config.candidate_count is not None and config.candidate_count > 1:
        raise ClientRequestError("only 1 candidate is supported (GLM returns one answer)",
                                 path="generationConfig.candidateCount")  # fmt: skip
    modalities = [m.upper() for m in config.response_modalities or ()]
    if modalities and modalities != ["TEXT"]:
        raise ClientRequestError("only TEXT output is supported by GLM models",
                                 path="generationConfig.responseModalities")  # fmt: skip
    tools = _tools(req.tools or [])
    tools, choice = _tool_choice(req.tool_config, tools)
    thinking, effort, include = _thinking(config.thinking_config)
    if logger.isEnabledFor(logging.DEBUG):  # the one check a request pays otherwise
        _log_dropped(req, config)
    return ir.Request(
        model=model,
        messages=_contents(req.contents),
        system=_system(req.system_instruction),
        max_tokens=config.max_output_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=int(config.top_k) if config.top_k is not None else None,
        stop_sequences=[s for s in config.stop_sequences or () if s],
        stream=stream,
        tools=tools,
        tool_choice=choice,
        thinking=thinking,
        effort=effort,
        response_format=_format(config),
        echo={"include_thoughts": include},
    )


_encode = msgspec.json.Encoder(decimal_format="number").encode
_decode = msgspec.json.Decoder(float_hook=exact_float).decode


def _log_dropped(req: gw.GenerateContentRequest, config: gw.GenerationConfig) -> None:
    """One DEBUG line naming the fields GLM has no equivalent for (never their values)."""
    fields = (
        ("safetySettings", req.safety_settings),
        ("cachedContent", req.cached_content),
        ("seed", config.seed),
        ("presencePenalty", config.presence_penalty),
        ("frequencyPenalty", config.frequency_penalty),
    )
    dropped = [name for name, value in fields if value is not None]
    if dropped:
        logger.debug("dropped (GLM has no equivalent): %s", ", ".join(dropped))


# --- contents ------------------------------------------------------------------------------


def _system(content: gw.Content | None) -> list[ir.TextBlock]:
    if content is None:
        return []
    text = "\n\n".join(p.text for p in content.parts if p.text)
    return [ir.TextBlock(text=text)] if text else []


class _Calls:
    """Made-up ids for function calls without one, and responses matched to them."""

    def __init__(self) -> None:
        self.open: list[tuple[str, str]] = []  # (name, id) of unanswered calls, in order
        self.seen: set[str] = set()  # the ids of all calls so far

    def call(self, call: gw.FunctionCall, turn: int, n: int) -> str:
        call_id = call.id or f"call_{turn}_{n}"
        self.open.append((call.name, call_id))
        self.seen.add(call_id)
        return call_id

    def answer(self, resp: gw.FunctionResponse, path: str) -> str:
        # By id; else (no id, or an id no call has: a call whose id was made up here)
        # the oldest open call of the same name.
        if resp.id and resp.id in self.seen:
            self.open = [c for c in self.open if c[1] != resp.id]
            return resp.id
        for k, (name, call_id) in enumerate(self.open):
            if name == resp.name:
                del self.open[k]
                return call_id
        if resp.id:
            return resp.id
        logger.warning("%s: functionResponse %r answers no open call", path, resp.name[:64])
        return f"call_unmatched_{resp.name}"


def _contents(contents: list[gw.Content]) -> list[ir.Message]:
    calls = _Calls()
    # gemini-cli sends consecutive same-role contents (its router call): they make one turn.
    # Blocks gather per run of one role, so a long run stays linear.
    runs: list[tuple[ir.Role, list[ir.Block]]] = []
    for i, content in enumerate(contents):
        path = f"contents.{i}"
        role = (content.role or "user").lower()
        if role not in ("user", "model", "function"):
            raise ClientRequestError("invalid value, expected user or model", path=f"{path}.role")
        model = role == "model"
        blocks: list[ir.Block] = []
        n = 0
        for j, part in enumerate(content.parts):
            ppath = f"{path}.parts.{j}"
            if part.function_call is not None:
                call_id = calls.call(part.function_call, i, n)
                n += 1
                args = part.function_call.args or {}
                blocks.append(ir.ToolUseBlock(id=call_id, name=part.function_call.name, input=args))
            elif part.function_response is not None:
                blocks.append(_result(part.function_response, calls.answer(
                    part.function_response, ppath)))  # fmt: skip
            else:
                block = _data_part(part, ppath, model=model)
                if block is not None:
                    blocks.append(block)
        role_ir: ir.Role = "assistant" if model else "user"
        if blocks and runs and runs[-1][0] == role_ir:
            runs[-1][1].extend(blocks)
        elif blocks:
            runs.append((role_ir, blocks))
    return [ir.Message(role=role, content=blocks) for role, blocks in runs]


def _result(resp: gw.FunctionResponse, call_id: str) -> ir.ToolResultBlock:
    body = resp.response or {}
    is_error = "error" in body and "output" not in body
    value = body.get("error") if is_error else body.get("output", body)
    text = value if isinstance(value, str) else _encode(value).decode()
    return ir.ToolResultBlock(tool_use_id=call_id, content=[ir.TextBlock(text=text)],
                              is_error=is_error)  # fmt: skip


def _data_part(part: gw.Part, path: str, *, model: bool) -> ir.Block | None:
    if part.text is not None:
        if not part.text:
            return None  # an empty part carrying only a thoughtSignature
        if part.thought and model:
            return ir.ThinkingBlock(thinking=part.text)
        if part.thought:
            return None  # a thought in a user turn: nothing to tell the model
        return ir.TextBlock(text=part.text)
    if part.inline_data is not None:
        blob = part.inline_data
        data = normalize_base64(blob.data, f"{path}.inlineData.data")
        source = ir.MediaSource(type="base64", media_type=blob.mime_type, data=data)
        return _media(blob.mime_type, source, path)
    if part.file_data is not None:
        uri = part.file_data.file_uri
        if not uri.startswith(("http://", "https://")):
            raise ClientRequestError("only http(s) file URIs are supported (glmbridge has no "
                                     "Files API); send the file as inlineData",
                                     path=f"{path}.fileData.fileUri")  # fmt: skip
        mime = part.file_data.mime_type or "image/*"
        return _media(mime, ir.MediaSource(type="url", url=uri, media_type=mime), path)
    if part.executable_code is not None:
        return ir.TextBlock(text=f"```\n{part.executable_code.get('code', '')}\n```")
    if part.code_execution_result is not None:
        return ir.TextBlock(text=str(part.code_execution_result.get("output", "")))
    return None


def _media(mime: str, source: ir.MediaSource, path: str) -> ir.Block:
    kind = mime.split("/", 1)[0].lower()
    if kind == "image":
        return ir.ImageBlock(source=source)
    if kind == "video":
        return ir.VideoBlock(source=source)
    if mime.lower() == "application/pdf":
        return ir.DocumentBlock(source=source)
    if kind == "text" and source.type == "base64":
        raw = decode_base64(source.data or "", f"{path}.inlineData.data")
        text = raw.decode("utf-8", "replace")
        return ir.DocumentBlock(source=ir.MediaSource(type="text", data=text))
    raise ClientRequestError(f"{mime[:40]} input is not supported by GLM models", path=path)


# --- tools, config ------------------------------------------------------------------------

_TYPES = {"STRING": "string", "NUMBER": "number", "INTEGER": "integer", "BOOLEAN": "boolean",
          "ARRAY": "array", "OBJECT": "object", "NULL": "null"}  # fmt: skip
_SCHEMA_KEYS = {"any_of": "anyOf", "min_items": "minItems", "max_items": "maxItems",
                "min_length": "minLength", "max_length": "maxLength",
                "min_properties": "minProperties", "max_properties": "maxProperties",
                "property_ordering": "propertyOrdering",
                "additional_properties": "additionalProperties"}  # fmt: skip
_DROP_KEYS = frozenset({"propertyOrdering", "nullable", "example"})


def schema_to_json(schema: Any) -> Any:
    """Gemini's OpenAPI-subset ``Schema`` -> JSON Schema: lowercase ``type``, ``nullable``
    as a ``null`` type, ``example`` and ``propertyOrdering`` dropped."""
    if isinstance(schema, list):
        return [schema_to_json(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        key = _SCHEMA_KEYS.get(key, key)
        if key in _DROP_KEYS:
            continue
        if key == "type" and isinstance(value, str):
            value = _TYPES.get(value.upper(), value.lower())
        elif key == "properties" and isinstance(value, dict):
            value = {name: schema_to_json(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf", "additionalProperties"):
            value = schema_to_json(value)
        out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if out.get("type") == "TYPE_UNSPECIFIED".lower():
        out.pop("type")
    return out


def _tools(tools: list[gw.Tool]) -> list[ir.Tool]:
    out: list[ir.Tool] = []
    for i, tool in enumerate(tools):
        for name in _HOSTED:
            if getattr(tool, name) is None:
                continue
            if name in _SEARCH:  # run by the gateway (glmbridge.server_tools)
                out.append(ir.Tool(name="web_search", server_type=f"web_search_{name}"))
            else:
                logger.info("tools.%d: hosted tool %s dropped (GLM cannot run it here)", i, name)
        for decl in tool.function_declarations or ():
            schema = _parameters(decl)
            out.append(ir.Tool(name=decl.name, description=decl.description, input_schema=schema))
    return out


_UPPER_TYPE = re.compile(rb'"type"\s*:\s*"[A-Z]')


def _parameters(decl: gw.FunctionDeclaration) -> msgspec.Raw | dict[str, Any] | None:
    """The tool's JSON Schema: ``parametersJsonSchema`` passed through as raw JSON (never
    re-encoded) unless it uses upper-case OpenAPI types; else ``parameters`` converted."""
    raw = decl.parameters_json_schema
    if raw:
        if not _UPPER_TYPE.search(raw):
            return raw if bytes(memoryview(raw)[:1]) == b"{" else None
        schema = schema_to_json(_decode(raw))
        return schema if isinstance(schema, dict) else None
    if decl.parameters is not None:
        converted = schema_to_json(decl.parameters)
        return converted if isinstance(converted, dict) else None
    return None


def _tool_choice(
    config: gw.ToolConfig | None, tools: list[ir.Tool]
) -> tuple[list[ir.Tool], ir.ToolChoice | None]:
    fcc = config.function_calling_config if config is not None else None
    if fcc is None:
        return tools, None
    mode = _MODES.get((fcc.mode or "AUTO").upper())
    if mode is None:
        raise ClientRequestError("invalid value, expected AUTO, ANY, NONE or VALIDATED",
                                 path="toolConfig.functionCallingConfig.mode")  # fmt: skip
    allowed = fcc.allowed_function_names
    if allowed:
        tools = [t for t in tools if t.name in allowed]
    if mode == "any" and allowed and len(allowed) == 1 and tools:
        return tools, ir.ToolChoice(type="tool", name=allowed[0])
    return tools, ir.ToolChoice(type=mode)  # type: ignore[arg-type]


# thinkingBudget -> effort when no thinkingLevel is given (GLM has no token budget, only
# reasoning_effort): up to 2K low, 8K medium (gemini-cli's default budget), 24K high, more max.
_BUDGET_EFFORTS = ((2048, "low"), (8192, "medium"), (24576, "high"))


def _budget_effort(budget: int) -> str:
    for limit, effort in _BUDGET_EFFORTS:
        if budget <= limit:
            return effort
    return "max"


def _thinking(
    config: gw.ThinkingConfig | None,
) -> tuple[ir.Thinking | None, str | None, bool]:
    if config is None:
        return None, None, False
    include = bool(config.include_thoughts)
    effort = None
    if config.thinking_level:
        effort = _LEVELS.get(config.thinking_level.lower())
        if effort is None:
            raise ClientRequestError(
                "invalid value, expected MINIMAL, LOW, MEDIUM or HIGH",
                path="generationConfig.thinkingConfig.thinkingLevel",
            )
    budget = config.thinking_budget
    if budget == 0:
        return ir.Thinking(type="disabled"), effort, include
    if budget is not None and budget > 0:
        effort = effort or _budget_effort(budget)
        return ir.Thinking(type="enabled", budget_tokens=budget), effort, include
    if budget is not None and budget < 0:  # -1: dynamic thinking, on without a budget
        return ir.Thinking(type="enabled"), effort, include
    if effort is not None or include:
        return ir.Thinking(type="enabled"), effort, include
    return None, None, include


def _format(config: gw.GenerationConfig) -> ir.ResponseFormat | None:
    if (config.response_mime_type or "").lower() != "application/json":
        if config.response_schema is not None or config.response_json_schema is not None:
            logger.debug("responseSchema without responseMimeType application/json: JSON anyway")
        else:
            return None
    # gemini-cli's routing call sends responseJsonSchema with upper-case OpenAPI types
    # ("OBJECT"): both forms go through the same conversion.
    schema = config.response_json_schema
    schema = schema_to_json(schema if schema is not None else config.response_schema)
    if isinstance(schema, dict):
        return ir.ResponseFormat(type="json_schema", schema=schema, name="response")
    return ir.ResponseFormat(type="json_object")
