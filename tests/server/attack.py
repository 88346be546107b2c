"""An attack client and an upstream fault mix: the hostile half of the hardening suite.

:func:`run_campaign` drives a running bridge, in front of a :class:`~tests.server.faults.
FaultServer`, in three phases, from a pool of threads, while a probe times ``/health``:

``hostile``
    The upstream is healthy. Every attack of :data:`ATTACKS` (slow and silent connections,
    oversized and malformed headers, hostile ``Host`` values, malformed and bomb bodies,
    forged model names, disconnects) runs next to valid requests on all four doors. A
    hostile request must get a 4xx or be closed; a valid one must get a 200. Any 5xx here is
    the server's own fault.
``faults``
    The upstream cycles through :data:`FAULT_PLANS` (resets mid-stream, HTML pages, 502s,
    in-band errors that echo the API key, garbage, silence). Statuses may be 5xx now, but
    every error is the door's native shape, every stream passes its grammar validator, and
    nothing the client receives contains a secret.
``defects``
    Once per campaign: :data:`DEFECTS` (:mod:`tests.server.attack_defects`), each attack that
    once got through (issue 24: cancellations under Redis, hostile HTML, quota answers, usage
    rows, raced video paths, Redis fairness, retry-after, wrapped IPv6, ``/status`` after
    ``POST /config``), each against its own small target; any ``problem`` is a defect back.

:class:`Report` counts requests, faults, statuses and every violation; its
:meth:`Report.summary` is what ``tests/soak.py`` prints. All traffic is loopback and every
loop is bounded by ``rounds``.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx2

from glmbridge import validate_anthropic_stream
from glmbridge.protocols.gemini.grammar import validate_gemini_stream
from glmbridge.protocols.openai.grammar import validate_chat_stream
from glmbridge.protocols.responses.grammar import validate_responses_stream
from tests.server.attack_defects import DEFECTS
from tests.server.faults import (
    DONE,
    GARBAGE,
    FaultServer,
    Pause,
    Plan,
    Raw,
    RecordedRequest,
    answer,
    glm_chunk,
    glm_completion,
    glm_error,
    json_plan,
    silent,
    sse,
    stream_plan,
)

__all__ = [
    "ATTACKS",
    "DEFECTS",
    "FAULT_PLANS",
    "Outcome",
    "Report",
    "Target",
    "fault_plans",
    "read_until_closed",
    "run_campaign",
]


@dataclass(frozen=True)
class Target:
    """The bridge under attack and the secrets that must never come back."""

    url: str
    token: str
    key: str

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)

    def headers(self, **extra: str) -> dict[str, str]:
        return {"x-api-key": self.token, "content-type": "application/json", **extra}


@dataclass
class Outcome:
    """What one request or connection got.

    ``expect`` is ``hostile`` (a 4xx, 405, 413 or a close; never a 5xx), ``valid`` (a 200
    when the upstream is healthy) or ``closed`` (the server must close the connection).
    """

    name: str
    expect: str
    status: int | None  # None: closed without a status line
    elapsed: float
    body: bytes = b""
    headers: str = ""
    problem: str | None = None


# --- raw-socket helpers -----------------------------------------------------------------------


def _status_of(data: bytes) -> int | None:
    if data.startswith(b"HTTP/1.1 ") and len(data) >= 12 and data[9:12].isdigit():
        return int(data[9:12])
    return None


def read_until_closed(sock: socket.socket, limit: float = 5.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes (or ``limit`` passes); and how long."""
    started = time.monotonic()
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data, time.monotonic() - started


def _raw(target: Target, data: bytes, *, wait: float = 5.0) -> tuple[bytes, float]:
    """Send ``data`` on a fresh connection; everything received until close (or ``wait``)."""
    started = time.monotonic()
    with socket.create_connection(target.address, timeout=wait) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        received, _ = read_until_closed(sock, wait)
    return received, time.monotonic() - started


