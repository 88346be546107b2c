"""The simulator's per-key limits: requests in flight (1302) and spent usage limits (1308/1310,
1316-1321).

Z.ai counts the requests a key has in flight; one too many is answered at once with
``429`` and code ``1302`` (wire-specs A.11/A.12; kaitranntt/ccs#536 body
``{"error":{"code":"1302","message":"Rate limit reached for requests"}}``). A key whose
5-hour or weekly window is spent gets ``429``/``1308`` or ``1310`` with the reset as a
naive Beijing time in the message (continuedev/continue#13195: "Usage limit reached for
5 hour. Your limit will reset at 2026-08-27 21:31:39"; zai-org/feedback#316 for 1310).

This is ASGI middleware around the simulator app, so the count covers a whole answer,
a stream until its last byte. Settings and counters live on ``app.state``:

- ``concurrency``: slots per key for every key (``None``: unlimited);
  ``key_concurrency``: per-key overrides;
- ``spent_keys``: key -> ``(code, reset)``; ``reset`` an aware datetime;
- ``quota_limits``: key -> the ``limits`` its ``/api/monitor/usage/quota/limit`` shows;
- ``in_flight`` / ``peak_in_flight`` (Counters by key), ``rejected_1302`` and
  ``rejected_quota`` for tests.
"""

from __future__ import annotations

import collections
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec

from glmbridge_server.simulator.asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ["QUOTA_LIMIT_PATH", "KeyLimits", "init_limits", "quota_message", "reset_limits"]

BEIJING = timezone(timedelta(hours=8))
# Texts (English, chat endpoint) with the reset time; see the module docstring.
_QUOTA_TEXT = {
    "1308": "Usage limit reached for 5 hour. Your limit will reset at {reset}",
    "1310": "Weekly/Monthly Limit Exhausted. Your limit will reset at {reset}",
    # 1316-1321 (September 2026) "name a reset" too (tetsuo-ai/agenc-core PR#2491); their
    # exact texts are not published: ours say which limit and when it resets.
    **{
        c: f"Usage limit reached ({c}). Your limit will reset at {{reset}}"
        for c in ("1316", "1317", "1318", "1319", "1320", "1321")
    },
}
# The CN wording on the Anthropic endpoint (dirge-code/dirge#818).
_QUOTA_TEXT_CN = {"1308": "已达到 5 小时的使用上限。您的限额将在 {reset} 重置。"}
_CONCURRENCY_TEXT = "Rate limit reached for requests"  # kaitranntt/ccs#536
_PATHS = ("/chat/completions", "/v1/messages")
QUOTA_LIMIT_PATH = "/api/monitor/usage/quota/limit"


def init_limits(state: Any) -> None:
    """Default settings and fresh counters on the simulator's ``app.state``."""
    state.concurrency = None
    state.key_concurrency = {}
    state.spent_keys = {}
    state.in_flight = collections.Counter()
    state.peak_in_flight = collections.Counter()
    state.rejected_1302 = state.rejected_quota = 0
    state.quota_limits = {}
    state.quota_polls = 0


def reset_limits(state: Any) -> None:
    """Back to no limits (between tests); requests still in flight keep being counted."""
    state.concurrency = None
    state.key_concurrency = {}
    state.spent_keys = {}
    state.peak_in_flight.clear()
    state.rejected_1302 = state.rejected_quota = 0
    state.quota_limits = {}
    state.quota_polls = 0


def quota_message(code: str, reset: datetime, *, chinese: bool = False) -> str:
    """Z.ai's text for a spent window, the reset as naive Beijing time."""
    text = (_QUOTA_TEXT_CN if chinese else {}).get(code) or _QUOTA_TEXT[code]
    return text.format(reset=reset.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"))


def _key(scope: Scope) -> str:
    headers: dict[bytes, bytes] = dict(scope.get("headers") or ())
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    if key:
        return key
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class KeyLimits:
    """ASGI middleware enforcing the per-key limits above."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path == QUOTA_LIMIT_PATH:
            await _quota_limits(scope, send)
            return
        if scope["type"] != "http" or scope["method"] != "POST" or not path.endswith(_PATHS):
            await self.app(scope, receive, send)
            return
        st = scope["app"].state
        key = _key(scope)
        anthropic = path.endswith("/v1/messages")
        spent = st.spent_keys.get(key)
        if spent is not None:
            code, reset = spent
            text = quota_message(code, reset, chinese=anthropic and code in _QUOTA_TEXT_CN)
            st.rejected_quota += 1
            await _reject(scope, send, anthropic, code, text)
            return
        limit = st.key_concurrency.get(key, st.concurrency)
        if limit is not None and st.in_flight[key] >= limit:
            st.rejected_1302 += 1
            await _reject(scope, send, anthropic, "1302", _CONCURRENCY_TEXT)
            return
        st.in_flight[key] += 1
        st.peak_in_flight[key] = max(st.peak_in_flight[key], st.in_flight[key])
        counted = True

        def done() -> None:
            nonlocal counted
            if counted:
                counted = False
                st.in_flight[key] -= 1

        async def send_counted(message: Message) -> None:
            # The request is over for the upstream once its last byte is on its way.
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done()
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            done()


async def _quota_limits(scope: Scope, send: Send) -> None:
    """Z.ai console's quota endpoint: HTTP 200 whatever happens; the envelope says whether
    the key was good (caidaoli/ccLoad PR#117). ``app.state.quota_limits``: key -> the
    ``limits`` list; a key not in it gets an empty 0 % answer, a missing key a failure."""
    st = scope["app"].state
    headers: dict[bytes, bytes] = dict(scope.get("headers") or ())
    key = headers.get(b"authorization", b"").decode("latin-1").removeprefix("Bearer ").strip()
    body: dict[str, Any]
    if not key:
        body = {"code": 1001, "msg": "token missing", "success": False}
    else:
        limits = st.quota_limits.get(key, [])
        body = {"code": 200, "msg": "Operation successful", "success": True,
                "data": {"limits": limits, "level": "pro"}}  # fmt: skip
    st.quota_polls += 1
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": msgspec.json.encode(body)})


async def _reject(scope: Scope, send: Send, anthropic: bool, code: str, text: str) -> None:
    """A 429 in the endpoint's error shape (no Retry-After: Z.ai sends none)."""
    body: dict[str, Any]
    if anthropic:
        rid = "20261201000000" + "0" * 16
        inner = {"type": "rate_limit_error", "code": code, "message": f"[{code}][{text}][{rid}]"}
        body = {"type": "error", "error": inner, "request_id": rid}
    else:
        body = {"error": {"code": code, "message": text}}
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": msgspec.json.encode(body)})
