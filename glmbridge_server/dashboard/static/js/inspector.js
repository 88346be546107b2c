// The live inspector: every exchange as it happens, and its four panes on demand.
import { getJSON, postJSON } from "./api.js";
import { h, replace, table, notice, listen, fmtInt, fmtMs, fmtBytes, fmtClock } from "./dom.js";

const PANE_TITLES = {
  client_request: "Client request",
  upstream_request: "Upstream request (our translation)",
  upstream_stream: "Upstream answer",
  client_response: "What the client received",
};
const MAX_ROWS = 300;

/** JSON bodies pretty-printed; anything else (an SSE stream) as it came. */
function pretty(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    try { return JSON.stringify(JSON.parse(trimmed), null, 2); } catch { /* not one JSON value */ }
  }
  return text;
}

function statusPill(s) {
  if (!s.done) return h("span", { class: "pill" }, "running");
  const code = s.status || 0;
  const cls = code >= 200 && code < 300 && !s.error_kind ? "ok" : code >= 500 || !code ? "bad" : "warn";
  return h("span", { class: `pill ${cls}`, title: s.error_kind || null }, String(code || "–"), s.error_kind ? ` ${s.error_kind}` : "");
}

const COLUMNS = [
  { label: "Time", value: (s) => fmtClock(new Date(s.started * 1000)) },
  { label: "Door", value: (s) => s.door || "–" },
  { label: "Client", value: (s) => s.client || "–" },
  { label: "Priority", value: (s) => s.priority || "–" },
  { label: "Requested → served", clip: true, value: (s) => h("span", { title: `${s.requested_model || "?"} → ${s.served_model || "?"}` }, `${s.requested_model || "?"} → ${s.served_model || "?"}`) },
  { label: "Key", value: (s) => (s.key_index === null ? "–" : `#${s.key_index}`) },
  { label: "Status", value: statusPill },
  { label: "Queue", num: true, value: (s) => fmtMs(s.queue_ms) },
  { label: "First token", num: true, value: (s) => fmtMs(s.ttft_ms) },
  { label: "Total", num: true, value: (s) => fmtMs(s.total_ms) },
  { label: "In / out tok", num: true, value: (s) => `${fmtInt(s.input_tokens)} / ${fmtInt(s.output_tokens)}` },
  { label: "Retries / fallbacks", value: (s) => `${s.retries}${s.fallbacks.length ? ` · ${s.fallbacks.join(", ")}` : ""}` },
];

function paneView(name, pane) {
  const head = h("div", { class: "small muted" },
    pane.size ? `${fmtBytes(pane.size)}${pane.truncated ? ` (first ${fmtBytes(new Blob([pane.text]).size)} kept)` : ""}` : "nothing recorded");
  const headers = pane.headers
    ? h("details", null, h("summary", null, "headers"),
      h("pre", null, Object.entries(pane.headers).map(([k, v]) => `${k}: ${v}`).join("\n")))
    : null;
  return h("div", { class: "card pane", "data-pane": name },
    h("h3", null, PANE_TITLES[name] || name), head, headers,
    pane.size ? h("pre", { class: "body" }, pretty(pane.text)) : null);
}

function matches(s, query) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return true;
  const text = [s.door, s.client, s.priority, s.requested_model, s.served_model, s.status,
    s.error_kind, s.request_id, s.key_index === null ? "" : `#${s.key_index}`].join(" ").toLowerCase();
  return words.every((w) => text.includes(w));
}

/** The inspector's page: the switch, the live list, one exchange's panes. */
class InspectorView {
  constructor(first) {
    this.rows = new Map(first.exchanges.map((s) => [s.request_id, s]));
    this.enabled = first.enabled;
    this.selected = null;
    this.toggle = h("input", { type: "checkbox", id: "inspector-toggle" });
    this.toggle.checked = this.enabled;
    this.toggle.addEventListener("change", () => this.switched());
    this.stats = h("span", { class: "small muted" });
    this.message = h("div");
    this.list = h("div", { id: "exchanges" });
    this.detail = h("div", { id: "detail" });
    this.filter = h("input", { type: "search", id: "inspector-filter", placeholder: "filter: model, client, door, status…", "aria-label": "Filter exchanges" });
    this.filter.addEventListener("input", () => this.render());
    this.showStats(first.stats);
  }