def _drip(target: Target, head: bytes, drip: bytes, every: float, limit: float) -> Outcome:
    """Send ``head``, then ``drip`` a byte at a time; how long until the server hung up."""
    started = time.monotonic()
    with socket.create_connection(target.address, timeout=limit) as sock:
        sock.sendall(head)
        sock.settimeout(every)
        received = b""
        for byte in drip:
            if time.monotonic() - started > limit:
                break
            try:
                sock.sendall(bytes([byte]))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            except TimeoutError:
                continue
            except OSError:
                break
    return Outcome("drip", "closed", _status_of(received), time.monotonic() - started, received)


def _post(
    target: Target, path: str, body: bytes | dict[str, Any], *, headers: dict[str, str] | None
    = None, stream: bool = False, timeout: float = 15.0,
) -> tuple[int, bytes, str, float]:  # fmt: skip
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    started = time.monotonic()
    with (
        httpx2.Client(timeout=timeout) as http,
        http.stream(
            "POST", target.url + path, content=data, headers=headers or target.headers()
        ) as response,
    ):
        raw = response.read()
        head = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        return response.status_code, raw, head, time.monotonic() - started


# --- hostile requests -------------------------------------------------------------------------


@functools.cache
def _bomb() -> bytes:
    """64 MiB of zeros, gzipped to about 64 KiB."""
    return gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)


