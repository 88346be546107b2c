"""``/metrics`` labels every door path with its own route (issue 23, item 10): Codex's
``/v1/responses`` and the Gemini door's methods are not lumped into ``other``."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from glmbridge_server.edge.app import create_app
from glmbridge_server.traffic.metrics import route_label
from tests.server.traffic.test_metrics import scrape, value

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/v1/responses", "/v1/responses"),
        ("/v1/chat/completions", "/v1/chat/completions"),
        ("/v1/messages", "/v1/messages"),
        ("/v1/messages/count_tokens", "/v1/messages/count_tokens"),
        ("/status", "/status"),
        (
            "/v1beta/models/gemini-2.5-flash:generateContent",
            "/v1beta/models/{model}:generateContent",
        ),
        ("/v1/models/glm-5.3:streamGenerateContent", "/v1/models/{model}:streamGenerateContent"),
        ("/v1beta1/models/x:countTokens", "/v1beta1/models/{model}:countTokens"),
        ("/v1beta/models", "/v1beta/models"),
        ("/v1beta/models/gemini-2.5-pro", "/v1beta/models/{model_id}"),
        ("/v1/models/claude-opus-4-8", "/v1/models/{model_id}"),
        ("/v1beta/models/x:evil", "/v1beta/models/{model_id}"),
        ("/wp-admin", "other"),
    ],
)
def test_route_labels(path: str, label: str) -> None:
    assert route_label(path) == label


def test_each_door_counts_under_its_own_route(
    start_server: Any, sim: Any, bridge_settings: Any
) -> None:
    server = start_server(create_app(bridge_settings(sim.url)))
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as oai:
        oai.responses.create(model="glm-4.7", input="hi")
        oai.chat.completions.create(model="glm-4.7", messages=[{"role": "user", "content": "hi"}])
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as sdk:
        sdk.messages.create(
            model="glm-4.7", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    options = types.HttpOptions(base_url=server.url, api_version="v1beta", timeout=30_000)
    with genai.Client(api_key="x", http_options=options) as gem:
        gem.models.generate_content(model="gemini-2.5-flash", contents="hi")
    samples = scrape(server)
    for route in (
        "/v1/responses",
        "/v1/chat/completions",
        "/v1/messages",
        "/v1beta/models/{model}:generateContent",
    ):
        assert value(samples, "glmbridge_requests_total", route=route, status="200") == 1, route
    assert value(samples, "glmbridge_requests_total", route="other") == 0
