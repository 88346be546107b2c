"""The simulated chat API: Z.ai GLM's ``/chat/completions`` and ``/tokenizer`` (wire-specs §A).

Wire quirks reproduced on purpose: no ``object`` field, ``id`` == ``request_id``,
``"role":"assistant"`` in every text delta, usage only in the last chunk, one chunk per whole
tool call each already carrying ``finish_reason``, mid-stream failures as finish reasons, string
business codes in error bodies. The answer itself comes from :mod:`~.answer`; the app from
:mod:`~.app`.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from glmbridge_server.simulator.answer import Answer, answer
from glmbridge_server.simulator.asgi import (
    ASGIApp,
    PartialBody,
    Reply,
    Request,
    SSEStream,
    gave_up,
    json_reply,
)
from glmbridge_server.simulator.catalog import MODELS, TIER_GATED
from glmbridge_server.simulator.intake import (
    bearer,
    check_key,
    new_id,
    prepare,
    read_json,
    still_there,
)
from glmbridge_server.simulator.rules import _estimate, _GlmError, _model, _validate
from glmbridge_server.simulator.scripts import error_for_code

__all__ = ["chat", "chat_coding", "error_reply", "model_list", "tokenizer"]

_encode = msgspec.json.encode


def error_reply(status: int, code: str, message: str | None) -> Reply:
    """GLM's error body: ``{"error": {"code": "<business code>", "message": …}}``."""
    return json_reply({"error": {"code": code, "message": message or ""}}, status)


def _call_json(i: int, call: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "id": call[0],
        "index": i,
        "type": "function",
        "function": {"name": call[1], "arguments": call[2]},
    }


def _body(ans: Answer, rid: str, created: int, model: str) -> bytes:
    reasoning = "".join(v for k, v in ans.pieces if k == "reasoning")
    msg: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(v for k, v in ans.pieces if k == "content"),
    }
    if ans.reasoning:
        msg["reasoning_content"] = "\n" + reasoning  # GLM's reasoning starts with a newline
    if ans.calls:
        msg["tool_calls"] = [_call_json(i, c) for i, c in enumerate(ans.calls)]
    return _encode(
        {
            "id": rid,
            "request_id": rid,
            "created": created,
            "model": model,
            "choices": [{"index": 0, "finish_reason": ans.finish, "message": msg}],
            "usage": ans.usage,
        }
    )


def _chunks(ans: Answer, rid: str, created: int, model: str) -> list[bytes]:
    """All SSE events, pre-encoded (a 2000-chunk stream costs one small encode per chunk)."""
    head = b'data: {"id":"%s","created":%d,"model":%s,"choices":[{"index":0,"delta":' % (
        rid.encode(),
        created,
        _encode(model),
    )
    null_tail = b',"finish_reason":null}]}\n\n'

    def event(delta: dict[str, Any], tail: bytes = null_tail) -> bytes:
        return head + _encode(delta) + tail

    first: dict[str, Any] = {"role": "assistant", "content": ""}
    if ans.reasoning:
        first["reasoning_content"] = "\n"
    out = [event(first)]
    for kind, val in ans.pieces:
        if kind == "reasoning":
            out.append(event({"role": "assistant", "reasoning_content": val}))
        elif kind == "content":
            out.append(event({"role": "assistant", "content": val}))
        elif kind == "tool_start":
            i = val
            out.append(
                event(
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "index": i,
                                "id": ans.calls[i][0],
                                "type": "function",
                                "function": {"name": ans.calls[i][1], "arguments": ""},
                            }
                        ],
                    }
                )
            )
        elif kind == "tool_args":
            out.append(
                event(
                    {
                        "role": "assistant",
                        "tool_calls": [{"index": val[0], "function": {"arguments": val[1]}}],
                    }
                )
            )
        else:  # one whole call per chunk, no role, finish already set (W45, see answer._pieces)
            out.append(
                event(
                    {"tool_calls": [_call_json(val, ans.calls[val])]},
                    b',"finish_reason":"tool_calls"}]}\n\n',
                )
            )
    if not ans.cut:
        tail = b',"finish_reason":%s}],"usage":%s}\n\n' % (_encode(ans.finish), _encode(ans.usage))
        out.append(event({"role": "assistant", "content": ""}, tail))
        out.append(b"data: [DONE]\n\n")
    return out


