"""Background tasks (issue 24, item 3): a hostile quota answer is ignored, and a background
loop that fails neither ends the lifespan nor closes the upstream client; /health says
which task is not running."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anthropic
import anyio
import httpx2
import pytest

from glmbridge_server.edge.app import create_app
from glmbridge_server.edge.supervisor import Supervisor
from glmbridge_server.settings import Settings
from glmbridge_server.traffic import quota_poller
from tests.glmbridge.test_quota import HOSTILE_LIMITS
from tests.support.servers import RunningServer, Start


def _ask(url: str) -> str:
    with anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as sdk:
        message = sdk.messages.create(model="claude-sonnet-4-5", max_tokens=100,
                                      messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    return "".join(b.text for b in message.content if b.type == "text")


def _until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_hostile_quota_answers_are_ignored(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
    sim_key: str,
) -> None:  # fmt: skip
    sim.app.state.quota_limits = {sim_key: HOSTILE_LIMITS}
    bridge = start_server(create_app(bridge_settings(sim.url, quota_poll=0.05)))
    _until(lambda: httpx2.get(f"{bridge.url}/status").json()["keys"][0]["windows"] is not None)
    time.sleep(0.3)  # several polls
    assert _ask(bridge.url)
    health = httpx2.get(f"{bridge.url}/health").json()
    assert health["status"] == "ok"
    assert health["background"]["quota_poller"] == {"state": "running", "failures": 0}


def test_a_failing_background_task_does_not_take_the_server_down(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    async def broken(*args: Any) -> None:
        await anyio.sleep(0.01)
        raise RuntimeError("a bug in a background loop")

    monkeypatch.setattr(quota_poller, "poll_quotas", broken)
    bridge = start_server(create_app(bridge_settings(sim.url, quota_poll=0.05)))
    _until(lambda: httpx2.get(f"{bridge.url}/health").json()["status"] == "degraded")
    health = httpx2.get(f"{bridge.url}/health").json()
    assert health["background"]["quota_poller"]["state"] == "restarting"
    assert health["background"]["quota_poller"]["error"] == "RuntimeError"
    for _ in range(3):  # the upstream client is still open: model requests are served
        assert _ask(bridge.url)


def test_the_supervisor_restarts_a_failed_loop_and_reports_a_stopped_one() -> None:
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise ValueError("boom")

    async def main() -> dict[str, Any]:
        supervisor = Supervisor(first_pause=0.01)
        await supervisor.run("flaky", flaky)
        assert not supervisor.healthy
        return supervisor.status()

    assert anyio.run(main) == {"flaky": {"state": "stopped", "failures": 2}}
    assert len(runs) == 3
