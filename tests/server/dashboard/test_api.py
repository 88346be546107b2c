"""The dashboard over HTTP: login and session cookie, CSP and headers, Host/Origin checks,
the JSON endpoints against the usage store and the settings, the inspector's bounds.

The browser tests (tests/server/test_dashboard_browser.py) drive the same server in Chromium.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from glmbridge_server.dashboard.inspector import Inspector, Summary, redact_headers
from glmbridge_server.dashboard.views import usage_view
from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import load_settings
from glmbridge_server.simulator.scripts import Script, ScriptError
from glmbridge_server.traffic.usage_report import summarize
from glmbridge_server.traffic.usage_store import UsageRow, UsageStore, open_readonly
from tests.support.servers import MakeSettings, RunningServer, Start

pytestmark = pytest.mark.e2e

TOKEN = "tok-dash-8c1f27e94b"
SONNET = "claude-sonnet-4-5"


@pytest.fixture
def guarded(start_server: Start, sim: RunningServer, bridge_settings: MakeSettings,
            tmp_path: Path) -> RunningServer:  # fmt: skip
    """A bridge with an auth token and a usage store, in front of the simulator."""
    settings = bridge_settings(sim.url, auth_token=TOKEN, data_dir=str(tmp_path))
    return start_server(create_app(settings))


def login(server: RunningServer, token: str = TOKEN, **headers: str) -> httpx2.Response:
    return httpx2.post(
        server.url + "/dashboard/login",
        data={"token": token},
        headers=headers,
        follow_redirects=False,
    )


def session_cookie(response: httpx2.Response) -> str:
    header = response.headers["set-cookie"]
    return header.split(";", 1)[0].split("=", 1)[1]


def test_page_needs_login_and_api_refuses_without_session(guarded: RunningServer) -> None:
    page = httpx2.get(guarded.url + "/dashboard")
    assert page.status_code == 200
    assert 'name="token"' in page.text and 'type="password"' in page.text
    assert "main.js" not in page.text  # the app is not served before the login
    for path in ("/dashboard/api/overview", "/dashboard/api/usage", "/dashboard/api/events"):
        assert httpx2.get(guarded.url + path).status_code == 401, path
    auth = {"x-api-key": TOKEN}
    for path in ("/dashboard/login", "/dashboard/"):
        again = httpx2.get(guarded.url + path, headers=auth, follow_redirects=False)
        assert again.status_code == 303 and again.headers["location"] == "/dashboard"
    assert httpx2.get(guarded.url + "/dashboard/nope", headers=auth).status_code == 404
    assert (
        httpx2.delete(guarded.url + "/dashboard", headers={"x-api-key": TOKEN}).status_code == 405
    )
    assert httpx2.head(guarded.url + "/dashboard").status_code == 200
    # the token itself still works, as on every other endpoint
    ok = httpx2.get(guarded.url + "/dashboard/api/overview", headers={"x-api-key": TOKEN})
    assert ok.status_code == 200 and ok.json()["auth"] is True


def test_login_sets_an_httponly_strict_cookie_that_opens_the_api(guarded: RunningServer) -> None:
    response = login(guarded)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    flags = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert TOKEN not in response.headers["set-cookie"]  # a random session id, not the token
    cookie = {"cookie": f"glmbridge_session={session_cookie(response)}"}
    assert httpx2.get(guarded.url + "/dashboard/api/overview", headers=cookie).status_code == 200
    page = httpx2.get(guarded.url + "/dashboard", headers=cookie)
    assert "main.js" in page.text and TOKEN not in page.text
    # the playground's door calls are authenticated by the same cookie
    body = {"model": SONNET, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    answer = httpx2.post(guarded.url + "/v1/messages", json=body, headers=cookie, timeout=30)
    assert answer.status_code == 200, answer.text
    # logout ends the session on the server, not only in the browser
    out = httpx2.post(guarded.url + "/dashboard/logout", headers=cookie)
    assert out.status_code == 303
    assert httpx2.get(guarded.url + "/dashboard/api/overview", headers=cookie).status_code == 401


def test_wrong_tokens_are_refused_then_throttled(guarded: RunningServer) -> None:
    assert login(guarded, "wrong").status_code == 401
    assert "set-cookie" not in login(guarded, "wrong").headers
    forged = {"cookie": "glmbridge_session=forged-session-id"}
    assert httpx2.get(guarded.url + "/dashboard/api/overview", headers=forged).status_code == 401
    codes = [login(guarded, f"guess-{i}").status_code for i in range(12)]
    assert codes[-1] == 429  # a guessing script gets a handful of tries a minute
    assert login(guarded).status_code == 429  # even the right token waits out the throttle


def test_odd_login_posts_are_refused_cleanly(guarded: RunningServer) -> None:
    url = guarded.url + "/dashboard/login"
    form = {"content-type": "application/x-www-form-urlencoded"}
    too_big = httpx2.post(url, content=b"token=" + b"x" * 10_000, headers=form)
    assert too_big.status_code == 413
    garbled = httpx2.post(
        url, content=b"\x1f\x8b junk", headers={**form, "content-encoding": "gzip"}
    )
    assert garbled.status_code == 400
    assert httpx2.post(url, content=b"\xff\xfe=\x00", headers=form).status_code == 401
    assert httpx2.post(url, json={"token": TOKEN}).status_code == 401  # a form, not JSON
    twice = b"token=" + TOKEN.encode() + b"&token=x"
    assert httpx2.post(url, content=twice, headers=form).status_code == 401


def test_cross_origin_calls_are_refused_same_origin_allowed(guarded: RunningServer) -> None:
    cookie = {"cookie": f"glmbridge_session={session_cookie(login(guarded))}"}
    port = guarded.url.rsplit(":", 1)[1]
    foreign = httpx2.post(guarded.url + "/config", json={"max_retries": 1},
                          headers={**cookie, "origin": "http://evil.example"})  # fmt: skip
    assert foreign.status_code == 403
    # another port on the same host is another origin (SameSite alone would not stop it)
    sibling = httpx2.post(guarded.url + "/config", json={"max_retries": 1},
                          headers={**cookie, "origin": "http://127.0.0.1:1"})  # fmt: skip
    assert sibling.status_code == 403
    own = httpx2.post(guarded.url + "/config", json={"max_retries": 1},
                      headers={**cookie, "origin": f"http://127.0.0.1:{port}"})  # fmt: skip
    assert own.status_code == 200, own.text
    assert login(guarded, origin="http://evil.example").status_code == 403
    rebound = httpx2.get(guarded.url + "/dashboard", headers={"host": "evil.example"})
    assert rebound.status_code == 403


def test_every_answer_carries_a_strict_csp(guarded: RunningServer) -> None:
    for path in ("/dashboard", "/dashboard/static/js/main.js", "/dashboard/static/app.css"):
        response = httpx2.get(guarded.url + path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    js = httpx2.get(guarded.url + "/dashboard/static/js/main.js")
    assert js.headers["content-type"].startswith("text/javascript")
    again = httpx2.get(guarded.url + "/dashboard/static/js/main.js",
                       headers={"if-none-match": js.headers["etag"]})  # fmt: skip
    assert again.status_code == 304
    for path in ("/dashboard/static/../__init__.py", "/dashboard/static/index.html",
                 "/dashboard/static/nope.js", "/dashboard/static/%2e%2e/routes.py"):  # fmt: skip
        assert httpx2.get(guarded.url + path).status_code in (401, 404), path


def test_no_inline_script_or_style_in_the_pages() -> None:
    static = Path(__file__).parents[3] / "glmbridge_server" / "dashboard" / "static"
    for page in ("head.html", "index.html", "login.html"):
        text = (static / page).read_text()
        assert "<style" not in text and " style=" not in text
        assert not re.search(r"\son[a-z]+\s*=", text)  # no inline event handlers
        for line in text.splitlines():
            if "<script" in line:
                assert 'src="/dashboard/static/' in line and "></script>" in line
    scripts = list((static / "js").glob("*.js"))
    assert len(scripts) >= 6
    for script in scripts:
        # nothing loaded from another origin (the SVG namespace is a name, not a fetch)
        code = script.read_text().replace('"http://www.w3.org/2000/svg"', "")
        code = re.sub(r"(?m)^\s*//.*$", "", code)  # comments may name what is avoided
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function",
                       "document.write", "sessionStorage", "document.cookie", "http://",
                       "https://"):  # fmt: skip
            assert banned not in code, (script.name, banned)
        stored = re.findall(r"localStorage\.setItem\(([^,]+),", code)
        assert all(key == '"glmbridge-theme"' for key in stored), script.name


def test_usage_api_matches_the_store(guarded: RunningServer, sim: RunningServer) -> None:
    sdk = anthropic.Anthropic(base_url=guarded.url, api_key=TOKEN, max_retries=0)
    for text in ("one", "two"):
        sdk.messages.create(
            model=SONNET, max_tokens=32, messages=[{"role": "user", "content": text}]
        )
    claude_code = {"user-agent": "claude-cli/2.0.14 (external, cli)", "x-api-key": TOKEN}
    body = {"model": SONNET, "max_tokens": 32, "messages": [{"role": "user", "content": "3"}]}
    ok = httpx2.post(guarded.url + "/v1/messages", json=body, headers=claude_code, timeout=30)
    assert ok.status_code == 200
    sim.app.state.script_queue.extend([Script(error=ScriptError(status=503, code="503"))])
    failed = httpx2.post(guarded.url + "/v1/messages", json=body, headers=claude_code, timeout=30)
    assert failed.status_code >= 500
    usage_store = guarded.app.state.usage_store
    usage_store.flush()
    data = httpx2.get(guarded.url + "/dashboard/api/usage?range=day",
                      headers={"x-api-key": TOKEN}).json()  # fmt: skip
    conn = sqlite3.connect(usage_store.path)
    try:
        rows = summarize(conn, by="model", since=data["since"])
        statuses = conn.execute("SELECT count(*) FROM usage").fetchone()[0]
    finally:
        conn.close()
    assert statuses == 4 and data["totals"]["requests"] == 4
    for field in ("requests", "errors", "input", "cached", "output", "credits"):
        assert data["totals"][field] == sum(r[field] for r in rows), field
    assert [r["model"] for r in data["by_model"]] == [r["model"] for r in rows]
    assert sum(b["requests"] for b in data["timeline"]) == 4
    assert data["latency"]["all"]["count"] == 3  # answered requests only
    assert data["windows"]["today"]["requests"] == 4  # what /status shows
    clients = {r["client"]: r["requests"] for r in data["by_client"]}
    assert clients == {"SDK": 2, "Claude Code": 2}
    (error,) = data["errors"]
    assert error["status"] == failed.status_code and error["count"] == 1
    assert error["kind"] == "overloaded" and failed.json()["error"]["type"] == "overloaded_error"
    bad = httpx2.get(guarded.url + "/dashboard/api/usage?range=<x>", headers={"x-api-key": TOKEN})
    assert bad.status_code == 400


def test_settings_show_sources_and_runtime_changes(
    start_server: Start, sim: RunningServer, tmp_path: Path
) -> None:
    config = tmp_path / "glmbridge.toml"
    config.write_text('max_retries = 1\n[models]\nopus = "glm-4.7"\n')
    settings = load_settings(
        {"config": str(config), "port": 4999},
        environ={
            "GLMBRIDGE_UPSTREAM": f"{sim.url}/api/coding/paas/v4",
            "ZAI_API_KEY": "sim-key-secret-9f9f",
            "GLMBRIDGE_USAGE_STORE": "false",
        },
        cwd=tmp_path,
    )
    server = start_server(create_app(settings))
    auth = {"x-api-key": "x"}

    def table() -> dict[str, dict[str, Any]]:
        rows = httpx2.get(server.url + "/dashboard/api/settings", headers=auth).json()
        return {r["name"]: r for r in rows["settings"]}

    rows = table()
    assert rows["max_retries"]["source"] == "file" and rows["max_retries"]["restart"] is False
    assert rows["upstream"]["source"] == "environment" and rows["upstream"]["restart"] is True
    assert rows["port"]["source"] == "command line" and rows["port"]["restart"] is True
    assert rows["thinking"]["source"] == "default"
    assert rows["inspector"]["editor"] == {"type": "bool"}
    assert rows["plan"]["editor"]["type"] == "choice" and "pro" in rows["plan"]["editor"]["choices"]
    assert "sim-key-secret-9f9f" not in str(rows)
    assert "sources" not in rows
    assert httpx2.post(server.url + "/config", json={"inspector": True}, headers=auth).is_success
    rows = table()
    assert rows["inspector"]["source"] == "runtime" and rows["inspector"]["value"] is True
    assert rows["models"]["value"] == {"opus": "glm-4.7"} and rows["models"]["source"] == "file"


def test_inspector_records_only_when_on_and_honours_the_opt_out(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    key = "sim-key-inspect-7777.secret"
    server = start_server(create_app(bridge_settings(sim.url, api_keys=(key,))))
    body = {"model": SONNET, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}

    def ask(**headers: str) -> str:
        response = httpx2.post(server.url + "/v1/messages", json=body, headers=headers, timeout=30)
        assert response.status_code == 200
        return response.headers["request-id"]

    def held() -> list[str]:
        data = httpx2.get(server.url + "/dashboard/api/inspector").json()
        return [s["request_id"] for s in data["exchanges"]]

    off = ask()
    forced = ask(**{"x-glmbridge-inspect": "on"})
    assert held() == [forced]
    assert httpx2.post(server.url + "/config", json={"inspector": True}).is_success
    on = ask(**{"x-api-key": key})
    skipped = ask(**{"x-glmbridge-inspect": "off"})
    assert held() == [on, forced] and off not in held() and skipped not in held()
    detail = httpx2.get(server.url + f"/dashboard/api/inspector/{on}").json()
    assert detail["summary"]["served_model"] and detail["summary"]["done"] is True
    assert detail["summary"]["status"] == 200
    panes = detail["panes"]
    assert '"max_tokens":16' in panes["client_request"]["text"].replace(" ", "")
    assert panes["client_request"]["headers"]["x-api-key"] == "***"
    assert key not in str(detail)
    assert '"type":"message"' in panes["client_response"]["text"].replace(" ", "")
    # the upstream side: our translation (GLM chat) and GLM's own answer, key hidden
    upstream = panes["upstream_request"]
    assert '"model":"glm-' in upstream["text"].replace(" ", "")
    assert upstream["headers"]["authorization"] == "***"
    assert upstream["headers"][":request"].startswith("POST http://127.0.0.1:")
    assert (
        '"choices":' in panes["upstream_stream"]["text"]
        and '"prompt_tokens"' in panes["upstream_stream"]["text"]
    )
    assert panes["upstream_stream"]["headers"][":status"] == "200"
    streamed = httpx2.post(server.url + "/v1/messages", json={**body, "stream": True},
                           headers={"x-api-key": key}, timeout=30)  # fmt: skip
    rid = streamed.headers["request-id"]
    panes = httpx2.get(server.url + f"/dashboard/api/inspector/{rid}").json()["panes"]
    glm = panes["upstream_stream"]["text"]
    assert "data: " in glm and "[DONE]" in glm
    assert "event: message_stop" in panes["client_response"]["text"]
    missing = httpx2.get(server.url + "/dashboard/api/inspector/req_nope")
    assert missing.status_code == 404


def test_inspector_memory_is_bounded() -> None:
    inspector = Inspector(max_entries=3, max_bytes=1000, pane_bytes=400, secrets=("sk-secret",))
    entries = []
    for i in range(5):
        entry = inspector.begin(Summary(request_id=f"r{i}", started=float(i)))
        inspector.append(entry, "client_request", b"x" * 300 + b"sk-secret")
        inspector.append(entry, "client_response", b"y" * 300)
        inspector.finish(entry, Summary(request_id=f"r{i}", started=float(i)))
        entries.append(entry)
    stats = inspector.stats()
    assert stats["entries"] <= 3 and stats["bytes"] <= 1000
    newest = inspector.detail("r4")
    assert newest is not None
    pane = newest["panes"]["client_request"]
    assert pane["size"] == 309 and "sk-secret" not in pane["text"] and "***" in pane["text"]
    big = inspector.begin(Summary(request_id="big", started=9.0))
    inspector.append(big, "upstream_stream", b"z" * 5000)
    detail = inspector.detail("big")
    assert detail is not None
    assert detail["panes"]["upstream_stream"]["truncated"] is True
    assert len(detail["panes"]["upstream_stream"]["text"]) == 400
    assert inspector.stats()["bytes"] <= 1000
    assert redact_headers([("Authorization", "Bearer x"), ("X-Other", "1")]) == {
        "authorization": "***", "x-other": "1"}  # fmt: skip


def test_a_wheel_ships_every_static_file(tmp_path: Path) -> None:
    """A non-editable install (``pip install .``) serves the same files as the source tree."""
    root = Path(__file__).parents[3]
    source = tmp_path / "src"  # a clean copy: no stale build/ from an earlier run
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(root / name, source / name)
    for package in ("glmbridge", "glmbridge_server"):
        shutil.copytree(root / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("glmbridge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    static = root / "glmbridge_server" / "dashboard" / "static"
    expected = {f"{p.relative_to(root)}" for p in static.rglob("*") if p.is_file()}
    assert expected and expected <= names, sorted(expected - names)


def test_an_older_usage_store_gains_the_error_kind_column(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    now = time.time()
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE usage (ts REAL NOT NULL, client TEXT, route TEXT, key_id TEXT, "
        "model TEXT, client_model TEXT, upstream TEXT, input_tokens INTEGER, "
        "cached_tokens INTEGER, output_tokens INTEGER, latency_ms REAL, ttft_ms REAL, "
        "status INTEGER, fallback TEXT, priority TEXT, queue_wait_ms REAL, peak INTEGER);"
        f"INSERT INTO usage VALUES ({now - 60}, 'anthropic', '/v1/messages', NULL, 'glm-4.7',"
        " NULL, NULL, 1, 0, 1, 1.0, NULL, 200, NULL, NULL, NULL, 0);"
    )
    old.commit()
    old.close()
    store = UsageStore(path)
    store.record(UsageRow(ts=now - 30, client="Codex", route="/v1/responses", key_id=None,
                          model="glm-4.7", client_model="gpt-5", upstream=None, input_tokens=1,
                          cached_tokens=0, output_tokens=0, latency_ms=1.0, ttft_ms=None,
                          status=429, fallback=None, priority=None, queue_wait_ms=None,
                          peak=False, served_model="glm-5.3",
                          error_kind="rate_limit_error"))  # fmt: skip
    store.flush()
    store.close()
    conn = open_readonly(path)
    try:
        rows = conn.execute(
            "SELECT client, status, served_model, error_kind FROM usage ORDER BY ts"
        ).fetchall()
        view = usage_view(conn, range_name="day", plan="pro")
    finally:
        conn.close()
    assert rows == [("anthropic", 200, None, None), ("Codex", 429, "glm-5.3", "rate_limit_error")]
    assert view["errors"] == [{"status": 429, "kind": "rate_limit_error", "count": 1}]
