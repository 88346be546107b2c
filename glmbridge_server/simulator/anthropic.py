"""Anthropic-endpoint mode of the GLM simulator: Z.ai's ``/api/anthropic/v1/messages``.

The same machinery as the chat endpoint (:mod:`~.chat`): scripts, scenarios,
``[[sim:...]]`` directives, the ``x-sim-*`` headers, ``app.state.script_queue``, latency,
``invalid_keys``/``quota_keys``, the request log and disconnect-aware streaming. A request is
translated into the chat simulator's internal shape, answered by the same
:func:`~.answer.answer` and rendered as an Anthropic Messages response with the quirks public
reports show for Z.ai's endpoint. Each quirk names its source; ``docs/simulator.md``
("Anthropic-endpoint mode") lists them all.

Independent of ``glmbridge``, like the rest of the simulator.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import msgspec

import glmbridge_server.simulator.asgi as asgi
from glmbridge_server.simulator.answer import Answer, answer
from glmbridge_server.simulator.asgi import ASGIApp, Reply, Request, json_reply
from glmbridge_server.simulator.catalog import (
    ALWAYS_THINKS_ZH,
    MODELS,
    OVERLOADED_MESSAGE,
    ModelInfo,
)
from glmbridge_server.simulator.intake import (
    bearer,
    check_key,
    new_id,
    prepare,
    record_body,
    still_there,
)
from glmbridge_server.simulator.rules import _GlmError
from glmbridge_server.simulator.scripts import (
    Context,
    Script,
    ScriptError,
    default_script_for,
    error_for_code,
    text_of,
)

__all__ = ["MESSAGES_PATH", "count_tokens", "messages"]

MESSAGES_PATH = "/api/anthropic/v1/messages"
_encode = msgspec.json.encode
_BEIJING = timezone(timedelta(hours=8))

# Anthropic error type per HTTP status (the body's "error.type"); anything else is api_error.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    434: "permission_error",
    529: "overloaded_error",  # zai-org/feedback#43, zai-org/GLM-5#87
}
# Codes whose status on /api/anthropic differs from the chat API's: 1234 is a 400 there
# (zhushanwen321/llm-simple-router config/recommended-retry-rules.json).
_STATUS = {"1234": 400}
# Texts seen on the Anthropic hosts; other codes use the chat simulator's English texts.
_TEXTS = {
    # CN host wording; the intl host sends the English text (zai-org/feedback#789).
    "1113": "余额不足或无可用资源包,请充值。",
    "1210": "API 调用参数有误，请检查文档。",  # farion1231/cc-switch#3090, #5461
    "1211": "模型不存在，请检查模型代码。",  # Kohaku-Lab/KohakuTerrarium#73, hermes-agent#7475
    "1213": "The prompt parameter was not received normally.",  # zed-industries/zed#45704
    "1234": "网络错误，请稍后重试",  # llm-simple-router (above)
    "1305": OVERLOADED_MESSAGE,  # repoprompt/repoprompt-ce#295
    # CN text (dirge-code/dirge#818); the reset time is naive Beijing time (can1357/oh-my-pi#11014).
    "1308": "已达到 5 小时的使用上限。您的限额将在 {reset} 重置。",
}
# Chat-mode mid-stream failures (a finish_reason there) -> (error type, code) of the in-band SSE
# error here. An "HTTP 200 whose SSE body holds an error event (code 1234)" was seen on the CN
# Anthropic host (llm-simple-router commit db72374); 1301 (content safety) is our analogue.
_FAILURES = {"network_error": ("api_error", "1234"), "sensitive": ("invalid_request_error", "1301")}
_STOP_REASONS = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}
# Images to a text model (below); only the chat endpoint / a Codex route show this answer.
_IMAGE_ERROR = "messages.content.type 参数非法，取值范围 ['text']"
# Server tools Z.ai runs itself; the simulated model never calls them.
_SERVER_TOOLS = ("web_search", "web_fetch", "code_execution")


class _AnthropicError(Exception):
    """An error answer in Z.ai's Anthropic shape (status, business code, optional text)."""

    def __init__(self, status: int, code: str, text: str | None = None) -> None:
        super().__init__(text or code)
        self.status, self.code, self.text = status, code, text


