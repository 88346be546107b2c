"""The simulator's vision behaviour (glmbridge_server.simulator.images): a corrupt image is GLM's
1210 (anomalyco/opencode#2944, cc-switch#5025), and a vision model asked to describe an
image reports its size and its readable (PNG text chunk) text. Golden shapes."""

from __future__ import annotations

import httpx2

from tests.server.tools.test_vision_fallback import png
from tests.support.servers import RunningServer

CHAT = "/api/paas/v4/chat/completions"


def _ask(sim: RunningServer, data: str, text: str, model: str = "glm-4.6v") -> httpx2.Response:
    content = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
               {"type": "text", "text": text}]  # fmt: skip
    body = {"model": model, "messages": [{"role": "user", "content": content}],
            "thinking": {"type": "disabled"}}  # fmt: skip
    return httpx2.post(sim.url + CHAT, json=body, headers={"authorization": "Bearer k"},
                       timeout=10)  # fmt: skip


def test_a_truncated_png_is_1210(sim: RunningServer) -> None:
    reply = _ask(sim, png("x", corrupt=True), "Describe this image.")
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "1210"


def test_a_vision_model_describes_size_and_visible_text(sim: RunningServer) -> None:
    reply = _ask(sim, png("Build failed: exit 2"), "Describe this image.")
    assert reply.status_code == 200
    text = reply.json()["choices"][0]["message"]["content"]
    assert text == 'Image 1 is a 2x1 PNG picture. Visible text: "Build failed: exit 2".'
    plain = _ask(sim, "aGVsbG8=", "Describe this image.").json()
    assert plain["choices"][0]["message"]["content"] == (
        "Image 1 is a picture with no readable text."
    )
