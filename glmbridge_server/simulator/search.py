"""The simulator's Web Search API: ``POST {paas/v4}/web_search`` with deterministic results.

Shape from wire-specs A.15 (docs.z.ai, ``POST /paas/v4/web_search``): ``search_engine``,
``search_query`` (required), ``count`` 1–50, ``search_domain_filter`` in; ``{id, created,
search_result: [{title, content, link, media, icon, refer, publish_date}]}`` out. Errors in
GLM's business-code shape: no query is 400/1214 ("Invalid search_query parameter");
a spent search quota is 429/1302 (the code users see from search after a handful of calls:
zai-org/GLM-5#151, user-demand §1.3). ``app.state.search_quota`` (``None``: unlimited)
counts down per call, ``app.state.search_calls`` counts calls. Results are a function of
the query alone, so tests can predict them: result ``i`` (1-based) is
``https://<domain>/<slug>/<i>`` titled ``"<Query> - result i"`` (domain ``example-i.com``,
or the ``search_domain_filter``).

``app.state.search_host = "bigmodel"`` applies BigModel's rules instead
(https://docs.bigmodel.cn/api-reference, 网络搜索): ``search_engine`` is one of
``search_std`` / ``search_pro`` / ``search_pro_sogou`` / ``search_pro_quark``, ``search_intent``
is required and the query is at most 70 characters (400/1214 otherwise); Z.ai's engine is
``search-prime`` (https://docs.z.ai/api-reference/tools/web-search), checked when given.
"""

from __future__ import annotations

import re
import time
from typing import Any

import msgspec

from glmbridge_server.simulator.asgi import Reply, Request, json_reply

__all__ = ["search"]

_SLUG = re.compile(r"[^a-z0-9]+")
_RESULTS = 5  # at most this many, whatever the count asked
_BIGMODEL_ENGINES = frozenset({"search_std", "search_pro", "search_pro_sogou", "search_pro_quark"})
_ZAI_ENGINES = frozenset({"search-prime", "search_pro_jina"})
_BIGMODEL_QUERY_CAP = 70


def _host_error(body: dict[str, Any], query: str, host: str) -> str | None:
    """What the host rejects in a search request (its message), else ``None``."""
    engine = body.get("search_engine")
    if host == "bigmodel":
        if engine not in _BIGMODEL_ENGINES:
            return "Invalid search_engine parameter."
        if "search_intent" not in body:
            return "The search_intent parameter is required."
        if len(query) > _BIGMODEL_QUERY_CAP:
            return "Invalid search_query parameter: at most 70 characters."
    elif engine is not None and engine not in _ZAI_ENGINES:
        return "Invalid search_engine parameter."
    return None


def _error(status: int, code: str, message: str) -> Reply:
    return json_reply({"error": {"code": code, "message": message}}, status)


def results_for(query: str, count: int, domain: str | None) -> list[dict[str, Any]]:
    """The deterministic results of ``query``."""
    slug = _SLUG.sub("-", query.lower()).strip("-")[:60] or "q"
    out = []
    for i in range(1, min(count, _RESULTS) + 1):
        site = domain or f"example-{i}.com"
        out.append(
            {
                "title": f"{query[:80]} - result {i}",
                "content": f"Simulated page {i} about {query[:200]}. It states fact {i}: "
                f"the answer to '{query[:60]}' is number {len(query) + i}.",
                "link": f"https://{site}/{slug}/{i}",
                "media": f"Example {i}",
                "icon": f"https://{site}/favicon.ico",
                "refer": f"ref_{i}",
                "publish_date": f"2026-0{i}-01",
            }
        )
    return out


async def search(request: Request) -> Reply:
    """``POST …/web_search``."""
    st = request.app.state
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return _error(401, "1001", "Authorization parameter not received in the header.")
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        return _error(400, "1214", "Invalid request body.")
    query = body.get("search_query") if isinstance(body, dict) else None
    if not isinstance(query, str) or not query.strip():
        return _error(400, "1214", "Invalid search_query parameter.")
    problem = _host_error(body, query, getattr(st, "search_host", "zai"))
    if problem is not None:
        return _error(400, "1214", problem)
    count = body.get("count", 10)
    if type(count) is not int or not 1 <= count <= 50:
        return _error(400, "1214", "Invalid count parameter.")
    st.search_calls = getattr(st, "search_calls", 0) + 1
    quota = getattr(st, "search_quota", None)
    if quota is not None:
        if quota <= 0:
            return _error(
                429,
                "1302",
                "High concurrency usage of this API, please reduce "
                "concurrency or contact customer service to increase limits.",
            )
        st.search_quota = quota - 1
    domain = body.get("search_domain_filter")
    results = results_for(query.strip(), count, domain if isinstance(domain, str) else None)
    rid = time.strftime("%Y%m%d%H%M%S") + f"{st.search_calls:016x}"
    answer = {"id": rid, "created": int(time.time()), "request_id": rid, "search_result": results}
    return json_reply(answer)
