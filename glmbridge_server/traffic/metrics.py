"""Prometheus metrics, exposed at ``GET /metrics`` through ``prometheus_client``.

Each app owns one :class:`Metrics` with its own ``CollectorRegistry`` (never the global
one: tests and embedders create many apps in one process). Label values are bounded:
routes are path templates, models are the routed GLM ids, keys are indices, never values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from glmbridge_server.edge import inbound

if TYPE_CHECKING:
    from glmbridge_server.traffic.scheduler import Scheduler

__all__ = ["CONTENT_TYPE", "Metrics", "label_worker", "route_label"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_TTFT_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
_FIXED_ROUTES = frozenset(
    {
        "/",
        "/health",
        "/status",
        "/config",
        "/metrics",
        "/api/event_logging/batch",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/models",
        "/v1/chat/completions",
        "/v1/responses",
    }
)
_GEMINI_VERSIONS = frozenset({"v1", "v1beta", "v1beta1"})
_GEMINI_METHODS = frozenset({"generateContent", "streamGenerateContent", "countTokens"})


def route_label(path: str) -> str:
    """A bounded label for ``path``: the route template, or ``other``. Every door path has
    its own (the Gemini door's by API version and method), so a dashboard can tell them
    apart; a model name never becomes a label."""
    if path in _FIXED_ROUTES:
        return path
    version, _, rest = path[1:].partition("/")
    if version in _GEMINI_VERSIONS and (rest == "models" or rest.startswith("models/")):
        if rest == "models":
            return f"/{version}/models"
        _, colon, method = rest.rpartition(":")
        if colon and method in _GEMINI_METHODS:
            return f"/{version}/models/{{model}}:{method}"
        return f"/{version}/models/{{model_id}}"
    if path.startswith("/_mock/"):
        return "/_mock"
    return "other"


class _InboundCollector:
    """Connections the inbound guard closed or refused, by reason (process-wide)."""

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "glmbridge_inbound_closed",
            "Inbound connections closed or refused by the connection limits, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(inbound.STATS.items()):
            family.add_metric([reason], count)
        yield family


class _UsageCollector:
    """The usage store's rows written and lost since start (set before each render)."""

    rows: dict[str, int] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.rows is None:
            return
        family = CounterMetricFamily(
            "glmbridge_usage_rows",
            "Usage-store rows since start, by outcome: written, or lost (counted exactly).",
            labels=["outcome"],
        )
        for outcome in ("written", "lost"):
            family.add_metric([outcome], self.rows.get(outcome, 0))
        yield family


class _Declared(NamedTuple):
    """One metric: its kind, name, help text, label names and (histograms) buckets."""

    kind: type[Counter | Gauge | Histogram]
    name: str
    doc: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    def make(self, registry: CollectorRegistry) -> Counter | Gauge | Histogram:
        """The metric, registered in ``registry``."""
        if self.kind is Histogram:
            return Histogram(self.name, self.doc, self.labels, registry=registry,
                             buckets=self.buckets)  # fmt: skip
        return self.kind(self.name, self.doc, self.labels, registry=registry)


#: Every metric of :class:`Metrics`, by the attribute that holds it.
_DECLARED: dict[str, _Declared] = {
    # what the clients asked and got: requests, errors, latency, first token, tokens
    "requests": _Declared(
        Counter,
        "glmbridge_requests",
        "HTTP requests answered, by route, inbound protocol and status.",
        ("route", "protocol", "status"),
    ),
    "errors": _Declared(
        Counter, "glmbridge_errors", "Requests that ended in an error, by error type.", ("type",)
    ),
    "latency": _Declared(
        Histogram,
        "glmbridge_request_duration_seconds",
        "Time from request to the end of the response.",
        ("route", "protocol"),
        _LATENCY_BUCKETS,
    ),
    "ttft": _Declared(
        Histogram,
        "glmbridge_time_to_first_token_seconds",
        "Streams: time from request to the first content token sent to the client.",
        ("model",),
        _TTFT_BUCKETS,
    ),
    "tokens": _Declared(
        Counter,
        "glmbridge_tokens",
        "Tokens reported by the upstream: input (incl. cached), output, cached.",
        ("kind", "model"),
    ),
    "in_progress": _Declared(
        Gauge, "glmbridge_requests_in_progress", "Requests being handled now."
    ),
    # the upstream side: retries, key cool-downs, keys
    "retries": _Declared(
        Counter,
        "glmbridge_upstream_retries",
        "Upstream calls retried, by the reason (upstream status or failure class).",
        ("reason",),
    ),
    "cooldowns": _Declared(
        Counter,
        "glmbridge_key_cooldowns",
        "API keys taken out of rotation, by key index and reason (auth or quota).",
        ("key_index", "reason"),
    ),
    "keys": _Declared(Gauge, "glmbridge_keys", "Configured upstream API keys."),
    "keys_healthy": _Declared(Gauge, "glmbridge_keys_healthy", "API keys not cooling down now."),
    # traffic control: slots per key, the queue and its waits
    "slots_in_use": _Declared(
        Gauge,
        "glmbridge_key_slots_in_use",
        "Upstream requests in flight, by key index.",
        ("key_index",),
    ),
    "slot_limit": _Declared(
        Gauge,
        "glmbridge_key_slot_limit",
        "Effective upstream slots per key (configured, or learned from 1302).",
        ("key_index",),
    ),
    "queue_length": _Declared(
        Gauge,
        "glmbridge_queue_length",
        "Requests waiting for a slot, by priority class.",
        ("priority",),
    ),
    "queue_wait": _Declared(
        Histogram,
        "glmbridge_queue_wait_seconds",
        "Time requests waited for an upstream slot (only those that waited).",
        ("priority",),
        _TTFT_BUCKETS,
    ),
    "queue_timeouts": _Declared(
        Counter,
        "glmbridge_queue_timeouts",
        "Requests that gave up after max_queue_wait.",
        ("priority",),
    ),
}


class Metrics:
    """The server's counters, gauges and histograms, in a private registry.

    ``models`` are the model ids that may appear as a label; any other routed model is
    counted as ``other``, so a client cannot grow ``/metrics`` by inventing names. Each
    attribute below is built from its row of ``_DECLARED``.
    """

    requests: Counter
    errors: Counter
    latency: Histogram
    ttft: Histogram
    tokens: Counter
    in_progress: Gauge
    retries: Counter
    cooldowns: Counter
    keys: Gauge
    keys_healthy: Gauge
    slots_in_use: Gauge
    slot_limit: Gauge
    queue_length: Gauge
    queue_wait: Histogram
    queue_timeouts: Counter

    def __init__(self, models: Iterable[str] = ()) -> None:
        self.models = frozenset(models)
        self.registry = CollectorRegistry()
        reg = self.registry
        reg.register(_InboundCollector())
        self._usage = _UsageCollector()
        reg.register(self._usage)
        self.connections = Gauge(
            "glmbridge_inbound_connections", "Inbound connections open now.", registry=reg
        )
        self.connections.set_function(inbound.open_connections)
        for attribute, declared in _DECLARED.items():
            setattr(self, attribute, declared.make(reg))
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: every request counts itself in a few
        metrics, and ``labels()`` validates and locks each time (issue 22). The label
        values are bounded (routes, protocols, statuses, known models), so is this."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def retry(self, reason: str) -> None:
        """Count one retried upstream call."""
        self.retries.labels(reason).inc()

    def cooldown(self, key_index: int, reason: str) -> None:
        """Count one key cooldown."""
        self.cooldowns.labels(str(key_index), reason).inc()

    def model_label(self, model: object) -> str:
        """A bounded label for a routed model: a known id, ``none`` or ``other``."""
        if not model:
            return "none"
        return model if isinstance(model, str) and model in self.models else "other"

    def render(
        self,
        keys: int,
        keys_healthy: int,
        scheduler: Scheduler | None = None,
        *,
        usage_rows: dict[str, int] | None = None,
        worker: dict[str, int] | None = None,
    ) -> bytes:
        """The exposition text, with the key, slot, queue and usage-store figures read now;
        ``worker`` (one of several processes: ``{index, count, pid}``) labels every sample
        with ``worker="<index>"`` (:func:`label_worker`)."""
        self._usage.rows = usage_rows
        self.keys.set(keys)
        self.keys_healthy.set(keys_healthy)
        if scheduler is not None:
            for key in scheduler.status():
                label = str(key["index"])
                self.slots_in_use.labels(label).set(key["in_use"])
                self.slot_limit.labels(label).set(key["limit"])
            for priority, count in scheduler.queue_lengths().items():
                self.queue_length.labels(priority.name.lower()).set(count)
        text = generate_latest(self.registry)
        return text if worker is None else label_worker(text, worker)


def label_worker(text: bytes, worker: dict[str, int]) -> bytes:
    """``text`` (an exposition) with ``worker="<index>"`` on every sample, and a
    ``glmbridge_worker_info`` sample naming the worker's pid and the worker count.

    With several worker processes on one port a scrape reaches one of them; each keeps its
    own series, so a counter never seems to go backwards when the next scrape reaches
    another worker, and ``sum without (worker)`` adds up the workers seen.
    """
    label = b'worker="%d"' % worker["index"]
    lines = []
    for line in text.split(b"\n"):
        if line and not line.startswith(b"#"):
            name, brace, rest = line.partition(b"{")
            if brace:
                line = name + b"{" + label + (b"," + rest if not rest.startswith(b"}") else rest)
            else:
                name, _, value = line.partition(b" ")
                line = name + b"{" + label + b"} " + value
        lines.append(line)
    info = (
        b"# HELP glmbridge_worker_info The worker process that answered this scrape.\n"
        b"# TYPE glmbridge_worker_info gauge\n"
        b'glmbridge_worker_info{%s,pid="%d",workers="%d"} 1.0\n'
        % (label, worker["pid"], worker["count"])
    )
    return info + b"\n".join(lines)
