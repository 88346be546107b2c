"""The server's driver of :class:`glmbridge.server_tools.ServerToolLoop`: server tools
(web search, web fetch) run by the gateway, for any front door.

Theory of operation
-------------------
:func:`answer` takes an exchange whose request has a web search server tool. Every round
of the loop is one non-streamed upstream call (with the relay's retries and key failover),
because the gateway must read a whole round to know whether the model searches; the
searches of a round run concurrently on the :class:`~glmbridge_server.tools.search_engine.
ZaiSearchEngine`. The client gets:

* **non-streamed**: the whole answer once the loop is done;
* **streamed** (:class:`ServerToolStream`): the ``200`` and the door's start event with the
  first blocks (or after ``commit_after`` seconds of silence, as the relay does; a round
  that fails before that is a native error status), then each round's blocks as soon as
  they exist (a search's ``server_tool_use`` block, whose
  ``input_json_delta`` Claude Code shows as "Searching: Q", and its
  ``web_search_tool_result``), the final text, and the end; keep-alives while the model
  or the search engine is silent. A failure before the end is the door's error event.

A search never fails the turn (see :mod:`glmbridge_server.tools.search_engine`); a failed
upstream round does, as any upstream failure would.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import anyio

from glmbridge import events as ev
from glmbridge import ir
from glmbridge.errors import GlmbridgeError
from glmbridge.exchange import Exchange
from glmbridge.reasoning_gate import drop_reasoning
from glmbridge.server_tools import Outcome, ServerCall, ServerToolLoop, block_events
from glmbridge.websearch import SearchFailure
from glmbridge_server.call.asgi import Answer, Receive, WholeAnswer
from glmbridge_server.call.driver import Call, as_ir, mock_base, unless_disconnected
from glmbridge_server.call.record import CallRecord
from glmbridge_server.call.stream import StreamingAnswer, stream_headers
from glmbridge_server.settings import MOCK_API_KEY, Settings
from glmbridge_server.tools.search_engine import ZaiSearchEngine, search_base_url
from glmbridge_server.tools.web_fetcher import WebFetcher

__all__ = ["ServerToolStream", "answer", "loop_for"]

logger = logging.getLogger("glmbridge.server")


def loop_for(record: CallRecord, exchange: Exchange) -> ServerToolLoop | None:
    """The server-tool loop this exchange needs, or ``None`` (no web search or web fetch
    server tool, or only web search and it is ``off``, or on the Responses door and
    ``responses_web_search`` is not set).

    Raises:
        ClientRequestError: the tool's settings are invalid.
    """
    settings = record.settings
    search = settings.web_search_engine != "off"
    if exchange.door.name == "responses" and not settings.responses_web_search:
        # Codex offers web_search on every turn: running it would end token streaming
        # there (rounds are read whole), so it is opt-in on this door.
        search = False
    return ServerToolLoop.for_request(exchange.request, search=search)


async def answer(
    record: CallRecord, exchange: Exchange, loop: ServerToolLoop, receive: Receive
) -> Answer:
    """Answer ``exchange`` by running ``loop`` (see the module docstring).

    Raises:
        GlmbridgeError: a non-streamed round failed (the route renders it natively).
    """
    driver = _Driver(record, exchange, loop)
    if exchange.stream:
        return ServerToolStream(driver)

    async def complete() -> Answer:
        while True:
            calls = loop.feed(await driver.round())
            if not calls:
                break
            await driver.search(calls, _ignore)
        return WholeAnswer(driver.finish())

    return await unless_disconnected(record, receive, complete)


async def _ignore(blocks: list[ir.Block]) -> None:
    """A non-streamed answer sends no blocks before the end."""


class _Driver:
    """One loop's I/O: upstream rounds and searches."""

    def __init__(self, record: CallRecord, exchange: Exchange, loop: ServerToolLoop) -> None:
        self.record = record
        self.exchange = exchange
        self.loop = loop
        self.settings: Settings = record.settings
        self.engine = _engine(record, self.settings)
        self.fetcher = WebFetcher(
            allow_private=self.settings.web_fetch_allow_private,
            max_bytes=self.settings.web_fetch_max_bytes,
        )
        self.session = Call(record, exchange).session

    async def round(self) -> ir.Response:
        """One upstream call for the loop's next request, decoded to IR."""
        base = self.exchange
        ex = Exchange(base.door, self.loop.next_request(), base.route,
                      input_estimate=base.input_estimate, message_id=base.message_id)  # fmt: skip
        resp = await Call(self.record, ex).decoded(as_ir)
        # reasoning only where the client asked (GLM-5.3 and Flash always reason)
        return resp if base.show_reasoning else drop_reasoning(resp)

    async def search(
        self, calls: list[ServerCall], emit: Callable[[list[ir.Block]], Awaitable[None]]
    ) -> None:
        """Run a round's calls (searches, fetches) concurrently; ``emit`` gets each one's
        client blocks, in call order."""
        outcomes: list[Outcome | None] = [None] * len(calls)
        key = self._key()

        async def run(i: int, call: ServerCall) -> None:
            if call.failure is not None:
                outcomes[i] = call.failure
            elif call.name == "web_fetch":
                outcomes[i] = await self.fetcher.fetch(call.argument, self.loop.fetch_options)
            elif key is None:
                outcomes[i] = SearchFailure("unavailable", "no API key for web search")
            else:
                outcomes[i] = await self.engine.search(call.argument, self.loop.options, key=key)

        async with anyio.create_task_group() as tg:
            for i, call in enumerate(calls):
                tg.start_soon(run, i, call)
        for call, outcome in zip(calls, outcomes, strict=True):
            assert outcome is not None
            await emit(self.loop.record(call, outcome))

    def _key(self) -> str | None:
        if self.settings.mock:
            return self.settings.auth_token or MOCK_API_KEY
        lease = self.record.app.client().keys.select(self.session)
        return lease.key if lease is not None else None

    def finish(self) -> bytes:
        """The non-streamed body of the finished loop."""
        resp = self.loop.result(message_id=self.exchange.message_id,
                                model=self.exchange.request.model)  # fmt: skip
        self.done(resp)
        return self.exchange.door.encode_response(resp)

    def done(self, resp: ir.Response) -> None:
        """Account for the finished answer (usage, the Responses store, the log)."""
        self.record.usage = resp.usage
        self.exchange.usage = resp.usage
        if self.exchange.on_complete is not None:
            self.exchange.on_complete(resp)
        logger.info(
            "request %s: %d web search(es), %d fetch(es) run by the gateway",
            self.record.request_id,
            self.loop.searches,
            self.loop.fetches,
        )


