"""Key pool: session stickiness, round robin, cooldown and failover order; session ids."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from glmbridge_server.upstream.keypool import KeyPool, session_id_from


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


KEYS = [f"key-{i}.SECRET" for i in range(4)]


def test_same_session_same_key() -> None:
    pool = KeyPool(KEYS)
    first = pool.select("session-a")
    assert first is not None
    assert all(pool.select("session-a") == first for _ in range(20))


def test_sessions_spread_over_keys() -> None:
    pool = KeyPool(KEYS)
    used = Counter(pool.select(f"session-{i}").index for i in range(400))  # type: ignore[union-attr]
    assert set(used) == {0, 1, 2, 3}
    assert min(used.values()) > 50  # roughly balanced


def test_stickiness_is_stable_across_pool_instances() -> None:
    # Hashing must not depend on the process (no salted hash()): restarts keep caches warm.
    assert KeyPool(KEYS).ranking("abc") == KeyPool(KEYS).ranking("abc")


def test_round_robin_without_session() -> None:
    pool = KeyPool(KEYS)
    assert [pool.select(None).index for _ in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]  # type: ignore[union-attr]


def test_cooldown_moves_session_and_it_returns_after_expiry() -> None:
    clock = FakeClock()
    pool = KeyPool(KEYS, clock=clock)
    home = pool.select("s").index  # type: ignore[union-attr]
    pool.cool_down(home, 60)
    assert pool.is_cooling(home) and pool.healthy_count() == 3
    moved = pool.select("s").index  # type: ignore[union-attr]
    assert moved != home
    assert moved == pool.ranking("s")[1]  # the session's second choice
    clock.now += 61
    assert pool.select("s").index == home  # type: ignore[union-attr]


def test_cooling_one_key_only_moves_its_own_sessions() -> None:
    pool = KeyPool(KEYS, clock=FakeClock())
    before = {f"s{i}": pool.select(f"s{i}").index for i in range(200)}  # type: ignore[union-attr]
    pool.cool_down(0, 300)
    for session, index in before.items():
        if index != 0:
            assert pool.select(session).index == index  # type: ignore[union-attr]


def test_failover_excludes_tried_keys_and_ends() -> None:
    pool = KeyPool(KEYS[:2])
    a = pool.select("s")
    b = pool.select("s", exclude={a.index})  # type: ignore[union-attr]
    assert b is not None and b.index != a.index  # type: ignore[union-attr]
    assert pool.select("s", exclude={0, 1}) is None


def test_all_cooling_still_returns_the_first_to_recover() -> None:
    clock = FakeClock()
    pool = KeyPool(KEYS[:3], clock=clock)
    pool.cool_down(0, 300)
    pool.cool_down(1, 60)
    pool.cool_down(2, 120)
    assert pool.select("s").index == 1  # type: ignore[union-attr]


def test_cooldown_extends_never_shortens() -> None:
    clock = FakeClock()
    pool = KeyPool(KEYS, clock=clock)
    pool.cool_down(0, 300)
    pool.cool_down(0, 10)
    clock.now += 100
    assert pool.is_cooling(0)


def test_empty_pool() -> None:
    pool = KeyPool([])
    assert len(pool) == 0 and pool.select("s") is None and pool.select(None) is None


def test_keys_never_in_repr_or_status() -> None:
    pool = KeyPool(KEYS)
    lease = pool.select("s")
    for text in (repr(pool), repr(lease), str(pool.status())):
        assert "SECRET" not in text


@pytest.mark.parametrize(
    ("header", "user_id", "expected"),
    [
        ("hdr-1", "user_x_session_11111111-2222-3333-4444-555555555555", "hdr-1"),
        (
            None,
            "user_ab12_account_9f1c5d7e-0000-1111-2222-333344445555_session_"
            "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
            "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
        ),
        (None, json.dumps({"device_id": "d", "session_id": "sess-json"}), "sess-json"),
        (None, "plain-user", "plain-user"),
        (None, "{not json", "{not json"),
        ("  ", None, None),
        (None, None, None),
    ],
)
def test_session_id_from(header: str | None, user_id: str | None, expected: str | None) -> None:
    assert session_id_from(header, user_id) == expected
