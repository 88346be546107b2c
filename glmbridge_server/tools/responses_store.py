"""A bounded in-memory store of Responses conversations, for ``previous_response_id``.

Off by default (``responses_store = 0``): Codex and most agents send the whole
conversation with ``store: false``, and a server that keeps conversations keeps prompts.
With ``responses_store = N`` the last N answered conversations (requested with ``store``
not ``false``) are kept in memory, least recently used first out, and a request naming
one as ``previous_response_id`` continues it. Nothing is written to disk; a restart
forgets everything (a later ``previous_response_id`` is then a 400 that says so).
As in OpenAI's API, the previous request's ``instructions`` are not carried over.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from glmbridge import ir
from glmbridge.errors import ClientRequestError
from glmbridge.exchange import Exchange
from glmbridge.protocols.responses.request import decode_params, request_to_ir
from glmbridge.protocols.responses.response import response_id

__all__ = ["ResponseStore"]


class ResponseStore:
    """The last ``capacity`` conversations by response id (LRU)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, list[ir.Message]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, rid: str) -> list[ir.Message] | None:
        """The conversation that ended with response ``rid`` (its answer included)."""
        with self._lock:
            messages = self._items.get(rid)
            if messages is not None:
                self._items.move_to_end(rid)
            return messages

    def put(self, rid: str, messages: list[ir.Message]) -> None:
        """Keep a conversation, evicting the least recently used one beyond capacity."""
        with self._lock:
            self._items[rid] = messages
            self._items.move_to_end(rid)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def decode(self, body: bytes) -> ir.Request:
        """Decode a Responses request, prepending the stored conversation it continues.

        Raises:
            ClientRequestError: the body is invalid, or names a response not kept here.
        """
        params = decode_params(body)
        history = None
        if params.previous_response_id is not None:
            history = self.get(params.previous_response_id)
            if history is None:
                raise ClientRequestError(
                    "no stored response with this id (this server keeps the last "
                    f"{self.capacity} in memory only, and only those requested with store "
                    "not false)",
                    path="previous_response_id",
                )
        return request_to_ir(params, history)

    def keep(self, exchange: Exchange) -> None:
        """Store the exchange's conversation once its answer is complete (if asked to)."""
        if exchange.request.echo.get("store") is False:
            return
        rid = response_id(exchange.message_id)
        messages = exchange.request.messages

        def done(resp: ir.Response) -> None:
            answer = ir.Message(role="assistant", content=list(resp.content))
            self.put(rid, [*messages, answer])

        exchange.on_complete = done
