"""A spent 5-hour/weekly window (1308/1310): the key rests until the reset, the client gets
retry-after and the window's name and reset time (anthropic SDK against a real bridge)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anthropic
import httpx2
import pytest

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from tests.support.servers import RunningServer, Start


def _ask(url: str, stream: bool = False) -> str:
    with anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as sdk:
        kwargs = {"model": "claude-sonnet-4-5", "max_tokens": 1000,
                  "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
        if stream:
            with sdk.messages.stream(**kwargs) as s:  # type: ignore[arg-type]
                message = s.get_final_message()
        else:
            message = sdk.messages.create(**kwargs)  # type: ignore[arg-type]
        return "".join(b.text for b in message.content if b.type == "text")


@pytest.mark.parametrize(("code", "window"), [("1308", "5-hour"), ("1310", "weekly/monthly")])
@pytest.mark.parametrize("stream", [False, True])
def test_quota_reset_drives_retry_after(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
    sim_key: str, code: str, window: str, stream: bool,
) -> None:  # fmt: skip
    reset = datetime.now(UTC) + timedelta(hours=2, minutes=30)
    sim.app.state.spent_keys = {sim_key: (code, reset)}
    bridge = start_server(create_app(bridge_settings(sim.url)))
    with pytest.raises(anthropic.RateLimitError) as info:
        _ask(bridge.url, stream)
    err = info.value
    retry_after = int(err.response.headers["retry-after"])
    assert 2.5 * 3600 - 60 <= retry_after <= 2.5 * 3600 + 1
    assert f"the {window} quota window is spent" in err.message
    assert reset.strftime("%Y-%m-%d %H:%M UTC") in err.message
    assert err.response.headers["x-should-retry"] == "false"
    # The key rests until the reset: the next request is answered without asking Z.ai.
    with pytest.raises(anthropic.RateLimitError) as again:
        _ask(bridge.url, stream)
    assert sim.app.state.rejected_quota == 1
    assert "every API key's quota is spent" in again.value.message
    assert int(again.value.response.headers["retry-after"]) <= retry_after
    status = httpx2.get(f"{bridge.url}/metrics").text
    assert 'glmbridge_key_cooldowns_total{key_index="0",reason="quota"} 1.0' in status


def test_a_spent_key_fails_over_and_stays_out(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
) -> None:  # fmt: skip
    keys = ("spent-key.secret", "fresh-key.secret")
    reset = datetime.now(UTC) + timedelta(hours=4)
    sim.app.state.spent_keys = {keys[0]: ("1308", reset)}
    bridge = start_server(create_app(bridge_settings(sim.url, api_keys=keys)))
    for _ in range(4):  # round robin would hit the spent key every other request
        assert _ask(bridge.url)
    assert sim.app.state.rejected_quota == 1
    health = httpx2.get(f"{bridge.url}/health").json()
    assert health["keys_healthy"] == 1


def test_polled_quota_holds_background_calls_back(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
    sim_key: str,
) -> None:  # fmt: skip
    reset_ms = int((datetime.now(UTC) + timedelta(hours=1)).timestamp() * 1000)
    sim.app.state.quota_limits = {sim_key: [
        {"type": "TOKENS_LIMIT", "unit": 3, "number": 5, "percentage": 95,
         "nextResetTime": reset_ms},
        {"type": "TIME_LIMIT", "unit": 5, "number": 1, "usage": 100, "currentValue": 100},
    ]}  # fmt: skip
    settings = bridge_settings(sim.url, quota_poll=0.1, max_queue_wait=0.3)
    bridge = start_server(create_app(settings))
    deadline = time.monotonic() + 5
    while True:
        key = httpx2.get(f"{bridge.url}/status").json()["keys"][0]
        if key["near_exhaustion"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert key["near_exhaustion"]
    assert key["windows"][0] == {
        "kind": "TOKENS_LIMIT", "window": "5-hour", "used_percent": 95.0,
        "resets_at": datetime.fromtimestamp(reset_ms / 1000, UTC).isoformat(),
    }  # fmt: skip
    with (
        anthropic.Anthropic(base_url=bridge.url, api_key="x", max_retries=0) as sdk,
        pytest.raises(anthropic.RateLimitError),
    ):
        sdk.messages.create(model="claude-haiku-4-5", max_tokens=100,
                            messages=[{"role": "user", "content": "title"}])  # fmt: skip
    assert _ask(bridge.url)  # the interactive turn still goes through
    sim.app.state.quota_limits = {}  # the window reset: background flows again
    deadline = time.monotonic() + 5
    while httpx2.get(f"{bridge.url}/status").json()["keys"][0]["near_exhaustion"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with anthropic.Anthropic(base_url=bridge.url, api_key="x", max_retries=0) as sdk:
        sdk.messages.create(model="claude-haiku-4-5", max_tokens=100,
                            messages=[{"role": "user", "content": "title"}])  # fmt: skip
