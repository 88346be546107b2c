"""Server overhead benchmark for glmbridge-server (not a test: pytest never collects it).

Run from the repository root with the project's virtualenv::

    python bench/bench_server.py            # full run (~1.5 min on 2 cores)
    python bench/bench_server.py --quick    # smoke run (< 40 s), noisier numbers
    python bench/bench_server.py --litellm  # also measure a LiteLLM proxy, if installed
                                            # in /tmp/litellm-venv (see docs/performance.md)
    python bench/bench_server.py --compare-tree /tmp/glmbridge-base
                                            # also an older source tree (git worktree),
                                            # column glmbridge_ref, in the same run

Same run, same machine, real sockets on 127.0.0.1, every server its own process. The
client always speaks Anthropic Messages to glmbridge (the Anthropic door); glmbridge reaches
the simulator through each of its two upstreams:

* **direct**: client → GLM simulator's chat API (``bench/_sim_runner.py``, uvicorn,
  ``/api/coding/paas/v4/chat/completions``);
* **glmbridge**: client → ``glmbridge-server --log-level warning`` → the same simulator's
  chat API (``GLMBRIDGE_UPSTREAM`` = its URL: the OpenAI-chat codec);
* **glmbridge (info)**: the same with the default ``info`` log level (one access line per
  request, written to a file);
* **direct_anthropic**: client → the simulator's Z.ai Anthropic endpoint
  (``/api/anthropic/v1/messages``);
* **glmbridge_anthropic**: client → glmbridge-server (``warning``) → that Anthropic endpoint
  (the Anthropic upstream codec). ``bench/_bridge_runner.py`` registers a bench-only profile
  ``sim-anthropic`` for the simulator's URL (a custom URL is always a chat upstream) and runs
  the ordinary server entry point, with ``GLMBRIDGE_PLAN=unlimited``: the chat bridge's key
  slots (a profile upstream defaults to plan ``pro``, 2 upstream slots per key, which queues
  14 of the 16 concurrent clients: the plan's limit, not the bridge's cost);
  **glmbridge_anthropic_ref** is the same from ``--compare-tree``;
* **glmbridge_chat** / **glmbridge_responses** / **glmbridge_gemini**: the same ``glmbridge``
  server (chat upstream, ``warning``), reached through its other doors: ``POST
  /v1/chat/completions`` with the GLM chat body itself as the client's request (it is a valid
  Chat Completions request), ``POST /v1/responses`` with the same conversation as a Responses
  request (system → ``instructions``, user turns → ``input_text`` items, tools → function
  tools), and ``POST /v1beta/models/glm-4.7:streamGenerateContent?alt=sse`` with it as a
  Gemini request (``systemInstruction``, ``contents``, ``functionDeclarations``). Both reach
  the simulator with the body the direct path sends, so they are compared with ``direct``;
  the server's CPU is shared with ``glmbridge`` and not attributed per door;
* **litellm** (optional): client → ``litellm`` proxy (``/v1/messages``) → the simulator.

Each bridge is compared with the direct path of its own upstream (``glmbridge_anthropic``
with ``direct_anthropic``, the others with ``direct``).

Workloads (the simulator is told what to answer by a ``[[sim:...]]`` directive in the user
text, which reaches it unchanged on every path, so every path gets the same answer):

* **(a)** the recorded 76 KB Claude Code request
  (``tests/fixtures/claude_code/request_main.json``, stream: true, user text
  ``say hi [[sim:{"text": "Hi! What would you like to work on?"}]]``, a fixed short
  answer). Each direct path gets the body glmbridge itself sends to that upstream
  (``Exchange.prepare(anthropic.DOOR, body, upstream=profile).body``); the bridges get the
  client's Anthropic body. The whole streamed body is read.
* **(b)** a 2000-chunk stream (``[[sim:long:2000]]`` in a small request).
  Added time per chunk = (bridge p50 − direct p50) / 2000.

Metrics: latency from sending the request to the last byte of the body, sequentially
(the paths interleaved request by request), p50/p95/p99; requests/s with 16 concurrent
clients (httpx2.AsyncClient, 16 pooled connections, a fixed number of requests); the CPU
time every server process used per request (from /proc/<pid>/stat), and for each proxy its
CPU over every timed window (work after the client's last byte, such as reading the
upstream's epilogue, lands in the next window).

Targets: (a) at most 2 ms p50 added; (b) at most 20 µs added per chunk; at least 75% of
the direct throughput (issue 3 set 50%; the JSON keeps that verdict too). Results: a
markdown table on stdout and ``bench/results/server.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import datetime as _dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx2

from glmbridge import Exchange
from glmbridge.profiles import PROFILES
from glmbridge.protocols import anthropic

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "claude_code" / "request_main.json"
RESULTS = ROOT / "bench" / "results" / "server.json"
SIM_RUNNER = ROOT / "bench" / "_sim_runner.py"
BRIDGE_RUNNER = ROOT / "bench" / "_bridge_runner.py"
SIM_BASE = "/api/coding/paas/v4"
SIM_ANTHROPIC = "/api/anthropic/v1/messages"  # the simulator's Z.ai Anthropic endpoint
LITELLM_BIN = Path("/tmp/litellm-venv/bin/litellm")
# LiteLLM refuses to start without a master key; this one only guards a loopback port for
# the length of the run.
LITELLM_KEY = "sk-bench-" + os.urandom(16).hex()

CHUNKS = 2000
# (a)'s answer: a fixed short text (no reasoning), 5 content chunks of 8 characters, whatever
# else the proxy does to the prompt (LiteLLM reorders Claude Code's system message, so an
# echo would differ between paths).
A_ANSWER = "Hi! What would you like to work on?"
A_DIRECTIVE = "[[sim:" + json.dumps({"text": A_ANSWER}) + "]]"
TARGET_A_MS = 2.0  # (a) p50 added
TARGET_B_US = 20.0  # (b) added per chunk
TARGET_RPS = 0.75  # fraction of the direct throughput
TARGET_RPS_ISSUE3 = 0.5  # the line issue 3 set (reported alongside)
# The direct path each proxy is compared with (default: "direct", the chat API).
REFERENCE = {
    "glmbridge_anthropic": "direct_anthropic",
    "glmbridge_anthropic_ref": "direct_anthropic",
}
DIRECTS = ("direct", "direct_anthropic", "relay", "relay_anthropic")
# The floor (issue 22): a relay that adds one socket hop and parses nothing, in front of the
# same simulator. Each proxy is also reported beyond the relay of its own upstream.
RELAY_REFERENCE = {
    "glmbridge_anthropic": "relay_anthropic",
    "glmbridge_anthropic_ref": "relay_anthropic",
}
RELAYS = ("relay", "relay_anthropic")
# The Anthropic-endpoint bridges get the chat bridge's key slots. A profile upstream defaults
# to plan "pro" (2 upstream slots per key: settings.effective_plan), a custom URL to
# "unlimited"; with 2 slots, 14 of the 16 concurrent clients wait in the bridge's queue (an
# early commit each), which measured the plan's admission limit, not the bridge's cost.
ANTHROPIC_BRIDGE_ENV = {"GLMBRIDGE_PLAN": "unlimited"}
HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
)
TCP_RELAY = ROOT / "bench" / "_tcp_relay.py"
# Issue 22's targets, beyond the relay: (a) p50, (b) p50 of the whole stream, (a) throughput.
TARGET_RELAY_A_MS = 1.5
TARGET_RELAY_B_MS = 25.0
TARGET_RELAY_RPS = 0.80
CONCURRENCY = 16
HOST = "127.0.0.1"

# Per-mode sizes: sequential requests per path (after warm-up) and concurrent requests.
SIZES = {
    "full": {"warm": 20, "a_seq": 200, "b_seq": 30, "a_conc": 800, "b_conc": 64, "rounds": 2},
    "quick": {"warm": 5, "a_seq": 40, "b_seq": 6, "a_conc": 160, "b_conc": 16, "rounds": 1},
}
# LiteLLM is ~100x slower per chunk: fewer requests, so that a run stays in bounds.
SIZES_LITELLM = {
    "full": {"a_seq": 100, "b_seq": 8, "a_conc": 160, "b_conc": 16, "rounds": 1},
    "quick": {"a_seq": 20, "b_seq": 3, "a_conc": 32, "b_conc": 16, "rounds": 1},
}


# --- request bodies ------------------------------------------------------------------------


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _upstream_bodies(anthropic_body: bytes) -> tuple[bytes, bytes]:
    """The bodies glmbridge sends for ``anthropic_body`` (server defaults): (chat, Anthropic).

    Only the protocol of the profile matters for the body, so the built-in profiles stand
    in for the simulator's URLs.
    """
    door = anthropic.DOOR
    chat = Exchange.prepare(door, anthropic_body, upstream=PROFILES["zai-coding"]).body
    messages = Exchange.prepare(door, anthropic_body, upstream=PROFILES["zai-anthropic"]).body
    return chat, messages


def responses_body(chat_body: bytes) -> bytes:
    """The conversation of a GLM chat body as a Responses request (text turns and tools)."""
    chat = json.loads(chat_body)
    instructions = [m["content"] for m in chat["messages"] if m["role"] == "system"]
    items = []
    for m in chat["messages"]:
        if m["role"] == "system":
            continue
        parts = [m["content"]] if isinstance(m["content"], str) else [
            p["text"] for p in m["content"] if p.get("type") == "text"]  # fmt: skip
        kind = "input_text" if m["role"] == "user" else "output_text"
        items.append({"role": m["role"], "content": [{"type": kind, "text": t} for t in parts]})
    tools = [{"type": "function", **t["function"]} for t in chat.get("tools") or ()]
    body: dict[str, Any] = {"model": chat["model"], "input": items, "stream": True,
                            "store": False, "tools": tools}  # fmt: skip
    if instructions:
        body["instructions"] = "\n\n".join(instructions)
    return _compact(body)


def gemini_body(chat_body: bytes) -> bytes:
    """The conversation of a GLM chat body as a Gemini ``streamGenerateContent`` request."""
    chat = json.loads(chat_body)
    system = [m["content"] for m in chat["messages"] if m["role"] == "system"]
    contents = []
    for m in chat["messages"]:
        if m["role"] == "system":
            continue
        texts = [m["content"]] if isinstance(m["content"], str) else [
            p["text"] for p in m["content"] if p.get("type") == "text"]  # fmt: skip
        role = "user" if m["role"] == "user" else "model"
        contents.append({"role": role, "parts": [{"text": t} for t in texts]})
    decls = [{"name": t["function"]["name"], "description": t["function"].get("description", ""),
              "parametersJsonSchema": t["function"].get("parameters", {})}
             for t in chat.get("tools") or ()]  # fmt: skip
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    if decls:
        body["tools"] = [{"functionDeclarations": decls}]
    return _compact(body)


def workload_a() -> tuple[bytes, bytes, bytes]:
    """(client body, GLM chat body, Anthropic-endpoint body) of the 76 KB Claude Code
    request answering a short text."""
    with FIXTURE.open(encoding="utf-8") as f:
        value = json.load(f)
    value = copy.deepcopy(value)
    value["stream"] = True
    last = value["messages"][0]["content"][-1]
    assert last["type"] == "text" and last["text"] == "say hi", last
    last["text"] = "say hi " + A_DIRECTIVE
    body = _compact(value)
    return (body, *_upstream_bodies(body))


def workload_b() -> tuple[bytes, bytes, bytes]:
    """(client body, GLM chat body, Anthropic-endpoint body) of a small request answered by
    a 2000-chunk stream."""
    value = {
        "model": "claude-opus-4-8",
        "max_tokens": 32000,
        "stream": True,
        "messages": [{"role": "user", "content": f"[[sim:long:{CHUNKS}]]"}],
    }
    body = _compact(value)
    return (body, *_upstream_bodies(body))


# --- server processes ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGTERM if this benchmark dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    base: str = ""  # URL prefix of the endpoint on this server

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu_seconds(self) -> float:
        """utime + stime of the process (and its reaped children), in seconds."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        ticks = os.sysconf("SC_CLK_TCK")
        return sum(int(x) for x in fields[11:13]) / ticks  # fields 14 and 15 of stat(5)