class _Unprocessable(Exception):
    """A schema failure: the endpoint is a FastAPI app and answers 422 with pydantic's ``detail``
    list, not the Anthropic error shape (farion1231/cc-switch#3863, OpenAI-shaped tools)."""

    def __init__(self, kind: str, loc: tuple[str | int, ...], msg: str, value: Any) -> None:
        super().__init__(msg)
        self.detail = {"type": kind, "loc": ["body", *loc], "msg": msg, "input": value}

    def response(self) -> Reply:
        return json_reply({"detail": [self.detail]}, 422)


def _beijing_time(hours: float) -> str:
    return (datetime.now(_BEIJING) + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")


def _default_text(code: str) -> str:
    text = _TEXTS.get(code)
    if text is None:
        try:
            text = error_for_code(code).message or ""
        except ValueError:
            text = "Internal error."
    # Quota resets are naive Beijing times in the near future (can1357/oh-my-pi#11014).
    week = _beijing_time(24 * 7)
    return text.replace("{reset}", _beijing_time(5)).replace("2099-01-01 00:00:00", week)


def _error_body(status: int, code: str, text: str | None, rid: str) -> dict[str, Any]:
    # Message format "[<code>][<text>][<request id>]", the code a string (KohakuTerrarium#73,
    # zai-org/zai-coding-plugins#15, macanderson/stella PR#2).
    message = f"[{code}][{text or _default_text(code)}][{rid}]"
    return {"type": _TYPES.get(status, "api_error"), "code": code, "message": message}


def _error(status: int, code: str, text: str | None = None) -> Reply:
    """``{"type":"error","error":{type, code, message},"request_id":rid}``. No Retry-After,
    not even on 529 (zai-org/GLM-5#87 asks Z.ai to add one)."""
    rid = new_id()
    body = {"type": "error", "error": _error_body(status, code, text, rid), "request_id": rid}
    return json_reply(body, status)


def _script_error(e: ScriptError) -> Reply:
    """A scripted error; the chat defaults (status, English text) become this endpoint's."""
    try:
        default: ScriptError | None = error_for_code(e.code)
    except ValueError:
        default = None
    status = e.status
    if default is not None and status == default.status:
        status = _STATUS.get(e.code, status)
    text = e.message
    if default is not None and text == default.message:
        text = None
    return _error(status, e.code, text)


# ---------------------------------------------------------------------------- the request


def _auth(request: Request) -> None:
    # Both `x-api-key` (zai-org/GLM-5#139, zai-org/feedback#789) and `Authorization: Bearer`
    # (Z.ai docs' ANTHROPIC_AUTH_TOKEN; quochuydev/test-history-lines glm.md) work, and
    # `anthropic-version` is optional (glm.md's Bearer curl omits it and gets 200).
    key = request.headers.get("x-api-key", "").strip() or bearer(request)
    check_key(request.app.state, key)


def _model(body: dict[str, Any]) -> tuple[str, ModelInfo]:
    model = body.get("model")
    if model is None:
        raise _Unprocessable("missing", ("model",), "Field required", body)
    if not isinstance(model, str):
        raise _Unprocessable("string_type", ("model",), "Input should be a valid string", model)
    name = model.strip().lower()
    # Claude ids are remapped server-side (claude-3-5-sonnet -> glm-4.6 in glm.md; the Coding Plan
    # maps to its current default). Ours: glm-4.7, and glm-4.5-air for haiku. No source shows
    # this endpoint rerouting legacy ids as the chat API's Coding Plan path does: it does not.
    if name.startswith("claude-") and "[" not in name:
        name = "glm-4.5-air" if "haiku" in name else "glm-4.7"
    # A `[1m]` context suffix is not stripped server-side: `glm-5.2[1m]` is an unknown model
    # (Kohaku-Lab/KohakuTerrarium#73), as is anything else missing from the table
    # (NousResearch/hermes-agent#7475).
    if name not in MODELS:
        raise _AnthropicError(400, "1211")
    return name, MODELS[name]


def _max_tokens(body: dict[str, Any], info: ModelInfo) -> int:
    mt = body.get("max_tokens")
    if mt is None:
        # zai-org/zai-coding-plugins#15: the server compares None with an int -> 500 api_error.
        raise _AnthropicError(
            500, "500", "'>' not supported between instances of 'int' and 'NoneType'"
        )
    if not isinstance(mt, int) or isinstance(mt, bool):
        raise _Unprocessable("int_type", ("max_tokens",), "Input should be a valid integer", mt)
    if mt < 1:
        raise _AnthropicError(400, "1210")
    return min(mt, info.max_output)  # no source shows a rejection above the cap; we clamp


def _thinking(body: dict[str, Any], info: ModelInfo) -> bool:
    """Whether the answer thinks; ``budget_tokens`` is accepted and ignored (hermes PR#91006)."""
    th = body.get("thinking")
    kind = th.get("type") if isinstance(th, dict) else None
    if th is not None and kind not in ("enabled", "disabled", "adaptive"):
        msg = "Input tag does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'"
        raise _Unprocessable("union_tag_invalid", ("thinking",), msg, th)
    if kind == "disabled" and info.thinking == "always":
        # farion1231/cc-switch#6737 (CN and intl Anthropic hosts): glm-5.3 cannot stop thinking.
        raise _AnthropicError(400, "1210", ALWAYS_THINKS_ZH)
    # Thinking blocks come only when thinking is enabled (OmniRoute's glm executor); `adaptive`
    # works on glm-5.x (hermes-agent PR#91006). An always-thinking model thinks on a bare request
    # too (zai-org/GLM-5#139 sent none and got 200).
    return info.thinking == "always" or (
        kind in ("enabled", "adaptive") and info.thinking != "none"
    )


def _tools(body: dict[str, Any], request: Request) -> list[dict[str, Any]]:
    """The custom tools, as chat function tools (what scenarios and the default answer read)."""
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _Unprocessable("list_type", ("tools",), "Input should be a valid list", tools)
    out: list[dict[str, Any]] = []
    for i, t in enumerate(tools):
        if not isinstance(t, dict):
            msg = "Input should be a valid dictionary or object to extract fields from"
            raise _Unprocessable("model_attributes_type", ("tools", i), msg, t)
        kind = t.get("type")
        if isinstance(kind, str) and kind.startswith(_SERVER_TOOLS):
            # farion1231/cc-switch#3090: Claude Code's web search tool is a 400/1210 unless the
            # URL carries `?beta=true` (which Claude Code adds by default).
            if kind.startswith("web_search") and request.query_params.get("beta") != "true":
                raise _AnthropicError(400, "1210")
            continue
        name = t.get("name")
        if not isinstance(name, str):
            # cc-switch#3863: an OpenAI-shaped tool fails the FastAPI schema with a 422.
            raise _Unprocessable("missing", ("tools", i, "name"), "Field required", t)
        fn = {
            "name": name,
            "description": t.get("description") or "",
            "parameters": t.get("input_schema") or {},
        }
        out.append({"type": "function", "function": fn})
    return out


def _blocks(content: Any, i: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _Unprocessable(
            "list_type", ("messages", i, "content"), "Input should be a valid list", content
        )
    for j, b in enumerate(content):
        if not isinstance(b, dict) or not isinstance(b.get("type"), str):
            raise _Unprocessable(
                "missing", ("messages", i, "content", j, "type"), "Field required", b
            )
    return content


def _image(info: ModelInfo) -> dict[str, Any]:
    if not info.vision:
        # What /api/anthropic answers to an image for a text model is unknown (undocumented, no
        # capture in the notes); this mirrors the chat endpoint's 1210 (farion1231/cc-switch#6836,
        # TriDefender/zcode-api PR#26). glm-5.3-flash and the *v models take images.
        raise _AnthropicError(400, "1210", _IMAGE_ERROR)
    return {"type": "image_url", "image_url": {"url": "image"}}


def _user(blocks: list[dict[str, Any]], info: ModelInfo) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for b in blocks:
        kind = b["type"]
        if kind == "text":  # an empty text is accepted: "不能为空" is only seen on the chat API
            parts.append({"type": "text", "text": str(b.get("text", ""))})
        elif kind == "image":
            parts.append(_image(info))
        elif kind == "tool_result":
            inner = b.get("content")
            if isinstance(inner, list) and any(
                isinstance(x, dict) and x.get("type") == "image" for x in inner
            ):
                _image(info)
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": str(b.get("tool_use_id", "")),
                    "content": text_of(inner),
                }
            )
        # document, search_result, ...: no evidence either way; accepted and ignored
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    reasoning, text, calls = [], [], []
    for b in blocks:
        kind = b["type"]
        if kind == "thinking":
            reasoning.append(str(b.get("thinking", "")))
        elif kind == "text":
            text.append(str(b.get("text", "")))
        elif kind == "tool_use":
            args = b.get("input", {})
            if not isinstance(args, dict):
                # zai-org/zai-coding-plugins#14: a history tool_use whose input is not an object
                # (GLM-5.1 itself sometimes emits an array) crashes the server: 500.
                raise _AnthropicError(
                    500, "500", "'ClaudeContentBlockToolResult' object has no attribute 'id'"
                )
            fn = {"name": str(b.get("name", "")), "arguments": _encode(args).decode()}
            calls.append({"id": str(b.get("id", "")), "type": "function", "function": fn})
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
    if reasoning:
        msg["reasoning_content"] = "".join(reasoning)
    if calls:
        msg["tool_calls"] = calls
    return msg


