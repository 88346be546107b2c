"""Upstream connection reuse check for glmbridge-server (not a test: pytest never collects it).

Run from the repository root with the project's virtualenv::

    python bench/check_reuse.py                      # this tree, both upstreams
    python bench/check_reuse.py --tree /tmp/glmbridge-base --tree /tmp/other
                                                     # also servers from other source trees

Starts the GLM simulator (``bench/_sim_runner.py``) and, per source tree, a
``glmbridge-server`` in front of its chat API and (if that tree has the Anthropic upstream
endpoint profile) one in front of its Z.ai Anthropic endpoint (``bench/_bridge_runner.py``, the
bench-only ``sim-anthropic`` profile), the same way ``bench_server.py`` does. Then, one
server at a time, it sends N sequential streamed requests (workload (a), the 76 KB Claude
Code turn, and (b), the 2000-chunk stream) over one keep-alive client connection and counts
the TCP connections to the simulator that appeared meanwhile (distinct client ports in
``/proc/net/tcp``, any state, so closed connections in TIME_WAIT count too). A server that
returns its upstream connection to the pool opens 1 for N requests (0 if one is already
open); one that closes it early opens N.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_server as bs  # bench/ is sys.path[0] when run as a script
import httpx2


def client_ports(port: int) -> set[int]:
    """Client-side ports of every TCP connection (any state) with ``port`` at either end."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
            if local == port and remote:
                ports.add(remote)  # the simulator's side
            elif remote == port:
                ports.add(local)  # the bridge's side
    return ports


def _commit(tree: Path) -> str:
    """``git describe``-like label of a source tree: short commit, ``+changes`` if dirty."""
    git = ["git", "-C", str(tree)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True)  # fmt: skip
    except OSError:
        return "?"
    label = head.stdout.decode().strip() or "?"
    return label + ("+changes" if dirty.stdout.strip() else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=30, help="requests per server")
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        default=[],
        help="also servers from this source tree (PYTHONPATH), e.g. a git worktree",
    )
    parser.add_argument("--output", type=Path, help="also write the counts as JSON here")
    args = parser.parse_args()
    trees: list[tuple[str, Path | None]] = [(f"this tree ({_commit(bs.ROOT)})", None)]
    trees += [(f"{t} ({_commit(t)})", t) for t in args.tree]

    a_body, _, _ = bs.workload_a()
    b_body, _, _ = bs.workload_b()
    tmp = Path(tempfile.mkdtemp(prefix="glmbridge-reuse-"))
    servers = bs.Servers(tmp)
    rows: list[dict[str, Any]] = []
    try:
        sim = bs.start_simulator(servers)
        bridges: list[tuple[str, str, bs.Server]] = []
        for i, (label, tree) in enumerate(trees):
            bridges.append(
                (label, "chat", bs.start_glmbridge(servers, f"chat{i}", sim, "warning", tree=tree))
            )
            env_tree = {"PYTHONPATH": str(tree)} if tree is not None else {}
            try:
                anth = _start_anthropic(servers, f"anth{i}", sim, env_tree)
            except RuntimeError as exc:  # e.g. an older tree's server has no such upstream
                print(f"{label}: no Anthropic-endpoint server ({str(exc)[-200:]})", flush=True)
            else:
                bridges.append((label, "anthropic", anth))
        with httpx2.Client(trust_env=False, timeout=60.0) as client:
            for wl, body in (("a", a_body), ("b", b_body)):
                for label, upstream, server in bridges:
                    p = bs.make_path(server.name, server, body, direct=False)
                    before = client_ports(sim.port)
                    for _ in range(args.requests):
                        bs.one_request(client, p)
                    time.sleep(0.5)  # let a late close show up
                    opened = len(client_ports(sim.port) - before)
                    rows.append(
                        {
                            "tree": label,
                            "upstream": upstream,
                            "workload": wl,
                            "requests": args.requests,
                            "new_upstream_connections": opened,
                        }
                    )
                    print(
                        f"({wl}) {label}, {upstream} upstream: {args.requests} streamed requests, "
                        f"{opened} new connection(s) to the simulator",
                        flush=True,
                    )
    finally:
        servers.stop()
    if args.output is not None:
        args.output.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


def _start_anthropic(
    servers: bs.Servers, name: str, sim: bs.Server, extra_env: dict[str, str]
) -> bs.Server:
    """Like ``bs.start_glmbridge(upstream="anthropic")``, optionally with another tree."""
    port = bs._free_port()
    env = bs._clean_env()
    env.update(
        ZAI_API_KEY="bench-key",
        GLMBRIDGE_MAX_RETRIES="0",
        GLMBRIDGE_UPSTREAM="sim-anthropic",
        **extra_env,
    )
    argv = [sys.executable, str(bs.BRIDGE_RUNNER), sim.url, "--port", str(port)]
    argv += ["--log-level", "warning"]
    server = servers.start(name, argv, env, port)
    bs.wait_ready(server, "/health", 30)
    return server


if __name__ == "__main__":
    sys.exit(main())
