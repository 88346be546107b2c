"""Readable text from HTML in linear time, with a CPU budget: a small tokenizer of our own.

The standard library's ``html.parser`` is quadratic on input such as ``<a<a<a…`` (it
re-scans the unparsed rest after every incomplete construct): a 192 KiB page held the event
loop for 55 s (issue 24, item 2). This tokenizer moves forward only. Each step finds the
next ``<`` with :meth:`str.find` and reads one construct at that position with an anchored
regular expression whose alternatives start with distinct characters, so it cannot
backtrack across the input; an unterminated construct is taken as text up to the next
``<`` (a comment or a raw-text element such as ``<script>``, to the end); raw-text
elements are skipped with one search for their end tag. Nesting is counted, never stacked,
so depth costs nothing.

Budget: :func:`html_to_text` checks every :data:`_CHECK_EVERY` steps the CPU time of the
calling thread (:func:`time.thread_time`) and the wall clock against what it was given,
and raises :class:`HtmlTooComplex` past either: it is meant to run in a worker thread,
which nothing else can interrupt.
"""

from __future__ import annotations

import html as _html
import re
import time
from collections.abc import Iterator

__all__ = ["HtmlTooComplex", "html_to_text"]

_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "canvas", "iframe",
                   "object", "head", "button", "select", "form", "nav"})  # fmt: skip
_BLOCK = frozenset({"p", "div", "section", "article", "main", "header", "footer", "aside",
                    "br", "hr", "table", "tr", "ul", "ol", "dl", "dt", "dd", "pre",
                    "blockquote", "figure", "figcaption", "details", "summary"})  # fmt: skip
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed",
                   "source", "track", "wbr"})  # fmt: skip
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# Elements whose content is not markup: skipped (or, for title and textarea, read) as text
# up to their end tag.
_RAW = frozenset({"script", "style", "title", "textarea", "xmp", "iframe", "noembed",
                  "noframes", "plaintext"})  # fmt: skip
# The constructs at a "<", as HTML's tokenizer reads them (html.spec.whatwg.org, 13.2.5):
# a tag's name runs to a space, "/" or ">"; a quote opens a value only after "="; an
# unclosed value, tag or comment runs to the end of the input. None of these patterns can
# fail once its first characters matched, so no match is ever tried twice; and their
# quantifiers are possessive (Python 3.11+): nothing is kept to backtrack into.
_TAG = re.compile(r"<(/?)([A-Za-z][^\s/>]*)")
_ATTRS = re.compile(r"""(?:[^>=]++|=\s*+"[^"]*+(?:"|\Z)|=\s*+'[^']*+(?:'|\Z)|=)*+(>)?""")
_BOGUS = re.compile(r"<(?:[!?]|/(?![A-Za-z]))[^>]*>?")  # doctype, <?…>, </…> without a name
_RAW_END = {name: re.compile(rf"</{name}(?=[\s/>])", re.IGNORECASE) for name in _RAW}
_SPACE = re.compile(r"\s+")
_BLANK = re.compile(r"\s")
_PIECE = 16_384
_CHECK_EVERY = 256


class HtmlTooComplex(Exception):
    """The page could not be converted within its CPU-time or wall-clock budget."""


def _pieces(text: str) -> Iterator[str]:
    """``text`` in pieces of about :data:`_PIECE` characters, cut before a blank (never
    inside an entity): a regular expression holds the GIL until it is done with its
    string, and the event loop waits that long."""
    start, size = 0, len(text)
    while size - start > _PIECE:
        blank = _BLANK.search(text, start + _PIECE)
        if blank is None:
            break
        yield text[start : blank.start()]
        start = blank.start()
    yield text[start:]