def _engine(record: CallRecord, settings: Settings) -> ZaiSearchEngine:
    """The app's search engine for these settings (made once, remade when they change)."""
    state = record.app
    if settings.mock:
        base = f"{mock_base(record)}/api/paas/v4"
    else:
        base = settings.web_search_url or search_base_url(settings.upstream_base_url)
    url = ZaiSearchEngine.endpoint(base)
    engine = state.search_engine
    wanted = (url, settings.web_search_engine, settings.web_search_cache_ttl)
    if engine is None or (engine.url, engine.asked, engine.ttl) != wanted:
        token = settings.auth_token
        engine = ZaiSearchEngine(
            state.client().http,
            url=url,
            engine=settings.web_search_engine,
            ttl=settings.web_search_cache_ttl,
            secrets=(*settings.api_keys, *((token,) if token else ())),
        )
        state.search_engine = engine
    return engine


class ServerToolStream(StreamingAnswer):
    """A streamed server-tool answer (see the module docstring)."""

    def __init__(self, driver: _Driver) -> None:
        super().__init__(driver.record)
        self._driver = driver
        self._encoder = driver.exchange.door.stream_encoder()
        ex = driver.exchange
        start = ev.MessageStart(id=ex.message_id, model=ex.request.model,
                                usage=ir.Usage(input_tokens=ex.input_estimate))  # fmt: skip
        self._preamble = self._encoder.feed(start)  # sent with the commit
        self._ended = False  # the last event went out: no ping may follow
        self._index = 0

    def _finished(self) -> bool:
        return self._done or self._ended

    async def _run(self) -> None:
        driver = self._driver
        ex = driver.exchange
        try:
            while True:
                resp = await driver.round()
                calls = driver.loop.feed(resp)
                if not calls:
                    break
                await self._blocks(driver.loop.blocks[self._index :])
                await driver.search(calls, self._blocks)
            await self._blocks(driver.loop.blocks[self._index :])
            answer = driver.loop.result(message_id=ex.message_id, model=ex.request.model)
            await self._blocks(driver.loop.final_blocks())
            delta = ev.MessageDelta(
                stop_reason=answer.stop_reason or ir.StopReason.END_TURN,
                stop_sequence=answer.stop_sequence,
                usage=answer.usage,
            )
            end = self._encoder.feed(delta) + self._encoder.feed(ev.MessageStop())
            await self._emit(end, last=True)
            driver.done(answer)
        except GlmbridgeError as err:
            await self._fail(err)

    async def _fail(self, err: GlmbridgeError) -> None:
        """A failed round: a native error status if nothing was sent yet (SDKs retry on
        it), else the door's error event."""
        self._note_failure(err)
        self._ended = True
        if self._committed:
            logger.warning("server-tool turn failed after the response started: %s",
                           err.message)  # fmt: skip
            await self._body(self._encoder.fail(err))
            return
        await self._start_error(self._driver.exchange, err)

    async def _blocks(self, blocks: Sequence[ir.Block]) -> None:
        out = []
        for block in blocks:
            for event in block_events(self._index, block):
                out.append(self._encoder.feed(event))
            self._index += 1
        await self._emit(b"".join(out))

    async def _emit(self, data: bytes, *, last: bool = False) -> None:
        """Send ``data``, committing the ``200`` and the door's start event first."""
        if not self._committed:
            await self._open(self._preamble + data)
        else:
            await self._body(data)
        self._ended = self._ended or last

    def _stream_headers(self) -> list[tuple[bytes, bytes]]:
        return stream_headers(self._driver.exchange, [])

    def _preamble_now(self) -> bytes:
        return self._preamble  # the relay's rule: a client is never left in silence

    def _keepalive_frame(self) -> bytes:
        return self._encoder.keepalive()
