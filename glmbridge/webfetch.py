"""Web fetch, sans-I/O: the rules a gateway-side page fetch follows, and its result blocks.

For Anthropic's ``web_fetch_*`` server tool the gateway fetches pages itself (see
:mod:`glmbridge.server_tools`; the HTTP is :mod:`glmbridge_server.web_fetcher`). Here:

* :func:`check_url` — only ``http``/``https``, no credentials in the URL, at most
  ``MAX_URL_CHARS``, and the tool's domain lists.
* :func:`address_refusal` — the SSRF rule for every address a host resolves to, before
  connecting and again at each redirect: loopback, private, link-local, CGNAT, multicast,
  reserved and unspecified addresses are refused (an IPv6 address that wraps an IPv4
  address, :func:`embedded_ipv4`, is judged by it too; site-local ``fec0::/10`` is private)
  unless the operator allows private targets.
* :func:`content_kind` — the content-type allow-list (HTML, plain text, Markdown, JSON, XML,
  CSV); anything else is ``unsupported_content_type``.
* :func:`html_to_text` — readable text from HTML (title, headings, paragraphs, list items,
  links' text; scripts, styles and other non-content dropped), in linear time and within a
  CPU budget (:mod:`glmbridge.html_text`).
* :func:`fetch_result` / :func:`fetch_error` — the ``web_fetch_tool_result`` content.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

import msgspec

from glmbridge.errors import ClientRequestError
from glmbridge.html_text import HtmlTooComplex, html_to_text
from glmbridge.websearch import SearchFailure, SearchOptions, domain_allowed

__all__ = [
    "ALLOWED_CONTENT_TYPES",
    "MAX_URL_CHARS",
    "FetchFailure",
    "FetchOptions",
    "FetchedPage",
    "HtmlTooComplex",
    "address_refusal",
    "check_url",
    "content_kind",
    "embedded_ipv4",
    "fetch_error",
    "fetch_result",
    "html_to_text",
    "page_for_model",
]

MAX_URL_CHARS = 2000
ALLOWED_CONTENT_TYPES = frozenset({
    "text/html", "application/xhtml+xml", "text/plain", "text/markdown", "text/x-markdown",
    "application/json", "application/xml", "text/xml", "text/csv",
})  # fmt: skip
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not global, not "private"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_COMPATIBLE = ipaddress.ip_network("::/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_DEFAULT_MAX_CHARS = 100_000  # of page text given to the model when max_content_tokens is unset


class FetchOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The settings of a fetch tool (Anthropic ``web_fetch_*`` fields)."""

    max_uses: int | None = None
    allowed_domains: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()
    max_content_tokens: int | None = None
    citations: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any] | None, path: str = "tools") -> FetchOptions:
        """Read an Anthropic ``web_fetch_*`` tool's settings; bad values name their field.

        Raises:
            ClientRequestError: a field has the wrong type.
        """
        config = config or {}
        shared = SearchOptions.from_config(
            {k: config.get(k) for k in ("max_uses", "allowed_domains", "blocked_domains")}, path
        )
        tokens = config.get("max_content_tokens")
        if tokens is not None and (type(tokens) is not int or tokens < 1):
            raise ClientRequestError(
                "must be a positive integer", path=f"{path}.max_content_tokens"
            )
        cites = config.get("citations")
        return cls(
            max_uses=shared.max_uses,
            allowed_domains=shared.allowed_domains,
            blocked_domains=shared.blocked_domains,
            max_content_tokens=tokens,
            citations=isinstance(cites, dict) and cites.get("enabled") is True,
        )

    @property
    def domains(self) -> SearchOptions:
        """The domain lists, as the search tool's (one matcher for both)."""
        return SearchOptions(
            allowed_domains=self.allowed_domains, blocked_domains=self.blocked_domains
        )

    @property
    def max_chars(self) -> int:
        """How much page text the model gets (about 4 characters a token)."""
        return self.max_content_tokens * 4 if self.max_content_tokens else _DEFAULT_MAX_CHARS


class FetchFailure(msgspec.Struct, frozen=True):
    """A fetch that gave no page: Anthropic's ``web_fetch_tool_result_error`` code and a note for
    the model. Codes: ``invalid_tool_input``, ``url_too_long``, ``url_not_allowed``,
    ``url_not_accessible``, ``too_many_requests``, ``unsupported_content_type``,
    ``max_uses_exceeded``, ``unavailable``."""

    error_code: str
    message: str


class FetchedPage(msgspec.Struct, frozen=True, kw_only=True):
    """A fetched page, as text."""

    url: str
    title: str | None
    text: str
    media_type: str
    retrieved_at: str


