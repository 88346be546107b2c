"""Server tools run by the gateway: a bounded, sans-I/O loop over model rounds.

Theory of operation
-------------------
GLM cannot run Anthropic's server tools (``web_search_20250305`` and later versions): its
chat API knows nothing of them, and Z.ai's Anthropic endpoint does not document them. So
the gateway runs them itself, whatever the front door (the loop works on the IR; the
Anthropic door renders its blocks today, and the Responses ``web_search`` and Gemini
``googleSearch`` tools can map onto the same blocks)::

    loop = ServerToolLoop.for_request(req)          # None: no server tool to run
    while True:
        resp = <model answer to loop.next_request()>   # driver: one upstream call
        calls = loop.feed(resp)                        # searches the model asked for
        if not calls: break
        for call in calls:
            blocks = loop.record(call, <driver: run the search> )  # hits or a failure
            <stream blocks to the client>
    answer = loop.result()

* Each round offers the model a ``web_search`` *function* (``query``) in place of the
  server tool; the client's own tools stay. The first round keeps a client's forced
  choice of the tool (Claude Code forces ``web_search``; GLM only takes ``auto``, so the
  codec turns it into an instruction); later rounds are ``auto``.
* A search call becomes a ``server_tool_use`` block (id ``srvtoolu_…``) and a
  ``web_search_tool_result`` block for the client, and a numbered tool result for the
  model, who is asked to cite results as ``[n]``. The final text is split at those
  markers into text blocks carrying ``web_search_result_location`` citations.
* Bounds: ``max_uses`` searches (a further call gets a ``max_uses_exceeded`` result and
  the function is no longer offered), and at most ``max_uses + 2`` rounds; the last round
  offers no search at all. A failed or rate-limited search is a result too (an error
  block, and a tool error for the model): it never fails the turn.
* A round that also calls client tools ends the loop: its searches are run and shown,
  and the answer stops with ``tool_use`` for the client to run its tools.
* ``usage`` adds up every round; ``web_search_requests`` counts the searches run.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from glmbridge import events as ev
from glmbridge import ids, ir
from glmbridge.websearch import (
    MAX_QUERY_CHARS,
    SearchFailure,
    SearchHit,
    SearchOptions,
    hits_for_model,
    result_content,
)

__all__ = [
    "SEARCH_FUNCTION",
    "SearchCall",
    "ServerToolLoop",
    "block_events",
    "cite",
    "is_web_search",
]

SEARCH_FUNCTION_NAME = "web_search"
SEARCH_FUNCTION = ir.Tool(
    name=SEARCH_FUNCTION_NAME,
    description=(
        "Search the web for current information (news, documentation, facts after your "
        "training). Returns numbered results with URL and text; cite them as [n]. "
        "Do not use this for local files or code."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "The search query, short and specific"}
        },
        "required": ["query"],
    },
)
_MAX_USES_DEFAULT = 5
_CITED_CHARS = 150  # Anthropic's cited_text is at most 150 characters


def is_web_search(tool: ir.Tool) -> bool:
    """Whether ``tool`` is a web search server tool (any version)."""
    return tool.server_type is not None and tool.server_type.startswith("web_search")


@dataclass(frozen=True, slots=True)
class SearchCall:
    """One search the model asked for: ``id`` is the client's ``srvtoolu_…`` id."""

    id: str
    query: str
    call_id: str  # the model's own tool-call id
    failure: SearchFailure | None = None  # refused before running (max uses, bad input)


@dataclass(slots=True)
class _Round:
    """What one round adds to the history: the model's blocks and the tool results."""

    assistant: list[ir.Block] = field(default_factory=list)
    results: list[ir.Block] = field(default_factory=list)


