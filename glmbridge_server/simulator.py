"""A faithful simulator of Z.ai GLM's OpenAI-style chat API (wire-specs section A).

It backs the server's ``--mock`` mode and the end-to-end tests. Behaviour per request is chosen by
a :class:`Script` (header ``x-sim-script``/``x-sim-scenario``, a ``[[sim:...]]`` directive in the
last user message, ``app.state.script_queue``, or a deterministic default answer); see
``docs/simulator.md``. Wire quirks reproduced on purpose: no ``object`` field, ``id`` ==
``request_id``, ``"role":"assistant"`` in every text delta, usage only in the last chunk, one
chunk per whole tool call each already carrying ``finish_reason``, mid-stream failures as
finish reasons, string business codes in error bodies. The same app also serves Z.ai's
Anthropic-compatible endpoint (``/api/anthropic/v1/messages``, same scripts): see
:mod:`glmbridge_server._sim_anthropic`.

Independent of ``glmbridge`` (it models the upstream, so it must not share the converters' bugs).
"""

from __future__ import annotations

import collections
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from glmbridge_server import _sim_media, _sim_search
from glmbridge_server._sim_limits import KeyLimits, init_limits
from glmbridge_server._sim_rules import (
    _estimate,
    _GlmError,
    _model,
    _Prompt,
    _prompt_cache,
    _validate,
)
from glmbridge_server._sim_scripts import (
    MODELS,
    SCENARIOS,
    Context,
    ModelInfo,
    Script,
    ScriptError,
    ScriptToolCall,
    build_scenario,
    context_from_request,
    default_script_for,
    error_for_code,
    find_directive,
)

__all__ = [
    "MODELS",
    "SCENARIOS",
    "Script",
    "ScriptError",
    "ScriptToolCall",
    "create_simulator_app",
]

PREFIXES = ("", "/v4", "/paas/v4", "/api/paas/v4", "/api/coding/paas/v4")
_encode = msgspec.json.encode


def _error_response(status: int, code: str, message: str | None) -> Response:
    body = _encode({"error": {"code": code, "message": message or ""}})
    return Response(body, status_code=status, media_type="application/json")


def _new_id() -> str:
    # Observed shape: 14-digit local timestamp + 16 hex, e.g. 20250926190543de74b873b8e04ebc.
    return time.strftime("%Y%m%d%H%M%S") + os.urandom(8).hex()


# ---------------------------------------------------------------------------- validation


def _check_key(st: Any, key: str) -> None:
    """No key 401/1001; a key in ``invalid_keys`` 401/1002, in ``quota_keys`` 429/1113."""
    if not key:
        raise _GlmError("1001")
    if key in st.invalid_keys:
        raise _GlmError("1002")
    if key in st.quota_keys:
        raise _GlmError("1113")


def _bearer(request: Request) -> str:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def _select(request: Request, ctx: Context, directive_text: str) -> Script:
    """Pick the script: header, directive, queue, app default, built-in default."""
    st = request.app.state
    raw = request.headers.get("x-sim-script")
    if raw:
        try:
            return msgspec.json.decode(raw, type=Script)
        except msgspec.MsgspecError as exc:
            raise ValueError(f"invalid x-sim-script header: {exc}") from None
    name = request.headers.get("x-sim-scenario")
    if name:
        return build_scenario(name, ctx)
    directive = find_directive(directive_text)
    if directive is not None:
        try:
            script = (
                build_scenario(directive, ctx)
                if isinstance(directive, str)
                else msgspec.convert(directive, Script)
            )
        except msgspec.MsgspecError as exc:
            raise ValueError(f"invalid [[sim:{{...}}]] directive: {exc}") from None
        # A model cannot call tools it was not offered (e.g. Claude Code's side requests).
        return build_scenario("text", ctx) if script.tool_calls and not ctx.tools else script
    if st.script_queue:
        return _coerce(st.script_queue.popleft())
    return _coerce(st.default_script or Script())


def _coerce(script: Script | dict[str, Any]) -> Script:
    """Validate a pushed script; Struct init does not, and tests may nest plain dicts."""
    try:
        return msgspec.convert(msgspec.to_builtins(script), Script)
    except msgspec.MsgspecError as exc:
        raise ValueError(f"invalid queued script: {exc}") from None


@dataclass(slots=True)
class _Answer:
    reasoning: bool
    pieces: list[tuple[str, Any]]  # (kind, payload) fragments in wire order
    calls: list[tuple[str, str, str]]  # (id, name, arguments) after truncation
    finish: str
    cut: bool
    usage: dict[str, Any]


