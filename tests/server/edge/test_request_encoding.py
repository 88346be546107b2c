"""Compressed request bodies (Content-Encoding gzip / deflate / zstd), bounded once inflated."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable

import httpx2
import pytest
from starlette.applications import Starlette

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from tests.support.servers import RunningServer

pytestmark = pytest.mark.e2e

BODY = json.dumps({"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}).encode()


def post(url: str, content: bytes, encoding: str) -> httpx2.Response:
    headers = {"content-encoding": encoding, "content-type": "application/json"}
    return httpx2.post(f"{url}/v1/chat/completions", content=content, headers=headers)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("identity", lambda b: b),
    ],
)
def test_compressed_bodies_are_read(
    bridge: RunningServer, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    response = post(bridge.url, compress(BODY), encoding)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "You said: hi"


def test_zstd_bodies_are_read_when_zstandard_is_installed(bridge: RunningServer) -> None:
    zstandard = pytest.importorskip("zstandard")
    response = post(bridge.url, zstandard.ZstdCompressor().compress(BODY), "zstd")
    assert response.status_code == 200, response.text


def test_bad_and_unknown_encodings_are_client_errors(bridge: RunningServer) -> None:
    bad = post(bridge.url, b"not gzip at all", "gzip")
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "body is not valid gzip data"
    unknown = post(bridge.url, BODY, "br")
    assert unknown.status_code == 415
    assert "not supported" in unknown.json()["error"]["message"]


def test_a_decompression_bomb_is_refused_at_the_body_limit(
    start_server: Callable[[Starlette], RunningServer],
    sim: RunningServer,
    bridge_settings: Callable[..., Settings],
) -> None:
    server = start_server(create_app(bridge_settings(sim.url, max_body_bytes=64 * 1024)))
    bomb = gzip.compress(b"{" + b" " * (8 * 1024 * 1024) + b"}")
    assert len(bomb) < 64 * 1024  # small on the wire
    response = post(server.url, bomb, "gzip")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