class ServerToolLoop:
    """The state of one server-tool turn (see the module docstring)."""

    def __init__(self, req: ir.Request, options: SearchOptions) -> None:
        self.request = req
        self.options = options
        self.max_uses = options.max_uses or _MAX_USES_DEFAULT
        self._client_tools = [t for t in req.tools if not is_web_search(t)]
        self._history = list(req.messages)
        self._blocks: list[ir.Block] = []  # for the client, in order
        self._hits: list[SearchHit] = []  # numbered [1], [2] … across the turn
        self._round: _Round | None = None
        self._rounds = 0
        self._final: ir.Response | None = None
        self._usage = ir.Usage()
        self.searches = 0  # searches run (web_search_requests)
        self._uses = 0  # calls accepted (run or failed), against max_uses

    @classmethod
    def for_request(cls, req: ir.Request) -> ServerToolLoop | None:
        """The loop for ``req``, or ``None`` when it has no web search server tool.

        Raises:
            ClientRequestError: the tool's settings are invalid (names the field).
        """
        for i, tool in enumerate(req.tools):
            if is_web_search(tool):
                return cls(req, SearchOptions.from_config(tool.config, f"tools.{i}"))
        return None

    @property
    def blocks(self) -> list[ir.Block]:
        """The blocks produced for the client so far."""
        return self._blocks

    @property
    def _can_search(self) -> bool:
        return self._uses < self.max_uses and self._rounds < self.max_uses + 1

    def next_request(self) -> ir.Request:
        """The model request of the next round (not streamed: the gateway reads it whole)."""
        req = self.request
        tools = list(self._client_tools)
        if self._can_search:
            tools.append(SEARCH_FUNCTION)
        choice = req.tool_choice
        if choice is not None and (self._rounds > 0 or not self._can_search):
            if choice.type == "tool" and choice.name == SEARCH_FUNCTION_NAME:
                choice = None  # forced once: the model has searched (or cannot any more)
            elif choice.type == "any" and not self._client_tools:
                choice = None
        if not tools:
            choice = None
        return msgspec.structs.replace(
            req, messages=self._history, tools=tools, tool_choice=choice, stream=False
        )

    def feed(self, resp: ir.Response) -> list[SearchCall]:
        """Take one round's answer; return the searches to run (``[]``: the turn is done)."""
        self._rounds += 1
        self._usage = _add_usage(self._usage, resp.usage)
        searches = [
            b for b in resp.content
            if isinstance(b, ir.ToolUseBlock) and b.name == SEARCH_FUNCTION_NAME
        ]  # fmt: skip
        client_calls = any(
            isinstance(b, ir.ToolUseBlock) and b.name != SEARCH_FUNCTION_NAME
            for b in resp.content
        )
        if not searches:
            self._final = resp
            return []
        rnd = self._round = _Round()
        calls: list[SearchCall] = []
        for block in resp.content:
            if isinstance(block, ir.ToolUseBlock) and block.name == SEARCH_FUNCTION_NAME:
                calls.append(self._call(block))
                rnd.assistant.append(block)
            elif isinstance(block, (ir.TextBlock, ir.ThinkingBlock, ir.RedactedThinkingBlock)):
                rnd.assistant.append(block)
                if not (isinstance(block, ir.TextBlock) and not block.text.strip()):
                    self._blocks.append(block)
            elif isinstance(block, ir.ToolUseBlock):
                rnd.assistant.append(block)
        if client_calls:  # the client runs its tools; the loop ends with them
            tail = [b for b in resp.content if isinstance(b, ir.ToolUseBlock)
                    and b.name != SEARCH_FUNCTION_NAME]  # fmt: skip
            self._final = msgspec.structs.replace(
                resp, content=tail, stop_reason=ir.StopReason.TOOL_USE
            )
        return calls

    def _call(self, block: ir.ToolUseBlock) -> SearchCall:
        sid = "srvtoolu_" + ids.new_tool_use_id().removeprefix("toolu_")
        query = block.input.get("query")
        if not isinstance(query, str) or not query.strip():
            failure = SearchFailure("invalid_tool_input", "the query must be a non-empty string")
            return SearchCall(sid, str(query or ""), block.id, failure)
        query = " ".join(query.split())
        if len(query) > MAX_QUERY_CHARS:
            failure = SearchFailure(
                "query_too_long", f"the query is longer than {MAX_QUERY_CHARS} characters"
            )
            return SearchCall(sid, query, block.id, failure)
        if self._uses >= self.max_uses:
            failure = SearchFailure(
                "max_uses_exceeded",
                f"the search limit of this turn ({self.max_uses}) is reached; "
                "answer with the results you have",
            )
            return SearchCall(sid, query, block.id, failure)
        self._uses += 1
        return SearchCall(sid, query, block.id)

    def record(
        self, call: SearchCall, outcome: Sequence[SearchHit] | SearchFailure
    ) -> list[ir.Block]:
        """Take one search's outcome; return the client's two blocks for it."""
        failure = call.failure or (outcome if isinstance(outcome, SearchFailure) else None)
        if call.failure is None:
            self.searches += 1
        use = ir.ServerToolUseBlock(id=call.id, name=SEARCH_FUNCTION_NAME,
                                    input={"query": call.query})  # fmt: skip
        if failure is not None:
            content: Any = {"type": "web_search_tool_result_error",
                            "error_code": failure.error_code}  # fmt: skip
            text = f"Web search failed ({failure.error_code}): {failure.message}"
            tool_result = ir.ToolResultBlock(
                tool_use_id=call.call_id, content=[ir.TextBlock(text=text)], is_error=True
            )
        else:
            hits = list(outcome) if not isinstance(outcome, SearchFailure) else []
            first = len(self._hits) + 1
            self._hits.extend(hits)
            content = result_content(hits)
            text = hits_for_model(call.query, enumerate(hits, first))
            tool_result = ir.ToolResultBlock(
                tool_use_id=call.call_id, content=[ir.TextBlock(text=text)]
            )
        result = ir.WebSearchToolResultBlock(tool_use_id=call.id, content=content)
        out: list[ir.Block] = [use, result]
        self._blocks.extend(out)
        if self._round is not None:
            self._round.results.append(tool_result)
            if len(self._round.results) == sum(
                isinstance(b, ir.ToolUseBlock) and b.name == SEARCH_FUNCTION_NAME
                for b in self._round.assistant
            ):
                self._close_round()
        return out

    def _close_round(self) -> None:
        rnd = self._round
        assert rnd is not None
        self._round = None
        if self._final is not None:  # client calls ended the loop: no more history needed
            return
        self._history.append(ir.Message(role="assistant", content=rnd.assistant))
        self._history.append(ir.Message(role="user", content=rnd.results))

    @property
    def done(self) -> bool:
        """Whether the turn has its final answer."""
        return self._final is not None

    def final_blocks(self) -> list[ir.Block]:
        """The final round's blocks for the client (text split at its citations)."""
        assert self._final is not None
        out: list[ir.Block] = []
        for block in self._final.content:
            if isinstance(block, ir.TextBlock) and self._hits:
                out.extend(cite(block.text, self._hits))
            elif isinstance(block, ir.ToolUseBlock) and block.name == SEARCH_FUNCTION_NAME:
                continue  # a search call on the last round (cannot happen: not offered)
            else:
                out.append(block)
        return out

    def result(self, *, message_id: str, model: str) -> ir.Response:
        """The whole answer: server blocks, then the final round's blocks."""
        assert self._final is not None
        return ir.Response(
            id=message_id,
            model=model,
            content=[*self._blocks, *self.final_blocks()],
            stop_reason=self._final.stop_reason or ir.StopReason.END_TURN,
            stop_sequence=self._final.stop_sequence,
            usage=self.usage,
        )

    @property
    def usage(self) -> ir.Usage:
        """Usage of every round so far, with the searches run."""
        return msgspec.structs.replace(self._usage, web_search_requests=self.searches)


