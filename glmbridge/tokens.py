"""Local token estimates (no tokenizer download): for count_tokens and usage seeding.

Calibration
-----------
GLM's tokenizer is a byte-level BPE with a large (~150K) vocabulary, like the
OpenAI ``o200k``/``cl100k`` family. Such tokenizers first split text with a regex
(words with their leading space, digit groups, punctuation runs, whitespace runs)
and then merge bytes inside each piece. For common English and code almost every
piece is one token, so counting *approximated pieces* is a good estimate:

* a letter run with an optional leading space is one token per 8 letters (common
  words are whole tokens; long identifiers split);
* digits group by 3 (``12345`` is two tokens);
* punctuation groups by 2 (``"):``, ``{"`` are frequent merged tokens);
* a whitespace run (a newline plus indentation) is one token.

On typical text this gives about 4.2 characters per token for English prose,
3-3.5 for source code and about 3 for JSON, matching published averages of those
tokenizers. CJK text costs about one token per 1.3 characters (GLM's vocabulary is
rich in Chinese; Japanese and Korean fare a little worse), and other non-ASCII
letters add one token per 3 extra UTF-8 bytes (accented Latin is nearly free,
Cyrillic/Greek cost more, emoji several tokens). The estimate is a count of
matches, so it only grows as text is appended: it is monotone and never constant.

Request-level costs (images, documents, per-message framing, the tool preamble)
are module constants below, with their reasons.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from math import ceil

import msgspec

from glmbridge import ir

__all__ = ["estimate_request_tokens", "estimate_text_tokens"]

# Pieces of ASCII text, each about one BPE token (see Calibration above).
_ASCII_PIECE = re.compile(r" ?[A-Za-z]{1,8}| ?\d{1,3}| ?[^\sA-Za-z\d]{1,2}|\s+")
# The same for any script: \w minus digits/underscore are letters of any alphabet.
_UNICODE_PIECE = re.compile(r" ?[^\W\d_]{1,8}| ?\d{1,3}| ?(?:[^\s\w]|_){1,2}|\s+")
# Han, kana, hangul, CJK punctuation and full-width forms.
_CJK_RUN = re.compile(
    "[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]+"
)
_CJK_CHARS_PER_TOKEN = 1.3
_EXTRA_UTF8_BYTES_PER_TOKEN = 3  # non-CJK multi-byte characters

IMAGE_TOKENS = 1600
"""An image of unknown size: Anthropic's cost of a ~1.15 MP image (w*h/750, capped)."""
VIDEO_TOKENS = 8000
"""A video of unknown length: a few seconds of frames at GLM-4.6V's rate."""
DOCUMENT_TOKENS = 1600
"""A document given by URL or file id (size unknown): about one page."""
_PDF_BYTES_PER_TOKEN = 8  # text PDFs: ~50 KB/page with fonts, ~2-3K tokens per page + page image
_MESSAGE_OVERHEAD = 4  # role markers and separators of the chat template
_BLOCK_OVERHEAD = 1  # joins between content parts
_REQUEST_OVERHEAD = 3  # start of the prompt and the assistant turn prefix
_TOOL_OVERHEAD = 8  # per-tool wrapper of name/description/parameters in the template
_TOOLS_PREAMBLE = 80  # the template's "you may call these functions" instructions
_SERVER_TOOL = 120  # hidden instructions of a server tool (web search) besides its config
_JSON_CHARS_PER_TOKEN = 3  # raw JSON schemas: quotes, braces and short keys

_json_encode = msgspec.json.Encoder().encode


def estimate_text_tokens(text: str) -> int:
    """Estimate the number of GLM tokens in ``text`` (see the module Calibration)."""
    if not text:
        return 0
    if text.isascii():
        return len(_ASCII_PIECE.findall(text))
    cjk = sum(map(len, _CJK_RUN.findall(text)))
    rest = _CJK_RUN.sub("", text) if cjk else text
    extra_bytes = len(rest.encode("utf-8", "surrogatepass")) - len(rest)
    return (
        len(_UNICODE_PIECE.findall(rest))
        + ceil(cjk / _CJK_CHARS_PER_TOKEN)
        + ceil(extra_bytes / _EXTRA_UTF8_BYTES_PER_TOKEN)
    )


