"""How glmbridge-server's cost grows with open streams (issue 22, item 5; not a test).

    python bench/bench_scale.py                  # 1, 8, 64, 512 concurrent streams, ~1.5 min
    python bench/bench_scale.py --levels 1,8     # fewer levels

One GLM simulator, the zero-parse relay in front of it (HAProxy in TCP mode, as in
``bench_server.py``) and one glmbridge-server (``warning``). Each stream is a paced answer,
as a real model streams: ``[[sim:slow:0.05]]``, 20 text chunks 50 ms apart (~1 s). At each
level C, C clients (one ``httpx2.AsyncClient`` connection each) send ``max(2C, 16)``
requests; the relay and glmbridge alternate, level by level. Reported per level and path:
p50 latency (send → last byte) and, for glmbridge, what it adds beyond the relay; req/s;
glmbridge's RSS growth per open stream (peak RSS while the level runs minus RSS before it,
divided by C); its CPU per upstream chunk (22 per answer: the role chunk, 20 text chunks,
the final chunk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import (
    Servers,
    _upstream_bodies,
    make_path,
    start_glmbridge,
    start_relay,
    start_simulator,
)

BODY = json.dumps(
    {
        "model": "claude-opus-4-8",
        "max_tokens": 1000,
        "stream": True,
        "messages": [{"role": "user", "content": "[[sim:slow:0.05]]"}],
    }
).encode()
CHUNKS = 22


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def level(
    url: str, body: bytes, headers: dict[str, str], conc: int, n: int
) -> tuple[list[float], float]:
    limits = httpx2.Limits(max_connections=conc, max_keepalive_connections=conc)
    times: list[float] = []
    async with httpx2.AsyncClient(trust_env=False, timeout=120.0, limits=limits) as client:
        remaining = n

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                async with client.stream("POST", url, content=body, headers=headers) as r:
                    if r.status_code == 200:
                        async for _ in r.aiter_raw():
                            pass
                    if r.status_code != 200:
                        raise RuntimeError(f"{url}: HTTP {r.status_code}: {await r.aread()!r}")
                times.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        return times, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,8,64,512")
    parser.add_argument("--relay", choices=("haproxy", "python"), default="haproxy")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    load = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="glmbridge-scale-"))
    servers = Servers(tmp)
    out: dict[str, Any] = {"load_before": load, "levels": {}}
    try:
        sim = start_simulator(servers)
        relay, label = start_relay(servers, sim, args.relay)
        # 512 streams need more than the default 200 upstream connections
        more = {"GLMBRIDGE_UPSTREAM_CONNECTIONS": str(max(200, 2 * max(levels)))}
        bridge = start_glmbridge(servers, "glmbridge", sim, "warning", extra_env=more)
        out["relay"] = label
        paths = {
            "relay": make_path("relay", relay, BODY, direct=True),
            "glmbridge": make_path("glmbridge", bridge, BODY, direct=False),
        }
        # the relay gets the GLM chat path and a chat body: the simulator answers the same
        paths["relay"].body = _upstream_bodies(BODY)[0]  # what glmbridge sends
        for conc in levels:
            n = max(2 * conc, 16)
            row: dict[str, Any] = {}
            for name in ("relay", "glmbridge") if conc % 2 else ("glmbridge", "relay"):
                p = paths[name]
                rss0 = rss_kb(bridge.proc.pid)
                peak = [rss0]
                stop = threading.Event()

                def sample(peak: list[int] = peak, stop: threading.Event = stop) -> None:
                    while not stop.wait(0.05):
                        peak[0] = max(peak[0], rss_kb(bridge.proc.pid))

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                cpu0 = bridge.cpu_seconds()
                times, elapsed = asyncio.run(level(p.url, p.body, p.headers, conc, n))
                cpu = bridge.cpu_seconds() - cpu0
                stop.set()
                sampler.join()
                row[name] = {
                    "requests": n,
                    "p50_ms": statistics.median(times) * 1000,
                    "min_ms": min(times) * 1000,
                    "rps": n / elapsed,
                }
                if name == "glmbridge":
                    row[name]["rss_kb_per_stream"] = (peak[0] - rss0) / conc
                    row[name]["rss_mb_before"] = rss0 / 1024
                    row[name]["cpu_us_per_chunk"] = cpu * 1e6 / (n * CHUNKS)
            row["added_p50_ms"] = row["glmbridge"]["p50_ms"] - row["relay"]["p50_ms"]
            row["rps_ratio"] = row["glmbridge"]["rps"] / row["relay"]["rps"]
            out["levels"][conc] = row
            print(f"level {conc} done", file=sys.stderr)
    finally:
        servers.stop()
    out["load_after"] = os.getloadavg()
    print(f"load average before/after: {load[0]:.1f} / {out['load_after'][0]:.1f}; relay: {label}")
    print("| streams | relay p50 ms | glmbridge p50 ms | added | relay req/s | glmbridge req/s "
          "(ratio) | RSS KB per open stream | CPU µs per chunk |")  # fmt: skip
    print("|--:|--:|--:|--:|--:|--:|--:|--:|")
    for conc, row in out["levels"].items():
        r, g = row["relay"], row["glmbridge"]
        print(
            f"| {conc} | {r['p50_ms']:.0f} | {g['p50_ms']:.0f} | {row['added_p50_ms']:+.1f} ms | "
            f"{r['rps']:.1f} | {g['rps']:.1f} ({row['rps_ratio']:.0%}) | "
            f"{g['rss_kb_per_stream']:.0f} | {g['cpu_us_per_chunk']:.1f} |"
        )
    if args.output:
        args.output.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