def _bodies(target: Target) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Malformed bodies for /v1/messages, with their headers."""
    h = target.headers()
    bomb = _bomb()
    return {
        "deep-json": (b"[" * 100_000, h),
        "deep-object": (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, h),
        "float-overflow": (b'{"model":"glm-4.7","max_tokens":1e999,"messages":[]}', h),
        "int-overflow": (b'{"model":"glm-4.7","max_tokens":1' + b"0" * 400 + b',"messages":[]}', h),
        "invalid-utf8": (b'{"model":"\xff\xfe\xc3\x28","max_tokens":5,"messages":[]}', h),
        "not-json": (b"hello, world", h),
        "empty": (b"", h),
        "null": (b"null", h),
        "wrong-types": (b'{"model":7,"max_tokens":"ten","messages":{"role":"x"}}', h),
        "alien-role": (
            b'{"model":"glm-4.7","max_tokens":5,"messages":[{"role":"alien","content":"x"}]}',
            h,
        ),
        "nul-bytes": (
            b'{"model":"glm\\u0000","max_tokens":5,"messages":[{"role":"user",'
            b'"content":"\\u0000"}]}',
            h,
        ),  # fmt: skip
        "gzip-bomb": (bomb, {**h, "content-encoding": "gzip"}),
        "unknown-encoding": (b"{}", {**h, "content-encoding": "br-compressed-foo"}),
        "bad-token": (b"{}", {**h, "x-api-key": "guess"}),
        "no-token": (b"{}", {"content-type": "application/json"}),
    }


def _hostile_bodies(target: Target) -> list[Outcome]:
    out = []
    for name, (body, headers) in _bodies(target).items():
        status, raw, head, took = _post(target, "/v1/messages", body, headers=headers)
        out.append(Outcome(f"body:{name}", "hostile", status, took, raw, head))
    return out


def _hostile_doors(target: Target) -> list[Outcome]:
    out = []
    paths = ("/v1/chat/completions", "/v1/responses", "/v1beta/models/glm-4.7:generateContent")
    wrong = b'{"messages":3,"input":3,"contents":3,"model":[]}'
    for path in paths:
        for name, body in (("not-json", b"{"), ("wrong-types", wrong)):
            status, raw, head, took = _post(target, path, body)
            out.append(Outcome(f"{path}:{name}", "hostile", status, took, raw, head))
    return out


def _forged_models(target: Target) -> list[Outcome]:
    out = []
    for model in ("glm-4.7\n2026-12-01 INFO forged line", "glm-\x1b[31mred", "glm-" + "x" * 5000):
        body = {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
        status, raw, head, took = _post(target, "/v1/messages", body)
        out.append(Outcome("forged-model", "any", status, took, raw, head))
    return out


def _hostile_protocol(target: Target) -> list[Outcome]:
    out = []
    requests = {
        "host-bracket": b"GET /v1/models HTTP/1.1\r\nHost: [::1]evil.com\r\n\r\n",
        "host-userinfo": b"GET /v1/models HTTP/1.1\r\nHost: localhost:1@evil.com\r\n\r\n",
        "host-duplicate": b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nHost: evil\r\n\r\n",
        "absolute-form": b"GET http://evil.com/v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "huge-header": b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: " + b"a" * (1 << 20),
        "garbage": GARBAGE,
        "bad-method": b"DELETE /v1/messages HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "half-body": (
            b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nx-api-key: "
            + target.token.encode()
            + b'\r\ncontent-length: 5000\r\n\r\n{"model"'
        ),  # fmt: skip
    }
    for name, data in requests.items():
        received, took = _raw(target, data, wait=4.0)
        expect = "closed" if name == "half-body" else "hostile"
        out.append(Outcome(f"raw:{name}", expect, _status_of(received), took, received))
    return out


def _slow(target: Target) -> list[Outcome]:
    head = b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nx-api-key: " + target.token.encode()
    slow_header = _drip(target, b"GET /health HTTP/1.1\r\n", b"X-Slow: " + b"s" * 200, 0.1, 6.0)
    slow_header.name = "slow-header"
    slow_body = _drip(target, head + b"\r\ncontent-length: 900\r\n\r\n", b" " * 900, 0.1, 6.0)
    slow_body.name = "slow-body"
    received, took = _raw(target, b"", wait=6.0)
    silent_conn = Outcome("silent", "closed", _status_of(received), took, received)
    return [slow_header, slow_body, silent_conn]


def _disconnect_mid_stream(target: Target) -> list[Outcome]:
    body = {"model": "glm-4.7", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    started = time.monotonic()
    with (
        httpx2.Client(timeout=10) as http,
        http.stream(
            "POST", target.url + "/v1/messages", json=body, headers=target.headers()
        ) as response,  # fmt: skip
    ):
        status = response.status_code
        for _ in response.iter_raw():
            break  # and leave
    return [Outcome("disconnect-mid-stream", "any", status, time.monotonic() - started)]


# --- valid requests on every door ---------------------------------------------------------------

_PROMPT = [{"role": "user", "content": "hi"}]
_DOORS: dict[str, tuple[str, dict[str, Any], str]] = {
    # name: (path, body, validator)
    "anthropic": (
        "/v1/messages",
        {"model": "glm-4.7", "max_tokens": 32, "messages": _PROMPT},
        "anthropic",
    ),  # fmt: skip
    "chat": ("/v1/chat/completions", {"model": "glm-4.7", "messages": _PROMPT}, "chat"),
    "responses": ("/v1/responses", {"model": "glm-4.7", "input": "hi"}, "responses"),
    "gemini": (
        "/v1beta/models/glm-4.7:{action}",
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        "gemini",
    ),  # fmt: skip
}


def _validate(kind: str, raw: bytes) -> None:
    if kind == "anthropic":
        validate_anthropic_stream(raw)
    elif kind == "chat":
        validate_chat_stream(raw)
    elif kind == "responses":
        validate_responses_stream(raw)
    else:
        validate_gemini_stream(raw)


def _native_error(kind: str, raw: bytes) -> bool:
    try:
        body = json.loads(raw)
    except ValueError:
        return False
    if kind == "anthropic":
        return body.get("type") == "error" and isinstance(body.get("error"), dict)
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and isinstance(error.get("message"), str)


def _valid(target: Target) -> list[Outcome]:
    out = []
    for door, (path, body, kind) in _DOORS.items():
        for stream in (False, True):
            if kind == "gemini":
                url = path.format(action="streamGenerateContent?alt=sse" if stream else
                                  "generateContent")  # fmt: skip
                payload = body
            else:
                url, payload = path, {**body, "stream": stream}
            status, raw, head, took = _post(target, url, payload, stream=stream)
            outcome = Outcome(f"{door}:{'stream' if stream else 'json'}", "valid", status,
                              took, raw, head)  # fmt: skip
            if status == 200 and stream:
                try:
                    _validate(kind, raw)
                except Exception as exc:
                    outcome.problem = f"grammar: {exc}"
            elif status != 200 and not _native_error(kind, raw):
                outcome.problem = f"not a native error body: {raw[:200]!r}"
            out.append(outcome)
    return out


#: Each attack: a name and a function of the target giving its outcomes.
ATTACKS: dict[str, Callable[[Target], list[Outcome]]] = {
    "bodies": _hostile_bodies,
    "doors": _hostile_doors,
    "models": _forged_models,
    "protocol": _hostile_protocol,
    "slow": _slow,
    "disconnect": _disconnect_mid_stream,
    "valid": _valid,
}


# --- upstream faults --------------------------------------------------------------------------


def fault_plans(key: str) -> list[Plan]:
    """The upstream's misbehaviours; several echo ``key`` the way gateways do."""
    html = (("content-type", "text/html"), ("connection", "close"))
    return [
        stream_plan(*answer("Hi")),
        json_plan(glm_completion("Hi")),
        stream_plan(*answer("Hi"), end="reset"),
        stream_plan(glm_chunk("Hel"), end="reset"),
        stream_plan(glm_chunk("Hel"), end="eof"),
        stream_plan(glm_chunk("Hel"), Pause(0.3), Raw(GARBAGE)),
        json_plan(b"<html>502 Bad Gateway</html>", status=502),
        json_plan(b"<html>504 Gateway Time-out</html>", status=504),
        Plan(headers=html, parts=(b"<html>log in, " + key.encode() + b"</html>",)),
        json_plan(glm_error("1000", f"bad key Bearer {key}")),
        json_plan(glm_error("1001", f"invalid api key {key}"), status=401),
        json_plan(glm_error("1302", f"too many requests for {key}"), status=429),
        stream_plan(sse(glm_error("1305", f"overloaded ({key})")), DONE),
        stream_plan(glm_chunk("Hi"), sse(glm_error("1234", f"network error {key}"))),
        silent(),
    ]


