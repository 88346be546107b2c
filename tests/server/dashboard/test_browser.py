"""The dashboard in a real browser: Playwright for Python driving Debian's ``chromium``.

Playwright's own browser download is not used (``executable_path``; ``.ci/run`` installs
the ``chromium`` package when it is missing). Every page is checked for console errors and
for requests to any other origin; screenshots of each view (light, dark, phone) are saved
under ``test-artifacts/dashboard/`` (gitignored) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx2
import pytest

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import load_settings
from glmbridge_server.traffic.usage_report import summarize
from tests.support.servers import MakeSettings, RunningServer, Start


def _chromium_path() -> str | None:
    return (
        os.environ.get("GLMBRIDGE_CHROMIUM")
        or shutil.which("chromium")
        or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    )


# Without Debian's chromium a developer's run leaves these out; CI (.ci/run installs it) never
# does: there a missing browser fails the tests instead of hiding them.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.skipif(
        _chromium_path() is None and not os.environ.get("CI"),
        reason="Debian's chromium is not installed (.ci/run installs it)",
    ),
]

ARTIFACTS = Path(__file__).parents[3] / "test-artifacts" / "dashboard"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SONNET = "claude-sonnet-4-5"
TOKEN = "tok-browser-41d9c0aa77"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    sync_api = pytest.importorskip("playwright.sync_api")
    path = _chromium_path()
    if path is None:  # only in CI (see pytestmark)
        pytest.fail("Debian's chromium is not installed: .ci/run installs it")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Watch:
    """What a page did: console errors, uncaught exceptions, dialogs, requested URLs."""

    origin: str
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def check(self) -> None:
        assert self.errors == [], self.errors
        assert self.dialogs == [], self.dialogs
        foreign = [u for u in self.urls if not u.startswith(self.origin + "/")]
        assert foreign == [], foreign


_open: list[Any] = []


@pytest.fixture(autouse=True)
def _close_pages(start_server: Start) -> Iterator[None]:
    """Close every browser context before the servers stop (their event streams end):
    this fixture depends on ``start_server``, so it is torn down first."""
    yield
    while _open:
        _open.pop().close()


def open_page(browser: Any, server: RunningServer, *, scheme: str = "light",
              viewport: dict[str, int] | None = None) -> tuple[Any, Watch]:  # fmt: skip
    context = browser.new_context(
        color_scheme=scheme, viewport=viewport or {"width": 1280, "height": 900},
        is_mobile=viewport is PHONE, has_touch=viewport is PHONE,
    )  # fmt: skip
    _open.append(context)
    page = context.new_page()
    watch = Watch(server.url)
    page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: watch.errors.append(f"uncaught: {exc}"))

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("request", lambda request: watch.urls.append(request.url))
    return page, watch


def shot(page: Any, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def ask(url: str, text: str, model: str = SONNET, key: str = "x", **headers: str) -> str:
    """One Messages request; its request id."""
    body = {"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": text}]}
    response = httpx2.post(url + "/v1/messages", json=body, timeout=30,
                           headers={"x-api-key": key, **headers})  # fmt: skip
    assert response.status_code == 200, response.text
    return response.headers["request-id"]


@pytest.fixture
def server(start_server: Start, sim: RunningServer, bridge_settings: MakeSettings,
           tmp_path: Path) -> RunningServer:  # fmt: skip
    """A bridge with a usage store and the inspector on."""
    settings = bridge_settings(sim.url, data_dir=str(tmp_path), inspector=True, plan="pro")
    return start_server(create_app(settings))


def test_every_view_loads_clean_light_dark_and_phone(browser: Any, server: RunningServer) -> None:
    ask(server.url, "hello")
    ask(server.url, "hello again", model="glm-4.7")
    server.app.state.usage_store.flush()
    views = {"usage": "[data-kpi=requests]", "inspector": "#exchanges table",
             "settings": "#settings-form", "playground": "#pg-form"}  # fmt: skip
    for scheme in ("light", "dark"):
        page, watch = open_page(browser, server, scheme=scheme)
        for view, ready in views.items():
            page.goto(f"{server.url}/dashboard#{view}")
            page.wait_for_selector(ready, timeout=10_000)
            page.wait_for_timeout(200)
            shot(page, f"{view}-{scheme}")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert (background == "rgb(15, 18, 23)") == (scheme == "dark"), background
        watch.check()
    page, watch = open_page(browser, server, viewport=PHONE)
    for view in ("usage", "settings", "inspector"):
        page.goto(f"{server.url}/dashboard#{view}")
        page.wait_for_selector(views[view], timeout=10_000)
        # usable on a phone: the page itself never scrolls sideways (wide tables scroll inside)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (view, width)
        shot(page, f"{view}-phone")
    watch.check()


def test_usage_view_numbers_match_the_store(browser: Any, server: RunningServer) -> None:
    for text in ("one", "two two", "three three three"):
        ask(server.url, text)
    ask(server.url, "four", model="glm-4.7")
    store = server.app.state.usage_store
    store.flush()
    page, watch = open_page(browser, server)
    page.goto(f"{server.url}/dashboard")
    page.wait_for_selector("[data-kpi=requests]")
    shown = {k: page.inner_text(f"[data-kpi={k}]") for k in ("requests", "input", "output",
                                                             "cached", "errors")}  # fmt: skip
    conn = sqlite3.connect(store.path)
    try:
        rows = summarize(conn, by="model", since=0)
    finally:
        conn.close()
    for key in ("requests", "input", "output", "cached", "errors"):
        assert int(shown[key].replace(",", "")) == sum(r[key] for r in rows), key
    assert shown["requests"] == "4"
    model_rows = page.locator("text=By served model >> xpath=.. >> tbody tr")
    assert model_rows.count() == len(rows)
    first = model_rows.first.inner_text().split("\t")
    assert first[0] == rows[0]["model"] and int(first[1]) == rows[0]["requests"]
    shot(page, "usage-numbers")
    with page.expect_response(lambda r: "range=week" in r.url):
        page.click("button:has-text('7 days')")
    page.wait_for_selector("button[aria-pressed=true]:has-text('7 days')")
    assert page.inner_text("[data-kpi=requests]") == "4"
    watch.check()


def test_a_request_appears_live_in_the_inspector(browser: Any, server: RunningServer) -> None:
    page, watch = open_page(browser, server)
    page.goto(f"{server.url}/dashboard#inspector")
    page.wait_for_selector("#conn.ok", timeout=10_000)  # the event stream is open
    loads = page.evaluate("performance.getEntriesByType('navigation').length")
    rid = ask(server.url, "a live one, please")
    row = page.wait_for_selector(f'tr[data-request-id="{rid}"]', timeout=5_000)
    page.wait_for_selector(f'tr[data-request-id="{rid}"] .pill.ok:has-text("200")')
    assert "claude-sonnet-4-5" in row.inner_text()
    assert page.evaluate("performance.getEntriesByType('navigation').length") == loads
    page.fill("#inspector-filter", "gemini")  # no such exchange: the row is filtered out
    assert page.locator(f'tr[data-request-id="{rid}"]').count() == 0
    page.fill("#inspector-filter", "sonnet 200")
    row = page.wait_for_selector(f'tr[data-request-id="{rid}"]')
    row.click()
    page.wait_for_selector("[data-pane=client_response] pre.body")
    assert "a live one, please" in page.inner_text("[data-pane=client_request] pre.body")
    assert page.locator("[data-pane]").count() == 4
    shot(page, "inspector-live")
    watch.check()


HOSTILE_MODEL = '<img src=x onerror="alert(1)">claude-sonnet'
HOSTILE_PROMPT = "</pre><script>alert(2)</script><b onmouseover=alert(3)>bold</b>"


def test_hostile_strings_render_as_text(browser: Any, server: RunningServer) -> None:
    rid = ask(server.url, HOSTILE_PROMPT, model=HOSTILE_MODEL)
    alias = "<svg onload=alert(4)>"
    update = httpx2.post(server.url + "/config", json={"models": {alias: "glm-4.7"}})
    assert update.status_code == 200, update.text
    page, watch = open_page(browser, server)
    page.goto(f"{server.url}/dashboard#inspector")
    row = page.wait_for_selector(f'tr[data-request-id="{rid}"]')
    assert HOSTILE_MODEL in row.inner_text()
    row.click()
    pane = page.wait_for_selector("[data-pane=client_request] pre.body")
    assert "<script>alert(2)</script>" in pane.inner_text()
    page.goto(f"{server.url}/dashboard#settings")
    page.wait_for_selector("#settings-form")
    assert alias in page.input_value("#set-models")
    page.goto(f"{server.url}/dashboard#usage")
    page.wait_for_selector("[data-kpi=requests]")
    page.wait_for_timeout(300)
    injected = page.evaluate(
        "document.querySelectorAll('img[src=x], script:not([src]), b[onmouseover], svg[onload]')"
        ".length"
    )
    assert injected == 0
    shot(page, "hostile")
    watch.check()  # no alert() dialog, no console error


def test_login_flow_and_cookie_flags(
    browser: Any, start_server: Start, sim: RunningServer, bridge_settings: MakeSettings,
    tmp_path: Path,
) -> None:  # fmt: skip
    settings = bridge_settings(sim.url, auth_token=TOKEN, data_dir=str(tmp_path))
    server = start_server(create_app(settings))
    page, watch = open_page(browser, server, viewport=PHONE)
    page.goto(f"{server.url}/dashboard")
    page.wait_for_selector("input[type=password][name=token]")
    shot(page, "login-phone")
    page.fill("input[name=token]", "not-the-token")
    page.click("button[type=submit]")
    page.wait_for_selector("text=That is not the server's auth token.")
    assert page.context.cookies() == []
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-kpi=requests]", timeout=10_000)
    assert TOKEN not in page.url
    cookies = page.context.cookies()
    assert len(cookies) == 1
    cookie = cookies[0]
    assert cookie["name"] == "glmbridge_session" and cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # scripts cannot read the session
    storage = page.evaluate("JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert TOKEN not in storage
    assert TOKEN not in page.content()
    shot(page, "after-login-phone")
    # the logged-in phone changes a setting
    page.goto(f"{server.url}/dashboard#settings")
    page.wait_for_selector("#settings-form")
    page.fill("#set-max_retries", "4")
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector("text=Saved: max_retries.")
    assert server.app.state.settings.max_retries == 4
    page.click("#logout button")
    page.wait_for_selector("input[type=password][name=token]")
    assert page.context.cookies() == []
    watch.errors = [e for e in watch.errors if "401" not in e]  # the wrong token's answer
    watch.check()


def test_settings_round_trip_without_losing_fields(
    browser: Any, start_server: Start, sim: RunningServer, tmp_path: Path
) -> None:
    config = tmp_path / "glmbridge.toml"
    config.write_text(
        'max_retries = 1\nkey_slots = [2]\nthinking = "enabled"\n'
        '[models]\nopus = "glm-4.7"\nhaiku = "glm-4.5-air"\n'
        '[fallbacks]\n"glm-4.7" = ["glm-4.5-air"]\n'
    )
    settings = load_settings(
        {"config": str(config)},
        environ={"GLMBRIDGE_UPSTREAM": f"{sim.url}/api/coding/paas/v4",
                 "ZAI_API_KEY": "sim-key-settings-1.secret", "GLMBRIDGE_USAGE_STORE": "0"},
        cwd=tmp_path,
    )  # fmt: skip
    server = start_server(create_app(settings))
    before = httpx2.get(server.url + "/config").json()
    page, watch = open_page(browser, server)
    page.goto(f"{server.url}/dashboard#settings")
    page.wait_for_selector("#settings-form")
    assert page.input_value("#set-max_retries") == "1"
    assert page.input_value("#set-key_slots") == "2"
    shot(page, "settings-before")
    page.fill("#set-max_retries", "3")
    page.select_option("#set-count_tokens", "local")
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector("text=Saved: max_retries, count_tokens.")
    after = httpx2.get(server.url + "/config").json()
    assert after["max_retries"] == 3 and after["count_tokens"] == "local"
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"max_retries", "count_tokens"}, changed  # nothing else rewritten
    assert after["models"] == {"opus": "glm-4.7", "haiku": "glm-4.5-air"}
    assert after["fallbacks"] == {"glm-4.7": ["glm-4.5-air"]}
    page.wait_for_selector("tr[data-setting=max_retries] .pill.warn")  # source: runtime
    # a bad value is refused by POST /config's validation and shown, nothing changes
    page.fill("#set-max_retries", "99")  # past the field's max: the browser itself refuses
    page.click("#settings-form button[type=submit]")
    assert page.evaluate("document.querySelector('#set-max_retries').validity.rangeOverflow")
    page.fill("#set-max_retries", "3")
    page.fill("#set-key_slots", "0")  # the browser sends it; the server's validation refuses
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector("text=Not saved: key_slots")
    assert httpx2.get(server.url + "/config").json()["key_slots"] == [2]
    shot(page, "settings-after")
    watch.errors = [e for e in watch.errors if "400" not in e]  # the refused save
    watch.check()


def test_playground_streams_an_answer(browser: Any, server: RunningServer) -> None:
    page, watch = open_page(browser, server)
    page.goto(f"{server.url}/dashboard#playground")
    page.wait_for_selector("#pg-form")
    for door in ("anthropic", "chat", "responses", "gemini"):
        page.select_option("#pg-door", door)
        page.fill("#pg-model", SONNET if door == "anthropic" else "glm-4.7")
        page.fill("#pg-prompt", f"hello through {door}")
        page.click("#pg-send")
        page.wait_for_selector("#pg-status:has-text('HTTP')")
        assert "HTTP 200" in page.inner_text("#pg-status"), door
        assert page.inner_text("#pg-answer").strip(), door
        # beside the answer: the GLM-side request and answer of this very exchange
        page.wait_for_selector("#pg-upstream-request:has-text('glm-')")
        assert f"hello through {door}" in page.inner_text("#pg-upstream-request"), door
        assert page.inner_text("#pg-upstream-stream").strip(), door
        shot(page, f"playground-{door}")
    watch.check()


def test_quota_view_shows_windows_and_exhausted_keys_with_reset_clocks(
    browser: Any, start_server: Start, sim: RunningServer, bridge_settings: MakeSettings,
    tmp_path: Path,
) -> None:  # fmt: skip
    keys = ("spent-key-dash.secret", "fresh-key-dash.secret")
    spent_reset = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2, minutes=30)
    window_reset = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    sim.app.state.spent_keys = {keys[0]: ("1308", spent_reset)}
    sim.app.state.quota_limits = {keys[1]: [
        {"type": "TOKENS_LIMIT", "unit": 3, "number": 5, "percentage": 42,
         "nextResetTime": int(window_reset.timestamp() * 1000)},
    ]}  # fmt: skip
    settings = bridge_settings(sim.url, api_keys=keys, quota_poll=0.1, data_dir=str(tmp_path))
    server = start_server(create_app(settings))
    for _ in range(3):  # one of them meets the spent key, which then rests until its reset
        ask(server.url, "hello")
    page, watch = open_page(browser, server)
    page.goto(f"{server.url}/dashboard")
    spent = page.wait_for_selector(f'[data-reset="{spent_reset.isoformat()}"]', timeout=10_000)
    beijing = spent_reset.astimezone(timezone(timedelta(hours=8)))
    text = spent.inner_text()
    assert "Beijing" in text and "your time" in text and "in 2 h" in text, text
    assert f"{beijing.hour % 12 or 12}:{beijing.minute:02d}" in text, text
    assert "5-hour quota spent (1308)" in page.inner_text("#live")
    polled = page.wait_for_selector('[data-key-window="1:5-hour"]', timeout=10_000)
    assert "42 %" in polled.inner_text() and "in 1 h" in polled.inner_text()
    assert polled.query_selector(f'[data-reset="{window_reset.isoformat()}"]') is not None
    shot(page, "quota")
    watch.check()