@dataclass
class Servers:
    tmp: Path
    all: list[Server] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str], port: int) -> Server:
        log = self.tmp / f"{name}.log"
        with log.open("wb") as out:  # a file, not a pipe: a full pipe would block the server
            proc = subprocess.Popen(
                argv,
                cwd=self.tmp,  # no stray .env / config from the repository
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        server = Server(name, proc, port, log)
        self.all.append(server)
        return server

    def stop(self) -> None:
        for s in self.all:
            if s.proc.poll() is None:
                s.proc.terminate()
        deadline = time.monotonic() + 5
        for s in self.all:
            try:
                s.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait(timeout=5)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GLMBRIDGE_", "ZAI_"))}
    for proxy in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env.pop(proxy, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_ready(server: Server, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx2.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                break
            with contextlib.suppress(httpx2.HTTPError):
                if client.get(server.url + path).status_code < 500:
                    return
            time.sleep(0.1)
    tail = server.log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"{server.name} did not start (exit {server.proc.poll()}):\n{tail}")


def start_simulator(servers: Servers, tree: Path | None = None) -> Server:
    """The GLM simulator (``tree``: from that source tree instead, ``PYTHONPATH``)."""
    port = _free_port()
    env = _clean_env()
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    sim = servers.start("simulator", [sys.executable, str(SIM_RUNNER), str(port)], env, port)
    sim.base = SIM_BASE
    wait_ready(sim, "/health", 20)
    return sim


def start_glmbridge(
    servers: Servers,
    name: str,
    sim: Server,
    log_level: str,
    *,
    upstream: str = "chat",
    tree: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> Server:
    """glmbridge-server in front of the simulator's chat API, or (``upstream="anthropic"``)
    its Anthropic endpoint through the bench-only ``sim-anthropic`` profile.

    ``tree``: run the glmbridge source tree there instead (``PYTHONPATH``), e.g. a git
    worktree of an earlier commit, for a before/after comparison within one run.
    """
    port = _free_port()
    env = _clean_env()
    env.update(ZAI_API_KEY="bench-key", GLMBRIDGE_MAX_RETRIES="0", **(extra_env or {}))
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    if upstream == "anthropic":
        env["GLMBRIDGE_UPSTREAM"] = "sim-anthropic"
        argv = [sys.executable, str(BRIDGE_RUNNER), sim.url]
    else:
        env["GLMBRIDGE_UPSTREAM"] = f"{sim.url}{SIM_BASE}"
        exe = shutil.which("glmbridge-server", path=str(Path(sys.executable).parent))
        argv = [exe] if exe else [sys.executable, "-m", "glmbridge_server"]
    argv += ["--port", str(port), "--log-level", log_level]
    server = servers.start(name, argv, env, port)
    wait_ready(server, "/health", 30)
    return server


HAPROXY_CONFIG = """\
global
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s
listen relay
  bind {host}:{port}
  server simulator {host}:{target}
"""


def start_relay(servers: Servers, sim: Server, kind: str) -> tuple[Server, str]:
    """The zero-parse floor in front of the simulator: HAProxy in TCP mode (``kind`` "haproxy",
    when installed) or ``bench/_tcp_relay.py`` (asyncio streams on uvloop). Returns the server
    and a sentence saying which one runs."""
    port = _free_port()
    if kind == "haproxy" and HAPROXY is not None:
        cfg = servers.tmp / "haproxy.cfg"
        cfg.write_text(HAPROXY_CONFIG.format(host=HOST, port=port, target=sim.port))
        version = subprocess.run([HAPROXY, "-v"], capture_output=True, text=True).stdout
        label = " ".join(version.split()[:3]) + " in TCP mode (mode tcp, 1 process)"
        argv = [HAPROXY, "-db", "-f", str(cfg)]
    else:
        why = "requested" if kind != "haproxy" else "haproxy not installed"
        label = f"bench/_tcp_relay.py: asyncio streams on uvloop, zero parse ({why})"
        argv = [sys.executable, str(TCP_RELAY), str(port), str(sim.port)]
    relay = servers.start("relay", argv, _clean_env(), port)
    relay.base = SIM_BASE
    wait_ready(relay, "/health", 20)
    print(f"relay: {label}", file=sys.stderr)
    return relay, label


LITELLM_CONFIG = """\
model_list:
  - model_name: claude-opus-4-8
    litellm_params:
      model: openai/glm-4.7
      api_base: {api_base}
      api_key: bench-key
litellm_settings:
  drop_params: true
  num_retries: 0
  request_timeout: 60
  telemetry: false
"""


def start_litellm(servers: Servers, sim: Server) -> Server:
    port = _free_port()
    cfg = servers.tmp / "litellm.yaml"
    cfg.write_text(LITELLM_CONFIG.format(api_base=f"{sim.url}{SIM_BASE}"))
    env = _clean_env()
    env.update(
        LITELLM_MASTER_KEY=LITELLM_KEY,
        LITELLM_LOG="ERROR",
        LITELLM_TELEMETRY="False",
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # no download of the model cost map
        # /v1/messages on an openai/ model would otherwise call {api_base}/responses,
        # which GLM (and the simulator) do not have.
        LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES="true",
    )
    argv = [str(LITELLM_BIN), "--config", str(cfg), "--host", HOST, "--port", str(port)]
    argv += ["--num_workers", "1"]
    server = servers.start("litellm", argv, env, port)
    wait_ready(server, "/health/liveliness", 120)
    return server


# --- clients -------------------------------------------------------------------------------


@dataclass
class Path_:
    """One way of asking for an answer: a server, a URL and a body."""

    name: str
    server: Server
    url: str
    body: bytes
    headers: dict[str, str]


DOOR_PATHS = {
    "glmbridge_chat": "/v1/chat/completions",
    "glmbridge_responses": "/v1/responses",
    "glmbridge_gemini": "/v1beta/models/glm-4.7:streamGenerateContent?alt=sse",
}


def make_path(name: str, server: Server, body: bytes, *, direct: bool) -> Path_:
    if name in DOOR_PATHS:
        headers = {"authorization": "Bearer bench-key", "content-type": "application/json",
                   "accept": "text/event-stream"}  # fmt: skip
        return Path_(name, server, f"{server.url}{DOOR_PATHS[name]}", body, headers)
    if direct and name in ("direct_anthropic", "relay_anthropic"):
        url = f"{server.url}{SIM_ANTHROPIC}"
        headers = {  # what glmbridge's Anthropic upstream codec sends
            "x-api-key": "bench-key",
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
            "accept": "text/event-stream",
        }
    elif direct:
        url = f"{server.url}{SIM_BASE}/chat/completions"
        headers = {
            "authorization": "Bearer bench-key",
            "content-type": "application/json",
            "accept": "text/event-stream",
        }
    else:
        url = f"{server.url}/v1/messages"
        key = LITELLM_KEY if server.name == "litellm" else "bench-key"
        headers = {
            "authorization": f"Bearer {key}",
            "content-type": "application/json",
            "anthropic-version": "2023-06-01",
            "accept": "application/json",
        }
    return Path_(name, server, url, body, headers)


def answer_text(raw: bytes, *, direct: bool) -> str:
    """The text answer of a streamed body (chat chunks, Anthropic or Responses events)."""
    out: list[str] = []
    for line in raw.split(b"\n"):
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        event = json.loads(line[6:])
        if "choices" in event:
            if event["choices"]:
                out.append(event["choices"][0]["delta"].get("content") or "")
        elif event.get("type") == "response.output_text.delta":
            out.append(event["delta"])
        elif "candidates" in event:
            parts = event["candidates"][0]["content"]["parts"]
            out.extend(p.get("text", "") for p in parts if not p.get("thought"))
        elif event.get("type") == "content_block_delta" and event["delta"]["type"] == "text_delta":
            out.append(event["delta"]["text"])
    return "".join(out)


def fetch(client: httpx2.Client, p: Path_) -> bytes:
    with client.stream("POST", p.url, content=p.body, headers=p.headers) as r:
        raw = r.read()
        if r.status_code != 200:
            raise RuntimeError(f"{p.name}: HTTP {r.status_code}: {raw[:500]!r}")
        return raw


def one_request(client: httpx2.Client, p: Path_) -> float:
    """Seconds from sending the request to the last byte of the streamed body."""
    t0 = time.perf_counter()
    with client.stream("POST", p.url, content=p.body, headers=p.headers) as r:
        for _ in r.iter_raw():
            pass
        status = r.status_code
    t1 = time.perf_counter()
    if status != 200:
        raise RuntimeError(f"{p.name}: HTTP {status}")
    return t1 - t0


def _cpu(servers: list[Server]) -> dict[str, float]:
    return {s.name: s.cpu_seconds() for s in servers}


def sequential(
    paths: list[Path_], n: int, warm: int, servers: list[Server], limits: dict[str, int]
) -> dict[str, Any]:
    """n requests per path (``limits`` overrides n per path), interleaved request by request."""
    times: dict[str, list[float]] = {p.name: [] for p in paths}
    cpu: dict[str, dict[str, float]] = {p.name: {s.name: 0.0 for s in servers} for p in paths}
    with httpx2.Client(trust_env=False, timeout=60.0) as client:
        for _ in range(warm):
            for p in paths:
                one_request(client, p)
        for i in range(max([n, *limits.values()])):
            # rotate the order so no path always runs right after another one
            for p in paths[i % len(paths) :] + paths[: i % len(paths)]:
                if i >= limits.get(p.name, n):
                    continue
                before = _cpu(servers)
                times[p.name].append(one_request(client, p))
                after = _cpu(servers)
                for s in servers:
                    cpu[p.name][s.name] += after[s.name] - before[s.name]
    out: dict[str, Any] = {}
    by_name = {s.name: s for s in servers}
    for name, ts in times.items():
        ms = sorted(t * 1000 for t in ts)
        # A proxy serves only its own path, so its CPU in *every* timed window counts: work it
        # does after the client has the last byte (since 2026-12-01 the relay reads the
        # upstream's epilogue then, to keep the connection reusable) falls in the next window,
        # usually another path's. Not for the direct paths (the simulator serves every path).
        server = next((p.server for p in paths if p.name == name), None)
        proxy_cpu = None
        if server is not None and server.name == name and server.name in by_name:
            proxy_cpu = sum(c[name] for c in cpu.values()) * 1000 / len(ms)
        out[name] = {
            "n": len(ms),
            "p50_ms": statistics.median(ms),
            "p95_ms": ms[min(len(ms) - 1, int(round(0.95 * len(ms))) - 1)],
            # nearest rank; with the 30 (b) requests of a full run this is the maximum
            "p99_ms": ms[min(len(ms) - 1, int(round(0.99 * len(ms))) - 1)],
            "mean_ms": statistics.fmean(ms),
            "min_ms": ms[0],
            "cpu_ms_per_request": {k: v * 1000 / len(ms) for k, v in cpu[name].items()},
            "proxy_cpu_ms_per_request_all_windows": proxy_cpu,
        }
    return out


async def _concurrent_run(p: Path_, n: int, conc: int) -> float:
    limits = httpx2.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx2.AsyncClient(trust_env=False, timeout=120.0, limits=limits) as client:
        remaining = n

        async def worker(count: bool) -> None:
            nonlocal remaining
            while not count or remaining > 0:
                if count:
                    remaining -= 1
                async with client.stream("POST", p.url, content=p.body, headers=p.headers) as r:
                    body = [chunk async for chunk in r.aiter_raw()]
                    if r.status_code != 200:
                        text = b"".join(body)[:400].decode(errors="replace")
                        log = p.server.log.read_text(errors="replace")[-1500:]
                        raise RuntimeError(f"{p.name}: HTTP {r.status_code}: {text}\n{log}")
                if not count:
                    return

        await asyncio.gather(*(worker(False) for _ in range(conc)))  # open the connections
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(True) for _ in range(conc)))
        return time.perf_counter() - t0


def concurrent(
    paths: list[Path_],
    n: int,
    rounds: int,
    servers: list[Server],
    limits: dict[str, tuple[int, int]],
) -> dict[str, Any]:
    """Requests/s with CONCURRENCY clients; rounds alternate the order of the paths.

    ``limits`` maps a path name to its own (requests, rounds).
    """
    counts = {p.name: limits.get(p.name, (n, rounds)) for p in paths}
    rps: dict[str, list[float]] = {p.name: [] for p in paths}
    cpu: dict[str, dict[str, float]] = {p.name: {s.name: 0.0 for s in servers} for p in paths}
    client_cpu: dict[str, float] = {p.name: 0.0 for p in paths}
    for r in range(rounds):
        for p in paths if r % 2 == 0 else paths[::-1]:
            pn, prounds = counts[p.name]
            if r >= prounds:
                continue
            before, c0 = _cpu(servers), time.process_time()
            elapsed = asyncio.run(_concurrent_run(p, pn, CONCURRENCY))
            after, c1 = _cpu(servers), time.process_time()
            rps[p.name].append(pn / elapsed)
            client_cpu[p.name] += c1 - c0
            for s in servers:
                cpu[p.name][s.name] += after[s.name] - before[s.name]
    out: dict[str, Any] = {}
    for name, v in rps.items():
        total = counts[name][0] * counts[name][1]
        out[name] = {
            "requests": total,
            "concurrency": CONCURRENCY,
            "rps": statistics.fmean(v),
            "rps_rounds": v,
            "cpu_ms_per_request": {k: c * 1000 / total for k, c in cpu[name].items()},
            "client_cpu_ms_per_request": client_cpu[name] * 1000 / total,
        }
    return out


# --- report --------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def evaluate(res: dict[str, Any], bridges: list[str]) -> dict[str, Any]:
    """Each proxy against the direct path of its own upstream (``REFERENCE``)."""
    a, b = res["a"]["sequential"], res["b"]["sequential"]
    ac, bc = res["a"]["concurrent"], res["b"]["concurrent"]
    out: dict[str, Any] = {}
    for name in bridges:
        ref = REFERENCE.get(name, "direct")
        added_a = a[name]["p50_ms"] - a[ref]["p50_ms"]
        per_chunk = (b[name]["p50_ms"] - b[ref]["p50_ms"]) * 1000 / CHUNKS
        ra = ac[name]["rps"] / ac[ref]["rps"]
        rb = bc[name]["rps"] / bc[ref]["rps"]
        rel = RELAY_REFERENCE.get(name, "relay")
        beyond_a = a[name]["p50_ms"] - a[rel]["p50_ms"]
        beyond_b = b[name]["p50_ms"] - b[rel]["p50_ms"]
        rel_ra = ac[name]["rps"] / ac[rel]["rps"]
        rel_rb = bc[name]["rps"] / bc[rel]["rps"]
        out[name] = {
            "relay": rel,
            "a_p50_beyond_relay_ms": beyond_a,
            "a_min_beyond_relay_ms": a[name]["min_ms"] - a[rel]["min_ms"],
            "a_p50_ratio_to_relay": a[name]["p50_ms"] / a[rel]["p50_ms"],
            "b_p50_beyond_relay_ms": beyond_b,
            "b_min_beyond_relay_ms": b[name]["min_ms"] - b[rel]["min_ms"],
            "b_p50_ratio_to_relay": b[name]["p50_ms"] / b[rel]["p50_ms"],
            "b_beyond_relay_per_chunk_us": beyond_b * 1000 / CHUNKS,
            "a_rps_ratio_to_relay": rel_ra,
            "b_rps_ratio_to_relay": rel_rb,
            "verdicts_issue22": {
                "a_p50_beyond_relay": _verdict(beyond_a <= TARGET_RELAY_A_MS),
                "b_p50_beyond_relay": _verdict(beyond_b <= TARGET_RELAY_B_MS),
                "a_throughput_vs_relay": _verdict(rel_ra >= TARGET_RELAY_RPS),
            },
            "compared_with": ref,
            "a_p50_added_ms": added_a,
            "a_p95_added_ms": a[name]["p95_ms"] - a[ref]["p95_ms"],
            "a_p99_added_ms": a[name]["p99_ms"] - a[ref]["p99_ms"],
            "b_added_per_chunk_us": per_chunk,
            "b_p95_added_per_chunk_us": (b[name]["p95_ms"] - b[ref]["p95_ms"]) * 1000 / CHUNKS,
            "a_rps_ratio": ra,
            "b_rps_ratio": rb,
            "verdicts": {
                "a_p50_added": _verdict(added_a <= TARGET_A_MS),
                "b_per_chunk": _verdict(per_chunk <= TARGET_B_US),
                "a_throughput": _verdict(ra >= TARGET_RPS),
                "b_throughput": _verdict(rb >= TARGET_RPS),
            },
            "verdicts_issue3_throughput_50pct": {
                "a_throughput": _verdict(ra >= TARGET_RPS_ISSUE3),
                "b_throughput": _verdict(rb >= TARGET_RPS_ISSUE3),
            },
        }
    return out


def table(res: dict[str, Any], ev: dict[str, Any], cols: list[str]) -> str:
    """One column per path (direct paths show "—" in the comparison rows)."""
    a, b = res["a"]["sequential"], res["b"]["sequential"]
    ac, bc = res["a"]["concurrent"], res["b"]["concurrent"]
    lines = [
        "| metric | " + " | ".join(cols) + " | target |",
        "|---|" + "--:|" * len(cols) + "---|",
    ]

    def row(label: str, cells: list[str], target: str) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target} |")

    def vs(fmt: Any) -> list[str]:
        return ["—" if c in DIRECTS else fmt(c) for c in cols]

    row("(a) 76 KB stream, p50 ms", [f"{a[c]['p50_ms']:.2f}" for c in cols], "")
    row("(a) p95 ms", [f"{a[c]['p95_ms']:.2f}" for c in cols], "")
    row("(a) p99 ms", [f"{a[c]['p99_ms']:.2f}" for c in cols], "")
    row(
        "(a) p50 added",
        vs(lambda c: f"+{ev[c]['a_p50_added_ms']:.2f} ms {ev[c]['verdicts']['a_p50_added']}"),
        f"≤ {TARGET_A_MS:g} ms",
    )
    row("(a) min ms", [f"{a[c]['min_ms']:.2f}" for c in cols], "")
    row(
        "**(a) p50 beyond the relay** (ratio)",
        vs(
            lambda c: (
                f"+{ev[c]['a_p50_beyond_relay_ms']:.2f} ms (×{ev[c]['a_p50_ratio_to_relay']:.2f})"
                f" {ev[c]['verdicts_issue22']['a_p50_beyond_relay']}"
            )
        ),
        f"≤ {TARGET_RELAY_A_MS:g} ms",
    )
    row("(b) 2000-chunk stream, p50 ms", [f"{b[c]['p50_ms']:.1f}" for c in cols], "")
    row("(b) min ms", [f"{b[c]['min_ms']:.1f}" for c in cols], "")
    row(
        "**(b) p50 beyond the relay** (ratio)",
        vs(
            lambda c: (
                f"+{ev[c]['b_p50_beyond_relay_ms']:.1f} ms (×{ev[c]['b_p50_ratio_to_relay']:.2f})"
                f" {ev[c]['verdicts_issue22']['b_p50_beyond_relay']}"
            )
        ),
        f"≤ {TARGET_RELAY_B_MS:g} ms",
    )
    row("(b) p95 ms", [f"{b[c]['p95_ms']:.1f}" for c in cols], "")
    row("(b) p99 ms", [f"{b[c]['p99_ms']:.1f}" for c in cols], "")
    row(
        "(b) added per chunk (p50)",
        vs(lambda c: f"{ev[c]['b_added_per_chunk_us']:.1f} µs {ev[c]['verdicts']['b_per_chunk']}"),
        f"≤ {TARGET_B_US:g} µs",
    )
    row(
        f"(a) req/s @{CONCURRENCY}",
        [
            f"{ac[c]['rps']:.0f}"
            + (
                ""
                if c in DIRECTS
                else f" ({ev[c]['a_rps_ratio']:.0%}) {ev[c]['verdicts']['a_throughput']}"
            )
            for c in cols
        ],
        f"≥ {TARGET_RPS:.0%} of direct",
    )
    row(
        f"(b) req/s @{CONCURRENCY}",
        [
            f"{bc[c]['rps']:.1f}"
            + (
                ""
                if c in DIRECTS
                else f" ({ev[c]['b_rps_ratio']:.0%}) {ev[c]['verdicts']['b_throughput']}"
            )
            for c in cols
        ],
        f"≥ {TARGET_RPS:.0%} of direct",
    )
    row(
        f"**(a) req/s @{CONCURRENCY} vs the relay**",
        vs(
            lambda c: (
                f"{ev[c]['a_rps_ratio_to_relay']:.0%} "
                f"{ev[c]['verdicts_issue22']['a_throughput_vs_relay']}"
            )
        ),
        f"≥ {TARGET_RELAY_RPS:.0%} of the relay",
    )
    row(
        f"(b) req/s @{CONCURRENCY} vs the relay",
        vs(lambda c: f"{ev[c]['b_rps_ratio_to_relay']:.0%}"),
        "",
    )
    for wl, seq in (("a", a), ("b", b)):
        cells = []
        for c in cols:
            cpu = seq[c]["cpu_ms_per_request"]  # all servers in the JSON; here the path's own
            parts = [f"{k} {v:.2f}" for k, v in cpu.items() if k in ("simulator", c)]
            cells.append(", ".join(parts))
        row(f"({wl}) server CPU ms/request (sequential)", cells, "")
        row(
            f"({wl}) proxy CPU ms/request, all windows",
            [
                "—"
                if seq[c].get("proxy_cpu_ms_per_request_all_windows") is None
                else f"{seq[c]['proxy_cpu_ms_per_request_all_windows']:.2f}"
                for c in cols
            ],
            "",
        )
    return "\n".join(lines)


