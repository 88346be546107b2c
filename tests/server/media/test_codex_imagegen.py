"""The real Codex CLI generating an image through glmbridge (issue 21).

Codex 0.171 never sends its hosted ``image_generation`` tool to a custom provider
(tests/fixtures/codex/README.md, "Image generation"): with API-key auth it offers no image
tool at all; with ChatGPT-mode auth it offers a client-run ``image_gen.imagegen`` function
and, when the model calls it, POSTs ``/v1/images/generations`` (``gpt-image-2``, size and
quality ``auto``) to the provider and reads ``data[0].b64_json``. This test runs that path:
an unsigned, never-valid ChatGPT-shaped ``auth.json`` (Codex only decodes it) and
``requires_openai_auth = true`` on the provider; the simulator's GLM calls the tool.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from glmbridge_server.edge.app import create_app
from tests.support.clis import client_env
from tests.support.servers import MakeSettings, RunningServer, Start
from tests.support.simulator import chats

pytestmark = [pytest.mark.e2e, pytest.mark.codex_cli]


def _jwt(payload: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}.c2ln"


def chatgpt_auth(home: Path) -> None:
    """A ChatGPT-mode ``auth.json`` whose tokens are test values (no signature)."""
    token = _jwt({"exp": 4102444800, "email": "test@example.com",
                  "https://api.openai.com/auth": {"chatgpt_plan_type": "pro",
                                                  "chatgpt_account_id": "acc-test"}})  # fmt: skip
    auth = {"auth_mode": "chatgpt", "OPENAI_API_KEY": None, "last_refresh": "2026-12-07T00:00:00Z",
            "tokens": {"id_token": token, "access_token": token, "refresh_token": "rt-test",
                       "account_id": "acc-test"}}  # fmt: skip
    (home / "auth.json").write_text(json.dumps(auth))


def run_imagegen(binary: Path, url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``codex exec`` in ChatGPT mode against the bridge at ``url``; GLM calls the tool."""
    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    chatgpt_auth(home)
    provider = "model_providers.glmbridge"
    overrides = {
        f"{provider}.name": "glmbridge", f"{provider}.base_url": f"{url}/v1",
        f"{provider}.wire_api": "responses", f"{provider}.requires_openai_auth": True,
        f"{provider}.model_catalog_url": f"{url}/v1/models",
        "model_provider": "glmbridge", "model": "glm-5.3-flash",  # it sees images
    }  # fmt: skip
    flags = [p for k, v in overrides.items() for p in ("-c", f"{k}={json.dumps(v)}")]
    call = {"tool_calls": [{"name": "image_gen__imagegen",
                            "arguments": {"prompt": "a red circle logo"}}]}  # fmt: skip
    prompt = f"make a logo [[sim:{json.dumps(call)}]]"
    env = client_env(tmp_path, CODEX_HOME=str(home))
    return subprocess.run(
        [str(binary), *flags, "exec", "--skip-git-repo-check",
         "--dangerously-bypass-approvals-and-sandbox", prompt],
        cwd=work, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def tool_turn(sim: RunningServer) -> list[dict[str, Any]]:
    """The messages of GLM's last turn (after the tool ran)."""
    return list(chats(sim)[-1]["messages"])


def test_codex_generates_an_image_with_glm_image(
    codex_bin: Path,
    sim: RunningServer,
    start_server: Start,
    bridge_settings: MakeSettings,
    tmp_path: Path,
) -> None:
    server = start_server(create_app(bridge_settings(sim.url, media_api_keys=("media-key",))))
    proc = run_imagegen(codex_bin, server.url, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Codex called the bridge's images endpoint; the bridge made it with glm-image.
    (made,) = [r for r in sim.app.state.media_requests if r["path"].endswith("/generations")]
    assert made["body"] == {"model": "glm-image", "prompt": "a red circle logo",
                            "size": "1280x1280", "quality": "hd"}  # fmt: skip
    # The next turn gave GLM the tool's result...
    *_, tool, shown = tool_turn(sim)
    assert tool["role"] == "tool" and "generated_images" in tool["content"]
    # ... and the image itself (Codex returns it as input_image): the PNG the simulator drew.
    url = shown["content"][0]["image_url"]["url"]
    data = base64.b64decode(url.rpartition(",")[2])
    assert data.startswith(b"\x89PNG") and b"tEXtprompt\x00a red circle logo" in data


def test_with_only_a_coding_plan_key_codex_is_told_to_set_a_media_key(
    codex_bin: Path,
    sim: RunningServer,
    bridge: RunningServer,
    tmp_path: Path,
) -> None:
    proc = run_imagegen(codex_bin, bridge.url, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sim.app.state.media_requests == []  # no media call was made
    tool = next(m for m in tool_turn(sim) if m["role"] == "tool")
    assert "image generation failed" in tool["content"] and "ZAI_MEDIA_API_KEY" in tool["content"]
