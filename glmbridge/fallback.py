"""Fallback chains: which other model or upstream profile may serve a request, and when.

When the routed model is overloaded (``1305``: zai-org/GLM-5#83, a near-total GLM-5.2
outage), its window is spent (``1308``/``1310``) or the upstream fails (5xx, no
connection), a request may be answered by the next entry of an ordered chain instead:
model → model (``glm-5.3 → glm-5.2 → glm-4.7``), then the same model on another profile
(Coding Plan → pay-as-you-go). Users ask for exactly this, and only before any byte has
reached the client (``../shared/reference/user-demand.md`` §3 #8; routatic/proxy#106).

The chain is data (``fallbacks`` in the server settings): keys are GLM model ids (globs
allowed) or profile names, values the ordered alternatives. The server's relay asks
:func:`qualifies` for each failure before the first byte and walks :func:`chain`; after
the first byte nothing falls back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

import msgspec

from glmbridge import ir
from glmbridge.errors import ErrorKind, GlmbridgeError, UpstreamConnectionError, UpstreamError
from glmbridge.profiles import PROFILES
from glmbridge.routing import Route, RouteTable, resolve_route

__all__ = ["QUALIFYING_CODES", "chain", "qualifies"]

#: Business codes that another model or profile may not share: overload, high traffic,
#: and spent quota windows (per key and plan, so another profile may have room).
QUALIFYING_CODES = frozenset({"1305", "1312", "1308", "1310"})


def qualifies(err: GlmbridgeError) -> bool:
    """Whether ``err`` (before the first byte) may be answered by the next route.

    Qualify: codes :data:`QUALIFYING_CODES`, any 5xx (529 overloaded included), and
    connection failures. Never: 4xx validation, auth and permission errors (the next
    route would fail the same way, or the client must fix its request), 1302 (the
    scheduler queues those), timeouts after the request was sent (the upstream may be
    generating, and billing, the answer), and glmbridge's own queue timeout.
    """
    if not isinstance(err, UpstreamError):
        return False
    if err.code in QUALIFYING_CODES:
        return True
    if err.status is not None:
        return err.status >= 500
    return isinstance(err, UpstreamConnectionError) and err.kind is ErrorKind.API_ERROR


def _chain_for(key: str, fallbacks: Mapping[str, Sequence[str]]) -> Sequence[str]:
    exact = fallbacks.get(key)
    if exact is not None:
        return exact
    for glob, targets in fallbacks.items():
        if fnmatchcase(key, glob):
            return targets
    return ()


def chain(
    req: ir.Request,
    route: Route,
    table: RouteTable,
    fallbacks: Mapping[str, Sequence[str]],
) -> list[Route]:
    """The routes to try after ``route``, in order: the model's chain on its profile,
    then the route's model on each fallback profile of its profile. No route twice."""
    out: list[Route] = []
    seen = {(route.model, route.upstream.name)}

    def add(candidate: Route) -> None:
        key = (candidate.model, candidate.upstream.name)
        if key not in seen:
            seen.add(key)
            out.append(msgspec.structs.replace(candidate, reason=f"fallback:{route.model}"))

    for model in _chain_for(route.model, fallbacks):
        add(resolve_route(req, table, override=model, upstream=route.upstream))
    for name in _chain_for(route.upstream.name, fallbacks):
        profile = PROFILES.get(name)
        if profile is not None:
            add(msgspec.structs.replace(route, upstream=profile))
    return out
