"""Reading a simulated request: the recorded body, the key, and the script that answers it.

Shared by both endpoints (:mod:`~.chat`, :mod:`~.anthropic`).
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from glmbridge_server.simulator.asgi import Request, wait_unless_disconnected
from glmbridge_server.simulator.catalog import ModelInfo
from glmbridge_server.simulator.rules import _estimate, _GlmError, _Prompt, _prompt_cache
from glmbridge_server.simulator.scripts import (
    Context,
    Script,
    build_scenario,
    context_from_request,
    find_directive,
)

__all__ = [
    "bearer",
    "check_key",
    "new_id",
    "prepare",
    "read_json",
    "record_body",
    "select",
    "still_there",
]


def new_id() -> str:
    """A request id. Observed shape: 14-digit local timestamp + 16 hex, e.g.
    20250926190543de74b873b8e04ebc."""
    return time.strftime("%Y%m%d%H%M%S") + os.urandom(8).hex()


def check_key(st: Any, key: str) -> None:
    """No key 401/1001; a key in ``invalid_keys`` 401/1002, in ``quota_keys`` 429/1113."""
    if not key:
        raise _GlmError("1001")
    if key in st.invalid_keys:
        raise _GlmError("1002")
    if key in st.quota_keys:
        raise _GlmError("1113")


def bearer(request: Request) -> str:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def select(request: Request, ctx: Context, directive_text: str) -> Script:
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


async def record_body(request: Request) -> Any:
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


async def read_json(request: Request) -> dict[str, Any]:
    """Record the body, check auth, decode; GLM checks auth before parsing."""
    body = await record_body(request)
    check_key(request.app.state, bearer(request))
    if not isinstance(body, dict):
        raise _GlmError("1214", "request body")
    return body


def prepare(
    request: Request, body: dict[str, Any], info: ModelInfo
) -> tuple[_Prompt, Context, Script]:
    """Count the chat-shaped ``body``'s prompt (1261 past the window, its cached prefix) and
    pick its script (a bad one is 1210 saying why)."""
    prompt = _estimate(body)
    if prompt.tokens + prompt.image + prompt.video > info.context:
        raise _GlmError("1261")
    prompt.cached = _prompt_cache(request.app.state, body, prompt)
    ctx, directive_text = context_from_request(body)
    try:
        script = select(request, ctx, directive_text)
    except ValueError as exc:
        raise _GlmError("1210", message=f"Simulator: {exc}") from None
    return prompt, ctx, script


async def still_there(request: Request, seconds: float) -> bool:
    """Sleep ``seconds`` of "model" time; ``False`` (counted in ``cancelled``) if the caller
    left meanwhile."""
    if seconds <= 0 or await wait_unless_disconnected(request, seconds):
        return True
    request.app.state.cancelled += 1
    return False
