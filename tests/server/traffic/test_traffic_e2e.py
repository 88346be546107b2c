"""Traffic control end to end: the anthropic SDK, a real bridge, the simulator enforcing
Z.ai's per-key concurrency (1302) the way the real API does."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2 as httpx

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from tests.support.servers import RunningServer, Start


def _slow(text: str, seconds: float) -> str:
    """A user text whose answer streams for about ``seconds`` (10 chunks)."""
    directive = json.dumps({"text": f"answer to {text}", "chunk_count": 10,
                            "delay": seconds / 10})  # fmt: skip
    return f"{text} [[sim:{directive}]]"


def _ask(url: str, text: str, *, model: str = "claude-sonnet-4-5", stream: bool = True,
         headers: dict[str, str] | None = None) -> str:  # fmt: skip
    with anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as sdk:
        kwargs: dict[str, Any] = {
            "model": model, "max_tokens": 2000, "extra_headers": headers or {},
            "messages": [{"role": "user", "content": text}],
        }  # fmt: skip
        if stream:
            with sdk.messages.stream(**kwargs) as s:
                return s.get_final_message().content[0].text  # type: ignore[union-attr]
        return sdk.messages.create(**kwargs).content[0].text  # type: ignore[union-attr]


def _in_threads(*calls: Callable[[], Any], stagger: float = 0.0) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:  # handed to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
        time.sleep(stagger)
    for t in threads:
        t.join(30)
    return results


def _bridge(start: Start, settings: Callable[..., Settings], sim: RunningServer,
            **kw: Any) -> RunningServer:  # fmt: skip
    kw.setdefault("key_slots", (1,))
    return start(create_app(settings(sim.url, **kw)))


def _user_texts(sim: RunningServer) -> list[str]:
    out = []
    for body in sim.app.state.requests:
        for m in body.get("messages", []):
            if m.get("role") == "user" and isinstance(m.get("content"), str):
                out.append(m["content"])
    return out


def test_queued_requests_succeed_one_at_a_time(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
    sim_key: str,
) -> None:  # fmt: skip
    sim.app.state.concurrency = 1  # the key takes one request at a time, like Coding Plan Lite
    bridge = _bridge(start_server, bridge_settings, sim)
    calls = [lambda i=i: _ask(bridge.url, _slow(f"q{i}", 0.3)) for i in range(4)]
    results = _in_threads(*calls)
    assert results == [f"answer to q{i}" for i in range(4)]
    assert sim.app.state.peak_in_flight[sim_key] == 1
    assert sim.app.state.rejected_1302 == 0
    metrics = httpx.get(f"{bridge.url}/metrics").text
    assert 'glmbridge_queue_wait_seconds_count{priority="interactive"} 3.0' in metrics
    assert 'glmbridge_key_slots_in_use{key_index="0"} 0.0' in metrics
    assert 'glmbridge_key_slot_limit{key_index="0"} 1.0' in metrics


def test_main_turn_overtakes_queued_background_calls(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
) -> None:  # fmt: skip
    sim.app.state.concurrency = 1
    bridge = _bridge(start_server, bridge_settings, sim)
    results = _in_threads(
        lambda: _ask(bridge.url, _slow("busy", 1.5)),
        lambda: _ask(bridge.url, _slow("title-1", 0.1), model="claude-haiku-4-5"),
        lambda: _ask(bridge.url, _slow("title-2", 0.1), model="claude-haiku-4-5"),
        lambda: _ask(bridge.url, _slow("main turn", 0.1)),
        stagger=0.2,
    )
    assert not [r for r in results if isinstance(r, Exception)]
    order = [t.split(" [[")[0] for t in _user_texts(sim)]
    assert order == ["busy", "main turn", "title-1", "title-2"]


def test_an_explicit_priority_header_is_honoured(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
) -> None:  # fmt: skip
    sim.app.state.concurrency = 1
    bridge = _bridge(start_server, bridge_settings, sim)
    bg = {"x-glmbridge-priority": "background"}
    _in_threads(
        lambda: _ask(bridge.url, _slow("busy", 1.2)),
        lambda: _ask(bridge.url, "late background", headers=bg),
        lambda: _ask(bridge.url, "interactive"),
        stagger=0.2,
    )
    order = [t.split(" [[")[0] for t in _user_texts(sim)]
    assert order == ["busy", "interactive", "late background"]


def test_two_keys_are_both_used(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
) -> None:  # fmt: skip
    sim.app.state.concurrency = 1
    keys = ("key-a.secret", "key-b.secret")
    bridge = _bridge(start_server, bridge_settings, sim, api_keys=keys)
    session = {"x-claude-code-session-id": "one-session"}
    results = _in_threads(
        *[lambda i=i: _ask(bridge.url, _slow(f"q{i}", 0.4), headers=session) for i in range(2)]
    )
    assert results == ["answer to q0", "answer to q1"]
    peaks = sim.app.state.peak_in_flight
    assert peaks[keys[0]] == 1 and peaks[keys[1]] == 1
    assert sim.app.state.rejected_1302 == 0


def test_queue_timeout_is_a_native_rate_limit_with_retry_after(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
) -> None:  # fmt: skip
    sim.app.state.concurrency = 1
    bridge = _bridge(start_server, bridge_settings, sim, max_queue_wait=0.3)
    results = _in_threads(
        lambda: _ask(bridge.url, _slow("busy", 1.0)),
        lambda: _ask(bridge.url, "waits too long", stream=False),
        stagger=0.15,
    )
    assert results[0] == "answer to busy"
    err = results[1]
    assert isinstance(err, anthropic.RateLimitError), err
    assert int(err.response.headers["retry-after"]) >= 1
    assert "max_queue_wait" in err.message
    metrics = httpx.get(f"{bridge.url}/metrics").text
    assert 'glmbridge_queue_timeouts_total{priority="interactive"} 1.0' in metrics


def test_a_queued_stream_gets_headers_and_keepalives(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
) -> None:  # fmt: skip
    sim.app.state.concurrency = 1
    bridge = _bridge(start_server, bridge_settings, sim, commit_after=0.1, ping_interval=0.2)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": "queued"}]}  # fmt: skip
    seen: dict[str, Any] = {}

    def queued() -> None:
        time.sleep(0.15)
        t0 = time.monotonic()
        with httpx.stream("POST", f"{bridge.url}/v1/messages", json=body, timeout=10) as r:
            seen["headers_after"] = time.monotonic() - t0
            seen["status"] = r.status_code
            seen["text"] = "".join(r.iter_text())

    _in_threads(lambda: _ask(bridge.url, _slow("busy", 1.2)), queued)
    assert seen["status"] == 200 and seen["headers_after"] < 0.8
    text = seen["text"]
    assert text.index("event: message_start") < text.index("event: ping")
    assert text.index("event: ping") < text.index("content_block_delta")
    assert "event: message_stop" in text


def test_a_1302_teaches_the_key_its_real_limit(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
    sim_key: str,
) -> None:  # fmt: skip
    sim.app.state.concurrency = 1  # the plan says 3, the key really takes 1
    bridge = _bridge(start_server, bridge_settings, sim, key_slots=(3,), max_retries=4)
    results = _in_threads(*[lambda i=i: _ask(bridge.url, _slow(f"q{i}", 0.3)) for i in range(3)])
    assert results == [f"answer to q{i}" for i in range(3)]
    assert sim.app.state.rejected_1302 >= 1
    metrics = httpx.get(f"{bridge.url}/metrics").text
    assert 'glmbridge_key_slot_limit{key_index="0"} 1.0' in metrics


def test_slots_change_at_runtime_through_post_config(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
) -> None:  # fmt: skip
    bridge = _bridge(start_server, bridge_settings, sim)
    r = httpx.post(f"{bridge.url}/config", json={"key_slots": [2], "max_queue_wait": 5})
    assert r.status_code == 200, r.text
    assert _ask(bridge.url, _slow("after", 0.05)) == "answer to after"
    metrics = httpx.get(f"{bridge.url}/metrics").text
    assert 'glmbridge_key_slot_limit{key_index="0"} 2.0' in metrics
    bad = httpx.post(f"{bridge.url}/config", json={"key_slots": [0]})
    assert bad.status_code == 400 and "key_slots" in bad.text


def test_status_shows_the_new_slot_limit_right_after_post_config(
    sim: RunningServer, start_server: Start, bridge_settings: Callable[..., Settings],
) -> None:  # fmt: skip
    """Issue 24, item 9: no upstream call is needed for /status to see a new limit."""
    bridge = _bridge(start_server, bridge_settings, sim)
    assert httpx.get(f"{bridge.url}/status").json()["slots"]["limit"] == 1
    r = httpx.post(f"{bridge.url}/config", json={"key_slots": [3]})
    assert r.status_code == 200, r.text
    status = httpx.get(f"{bridge.url}/status").json()
    assert status["slots"]["limit"] == 3 and status["keys"][0]["limit"] == 3
    metrics = httpx.get(f"{bridge.url}/metrics").text
    assert 'glmbridge_key_slot_limit{key_index="0"} 3.0' in metrics