def _split(text: str, size: int, count: int | None) -> list[str]:
    if count:
        count = min(count, len(text)) or 1
        q, r = divmod(len(text), count)
        bounds = [i * q + min(i, r) for i in range(count + 1)]
        return [text[bounds[i] : bounds[i + 1]] for i in range(count)]
    return [text[i : i + size] for i in range(0, len(text), size)]


def _answer(
    script: Script,
    ctx: Context,
    body: dict[str, Any],
    info: ModelInfo,
    prompt: _Prompt,
    *,
    streaming: bool,
    filler: str = "\n\n",
) -> _Answer:
    if script.has_content:
        reasoning, text, calls = script.reasoning or "", script.text or "", script.tool_calls
    else:
        d = default_script_for(ctx)
        chosen = d.reasoning if script.reasoning is None else script.reasoning
        reasoning, text, calls = chosen or "", d.text or "", d.tool_calls
    thinking = (body.get("thinking") or {}).get("type", "enabled")
    if thinking == "disabled" or info.thinking == "none":
        reasoning = ""
    size = max(1, script.chunk_size)
    if script.chunk_count and len(text) < script.chunk_count:
        text += "".join(f" {i}" for i in range(script.chunk_count))  # pad so N chunks exist
    stop = body.get("stop")
    for word in [stop] if isinstance(stop, str) else stop or ():
        if word and word in text:
            text, calls = text[: text.index(word)], []
    args = [
        c.arguments if isinstance(c.arguments, str) else msgspec.json.encode(c.arguments).decode()
        for c in calls
    ]
    ids = [c.id or "call_" + os.urandom(12).hex() for c in calls]
    truncated = False
    if body.get("max_tokens"):  # reasoning, then text, then tool arguments consume max_tokens
        budget = body["max_tokens"] * 4

        def take(s: str) -> str:
            nonlocal budget, truncated
            truncated = truncated or len(s) > budget
            budget -= len(s)
            return s[: max(budget + len(s), 0)]

        reasoning, text = take(reasoning), take(text)
        kept: list[str] = []
        for a in args:
            if truncated or (budget <= 0 and a):  # generation ended before this call
                truncated = True
                break
            kept.append(take(a))
        args, calls = kept, calls[: len(kept)]
    pieces: list[tuple[str, Any]] = [("reasoning", f) for f in _split(reasoning, size, None)]
    content = text if text or not calls else filler  # GLM sends "\n\n" beside tool calls
    pieces += [("content", f) for f in _split(content, size, script.chunk_count)]
    if calls and streaming and body.get("tool_stream"):
        for i, a in enumerate(args):
            pieces.append(("tool_start", i))
            pieces += [("tool_args", (i, f)) for f in _split(a, size, None)]
    elif calls:
        # Without tool_stream each call comes whole in its own chunk, which already carries
        # finish_reason "tool_calls" (recorded from api.z.ai/api/coding/paas/v4, glm-4.5:
        # charmbracelet/fantasy zai-glm-4.5/multi_tool_streaming.yaml; zai-fidelity 3.5).
        pieces += [("tool_whole", i) for i in range(len(args))]
    finish = "length" if truncated else script.finish_reason or ("tool_calls" if calls else "stop")
    limit = script.fail_after_chunks
    if limit is not None and limit < len(pieces):
        pieces = pieces[:limit]
        if script.finish_reason in (None, "stop", "tool_calls"):
            finish = "network_error"
    cut = script.cut_after_chunks is not None and script.cut_after_chunks < len(pieces)
    if cut:
        pieces = pieces[: script.cut_after_chunks]
    # Calls that made it onto the wire (a failure may stop before or inside one).
    seen = {p[1] for p in pieces if p[0] in ("tool_start", "tool_whole")}
    n_calls = len(seen)
    out_args = [""] * n_calls
    for kind, payload in pieces:
        if kind == "tool_args":
            out_args[payload[0]] += payload[1]
        elif kind == "tool_whole":
            out_args[payload] = args[payload]
    out_calls = [(ids[i], calls[i].name, out_args[i]) for i in range(n_calls)]
    chars = sum(len(p[1]) for p in pieces if p[0] in ("reasoning", "content"))
    chars += sum(len(a) + len(n) for _, n, a in out_calls)
    completion = body["max_tokens"] if truncated else max(1, math.ceil(chars / 4))
    prompt_total = prompt.tokens + prompt.image + prompt.video
    p_tok = script.prompt_tokens if script.prompt_tokens is not None else prompt_total
    c_tok = script.completion_tokens if script.completion_tokens is not None else completion
    cached = script.cached_tokens if script.cached_tokens is not None else prompt.cached
    usage = {
        "prompt_tokens": p_tok,
        "completion_tokens": c_tok,
        "total_tokens": p_tok + c_tok,
        "prompt_tokens_details": {"cached_tokens": min(cached, p_tok)},
    }
    return _Answer(bool(reasoning), pieces, out_calls, finish, cut, usage)


