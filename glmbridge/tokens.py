"""Local token estimates (no tokenizer download): for count_tokens and usage seeding.

Calibration
-----------
The reference is GLM's own count: GLM's byte-level BPE tokenizer (GLM-4.5's 151K
vocabulary; GLM-4.7 and 5.x extend it) applied to the prompt GLM's chat template renders
from the chat-completions body. That reference reproduces the ``prompt_tokens`` of real
Z.ai answers to within a token (charmbracelet/fantasy's recorded Z.ai traffic), and every
recorded Claude Code, Codex and gemini-cli request is held to it within 10%
(``tests/fixtures/token_counts/README.md``, ``tests/glmbridge/test_token_truth.py``).

The tokenizer first splits text with a regex (a letter run with its leading space or one
punctuation mark, digit groups of up to 3, a punctuation run, whitespace runs), then
merges bytes inside each piece. GLM's vocabulary holds most English words, identifiers
and JSON punctuation runs whole, so the estimate is a count of those *pieces* plus a
fitted share per punctuation byte, newline and digit (least squares on the recorded
requests' texts and on this repository's docs and source: +3% and -1% of the total,
6% and 4% mean error per text). Long words cost only through a small share per byte:
random strings (hashes, base64: about a token a character in GLM) are underestimated.

Non-ASCII text: a run of non-ASCII letters is a piece like an ASCII word, and each
character adds a share by script, measured on the same tokenizer (``_NON_ASCII_COSTS``:
Chinese is ~1.7 characters per token, Cyrillic nearly as cheap as English, Hebrew a
token per letter). Every count only grows as text is appended, and a new
whitespace-separated word always adds a token.

Request-level costs (the chat template's framing, the tool preamble and each tool's
JSON line, images, documents) are module constants below, with their reasons.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable
from math import ceil, floor

import msgspec

from glmbridge import ir

__all__ = ["TokenEstimator", "estimate_request_tokens", "estimate_text_tokens"]

# Byte classes for the C-speed counts of _ascii_tokens and _schema_tokens.
_PUNCT_BYTES = string.punctuation.encode()
_DIGIT_BYTES = string.digits.encode()
_PUNCT_DIGIT_BYTES = _PUNCT_BYTES + _DIGIT_BYTES
# One bit per byte (the low bit) for _ascii_tokens' masks: ASCII punctuation, and the word
# bytes (neither punctuation nor ASCII whitespace: letters, digits, non-ASCII).
_WHITESPACE = b" \t\n\r\x0b\x0c"  # what bytes.isspace() and bytes.split() take
_PUNCT_BITS = bytes(b in _PUNCT_BYTES for b in range(256))
_WORD_BITS = bytes(b not in _PUNCT_BYTES and b not in _WHITESPACE for b in range(256))
_ASCII_BYTES = bytes(range(128))
# What a non-ASCII character adds to its word's piece, by its UTF-8 lead byte (measured
# on GLM's tokenizer: tests/fixtures/token_counts; Chinese is ~1.7 characters per token).
_NON_ASCII_COSTS = (
    (bytes([*range(0xE3, 0xEE), 0xEF]), 0.6),  # CJK, kana, hangul, full-width forms
    (bytes(range(0xD0, 0xD5)), 0.1),  # Cyrillic
    (bytes(range(0xD6, 0xD8)), 1.0),  # Hebrew
    (bytes(range(0xD8, 0xDC)), 0.15),  # Arabic
    (bytes([*range(0xC2, 0xD0), 0xD5, *range(0xDC, 0xE0)]), 0.3),  # accents, Greek, ...
    (bytes([0xE0, 0xE1, 0xE2, 0xEE]), 0.7),  # Indic, dashes, quotes, symbols
    (bytes(range(0xF0, 0xF5)), 1.5),  # emoji and other astral characters
)
# The fit of _ascii_tokens (a piece counts 1).
_PER_PUNCT = 0.24
_PER_NEWLINE = 0.67
_PER_DIGIT = 0.66  # digit groups of 3, and digits glued to letters split off
# GLM splits long words (a long identifier ~4 bytes a token, a hash or base64 ~1): a share
# per byte of any text stands in for it, fixed at what the recorded texts barely feel.
_PER_BYTE = 0.01

IMAGE_TOKENS = 1600
"""An image of unknown size: Anthropic's cost of a ~1.15 MP image (w*h/750, capped)."""
VIDEO_TOKENS = 8000
"""A video of unknown length: a few seconds of frames at GLM-4.6V's rate."""
DOCUMENT_TOKENS = 1600
"""A document given by URL or file id (size unknown): about one page."""
_PDF_BYTES_PER_TOKEN = 8  # text PDFs: ~50 KB/page with fonts, ~2-3K tokens per page + page image
# GLM's chat template (zai-org's GLM-4.7 and GLM-5.2 chat_template.jinja): ``[gMASK]<sop>``
# and the ``<|assistant|><think>`` the answer starts with (or ``<think></think>``), GLM-5.2's
# ``<|system|>Reasoning Effort: Max`` line unless thinking is disabled; a role token per
# message.
_REQUEST_OVERHEAD = 5
_REASONING_EFFORT_LINE = 6
_MESSAGE_OVERHEAD = 1  # <|user|>, <|system|>
_ASSISTANT_OVERHEAD = 3  # <|assistant|> and an empty <think></think>
_TOOL_CALL_OVERHEAD = 2  # <tool_call> ... </tool_call> (arguments as JSON below)
_TOOL_RESULT_OVERHEAD = 3  # <|observation|><tool_response> ... </tool_response>
_TOOLS_PREAMBLE = 96  # the template's "# Tools ... <tools></tools> ... <tool_call>" text
_SERVER_TOOL = 90  # a web search/fetch server tool: the gateway's function (name, text, schema)
_SCHEMA_NOTE = 13  # "Respond only with a JSON object that conforms to this JSON Schema:"
_FORCED_CHOICE_NOTE = 14  # "In this response you must call the `name` tool." (GLM has only auto)
# A tool's line is ``json.dumps(function)``: its name and description as text, then the
# schema from byte counts of its compact JSON (a fit on the recorded tools' rendered lines:
# 2% mean error; a pretty-printed schema counts its indentation as spaces) and a wrapper.
_TOOL_OVERHEAD = 12
_SCHEMA_PER_MARK = 0.54  # punctuation and digits
_SCHEMA_PER_SPACE = 0.35  # words of the descriptions inside the schema
_SCHEMA_PER_BYTE = 0.13

