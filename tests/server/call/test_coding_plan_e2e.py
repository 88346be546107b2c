"""Z.ai's Coding Plan since September 2026, end to end (issue 19): real SDKs against a real
bridge in front of the simulator, which reroutes legacy ids as the plan does
(https://docs.bigmodel.cn/cn/coding-plan/overview, quoted in earendil-works/pi#9616).

Done when: on default settings Claude Code's main loop is answered by GLM-5.3 and its side
requests by GLM-5.3-Flash, none refused for thinking-off; a request for glm-5.1 or glm-4.7
reports the model that served it everywhere a user looks; a 1316 with a reset is asked once,
then the key rests and the client gets retry-after to the reset.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from glmbridge.websearch import BIGMODEL_SEARCH, ZAI_SEARCH, SearchFailure, SearchOptions
from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import MOCK_API_KEY, Settings
from glmbridge_server.simulator import Script
from glmbridge_server.tools.search_engine import ZaiSearchEngine
from tests.support.servers import RunningServer, Start
from tests.support.simulator import chats

Settle = Callable[..., Settings]
OFF = {"type": "disabled"}
BASH = {"name": "Bash", "description": "run", "input_schema": {"type": "object"}}


def _ask(url: str, model: str, *, stream: bool, **extra: Any) -> tuple[str, httpx2.Headers]:
    """One Anthropic SDK call; (text, response headers)."""
    kwargs: dict[str, Any] = {
        "model": model, "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }  # fmt: skip
    with anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as sdk:
        if stream:
            with sdk.messages.with_streaming_response.create(**kwargs, stream=True) as raw:
                headers = raw.headers
                text = "".join(
                    e.delta.text
                    for e in raw.parse()
                    if e.type == "content_block_delta" and e.delta.type == "text_delta"
                )
        else:
            raw_response = sdk.messages.with_raw_response.create(**kwargs)
            headers, message = raw_response.headers, raw_response.parse()
            text = "".join(b.text for b in message.content if b.type == "text")
    return text, headers  # type: ignore[return-value]


@pytest.mark.parametrize("stream", [False, True])
def test_claude_codes_main_loop_on_glm53_side_requests_on_flash(
    sim: RunningServer, start_server: Start, bridge_settings: Settle, stream: bool
) -> None:
    bridge = start_server(create_app(bridge_settings(sim.url)))
    cases = [
        # the main loop: tools, thinking on
        ("claude-sonnet-4-5", {"tools": [BASH], "thinking": {"type": "enabled",
                                                             "budget_tokens": 2000}}, "glm-5.3"),
        ("claude-opus-4-8", {"tools": [BASH]}, "glm-5.3"),
        # titles and WebFetch: the main model's name, thinking off, no tools
        ("claude-opus-4-8", {"thinking": OFF}, "glm-5.3-flash"),
        # haiku (with thinking off, as Claude Code sends it)
        ("claude-haiku-4-5-20251001", {"thinking": OFF}, "glm-5.3-flash"),
    ]  # fmt: skip
    for model, extra, served in cases:
        text, headers = _ask(bridge.url, model, stream=stream, **extra)
        assert text, (model, extra)
        assert headers["x-glmbridge-served-model"] == served
        sent = chats(sim)[-1]
        assert sent["model"] == served
        assert sent.get("thinking", {}).get("type") != "disabled"  # never refused for it


def test_claude_codes_web_search_runs_on_flash(
    sim: RunningServer, start_server: Start, bridge_settings: Settle
) -> None:
    bridge = start_server(create_app(bridge_settings(sim.url)))
    tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}
    sim.app.state.script_queue.append(
        Script(tool_calls=[{"name": "web_search", "arguments": {"query": "glmbridge"}}])  # type: ignore[list-item]
    )
    text, _ = _ask(bridge.url, "claude-opus-4-8", stream=False, thinking=OFF, tools=[tool])
    assert text
    models = {c["model"] for c in chats(sim)}
    assert models == {"glm-5.3-flash"}
    assert all(c.get("thinking", {}).get("type") != "disabled" for c in chats(sim))


@pytest.mark.parametrize(
    ("model", "served"), [("glm-5.1", "glm-5.3"), ("glm-4.7", "glm-5.3-flash")]
)
def test_a_legacy_id_reports_the_model_that_served_it_everywhere(
    sim: RunningServer, start_server: Start, bridge_settings: Settle, tmp_path: Path,
    caplog: pytest.LogCaptureFixture, model: str, served: str,
) -> None:  # fmt: skip
    bridge = start_server(create_app(bridge_settings(sim.url, data_dir=str(tmp_path))))
    with caplog.at_level("INFO", logger="glmbridge.access"):
        for stream in (False, True):
            # thinking off on a legacy id the plan answers with a 5.3-family model: adapted
            _, headers = _ask(bridge.url, model, stream=stream, thinking=OFF)
            assert headers["x-glmbridge-served-model"] == served
            assert headers["x-glmbridge-routed-model"] == model
    sent = chats(sim)[-1]
    assert sent["model"] == model and sent.get("thinking", {}).get("type") != "disabled"
    logged = [r for r in caplog.records if getattr(r, "fields", {}).get("routed_model") == model]
    assert logged and all(r.fields["served_model"] == served for r in logged)  # type: ignore[attr-defined]
    metrics = httpx2.get(f"{bridge.url}/metrics").text
    assert f'model="{served}"' in metrics
    status = httpx2.get(f"{bridge.url}/status").json()
    assert status["last_served"]["model"] == served
    assert status["last_served"]["routed_model"] == model
    deadline = time.monotonic() + 5
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline and len(rows) < 2:  # written by the store's thread
        with sqlite3.connect(tmp_path / "usage.sqlite3") as db:
            rows = db.execute("SELECT model, served_model FROM usage").fetchall()
        time.sleep(0.05)
    assert rows == [(model, served)] * 2
    # what the answers said is kept in the data directory for the next run
    learned = json.loads((tmp_path / "served_models.json").read_text())
    assert next(iter(learned.values())) == {model: served}


def test_a_1316_rests_the_key_until_its_reset(
    sim: RunningServer, start_server: Start, bridge_settings: Settle, sim_key: str
) -> None:
    reset = datetime.now(UTC) + timedelta(hours=3)
    sim.app.state.spent_keys = {sim_key: ("1316", reset)}
    bridge = start_server(create_app(bridge_settings(sim.url, max_retries=2)))
    for attempt in range(2):
        with pytest.raises(anthropic.RateLimitError) as info:
            _ask(bridge.url, "claude-sonnet-4-5", stream=bool(attempt))
        retry_after = int(info.value.response.headers["retry-after"])
        assert 3 * 3600 - 60 <= retry_after <= 3 * 3600 + 1
        assert info.value.response.headers["x-should-retry"] == "false"
    assert sim.app.state.rejected_quota == 1  # asked once, not retried, then the key rests
    assert reset.strftime("%Y-%m-%d %H:%M UTC") in info.value.message


def test_the_answers_teach_which_model_serves_an_unsettled_id(
    sim: RunningServer, start_server: Start, bridge_settings: Settle,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    sim.app.state.served_as["glm-4.5-air"] = "glm-5.3-flash"  # what a live answer would say
    bridge = start_server(create_app(bridge_settings(sim.url)))
    with caplog.at_level("INFO", logger="glmbridge.models"):
        _, headers = _ask(bridge.url, "glm-4.5-air", stream=False)
    assert headers["x-glmbridge-served-model"] == "glm-5.3-flash"
    assert any("answers glm-4.5-air with glm-5.3-flash" in r.getMessage() for r in caplog.records)
    # learned: thinking off is now adapted for it (the simulator refuses it for Flash)
    text, _ = _ask(bridge.url, "glm-4.5-air", stream=True, thinking=OFF)
    assert text and chats(sim)[-1].get("thinking", {}).get("type") != "disabled"


def test_a_tier_gated_model_is_a_plan_error_that_cools_no_key(
    sim: RunningServer, start_server: Start, bridge_settings: Settle
) -> None:
    bridge = start_server(create_app(bridge_settings(sim.url)))
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        _ask(bridge.url, "glm-5.3-highspeed", stream=False)
    assert "not available on the GLM Coding Plan" in info.value.message
    assert httpx2.get(f"{bridge.url}/health").json()["keys_healthy"] == 1
    sim.app.state.gated_keys.add(next(iter(bridge.app.state.settings.api_keys)))
    assert _ask(bridge.url, "glm-5.3-highspeed", stream=False)[0]


def test_the_model_lists_follow_what_zai_lists(start_server: Start) -> None:
    app = create_app(Settings(mock=True, models_refresh=3600))
    app.state.simulator.state.model_lists = {
        "coding": ["glm-5.3", "glm-5.3-flash", "glm-5.3-prime"]
    }
    bridge = start_server(app)
    deadline = time.monotonic() + 5
    ids: set[str] = set()
    while time.monotonic() < deadline and "glm-5.3-prime" not in ids:
        page = httpx2.get(f"{bridge.url}/v1/models?limit=1000",
                          headers={"anthropic-version": "2023-06-01"}).json()  # fmt: skip
        ids = {m["id"] for m in page["data"]}
        time.sleep(0.05)
    assert {"glm-5.3", "glm-5.3-flash", "glm-5.3-prime"} <= ids
    assert "glm-5.3-highspeed" not in ids and "glm-4.7" not in ids
    prime = next(m for m in page["data"] if m["id"] == "glm-5.3-prime")
    assert prime["max_input_tokens"] == 1_048_576  # GLM-5.3's family spec


def test_the_model_lists_are_not_read_under_mock_unless_asked(start_server: Start) -> None:
    app = create_app(Settings(mock=True))
    bridge = start_server(app)
    page = httpx2.get(f"{bridge.url}/v1/models?limit=1000",
                      headers={"anthropic-version": "2023-06-01"}).json()  # fmt: skip
    ids = {m["id"] for m in page["data"]}
    assert {"glm-5.3", "glm-5.3-flash", "glm-5.3-highspeed"} <= ids and "glm-4.7" not in ids
    assert app.state.live_models == {}


@pytest.mark.parametrize("shown", [True, False])
def test_openai_chat_clients_see_glms_reasoning(
    sim: RunningServer, start_server: Start, bridge_settings: Settle, shown: bool
) -> None:
    bridge = start_server(create_app(bridge_settings(sim.url, reasoning_content=shown)))
    with openai.OpenAI(base_url=f"{bridge.url}/v1", api_key="x", max_retries=0) as sdk:
        answer = sdk.chat.completions.create(
            model="glm-5.3", messages=[{"role": "user", "content": "hi"}]
        )
        message = answer.choices[0].message
        assert bool((message.model_extra or {}).get("reasoning_content")) is shown
        # asked for none: none, whatever the setting
        quiet = sdk.chat.completions.create(
            model="glm-5.3", messages=[{"role": "user", "content": "hi"}],
            reasoning_effort="none",  # type: ignore[arg-type]
        )  # fmt: skip
        assert not (quiet.choices[0].message.model_extra or {}).get("reasoning_content")


def test_a_queued_stream_gets_its_headers_at_once(
    sim: RunningServer, start_server: Start, bridge_settings: Settle
) -> None:
    """Traffic control: a streaming client waiting for a key slot is committed and pinged at
    once, not after commit_after (5 s)."""
    bridge = start_server(create_app(bridge_settings(sim.url, key_slots=(1,), ping_interval=0.2)))
    slow = Script(text="slow answer", delay=0.3, chunk_size=2)
    sim.app.state.script_queue.extend([slow, Script(text="second")])
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    headers = {"anthropic-version": "2023-06-01", "x-api-key": "x"}
    first = threading.Thread(
        target=lambda: httpx2.post(
            f"{bridge.url}/v1/messages", json=body, headers=headers, timeout=30
        ),  # fmt: skip
    )
    first.start()
    time.sleep(0.3)  # the first holds the key's only slot
    started = time.monotonic()
    with httpx2.stream("POST", f"{bridge.url}/v1/messages", json=body, headers=headers,
                       timeout=30) as response:  # fmt: skip
        committed = time.monotonic() - started
        assert response.status_code == 200
        text = response.read().decode()
    first.join()
    assert committed < 2.0, committed
    assert "message_start" in text and "second" in text


def test_bigmodels_web_search_rules(sim: RunningServer) -> None:
    """BigModel: search_std, a required search_intent, 70-character queries
    (https://docs.bigmodel.cn/api-reference, 网络搜索)."""
    sim.app.state.search_host = "bigmodel"
    try:
        url = ZaiSearchEngine.endpoint(f"{sim.url}/api/paas/v4")
        query = "q" * 100

        async def run(host: Any) -> Any:
            async with httpx2.AsyncClient() as http:
                engine = ZaiSearchEngine(http, url=url, host=host, ttl=0)
                return engine.engine, await engine.search(query, SearchOptions(), key="k.s")

        import anyio

        engine, hits = anyio.run(run, BIGMODEL_SEARCH)  # accepted: search_intent was sent
        assert engine == "search_std" and not isinstance(hits, SearchFailure) and hits
        assert hits[0].title == "q" * 70 + " - result 1"  # the query was cut to 70
        _, failed = anyio.run(run, ZAI_SEARCH)  # Z.ai's request on BigModel's host
        assert isinstance(failed, SearchFailure)
    finally:
        sim.app.state.search_host = "zai"


def test_a_custom_url_can_speak_anthropic(
    sim: RunningServer, start_server: Start, bridge_settings: Settle
) -> None:
    """upstream_protocol = anthropic: a relay in front of Z.ai's Anthropic endpoint gets every
    normalisation zai-anthropic has (x-api-key, served-as, thinking adapted). The simulator's
    Anthropic endpoint answers glm-4.7 as itself (no source shows it rerouting)."""
    settings = bridge_settings(
        sim.url, upstream=f"{sim.url}/api/anthropic", upstream_protocol="anthropic"
    )
    assert settings.upstream_profile.protocol == "anthropic"
    bridge = start_server(create_app(settings))
    text, headers = _ask(bridge.url, "glm-4.7", stream=False, thinking=OFF)
    assert text and headers["x-glmbridge-served-model"] == "glm-4.7"
    sent = sim.app.state.requests[-1]  # the plan's table: Flash's spec, thinking-off adapted
    assert sent["model"] == "glm-4.7" and sent.get("thinking", {}).get("type") != "disabled"
    # the answer named glm-4.7 itself: learned, so its own spec applies from now on
    text, headers = _ask(bridge.url, "glm-4.7", stream=True, thinking=OFF)
    assert text and sim.app.state.requests[-1]["thinking"] == OFF


def test_on_the_mock_too(start_server: Start) -> None:
    """``--mock``: the same routing, served models and usage-limit answers."""
    app = create_app(Settings(mock=True))
    bridge = start_server(app)
    _, headers = _ask(bridge.url, "claude-sonnet-4-5", stream=True, tools=[BASH])
    assert headers["x-glmbridge-served-model"] == "glm-5.3"
    for model, served in (("claude-opus-4-8", "glm-5.3-flash"), ("glm-4.7", "glm-5.3-flash"),
                          ("glm-5.1", "glm-5.3")):  # fmt: skip
        for stream in (False, True):
            text, headers = _ask(bridge.url, model, stream=stream, thinking=OFF)
            assert text and headers["x-glmbridge-served-model"] == served
    reset = datetime.now(UTC) + timedelta(hours=2)
    app.state.simulator.state.spent_keys = {MOCK_API_KEY: ("1316", reset)}
    with pytest.raises(anthropic.RateLimitError) as info:
        _ask(bridge.url, "claude-sonnet-4-5", stream=False)
    assert 2 * 3600 - 60 <= int(info.value.response.headers["retry-after"]) <= 2 * 3600 + 1
    assert app.state.simulator.state.rejected_quota == 1  # asked once