def _call_json(i: int, call: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "id": call[0],
        "index": i,
        "type": "function",
        "function": {"name": call[1], "arguments": call[2]},
    }


def _body(ans: _Answer, rid: str, created: int, model: str) -> bytes:
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


def _chunks(ans: _Answer, rid: str, created: int, model: str) -> list[bytes]:
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
        else:  # one whole call per chunk, no role, finish already set (W45, see _answer)
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


class _SSEStream:
    """ASGI response streaming pre-encoded events; counts client disconnects."""

    def __init__(self, state: Any, chunks: list[bytes], delay: float) -> None:
        self.state, self.chunks, self.delay = state, chunks, delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = self.state
        st.active_streams += 1
        done = False
        try:
            async with anyio.create_task_group() as tg:

                async def watch() -> None:  # a disconnect cancels the producer at once
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(watch)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"text/event-stream;charset=UTF-8"),
                            (b"cache-control", b"no-cache"),
                        ],
                    }
                )
                for i, chunk in enumerate(self.chunks):
                    if i and self.delay > 0:
                        await anyio.sleep(self.delay)
                    elif i % 64 == 63:
                        await anyio.lowlevel.checkpoint()
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                done = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        except OSError:  # servers raise OSError subclasses on send to a vanished client
            pass
        finally:
            st.active_streams -= 1
            if not done:
                st.cancelled += 1


class _PartialBody:
    """ASGI response that sends half a JSON body and ends: a dropped non-stream connection."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2]})


# ---------------------------------------------------------------------------- endpoints


async def _record_body(request: Request) -> Any:
    """The decoded body (``None`` if not JSON), recorded in ``app.state.requests``."""
    st = request.app.state
    raw = await request.body()
    try:
        body: Any = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        body = None
    st.requests.append(body if body is not None else {"_raw": raw.decode("utf-8", "replace")})
    del st.requests[: -st.max_recorded_requests]
    return body


async def _read_json(request: Request) -> dict[str, Any]:
    """Record the body, check auth, decode; GLM checks auth before parsing."""
    body = await _record_body(request)
    _check_key(request.app.state, _bearer(request))
    if not isinstance(body, dict):
        raise _GlmError("1214", "request body")
    return body


async def _wait_unless_disconnected(request: Request, seconds: float) -> bool:
    """Sleep ``seconds``; ``False`` as soon as the client disconnects instead."""
    gone = False
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal gone
            while (await request.receive())["type"] != "http.disconnect":
                pass
            gone = True
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        await anyio.sleep(seconds)
        tg.cancel_scope.cancel()
    return not gone


async def _chat_coding(request: Request) -> Any:
    """The Coding Plan endpoint: only its plan's models (``_sim_rules._model``)."""
    return await _chat(request, coding=True)


async def _chat(request: Request, *, coding: bool = False) -> Any:
    st = request.app.state
    try:
        body = await _read_json(request)
        model, info = _model(body, coding=coding)
        _validate(body, info)
        prompt = _estimate(body)
        if prompt.tokens + prompt.image + prompt.video > info.context:
            raise _GlmError("1261")
        prompt.cached = _prompt_cache(st, body, prompt)
        ctx, directive_text = context_from_request(body)
        try:
            script = _select(request, ctx, directive_text)
        except ValueError as exc:
            return _error_response(400, "1210", f"Simulator: {exc}")
    except _GlmError as exc:
        return _error_response(exc.status, exc.code, exc.message)
    if st.latency > 0 and not await _wait_unless_disconnected(request, st.latency):
        st.cancelled += 1  # the caller gave up while the "model" was still queued
        return Response(status_code=499)
    if script.error is not None:
        e = script.error
        return _error_response(e.status, e.code, e.message or error_for_code(e.code).message)
    streaming = body.get("stream") is True
    ans = _answer(script, ctx, body, info, prompt, streaming=streaming)
    rid = body["request_id"] if isinstance(body.get("request_id"), str) else _new_id()
    if streaming:
        return _SSEStream(st, _chunks(ans, rid, int(time.time()), model), script.delay)
    delay = script.delay * len(ans.pieces)
    if delay > 0 and not await _wait_unless_disconnected(request, delay):
        st.cancelled += 1  # the caller gave up (or the server is stopping): stop "generating"
        return Response(status_code=499)
    data = _body(ans, rid, int(time.time()), model)
    if ans.cut:
        return _PartialBody(data)
    return Response(data, media_type="application/json")