  page() {
    const clear = h("button", { type: "button", class: "ghost", onclick: () => this.clear() }, "Clear");
    return [
      h("section", { class: "section" },
        h("div", { class: "section-head" }, h("h2", null, "Live inspector"),
          h("label", { class: "switch", for: "inspector-toggle" }, this.toggle, "record requests"), clear, this.stats),
        h("p", { class: "small muted" },
          "Prompts are private: the inspector is off by default, keeps at most a bounded amount in memory, " +
          "hides keys and tokens, and skips any request sent with the header x-glmbridge-inspect: off."),
        this.message, h("div", { class: "card" }, h("div", { class: "row" }, this.filter), this.list)),
      this.detail,
    ];
  }

  showStats(s) {
    this.stats.textContent = `${fmtInt(s.entries)} exchanges, ${fmtBytes(s.bytes)} of ${fmtBytes(s.max_bytes)} held in memory (never on disk)`;
  }

  render() {
    const ordered = [...this.rows.values()].filter((s) => matches(s, this.filter.value))
      .sort((a, b) => b.started - a.started).slice(0, MAX_ROWS);
    replace(this.list, ordered.length
      ? table(COLUMNS, ordered, {
        onRow: (s) => this.open(s.request_id),
        rowAttrs: (s) => ({ "data-request-id": s.request_id, class: s.request_id === this.selected ? "selected" : null }),
      })
      : h("p", { class: "muted" }, this.enabled ? "Waiting for requests…" : "The inspector is off: turn it on to record requests."));
  }

  async open(id) {
    this.selected = id;
    this.render();
    try {
      const found = await getJSON(`/dashboard/api/inspector/${encodeURIComponent(id)}`);
      const s = found.summary;
      replace(this.detail, h("div", { class: "section" },
        h("div", { class: "section-head" }, h("h2", null, "Exchange ", h("span", { class: "mono" }, s.request_id)),
          h("span", { class: "muted small" }, `${s.method} ${s.path}`)),
        h("div", { class: "panes" }, Object.entries(found.panes).map(([name, pane]) => paneView(name, pane)))));
      this.detail.scrollIntoView({ behavior: "smooth", block: "start" });
    } catch (err) {
      replace(this.detail, notice(err.message, "bad"));
    }
  }

  async switched() {
    const toggle = this.toggle;
    toggle.disabled = true;
    try {
      const config = await postJSON("/config", { inspector: toggle.checked });
      this.enabled = config.inspector;
      replace(this.message, notice(this.enabled ? "The inspector is on: new requests are recorded." : "The inspector is off.", "ok"));
    } catch (err) {
      toggle.checked = this.enabled;
      replace(this.message, notice(`Not changed: ${err.message}`, "bad"));
    } finally {
      toggle.disabled = false;
      this.render();
    }
  }

  async clear() {
    const out = await postJSON("/dashboard/api/inspector/clear", {});
    this.rows.clear();
    this.showStats(out.stats);
    replace(this.detail);
    this.render();
  }

  exchanged(summary) {
    this.rows.set(summary.request_id, summary);
    while (this.rows.size > MAX_ROWS) this.rows.delete(this.rows.keys().next().value);
    this.render();
  }

  lived(live) {
    if (live.inspector_stats) this.showStats(live.inspector_stats);
    if (live.inspector !== this.enabled && !this.toggle.disabled) {
      this.enabled = live.inspector;
      this.toggle.checked = this.enabled;
      this.render();
    }
  }
}

export async function mount(container, ctx) {
  const view = new InspectorView(await getJSON("/dashboard/api/inspector"));
  replace(container, view.page());
  view.render();
  const stop = listen(ctx.bus, {
    exchange: (event) => view.exchanged(event.detail.summary),
    live: (event) => view.lived(event.detail),
  });
  return { unmount: stop };
}