def check_url(url: object, options: FetchOptions) -> FetchFailure | None:
    """Why ``url`` may not be fetched, or ``None``."""
    if not isinstance(url, str) or not url.strip():
        return FetchFailure("invalid_tool_input", "the url must be a non-empty string")
    if len(url) > MAX_URL_CHARS:
        return FetchFailure("url_too_long", f"the url is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises on a bad port
    except ValueError:
        return FetchFailure("invalid_tool_input", "the url is not valid")
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return FetchFailure("invalid_tool_input", "only http and https URLs can be fetched")
    if parts.username is not None or parts.password is not None:
        return FetchFailure("url_not_allowed", "URLs with credentials are not fetched")
    if not domain_allowed(url, options.domains):
        return FetchFailure("url_not_allowed", "the domain is not allowed for this tool")
    return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address ``ip`` may carry: IPv4-mapped (``::ffff:a.b.c.d``), IPv4-translated
    (``::ffff:0:a.b.c.d``, RFC 2765), IPv4-compatible (``::a.b.c.d``, RFC 4291 §2.5.5.1),
    NAT64 (``64:ff9b::/96``, RFC 6052; ``64:ff9b:1::/48``, RFC 8215: one candidate per
    prefix length it allows), 6to4 (``2002::/16``, RFC 3056) and Teredo (``2001::/32``, RFC 4380:
    the server and the de-obfuscated client). A translator or relay on the path would
    deliver the packet to that IPv4 address, so it is what the SSRF rule must judge."""
    n = int(ip)
    low = ipaddress.IPv4Address(n & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _TRANSLATED or ip in _NAT64 or (ip in _COMPATIBLE and n > 1):  # not :: or ::1
        return [low]
    if ip in _NAT64_LOCAL:  # RFC 6052 §2.2 layouts for prefixes /48, /56, /64 and /96
        byte = n.to_bytes(16, "big")
        spots = (byte[6:8] + byte[9:11], byte[7:8] + byte[9:12], byte[9:13], byte[12:16])
        return [ipaddress.IPv4Address(b) for b in spots]
    if ip in _SIX_TO_FOUR:
        return [ipaddress.IPv4Address((n >> 80) & 0xFFFFFFFF)]
    if ip.teredo is not None:
        return list(ip.teredo)
    return []


def address_refusal(address: str, *, allow_private: bool = False) -> str | None:
    """Why connecting to ``address`` (an IP literal) is refused, or ``None``.

    An IPv6 address that embeds IPv4 addresses (:func:`embedded_ipv4`) is refused when any
    of them is; deprecated site-local (``fec0::/10``) is private. Local-use NAT64
    (``64:ff9b:1::/48``) is always refused: where its IPv4 address sits depends on the
    translator's prefix length, so no single reading of it can be trusted."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return f"{ip} is a local-use NAT64 address"
        for inner in embedded_ipv4(ip):
            why = _refusal(inner, allow_private)
            if why is not None:
                return f"{ip} wraps {inner}: {why}" if ip.ipv4_mapped is None else why
        if ip.ipv4_mapped is not None:
            return None
        if ip.is_site_local:
            return None if allow_private else f"{ip} is a private address"
        if ip in _NAT64 or ip in _SIX_TO_FOUR or ip in _TRANSLATED:
            return None  # judged by the IPv4 address it wraps
    return _refusal(ip, allow_private)


def _refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> str | None:
    if ip.is_multicast or ip.is_unspecified:
        return f"{ip} is not a unicast address"
    if ip.is_global:
        return None
    if ip.is_loopback:
        kind = "loopback"
    elif ip.is_link_local:
        kind = "link-local"
    elif ip.is_reserved or not (ip.is_private or ip in _SHARED):
        return f"{ip} is a reserved address"  # never reachable, even when private is allowed
    else:
        kind = "private"
    return None if allow_private else f"{ip} is a {kind} address"


def content_kind(content_type: str | None) -> str | None:
    """The media type of an allowed ``content-type`` header, or ``None`` if not allowed.
    A missing header is taken as plain text."""
    if not content_type:
        return "text/plain"
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind if kind in ALLOWED_CONTENT_TYPES else None


def charset_of(content_type: str | None) -> str:
    """The ``charset`` of a ``content-type`` header (``utf-8`` when absent or unknown)."""
    match = re.search(r"charset=\"?([\w.:-]+)", content_type or "", re.IGNORECASE)
    if match is None:
        return "utf-8"
    name = match.group(1).lower()
    try:
        "".encode(name)
    except LookupError:
        return "utf-8"
    return name


# --- result blocks ------------------------------------------------------------------------


def fetch_result(page: FetchedPage, options: FetchOptions) -> dict[str, Any]:
    """The ``content`` of a successful ``web_fetch_tool_result``."""
    document: dict[str, Any] = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain",
                   "data": page.text[: options.max_chars]},
        "title": page.title,
    }  # fmt: skip
    if options.citations:
        document["citations"] = {"enabled": True}
    return {
        "type": "web_fetch_result",
        "url": page.url,
        "content": document,
        "retrieved_at": page.retrieved_at,
    }


def fetch_error(failure: FetchFailure | SearchFailure) -> dict[str, Any]:
    """The ``content`` of a failed ``web_fetch_tool_result``."""
    return {"type": "web_fetch_tool_result_error", "error_code": failure.error_code}


def page_for_model(page: FetchedPage, options: FetchOptions) -> str:
    """The tool result text GLM gets for a fetched page."""
    text = page.text[: options.max_chars]
    cut = " (truncated)" if len(page.text) > len(text) else ""
    head = f"Fetched {page.url}" + (f"\nTitle: {page.title}" if page.title else "")
    return f"{head}\nContent{cut}:\n\n{text}"