_json_encode = msgspec.json.Encoder(decimal_format="number").encode


def estimate_text_tokens(text: str) -> int:
    """Estimate the number of GLM tokens in ``text`` (see the module Calibration)."""
    if not text:
        return 0
    if text.isascii():
        return _ascii_tokens(text.encode("ascii"), 0.0)
    data = text.encode("utf-8", "surrogatepass")
    high = data.translate(None, _ASCII_BYTES)  # one pass; usually a few bytes
    n = len(high)
    extra = sum(cost * (n - len(high.translate(None, leads))) for leads, cost in _NON_ASCII_COSTS)
    return _ascii_tokens(data, extra)  # words of any script, ASCII punctuation, digits


def _ascii_tokens(data: bytes, extra: float) -> int:
    """Token estimate from byte-class counts, at C speed.

    The tokenizer's regex pieces, one token each: with the byte classes *word* (letters,
    digits, non-ASCII), *punctuation* (ASCII) and whitespace, a piece starts at every
    non-whitespace byte after whitespace (a word with its leading space, or a punctuation
    run), at every punctuation byte after a word byte, and at leading whitespace. Plus
    the fitted share per punctuation byte (long runs split), newline, digit and byte
    (``_PER_*``), plus ``extra``. The byte-pair tests run on two bit masks (one bit per
    byte, ``int.from_bytes``), about twice as fast as ``bytes.count`` of each pair. Every
    count only grows as text is appended, and whitespace followed by anything else starts
    a piece, so a new word always adds a token.
    """
    word = int.from_bytes(data.translate(_WORD_BITS), "little")
    punct = int.from_bytes(data.translate(_PUNCT_BITS), "little")
    solid = word | punct
    pieces = (
        (solid & ~(solid << 8)).bit_count()  # after whitespace, or first
        + (punct & (word << 8)).bit_count()
        + data[:1].isspace()
    )
    digits = len(data) - len(data.translate(None, _DIGIT_BYTES))
    extra += (
        _PER_PUNCT * punct.bit_count()
        + _PER_NEWLINE * data.count(b"\n")
        + _PER_DIGIT * digits
        + _PER_BYTE * len(data)
    )
    return pieces + floor(extra)