def _litellm_version() -> str:
    for site in LITELLM_BIN.parent.parent.glob("lib/python*/site-packages/litellm-*.dist-info"):
        return site.name.split("-")[1]
    return "?"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for pkg in (
        "glmbridge",
        "uvicorn",
        "starlette",
        "httpx2",
        "anyio",
        "msgspec",
        "h11",
        "uvloop",
        "httptools",
    ):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


# --- main ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    mode = "quick" if args.quick else "full"
    sz = SIZES[mode]
    only = set(args.only.split(",")) if args.only else None

    def wanted(name: str) -> bool:
        """Whether a path (or the server only it uses) is in this run (``--only``)."""
        if name in ("direct_anthropic", "relay_anthropic", "glmbridge_anthropic_ref"):
            name = "glmbridge_anthropic"
        always = ("direct", "relay", "glmbridge", "glmbridge_ref")
        return only is None or name in only or name in always

    started = time.monotonic()
    load_before = os.getloadavg()
    a_body, a_glm, a_msg = workload_a()
    b_body, b_glm, b_msg = workload_b()
    print(
        f"# glmbridge-server overhead ({mode}); (a) {len(a_body):,} B Anthropic / "
        f"{len(a_glm):,} B GLM chat / {len(a_msg):,} B Anthropic-endpoint body; "
        f"(b) {CHUNKS}-chunk stream",
        file=sys.stderr,
    )
    tmp = Path(tempfile.mkdtemp(prefix="glmbridge-bench-"))
    servers = Servers(tmp)
    try:
        sim = start_simulator(servers, args.simulator_tree)
        relay, relay_label = start_relay(servers, sim, args.relay)
        bridge = start_glmbridge(servers, "glmbridge", sim, "warning")
        chat_bridges = [bridge]
        if wanted("glmbridge_info"):
            chat_bridges.append(start_glmbridge(servers, "glmbridge_info", sim, "info"))
        if args.compare_tree is not None:
            chat_bridges.append(
                start_glmbridge(servers, "glmbridge_ref", sim, "warning", tree=args.compare_tree)
            )
        anth_bridges = []
        if wanted("glmbridge_anthropic"):
            trees = [("glmbridge_anthropic", None)]
            if args.compare_tree is not None:
                trees.append(("glmbridge_anthropic_ref", args.compare_tree))
            for name, tree in trees:
                anth_bridges.append(
                    start_glmbridge(
                        servers,
                        name,
                        sim,
                        "warning",
                        upstream="anthropic",
                        tree=tree,
                        extra_env=ANTHROPIC_BRIDGE_ENV,
                    )  # fmt: skip
                )
        litellm = None
        litellm_note = None
        if args.litellm:
            if LITELLM_BIN.exists():
                try:
                    litellm = start_litellm(servers, sim)
                except RuntimeError as exc:
                    litellm_note = f"did not start: {exc}"[:500]
                    print(f"litellm: not measured ({litellm_note})", file=sys.stderr)
            else:
                litellm_note = f"{LITELLM_BIN} not found"
                print(f"litellm: not measured ({litellm_note})", file=sys.stderr)
        bridges = [*chat_bridges, *anth_bridges]
        bridges += [litellm] if litellm else []

        def paths_for(anth: bytes, glm: bytes, msg: bytes) -> list[Path_]:
            """direct, the chat-upstream bridges, direct_anthropic, glmbridge_anthropic,
            then LiteLLM (compared with direct)."""
            ps = [make_path("direct", sim, glm, direct=True)]
            ps.append(make_path("relay", relay, glm, direct=True))
            ps += [make_path(s.name, s, anth, direct=False) for s in chat_bridges]
            ps.append(make_path("glmbridge_chat", bridge, glm, direct=False))
            ps.append(make_path("glmbridge_responses", bridge, responses_body(glm), direct=False))
            ps.append(make_path("glmbridge_gemini", bridge, gemini_body(glm), direct=False))
            ps.append(make_path("direct_anthropic", sim, msg, direct=True))
            ps.append(make_path("relay_anthropic", relay, msg, direct=True))
            rest = [s for s in bridges if s not in chat_bridges]
            ps += [make_path(s.name, s, anth, direct=False) for s in rest]
            return [p for p in ps if wanted(p.name)]

        # Same answer on every path (and the stream really has CHUNKS content chunks).
        with httpx2.Client(trust_env=False, timeout=60.0) as client:
            for label, bodies in (("a", (a_body, a_glm, a_msg)), ("b", (b_body, b_glm, b_msg))):
                ps = paths_for(*bodies)
                ref = answer_text(fetch(client, ps[0]), direct=True)
                for p in ps[1:]:
                    try:
                        text = answer_text(fetch(client, p), direct=False)
                        if text != ref:
                            raise RuntimeError(f"answered {text[:80]!r}, direct {ref[:80]!r}")
                    except Exception as exc:
                        if p.name != "litellm":
                            raise RuntimeError(f"({label}) {p.name}: {exc}") from exc
                        litellm_note = f"({label}) failed: {exc}"[:300]
                        print(f"litellm: not measured: {litellm_note}", file=sys.stderr)
                        bridges.remove(p.server)
            pa, pb = paths_for(a_body, a_glm, a_msg), paths_for(b_body, b_glm, b_msg)
            raw = fetch(client, pb[0])
            n_content = raw.count(b'"content":"') - 2  # first delta and final chunk are empty
            if n_content != CHUNKS:
                raise RuntimeError(
                    f"(b) direct stream has {n_content} content chunks, not {CHUNKS}"
                )
            direct_anth = [p for p in pb if p.name == "direct_anthropic"]
            raw = fetch(client, direct_anth[0]) if direct_anth else b""
            n_content = raw.count(b'"type":"text_delta"')
            if direct_anth and n_content != CHUNKS:
                raise RuntimeError(
                    f"(b) direct_anthropic stream has {n_content} text deltas, not {CHUNKS}"
                )
        names = ["simulator", "relay", *(s.name for s in bridges)]
        measured = [sim, relay, *bridges]
        ll = SIZES_LITELLM[mode]
        lim_seq_a = {"litellm": ll["a_seq"]}
        lim_seq_b = {"litellm": ll["b_seq"]}
        lim_conc_a = {"litellm": (ll["a_conc"], ll["rounds"])}
        lim_conc_b = {"litellm": (ll["b_conc"], ll["rounds"])}
        print(
            f"servers up: {', '.join(f'{s.name}:{s.port}' for s in servers.all)}", file=sys.stderr
        )

        res: dict[str, Any] = {"a": {}, "b": {}}
        t = time.monotonic()
        res["a"]["sequential"] = sequential(pa, sz["a_seq"], sz["warm"], measured, lim_seq_a)
        print(f"(a) sequential done in {time.monotonic() - t:.1f} s", file=sys.stderr)
        t = time.monotonic()
        res["b"]["sequential"] = sequential(pb, sz["b_seq"], 2, measured, lim_seq_b)
        print(f"(b) sequential done in {time.monotonic() - t:.1f} s", file=sys.stderr)
        t = time.monotonic()
        res["a"]["concurrent"] = concurrent(pa, sz["a_conc"], sz["rounds"], measured, lim_conc_a)
        print(f"(a) concurrent done in {time.monotonic() - t:.1f} s", file=sys.stderr)
        t = time.monotonic()
        res["b"]["concurrent"] = concurrent(pb, sz["b_conc"], sz["rounds"], measured, lim_conc_b)
        print(f"(b) concurrent done in {time.monotonic() - t:.1f} s", file=sys.stderr)
        for s in servers.all:
            if s.proc.poll() is not None:
                raise RuntimeError(f"{s.name} exited during the run: {s.log.read_text()[-2000:]}")
        info_lines = sum(
            1
            for b in chat_bridges
            if b.name == "glmbridge_info"
            for line in b.log.read_text(errors="replace").splitlines()
            if "POST /v1/messages" in line
        )
    finally:
        servers.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    cols = [p.name for p in pa]
    bridge_names = [n for n in cols if n not in DIRECTS]
    ev = evaluate(res, bridge_names)
    md = table(res, ev, cols)
    print(md)
    out = {
        "benchmark": "glmbridge-server overhead (issue 3), both upstreams",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "machine": {
            **machine(),
            # other work on the machine shows here (the benchmark itself adds about 2)
            "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
            "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        },
        "method": {
            "transport": "HTTP/1.1 over 127.0.0.1 sockets, keep-alive, one process per server",
            "servers": {
                "simulator": "bench/_sim_runner.py: uvicorn, access log off"
                + (f", from the source tree {args.simulator_tree}" if args.simulator_tree else ""),
                "relay": relay_label,
                "relay_anthropic": f"the same relay, to {SIM_ANTHROPIC}",
                "glmbridge": "glmbridge-server --log-level warning, GLMBRIDGE_MAX_RETRIES=0",
                "glmbridge_info": "glmbridge-server --log-level info (default), log to a file",
                **(
                    {
                        "glmbridge_ref": "glmbridge-server --log-level warning from the source "
                        f"tree {args.compare_tree} (PYTHONPATH), chat upstream"
                    }
                    if args.compare_tree is not None
                    else {}
                ),
                "direct_anthropic": f"the simulator's Anthropic endpoint {SIM_ANTHROPIC}",
                "glmbridge_anthropic": "glmbridge-server --log-level warning, upstream = the "
                "bench-only profile sim-anthropic (bench/_bridge_runner.py: protocol anthropic, "
                "x-api-key, base URL <simulator>/api/anthropic), GLMBRIDGE_PLAN=unlimited (the "
                "chat bridge's key slots)",
                **(
                    {
                        "glmbridge_anthropic_ref": "the same from the source tree "
                        f"{args.compare_tree} (PYTHONPATH)"
                    }
                    if args.compare_tree is not None
                    else {}
                ),
                **(
                    {
                        "litellm": f"litellm {_litellm_version()} proxy, /v1/messages, "
                        "openai/ provider, 1 worker, "
                        "LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES=true"
                    }
                    if "litellm" in names
                    else {}
                ),
            },
            "latency": "send → last byte of the streamed body, sequential, paths interleaved",
            "throughput": f"{CONCURRENCY} concurrent httpx2.AsyncClient streams, fixed request "
            f"count, mean of {sz['rounds']} round(s) in alternating path order",
            "sizes": sz,
            **({"sizes_litellm": SIZES_LITELLM[mode]} if "litellm" in names else {}),
            "workload_a": {
                "fixture": "tests/fixtures/claude_code/request_main.json",
                "anthropic_body_bytes": len(a_body),
                "glm_body_bytes": len(a_glm),
                "anthropic_endpoint_body_bytes": len(a_msg),
                "answer": f"{A_DIRECTIVE} (fixed {len(A_ANSWER)}-character text, no reasoning)",
            },
            "workload_b": {"chunks": CHUNKS, "answer": f"[[sim:long:{CHUNKS}]]"},
            "info_log_lines": info_lines,
            "litellm": None if not args.litellm else (litellm_note or "measured"),
        },
        "targets": {
            "a_p50_added_ms": TARGET_A_MS,
            "b_added_per_chunk_us": TARGET_B_US,
            "throughput_ratio": TARGET_RPS,
            "throughput_ratio_issue3": TARGET_RPS_ISSUE3,
        },
        "results": res,
        "evaluation": ev,
        "table_markdown": md,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    if not args.no_write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"\nwrote {args.output} ({out['elapsed_s']} s)", file=sys.stderr)
    ok = all(
        v == "PASS"
        for name in ("glmbridge", "glmbridge_anthropic")
        if name in ev
        for v in ev[name]["verdicts"].values()
    )
    return 0 if ok else 1


PROFILE_RUNNER = """\
import cProfile, signal, sys
from glmbridge_server.cli import main
out = sys.argv.pop(1)
prof = cProfile.Profile()
# Profiling starts on SIGUSR1, after the start-up and the warm-up requests.
signal.signal(signal.SIGUSR1, lambda *_: prof.enable())
try:
    main()
except (SystemExit, KeyboardInterrupt):
    pass
finally:
    prof.disable()
    prof.dump_stats(out)
"""


def profile(args: argparse.Namespace) -> int:
    """One glmbridge-server under cProfile: (a) and (b) requests, then its top functions."""
    import pstats

    n_a, n_b = (40, 4) if args.quick else (300, 20)
    a_body, _, _ = workload_a()
    b_body, _, _ = workload_b()
    tmp = Path(tempfile.mkdtemp(prefix="glmbridge-profile-"))
    servers = Servers(tmp)
    out = tmp / "server.prof"
    runner = tmp / "profiled_server.py"
    runner.write_text(PROFILE_RUNNER)
    try:
        sim = start_simulator(servers)
        port = _free_port()
        env = _clean_env()
        env.update(ZAI_API_KEY="bench-key", GLMBRIDGE_MAX_RETRIES="0",
                   GLMBRIDGE_UPSTREAM=f"{sim.url}{SIM_BASE}", PYTHONPATH=str(ROOT))  # fmt: skip
        argv = [sys.executable, str(runner), str(out), "--port", str(port), "--log-level",
                "warning"]  # fmt: skip
        server = servers.start("glmbridge", argv, env, port)
        wait_ready(server, "/health", 30)
        with httpx2.Client(trust_env=False, timeout=60.0) as client:
            for body in (a_body, b_body) * 5:  # warm-up, not profiled
                one_request(client, make_path("glmbridge", server, body, direct=False))
            server.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.2)
            for label, body, n in (("a", a_body, n_a), ("b", b_body, n_b)):
                if label not in args.profile_workloads:
                    continue
                p = make_path("glmbridge", server, body, direct=False)
                cpu0 = server.cpu_seconds()
                for _ in range(n):
                    one_request(client, p)
                cpu = (server.cpu_seconds() - cpu0) * 1000 / n
                print(f"({label}) {n} requests, {cpu:.2f} ms server CPU each (profiled)")
        server.proc.terminate()
        server.proc.wait(timeout=30)
    finally:
        servers.stop()
    stats = pstats.Stats(str(out))
    stats.strip_dirs().sort_stats("tottime").print_stats(args.profile_top)
    stats.sort_stats("cumulative").print_stats(args.profile_top)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (< 40 s), noisier")
    parser.add_argument("--litellm", action="store_true", help="also measure a LiteLLM proxy")
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    parser.add_argument(
        "--compare-tree",
        type=Path,
        metavar="DIR",
        help="also run glmbridge-server from this source tree (e.g. a git worktree of an "
        "earlier commit) in front of the chat API, as column glmbridge_ref (and in front of "
        "the Anthropic endpoint as glmbridge_anthropic_ref, when that path runs)",
    )
    parser.add_argument(
        "--simulator-tree",
        type=Path,
        metavar="DIR",
        help="run the simulator (the shared fake upstream) from this source tree, e.g. to "
        "compare with figures taken with an earlier simulator",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON result file")
    parser.add_argument(
        "--relay",
        choices=("haproxy", "python"),
        default="haproxy",
        help="the zero-parse floor: HAProxy in TCP mode (default; falls back to the asyncio "
        "relay when haproxy is not installed) or bench/_tcp_relay.py",
    )
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated paths to run besides direct, relay and glmbridge "
        "(e.g. glmbridge_ref,glmbridge_anthropic,relay_anthropic,direct_anthropic)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the benchmark: run one glmbridge-server under cProfile, send it "
        "(a) and (b) requests, print where its time goes",
    )
    parser.add_argument("--profile-top", type=int, default=30, help="functions shown")
    parser.add_argument(
        "--profile-workloads", default="ab", help="profile (a), (b) or both (default: ab)"
    )
    args = parser.parse_args()
    if args.profile:
        return profile(args)
    limit = 120 if args.quick else 420
    if args.litellm:
        limit += 240

    def _timeout(signum: int, frame: Any) -> None:
        raise TimeoutError(f"benchmark exceeded {limit} s")

    def _terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGALRM, _timeout)
    signal.signal(signal.SIGTERM, _terminate)
    signal.alarm(limit)  # bounded run time; the finally block still stops the servers
    try:
        return run(args)
    finally:
        signal.alarm(0)


if __name__ == "__main__":
    sys.exit(main())