FAULT_PLANS = fault_plans("KEY")


def _healthy(request: RecordedRequest) -> Plan:
    """A well-behaved GLM: the answer in the form the request asked for."""
    try:
        streamed = bool(json.loads(request.body).get("stream"))
    except (ValueError, AttributeError):
        streamed = False
    return stream_plan(*answer("Hi")) if streamed else json_plan(glm_completion("Hi"))


# --- the campaign ------------------------------------------------------------------------------


@dataclass
class Report:
    """Counts and violations of a campaign."""

    requests: int = 0
    faults: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    server_5xx: list[Outcome] = field(default_factory=list)
    leaks: list[Outcome] = field(default_factory=list)
    problems: list[Outcome] = field(default_factory=list)
    slow: list[Outcome] = field(default_factory=list)
    health_worst: float = 0.0
    health_failures: int = 0
    errors: list[str] = field(default_factory=list)
    defect_seconds: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, outcome: Outcome, secrets: tuple[str, ...], bound: float) -> None:
        self.requests += 1
        self.statuses[f"{phase}:{outcome.status or 'closed'}"] += 1
        status = outcome.status
        text = outcome.body + outcome.headers.encode()
        if any(secret.encode() in text for secret in secrets):
            self.leaks.append(outcome)
        if outcome.problem:
            self.problems.append(outcome)
        if outcome.elapsed > bound:
            self.slow.append(outcome)
        inbound_fault = outcome.expect in ("hostile", "closed") and (status or 0) >= 500
        healthy_failed = phase == "hostile" and outcome.expect == "valid" and status != 200
        if inbound_fault or healthy_failed:
            self.server_5xx.append(outcome)

    def summary(self) -> dict[str, Any]:
        def names(items: list[Outcome]) -> list[str]:
            return sorted({f"{o.name}={o.status}" for o in items})

        return {
            "requests": self.requests,
            "upstream_faults": self.faults,
            "server_5xx": names(self.server_5xx),
            "leaks": names(self.leaks),
            "problems": [f"{o.name}: {o.problem}" for o in self.problems][:20],
            "slow": names(self.slow),
            "health_worst_ms": round(self.health_worst * 1000, 1),
            "health_failures": self.health_failures,
            "errors": self.errors[:20],
            "defect_seconds": self.defect_seconds,
            "statuses": dict(sorted(self.statuses.items())),
        }


