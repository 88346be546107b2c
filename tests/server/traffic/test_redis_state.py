"""Several instances share key slots and cooldowns through a real redis-server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import anyio
import httpx2
import pytest

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from glmbridge_server.traffic.redis_state import LOCAL_LEASE, RedisState
from glmbridge_server.upstream import model_follower
from glmbridge_server.upstream.keypool import KeyPool
from tests.server.redis_server import RedisServer
from tests.support.servers import RunningServer, Start, free_port


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with RedisServer() as redis:
        yield redis.url


def _ask(url: str, text: str) -> str:
    directive = json.dumps({"text": f"answer to {text}", "chunk_count": 5, "delay": 0.05})
    messages = [{"role": "user", "content": f"{text} [[sim:{directive}]]"}]
    with (
        anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as sdk,
        sdk.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=100,
            messages=messages,  # type: ignore[arg-type]
        ) as s,
    ):
        message = s.get_final_message()
    return "".join(b.text for b in message.content if b.type == "text")


def test_two_instances_never_exceed_one_request_on_a_shared_key(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
    sim_key: str, redis_url: str,
) -> None:  # fmt: skip
    sim.app.state.concurrency = 1
    settings = bridge_settings(sim.url, key_slots=(1,), redis_url=redis_url)
    bridges = [start_server(create_app(settings)) for _ in range(2)]
    results: list[Any] = [None] * 8

    def run(i: int) -> None:
        try:
            results[i] = _ask(bridges[i % 2].url, f"q{i}")
        except Exception as exc:  # handed to the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [f"answer to q{i}" for i in range(8)]
    assert sim.app.state.peak_in_flight[sim_key] == 1
    assert sim.app.state.rejected_1302 == 0


def test_a_quota_cooldown_reaches_the_other_instance(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
    sim_key: str, redis_url: str,
) -> None:  # fmt: skip
    sim.app.state.spent_keys = {sim_key: ("1308", datetime.now(UTC) + timedelta(hours=1))}
    settings = bridge_settings(sim.url, redis_url=redis_url)
    a, b = (start_server(create_app(settings)) for _ in range(2))
    with pytest.raises(anthropic.RateLimitError):
        _ask(a.url, "spent")
    time.sleep(1.5)  # b copies shared cooldowns once a second
    with pytest.raises(anthropic.RateLimitError) as info:
        _ask(b.url, "spent")
    assert "every API key's quota is spent" in info.value.message
    assert sim.app.state.rejected_quota == 1  # b never asked Z.ai


def test_redis_down_degrades_to_local_state(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    dead = f"redis://127.0.0.1:{free_port()}/0"
    bridge = start_server(create_app(bridge_settings(sim.url, redis_url=dead)))
    assert _ask(bridge.url, "still flows") == "answer to still flows"
    assert any("Redis unavailable" in r.getMessage() for r in caplog.records)


def test_a_dead_holder_frees_its_slot_when_the_lease_expires(redis_url: str) -> None:
    async def main() -> None:
        gone = RedisState(redis_url, ["lease-test"], ttl=0.3)  # never renews: "dies"
        other = RedisState(redis_url, ["lease-test"], ttl=0.3)
        assert await gone.take(0, 1) not in (None, LOCAL_LEASE)
        assert await other.take(0, 1) is None
        await anyio.sleep(0.4)
        lease = await other.take(0, 1)
        assert lease not in (None, LOCAL_LEASE)
        other.release(lease)  # type: ignore[arg-type]
        await anyio.sleep(0.05)
        assert await gone.take(0, 1) is not None
        await gone.aclose()
        await other.aclose()

    anyio.run(main)


def test_cooldowns_are_copied_into_the_pool(redis_url: str) -> None:
    async def main() -> None:
        a = RedisState(redis_url, ["cool-test"])
        b = RedisState(redis_url, ["cool-test"])
        pool = KeyPool(["k"])
        a.share_cooldown(0, 60, None)
        await anyio.sleep(0.1)
        await b._pull_cooldowns(pool)
        assert pool.is_cooling(0) and pool.cooling_remaining(0) > 55
        await a.aclose()
        await b.aclose()

    anyio.run(main)


def test_a_limit_learned_by_one_instance_holds_for_the_others(redis_url: str) -> None:
    async def main() -> None:
        a = RedisState(redis_url, ["learn-test"])
        b = RedisState(redis_url, ["learn-test"])
        a.share_limit(0, 1, 0.5)  # a got a 1302: one slot on this key for 0.5 s
        await anyio.sleep(0.1)
        first = await b.take(0, 2)
        assert first not in (None, LOCAL_LEASE)
        assert await b.take(0, 2) is None  # the learned 1 holds, not b's configured 2
        assert await b.shared_status() == [{"in_use": 1, "queued": 1, "learned_limit": 1}]
        await anyio.sleep(0.5)  # the learned limit expired: the configured one is back
        second = await b.take(0, 2)
        assert second not in (None, LOCAL_LEASE)
        await a.aclose()
        await b.aclose()

    anyio.run(main)


def test_one_instance_leads_each_round_and_the_others_read_its_news(redis_url: str) -> None:
    async def main() -> None:
        a = RedisState(redis_url, ["lead-test"])
        b = RedisState(redis_url, ["lead-test"])
        assert await a.lead("round-test", 0.3)
        assert not await b.lead("round-test", 0.3)  # a does this round's work
        assert not await a.lead("round-test", 0.3)  # once per round, even for a
        assert await b.news("round-test") is None
        await a.publish("round-test", '{"found": 1}', 5)
        assert await b.news("round-test") == '{"found": 1}'
        await anyio.sleep(0.35)
        assert await b.lead("round-test", 0.3)  # the next round goes to whoever asks first
        await a.aclose()
        await b.aclose()

    anyio.run(main)


def test_without_redis_every_instance_does_its_own_round() -> None:
    async def main() -> None:
        dead = RedisState(f"redis://127.0.0.1:{free_port()}/0", ["x"])
        assert await dead.lead("round", 5)  # Redis unreachable: do the work locally
        assert await dead.lead("round", 5)
        assert await dead.news("round") is None
        assert await dead.shared_status() is None
        await dead.aclose()

    anyio.run(main)


def test_instances_sharing_redis_poll_the_quota_once_per_round(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
    sim_key: str, redis_url: str,
) -> None:  # fmt: skip
    sim.app.state.quota_limits = {sim_key: [
        {"type": "TOKENS_LIMIT", "unit": 3, "number": 5, "percentage": 95},
    ]}  # fmt: skip
    settings = bridge_settings(sim.url, quota_poll=0.5, redis_url=redis_url)
    bridges = [start_server(create_app(settings)) for _ in range(2)]
    deadline = time.monotonic() + 10
    for bridge in bridges:  # each shows the windows, polled by whichever led the round
        while not (key := httpx2.get(f"{bridge.url}/status").json()["keys"][0])["windows"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert key["near_exhaustion"] and key["windows"][0]["used_percent"] == 95.0
    sim.app.state.quota_polls = 0
    time.sleep(2.0)  # four rounds of 0.5 s: four polls between the two (eight without Redis)
    assert 3 <= sim.app.state.quota_polls <= 5


def test_instances_sharing_redis_read_the_model_lists_once_per_round(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
    redis_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    reads: list[str] = []
    read = model_follower._read

    async def counted(*args: Any) -> frozenset[str]:
        reads.append(args[1].name)
        return await read(*args)

    monkeypatch.setattr(model_follower, "_read", counted)
    sim.app.state.model_lists = {"coding": ["glm-5.3", "glm-5.3-flash", "glm-5.3-prime"]}
    settings = bridge_settings(sim.url, models_refresh=0.5, redis_url=redis_url)
    apps = [create_app(settings) for _ in range(2)]
    for app in apps:
        start_server(app)
    deadline = time.monotonic() + 10
    for app in apps:  # each serves the lists, read by whichever led the round
        while not any("glm-5.3-prime" in ids for ids in app.state.live_models.values()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    reads.clear()
    time.sleep(2.0)  # four rounds of 0.5 s: four reads between the two (eight without Redis)
    assert 3 <= len(reads) <= 5