def _to_chat(body: dict[str, Any], request: Request) -> tuple[ModelInfo, dict[str, Any]]:
    """Check the request like Z.ai does; the chat-shaped body the answer is computed from."""
    model, info = _model(body)
    max_tokens = _max_tokens(body, info)
    think = _thinking(body, info)
    tools = _tools(body, request)
    raw = body.get("messages")
    if raw is None:
        raise _Unprocessable("missing", ("messages",), "Field required", body)
    if not isinstance(raw, list):
        raise _Unprocessable("list_type", ("messages",), "Input should be a valid list", raw)
    if not raw:
        raise _AnthropicError(400, "1213")
    msgs: list[dict[str, Any]] = []
    if body.get("system"):
        msgs.append({"role": "system", "content": text_of(body["system"])})
    for i, m in enumerate(raw):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            raise _Unprocessable(
                "literal_error",
                ("messages", i, "role"),
                "Input should be 'user' or 'assistant'",
                role,
            )
        blocks = _blocks(m.get("content"), i)
        msgs += _user(blocks, info) if role == "user" else [_assistant(blocks)]
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
    ):
        raise _Unprocessable(
            "list_type", ("stop_sequences",), "Input should be a valid list", stops
        )
    return info, {
        "model": model,
        "messages": msgs,
        "tools": tools,
        "max_tokens": max_tokens,
        "stop": stops,
        "thinking": {"type": "enabled" if think else "disabled"},
        # streamed tool calls always come as input_json_delta fragments
        "tool_stream": body.get("stream") is True,
    }


