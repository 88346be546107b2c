"""The media wing without HTTP on our side: which keys and upstream serve media, the task
table's bounds, key failover, and downloads only from the media upstream's own hosts
(Z.ai answered by an ``httpx2.MockTransport``)."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import httpx2
import pytest

from glmbridge.errors import UpstreamError
from glmbridge.media.images import decode_image_request
from glmbridge.media.videos import decode_video_request
from glmbridge_server.media.access import MediaAccess, media_access
from glmbridge_server.media.client import MediaClient
from glmbridge_server.media.images import make_images
from glmbridge_server.media.tasks import LIFETIME, TaskTable
from glmbridge_server.settings import MOCK_API_KEY, Settings
from glmbridge_server.upstream.keypool import KeyPool

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
BASE = "https://api.z.ai/api/paas/v4"


@pytest.mark.parametrize(
    ("values", "base", "keys"),
    [({"api_keys": ("plan",)}, None, None),
     ({"api_keys": ("plan",), "media_api_keys": ("m",)}, BASE, ("m",)),
     ({"upstream": "bigmodel-coding", "media_api_keys": ("m",)},
      "https://open.bigmodel.cn/api/paas/v4", ("m",)),
     ({"upstream": "zai", "api_keys": ("payg",)}, BASE, ("payg",)),
     ({"upstream": "zai-anthropic", "api_keys": ("k",), "plan": "payg"}, BASE, ("k",)),
     ({"upstream": "http://proxy:8/api/coding/paas/v4", "media_api_keys": ("m",)},
      "http://proxy:8/api/paas/v4", ("m",)),
     ({"media_api_keys": ("m",), "media_upstream": "bigmodel"},
      "https://open.bigmodel.cn/api/paas/v4", ("m",)),
     ({"media_api_keys": ("m",), "media_upstream": "https://gw.example/v4"},
      "https://gw.example/v4", ("m",))],
)  # fmt: skip
def test_which_keys_and_upstream_serve_media(
    values: dict[str, Any], base: str | None, keys: tuple[str, ...] | None
) -> None:
    access = media_access(Settings(**values))
    if base is None:
        assert access is None  # a Coding Plan key alone never serves media
    else:
        assert access is not None and (access.base_url, access.keys) == (base, keys)


def test_mock_mode_calls_its_own_simulator() -> None:
    access = media_access(Settings(mock=True), ("127.0.0.1", 4999))
    assert access == MediaAccess("http://127.0.0.1:4999/_mock/api/paas/v4", (MOCK_API_KEY,), "mock")


def test_the_task_table_is_bounded_and_forgets_after_a_day() -> None:
    now = [1000.0]
    table = TaskTable(limit=2, clock=lambda: now[0])
    job = decode_video_request({"prompt": "p"})
    first, second, third = (table.add(job, f"z{i}", 0) for i in range(3))
    assert table.get(first.id) is None and len(table) == 2  # the oldest went first
    assert table.get(second.id) is second and second.id.startswith("video_")
    now[0] += LIFETIME + 1
    assert table.get(third.id) is None and len(table) == 0


def _client(handler: Any, keys: tuple[str, ...] = ("k1", "k2")) -> MediaClient:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return MediaClient(http, MediaAccess(BASE, keys, "zai"), KeyPool(keys), cooldown=60)


def _answer(url: str) -> httpx2.Response:
    return httpx2.Response(200, json={"created": 1, "data": [{"url": url}]})


def test_a_refused_key_cools_down_and_the_next_makes_the_images() -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/images/generations"):
            key = request.headers["authorization"]
            seen.append(key)
            if key == "Bearer k1":
                return httpx2.Response(429, json={"error": {"code": "1113", "message": "no"}})
            return _answer("https://aigc-files.z.ai/a.png")
        return httpx2.Response(200, content=PNG, headers={"content-type": "image/png"})

    client = _client(handler)
    job = decode_image_request({"prompt": "p", "n": 3, "response_format": "b64_json"})
    made = anyio.run(make_images, client, job)
    assert [base64.b64decode(m.b64 or "") for m in made] == [PNG] * 3
    assert {m.key_index for m in made} == {1}
    assert client.pool.is_cooling(0) and "Bearer k1" in seen


def test_downloads_only_from_the_upstreams_own_hosts_and_within_the_cap() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.host == "api.z.ai":
            return _answer(request.headers.get("x-answer", ""))
        if request.url.path == "/redirect":
            return httpx2.Response(302, headers={"location": "https://evil.example/a.png"})
        return httpx2.Response(200, content=PNG * 100)

    client = _client(handler)

    async def fetch(url: str, limit: int = 10_000) -> bytes:
        return (await client.fetch(url, limit))[0]

    assert anyio.run(fetch, "https://files.z.ai/a.png") == PNG * 100
    for url in ("https://evil.example/a.png", "https://files.z.ai/redirect",
                "http://files.z.ai/a.png"):  # fmt: skip
        with pytest.raises(UpstreamError, match="outside its own file hosts"):
            anyio.run(fetch, url)
    with pytest.raises(UpstreamError, match="larger than"):
        anyio.run(fetch, "https://files.z.ai/a.png", 100)


def test_a_key_echoed_in_an_upstream_error_is_scrubbed() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        key = request.headers["authorization"].removeprefix("Bearer ")
        return httpx2.Response(400, json={"error": {"code": "1214", "message": f"bad {key}"}})

    client = _client(handler, keys=("secret-media-key",))
    job = decode_image_request({"prompt": "p"})
    with pytest.raises(UpstreamError) as caught:
        anyio.run(make_images, client, job)
    assert "secret-media-key" not in str(caught.value) and caught.value.code == "1214"
