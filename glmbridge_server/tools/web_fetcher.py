"""The page fetcher behind the ``web_fetch_*`` server tool: httpx2 with SSRF protection.

Each hop (the URL, then every redirect, at most ``_MAX_REDIRECTS``) is checked by
:func:`glmbridge.webfetch.check_url` and resolved with ``getaddrinfo``; **every** address the
name resolves to must pass :func:`glmbridge.webfetch.address_refusal`, and the connection is
then made to the checked address itself (the URL's host becomes the ``Host`` header and the
TLS server name), so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot reach an internal address. Proxy environment variables are not used: a
proxy would resolve the name again.

Limits: ``max_bytes`` of body (more is cut, and the page marked truncated), ``timeout``
seconds for the whole fetch including redirects, the content-type allow-list, and
``convert_seconds`` of CPU time to turn HTML into text, in a worker thread (a page that
needs more is refused: :mod:`glmbridge.html_text`). Every
failure is a :class:`~glmbridge.webfetch.FetchFailure`, never an exception: it becomes a
``web_fetch_tool_result`` error block and a tool error for the model.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Sequence
from urllib.parse import urljoin, urlsplit, urlunsplit

import anyio
import anyio.to_thread
import httpx2
from anyio.lowlevel import RunVar

from glmbridge._version import __version__
from glmbridge.webfetch import (
    FetchedPage,
    FetchFailure,
    FetchOptions,
    HtmlTooComplex,
    address_refusal,
    charset_of,
    check_url,
    content_kind,
    html_to_text,
)

__all__ = ["WebFetcher"]

logger = logging.getLogger("glmbridge.fetch")

_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


_CONVERTERS: RunVar[anyio.CapacityLimiter] = RunVar("glmbridge_html_converters")


def _converters() -> anyio.CapacityLimiter:
    """At most two pages are converted at once per event loop: each is CPU work that shares
    the interpreter with the loop."""
    try:
        return _CONVERTERS.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(2)
        _CONVERTERS.set(limiter)
        return limiter


class _Refused(Exception):
    def __init__(self, failure: FetchFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class WebFetcher:
    """Fetches pages for the model (see the module docstring).

    Parameters:
        allow_private: also allow loopback, private and link-local targets (an operator's
            choice, ``web_fetch_allow_private``; off by default).
        max_bytes: the most body bytes read.
        timeout: seconds for a whole fetch.
        transport: an httpx2 transport (tests); the network otherwise.
        resolve: ``host -> addresses`` (tests); ``getaddrinfo`` otherwise.
        convert_seconds: the CPU time an HTML page may take to become text.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        max_bytes: int = 2 * 1024 * 1024,
        timeout: float = 20.0,
        transport: httpx2.AsyncBaseTransport | None = None,
        resolve: Callable[[str], Sequence[str]] | None = None,
        convert_seconds: float = 2.0,
    ) -> None:
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._transport = transport
        self._resolve = resolve
        self.convert_seconds = convert_seconds

    async def fetch(self, url: str, options: FetchOptions) -> FetchedPage | FetchFailure:
        """The page at ``url``, or why not. Never raises a glmbridge error."""
        try:
            with anyio.fail_after(self.timeout):
                return await self._fetch(url.strip(), options)
        except _Refused as refused:
            logger.info("web fetch refused: %s", refused.failure.message)
            return refused.failure
        except TimeoutError:
            why = f"the fetch took more than {self.timeout:.0f} s"
            return FetchFailure("url_not_accessible", why)
        except httpx2.HTTPError as exc:
            why = f"the page could not be fetched ({type(exc).__name__})"
            return FetchFailure("url_not_accessible", why)

    async def _fetch(self, url: str, options: FetchOptions) -> FetchedPage:
        async with httpx2.AsyncClient(
            transport=self._transport,
            trust_env=False,
            follow_redirects=False,
            headers={"User-Agent": f"glmbridge/{__version__} (web_fetch)",
                     "Accept": "text/html,text/plain,text/markdown,application/json;q=0.9,"
                               "*/*;q=0.1"},
        ) as http:  # fmt: skip
            for _ in range(_MAX_REDIRECTS + 1):
                failure = check_url(url, options)
                if failure is not None:
                    raise _Refused(failure)
                request = await self._pinned_request(http, url)
                response = await http.send(request, stream=True)
                try:
                    if response.status_code in _REDIRECTS and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    return await self._page(url, response, options)
                finally:
                    await response.aclose()
        raise _Refused(FetchFailure("url_not_accessible", "too many redirects"))

    async def _pinned_request(self, http: httpx2.AsyncClient, url: str) -> httpx2.Request:
        """A request to ``url`` connected to a checked address of its host."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        addresses = await self._addresses(host)
        if not addresses:
            raise _Refused(FetchFailure("url_not_accessible", f"{host} does not resolve"))
        for address in addresses:
            why = address_refusal(address, allow_private=self.allow_private)
            if why is not None:
                raise _Refused(FetchFailure("url_not_allowed", f"{host}: {why}"))
        ip = addresses[0]
        netloc = f"[{ip}]" if ":" in ip else ip
        if parts.port is not None:
            netloc += f":{parts.port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        headers = {"Host": parts.netloc.rpartition("@")[2]}
        return http.build_request("GET", pinned, headers=headers, extensions=extensions)

    async def _addresses(self, host: str) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]  # a literal address: checked as is
        except ValueError:
            pass
        if self._resolve is not None:
            return list(self._resolve(host))
        try:
            infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return []
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    async def _convert(self, html: str) -> tuple[str | None, str]:
        """HTML to text in a worker thread (the event loop keeps serving), within
        ``convert_seconds`` of CPU time (and five times that of wall-clock time, for a
        machine so busy that the thread hardly runs); a page that does not fit is refused."""
        budget = self.convert_seconds
        try:
            return await anyio.to_thread.run_sync(
                functools.partial(html_to_text, html, cpu_seconds=budget, wall_seconds=budget * 5),
                limiter=_converters(),
            )
        except HtmlTooComplex:
            why = f"the page could not be converted to text within {budget:g} s"
            logger.info("web fetch: %s", why)
            raise _Refused(FetchFailure("url_not_accessible", why)) from None

    async def _page(
        self, url: str, response: httpx2.Response, options: FetchOptions
    ) -> FetchedPage:
        if response.status_code == 429:
            raise _Refused(FetchFailure("too_many_requests", "the site answered 429"))
        if response.status_code != 200:
            raise _Refused(
                FetchFailure("url_not_accessible", f"the site answered {response.status_code}")
            )
        content_type = response.headers.get("content-type")
        kind = content_kind(content_type)
        if kind is None:
            shown = (content_type or "").split(";", 1)[0][:60]
            raise _Refused(FetchFailure("unsupported_content_type", f"{shown} is not text"))
        body = bytearray()
        truncated = False
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > self.max_bytes:
                del body[self.max_bytes :]
                truncated = True
                break
        text = bytes(body).decode(charset_of(content_type), "replace")
        title = None
        if kind in ("text/html", "application/xhtml+xml"):
            title, text = await self._convert(text)
        if truncated:
            text += f"\n\n[truncated at {self.max_bytes} bytes]"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return FetchedPage(url=url, title=title, text=text, media_type=kind, retrieved_at=stamp)
