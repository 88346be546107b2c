// The landing view: quota windows with reset clocks, live slots and queue, usage history.
import { getJSON } from "./api.js";
import { stackedBars, hbars } from "./charts.js";
import {
  h, replace, table, meter, notice, listen, fmtInt, fmtNum, fmtPct, fmtTokens, fmtMs,
  fmtLocal, fmtBeijing, fmtUntil,
} from "./dom.js";

const RANGES = [["day", "24 hours"], ["week", "7 days"], ["month", "30 days"]];
const WINDOW_NAMES = { "5h": "5-hour window", weekly: "Weekly window" };

/** "resets 21:31 Beijing · 14:31 your time (in 2 h 5 min)" */
function resetClock(iso) {
  if (!iso) return null;
  const at = new Date(iso);
  return h("div", { class: "small", "data-reset": iso },
    h("div", null, "resets ", h("strong", null, fmtBeijing(at)), " Beijing"),
    h("div", { class: "muted" }, `${fmtLocal(at)} your time · ${fmtUntil(at)}`));
}

function quotaCards(live, plan) {
  const cards = [];
  const windows = live.usage && live.usage.windows;
  if (windows) {
    for (const [name, w] of Object.entries(windows)) {
      const ratio = w.allowance ? w.credits / w.allowance : null;
      cards.push(h("div", { class: "card", "data-window": name },
        h("h3", null, WINDOW_NAMES[name] || name),
        h("div", { class: "kpi-line" },
          h("span", { class: "value", "data-field": "credits" }, fmtNum(w.credits)),
          w.allowance ? ` of ${fmtInt(w.allowance)} credits` : " credits"),
        ratio === null ? null : meter(ratio),
        h("div", { class: "small muted" }, w.allowance
          ? `${fmtNum(w.used_percent)} % used · this gateway's own traffic, rolling window (plan ${plan})`
          : `this gateway's own traffic (plan ${plan} has no credit allowance)`)));
    }
  } else if (live.usage && live.usage.error) {
    cards.push(notice(live.usage.error, "bad"));
  }
  for (const key of live.keys) {
    for (const w of key.windows || []) {
      cards.push(h("div", { class: "card", "data-key-window": `${key.index}:${w.window}` },
        h("h3", null, `Key #${key.index} · ${w.window} ${w.kind === "TIME_LIMIT" ? "tool calls" : "quota"}`),
        w.used_percent === null ? h("div", { class: "muted" }, "used: not reported") : [
          h("div", null, h("span", { class: "value" }, `${fmtNum(w.used_percent)} %`), " used (Z.ai)"),
          meter(w.used_percent / 100),
        ],
        resetClock(w.resets_at)));
    }
  }
  return cards;
}

function keyRows(live) {
  return table([
    { label: "Key", value: (k) => h("span", { class: "mono", title: "hash of the key, never the key" }, `#${k.index} ${k.key_id}`) },
    { label: "Slots", value: (k) => h("div", null, `${k.in_use} / ${k.limit >= 1000000 ? "∞" : k.limit}`, k.learned ? h("span", { class: "pill warn", title: "lowered after a 1302" }, " learned") : null) },
    { label: "State", value: (k) => keyState(k) },
    { label: "Exhausted until", wrap: true, value: (k) => k.quota ? resetClock(k.quota.resets_at) : "–" },
  ], live.keys);
}

function keyState(k) {
  if (k.quota) return h("span", { class: "pill bad" }, `${k.quota.window} quota spent (${k.quota.code})`);
  if (!k.healthy) return h("span", { class: "pill warn" }, `cooling ${Math.ceil(k.cooldown_remaining)} s`);
  if (k.near_exhaustion) return h("span", { class: "pill warn" }, "near exhaustion: background held back");
  return h("span", { class: "pill ok" }, "healthy");
}

function liveSection(live, plan) {
  const queue = live.queue || {};
  const cards = quotaCards(live, plan);
  return [
    cards.length ? h("div", { class: "grid" }, cards) : null,
    h("div", { class: "grid wide" },
      h("div", { class: "card" }, h("h3", null, "Keys"), live.keys.length ? keyRows(live) : h("p", { class: "muted" }, "No API keys (mock or keyless mode).")),
      h("div", { class: "card" }, h("h3", null, "Now"),
        h("div", { class: "kpis" },
          kpi("Slots in use", `${live.slots.in_use} / ${live.slots.limit >= 1000000 ? "∞" : live.slots.limit}`, "slots"),
          kpi("Queued: interactive", fmtInt(queue.interactive || 0), "queue-interactive"),
          kpi("Queued: subagent", fmtInt(queue.subagent || 0), "queue-subagent"),
          kpi("Queued: background", fmtInt(queue.background || 0), "queue-background")),
        h("div", { class: "small muted" },
          `since start: ${fmtInt(live.scheduled.granted)} slots granted, ${fmtInt(live.scheduled.queued)} queued, ${fmtInt(live.scheduled.timed_out)} timed out`,
          live.last_served ? ` · last served by ${live.last_served.model}` : ""))),
  ];
}

