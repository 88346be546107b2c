"""Ctrl-C on a real ``glmbridge-server`` process: a quick exit 0, no traceback, and every
open answer ends with its protocol's error instead of being cut off (or waited out).

The server runs as a subprocess (signals, uvicorn's own handlers and the exit status are
the point), in ``--mock`` mode, answering slowly (``[[sim:slow:…]]``) so the requests are
still open when SIGINT arrives.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from glmbridge import validate_anthropic_stream

pytestmark = pytest.mark.e2e

SLOW = "count to twenty [[sim:slow:0.3]]"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
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


def test_ctrl_c_ends_open_answers_with_an_error_and_exits_0(tmp_path: Path) -> None:
    proc, url = _start(tmp_path)
    streamed = bytearray()
    started = threading.Event()
    answers: dict[str, Any] = {}

    def stream() -> None:
        with httpx2.stream("POST", f"{url}/v1/messages", json=_body(True), timeout=30) as r:
            answers["stream_status"] = r.status_code
            for chunk in r.iter_bytes():
                streamed.extend(chunk)
                if b"text_delta" in streamed:
                    started.set()

    def plain() -> None:
        r = httpx2.post(f"{url}/v1/messages", json=_body(False), timeout=30)
        answers["plain"] = (r.status_code, r.json())

    threads = [threading.Thread(target=stream), threading.Thread(target=plain)]
    try:
        for t in threads:
            t.start()
        assert started.wait(15), bytes(streamed)
        time.sleep(0.3)  # the non-streamed request is waiting for its slow answer too
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
    # answers had about 6 s to go).
    assert took < 4, took

    # The open stream ends with a grammar-valid error event, after the text it had.
    raw = bytes(streamed)
    assert answers["stream_status"] == 200
    validate_anthropic_stream(raw)
    last = raw.strip().rsplit(b"\n\n", 1)[-1]
    assert last.startswith(b"event: error\n"), raw[-500:]
    error = json.loads(last.partition(b"data: ")[2])["error"]
    assert error["type"] == "overloaded_error" and "shutting down" in error["message"]
    assert b"text_delta" in raw

    # The non-streamed request gets a native error status, not a dropped connection.
    status, body = answers["plain"]
    assert status == 503 and body["error"]["type"] == "overloaded_error"


def test_ctrl_c_on_an_idle_server_exits_0_quietly(tmp_path: Path) -> None:
    proc, _ = _start(tmp_path)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=10)
    _, err = proc.communicate()
    assert code == 0
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err
