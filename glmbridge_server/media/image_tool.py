"""The driver of the Responses door's hosted ``image_generation`` tool
(:class:`glmbridge.media.responses.ImageToolPlan`): rounds to GLM, images between them, and
the stream events as they happen.

The caller supplies the two effects: ``answer_round(body) -> bytes`` (the door's whole
answer to one round's request; raises :class:`GlmbridgeError`) and ``make_image(prompt,
size) -> (base64, size)``. The first round runs before anything is sent to the client, so
its failure is an ordinary error answer. Streamed (:class:`ImageToolStream`, on the one
streaming base), the answer commits with ``response.created`` and keeps the connection
alive with the door's keep-alive frames while an image is made; a later failure ends the
stream with ``response.failed``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from glmbridge.errors import GlmbridgeError
from glmbridge.media.responses import ImageCall, ImageToolPlan
from glmbridge.media.responses_stream import EventWriter
from glmbridge.roles import FrontDoor
from glmbridge_server.call.record import CallRecord
from glmbridge_server.call.stream import SSE_HEADERS, StreamingAnswer

__all__ = ["ImageToolRun", "ImageToolStream"]

logger = logging.getLogger("glmbridge.media")

AnswerRound = Callable[[bytes], Awaitable[bytes]]
MakeImage = Callable[[str, str | None], Awaitable[tuple[str, str]]]
Emit = Callable[[bytes], Awaitable[None]]


class ImageToolRun:
    """One turn with the hosted image tool (see the module)."""

    def __init__(
        self,
        plan: ImageToolPlan,
        answer_round: AnswerRound,
        make_image: MakeImage,
        on_done: Callable[[ImageToolPlan], None] | None = None,
    ) -> None:
        self.plan = plan
        self.answer_round = answer_round
        self.make_image = make_image
        self.on_done = on_done
        self.calls: list[ImageCall] = []
        self._fresh = 0  # where the last round's items start in the output

    async def first_round(self) -> None:
        """Ask GLM once (before answering the client)."""
        await self._round()

    async def _round(self) -> None:
        self._fresh = len(self.plan.output)
        self.calls = self.plan.feed(await self.answer_round(self.plan.round_body()))

    async def _image(self, call: ImageCall) -> dict[str, Any]:
        b64, size, error = None, call.size or "", None
        if call.failure is None:
            try:
                b64, size = await self.make_image(call.prompt, call.size)
            except GlmbridgeError as err:
                error = err.message
                logger.info("image_generation tool call failed: %s", err.kind.value)
        return self.plan.record(call, b64, size, error)

    def _done(self) -> dict[str, Any]:
        if self.on_done is not None:
            self.on_done(self.plan)  # the usage of every round, for the usage store
        return self.plan.result()

    async def whole(self) -> dict[str, Any]:
        """Run the remaining rounds; the complete response."""
        while self.calls:
            for call in self.calls:
                await self._image(call)
            await self._round()
        return self._done()

    async def stream(self, writer: EventWriter, emit: Emit) -> None:
        """Run the remaining rounds, emitting each round's items as they are known (the
        start events are the caller's). Raises :class:`GlmbridgeError` from a round."""
        while True:
            for i in range(self._fresh, len(self.plan.output)):
                item = self.plan.output[i]
                if item.get("type") == "image_generation_call":
                    await emit(writer.image_started(i, item))
                else:
                    await emit(writer.item(i, item))
            if not self.calls:
                break
            for call in self.calls:
                index = self.plan.pending_index(call)
                await emit(writer.image_done(index, await self._image(call)))
            await self._round()
        await emit(writer.completed(self._done()))


class ImageToolStream(StreamingAnswer):
    """The streamed answer of an image-tool turn whose first round is done."""

    def __init__(self, record: CallRecord, run: ImageToolRun, door: FrontDoor) -> None:
        super().__init__(record)
        assert run.plan.first is not None
        self._turn = run
        self._door = door
        self._writer = EventWriter()
        self._preamble = self._writer.start(run.plan.first)  # sent with the commit
        self._shell = {**run.plan.first, "status": "in_progress", "output": [], "usage": None}
        self._ended = False

    def _finished(self) -> bool:
        return self._done or self._ended

    async def _run(self) -> None:
        try:
            await self._turn.stream(self._writer, self._emit)
            self._ended = True
        except GlmbridgeError as err:
            await self._fail(err)

    async def _emit(self, data: bytes) -> None:
        if not self._committed:
            await self._open(self._preamble + data)
        else:
            await self._body(data)

    async def _fail(self, err: GlmbridgeError) -> None:
        """``response.failed`` in a started stream; a native error status before it."""
        self._note_failure(err)
        self._ended = True
        plan = self._turn.plan
        assert plan.first is not None
        failed = {**plan.first, "status": "failed", "output": plan.output,
                  "error": {"code": err.kind.value, "message": err.message}}  # fmt: skip
        if self._committed:
            await self._body(self._writer.event("response.failed", response=failed))
            return
        status, body = self._door.encode_error(err, request_id=self.record.request_id)
        raw = [(b"content-type", b"application/json")]
        raw += [(k.encode(), v.encode()) for k, v in self._door.error_headers(err).items()]
        await self._start(status, raw)
        await self._body(body)

    def _stream_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"content-type", self._door.stream_content_type.encode()), *SSE_HEADERS]

    def _preamble_now(self) -> bytes:
        return self._preamble  # nothing waits in silence: commit with response.created

    def _keepalive_frame(self) -> bytes:
        # response.in_progress again, numbered in order (Codex's idle timer counts events)
        return self._writer.event("response.in_progress", response=self._shell)
