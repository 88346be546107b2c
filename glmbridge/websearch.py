"""Web search, sans-I/O: the request and answer of Z.ai's Web Search API, and the results.

The gateway runs web searches itself for server tools (Anthropic ``web_search_*``); see
:mod:`glmbridge.server_tools` for the loop and ``docs/web-search.md`` for why the engine is
Z.ai's REST Web Search API (``POST {paas/v4 base}/web_search``, wire-specs A.15) and not
GLM's chat ``web_search`` tool. This module only shapes bytes and values; the server's
:mod:`glmbridge_server.search_engine` does the HTTP, the cache and the key.

Result identity. Anthropic's ``web_search_result.encrypted_content`` is opaque to clients,
who must send it back unchanged in later turns. The gateway has no secret to encrypt with
and nothing to hide from the client that sent the query, so it is the result itself
(``glmb1.`` + url-safe base64 of compact JSON): :func:`hit_from_token` reads it back, so
a later turn can give the model the page text again.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import msgspec

from glmbridge.errors import (
    ClientRequestError,
    ErrorKind,
    GlmbridgeError,
    UpstreamError,
    UpstreamProtocolError,
)

__all__ = [
    "BIGMODEL_SEARCH",
    "ZAI_SEARCH",
    "SearchHost",
    "search_host",
    "MAX_QUERY_CHARS",
    "SearchFailure",
    "SearchHit",
    "SearchOptions",
    "ZAI_SEARCH_PATH",
    "decode_zai_search",
    "domain_allowed",
    "encode_zai_search",
    "failure_for",
    "hit_from_token",
    "hit_token",
    "hits_for_model",
    "result_content",
]

ZAI_SEARCH_PATH = "/web_search"
"""Appended to a ``paas/v4`` base URL (``https://api.z.ai/api/paas/v4``)."""

MAX_QUERY_CHARS = 400
"""Longer queries are refused as ``query_too_long`` (Z.ai recommends short queries,
≲70 characters, for its search: wire-specs A.14)."""

_TOKEN_PREFIX = "glmb1."
_CONTENT_CHARS = 2000  # of one result's text kept for the model (content_size "medium")


class SearchHit(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One search result."""

    url: str
    title: str
    content: str = ""
    page_age: str | None = None
    site: str | None = None


class SearchOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The settings of a search tool (Anthropic ``web_search_*`` fields)."""

    max_uses: int | None = None
    allowed_domains: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()
    country: str | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any] | None, path: str = "tools") -> SearchOptions:
        """Read an Anthropic server tool's settings; bad values name their field.

        Raises:
            ClientRequestError: a field has the wrong type, or both domain lists are set
                (Anthropic refuses that too).
        """
        config = config or {}
        max_uses = config.get("max_uses")
        if max_uses is not None and (type(max_uses) is not int or max_uses < 1):
            raise ClientRequestError("must be a positive integer", path=f"{path}.max_uses")
        lists: dict[str, tuple[str, ...]] = {}
        for name in ("allowed_domains", "blocked_domains"):
            value = config.get(name)
            if value is None:
                lists[name] = ()
                continue
            if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
                raise ClientRequestError("must be a list of strings", path=f"{path}.{name}")
            lists[name] = tuple(_norm_domain(d) for d in value if d.strip())
        if lists["allowed_domains"] and lists["blocked_domains"]:
            raise ClientRequestError(
                "allowed_domains and blocked_domains cannot both be set", path=path
            )
        location = config.get("user_location")
        country = location.get("country") if isinstance(location, dict) else None
        return cls(
            max_uses=max_uses,
            allowed_domains=lists["allowed_domains"],
            blocked_domains=lists["blocked_domains"],
            country=country if isinstance(country, str) else None,
        )


class SearchFailure(msgspec.Struct, frozen=True):
    """A search that gave no results: Anthropic's ``error_code`` and a note for the model.

    ``error_code`` is one of ``too_many_requests``, ``unavailable``, ``max_uses_exceeded``,
    ``query_too_long``, ``invalid_tool_input`` (the ``web_search_tool_result_error``
    vocabulary, wire-specs B.3)."""

    error_code: str
    message: str


