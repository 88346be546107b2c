"""The glmbridge exception tree.

Every error the library raises is a :class:`GlmbridgeError`. Each carries a
protocol-neutral :class:`ErrorKind` and a suggested HTTP status, so each wire
protocol can render it natively (an Anthropic ``{"type":"error",...}`` body, an
OpenAI ``{"error":{...}}`` body, a Gemini ``{"error":{"status":...}}`` body)::

    GlmbridgeError                 abstract; never raised directly
    ├── ClientRequestError         inbound request invalid; message names the JSON path
    ├── UnsupportedFeatureError    valid input the target cannot express (strict policy only)
    ├── UpstreamError              upstream answered with an error (status, business code)
    │   ├── UpstreamTimeoutError   raised by the server's boundary mapper only
    │   └── UpstreamConnectionError
    ├── UpstreamProtocolError      upstream bytes violate its own protocol
    └── StreamStateError           a caller drove a stream machine wrongly (a bug)

Messages are for humans: they name the field and never contain prompts, keys or
whole bodies.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ClientRequestError",
    "ErrorKind",
    "GlmbridgeError",
    "StreamStateError",
    "UnsupportedFeatureError",
    "UpstreamConnectionError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamTimeoutError",
]


class ErrorKind(StrEnum):
    """Protocol-neutral error classes; each protocol maps them to its own names."""

    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    BILLING = "billing"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    REQUEST_TOO_LARGE = "request_too_large"
    RATE_LIMIT = "rate_limit"
    API_ERROR = "api_error"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"


# The HTTP status each kind is rendered with unless the error says otherwise.
KIND_STATUS: dict[ErrorKind, int] = {
    ErrorKind.INVALID_REQUEST: 400,
    ErrorKind.AUTHENTICATION: 401,
    ErrorKind.BILLING: 402,
    ErrorKind.PERMISSION: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.REQUEST_TOO_LARGE: 413,
    ErrorKind.RATE_LIMIT: 429,
    ErrorKind.API_ERROR: 500,
    ErrorKind.OVERLOADED: 529,
    ErrorKind.TIMEOUT: 504,
}


class GlmbridgeError(Exception):
    """Base of every error glmbridge raises.

    Attributes:
        message: a human-readable description (no secrets, no prompt text).
        kind: the protocol-neutral class of the error.
        status_hint: the HTTP status a server should answer with.
    """

    kind: ErrorKind = ErrorKind.API_ERROR

    def __init__(
        self, message: str, *, kind: ErrorKind | None = None, status_hint: int | None = None
    ) -> None:
        if type(self) is GlmbridgeError:
            raise TypeError("GlmbridgeError is abstract; raise a subclass")
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind
        self.status_hint = status_hint if status_hint is not None else KIND_STATUS[self.kind]


class ClientRequestError(GlmbridgeError):
    """The inbound request is invalid.

    Attributes:
        path: the dotted JSON path of the offending field (``messages.3.content.0.type``),
            or ``None`` when the problem is the body as a whole.
    """

    kind = ErrorKind.INVALID_REQUEST

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        kind: ErrorKind | None = None,
        status_hint: int | None = None,
    ) -> None:
        if path and not message.startswith(path):
            message = f"{path}: {message}"
        super().__init__(message, kind=kind, status_hint=status_hint)
        self.path = path


class UnsupportedFeatureError(GlmbridgeError):
    """Valid input that the target cannot express; raised only under a strict policy."""

    kind = ErrorKind.INVALID_REQUEST


class UpstreamError(GlmbridgeError):
    """The upstream answered with an error.

    Attributes:
        status: the upstream HTTP status (``None`` for transport-level failures).
        code: the upstream business code (GLM's ``"1302"``), if any.
        retry_after: seconds the upstream asked us to wait, if it said.
        retryable: whether a retry (before the first byte) may succeed.
        plan: the model is outside the key's plan (a client error; no key is at fault).
        spares_key: the failure says nothing about the key: it is never cooled for it
            (plan errors, the tokenizer's answers).
        quota: a spent usage limit (a quota code, or any 429 naming a reset time): the key
            rests until the reset and the request is not retried.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind = ErrorKind.API_ERROR,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        retryable: bool = False,
        status_hint: int | None = None,
    ) -> None:
        super().__init__(message, kind=kind, status_hint=status_hint)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.retryable = retryable
        self.plan = False
        self.spares_key = False
        self.quota = False


class UpstreamTimeoutError(UpstreamError):
    """The upstream did not answer (or went idle) within the configured timeout."""

    def __init__(self, message: str = "upstream timed out", **kw: object) -> None:
        kw.setdefault("kind", ErrorKind.TIMEOUT)
        kw.setdefault("retryable", True)
        super().__init__(message, **kw)  # type: ignore[arg-type]


class UpstreamConnectionError(UpstreamError):
    """The upstream could not be reached."""

    def __init__(self, message: str = "could not connect to upstream", **kw: object) -> None:
        kw.setdefault("kind", ErrorKind.API_ERROR)
        kw.setdefault("retryable", True)
        super().__init__(message, **kw)  # type: ignore[arg-type]


class UpstreamProtocolError(GlmbridgeError):
    """The upstream's bytes or events violate its own protocol (bad JSON, truncation)."""

    kind = ErrorKind.API_ERROR


class StreamStateError(GlmbridgeError):
    """A stream machine was driven wrongly (fed after flush or after an error): a bug."""

    kind = ErrorKind.API_ERROR
