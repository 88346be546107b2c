"""Every setting with hostile values, through both ways in: ``POST /config`` (a 4xx naming
the field and nothing applied, or a change ``GET /config`` still shows: never a 500) and a
config file at start (one line and exit 2, or a start: never a traceback). Values that are
each valid but do not work together (a ``[models]`` target the upstream does not serve)
are refused the same way (issue 23, item 2)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from glmbridge_server import cli, workers
from glmbridge_server.edge.app import create_app
from glmbridge_server.edge.routes.config import RUNTIME_FIELDS
from glmbridge_server.settings import Settings
from tests.support.servers import RunningServer

pytestmark = pytest.mark.e2e

TOKEN = "tok-hostile-config-7f3a"
AUTH = {"x-api-key": TOKEN}

#: JSON values no setting should take whole (each field gets all of them).
HOSTILE_JSON: list[Any] = [
    None, -1, 0, 1e308, -1e308, 2**70, "", "\u0000", "x" * 5000, True, [], [-1], [0, "a"], {},
    {"a": {"b": [1]}}, "glm-4.6v", {"opus": "glm-4.6v"}, {"default": "glm-4.6v"},
    {"vision": "glm-4.6v"}, {"opus": "no-such-model"}, {"opus": 7}, {"": "glm-4.7"},
    "zai-unknown", "http://127.0.0.1:1/v4",
]  # fmt: skip
#: TOML right-hand sides (TOML also has nan, inf and dates).
HOSTILE_TOML = [
    "nan", "inf", "-inf", "-1", "0", "9223372036854775807", '""', '"\\u0000"',
    '"' + "a" * 5000 + '"', "[[1], [\"a\"]]", "{a = {b = 1}}", "true", "1979-05-27T07:32:00Z",
    '"-1"', '{opus = "glm-4.6v"}', '{default = "glm-4.6v"}', '{vision = "glm-4.6v"}',
    '"opus=glm-4.6v"', '["../../etc"]', '"http://127.0.0.1:1/x"',
]  # fmt: skip


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """cli.main points the root logger at this test's captured stderr: put it back, or
    later tests' server threads log to a closed stream."""
    logger, root = logging.getLogger("glmbridge"), logging.getLogger()
    level, root_level, handlers = logger.level, root.level, root.handlers[:]
    yield
    logger.setLevel(level)
    root.setLevel(root_level)
    root.handlers[:] = handlers


@pytest.fixture(scope="module")
def server(sim: RunningServer) -> Iterator[RunningServer]:
    from tests.server.conftest import make_bridge_settings, run_in_thread

    running = run_in_thread(create_app(make_bridge_settings(sim.url, auth_token=TOKEN)))
    with httpx2.Client(headers=AUTH, timeout=10) as http:
        running.http = http  # one connection for the module's many calls
        yield running
    running.stop()


def _config(server: RunningServer) -> dict[str, Any]:
    reply = server.http.get(f"{server.url}/config")
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.mark.parametrize("field", RUNTIME_FIELDS)
def test_post_config_hostile_values(server: RunningServer, field: str) -> None:
    original = _config(server)
    for value in HOSTILE_JSON:
        before = _config(server)
        reply = server.http.post(f"{server.url}/config", json={field: value})
        shown = json.dumps(value)[:40]
        assert reply.status_code < 500, f"{field}={shown}: {reply.text}"
        after = _config(server)  # GET /config works, whatever happened
        if reply.status_code >= 400:
            assert field in reply.text, f"{field}={shown}: {reply.text}"
            assert after == before, f"{field}={shown} was refused but applied"
    now = _config(server)
    restore = {n: original[n] for n in RUNTIME_FIELDS if n != "models" and now[n] != original[n]}
    if now["models"] != original["models"]:
        restore["models"] = {k: None for k in now["models"]} | original["models"]
    if restore:  # the next field starts from the same configuration
        reply = server.http.post(f"{server.url}/config", json=restore)
        assert reply.status_code == 200, reply.text


def test_a_model_the_plan_does_not_serve_is_refused_whole(server: RunningServer) -> None:
    before = _config(server)
    body = {"thinking": "enabled", "models": {"opus": "glm-4.6v"}}
    reply = server.http.post(f"{server.url}/config", json=body)
    assert reply.status_code == 400
    assert "models.opus" in reply.json()["error"]["message"]
    assert "glm-4.6v" in reply.json()["error"]["message"]
    assert _config(server) == before  # not even thinking changed


class _NoServe:
    """uvicorn's server, replaced: start-up is checked up to the point of serving."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def run(self, sockets: list[Any]) -> None:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize("field", Settings.__struct_fields__)
def test_config_file_hostile_values(
    field: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GLMBRIDGE_CONFIG", raising=False)
    monkeypatch.setattr(workers, "_server_class", lambda: _NoServe)
    if field == "port":
        return  # the test's own --port 0 wins; port values are in test_settings
    for value in HOSTILE_TOML:
        path = tmp_path / "glmbridge.toml"
        path.write_text(f"{field} = {value}\n", encoding="utf-8")
        try:
            status = cli.main(["--config", str(path), "--port", "0", "--mock"])
        except BaseException as exc:  # any escape is the failure
            pytest.fail(f"{field} = {value[:40]}: {type(exc).__name__}: {exc}")
        err = capsys.readouterr().err
        assert "Traceback" not in err, f"{field} = {value[:40]}"
        assert status in (0, 2), f"{field} = {value[:40]}: exit {status}"
        if status == 2:
            lines = [line for line in io.StringIO(err) if line.strip()]
            assert len(lines) == 1, f"{field} = {value[:40]}: {err}"
            assert field in lines[0] or "listen on" in lines[0], lines[0][:200]


def test_an_unserved_model_in_a_config_file_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(workers, "_server_class", lambda: _NoServe)
    path = tmp_path / "glmbridge.toml"
    path.write_text('[models]\nopus = "glm-4.6v"\n', encoding="utf-8")
    assert cli.main(["--config", str(path), "--port", "0", "--mock"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("glmbridge-server: configuration error: models.opus: ")
    assert "glm-4.6v" in line and "zai-coding" in line