def _norm_domain(domain: str) -> str:
    d = domain.strip().lower()
    if "://" in d:
        d = urlsplit(d).hostname or d
    return d.split("/", 1)[0].removeprefix("www.").rstrip(".")


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def _matches(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def domain_allowed(url: str, options: SearchOptions) -> bool:
    """Whether a result at ``url`` passes the tool's domain lists (subdomains match)."""
    host = _host(url)
    if not host:
        return False
    if options.allowed_domains and not any(_matches(host, d) for d in options.allowed_domains):
        return False
    return not any(_matches(host, d) for d in options.blocked_domains)


# --- Z.ai's Web Search API (wire-specs A.15) -------------------------------------------------


class SearchHost(msgspec.Struct, frozen=True):
    """What one host's Web Search API wants.

    Attributes:
        engine: the default ``search_engine``.
        intent: ``search_intent`` must be sent (BigModel requires it; ``false``: search
            as given, no intent recognition first).
        max_query: the longest query it takes (longer ones are cut).
    """

    engine: str = "search-prime"
    intent: bool = False
    max_query: int = MAX_QUERY_CHARS


#: Z.ai: ``search-prime`` (https://docs.z.ai/api-reference/tools/web-search).
ZAI_SEARCH = SearchHost()
#: BigModel: ``search_std`` / ``search_pro`` / ``search_pro_sogou`` / ``search_pro_quark``,
#: ``search_intent`` required, queries of at most 70 characters
#: (https://docs.bigmodel.cn/api-reference, 网络搜索).
BIGMODEL_SEARCH = SearchHost(engine="search_std", intent=True, max_query=70)


def search_host(base_url: str) -> SearchHost:
    """The Web Search rules of the host of ``base_url`` (BigModel's or Z.ai's)."""
    host = _host(base_url)
    return BIGMODEL_SEARCH if host == "bigmodel.cn" or host.endswith(".bigmodel.cn") else ZAI_SEARCH


def encode_zai_search(
    query: str,
    options: SearchOptions,
    *,
    engine: str = "search-prime",
    count: int = 10,
    host: SearchHost = ZAI_SEARCH,
) -> bytes:
    """The body of ``POST …/paas/v4/web_search``.

    ``search_domain_filter`` takes one domain, so it is sent only when exactly one domain
    is allowed; other lists are applied to the results (and more results are asked for,
    so that filtering leaves some). ``host`` adds what that host requires
    (:data:`BIGMODEL_SEARCH`: ``search_intent``, a 70-character query).
    """
    body: dict[str, Any] = {"search_engine": engine, "search_query": query[: host.max_query]}
    if host.intent:
        body["search_intent"] = False
    filtered = len(options.allowed_domains) > 1 or bool(options.blocked_domains)
    body["count"] = min(50, count * 3 if filtered else count)
    if len(options.allowed_domains) == 1:
        body["search_domain_filter"] = options.allowed_domains[0]
    return msgspec.json.encode(body)


class _ZaiResult(msgspec.Struct):
    title: str | None = None
    content: str | None = None
    link: str | None = None
    media: str | None = None
    publish_date: str | None = None


class _ZaiAnswer(msgspec.Struct):
    search_result: list[_ZaiResult] | None = None


_ZAI_DECODER = msgspec.json.Decoder(_ZaiAnswer)


def decode_zai_search(body: bytes, options: SearchOptions, *, count: int = 10) -> list[SearchHit]:
    """The results of a ``200`` answer, filtered by the tool's domain lists.

    Raises:
        UpstreamProtocolError: the body is not a Web Search API answer.
    """
    try:
        answer = _ZAI_DECODER.decode(body)
    except msgspec.DecodeError as exc:
        raise UpstreamProtocolError(f"web search answer is not valid: {exc}") from None
    hits: list[SearchHit] = []
    seen: set[str] = set()
    for r in answer.search_result or ():
        url = (r.link or "").strip()
        if not url.startswith(("http://", "https://")) or url in seen:
            continue
        if not domain_allowed(url, options):
            continue
        seen.add(url)
        hits.append(
            SearchHit(
                url=url,
                title=(r.title or "").strip() or _host(url),
                content=(r.content or "").strip()[:_CONTENT_CHARS],
                page_age=(r.publish_date or "").strip() or None,
                site=(r.media or "").strip() or None,
            )
        )
        if len(hits) >= count:
            break
    return hits


def failure_for(err: GlmbridgeError) -> SearchFailure:
    """What a failed search call tells the client and the model."""
    if isinstance(err, UpstreamError) and (
        err.status == 429 or err.kind in (ErrorKind.RATE_LIMIT, ErrorKind.BILLING)
    ):
        return SearchFailure(
            "too_many_requests",
            f"the web search quota or rate limit was hit ({err.message}); "
            "do not search again now, answer from what you know and say so",
        )
    return SearchFailure(
        "unavailable",
        f"web search is unavailable ({err.message}); answer from what you know and say so",
    )


# --- results for the client and for the model -------------------------------------------


def hit_token(hit: SearchHit) -> str:
    """The ``encrypted_content`` of a result (see the module docstring)."""
    raw = msgspec.json.encode(hit)
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def hit_from_token(token: object) -> SearchHit | None:
    """The result behind an ``encrypted_content`` this gateway wrote; ``None`` otherwise."""
    if not isinstance(token, str) or not token.startswith(_TOKEN_PREFIX):
        return None
    data = token[len(_TOKEN_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        return msgspec.json.decode(raw, type=SearchHit)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None


def result_content(hits: Sequence[SearchHit]) -> list[dict[str, Any]]:
    """The ``content`` list of a ``web_search_tool_result`` block."""
    return [
        {
            "type": "web_search_result",
            "url": h.url,
            "title": h.title,
            "encrypted_content": hit_token(h),
            "page_age": h.page_age,
        }
        for h in hits
    ]


def hits_for_model(query: str, hits: Iterable[tuple[int, SearchHit]]) -> str:
    """The tool result text GLM gets: numbered results it is asked to cite as ``[n]``."""
    lines = [f"Web search results for {query!r}:"]
    any_hit = False
    for n, hit in hits:
        any_hit = True
        lines.append(f"\n[{n}] {hit.title}\nURL: {hit.url}")
        if hit.page_age:
            lines.append(f"Published: {hit.page_age}")
        if hit.content:
            lines.append(hit.content)
    if not any_hit:
        return lines[0] + "\nNo results found."
    lines.append(
        "\nWhen your answer uses a result, cite it right after the claim as [n] "
        "with its number (e.g. [1])."
    )
    return "\n".join(lines)
