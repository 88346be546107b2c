"""The simulator's Web Search API (glmbridge_server.simulator.search): golden shapes and errors
(wire-specs A.15; 429/1302 as users see it: zai-org/GLM-5#151)."""

from __future__ import annotations

import httpx2

from tests.support.servers import RunningServer

PATH = "/api/paas/v4/web_search"


def _post(sim: RunningServer, body: object, key: str = "k") -> httpx2.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx2.post(sim.url + PATH, json=body, headers=headers, timeout=10)


def test_results_are_deterministic_and_shaped_like_the_api(sim: RunningServer) -> None:
    sim.app.state.search_quota = None
    reply = _post(sim, {"search_engine": "search-prime", "search_query": "GLM 5", "count": 2})
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"id", "created", "request_id", "search_result"}
    assert body["search_result"] == [
        {
            "title": "GLM 5 - result 1",
            "content": "Simulated page 1 about GLM 5. It states fact 1: the answer to "
            "'GLM 5' is number 6.",
            "link": "https://example-1.com/glm-5/1",
            "media": "Example 1",
            "icon": "https://example-1.com/favicon.ico",
            "refer": "ref_1",
            "publish_date": "2026-01-01",
        },
        {
            "title": "GLM 5 - result 2",
            "content": "Simulated page 2 about GLM 5. It states fact 2: the answer to "
            "'GLM 5' is number 7.",
            "link": "https://example-2.com/glm-5/2",
            "media": "Example 2",
            "icon": "https://example-2.com/favicon.ico",
            "refer": "ref_2",
            "publish_date": "2026-02-01",
        },
    ]
    filtered = _post(sim, {"search_query": "x", "search_domain_filter": "docs.z.ai"}).json()
    assert {r["link"].split("/")[2] for r in filtered["search_result"]} == {"docs.z.ai"}


def test_errors_use_business_codes(sim: RunningServer) -> None:
    assert _post(sim, {"search_query": " "}).json()["error"]["code"] == "1214"
    assert _post(sim, {"search_query": "q", "count": 51}).status_code == 400
    assert _post(sim, {"search_query": "q"}, key="").status_code == 401
    sim.app.state.search_quota = 1
    try:
        assert _post(sim, {"search_query": "q"}).status_code == 200
        spent = _post(sim, {"search_query": "q"})
        assert spent.status_code == 429 and spent.json()["error"]["code"] == "1302"
    finally:
        sim.app.state.search_quota = None