def _probe(target: Target, stop: threading.Event, report: Report) -> None:
    with httpx2.Client(base_url=target.url, timeout=5) as http:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                ok = http.get("/health").status_code == 200
            except httpx2.HTTPError:
                ok = False
            report.health_worst = max(report.health_worst, time.perf_counter() - started)
            report.health_failures += 0 if ok else 1
            stop.wait(0.05)


def _timed(job: Callable[[Target], list[Outcome]], target: Target) -> tuple[float, list[Outcome]]:
    started = time.monotonic()
    outcomes = job(target)
    return time.monotonic() - started, outcomes


def _run_defects(
    target: Target,
    report: Report,
    secrets: tuple[str, ...],
    bound: float,
    defects: dict[str, Callable[[Target], list[Outcome]]],
) -> None:
    """Phase ``defects``: every attack that once got through (issue 24), one after the other
    (several measure timing: order of service, event-loop stalls)."""
    for name, job in defects.items():
        try:
            took, outcomes = _timed(job, target)
        except Exception as exc:
            report.errors.append(f"defects: {name}: {type(exc).__name__}: {exc}")
            continue
        report.defect_seconds[name] = round(took, 1)
        for outcome in outcomes:
            report.add("defects", outcome, secrets, bound)


def run_campaign(
    target: Target,
    upstream: FaultServer,
    *,
    rounds: int = 1,
    workers: int = 12,
    bound: float = 12.0,
    attacks: dict[str, Callable[[Target], list[Outcome]]] | None = None,
    defects: dict[str, Callable[[Target], list[Outcome]]] | None = None,
) -> Report:
    """Run both phases ``rounds`` times, then each of ``defects`` (default: every defect
    attack of :mod:`tests.server.attack_defects`) once; ``bound`` is the longest any request
    may take."""
    report = Report()
    secrets = (target.key, target.token)
    chosen = attacks or ATTACKS
    stop = threading.Event()
    probe = threading.Thread(target=_probe, args=(target, stop, report), daemon=True)
    probe.start()
    try:
        for _ in range(rounds):
            for phase in ("hostile", "faults"):
                if phase == "hostile":
                    upstream.reset(chooser=_healthy)
                    jobs = list(chosen.values())
                else:
                    plans = fault_plans(target.key)
                    upstream.reset(*plans, cycle=True)
                    jobs = [chosen["valid"]] * 3 if "valid" in chosen else []
                with ThreadPoolExecutor(workers) as pool:
                    futures = [pool.submit(job, target) for job in jobs]
                    for future in futures:
                        try:
                            outcomes = future.result(timeout=bound * 4)
                        except Exception as exc:
                            report.errors.append(f"{phase}: {type(exc).__name__}: {exc}")
                            continue
                        for outcome in outcomes:
                            report.add(phase, outcome, secrets, bound)
                if phase == "faults":
                    report.faults += upstream.request_count
        _run_defects(target, report, secrets, bound, DEFECTS if defects is None else defects)
    finally:
        stop.set()
        probe.join(timeout=5)
    return report