# The tokenizer's model enum and message roles (docs.z.ai OpenAPI TokenizerRequest;
# zai-fidelity 1.5): anything else is rejected.
_TOKENIZER_MODELS = frozenset({"glm-4.6", "glm-4.6v", "glm-4.5"})


async def _tokenizer(request: Request) -> Response:
    try:
        body = await _read_json(request)
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
        return _error_response(exc.status, exc.code, exc.message)
    rid = body["request_id"] if isinstance(body.get("request_id"), str) else _new_id()
    usage = {
        "prompt_tokens": p.tokens,
        "image_tokens": p.image,
        "video_tokens": p.video,
        "total_tokens": p.tokens + p.image + p.video,
    }
    return Response(
        _encode({"id": rid, "created": int(time.time()), "request_id": rid, "usage": usage}),
        media_type="application/json",
    )


async def _health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def _sim_requests(request: Request) -> Response:
    st = request.app.state
    if request.method == "DELETE":
        n = len(st.requests)
        st.requests.clear()
        return Response(_encode({"cleared": n}), media_type="application/json")
    return Response(_encode(st.requests), media_type="application/json")


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status in (404, 405):
        # An unknown path is a plain Spring-style body, no business code:
        # {"timestamp":…,"status":404,"error":"Not Found","path":"/v4/v1/messages"}
        # (Wei-Shaw/sub2api#5892, 2026-08; zai-fidelity 4.11).
        body = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime()),
            "status": status,
            "error": "Not Found" if status == 404 else "Method Not Allowed",
            "path": request.url.path,
        }
        return Response(_encode(body), status_code=status, media_type="application/json")
    return _error_response(status, "500", "Internal error, please try again later.")


def create_simulator_app(
    *,
    default_script: Script | None = None,
    latency: float = 0.0,
    invalid_keys: Iterable[str] = (),
    quota_keys: Iterable[str] = (),
    max_recorded_requests: int = 200,
) -> Starlette:
    """Build the GLM simulator ASGI app.

    ``default_script`` replaces the built-in default behaviour; ``latency`` is slept before every
    chat answer (time to first byte); requests with a key in ``invalid_keys`` get 401/1002, keys in
    ``quota_keys`` 429/1113. State for tests on ``app.state``: ``requests`` (last received bodies),
    ``script_queue`` (deque of :class:`Script`, popped FIFO), ``cancelled`` and ``active_streams``,
    ``thinking_signatures`` (Anthropic mode: hex signatures on thinking blocks, ``False``: none);
    per-key concurrency and spent quota windows: :mod:`glmbridge_server._sim_limits`.
    """
    routes = [
        Route("/health", _health, methods=["GET"]),
        Route("/_sim/requests", _sim_requests, methods=["GET", "DELETE"]),
    ]
    for prefix in PREFIXES:
        chat = _chat_coding if "/coding/" in prefix else _chat
        routes.append(Route(f"{prefix}/chat/completions", chat, methods=["POST"]))
        routes.append(Route(f"{prefix}/tokenizer", _tokenizer, methods=["POST"]))
        routes.append(Route(f"{prefix}/web_search", _sim_search.search, methods=["POST"]))
    from glmbridge_server._sim_anthropic import ANTHROPIC_ROUTES  # (it imports this module)

    routes += _sim_media.media_routes(PREFIXES)  # media (issue 21)

    app = Starlette(
        routes=routes + ANTHROPIC_ROUTES,
        exception_handlers={HTTPException: _http_error},
        middleware=[Middleware(KeyLimits)],  # 1302 / 1308 / 1310 per key (_sim_limits)
    )
    st = app.state
    init_limits(st)
    st.default_script, st.latency = default_script, latency
    st.invalid_keys, st.quota_keys = set(invalid_keys), set(quota_keys)
    st.requests, st.max_recorded_requests = [], max(1, max_recorded_requests)
    st.script_queue = collections.deque()
    st.prefix_cache = collections.OrderedDict()
    st.cancelled = st.active_streams = 0
    st.thinking_signatures = True  # Anthropic mode: thinking blocks carry a hex signature
    st.search_quota, st.search_calls = None, 0  # the Web Search API (_sim_search)
    _sim_media.init_media(st)  # media (issue 21)
    return app
