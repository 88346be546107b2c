"""Request screening: Host, Origin, the auth token and the body size limit.

:class:`SecurityMiddleware` is pure ASGI (a ``BaseHTTPMiddleware`` would buffer streamed
responses). In order, for every HTTP request:

1. **Host** (DNS rebinding): the ``Host`` header must name the bound address,
   ``localhost``, ``127.0.0.1``, ``::1`` or an ``allowed_hosts`` entry (any port). A
   server bound to every interface with an auth token accepts any Host: the token is
   then what protects it. Refused with ``403``.
2. **Origin** (CSRF): a request carrying ``Origin`` is refused (``403``) unless that exact
   origin is in ``allowed_origins`` (none by default; non-browser clients send no Origin).
   CORS preflights from an allowed origin are answered here.
3. **Token**: with ``auth_token`` set, everything but ``/health`` and ``GET``/``HEAD /``
   needs it as ``x-api-key`` or ``Authorization: Bearer`` (plus ``x-goog-api-key`` or
   ``?key=`` under ``/v1beta``), compared in constant time. Refused with ``401``.
4. **Body size**: a ``Content-Length`` over ``max_body_bytes`` is refused (``413``) before
   anything is read; a chunked body is cut off at the first chunk past the limit.

Refusals use the native error body of the protocol the path belongs to (Anthropic,
OpenAI or Gemini), so each SDK shows a proper error.
"""

from __future__ import annotations

import hmac
import re
from typing import Any
from urllib.parse import parse_qsl

from glmbridge.doors import protocol_for_path
from glmbridge.errors import ClientRequestError, ErrorKind
from glmbridge.protocols import anthropic
from glmbridge.protocols.gemini import errors as gemini_errors
from glmbridge.protocols.openai import errors as openai_errors
from glmbridge_server.call.asgi import HttpMiddleware, Message, Receive, Scope, Send
from glmbridge_server.edge.state import record_in
from glmbridge_server.settings import Settings

__all__ = [
    "BodyTooLarge",
    "SecurityMiddleware",
    "bind_refusal",
    "native_error",
    "protocol_for_path",
    "protocol_for_request",
]

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_PREFLIGHT_METHODS = "GET, POST, OPTIONS"


class BodyTooLarge(ClientRequestError):
    """The request body exceeded ``max_body_bytes`` while it was being received."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"request body exceeds the {limit}-byte limit (max_body_bytes)",
            kind=ErrorKind.REQUEST_TOO_LARGE,
        )


def bind_refusal(settings: Settings) -> str | None:
    """Why the server must not start with these settings, or ``None``."""
    if settings.is_loopback or settings.auth_token:
        return None
    return (
        f"refusing to listen on {settings.host}: a non-loopback address is reachable from "
        "other machines, and without an auth token anyone there could use your API keys. "
        "Set GLMBRIDGE_AUTH_TOKEN (or auth_token in the config file), or bind 127.0.0.1. "
        "See docs/security.md."
    )


def protocol_for_request(path: str, headers: dict[str, str], query: bytes) -> str:
    """:func:`protocol_for_path`, except that a Google client (``x-goog-api-key``,
    ``x-goog-api-client`` or ``?key=``) on the shared ``/v1/models`` is a Gemini one
    (google-genai lists models there)."""
    protocol = protocol_for_path(path)
    if protocol == "anthropic" and (path == "/v1/models" or path.startswith("/v1/models/")):
        google = "x-goog-api-key" in headers or "x-goog-api-client" in headers
        if google or b"key=" in query:
            return "gemini"
    return protocol


def native_error(
    protocol: str, kind: ErrorKind, message: str, *, request_id: str | None, status: int
) -> bytes:
    """An error body in ``protocol``'s own shape (admin endpoints use Anthropic's)."""
    err = ClientRequestError(message, kind=kind, status_hint=status)
    if protocol == "openai":
        return openai_errors.encode_error(err, request_id=request_id)[1]
    if protocol == "gemini":
        return gemini_errors.encode_error(err, request_id=request_id)[1]
    return anthropic.encode_error(err, request_id=request_id)[1]


# RFC 9110 Host: uri-host [":" port], where uri-host is an IP-literal ("[" IPv6 "]"), an
# IPv4 address or a registered name. Anything else ("[::1]evil.com", "localhost:1@evil.com")
# is malformed, not a name to match leniently.
_HOST = re.compile(
    r"(?:\[(?P<literal>[0-9a-f:.]+)\]|(?P<name>[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?\.?))"
    r"(?::[0-9]{1,5})?"
)


def _host_name(value: str) -> str:
    """``Host`` header value → lower-case host without port or brackets; "" if malformed."""
    match = _HOST.fullmatch(value.strip().lower())
    if match is None:
        return ""
    return match["literal"] or match["name"]


def host_allowed(settings: Settings, host_header: str) -> bool:
    """Whether a request's ``Host`` header is acceptable (DNS-rebinding protection)."""
    if settings.is_wildcard and settings.auth_token:
        return True
    if "*" in settings.allowed_hosts:
        return True
    host = _host_name(host_header).rstrip(".")
    if not host:
        return False
    bound = settings.host.strip("[]").lower()
    return host in _LOOPBACK_NAMES or host == bound or host in settings.allowed_hosts