function kpi(label, value, field, title, sub) {
  return h("div", { class: "kpi", title: title || null },
    h("div", { class: "label" }, label), h("div", { class: "value", "data-kpi": field }, value),
    sub ? h("div", { class: "small muted" }, sub) : null);
}

function bucketLabel(start, bucket) {
  const date = new Date(start * 1000);
  return bucket < 86400
    ? date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
}

/** Credits of a group; "–" when none of its requests has a known price. */
function credits(r) {
  if (r.credits_unknown && r.credits_unknown === r.requests) {
    return h("span", { title: "no credit multipliers are known for this model" }, "–");
  }
  return fmtNum(r.credits);
}

function usageSection(data) {
  const t = data.totals;
  const lat = data.latency.all || {};
  const unpriced = t.credits_unknown ? `+ ${fmtInt(t.credits_unknown)} requests on unpriced models` : null;
  const labels = data.timeline.map((b) => bucketLabel(b.start, data.bucket));
  const modelColumns = [
    { label: "Served model", value: (r) => r.model || "–", clip: true },
    { label: "Requests", num: true, value: (r) => fmtInt(r.requests) },
    { label: "Errors", num: true, value: (r) => fmtInt(r.errors) },
    { label: "Input", num: true, value: (r) => fmtTokens(r.input) },
    { label: "Cached", num: true, value: (r) => fmtTokens(r.cached) },
    { label: "Output", num: true, value: (r) => fmtTokens(r.output) },
    { label: "Cache hits", num: true, value: (r) => fmtPct(r.cache_hit_ratio) },
    { label: "Credits", num: true, value: credits },
    { label: "p50 latency", num: true, value: (r) => fmtMs((data.latency[r.model || "-"] || {}).latency_p50) },
    { label: "p50 first token", num: true, value: (r) => fmtMs((data.latency[r.model || "-"] || {}).ttft_p50) },
  ];
  return [
    h("div", { class: "kpis", id: "usage-kpis" },
      kpi("Requests", fmtInt(t.requests), "requests", null,
        h("span", null, h("span", { "data-kpi": "errors" }, fmtInt(t.errors)), " errors")),
      kpi("Input tokens", fmtTokens(t.input), "input", `${fmtInt(t.input)} uncached input tokens`),
      kpi("Cached tokens", fmtTokens(t.cached), "cached", `${fmtInt(t.cached)} cached input tokens`),
      kpi("Output tokens", fmtTokens(t.output), "output", `${fmtInt(t.output)} output tokens`),
      kpi("Cache-hit ratio", fmtPct(t.cache_hit_ratio), "cache_hit_ratio"),
      kpi("Credits", fmtNum(t.credits), "credits", "Coding Plan credits, with each model's multipliers and the off-peak discount", unpriced),
      kpi("Latency p50", fmtMs(lat.latency_p50), "latency", "whole answer", `p90 ${fmtMs(lat.latency_p90)}`),
      kpi("First token p50", fmtMs(lat.ttft_p50), "ttft", "time to the first output of a stream", `p90 ${fmtMs(lat.ttft_p90)}`)),
    h("div", { class: "grid wide" },
      h("div", { class: "card" }, h("h3", null, "Tokens"),
        data.timeline.length ? stackedBars({
          title: "Tokens per period", labels,
          series: [
            { name: "input", values: data.timeline.map((b) => b.input), cls: "s0" },
            { name: "cached", values: data.timeline.map((b) => b.cached), cls: "s2" },
            { name: "output", values: data.timeline.map((b) => b.output), cls: "s1" },
          ],
        }) : h("p", { class: "muted" }, "No requests in this range yet.")),
      h("div", { class: "card" }, h("h3", null, "Requests"),
        data.timeline.length ? stackedBars({
          title: "Requests per period", labels, format: fmtInt, integer: true,
          series: [
            { name: "answered", values: data.timeline.map((b) => b.requests - b.errors), cls: "s5" },
            { name: "errors", values: data.timeline.map((b) => b.errors), cls: "s4" },
          ],
        }) : h("p", { class: "muted" }, "No requests in this range yet."))),
    h("div", { class: "card section" }, h("h3", null, "By served model"), table(modelColumns, data.by_model)),
    h("div", { class: "grid wide" },
      h("div", { class: "card" }, h("h3", null, "By client"),
        data.by_client.length ? hbars([...data.by_client].sort((a, b) => b.requests - a.requests).map((r) => ({
          label: r.client || "–", value: r.requests,
          text: `${fmtInt(r.requests)} req · ${fmtTokens(r.input + r.cached + r.output)} tok`,
        }))) : h("p", { class: "muted" }, "–")),
      h("div", { class: "card" }, h("h3", null, "By key"),
        table([
          { label: "Key", value: (r) => h("span", { class: "mono" }, r.key || "none") },
          { label: "Requests", num: true, value: (r) => fmtInt(r.requests) },
          { label: "Tokens", num: true, value: (r) => fmtTokens(r.input + r.cached + r.output) },
          { label: "Credits", num: true, value: credits },
        ], [...data.by_key].sort((a, b) => b.requests - a.requests)))),
    h("div", { class: "grid wide" },
      h("div", { class: "card" }, h("h3", null, "Latency and first token"),
        table([
          { label: "Model", value: (r) => r[0], clip: true },
          { label: "n", num: true, value: (r) => fmtInt(r[1].count) },
          { label: "p50", num: true, value: (r) => fmtMs(r[1].latency_p50) },
          { label: "p90", num: true, value: (r) => fmtMs(r[1].latency_p90) },
          { label: "p99", num: true, value: (r) => fmtMs(r[1].latency_p99) },
          { label: "TTFT p50", num: true, value: (r) => fmtMs(r[1].ttft_p50) },
          { label: "TTFT p90", num: true, value: (r) => fmtMs(r[1].ttft_p90) },
        ], Object.entries(data.latency))),
      h("div", { class: "card" }, h("h3", null, "Errors by kind"),
        data.errors.length ? hbars(data.errors.map((e) => ({ label: `${e.status} ${e.kind || ""}`.trim(), value: e.count, text: fmtInt(e.count) })), { cls: "bad" })
          : h("p", { class: "muted" }, "No errors in this range."))),
  ];
}