async def chat_coding(request: Request) -> ASGIApp:
    """The Coding Plan endpoint: only its plan's models (:func:`~.rules._model`)."""
    return await chat(request, coding=True)


async def chat(request: Request, *, coding: bool = False) -> ASGIApp:
    """``POST …/chat/completions``."""
    st = request.app.state
    try:
        body = await read_json(request)
        model, info = _model(body, coding=coding, plan=(st, bearer(request)))
        _validate(body, info)
        prompt, ctx, script = prepare(request, body, info)
    except _GlmError as exc:
        return error_reply(exc.status, exc.code, exc.message)
    if not await still_there(request, st.latency):
        return gave_up()  # the caller gave up while the "model" was still queued
    if script.error is not None:
        e = script.error
        return error_reply(e.status, e.code, e.message or error_for_code(e.code).message)
    streaming = body.get("stream") is True
    ans = answer(script, ctx, body, info, prompt, streaming=streaming)
    rid = body["request_id"] if isinstance(body.get("request_id"), str) else new_id()
    if streaming:
        return SSEStream(st, _chunks(ans, rid, int(time.time()), model), script.delay)
    if not await still_there(request, script.delay * len(ans.pieces)):
        return gave_up()  # the caller gave up (or the server is stopping): stop "generating"
    data = _body(ans, rid, int(time.time()), model)
    return PartialBody(data) if ans.cut else Reply(data)


# The tokenizer's model enum and message roles (docs.z.ai OpenAPI TokenizerRequest;
# zai-fidelity 1.5): anything else is rejected.
_TOKENIZER_MODELS = frozenset({"glm-4.6", "glm-4.6v", "glm-4.5"})


async def tokenizer(request: Request) -> Reply:
    """``POST …/tokenizer``."""
    try:
        body = await read_json(request)
        name, _ = _model(body)
        if name not in _TOKENIZER_MODELS:
            raise _GlmError("1214", "model")
        msgs = body.get("messages")
        if (
            not isinstance(msgs, list)
            or not msgs
            or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in msgs)
        ):
            raise _GlmError("1213", "messages")
        if any(m["role"] not in ("user", "system", "assistant") for m in msgs):
            raise _GlmError("1214", "messages.role")
        p = _estimate(body)
    except _GlmError as exc:
        return error_reply(exc.status, exc.code, exc.message)
    rid = body["request_id"] if isinstance(body.get("request_id"), str) else new_id()
    usage = {
        "prompt_tokens": p.tokens,
        "image_tokens": p.image,
        "video_tokens": p.video,
        "total_tokens": p.tokens + p.image + p.video,
    }
    return json_reply({"id": rid, "created": int(time.time()), "request_id": rid, "usage": usage})


async def model_list(request: Request) -> Reply:
    """``GET …/models`` (and ``/api/anthropic/v1/models``): the served models, without
    context metadata (PrimeIntellect-ai/prime-agent PR#1443; NousResearch/hermes-agent
    PR#90279). ``app.state.model_lists`` (``coding``, ``general``, ``anthropic``) replaces
    the defaults: the Coding Plan's two models and its tier-gated one, else every model."""
    try:
        check_key(request.app.state, request.headers.get("x-api-key", "") or bearer(request))
    except _GlmError as exc:
        return error_reply(exc.status, exc.code, exc.message)
    path = request.url.path
    surface = "coding" if "/coding/" in path else "anthropic" if "/anthropic/" in path else None
    lists: dict[str, list[str]] = request.app.state.model_lists
    ids = lists.get(surface or "general")
    if ids is None:
        ids = sorted(MODELS) if surface is None else ["glm-5.3", "glm-5.3-flash", *TIER_GATED]
    created = int(time.time())
    data = [{"id": i, "object": "model", "created": created, "owned_by": "z-ai"} for i in ids]
    return json_reply({"object": "list", "data": data})
