"""Server tools run by the gateway: a bounded, sans-I/O loop over model rounds.

Theory of operation
-------------------
GLM cannot run Anthropic's server tools (``web_search_*``, ``web_fetch_*``): its
chat API knows nothing of them, and Z.ai's Anthropic endpoint does not document them. So
the gateway runs them itself, whatever the front door (the loop works on the IR; the
Anthropic door renders its blocks today, and the Responses ``web_search`` and Gemini
``googleSearch`` tools can map onto the same blocks)::

    loop = ServerToolLoop.for_request(req)          # None: no server tool to run
    while True:
        resp = <model answer to loop.next_request()>   # driver: one upstream call
        calls = loop.feed(resp)                        # the calls the model made
        if not calls: break
        for call in calls:
            blocks = loop.record(call, <driver: search or fetch>)  # result or failure
            <stream blocks to the client>
    answer = loop.result()

* Each round offers the model a ``web_search`` *function* (``query``) and/or a
  ``web_fetch`` function (``url``) in place of the server tools; the client's own tools
  stay. The first round keeps a client's forced choice of the tool (Claude Code forces
  ``web_search``; GLM only takes ``auto``, so the codec turns it into an instruction);
  later rounds are ``auto``.
* A search call becomes a ``server_tool_use`` block (id ``srvtoolu_…``) and a
  ``web_search_tool_result`` block for the client, and a numbered tool result for the
  model, who is asked to cite results as ``[n]``. A fetch becomes ``server_tool_use`` and
  ``web_fetch_tool_result`` (an :class:`ir.UnknownBlock`: the IR has no such block, and the
  Anthropic door passes it through verbatim), the page text going to the model. The final
  text is split at the ``[n]`` markers into text blocks carrying
  ``web_search_result_location`` citations.
* Bounds: ``max_uses`` calls per tool (a further call gets a ``max_uses_exceeded`` result
  and the function is no longer offered), and at most the sum of the ``max_uses`` plus 2
  rounds; the last round offers neither function. A failed or rate-limited call is a
  result too (an error block, and a tool error for the model): it never fails the turn.
* A round that also calls client tools ends the loop: its server calls are run and shown,
  and the answer stops with ``tool_use`` for the client to run its tools.
* ``usage`` adds up every round; ``web_search_requests`` / ``web_fetch_requests`` count the
  searches and fetches run.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, TypeAlias

import msgspec

from glmbridge import events as ev
from glmbridge import ids, ir
from glmbridge.webfetch import (
    FetchedPage,
    FetchFailure,
    FetchOptions,
    check_url,
    fetch_error,
    fetch_result,
    page_for_model,
)
from glmbridge.websearch import (
    MAX_QUERY_CHARS,
    SearchFailure,
    SearchHit,
    SearchOptions,
    hits_for_model,
    result_content,
)

__all__ = [
    "FETCH_FUNCTION",
    "SEARCH_FUNCTION",
    "ServerCall",
    "ServerToolLoop",
    "block_events",
    "cite",
    "is_web_fetch",
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
FETCH_FUNCTION_NAME = "web_fetch"
FETCH_FUNCTION = ir.Tool(
    name=FETCH_FUNCTION_NAME,
    description=(
        "Fetch a web page (http or https URL) and return its text. Use it for URLs the user "
        "gave or that earlier results named; it cannot reach private or local addresses."
    ),
    input_schema={
        "type": "object",
        "properties": {"url": {"type": "string", "description": "The full URL to fetch"}},
        "required": ["url"],
    },
)
_FUNCTIONS = {SEARCH_FUNCTION_NAME: SEARCH_FUNCTION, FETCH_FUNCTION_NAME: FETCH_FUNCTION}
_ARGUMENT = {SEARCH_FUNCTION_NAME: "query", FETCH_FUNCTION_NAME: "url"}
_MAX_USES_DEFAULT = 5
_CITED_CHARS = 150  # Anthropic's cited_text is at most 150 characters

Failure: TypeAlias = SearchFailure | FetchFailure
Outcome: TypeAlias = Sequence[SearchHit] | FetchedPage | SearchFailure | FetchFailure


_SERVER_TYPE = attrgetter("server_type")


def is_web_search(tool: ir.Tool) -> bool:
    """Whether ``tool`` is a web search server tool (any version)."""
    return tool.server_type is not None and tool.server_type.startswith("web_search")


def is_web_fetch(tool: ir.Tool) -> bool:
    """Whether ``tool`` is a web fetch server tool (any version)."""
    return tool.server_type is not None and tool.server_type.startswith("web_fetch")


@dataclass(frozen=True, slots=True)
class ServerCall:
    """One server tool call the model made: ``name`` is ``web_search`` or ``web_fetch``,
    ``argument`` its query or URL, ``id`` the client's ``srvtoolu_…`` id."""

    id: str
    name: str
    argument: str
    call_id: str  # the model's own tool-call id
    failure: Failure | None = None  # refused before running (max uses, bad input)


