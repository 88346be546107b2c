"""The defects of the second attack run (issue 24), as attacks that stay in the campaign.

Each function of :data:`DEFECTS` repeats one attack that once got through, against the part
of the bridge it hit, and returns :class:`~tests.server.attack.Outcome` records whose
``problem`` says what went wrong if the defect is back. Most build their own small target
(a bridge with Redis, a fetcher, a usage store): the campaign's bridge has none of them.
:func:`tests.server.attack.run_campaign` runs them once per campaign, in its pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import httpx2

from glmbridge.webfetch import FetchFailure, FetchOptions
from glmbridge_server.web_fetcher import WebFetcher
from tests.server.attack_traffic import redis_fairness, redis_hangups, retry_after_spread

if TYPE_CHECKING:
    from tests.server.attack import Outcome, Target

__all__ = ["DEFECTS", "WRAPPED_LOOPBACK"]


def _outcome(name: str, started: float, problem: str | None, status: int | None = None) -> Outcome:
    from tests.server.attack import Outcome

    return Outcome(name, "any", status, time.monotonic() - started, problem=problem)


# --- item 8: IPv4 wrapped in IPv6 --------------------------------------------------------------

#: Internal addresses in every IPv6 wrapping (NAT64, local NAT64, 6to4, IPv4-compatible,
#: IPv4-translated, IPv4-mapped, Teredo) and site-local: all must be refused.
WRAPPED_LOOPBACK = (
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::7f00:1", "64:ff9b:1:7f00:0:100::",
    "2002:7f00:1::", "2002:a9fe:a9fe::1", "2002:a00:1::", "::127.0.0.1", "::10.0.0.1",
    "::ffff:0:127.0.0.1", "::ffff:0:a9fe:a9fe", "::ffff:127.0.0.1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe", "fec0::1", "fec0:1:2::3",
)  # fmt: skip


def wrapped_ipv6(target: Target) -> list[Outcome]:
    """Web fetch to every wrapped internal address, as a literal and as a DNS answer."""
    out = []
    sent: list[str] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        sent.append(str(request.url))
        return httpx2.Response(200, text="internal", headers={"content-type": "text/plain"})

    names = {f"w{i}.test": address for i, address in enumerate(WRAPPED_LOOPBACK)}
    fetcher = WebFetcher(transport=httpx2.MockTransport(handle), resolve=lambda host: [names[host]])

    async def one(url: str) -> object:
        return await fetcher.fetch(url, FetchOptions())

    for name, address in names.items():
        for url in (f"http://[{address}]/", f"http://{name}/"):
            started = time.monotonic()
            result = anyio.run(one, url)
            ok = isinstance(result, FetchFailure) and result.error_code == "url_not_allowed"
            problem = None if ok and not sent else f"{url} was not refused: {result!r}"
            out.append(_outcome(f"ssrf:{address}", started, problem))
            sent.clear()
    return out


# --- item 9: /status after POST /config ---------------------------------------------------------


def status_after_config(target: Target) -> list[Outcome]:
    """``POST /config`` new slot limits; ``/status`` must show them at once (then restore)."""
    started = time.monotonic()
    headers = target.headers()
    with httpx2.Client(base_url=target.url, headers=headers, timeout=10) as http:
        before = [k["limit"] for k in http.get("/status").json()["keys"]]
        wanted = [min(10_000, n + 1) for n in before]
        answer = http.post("/config", json={"key_slots": wanted})
        keys = http.get("/status").json()["keys"]
        http.post("/config", json={"key_slots": before})
    # a limit learned from a 1302 (the fault phase sends some) rightly stays until it expires
    shown = [k["limit"] for k in keys if not k["learned"]]
    expected = [n for n, k in zip(wanted, keys, strict=True) if not k["learned"]]
    problem = None if shown == expected else f"/status showed {shown}, not {expected}"
    return [_outcome("status-after-config", started, problem, answer.status_code)]


#: Each defect attack: a name and a function of the campaign's target giving its outcomes.
DEFECTS: dict[str, Callable[[Target], list[Outcome]]] = {
    "wrapped-ipv6": wrapped_ipv6,
    "status-after-config": status_after_config,
    "redis-hangups": redis_hangups,
    "redis-fairness": redis_fairness,
    "retry-after-spread": retry_after_spread,
}
