// The live inspector: every exchange as it happens, and its four panes on demand.
import { getJSON, postJSON } from "./api.js";
import { h, replace, table, notice, fmtInt, fmtMs, fmtBytes, fmtClock } from "./dom.js";

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

export async function mount(container, ctx) {
  const first = await getJSON("/dashboard/api/inspector");
  const rows = new Map(first.exchanges.map((s) => [s.request_id, s]));
  let enabled = first.enabled;
  let selected = null;
  const toggle = h("input", { type: "checkbox", id: "inspector-toggle" });
  toggle.checked = enabled;
  const stats = h("span", { class: "small muted" });
  const message = h("div");
  const list = h("div", { id: "exchanges" });
  const detail = h("div", { id: "detail" });

  function showStats(s) {
    stats.textContent = `${fmtInt(s.entries)} exchanges, ${fmtBytes(s.bytes)} of ${fmtBytes(s.max_bytes)} held in memory (never on disk)`;
  }

  const filter = h("input", { type: "search", id: "inspector-filter", placeholder: "filter: model, client, door, status…", "aria-label": "Filter exchanges" });
  filter.addEventListener("input", () => render());

  function matches(s) {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) return true;
    const text = [s.door, s.client, s.priority, s.requested_model, s.served_model, s.status,
      s.error_kind, s.request_id, s.key_index === null ? "" : `#${s.key_index}`].join(" ").toLowerCase();
    return words.every((w) => text.includes(w));
  }

  function render() {
    const ordered = [...rows.values()].filter(matches).sort((a, b) => b.started - a.started).slice(0, MAX_ROWS);
    replace(list, ordered.length
      ? table(COLUMNS, ordered, {
        onRow: (s) => open(s.request_id),
        rowAttrs: (s) => ({ "data-request-id": s.request_id, class: s.request_id === selected ? "selected" : null }),
      })
      : h("p", { class: "muted" }, enabled ? "Waiting for requests…" : "The inspector is off: turn it on to record requests."));
  }

  async function open(id) {
    selected = id;
    render();
    try {
      const found = await getJSON(`/dashboard/api/inspector/${encodeURIComponent(id)}`);
      const s = found.summary;
      replace(detail, h("div", { class: "section" },
        h("div", { class: "section-head" }, h("h2", null, "Exchange ", h("span", { class: "mono" }, s.request_id)),
          h("span", { class: "muted small" }, `${s.method} ${s.path}`)),
        h("div", { class: "panes" }, Object.entries(found.panes).map(([name, pane]) => paneView(name, pane)))));
      detail.scrollIntoView({ behavior: "smooth", block: "start" });
    } catch (err) {
      replace(detail, notice(err.message, "bad"));
    }
  }

  toggle.addEventListener("change", async () => {
    toggle.disabled = true;
    try {
      const config = await postJSON("/config", { inspector: toggle.checked });
      enabled = config.inspector;
      replace(message, notice(enabled ? "The inspector is on: new requests are recorded." : "The inspector is off.", "ok"));
    } catch (err) {
      toggle.checked = enabled;
      replace(message, notice(`Not changed: ${err.message}`, "bad"));
    } finally {
      toggle.disabled = false;
      render();
    }
  });

  const clear = h("button", { type: "button", class: "ghost", onclick: async () => {
    const out = await postJSON("/dashboard/api/inspector/clear", {});
    rows.clear();
    showStats(out.stats);
    replace(detail);
    render();
  } }, "Clear");

  replace(container,
    h("section", { class: "section" },
      h("div", { class: "section-head" }, h("h2", null, "Live inspector"),
        h("label", { class: "switch", for: "inspector-toggle" }, toggle, "record requests"), clear, stats),
      h("p", { class: "small muted" },
        "Prompts are private: the inspector is off by default, keeps at most a bounded amount in memory, " +
        "hides keys and tokens, and skips any request sent with the header x-glmbridge-inspect: off."),
      message, h("div", { class: "card" }, h("div", { class: "row" }, filter), list)),
    detail);
  showStats(first.stats);
  render();

  const onExchange = (event) => {
    const s = event.detail.summary;
    rows.set(s.request_id, s);
    while (rows.size > MAX_ROWS) rows.delete(rows.keys().next().value);
    render();
  };
  const onLive = (event) => {
    if (event.detail.inspector_stats) showStats(event.detail.inspector_stats);
    if (event.detail.inspector !== enabled && !toggle.disabled) {
      enabled = event.detail.inspector;
      toggle.checked = enabled;
      render();
    }
  };
  ctx.bus.addEventListener("exchange", onExchange);
  ctx.bus.addEventListener("live", onLive);
  return {
    unmount() {
      ctx.bus.removeEventListener("exchange", onExchange);
      ctx.bus.removeEventListener("live", onLive);
    },
  };
}
