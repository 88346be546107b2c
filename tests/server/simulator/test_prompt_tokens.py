"""The simulator's prompt tokens against GLM's real count of the recorded client requests.

The reference (``tests/fixtures/token_counts``) is GLM's tokenizer on GLM's chat template;
the simulator counts on its own (regex pieces, no ``glmbridge``), so this test and
``tests/glmbridge/test_token_truth.py`` check two methods against one truth.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from glmbridge.exchange import Exchange
from glmbridge.server_tools import ServerToolLoop
from glmbridge_server.simulator.prompt_tokens import text_tokens
from glmbridge_server.simulator.rules import _estimate
from tests.glmbridge.recorded_requests import FIXTURES, recorded_requests

TRUTH = json.loads((FIXTURES / "token_counts" / "counts.json").read_text())


def upstream_bodies() -> dict[str, dict[str, Any]]:
    """The chat body the bridge sends for each recorded request (the server-tool loop's
    first round for web search), images removed: the simulator prices those apart."""
    out = {}
    for name, door, req in recorded_requests():
        loop = ServerToolLoop.for_request(req)
        body = json.loads(Exchange.from_request(door, loop.next_request() if loop else req).body)
        for m in body["messages"]:
            if isinstance(m.get("content"), list):
                m["content"] = [p for p in m["content"] if p.get("type") != "image_url"]
        out[name] = body
    return out


BODIES = upstream_bodies()


@pytest.mark.parametrize("name", sorted(BODIES))
def test_prompt_tokens_within_ten_percent_of_glm(name: str) -> None:
    truth = TRUTH["requests"][name]["prompt_tokens"]
    prompt = _estimate(BODIES[name])
    assert prompt.image == prompt.video == 0
    assert abs(prompt.tokens - truth) <= max(0.10 * truth, 4), (prompt.tokens, truth)


@pytest.mark.parametrize("name", sorted(TRUTH["texts"]))
def test_text_tokens_near_glm(name: str) -> None:
    sample = TRUTH["texts"][name]
    assert abs(text_tokens(sample["text"]) - sample["tokens"]) <= max(0.25 * sample["tokens"], 2)
