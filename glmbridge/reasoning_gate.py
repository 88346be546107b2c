"""Reasoning only where the client asked for it.

Theory of operation
-------------------
GLM reasons whether or not a client asked: GLM-5.3 cannot stop thinking, and the other
models think by default. Anthropic never returns thinking blocks to a request without
``thinking`` enabled, and clients rely on it: Claude Code's WebFetch sends its
page-processing request with thinking disabled and reads only ``content[0]``, so a
thinking block there makes it report "No response from model" (issue 11;
musistudio/claude-code-router#935). The same rule holds where the protocol demands it:
Responses reasoning items appear only for a request with a reasoning setting, Gemini
thought parts only with ``includeThoughts``.

OpenAI Chat is the exception: GLM's own API, DeepSeek's, LiteLLM and OpenRouter return
``reasoning_content`` by default (https://docs.z.ai/guides/capabilities/thinking-mode;
https://api-docs.deepseek.com/guides/reasoning_model;
https://docs.litellm.ai/docs/reasoning_content; https://openrouter.ai/docs/use-cases/
reasoning-tokens), and the OpenAI-compatible clients used with GLM (OpenCode, Cline, Roo,
Open WebUI) show it. So a chat request that says nothing about reasoning gets it; one that
disables it (``reasoning_effort: "none"``) does not, and a server setting can hide it.

:func:`wants_reasoning` decides from the request as the client sent it (after the
server's ``thinking`` default for requests that carry none, before the request is
adapted to the routed model) and its door: ``thinking`` present and not ``disabled``, or
no ``thinking`` at all on a door in :data:`REASONING_BY_DEFAULT`. When it says
no, the reasoning is **dropped**: :func:`drop_reasoning` removes thinking blocks from a
whole answer, :class:`ReasoningDropper` removes them from a stream of IR events and
renumbers the blocks that follow, so stream and non-stream give the same blocks. The
reasoning is still **counted**: usage is the upstream's (``output_tokens`` includes
the reasoning tokens, which were generated and billed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from glmbridge import events as ev
from glmbridge import ir
from glmbridge.roles import UpstreamStreamDecoder

if TYPE_CHECKING:
    from glmbridge.errors import UpstreamError

__all__ = ["REASONING_BY_DEFAULT", "ReasoningDropper", "drop_reasoning", "wants_reasoning"]

#: Doors whose clients get the reasoning unless they turned it off (OpenAI Chat: above).
REASONING_BY_DEFAULT = frozenset({"openai"})

_REASONING_BLOCKS = (ir.ThinkingBlock, ir.RedactedThinkingBlock)
_INDEXED = (ev.TextDelta, ev.ThinkingDelta, ev.SignatureDelta, ev.InputJsonDelta, ev.BlockStop)


def wants_reasoning(req: ir.Request, door: str | None = None) -> bool:
    """Whether the answer to ``req`` (through the door named ``door``) may carry reasoning:
    thinking enabled or adaptive, or unsaid on a door in :data:`REASONING_BY_DEFAULT`."""
    if req.thinking is None:
        return door in REASONING_BY_DEFAULT
    return req.thinking.type != "disabled"


def drop_reasoning(resp: ir.Response) -> ir.Response:
    """``resp`` without thinking blocks (usage unchanged)."""
    if not any(isinstance(b, _REASONING_BLOCKS) for b in resp.content):
        return resp
    content = [b for b in resp.content if not isinstance(b, _REASONING_BLOCKS)]
    return msgspec.structs.replace(resp, content=content)


class ReasoningDropper:
    """An upstream stream decoder whose events carry no thinking blocks.

    Blocks are sequential (one open at a time), so a dropped block is skipped from its
    start to its stop, and every later block index moves down by the number dropped.
    """

    __slots__ = ("_decoder", "_shift", "_skip")

    def __init__(self, decoder: UpstreamStreamDecoder) -> None:
        self._decoder = decoder
        self._skip: int | None = None  # the upstream index of the block being dropped
        self._shift = 0  # blocks dropped so far

    @property
    def error(self) -> UpstreamError | None:
        """The wrapped decoder's failure."""
        return self._decoder.error

    @error.setter
    def error(self, value: UpstreamError | None) -> None:
        self._decoder.error = value

    @property
    def dropped(self) -> bool:
        """Whether a block was dropped: the upstream has begun its answer (the exchange
        counts that as content started, as it did when the block was forwarded)."""
        return self._shift > 0

    @property
    def answered(self) -> bool:
        """Whether the wrapped decoder has the final stop reason."""
        return self._decoder.answered

    def feed(self, data: bytes | str) -> list[ev.Event]:
        """The wrapped decoder's events for ``data``, thinking removed."""
        return self._filter(self._decoder.feed(data))

    def flush(self) -> list[ev.Event]:
        """The wrapped decoder's closing events, thinking removed."""
        return self._filter(self._decoder.flush())

    def _filter(self, events: list[ev.Event]) -> list[ev.Event]:
        out: list[ev.Event] = []
        for event in events:
            if isinstance(event, ev.BlockStart):
                if isinstance(event.block, _REASONING_BLOCKS):
                    self._skip = event.index
                    self._shift += 1
                    continue
                if self._shift:
                    event = msgspec.structs.replace(event, index=event.index - self._shift)
            elif isinstance(event, _INDEXED):
                if event.index == self._skip:
                    if isinstance(event, ev.BlockStop):
                        self._skip = None
                    continue
                if self._shift:
                    event = msgspec.structs.replace(event, index=event.index - self._shift)
            out.append(event)
        return out