def _add_usage(a: ir.Usage, b: ir.Usage) -> ir.Usage:
    return ir.Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_read_input_tokens=a.cache_read_input_tokens + b.cache_read_input_tokens,
        cache_creation_input_tokens=a.cache_creation_input_tokens
        + b.cache_creation_input_tokens,
        reasoning_tokens=(
            None
            if a.reasoning_tokens is None and b.reasoning_tokens is None
            else (a.reasoning_tokens or 0) + (b.reasoning_tokens or 0)
        ),
    )


# --- citations --------------------------------------------------------------------------

_MARKERS = re.compile(r"(?:\s?\[\d{1,3}\])+[.,;:!?。，；]?")  # with its punctuation
_NUMBER = re.compile(r"\d+")


def cite(text: str, hits: Sequence[SearchHit]) -> list[ir.TextBlock]:
    """``text`` split after each run of ``[n]`` markers (and the punctuation after them);
    each piece that ends with markers naming known results carries their
    ``web_search_result_location`` citations.

    The markers stay in the text, so a client that ignores citations still shows them.
    """
    out: list[ir.TextBlock] = []
    pos = 0
    for m in _MARKERS.finditer(text):
        cites = []
        for num in dict.fromkeys(int(n) for n in _NUMBER.findall(m.group())):
            if 1 <= num <= len(hits):
                cites.append(_citation(hits[num - 1], num))
        if not cites:
            continue
        piece = text[pos : m.end()]
        if piece:
            out.append(ir.TextBlock(text=piece, citations=cites))
        pos = m.end()
    if pos < len(text):
        out.append(ir.TextBlock(text=text[pos:]))
    return out or [ir.TextBlock(text=text)]


def _citation(hit: SearchHit, number: int) -> dict[str, Any]:
    index = base64.urlsafe_b64encode(str(number).encode()).decode()
    return {
        "type": "web_search_result_location",
        "url": hit.url,
        "title": hit.title,
        "encrypted_index": index,
        "cited_text": (hit.content or hit.title)[:_CITED_CHARS],
    }


# --- streaming --------------------------------------------------------------------------


def block_events(index: int, block: ir.Block) -> list[ev.Event]:
    """One whole block as stream events (start, deltas, stop) at ``index``."""
    match block:
        case ir.TextBlock():
            shell: ir.Block = msgspec.structs.replace(block, text="")
            deltas: list[ev.Event] = (
                [ev.TextDelta(index=index, text=block.text)] if block.text else []
            )
        case ir.ThinkingBlock():
            shell = ir.ThinkingBlock(thinking="")
            deltas = []
            if block.thinking:
                deltas.append(ev.ThinkingDelta(index=index, thinking=block.thinking))
            if block.signature:
                deltas.append(ev.SignatureDelta(index=index, signature=block.signature))
        case ir.ToolUseBlock() | ir.ServerToolUseBlock():
            shell = msgspec.structs.replace(block, input={})
            raw = msgspec.json.encode(block.input).decode()
            deltas = [ev.InputJsonDelta(index=index, partial_json=raw)]
        case _:
            shell, deltas = block, []
    return [ev.BlockStart(index=index, block=shell), *deltas, ev.BlockStop(index=index)]
