"""The driver of the Responses door's hosted ``image_generation`` tool
(:class:`glmbridge.media.responses.ImageToolPlan`): rounds to GLM, images between them, and
the stream events as they happen.

The caller supplies the two effects: ``answer_round(body) -> bytes`` (the door's whole
answer to one round's request; raises :class:`GlmbridgeError`) and ``make_image(prompt,
size) -> (base64, size)``. The first round runs before anything is sent to the client, so
its failure is an ordinary error answer; later failures end a stream with
``response.failed``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from glmbridge.errors import GlmbridgeError
from glmbridge.media.responses import ImageCall, ImageToolPlan
from glmbridge.media.responses_stream import EventWriter

__all__ = ["ImageToolRun"]

logger = logging.getLogger("glmbridge.media")

AnswerRound = Callable[[bytes], Awaitable[bytes]]
MakeImage = Callable[[str, str | None], Awaitable[tuple[str, str]]]


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
        self.on_done = on_done
        self.answer_round = answer_round
        self.make_image = make_image
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

    async def whole(self) -> dict[str, Any]:
        """Run the remaining rounds; the complete response."""
        while self.calls:
            for call in self.calls:
                await self._image(call)
            await self._round()
        return self._done()

    def _done(self) -> dict[str, Any]:
        if self.on_done is not None:
            self.on_done(self.plan)  # the usage of every round, for the usage store
        return self.plan.result()

    async def events(self) -> AsyncIterator[bytes]:
        """Run the remaining rounds, yielding the stream's events as they happen."""
        writer = EventWriter()
        assert self.plan.first is not None
        yield writer.start(self.plan.first)
        try:
            while True:
                for i in range(self._fresh, len(self.plan.output)):
                    item = self.plan.output[i]
                    if item.get("type") == "image_generation_call":
                        yield writer.image_started(i, item)
                    else:
                        yield writer.item(i, item)
                if not self.calls:
                    break
                for call in self.calls:
                    index = self.plan.pending_index(call)
                    yield writer.image_done(index, await self._image(call))
                await self._round()
        except GlmbridgeError as err:
            failed = {**self.plan.first, "status": "failed", "output": self.plan.output,
                      "error": {"code": err.kind.value, "message": err.message}}  # fmt: skip
            yield writer.event("response.failed", response=failed)
            return
        yield writer.completed(self._done())
