"""The part of a front door that binds it to one request (the OpenAI-shaped doors)."""

from __future__ import annotations

import time
from typing import Any, Self

from glmbridge import ir

__all__ = ["BoundDoor"]


class BoundDoor:
    """A door whose shared instance decodes and whose :meth:`for_request` copy renders
    the answer to one request: what it echoes, its JSON mode, one ``created`` time for
    the body or every chunk."""

    def __init__(self, request: ir.Request | None = None) -> None:
        self._request = request
        self._created = int(time.time())

    def for_request(self, req: ir.Request) -> Self:
        """The door bound to ``req``."""
        return type(self)(req)

    def _model(self) -> str:
        return self._request.model if self._request is not None else ""

    def _echo(self) -> dict[str, Any]:
        return self._request.echo if self._request is not None else {}

    def _json_mode(self) -> bool:
        fmt = self._request.response_format if self._request is not None else None
        return fmt is not None and fmt.type != "text"
