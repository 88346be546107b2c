"""``--workers 1`` against ``--workers 2`` (issue 22, item 5; not a test).

    python bench/bench_workers.py            # ~2 min on 2 cores
    python bench/bench_workers.py --quick    # smoke run (< 1 min), noisier

Same run, same machine, every server its own process tree, the paths interleaved request by
request (p50) and round by round (req/s), with ``bench_server.py``'s workloads and clients:
(a) the recorded 76 KB Claude Code turn, (b) a 2000-chunk stream. Paths:

* **direct**: the GLM simulator's chat API (one uvicorn process: the ceiling of every path);
* **relay**: the zero-parse floor (HAProxy in TCP mode) in front of it;
* **w1**: ``glmbridge-server`` as it runs by default (one process, state in the process);
* **w1_redis**: one process with ``redis_url`` (what sharing the slots through Redis costs);
* **w2_redis**: ``--workers 2`` with ``redis_url`` (the configuration the docs give).

Every bridge runs at ``warning`` with one key on a custom upstream URL (plan ``unlimited``:
the slots never make a request wait, so only their cost is measured). Reported: p50 and req/s
per workload, the bridges' CPU per request (the supervisor and its workers), how the workers
shared that CPU, and the load average before and after (the machine is shared). Results: a
markdown table on stdout and ``bench/results/workers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import (
    CONCURRENCY,
    SIZES,
    Server,
    Servers,
    _clean_env,
    _free_port,
    concurrent,
    machine,
    make_path,
    sequential,
    start_glmbridge,
    start_relay,
    start_simulator,
    workload_a,
    workload_b,
)

RESULTS = Path(__file__).resolve().parent / "results" / "workers.json"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
BRIDGES = ("w1", "w1_redis", "w2_redis")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")


class TreeServer(Server):
    """A server whose CPU is its own plus its live children's (the workers)."""

    def cpu_seconds(self) -> float:
        pid = self.proc.pid
        return _cpu_of(pid) + sum(_cpu_of(c) for c in _children(pid))

    def worker_cpu(self) -> dict[int, float]:
        return {c: _cpu_of(c) for c in _children(self.proc.pid)}


def start_redis(servers: Servers) -> str:
    port = _free_port()
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no"]  # fmt: skip
    servers.start("redis", argv, _clean_env(), port)
    deadline = time.monotonic() + 10
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                         text=True).stdout.strip() != "PONG":  # fmt: skip
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0"


def start_bridges(servers: Servers, sim: Server, redis_url: str) -> list[TreeServer]:
    configs = {
        "w1": {},
        "w1_redis": {"GLMBRIDGE_REDIS_URL": redis_url},
        "w2_redis": {"GLMBRIDGE_REDIS_URL": redis_url, "GLMBRIDGE_WORKERS": "2"},
    }
    out = []
    for name, env in configs.items():
        server = start_glmbridge(servers, name, sim, "warning", extra_env=env)
        tree = TreeServer(**vars(server))
        servers.all[servers.all.index(server)] = tree
        out.append(tree)
    # every worker of w2 is up before anything is timed
    w2 = out[-1]
    deadline = time.monotonic() + 30
    while len(_children(w2.proc.pid)) < 2 or len(_pids_answering(w2.url)) < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("w2_redis: both workers did not answer")
        time.sleep(0.1)
    return out


def _pids_answering(url: str, tries: int = 40) -> set[int]:
    seen = set()
    for _ in range(tries):
        with httpx2.Client(trust_env=False, timeout=2.0) as client:
            seen.add(client.get(f"{url}/health").json()["worker"]["pid"])
    return seen


def table(res: dict[str, Any]) -> str:
    rows = [
        "| path | (a) p50 ms | (a) req/s | (a) bridge CPU ms/req | (b) p50 ms | (b) req/s "
        "| (b) bridge CPU ms/req |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("direct", "relay", *BRIDGES):
        cells = [name]
        for w in ("a", "b"):
            seq, conc = res[w]["sequential"][name], res[w]["concurrent"][name]
            cpu = conc["cpu_ms_per_request"].get(name)
            cells += [f"{seq['p50_ms']:.2f}", f"{conc['rps']:.1f}",
                      "" if cpu is None else f"{cpu:.2f}"]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    sz = dict(SIZES["quick" if args.quick else "full"])
    if args.rounds:
        sz["rounds"] = args.rounds
    load_before = os.getloadavg()
    a_body, a_glm, _ = workload_a()
    b_body, b_glm, _ = workload_b()
    servers = Servers(Path(tempfile.mkdtemp(prefix="glmbridge-bench-workers-")))
    try:
        sim = start_simulator(servers)
        relay, relay_label = start_relay(servers, sim, "haproxy")
        bridges = start_bridges(servers, sim, start_redis(servers))
        measured = [sim, relay, *bridges]

        def paths(anth: bytes, glm: bytes) -> list[Any]:
            ps = [make_path("direct", sim, glm, direct=True)]
            ps.append(make_path("relay", relay, glm, direct=True))
            return ps + [make_path(b.name, b, anth, direct=False) for b in bridges]

        pa, pb = paths(a_body, a_glm), paths(b_body, b_glm)
        res: dict[str, Any] = {"a": {}, "b": {}}
        res["a"]["sequential"] = sequential(pa, sz["a_seq"], sz["warm"], measured, {})
        res["b"]["sequential"] = sequential(pb, sz["b_seq"], 2, measured, {})
        w2 = bridges[-1]
        shares: dict[str, dict[int, float]] = {}
        for w, ps, n in (("a", pa, sz["a_conc"]), ("b", pb, sz["b_conc"])):
            before = w2.worker_cpu()
            res[w]["concurrent"] = concurrent(ps, n, sz["rounds"], measured, {})
            after = w2.worker_cpu()
            shares[w] = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    finally:
        servers.stop()
    load_after = os.getloadavg()
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "relay": relay_label,
        "concurrency": CONCURRENCY,
        "sizes": sz,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "w2_worker_cpu_s_during_concurrent": shares,
        "results": res,
    }
    print(table(res))
    print(f"\nconcurrency {CONCURRENCY}; load average before {load_before[0]:.2f} "
          f"{load_before[1]:.2f} {load_before[2]:.2f}, after {load_after[0]:.2f} "
          f"{load_after[1]:.2f} {load_after[2]:.2f}")  # fmt: skip
    for w, share in shares.items():
        print(f"w2_redis workers' CPU during ({w}) req/s: "
              + ", ".join(f"{s:.1f} s" for s in share.values()))  # fmt: skip
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (< 1 min), noisier")
    parser.add_argument("--rounds", type=int, default=6,
                        help="req/s rounds per path, alternating the order (default 6: the "
                        "machine is shared, so single rounds vary)")  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
