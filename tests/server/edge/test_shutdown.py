"""Ctrl-C on a real ``glmbridge-server`` process: a quick exit 0, no traceback, and every
open answer ends with its protocol's error instead of being cut off (or waited out).

The server runs as a subprocess (signals, uvicorn's own handlers and the exit status are
the point), in ``--mock`` mode, answering slowly (``[[sim:slow:…]]``) so the requests are
still open when SIGINT arrives.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from glmbridge import validate_anthropic_stream
from glmbridge.protocols.gemini.grammar import validate_gemini_stream
from glmbridge.protocols.openai.grammar import validate_chat_stream
from glmbridge.protocols.responses.grammar import validate_responses_stream
from glmbridge.routing import model_info
from glmbridge_server.edge.routes.config import effective_models
from glmbridge_server.settings import route_table
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e

SLOW = "count to twenty [[sim:slow:0.3]]"


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "glmbridge_server", "--mock", "--port", str(port), *extra],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx2.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"server did not start: {proc.communicate()[1].decode()[-2000:]}")


def _body(stream: bool) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 200, "stream": stream,
            "messages": [{"role": "user", "content": SLOW}]}  # fmt: skip


# One slow streamed request per door: (path, body, validator of the raw stream).
DOORS: dict[str, tuple[str, dict[str, Any], Callable[[bytes], Any]]] = {
    "anthropic": ("/v1/messages", _body(True), validate_anthropic_stream),
    "chat": ("/v1/chat/completions",
             {"model": "glm-4.7", "stream": True, "messages": [{"role": "user", "content": SLOW}]},
             validate_chat_stream),
    "responses": ("/v1/responses", {"model": "glm-4.7", "stream": True, "input": SLOW},
                  validate_responses_stream),
    "gemini": ("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
               {"contents": [{"role": "user", "parts": [{"text": SLOW}]}]},
               validate_gemini_stream),
}  # fmt: skip


def test_ctrl_c_ends_open_answers_with_an_error_and_exits_0(tmp_path: Path) -> None:
    proc, url = _start(tmp_path)
    streamed = {door: bytearray() for door in DOORS}
    statuses: dict[str, int] = {}
    answers: dict[str, Any] = {}

    def stream(door: str) -> None:
        path, body, _ = DOORS[door]
        with httpx2.stream("POST", url + path, json=body, timeout=30) as r:
            statuses[door] = r.status_code
            for chunk in r.iter_bytes():
                streamed[door].extend(chunk)

    def plain() -> None:
        r = httpx2.post(f"{url}/v1/messages", json=_body(False), timeout=30)
        answers["plain"] = (r.status_code, r.json())

    threads = [threading.Thread(target=stream, args=(door,)) for door in DOORS]
    threads.append(threading.Thread(target=plain))
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 15
        while any(len(b) < 400 for b in streamed.values()):  # every stream is under way
            assert time.monotonic() < deadline, {d: bytes(b) for d, b in streamed.items()}
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=15)
        took = time.monotonic() - sent
        for t in threads:
            t.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    out, err = proc.communicate()
    log = err.decode()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    # The answers were ended, not waited out (uvicorn's graceful timeout is 5 s; the slow
    # answers had about 5 s to go).
    assert took < 4, took

    # Every open stream ends with its protocol's error, after the content it had, and stays
    # grammar-valid.
    for door, (_, _, validate) in DOORS.items():
        raw = bytes(streamed[door])
        assert statuses[door] == 200, door
        validate(raw)
        tail = b"\n\n".join(raw.strip().split(b"\n\n")[-2:])  # the error (then [DONE])
        assert b"shutting down" in tail, (door, tail[-800:])
    last = bytes(streamed["anthropic"]).strip().rsplit(b"\n\n", 1)[-1]
    assert last.startswith(b"event: error\n"), last
    error = json.loads(last.partition(b"data: ")[2])["error"]
    assert error["type"] == "overloaded_error" and "shutting down" in error["message"]

    # The non-streamed request gets a native error status, not a dropped connection.
    status, body = answers["plain"]
    assert status == 503 and body["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_idle_server_stops_with_0_quietly(tmp_path: Path, signum: int) -> None:
    proc, _ = _start(tmp_path)
    proc.send_signal(signum)
    code = proc.wait(timeout=10)
    _, err = proc.communicate()
    assert code == 0
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err
    if signum != signal.SIGINT:
        return
    banner = err.decode()
    assert "in the foreground" in banner and "[[sim:" in banner
    # the manual Claude Code line carries the GLM ids and the real window of their models
    models = effective_models(route_table({}))
    window = min(model_info(models[slot]).context_window for slot in ("opus", "sonnet"))
    assert f"ANTHROPIC_DEFAULT_SONNET_MODEL={models['sonnet']}" in banner
    assert f"CLAUDE_CODE_MAX_CONTEXT_TOKENS={window} claude" in banner
