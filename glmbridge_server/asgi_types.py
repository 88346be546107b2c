"""The plain ASGI types, and the part of an HTTP request that endpoints read, written once.

Standard library only: the call wing (:mod:`glmbridge_server.call.asgi`) and the simulator
(:mod:`glmbridge_server.simulator.asgi`, which imports nothing of ``glmbridge``) both build
on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol

__all__ = ["ASGIApp", "Message", "Receive", "RequestView", "Scope", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestView(Protocol):
    """What every framework-free endpoint reads of a request (Starlette's request has it)."""

    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def query_params(self) -> Mapping[str, str]: ...
    @property
    def receive(self) -> Receive: ...
