"""HTTP routes, one module per front door, plus the helpers they share.

The helpers here are deliberately few: the per-request configuration snapshot, reading a
bounded request body and rendering a glmbridge error as an Anthropic-native response (the
server's only error format for the Anthropic front door and for the admin endpoints).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from glmbridge.errors import ClientRequestError, ErrorKind, GlmbridgeError, UpstreamError
from glmbridge.protocols import anthropic as anthropic_protocol
from glmbridge.routing import RouteTable
from glmbridge_server.settings import Settings

__all__ = ["Runtime", "error_response", "read_body", "request_id", "runtime", "snapshot"]


@dataclass(frozen=True, slots=True)
class Runtime:
    """The configuration one request runs with, taken once when it arrives.

    ``POST /config`` replaces ``app.state.settings``/``route_table``/``model_catalog``
    together; a request that is already running keeps the snapshot it started with.
    """

    settings: Settings
    route_table: RouteTable
    model_catalog: dict[str, dict[str, str]]


def snapshot(app: Any) -> Runtime:
    """The app's current configuration as one immutable :class:`Runtime`."""
    st = app.state
    return Runtime(st.settings, st.route_table, st.model_catalog)


def runtime(request: Request) -> Runtime:
    """This request's configuration snapshot (taken by the request-context middleware)."""
    state = request.scope.setdefault("state", {})
    current: Runtime | None = state.get("runtime")
    if current is None:
        current = state["runtime"] = snapshot(request.app)
    return current


# Quota/billing codes: retrying soon cannot help, so tell SDKs not to.
def request_id(request: Request) -> str | None:
    """The ``req_…`` id the request-context middleware assigned to this request."""
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else None


async def read_body(request: Request, limit: int) -> bytes:
    """Read the request body, refusing (413) as soon as it exceeds ``limit`` bytes.

    A too-large ``Content-Length`` is refused before reading anything, and a chunked
    body is refused at the first chunk past the limit, so memory stays bounded.
    """
    too_large = ClientRequestError(
        f"request body exceeds the {limit}-byte limit (max_body_bytes)",
        kind=ErrorKind.REQUEST_TOO_LARGE,
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        parts.append(chunk)
    return b"".join(parts)


def error_response(err: GlmbridgeError, request: Request) -> Response:
    """An Anthropic error body with the right status and retry headers."""
    status, body = anthropic_protocol.encode_error(err, request_id=request_id(request))
    headers = anthropic_protocol.error_headers(err)
    state = request.scope.setdefault("state", {})
    state["error_type"] = err.kind.value
    if isinstance(err, UpstreamError) and err.status is not None:
        state["upstream_status"] = err.status
    return Response(body, status_code=status, media_type="application/json", headers=headers)