def _schema_tokens(data: bytes) -> int:
    """A compact JSON schema as GLM's template prints it (``json.dumps``: ", " and ": "),
    from byte counts (a fit on the recorded tools' lines)."""
    marks = len(data) - len(data.translate(None, _PUNCT_DIGIT_BYTES))
    return floor(
        _SCHEMA_PER_MARK * marks
        + _SCHEMA_PER_SPACE * data.count(b" ")
        + _SCHEMA_PER_BYTE * len(data)
    )


_MAX_REMEMBERED_TOOLS = 4096  # distinct tool objects a TokenEstimator remembers


class TokenEstimator:
    """Request token estimates with a memo of long texts, owned by the caller.

    :func:`estimate_request_tokens` re-reads every text of a request. Agents such as
    Claude Code resend the same system prompt, tool descriptions and history on every
    turn, so a server keeps one estimator and pays only for what is new: texts of
    ``min_cached_chars`` or more are remembered (looking one up costs a hash of the
    string, ~10x less than estimating it). The memo is bounded by
    ``max_cached_chars`` in total and simply starts over when full. Results are
    identical to :func:`estimate_request_tokens`. Not thread-safe; use one per thread
    or event loop.
    """

    def __init__(self, *, min_cached_chars: int = 32, max_cached_chars: int = 32 << 20) -> None:
        self._min = min_cached_chars
        self._max = max_cached_chars
        self._memo: dict[str, int] = {}
        self._memo_chars = 0
        # Tools by identity: a door that remembers its tool definitions (glmbridge.memo)
        # hands back the same objects every turn; the entry holds the tool, so its id is
        # not reused while the entry lives.
        self._tools: dict[int, tuple[ir.Tool, int]] = {}
        # The last tool list's sum, by the identity of its tools (the entry holds them).
        self._last_tools: tuple[tuple[int, ...], tuple[ir.Tool, ...], int] = ((), (), 0)

    def text_tokens(self, text: str) -> int:
        """:func:`estimate_text_tokens`, remembered for long texts."""
        if len(text) < self._min:
            return estimate_text_tokens(text)
        tokens = self._memo.get(text)
        if tokens is None:
            tokens = estimate_text_tokens(text)
            if self._memo_chars + len(text) > self._max:
                self._memo.clear()
                self._memo_chars = 0
            self._memo[text] = tokens
            self._memo_chars += len(text)
        return tokens

    def tool_tokens(self, tool: ir.Tool) -> int:
        """The tokens of one tool definition, remembered for the same tool object."""
        entry = self._tools.get(id(tool))
        if entry is not None and entry[0] is tool:
            return entry[1]
        tokens = _Counter(self.text_tokens).tool(tool)
        if len(self._tools) >= _MAX_REMEMBERED_TOOLS:
            self._tools.clear()
        self._tools[id(tool)] = (tool, tokens)
        return tokens

    def tools_tokens(self, tools: list[ir.Tool]) -> int:
        """The tokens of a list of tool definitions; the last list's sum is remembered
        for the same tool objects in the same order (one comparison instead of a call per
        tool: the door hands back the same objects for a resent array)."""
        ids = tuple(map(id, tools))
        last = self._last_tools
        if ids == last[0]:  # the entry holds those tools: their ids are not reused
            return last[2]
        total = sum(map(self.tool_tokens, tools))
        self._last_tools = (ids, tuple(tools), total)
        return total

    def request_tokens(self, req: ir.Request) -> int:
        """Estimate the input tokens of ``req`` (see :func:`estimate_request_tokens`)."""
        return _Counter(self.text_tokens, self.tools_tokens).request(req)


def estimate_request_tokens(req: ir.Request) -> int:
    """Estimate the input tokens of ``req``: system, every message block, and tools.

    Images and videos of unknown size count as :data:`IMAGE_TOKENS` /
    :data:`VIDEO_TOKENS`; base64 PDFs count by size; each message adds its template
    framing. The result grows with any added content. A caller estimating many
    requests of one conversation should keep a :class:`TokenEstimator`.
    """
    return _Counter(estimate_text_tokens).request(req)


