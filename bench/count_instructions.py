"""Instructions the server executes per request, counted by valgrind's callgrind (not a test).

Wall and CPU times on a shared 2-core machine move by ±5% from run to run; an instruction
count does not, so a change of 1-2% to the per-request path shows up in one run. It counts
user-space instructions only (not the kernel's socket work) and not time: use it to compare
two trees on the same path, and ``bench_server.py`` for the figures themselves.

Run from the repository root (needs Debian's ``valgrind``)::

    python bench/count_instructions.py                     # this tree, workload (a)
    python bench/count_instructions.py --tree /tmp/before  # another tree (a git worktree)
    python bench/count_instructions.py --workload b -n 10  # the 2000-chunk stream
    python bench/count_instructions.py --workload g        # gemini-cli's turn, Gemini door
    python bench/count_instructions.py --workload r        # Codex CLI's turn, Responses door
    python bench/count_instructions.py --workload ra       # bench_server's Responses turn
    python bench/count_instructions.py --workload c        # bench_server's OpenAI Chat turn
    python bench/count_instructions.py --workload an       # (a) to Z.ai's Anthropic endpoint

It starts the GLM simulator (``_sim_runner.py``) normally and one ``glmbridge-server`` under
callgrind with instrumentation off, sends warm-up requests, switches instrumentation on
(``callgrind_control -i on``), sends ``-n`` requests over one keep-alive connection, waits
for the usage writer's batch, and divides the instructions counted by ``-n``.
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_server as B  # the sibling module: servers, workloads

ROOT = Path(__file__).resolve().parent.parent


GEMINI_FIXTURE = ROOT / "tests" / "fixtures" / "gemini_cli" / "tool-2.json"
CODEX_FIXTURE = ROOT / "tests" / "fixtures" / "codex" / "models-2.json"
MESSAGES_HEAD = b"POST /v1/messages HTTP/1.1\r\nx-api-key: x\r\nanthropic-version: 2023-06-01\r\n"
GEMINI_HEAD = (
    b"POST /v1beta/models/glm-4.7:streamGenerateContent?alt=sse HTTP/1.1\r\nx-goog-api-key: x\r\n"
)

CHAT_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nauthorization: Bearer x\r\n"
RESPONSES_HEAD = (
    b"POST /v1/responses HTTP/1.1\r\nauthorization: Bearer x\r\naccept: text/event-stream\r\n"
)


def request_bytes(body: bytes, head: bytes = MESSAGES_HEAD) -> bytes:
    """One raw HTTP/1.1 request (``head``: its request line and key) with ``body`` (no client
    library in the way)."""
    rest = b"host: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head + rest % len(body) + body


def workload_g() -> bytes:
    """gemini-cli's recorded first turn (46 KB, its 15 tools) answering a short text."""
    body = json.loads(GEMINI_FIXTURE.read_text(encoding="utf-8"))["body"]
    part = body["contents"][-1]["parts"][-1]
    assert part["text"] == "say hi", part
    part["text"] = "say hi " + B.A_DIRECTIVE
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def workload_r() -> bytes:
    """Codex CLI's recorded first turn (22 KB, its 10 tools, reasoning asked for) answering
    a short text."""
    body = json.loads(CODEX_FIXTURE.read_text(encoding="utf-8"))["body"]
    part = body["input"][-1]["content"][-1]
    assert part["text"] == "say hi", part
    part["text"] = "say hi " + B.A_DIRECTIVE
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def exchange(sock: socket.socket, request: bytes) -> None:
    """Send ``request`` and read its chunked answer to the end."""
    sock.sendall(request)
    data = b""
    while not data.endswith(b"0\r\n\r\n"):
        piece = sock.recv(262144)
        if not piece:
            raise RuntimeError("the server closed the connection")
        data += piece


def total_instructions(out: Path) -> int:
    """The largest ``totals:``/``summary:`` figure over callgrind's dump files."""
    total = 0
    for name in glob.glob(str(out) + "*"):
        for line in Path(name).read_text(errors="replace").splitlines():
            if line.startswith(("totals:", "summary:")):
                total = max(total, int(line.split()[1]))
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="glmbridge source tree")
    parser.add_argument("--workload", choices=("a", "b", "c", "g", "r", "ra", "an"), default="a")
    parser.add_argument("-n", type=int, default=100, help="requests counted")
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (Debian: apt-get install valgrind)")
    tmp = Path(tempfile.mkdtemp(prefix="glmbridge-icount-"))
    servers = B.Servers(tmp)
    try:
        sim = B.start_simulator(servers)
        port = B._free_port()
        env = B._clean_env()
        env.update(ZAI_API_KEY="bench-key", GLMBRIDGE_MAX_RETRIES="0", PYTHONPATH=str(args.tree))
        out = tmp / "callgrind.out"
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                "--instr-atstart=no", sys.executable]  # fmt: skip
        if args.workload == "an":  # the simulator's Anthropic endpoint (bench_server's profile)
            env["GLMBRIDGE_UPSTREAM"] = "sim-anthropic"
            argv += [str(B.BRIDGE_RUNNER), sim.url]
        else:
            env["GLMBRIDGE_UPSTREAM"] = f"{sim.url}{B.SIM_BASE}"
            exe = shutil.which("glmbridge-server", path=str(Path(sys.executable).parent))
            argv += [exe] if exe else ["-m", "glmbridge_server"]
        argv += ["--port", str(port), "--log-level", "warning"]
        server = servers.start("glmbridge", argv, env, port)
        B.wait_ready(server, "/health", 240)
        if args.workload == "g":
            request = request_bytes(workload_g(), GEMINI_HEAD)
        elif args.workload in ("r", "ra"):  # ra: bench_server's glmbridge_responses body
            body = workload_r() if args.workload == "r" else B.responses_body(B.workload_a()[1])
            request = request_bytes(body, RESPONSES_HEAD)
        elif args.workload == "c":  # bench_server's glmbridge_chat body
            request = request_bytes(B.workload_a()[1], CHAT_HEAD)
        else:
            workload = B.workload_b() if args.workload == "b" else B.workload_a()
            request = request_bytes(workload[0])
        with socket.create_connection((B.HOST, port)) as sock:
            for _ in range(20):  # warm-up: connections, memos, lazy imports
                exchange(sock, request)
            time.sleep(1.0)
            control = ["callgrind_control", "-i"]
            subprocess.run([*control, "on", str(server.proc.pid)], check=True, capture_output=True)
            for _ in range(args.n):
                exchange(sock, request)
            time.sleep(0.6)  # the usage writer's batch (it lingers 0.25 s)
            subprocess.run([*control, "off", str(server.proc.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(server.proc.pid)], capture_output=True)
        time.sleep(1.0)
        server.proc.terminate()
        server.proc.wait(60)
        total = total_instructions(out)
        print(f"{args.tree}: {total / args.n / 1e6:.3f} M instructions per request "
              f"(workload {args.workload}, n={args.n})")  # fmt: skip
        return 0 if total else 1
    finally:
        servers.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