# ---------------------------------------------------------------------------- the answer


def _stop_sequence(script: Script, ctx: Context, stops: list[str] | None) -> str | None:
    """The stop sequence that ended the text, if any (:func:`~.answer.answer` only cuts at it)."""
    text = (script.text if script.has_content else default_script_for(ctx).text) or ""
    hits = [(text.index(s), s) for s in stops or () if s and s in text]
    return min(hits)[1] if hits else None


def _usage(ans: Answer) -> dict[str, int]:
    # Non-stream and final message_delta usage: input, output and cache reads; never
    # cache_creation_input_tokens (cc-switch src-tauri/src/proxy/usage/parser.rs, glm.md).
    # input_tokens excludes the cache reads, as in Anthropic's API (no source says otherwise).
    u = ans.usage
    cached = u["prompt_tokens_details"]["cached_tokens"]
    return {
        "input_tokens": u["prompt_tokens"] - cached,
        "output_tokens": u["completion_tokens"],
        "cache_read_input_tokens": cached,
    }


def _signature(thinking: str) -> str:
    # Z.ai does not produce Anthropic's signatures (llxprt-code PR#1636): an opaque hex digest.
    return hashlib.blake2b(thinking.encode(), digest_size=16).hexdigest()


def _tool_input(args: str) -> Any:
    try:
        return json.loads(args)  # an array stays one (zai-coding-plugins#14: GLM emits those)
    except ValueError:
        return {}  # unparsable (cut) arguments: empty input (qbit-ai/qbit PR#149)


