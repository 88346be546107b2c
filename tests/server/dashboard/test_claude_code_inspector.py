"""The real Claude Code through glmbridge with the inspector on: each of its requests appears
with the client named, its GLM translation and GLM's answer; its usage is counted under
"Claude Code". (The CLI is the ``claude_bin`` fixture's, tests/support/clis.py.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from tests.support.clis import NEEDS_NPM, run_claude
from tests.support.servers import RunningServer

pytestmark = [pytest.mark.e2e, pytest.mark.claude_cli, NEEDS_NPM]


def test_claude_code_requests_appear_with_their_translation(
    claude_bin: Path,
    start_server: Callable[[Starlette], RunningServer],
    sim: RunningServer,
    bridge_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    settings = bridge_settings(sim.url, inspector=True, data_dir=str(tmp_path / "data"))
    server = start_server(create_app(settings))
    code, result = run_claude(claude_bin, server.url, tmp_path, "Say hello in one word.")
    assert code == 0, result
    held = httpx2.get(server.url + "/dashboard/api/inspector").json()["exchanges"]
    mine = [s for s in held if s["client"] == "Claude Code" and s["path"] == "/v1/messages"]
    assert mine, [(s["client"], s["path"]) for s in held]
    for summary in mine:
        assert summary["done"] and summary["status"] == 200
        assert summary["served_model"].startswith("glm-")
    detail = httpx2.get(server.url + f"/dashboard/api/inspector/{mine[0]['request_id']}").json()
    panes = detail["panes"]
    assert panes["client_request"]["size"] and panes["client_response"]["size"]
    assert '"model":"glm-' in panes["upstream_request"]["text"].replace(" ", "")
    assert panes["upstream_stream"]["size"] > 0
    server.app.state.usage_store.flush()
    usage = httpx2.get(server.url + "/dashboard/api/usage?range=day").json()
    assert {r["client"] for r in usage["by_client"]} == {"Claude Code"}
