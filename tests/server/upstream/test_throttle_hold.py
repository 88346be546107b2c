"""A lasting 1302 is held in the bridge (slots and queue), not failed back after
``max_retries`` for the client to retry (issue 23, item 10)."""

from __future__ import annotations

import random
from typing import Any

import anthropic
import anyio
import httpx2
import pytest

from glmbridge.errors import UpstreamError
from glmbridge.protocols import openai
from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from glmbridge_server.simulator import Script, ScriptError
from glmbridge_server.traffic.scheduler import Scheduler, Ticket
from glmbridge_server.upstream.client import UpstreamClient
from glmbridge_server.upstream.keypool import KeyPool
from glmbridge_server.upstream.throttle_hold import HOLD_CAP
from tests.server.upstream.test_upstream import BASE, OK_BODY, glm_error
from tests.support.servers import RunningServer, make_bridge_settings


def _send(replies: list[httpx2.Response], *, ticket: Ticket | None, **settings: Any) -> Any:
    """Send once through an UpstreamClient with slots; returns (outcome, sleeps, calls)."""
    values: dict[str, Any] = {"upstream": BASE, "api_keys": ("k0",), "max_retries": 0}
    values.update(settings)
    config = Settings(**values)
    pool = KeyPool(config.api_keys)
    sleeps: list[float] = []
    calls: list[int] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    def handle(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return replies.pop(0) if len(replies) > 1 else replies[0]

    async def go() -> Any:
        client = UpstreamClient(
            config, pool, transport=httpx2.MockTransport(handle), sleep=sleep,
            rng=random.Random(3), scheduler=Scheduler(pool, config.slot_limits()),
        )  # fmt: skip
        try:
            return await client.send(
                BASE + "/chat/completions", b"{}", headers=lambda key: {"authorization": key},
                decode_error=lambda status, body, retry: openai.error_from_upstream(
                    status, body, retry_after=retry),
                stream=False, settings=config, ticket=ticket,
            )  # fmt: skip
        except UpstreamError as err:
            return err
        finally:
            await client.aclose()

    return anyio.run(go), sleeps, len(calls)


def test_a_lasting_1302_is_held_until_it_passes() -> None:
    replies = [glm_error(429, "1302")] * 7 + [httpx2.Response(200, content=OK_BODY)]
    reply, sleeps, calls = _send(replies, ticket=Ticket())
    assert not isinstance(reply, UpstreamError), reply
    assert reply.response.status_code == 200
    assert calls == 8 and len(sleeps) == 7  # max_retries=0, yet never failed back
    assert sleeps == sorted(sleeps[:5]) + sleeps[5:]  # backing off
    assert max(sleeps) <= HOLD_CAP


def test_the_hold_stops_at_max_queue_wait() -> None:
    reply, sleeps, _ = _send([glm_error(429, "1302")], ticket=Ticket(), max_queue_wait=5)
    assert isinstance(reply, UpstreamError) and reply.code == "1302"
    assert sleeps and sum(sleeps) <= 5


def test_without_slots_the_retry_budget_decides_as_before() -> None:
    replies = [glm_error(429, "1302"), httpx2.Response(200, content=OK_BODY)]
    reply, sleeps, calls = _send(replies, ticket=None)
    assert isinstance(reply, UpstreamError) and calls == 1 and sleeps == []


def test_other_errors_are_not_held() -> None:
    reply, sleeps, calls = _send([glm_error(400, "1214")], ticket=Ticket())
    assert isinstance(reply, UpstreamError) and calls == 1 and sleeps == []


@pytest.mark.e2e
def test_the_client_gets_an_answer_not_a_429(start_server: Any, sim: RunningServer) -> None:
    server = start_server(create_app(make_bridge_settings(sim.url, max_retries=0)))
    for _ in range(3):
        sim.app.state.script_queue.append(
            Script(error=ScriptError(status=429, code="1302", message="too many in flight"))
        )
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as sdk:
        msg = sdk.messages.create(
            model="glm-4.7", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    assert msg.role == "assistant" and msg.stop_reason is not None  # answered, not a 429
    assert not sim.app.state.script_queue  # all three 1302s were answered, then this


@pytest.mark.e2e
@pytest.mark.parametrize("streamed", [False, True])
def test_a_1302_beyond_the_budget_is_a_rate_limit_error(
    start_server: Any, sim: RunningServer, streamed: bool
) -> None:
    settings = make_bridge_settings(sim.url, max_retries=0, max_queue_wait=1.0)
    server = start_server(create_app(settings))
    ask = {"model": "glm-4.7", "max_tokens": 16,
           "messages": [{"role": "user", "content": "[[sim:error:1302]]"}]}  # fmt: skip
    sdk = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0)
    with sdk, pytest.raises(anthropic.RateLimitError) as caught:
        if streamed:
            with sdk.messages.stream(**ask) as stream:
                stream.get_final_message()
        else:
            sdk.messages.create(**ask)
    assert caught.value.status_code == 429
    assert "High concurrency" in caught.value.body["error"]["message"]  # type: ignore[index]


def test_a_long_retry_after_is_not_held() -> None:
    reply, sleeps, calls = _send(
        [glm_error(429, "1302", **{"retry-after": "600"})], ticket=Ticket()
    )
    assert isinstance(reply, UpstreamError) and calls == 1 and sleeps == []
    assert reply.retry_after == 600