class _Outcome(msgspec.Struct):
    stop_reason: str
    stop_sequence: str | None
    failure: tuple[str, str] | None  # (error type, code) of a mid-answer failure


def _outcome(ans: Answer, script: Script, ctx: Context, chat: dict[str, Any]) -> _Outcome:
    failure = _FAILURES.get(ans.finish)
    seq = _stop_sequence(script, ctx, chat["stop"]) if ans.finish == "stop" else None
    reason = "stop_sequence" if seq else _STOP_REASONS.get(ans.finish, ans.finish)
    return _Outcome(reason, seq, failure)


def _message(ans: Answer, rid: str, model: str, out: _Outcome, signatures: bool) -> bytes:
    content: list[dict[str, Any]] = []
    reasoning = "".join(v for k, v in ans.pieces if k == "reasoning")
    if reasoning:
        block = {"type": "thinking", "thinking": reasoning}
        if signatures:
            block["signature"] = _signature(reasoning)
        content.append(block)
    text = "".join(v for k, v in ans.pieces if k == "content")
    if text:
        content.append({"type": "text", "text": text})
    for cid, name, args in ans.calls:
        content.append({"type": "tool_use", "id": cid, "name": name, "input": _tool_input(args)})
    return _encode(
        {
            "id": rid,  # not msg_...: the request id style (glm.md, 20251013104553f6d8961e92814310)
            "type": "message",
            "role": "assistant",
            "model": model,  # the resolved GLM model, also for claude-* requests (glm.md)
            "content": content,
            "stop_reason": out.stop_reason,
            "stop_sequence": out.stop_sequence,
            "usage": _usage(ans),
        }
    )


def _event(data: dict[str, Any]) -> bytes:
    # `event:` always equals the data's type. No `ping` events: no source shows any.
    return b"event: %s\ndata: %s\n\n" % (data["type"].encode(), _encode(data))


def _delta(index: int, kind: bytes, key: bytes, value: str) -> bytes:
    return (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
        b'"delta":{"type":"%s","%s":%s}}\n\n' % (index, kind, key, _encode(value))
    )


