"""Golden tests of the simulator's per-key limits (glmbridge_server.simulator.limits): the 1302,
1308 and 1310 answers have the shapes and texts Z.ai sends (sources in the module)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import httpx2

from tests.support.servers import RunningServer

RESET = datetime(2026, 8, 27, 13, 31, 39, tzinfo=UTC)  # 21:31:39 in Beijing


def _post(sim: RunningServer, path: str, key: str, **headers: str) -> httpx2.Response:
    body = {"model": "glm-4.6", "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    auth = {"authorization": f"Bearer {key}"} if "anthropic" not in path else {"x-api-key": key}
    return httpx2.post(f"{sim.url}{path}", json=body, headers={**auth, **headers}, timeout=10)


def test_1308_and_1310_texts_carry_the_beijing_reset(sim: RunningServer) -> None:
    sim.app.state.spent_keys = {"k5": ("1308", RESET), "kw": ("1310", RESET)}
    r = _post(sim, "/api/coding/paas/v4/chat/completions", "k5")
    assert r.status_code == 429 and "retry-after" not in r.headers
    text = "Usage limit reached for 5 hour. Your limit will reset at 2026-08-27 21:31:39"
    assert r.json() == {"error": {"code": "1308", "message": text}}
    r = _post(sim, "/api/coding/paas/v4/chat/completions", "kw")
    assert r.json()["error"]["message"] == (
        "Weekly/Monthly Limit Exhausted. Your limit will reset at 2026-08-27 21:31:39"
    )
    r = _post(sim, "/api/anthropic/v1/messages", "k5")
    err = r.json()["error"]
    assert r.status_code == 429 and err["type"] == "rate_limit_error" and err["code"] == "1308"
    cn = "已达到 5 小时的使用上限。您的限额将在 2026-08-27 21:31:39 重置。"
    assert err["message"].startswith(f"[1308][{cn}][")
    assert sim.app.state.rejected_quota == 3


def test_one_request_too_many_is_a_1302(sim: RunningServer) -> None:
    sim.app.state.key_concurrency = {"k1": 1}
    directive = json.dumps({"text": "slow", "chunk_count": 10, "delay": 0.05})
    slow = {"model": "glm-4.6", "stream": True,
            "messages": [{"role": "user", "content": f"x [[sim:{directive}]]"}]}  # fmt: skip
    done = threading.Event()

    def hold() -> None:
        with httpx2.stream("POST", f"{sim.url}/chat/completions", json=slow,
                           headers={"authorization": "Bearer k1"}) as r:  # fmt: skip
            for _ in r.iter_bytes():
                pass
        done.set()

    t = threading.Thread(target=hold)
    t.start()
    deadline = 50
    while sim.app.state.in_flight["k1"] == 0 and deadline:
        deadline -= 1
        threading.Event().wait(0.01)
    r = _post(sim, "/chat/completions", "k1")
    assert r.status_code == 429
    assert r.json() == {"error": {"code": "1302", "message": "Rate limit reached for requests"}}
    assert _post(sim, "/chat/completions", "other-key").status_code == 200  # per key
    t.join(10)
    assert done.is_set() and sim.app.state.in_flight["k1"] == 0
    assert _post(sim, "/chat/completions", "k1").status_code == 200
    assert sim.app.state.peak_in_flight["k1"] == 1 and sim.app.state.rejected_1302 == 1


def test_quota_endpoint_answers_200_even_without_a_key(sim: RunningServer) -> None:
    r = httpx2.get(f"{sim.url}/api/monitor/usage/quota/limit")
    assert r.status_code == 200 and r.json()["success"] is False
    r = httpx2.get(f"{sim.url}/api/monitor/usage/quota/limit", headers={"authorization": "k"})
    assert r.json()["success"] is True and r.json()["data"]["limits"] == []
