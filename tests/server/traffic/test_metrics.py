"""``GET /metrics``: Prometheus text from a per-app registry, counters that move."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from glmbridge_server.edge.app import create_app
from glmbridge_server.simulator import Script, ScriptError
from glmbridge_server.traffic.metrics import _DECLARED, Metrics
from tests.support.servers import MakeSettings, RunningServer, Start

pytestmark = pytest.mark.e2e

TOKEN = "tok-metrics-91c4"
BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 32,
    "messages": [{"role": "user", "content": "hi"}],
}


def scrape(
    server: RunningServer, **headers: str
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """All samples as ``{(name, labels): value}``."""
    response = httpx2.get(server.url + "/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture
def server(start_server: Start, sim: RunningServer, bridge_settings: MakeSettings) -> RunningServer:
    return start_server(create_app(bridge_settings(sim.url, max_retries=2)))


def test_request_and_token_counters_move(server: RunningServer) -> None:
    before = scrape(server)
    for stream in (False, True):
        r = httpx2.post(server.url + "/v1/messages", json={**BODY, "stream": stream}, timeout=30)
        assert r.status_code == 200
    after = scrape(server)
    labels = {"route": "/v1/messages", "protocol": "anthropic", "status": "200"}
    assert (
        value(after, "glmbridge_requests_total", **labels)
        - value(before, "glmbridge_requests_total", **labels)
        == 2
    )
    for kind in ("input", "output"):
        moved = value(after, "glmbridge_tokens_total", kind=kind, model="glm-5.3") - value(
            before, "glmbridge_tokens_total", kind=kind, model="glm-5.3"
        )
        assert moved > 0, kind
    assert value(after, "glmbridge_request_duration_seconds_count", route="/v1/messages") == 2
    ttft = value(after, "glmbridge_time_to_first_token_seconds_count", model="glm-5.3")
    assert ttft == 1  # only the stream has a first token
    assert value(after, "glmbridge_keys") == 1 and value(after, "glmbridge_keys_healthy") == 1


def test_errors_by_type(server: RunningServer) -> None:
    httpx2.post(server.url + "/v1/messages", json={"model": "x"})  # invalid request
    httpx2.get(server.url + "/v1/models/nope")  # not found
    httpx2.get(server.url + "/health", headers={"Host": "evil.example"})  # refused
    samples = scrape(server)
    assert value(samples, "glmbridge_errors_total", type="invalid_request") == 1
    assert value(samples, "glmbridge_errors_total", type="not_found") == 1
    assert value(samples, "glmbridge_errors_total", type="permission") == 1
    assert (
        value(samples, "glmbridge_requests_total", route="/v1/models/{model_id}", status="404") == 1
    )


def test_retries_are_counted(server: RunningServer, sim: RunningServer) -> None:
    sim.app.state.script_queue.append(Script(error=ScriptError(status=500, code="500")))
    response = httpx2.post(server.url + "/v1/messages", json=BODY, timeout=30)
    assert response.status_code == 200, response.text
    samples = scrape(server)
    assert value(samples, "glmbridge_upstream_retries_total") == 1
    assert value(samples, "glmbridge_upstream_retries_total", reason="500") == 1


def test_key_cooldowns_are_counted(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    server = start_server(create_app(bridge_settings(sim.url, api_keys=("bad-key", "good-key"))))
    for _ in range(2):  # no session: round robin, so key #0 is tried once
        response = httpx2.post(server.url + "/v1/messages", json=BODY)
        assert response.status_code == 200
    samples = scrape(server)
    assert value(samples, "glmbridge_key_cooldowns_total", key_index="0", reason="auth") == 1
    assert value(samples, "glmbridge_keys_healthy") == 1 and value(samples, "glmbridge_keys") == 2
    assert "bad-key" not in httpx2.get(server.url + "/metrics").text


def test_metrics_need_the_token(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    server = start_server(create_app(bridge_settings(sim.url, auth_token=TOKEN)))
    assert httpx2.get(server.url + "/metrics").status_code == 401
    samples = scrape(server, **{"x-api-key": TOKEN})
    assert value(samples, "glmbridge_errors_total", type="authentication") == 1
    assert value(samples, "glmbridge_requests_total", route="/metrics", status="401") == 1


def test_each_app_has_its_own_registry(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    one = start_server(create_app(bridge_settings(sim.url)))
    two = start_server(create_app(bridge_settings(sim.url)))
    httpx2.post(one.url + "/v1/messages", json=BODY)
    assert value(scrape(one), "glmbridge_requests_total", route="/v1/messages") == 1
    assert value(scrape(two), "glmbridge_requests_total", route="/v1/messages") == 0


def test_every_declared_metric_is_a_typed_attribute() -> None:
    """The table that builds the metrics and the attributes that type them name the same
    metrics, each of the declared kind."""
    metrics = Metrics()
    typed = Metrics.__annotations__  # the class-level ones: the declared metrics only
    assert set(typed) == set(_DECLARED)
    for attribute, declared in _DECLARED.items():
        assert type(getattr(metrics, attribute)) is declared.kind, attribute
        assert typed[attribute] == declared.kind.__name__, attribute