class _Counter:
    """Walks a request, counting texts with ``text`` (plain or memoised)."""

    __slots__ = ("all_tools", "text")

    def __init__(
        self, text: Callable[[str], int], tools: Callable[[list[ir.Tool]], int] | None = None
    ) -> None:
        self.text = text
        self.all_tools = tools or self.tools

    def request(self, req: ir.Request) -> int:
        tokens = _REQUEST_OVERHEAD
        if req.thinking is None or req.thinking.type != "disabled":
            tokens += _REASONING_EFFORT_LINE
        if req.system:
            tokens += _MESSAGE_OVERHEAD + self.blocks(req.system)
        fmt = req.response_format
        if fmt is not None and fmt.schema is not None:
            tokens += _SCHEMA_NOTE + self.json(fmt.schema)  # appended to the system prompt
        # GLM's template drops the reasoning of turns before the last user message.
        last_user = _last_user_turn(req.messages)
        for i, message in enumerate(req.messages):
            if message.role == "assistant":
                tokens += _ASSISTANT_OVERHEAD + self.blocks(message.content, i > last_user)
            else:
                tokens += _MESSAGE_OVERHEAD + self.blocks(message.content)
        if req.tools:
            tokens += _TOOLS_PREAMBLE + self.all_tools(req.tools)
            choice = req.tool_choice
            if choice is not None and choice.type in ("any", "tool"):
                tokens += _FORCED_CHOICE_NOTE  # a system line (upstream_request._tool_choice)
        return tokens

    def blocks(self, blocks: Iterable[ir.Block], reasoning: bool = True) -> int:
        block = self.block
        if reasoning:
            return sum(block(b) for b in blocks)
        return sum(block(b) for b in blocks if not isinstance(b, ir.ThinkingBlock))

    def block(self, block: ir.Block) -> int:
        """Tokens of one content block (nested tool results included)."""
        text = self.text
        if isinstance(block, ir.TextBlock):
            return text(block.text)
        if isinstance(block, ir.ThinkingBlock):
            return text(block.thinking)  # the signature is never sent upstream
        if isinstance(block, (ir.ToolUseBlock, ir.ServerToolUseBlock)):
            return _TOOL_CALL_OVERHEAD + text(block.name) + self.json(block.input)
        if isinstance(block, ir.ToolResultBlock):
            return _TOOL_RESULT_OVERHEAD + self.blocks(block.content)  # the id is not shown
        if isinstance(block, ir.ImageBlock):
            return self.media(block.source, IMAGE_TOKENS)
        if isinstance(block, ir.VideoBlock):
            return self.media(block.source, VIDEO_TOKENS)
        if isinstance(block, ir.DocumentBlock):
            return self.document(block)
        if isinstance(block, ir.SearchResultBlock):
            return text(block.source) + text(block.title) + self.blocks(block.content)
        if isinstance(block, ir.RedactedThinkingBlock):
            return ceil(len(block.data) / 4)  # opaque base64; billed by Anthropic, so counted
        if isinstance(block, ir.WebSearchToolResultBlock):
            return self.json(block.content)
        return self.json(block.raw)  # UnknownBlock: counted as its JSON

    def json(self, value: object) -> int:
        """Tokens of a value as compact JSON (tool inputs, opaque blocks)."""
        try:
            raw = _json_encode(value)
        except (TypeError, msgspec.EncodeError):
            raw = repr(value).encode()
        return self.text(raw.decode("utf-8", "replace"))

    def media(self, source: ir.MediaSource, unknown: int) -> int:
        if source.type == "text":
            return self.text(source.data or "")
        return unknown

    def document(self, block: ir.DocumentBlock) -> int:
        source = block.source
        if source.type == "text":
            body = self.text(source.data or "")
        elif source.type == "base64" and source.data:
            body = max(len(source.data) * 3 // 4 // _PDF_BYTES_PER_TOKEN, 1)
        else:
            body = DOCUMENT_TOKENS
        return body + self.text(block.title or "") + self.text(block.context or "")

    def tools(self, tools: list[ir.Tool]) -> int:
        """Tokens of every tool definition."""
        return sum(map(self.tool, tools))

    def tool(self, tool: ir.Tool) -> int:
        if tool.server_type is not None:
            return _SERVER_TOOL  # replaced by the gateway's own function (server_tools)
        tokens = _TOOL_OVERHEAD + self.text(tool.name) + self.text(tool.description or "")
        schema = tool.input_schema
        if isinstance(schema, msgspec.Raw):
            tokens += _schema_tokens(bytes(schema))
        elif schema is not None:
            tokens += _schema_tokens(_json_encode(schema))
        return tokens


def _last_user_turn(messages: list[ir.Message]) -> int:
    """The index of the last user message that is not only tool results (-1: none)."""
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if message.role == "user" and not all(
            isinstance(b, ir.ToolResultBlock) for b in message.content
        ):
            return i
    return -1