class _Text:
    """The converted text, built from tag and text events."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.title: list[str] = []
        self.skip = 0
        self.pre = 0

    def data(self, text: str) -> None:
        if not text or self.skip:
            return
        space = False  # the last piece ended with a collapsed blank
        for piece in _pieces(text):
            piece = _html.unescape(piece)
            if not self.pre:
                piece = _SPACE.sub(" ", piece)
                if space and piece[:1] == " ":
                    piece = piece[1:]
                space = piece[-1:] == " "
            self.out.append(piece)

    def start(self, tag: str) -> None:
        if tag in _SKIP and tag not in _VOID:
            self.skip += 1
        elif self.skip:
            return
        elif tag in _HEADINGS:
            self.out.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("td", "th"):
            self.out.append(" | ")
        elif tag == "pre":
            self.pre += 1
            self.out.append("\n\n")
        elif tag in _BLOCK:
            self.out.append("\n\n" if tag not in ("br", "tr") else "\n")

    def end(self, tag: str) -> None:
        if tag in _SKIP and tag not in _VOID:
            self.skip = max(0, self.skip - 1)
        elif self.skip:
            return
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
            self.out.append("\n\n")
        elif tag in _BLOCK or tag in _HEADINGS or tag == "li":
            self.out.append("\n")


class _Budget:
    def __init__(self, cpu_seconds: float | None, wall_seconds: float | None) -> None:
        self.cpu = None if cpu_seconds is None else time.thread_time() + cpu_seconds
        self.wall = None if wall_seconds is None else time.monotonic() + wall_seconds
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps % _CHECK_EVERY:
            return
        if (self.cpu is not None and time.thread_time() > self.cpu) or (
            self.wall is not None and time.monotonic() > self.wall
        ):
            raise HtmlTooComplex(f"not converted within its budget ({self.steps} steps)")


def _raw_end(html: str, name: str, start: int) -> tuple[int, int]:
    """Where the raw text of element ``name``, from ``start``, ends, and where markup
    resumes after its end tag (both the end of the input when it is never closed)."""
    found = _RAW_END[name].search(html, start)
    if found is None:
        return len(html), len(html)
    close = html.find(">", found.end())
    return found.start(), len(html) if close < 0 else close + 1


def _tokenize(html: str, sink: _Text, budget: _Budget) -> None:
    pos, size = 0, len(html)
    text = 0  # where the text not yet handed to the sink starts
    while pos < size:
        budget.step()
        lt = html.find("<", pos)
        if lt < 0:
            break
        if html.startswith("<!--", lt):
            sink.data(html[text:lt])
            close = html.find("-->", lt + 4)
            pos = text = size if close < 0 else close + 3
            continue
        tag = _TAG.match(html, lt)
        if tag is None:
            bogus = _BOGUS.match(html, lt)
            if bogus is None:  # a "<" that opens nothing is text
                pos = lt + 1
                continue
            sink.data(html[text:lt])
            pos = text = bogus.end()
            continue
        sink.data(html[text:lt])
        attrs = _ATTRS.match(html, tag.end())
        assert attrs is not None  # it matches the empty string
        if attrs.group(1) is None:
            return  # the input ends inside a tag: the tag is dropped
        pos = text = attrs.end()
        name = tag.group(2).lower()
        if tag.group(1):
            sink.end(name)
            continue
        sink.start(name)
        if name in _RAW and not html[attrs.start() : pos - 1].rstrip().endswith("/"):
            stop, pos = _raw_end(html, name, pos)
            text = pos
            raw = html[attrs.end() : stop]
            if name == "title":
                sink.title.append(_html.unescape(raw))
            elif name in ("textarea", "xmp", "plaintext"):
                sink.data(raw)
            sink.end(name)
    sink.data(html[text:])


def html_to_text(
    html: str, *, cpu_seconds: float | None = None, wall_seconds: float | None = None
) -> tuple[str | None, str]:
    """``(title, text)`` of an HTML document: title, headings, paragraphs, list items and
    links' text; scripts, styles and other non-content dropped.

    Raises:
        HtmlTooComplex: past ``cpu_seconds`` of this thread's CPU time or ``wall_seconds``.
    """
    sink = _Text()
    _tokenize(html, sink, _Budget(cpu_seconds, wall_seconds))
    # a collapsed run of blanks leaves one space at a line start; deeper indents are <pre>;
    # at most one empty line in a row (line by line: see _pieces)
    lines: list[str] = []
    empty = 0
    for line in "".join(sink.out).splitlines():
        line = line.rstrip()
        if line[:1] == " " and line[1:2] != " ":
            line = line[1:]
        empty = 0 if line else empty + 1
        if empty < 2:
            lines.append(line)
    text = "\n".join(lines).strip()
    title = " ".join("".join(sink.title).split()) or None
    return title, text