def _json_tokens(value: object) -> int:
    """Tokens of a value as compact JSON (tool inputs, opaque blocks)."""
    try:
        raw = _json_encode(value)
    except (TypeError, msgspec.EncodeError):
        raw = repr(value).encode()
    return estimate_text_tokens(raw.decode("utf-8", "replace"))


def _media_tokens(source: ir.MediaSource, unknown: int) -> int:
    if source.type == "text":
        return estimate_text_tokens(source.data or "")
    return unknown


def _document_tokens(block: ir.DocumentBlock) -> int:
    source = block.source
    if source.type == "text":
        body = estimate_text_tokens(source.data or "")
    elif source.type == "base64" and source.data:
        body = max(len(source.data) * 3 // 4 // _PDF_BYTES_PER_TOKEN, 1)
    else:
        body = DOCUMENT_TOKENS
    return (
        body + estimate_text_tokens(block.title or "") + estimate_text_tokens(block.context or "")
    )


def _block_tokens(block: ir.Block) -> int:
    """Tokens of one content block (nested tool results included)."""
    if isinstance(block, ir.TextBlock):
        return estimate_text_tokens(block.text)
    if isinstance(block, ir.ThinkingBlock):
        return estimate_text_tokens(block.thinking)  # the signature is never sent upstream
    if isinstance(block, (ir.ToolUseBlock, ir.ServerToolUseBlock)):
        return estimate_text_tokens(block.name) + _json_tokens(block.input)
    if isinstance(block, ir.ToolResultBlock):
        return _blocks_tokens(block.content) + estimate_text_tokens(block.tool_use_id)
    if isinstance(block, ir.ImageBlock):
        return _media_tokens(block.source, IMAGE_TOKENS)
    if isinstance(block, ir.VideoBlock):
        return _media_tokens(block.source, VIDEO_TOKENS)
    if isinstance(block, ir.DocumentBlock):
        return _document_tokens(block)
    if isinstance(block, ir.SearchResultBlock):
        header = estimate_text_tokens(block.source) + estimate_text_tokens(block.title)
        return header + _blocks_tokens(block.content)
    if isinstance(block, ir.RedactedThinkingBlock):
        return ceil(len(block.data) / 4)  # opaque base64; billed by Anthropic, so counted
    if isinstance(block, ir.WebSearchToolResultBlock):
        return _json_tokens(block.content)
    return _json_tokens(block.raw)  # UnknownBlock: counted as its JSON


def _blocks_tokens(blocks: Iterable[ir.Block]) -> int:
    return sum(_block_tokens(b) + _BLOCK_OVERHEAD for b in blocks)


def _tool_tokens(tool: ir.Tool) -> int:
    tokens = _TOOL_OVERHEAD + estimate_text_tokens(tool.name)
    tokens += estimate_text_tokens(tool.description or "")
    schema = tool.input_schema
    if isinstance(schema, msgspec.Raw):
        tokens += ceil(len(schema) / _JSON_CHARS_PER_TOKEN)
    elif schema is not None:
        tokens += ceil(len(_json_encode(schema)) / _JSON_CHARS_PER_TOKEN)
    if tool.server_type is not None:
        tokens += _SERVER_TOOL + _json_tokens(tool.config or {})
    return tokens


def estimate_request_tokens(req: ir.Request) -> int:
    """Estimate the input tokens of ``req``: system, every message block, and tools.

    Images and videos of unknown size count as :data:`IMAGE_TOKENS` /
    :data:`VIDEO_TOKENS`; base64 PDFs count by size; each message adds its template
    framing. The result grows with any added content.
    """
    tokens = _REQUEST_OVERHEAD
    if req.system:
        tokens += _MESSAGE_OVERHEAD + _blocks_tokens(req.system)
    for message in req.messages:
        tokens += _MESSAGE_OVERHEAD + _blocks_tokens(message.content)
    if req.tools:
        tokens += _TOOLS_PREAMBLE + sum(_tool_tokens(tool) for tool in req.tools)
    return tokens
