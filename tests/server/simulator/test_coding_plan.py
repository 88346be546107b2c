"""Golden tests of the simulator's Coding Plan since September 2026 (issue 19), with sources:
legacy ids rerouted and named (https://docs.bigmodel.cn/cn/coding-plan/overview, quoted in
earendil-works/pi#9616; anomalyco/models.dev PR#7331), thinking-off refused for anything a
5.3-family model serves (openclaw/openclaw PR#148642), the usage limits 1316-1321 with reset
times (tetsuo-ai/agenc-core PR#2491), the tier-gated 403 (models.dev PR#5493), the model list
(PrimeIntellect-ai/prime-agent PR#1443) and BigModel's Web Search rules
(https://docs.bigmodel.cn/api-reference, 网络搜索)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from glmbridge_server.simulator import create_simulator_app

CODING = "/api/coding/paas/v4/chat/completions"
GENERAL = "/api/paas/v4/chat/completions"
AUTH = {"authorization": "Bearer k.s"}


@pytest.fixture
def http() -> Iterator[TestClient]:
    with TestClient(create_simulator_app()) as client:
        yield client


def _chat(http: TestClient, model: str, path: str = CODING, **extra: Any) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return http.post(path, json=body, headers=AUTH)


@pytest.mark.parametrize(
    ("model", "served"),
    [("glm-5.2", "glm-5.3"), ("glm-5.1", "glm-5.3"), ("glm-5", "glm-5.3"),
     ("glm-5-turbo", "glm-5.3-flash"), ("glm-4.7", "glm-5.3-flash"),
     ("glm-5.3", "glm-5.3"), ("glm-5.3-flash", "glm-5.3-flash"), ("glm-4.6", "glm-4.6")],
)  # fmt: skip
def test_the_plan_answers_legacy_ids_with_its_two_models(
    http: TestClient, model: str, served: str
) -> None:
    r = _chat(http, model)
    assert r.status_code == 200 and r.json()["model"] == served
    stream = _chat(http, model, stream=True)
    assert f'"model":"{served}"' in stream.text
    # pay-as-you-go answers each id as itself
    assert _chat(http, model, GENERAL).json()["model"] == model


@pytest.mark.parametrize("model", ["glm-5.1", "glm-4.7", "glm-5.3-flash"])
def test_thinking_off_is_refused_for_anything_a_53_model_serves(
    http: TestClient, model: str
) -> None:
    r = _chat(http, model, thinking={"type": "disabled"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "1210"
    assert "always engages in thinking" in r.json()["error"]["message"]
    # glm-4.7 as itself (pay-as-you-go) can stop thinking
    assert _chat(http, "glm-4.7", GENERAL, thinking={"type": "disabled"}).status_code == 200


def test_what_serves_an_id_is_configurable(http: TestClient) -> None:
    http.app.state.served_as["glm-4.5-air"] = "glm-5.3-flash"  # type: ignore[attr-defined]
    assert _chat(http, "glm-4.5-air").json()["model"] == "glm-5.3-flash"


@pytest.mark.parametrize("code", ["1316", "1317", "1318", "1319", "1320", "1321"])
def test_the_new_usage_limits_name_their_reset(http: TestClient, code: str) -> None:
    reset = datetime(2026, 9, 20, 4, 0, 0, tzinfo=UTC)  # 12:00 in Beijing
    http.app.state.spent_keys = {"k.s": (code, reset)}  # type: ignore[attr-defined]
    r = _chat(http, "glm-5.3")
    assert r.status_code == 429 and r.json()["error"]["code"] == code
    assert "reset at 2026-09-20 12:00:00" in r.json()["error"]["message"]
    scripted = _chat(
        http, "glm-5.3", messages=[{"role": "user", "content": f"[[sim:error:{code}]]"}]
    )
    assert scripted.status_code == 429


def test_a_tier_gated_model_is_a_403_below_its_tier(http: TestClient) -> None:
    r = _chat(http, "glm-5.3-highspeed")
    assert r.status_code == 403 and "not available on your plan" in r.json()["error"]["message"]
    http.app.state.gated_keys.add("k.s")  # type: ignore[attr-defined]
    assert _chat(http, "glm-5.3-highspeed").json()["model"] == "glm-5.3-highspeed"


def test_the_model_lists(http: TestClient) -> None:
    coding = http.get("/api/coding/paas/v4/models", headers=AUTH).json()
    assert [m["id"] for m in coding["data"]] == ["glm-5.3", "glm-5.3-flash", "glm-5.3-highspeed"]
    general = {m["id"] for m in http.get("/api/paas/v4/models", headers=AUTH).json()["data"]}
    assert {"glm-4.7", "glm-4.6v", "glm-5.3"} <= general
    assert http.get("/api/paas/v4/models").status_code == 401
    http.app.state.model_lists = {"anthropic": ["glm-5.3"]}  # type: ignore[attr-defined]
    anthropic = http.get("/api/anthropic/v1/models", headers={"x-api-key": "k.s"}).json()
    assert [m["id"] for m in anthropic["data"]] == ["glm-5.3"]


def test_glm_53_flash_takes_a_million_tokens(http: TestClient) -> None:
    big = "word " * 300_000  # ~300K tokens: past the old 200K guess, inside 1,048,576
    r = _chat(http, "glm-5.3-flash", messages=[{"role": "user", "content": big}])
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({"search_engine": "search_std", "search_intent": False, "search_query": "q"}, True),
        ({"search_engine": "search_pro_quark", "search_intent": True, "search_query": "q"}, True),
        ({"search_engine": "search-prime", "search_intent": False, "search_query": "q"}, False),
        ({"search_engine": "search_std", "search_query": "q"}, False),  # no search_intent
        ({"search_engine": "search_std", "search_intent": False, "search_query": "q" * 71}, False),
    ],
)
def test_bigmodels_web_search_rules(http: TestClient, body: dict[str, Any], ok: bool) -> None:
    http.app.state.search_host = "bigmodel"  # type: ignore[attr-defined]
    r = http.post("/api/paas/v4/web_search", json=body, headers=AUTH)
    assert (r.status_code == 200) is ok, r.text
    if not ok:
        assert r.status_code == 400 and r.json()["error"]["code"] == "1214"
    http.app.state.search_host = "zai"  # type: ignore[attr-defined]
    r = http.post("/api/paas/v4/web_search", json={**body, "search_engine": "search_std"},
                  headers=AUTH)  # fmt: skip
    assert r.status_code == 400  # Z.ai's engine is search-prime