def _events(ans: Answer, rid: str, model: str, out: _Outcome, signatures: bool) -> list[bytes]:
    """All SSE events, pre-encoded, for :class:`_SSEStream`."""
    # zai-org/GLM-5#139: message_start's usage is always zero; the real counts come only in the
    # final message_delta.
    start: dict[str, Any] = {
        "id": rid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    events = [_event({"type": "message_start", "message": start})]
    index, open_kind, thinking = -1, "", ""

    def close() -> None:
        if open_kind == "thinking" and signatures:
            events.append(_delta(index, b"signature_delta", b"signature", _signature(thinking)))
        events.append(_event({"type": "content_block_stop", "index": index}))

    def open_block(block: dict[str, Any]) -> None:
        nonlocal index, open_kind
        if open_kind:
            close()
        index, open_kind = index + 1, block["type"]
        events.append(
            _event({"type": "content_block_start", "index": index, "content_block": block})
        )

    for kind, val in ans.pieces:
        if kind == "reasoning":
            if open_kind != "thinking":
                open_block(
                    {
                        "type": "thinking",
                        "thinking": "",
                        **({"signature": ""} if signatures else {}),
                    }
                )
            thinking += val
            events.append(_delta(index, b"thinking_delta", b"thinking", val))
        elif kind == "content":
            if open_kind != "text":
                open_block({"type": "text", "text": ""})
            events.append(_delta(index, b"text_delta", b"text", val))
        elif kind == "tool_start":
            cid, name, _ = ans.calls[val]
            open_block({"type": "tool_use", "id": cid, "name": name, "input": {}})
        elif kind == "tool_args":
            events.append(_delta(index, b"input_json_delta", b"partial_json", val[1]))
        # "tool_whole" does not occur: streaming requests use tool_stream internally
    if ans.cut:  # the connection just ends
        return events
    if out.failure is not None:
        # An error inside the 200 stream: `event: error`, then the stream ends (no closing events,
        # no message_stop) — llm-simple-router commit db72374 (HTTP 200, SSE error, code 1234).
        err_type, code = out.failure
        err = _error_body(400, code, None, rid) | {"type": err_type}
        events.append(_event({"type": "error", "error": err}))
        return events
    if open_kind:
        close()
    delta = {"stop_reason": out.stop_reason, "stop_sequence": out.stop_sequence}
    events.append(_event({"type": "message_delta", "delta": delta, "usage": _usage(ans)}))
    events.append(_event({"type": "message_stop"}))
    return events


# ---------------------------------------------------------------------------- endpoints


async def messages(request: Request) -> ASGIApp:
    """``POST /api/anthropic/v1/messages``."""
    st = request.app.state
    try:
        body = await record_body(request)
        _auth(request)
        if not isinstance(body, dict):
            msg = "Input should be a valid dictionary or object to extract fields from"
            raise _Unprocessable("model_attributes_type", (), msg, body)
        info, chat = _to_chat(body, request)
        prompt, ctx, script = prepare(request, chat, info)
    except _GlmError as exc:  # authentication, 1261, a bad script
        return _error(exc.status, exc.code, exc.text)
    except _AnthropicError as exc:
        return _error(exc.status, exc.code, exc.text)
    except _Unprocessable as exc:
        return exc.response()
    if not await still_there(request, st.latency):
        return asgi.gave_up()  # the caller gave up while the "model" was still queued
    if script.error is not None:
        return _script_error(script.error)
    streaming = body.get("stream") is True
    ans = answer(script, ctx, chat, info, prompt, streaming=streaming, filler="")
    out = _outcome(ans, script, ctx, chat)
    rid, model, signatures = new_id(), chat["model"], bool(st.thinking_signatures)
    if streaming:
        return asgi.SSEStream(st, _events(ans, rid, model, out, signatures), script.delay)
    if script.delay > 0:
        await anyio.sleep(script.delay * len(ans.pieces))
    if out.failure is not None:  # no stream to carry it: an error answer
        code = out.failure[1]
        return _error(_STATUS.get(code, error_for_code(code).status), code)
    data = _message(ans, rid, model, out, signatures)
    return asgi.PartialBody(data) if ans.cut else Reply(data)


async def count_tokens(request: Request) -> Reply:
    """``POST /api/anthropic/v1/messages/count_tokens``."""
    try:
        await record_body(request)
        _auth(request)
    except _GlmError as exc:
        return _error(exc.status, exc.code)
    # kolega-ai/kolega-code PR#613: Z.ai answers 0 whatever the request, so clients count locally.
    return Reply(b'{"input_tokens":0}')