export async function mount(container, ctx) {
  let range = "day";
  const liveBox = h("div", { id: "live" });
  const usageBox = h("div", { id: "usage" });
  const tabs = h("div", { class: "tabs", role: "group", "aria-label": "Range" });
  const plan = ctx.overview.plan;

  async function loadUsage() {
    if (!ctx.overview.usage_store) {
      replace(usageBox, notice("The usage store is off (usage_store = false, or --mock): no history to show."));
      return;
    }
    try {
      const data = await getJSON(`/dashboard/api/usage?range=${range}`);
      replace(usageBox, usageSection(data));
    } catch (err) {
      replace(usageBox, notice(`Usage could not be read: ${err.message}`, "bad"));
    }
  }

  for (const [name, label] of RANGES) {
    tabs.append(h("button", {
      type: "button", "aria-pressed": String(name === range),
      onclick: (event) => {
        range = name;
        for (const b of tabs.children) b.setAttribute("aria-pressed", String(b === event.currentTarget));
        loadUsage();
      },
    }, label));
  }
  replace(container,
    h("section", { class: "section" }, h("div", { class: "section-head" }, h("h2", null, "Quota and slots")), liveBox),
    h("section", { class: "section" }, h("div", { class: "section-head" }, h("h2", null, "Usage"),
      ctx.overview.usage_store ? tabs : null), usageBox));
  replace(liveBox, liveSection(ctx.live, plan));
  await loadUsage();

  let pending = null;
  const soon = () => {  // new requests change the numbers: reload, at most every 2 s
    if (!pending) pending = setTimeout(() => { pending = null; loadUsage(); }, 2000);
  };
  const served = (live) => (live.usage && live.usage.today ? live.usage.today.requests : null);
  let seen = served(ctx.live);
  const onLive = (event) => {
    replace(liveBox, liveSection(event.detail, plan));
    const now = served(event.detail);
    if (now !== seen) { seen = now; soon(); }
  };
  const onExchange = (event) => { if (event.detail.phase === "end") soon(); };
  const stop = listen(ctx.bus, { live: onLive, exchange: onExchange });
  return {
    unmount() {
      stop();
      clearTimeout(pending);
    },
  };
}
