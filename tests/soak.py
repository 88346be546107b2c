"""Soak and attack run, by hand: the CI campaign of ``tests/server/attack.py``, for longer,
against a real ``glmbridge-server`` process, with its memory and file descriptors sampled.

    python -m tests.soak --minutes 5            # from the repository root
    python -m tests.soak --minutes 60 --workers 24 --json soak.json

It starts the fault-injection upstream (``tests/server/faults.py``) and
``python -m glmbridge_server`` in front of it with short timeouts, runs campaign rounds
(hostile phase with a healthy upstream, then the fault mix) until the time is up, and
prints one JSON summary: requests, upstream faults, 5xx the upstream did not cause, secret
leaks, protocol problems, the slowest ``/health``, and the server's RSS and open file
descriptors at the start, peak and end. ``docs/security.md`` keeps the latest figures.
Exit status 1 if any violation was found.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx2

from tests.server.attack import Report, Target, run_campaign
from tests.server.faults import FaultServer
from tests.support.servers import free_port

KEY = "soak-key-7d41.secret"
TOKEN = "soak-token-0c9a"


def _sample(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open file descriptors) of ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def _start_server(upstream: FaultServer, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ZAI_API_KEY": KEY,
        "GLMBRIDGE_UPSTREAM": f"{upstream.url}/api/coding/paas/v4",
        "GLMBRIDGE_AUTH_TOKEN": TOKEN,
        "GLMBRIDGE_HEADER_TIMEOUT": "1",
        "GLMBRIDGE_BODY_TIMEOUT": "1",
        "GLMBRIDGE_FIRST_OUTPUT_TIMEOUT": "2",
        "GLMBRIDGE_IDLE_TIMEOUT": "2",
        "GLMBRIDGE_MAX_RETRIES": "1",
        "GLMBRIDGE_AUTH_COOLDOWN": "0",
        "GLMBRIDGE_QUOTA_COOLDOWN": "0",
        "GLMBRIDGE_SLOT_LEARNING": "0",
        "GLMBRIDGE_LOG_LEVEL": "error",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "glmbridge_server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx2.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("glmbridge-server did not start")


def soak(minutes: float, workers: int) -> dict[str, Any]:
    """Run campaign rounds for ``minutes``; the summary with the resource figures."""
    with FaultServer() as upstream:
        port = free_port()
        server = _start_server(upstream, port)
        samples: list[tuple[int, int]] = [_sample(server.pid)]
        stop = threading.Event()

        def sampler() -> None:
            while not stop.wait(1.0):
                samples.append(_sample(server.pid))

        watcher = threading.Thread(target=sampler, daemon=True)
        watcher.start()
        total = Report()
        rounds = 0
        started = time.monotonic()
        try:
            target = Target(f"http://127.0.0.1:{port}", TOKEN, KEY)
            while time.monotonic() - started < minutes * 60:
                # the defect attacks (each with targets of its own) run in the first round
                report = run_campaign(target, upstream, rounds=1, workers=workers,
                                      defects=None if rounds == 0 else {})  # fmt: skip
                rounds += 1
                total.requests += report.requests
                total.faults += report.faults
                total.statuses.update(report.statuses)
                for name in ("server_5xx", "leaks", "problems", "slow", "errors"):
                    getattr(total, name).extend(getattr(report, name))
                total.health_worst = max(total.health_worst, report.health_worst)
                total.health_failures += report.health_failures
                total.defect_seconds.update(report.defect_seconds)
            time.sleep(2.5)  # keep-alive and upstream connections close
            samples.append(_sample(server.pid))
        finally:
            stop.set()
            watcher.join(timeout=5)
            server.terminate()
            server.wait(timeout=10)
    summary = total.summary()
    rss = [s[0] for s in samples]
    fds = [s[1] for s in samples]
    summary.update(
        minutes=round((time.monotonic() - started) / 60, 2),
        rounds=rounds,
        rss_mib={"start": rss[0] // 1024, "peak": max(rss) // 1024, "end": rss[-1] // 1024},
        fds={"start": fds[0], "peak": max(fds), "end": fds[-1]},
    )
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--json", metavar="FILE", help="also write the summary here")
    args = parser.parse_args()
    summary = soak(args.minutes, args.workers)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    bad = any(summary[k] for k in ("server_5xx", "leaks", "problems", "slow", "errors"))
    return 1 if bad or summary["health_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