@dataclass(slots=True)
class _Round:
    """What one round adds to the history: the model's blocks and the tool results."""

    assistant: list[ir.Block] = field(default_factory=list)
    results: list[ir.Block] = field(default_factory=list)
    calls: int = 0


class ServerToolLoop:
    """The state of one server-tool turn (see the module docstring)."""

    def __init__(
        self,
        req: ir.Request,
        search: SearchOptions | None = None,
        fetch: FetchOptions | None = None,
    ) -> None:
        self.request = req
        self.options = search or SearchOptions()
        self.fetch_options = fetch or FetchOptions()
        self._max_uses: dict[str, int] = {}
        if search is not None:
            self._max_uses[SEARCH_FUNCTION_NAME] = search.max_uses or _MAX_USES_DEFAULT
        if fetch is not None:
            self._max_uses[FETCH_FUNCTION_NAME] = fetch.max_uses or _MAX_USES_DEFAULT
        self._uses = dict.fromkeys(self._max_uses, 0)  # calls accepted, against max_uses
        self._max_rounds = sum(self._max_uses.values()) + 1
        ours = (is_web_search, is_web_fetch)
        self._client_tools = [t for t in req.tools if not any(f(t) for f in ours)]
        self._history = list(req.messages)
        self._blocks: list[ir.Block] = []  # for the client, in order
        self._hits: list[SearchHit] = []  # numbered [1], [2] … across the turn
        self._round: _Round | None = None
        self._rounds = 0
        self._final: ir.Response | None = None
        self._usage = ir.Usage()
        self.searches = 0  # searches run (web_search_requests)
        self.fetches = 0  # pages fetched (web_fetch_requests)

    @property
    def max_uses(self) -> int:
        """The search limit of this turn."""
        return self._max_uses.get(SEARCH_FUNCTION_NAME, 0)

    @classmethod
    def for_request(
        cls, req: ir.Request, *, search: bool = True, fetch: bool = True
    ) -> ServerToolLoop | None:
        """The loop for ``req``, or ``None`` when it has no server tool the gateway runs
        (``search``/``fetch``: whether it runs that kind).

        Raises:
            ClientRequestError: a tool's settings are invalid (names the field).
        """
        found_search: SearchOptions | None = None
        found_fetch: FetchOptions | None = None
        if not any(map(_SERVER_TYPE, req.tools)):  # the usual case: client tools only
            return None
        for i, tool in enumerate(req.tools):
            if search and found_search is None and is_web_search(tool):
                found_search = SearchOptions.from_config(tool.config, f"tools.{i}")
            elif fetch and found_fetch is None and is_web_fetch(tool):
                found_fetch = FetchOptions.from_config(tool.config, f"tools.{i}")
        if found_search is None and found_fetch is None:
            return None
        return cls(req, found_search, found_fetch)

    @property
    def blocks(self) -> list[ir.Block]:
        """The blocks produced for the client so far."""
        return self._blocks

    def _offered(self) -> list[ir.Tool]:
        if self._rounds >= self._max_rounds:
            return []
        return [_FUNCTIONS[n] for n, most in self._max_uses.items() if self._uses[n] < most]

    def next_request(self) -> ir.Request:
        """The model request of the next round (not streamed: the gateway reads it whole)."""
        req = self.request
        offered = self._offered()
        tools = [*self._client_tools, *offered]
        choice = req.tool_choice
        if choice is not None and (self._rounds > 0 or not offered):
            if choice.type == "tool" and choice.name in _FUNCTIONS:
                choice = None  # forced once: the model has called it (or cannot any more)
            elif choice.type == "any" and not self._client_tools:
                choice = None
        if not tools:
            choice = None
        return msgspec.structs.replace(
            req, messages=self._history, tools=tools, tool_choice=choice, stream=False
        )

    def feed(self, resp: ir.Response) -> list[ServerCall]:
        """Take one round's answer; return the calls to run (``[]``: the turn is done)."""
        self._rounds += 1
        self._usage = _add_usage(self._usage, resp.usage)
        ours = [b for b in resp.content if self._is_ours(b)]
        if not ours:
            self._final = resp
            return []
        rnd = self._round = _Round(calls=len(ours))
        calls: list[ServerCall] = []
        client_calls: list[ir.Block] = []
        for block in resp.content:
            if isinstance(block, ir.ToolUseBlock):
                rnd.assistant.append(block)
                if self._is_ours(block):
                    calls.append(self._call(block))
                else:
                    client_calls.append(block)
            elif isinstance(block, (ir.TextBlock, ir.ThinkingBlock, ir.RedactedThinkingBlock)):
                rnd.assistant.append(block)
                if not (isinstance(block, ir.TextBlock) and not block.text.strip()):
                    self._blocks.append(block)
        if client_calls:  # the client runs its tools; the loop ends with them
            self._final = msgspec.structs.replace(
                resp, content=client_calls, stop_reason=ir.StopReason.TOOL_USE
            )
        return calls

    def _is_ours(self, block: ir.Block) -> bool:
        return isinstance(block, ir.ToolUseBlock) and block.name in self._max_uses

    def _call(self, block: ir.ToolUseBlock) -> ServerCall:
        sid = "srvtoolu_" + ids.new_tool_use_id().removeprefix("toolu_")
        name = block.name
        value = block.input.get(_ARGUMENT[name])
        argument = " ".join(value.split()) if isinstance(value, str) else ""
        failure = (
            _search_refusal(argument)
            if name == SEARCH_FUNCTION_NAME
            else check_url(argument, self.fetch_options)
        )
        if failure is None and self._uses[name] >= self._max_uses[name]:
            failure = _exceeded(name, self._max_uses[name])
        if failure is None:
            self._uses[name] += 1
        return ServerCall(sid, name, argument, block.id, failure)

    def record(self, call: ServerCall, outcome: Outcome) -> list[ir.Block]:
        """Take one call's outcome; return the client's two blocks for it."""
        if call.failure is None:
            if call.name == SEARCH_FUNCTION_NAME:
                self.searches += 1
            else:
                self.fetches += 1
        failure = call.failure
        if failure is None and isinstance(outcome, (SearchFailure, FetchFailure)):
            failure = outcome
        key = _ARGUMENT[call.name]
        use = ir.ServerToolUseBlock(id=call.id, name=call.name, input={key: call.argument})
        if call.name == SEARCH_FUNCTION_NAME:
            result, text = self._search_result(call, outcome, failure)
        else:
            result, text = self._fetch_result(call, outcome, failure)
        tool_result = ir.ToolResultBlock(
            tool_use_id=call.call_id, content=[ir.TextBlock(text=text)],
            is_error=failure is not None,
        )  # fmt: skip
        out: list[ir.Block] = [use, result]
        self._blocks.extend(out)
        rnd = self._round
        if rnd is not None:
            rnd.results.append(tool_result)
            if len(rnd.results) == rnd.calls:
                self._close_round()
        return out

    def _search_result(
        self, call: ServerCall, outcome: Outcome, failure: Failure | None
    ) -> tuple[ir.Block, str]:
        if failure is not None:
            content: Any = {"type": "web_search_tool_result_error",
                            "error_code": failure.error_code}  # fmt: skip
            text = f"Web search failed ({failure.error_code}): {failure.message}"
        else:
            hits = list(outcome) if isinstance(outcome, Sequence) else []
            first = len(self._hits) + 1
            self._hits.extend(hits)
            content = result_content(hits)
            text = hits_for_model(call.argument, enumerate(hits, first))
        return ir.WebSearchToolResultBlock(tool_use_id=call.id, content=content), text

    def _fetch_result(
        self, call: ServerCall, outcome: Outcome, failure: Failure | None
    ) -> tuple[ir.Block, str]:
        if failure is not None or not isinstance(outcome, FetchedPage):
            failure = failure or FetchFailure("unavailable", "no page")
            content = fetch_error(failure)
            text = f"Web fetch failed ({failure.error_code}): {failure.message}"
        else:
            content = fetch_result(outcome, self.fetch_options)
            text = page_for_model(outcome, self.fetch_options)
        raw = {"type": "web_fetch_tool_result", "tool_use_id": call.id, "content": content}
        return ir.UnknownBlock(original_type="web_fetch_tool_result", raw=raw), text

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
            elif self._is_ours(block):
                continue  # a call on the last round (cannot happen: none offered)
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
        return msgspec.structs.replace(
            self._usage, web_search_requests=self.searches, web_fetch_requests=self.fetches
        )


def _search_refusal(query: str) -> SearchFailure | None:
    if not query:
        return SearchFailure("invalid_tool_input", "the query must be a non-empty string")
    if len(query) > MAX_QUERY_CHARS:
        return SearchFailure(
            "query_too_long", f"the query is longer than {MAX_QUERY_CHARS} characters"
        )
    return None


def _exceeded(name: str, most: int) -> Failure:
    message = f"the {name} limit of this turn ({most}) is reached; answer with what you have"
    if name == SEARCH_FUNCTION_NAME:
        return SearchFailure("max_uses_exceeded", message)
    return FetchFailure("max_uses_exceeded", message)


def _add_usage(a: ir.Usage, b: ir.Usage) -> ir.Usage:
    return ir.Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_read_input_tokens=a.cache_read_input_tokens + b.cache_read_input_tokens,
        cache_creation_input_tokens=a.cache_creation_input_tokens + b.cache_creation_input_tokens,
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