def _token_ok(settings: Settings, scope: Scope, headers: dict[str, str], gemini: bool) -> bool:
    token = settings.auth_token
    if not token:
        return True
    presented = [headers.get("x-api-key", "")]
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        presented.append(credentials.strip())
    if gemini:
        presented.append(headers.get("x-goog-api-key", ""))
        query = scope.get("query_string", b"").decode("latin-1")
        presented.extend(v for k, v in parse_qsl(query) if k == "key")
    expected = token.encode()
    # Every candidate is compared in constant time; no early exit on a prefix match.
    return any(hmac.compare_digest(p.encode(), expected) for p in presented if p)


_NO_TOKEN = (
    "missing or invalid auth token: send the server's GLMBRIDGE_AUTH_TOKEN as "
    "x-api-key or Authorization: Bearer"
)


def _host_refusal(settings: Settings, host: str, hosts: int) -> tuple[ErrorKind, int, str] | None:
    """Why the ``Host`` header(s) are refused (DNS rebinding), or ``None``."""
    if hosts > 1:
        return ErrorKind.INVALID_REQUEST, 400, "more than one Host header"
    if host_allowed(settings, host):
        return None
    message = (
        f"Host {host[:100]!r} is not allowed (DNS-rebinding protection); "
        "add it to allowed_hosts if you really reach the server under this name"
    )
    return ErrorKind.PERMISSION, 403, message


def _open_path(method: str, path: str) -> bool:
    """Endpoints reachable without the token: liveness only, nothing sensitive."""
    return path == "/health" or (path == "/" and method in ("GET", "HEAD"))


class SecurityMiddleware(HttpMiddleware):
    """Applies the Host, Origin, token and body-size rules (see the module docstring)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = record_in(scope)
        settings = record.settings
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        hosts = sum(1 for k, _ in scope["headers"] if k == b"host")
        path: str = scope["path"]
        protocol = protocol_for_request(path, headers, scope.get("query_string", b""))
        record.protocol = protocol
        method: str = scope["method"]

        async def refuse(kind: ErrorKind, status: int, message: str, **extra: str) -> None:
            record.error_type = kind.value
            body = native_error(
                protocol, kind, message, request_id=record.request_id or None, status=status
            )
            raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
            raw += [(k.encode(), v.encode()) for k, v in extra.items()]
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": body})

        host_refusal = _host_refusal(settings, headers.get("host", ""), hosts)
        if host_refusal is not None:
            await refuse(*host_refusal)
            return
        origin = headers.get("origin")
        if origin is not None:
            if origin.lower().rstrip("/") not in settings.allowed_origins:
                await refuse(
                    ErrorKind.PERMISSION,
                    403,
                    f"Origin {origin[:100]!r} is not allowed (cross-site request protection); "
                    "add it to allowed_origins to let that web page call the server",
                )
                return
            if method == "OPTIONS" and "access-control-request-method" in headers:
                await _preflight(send, origin, headers)
                return
            send = _with_cors(send, origin)
        gemini = protocol == "gemini"
        if not _open_path(method, path) and not _token_ok(settings, scope, headers, gemini):
            hint = " (or x-goog-api-key, ?key=)" if gemini else ""
            await refuse(ErrorKind.AUTHENTICATION, 401, _NO_TOKEN + hint,
                         **{"www-authenticate": 'Bearer realm="glmbridge"'})  # fmt: skip
            return
        await self._limited(scope, receive, send, settings.max_body_bytes, headers, refuse)

    async def _limited(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        limit: int,
        headers: dict[str, str],
        refuse: Any,
    ) -> None:
        """Run the app with the body-size limit enforced on ``receive``."""
        too_large = f"request body exceeds the {limit}-byte limit (max_body_bytes)"
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            # Refused before reading a byte; closing the connection drops the unread body.
            await refuse(ErrorKind.REQUEST_TOO_LARGE, 413, too_large, connection="close")
            return
        received = 0
        tripped = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, tripped
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    tripped = True
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if tripped:  # the rest of the body is not wanted: do not keep the connection
                    message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await refuse(ErrorKind.REQUEST_TOO_LARGE, 413, too_large, connection="close")


async def _preflight(send: Send, origin: str, headers: dict[str, str]) -> None:
    """Answer a CORS preflight from an allowed origin."""
    allow_headers = headers.get("access-control-request-headers", "")
    raw = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", _PREFLIGHT_METHODS.encode()),
        (b"access-control-allow-headers", allow_headers.encode("latin-1")),
        (b"access-control-max-age", b"600"),
        (b"vary", b"Origin"),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": 204, "headers": raw})
    await send({"type": "http.response.body", "body": b""})


def _with_cors(send: Send, origin: str) -> Send:
    """Let the allowed origin read the response."""

    async def cors_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            extra = [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"vary", b"Origin"),
            ]
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return cors_send
