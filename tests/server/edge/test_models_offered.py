"""Model lists offer only what the upstream serves (issue 11): on the Coding Plan a built-in
model outside the plan (glm-4.6v) is not listed by any door's model list, since picking it is
a 400; pay-as-you-go lists it. Models a configuration adds are always listed."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import msgspec
import pytest
from starlette.applications import Starlette

from glmbridge.profiles import profile_for
from glmbridge.routing import DEFAULT_ROUTE_TABLE, model_info, offered
from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from tests.support.servers import RunningServer

pytestmark = pytest.mark.e2e


def _lists(url: str) -> dict[str, set[str]]:
    with httpx2.Client(base_url=url, timeout=10) as http:
        anthropic = http.get(
            "/v1/models", params={"limit": 1000}, headers={"anthropic-version": "2023-06-01"}
        ).json()
        codex = http.get("/v1/models", params={"client_version": "0.171.0"}).json()
        gemini = http.get("/v1beta/models", headers={"x-goog-api-key": "x"}).json()
    return {
        "anthropic": {m["id"] for m in anthropic["data"]},
        "codex": {m["slug"] for m in codex["models"]},
        "gemini": {m["name"].removeprefix("models/") for m in gemini["models"]},
    }


def test_the_coding_plan_lists_only_its_models(bridge: RunningServer) -> None:
    for door, ids in _lists(bridge.url).items():
        # GLM-5.3, GLM-5.3-Flash and the tier-gated variant; legacy ids are other models in
        # disguise (docs.bigmodel.cn/cn/coding-plan/overview), glm-4.6v is not served
        assert {"glm-5.3", "glm-5.3-flash", "glm-5.3-highspeed"} <= ids, door
        assert not {"glm-4.7", "glm-5.1", "glm-4.6v"} & ids, door


def test_pay_as_you_go_lists_its_vision_models(
    start_server: Callable[[Starlette], RunningServer],
    sim: RunningServer,
    bridge_settings: Callable[..., Settings],
) -> None:
    settings = bridge_settings(sim.url, upstream=f"{sim.url}/api/paas/v4")
    server = start_server(create_app(settings))
    for door, ids in _lists(server.url).items():
        assert {"glm-4.7", "glm-4.6v"} <= ids, door


def test_models_a_configuration_adds_stay_listed() -> None:
    coding = profile_for("zai-coding")
    extra = {**DEFAULT_ROUTE_TABLE.models, "glm-9-preview": model_info("glm-9-preview")}
    table = msgspec.structs.replace(DEFAULT_ROUTE_TABLE, models=extra)
    assert "glm-9-preview" in offered(table, coding).models
    assert "glm-4.6v" not in offered(DEFAULT_ROUTE_TABLE, coding).models
    payg = set(offered(DEFAULT_ROUTE_TABLE, profile_for("zai")).models)
    assert payg == set(DEFAULT_ROUTE_TABLE.models) - {"glm-5.3-highspeed"}  # a plan's tier
