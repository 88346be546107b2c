// DOM helpers: elements are built with createElement and text nodes only, never innerHTML,
// so a string that came from a request (a model name, a prompt) is always shown as text.

const SVG_NS = "http://www.w3.org/2000/svg";

/** h("div", {class: "card"}, "text", child…); "svg:rect" makes an SVG element. */
export function h(tag, attrs, ...children) {
  const el = tag.startsWith("svg:")
    ? document.createElementNS(SVG_NS, tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (nodes, strings, numbers, nested arrays; null and false are skipped). */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Listen to events of one target ({name: handler, …}); returns what stops listening. */
export function listen(target, handlers) {
  const pairs = Object.entries(handlers);
  for (const [name, handler] of pairs) target.addEventListener(name, handler);
  return () => { for (const [name, handler] of pairs) target.removeEventListener(name, handler); };
}

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

export function fmtInt(n) { return n === null || n === undefined ? "–" : integer.format(n); }
export function fmtNum(n) { return n === null || n === undefined ? "–" : decimal.format(n); }
export function fmtPct(ratio) { return ratio === null || ratio === undefined ? "–" : `${decimal.format(ratio * 100)} %`; }

/** 1234567 -> "1.23 M" */
export function fmtTokens(n) {
  if (n === null || n === undefined) return "–";
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${decimal.format(n / 1e9)} G`;
  if (abs >= 1e6) return `${decimal.format(n / 1e6)} M`;
  if (abs >= 1e4) return `${decimal.format(n / 1e3)} k`;
  return integer.format(n);
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  return ms >= 1000 ? `${decimal.format(ms / 1000)} s` : `${integer.format(ms)} ms`;
}

export function fmtBytes(n) {
  if (n >= 1048576) return `${decimal.format(n / 1048576)} MiB`;
  if (n >= 1024) return `${decimal.format(n / 1024)} KiB`;
  return `${integer.format(n)} B`;
}

const localTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const beijingTime = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium", timeStyle: "short", timeZone: "Asia/Shanghai",
});
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function fmtLocal(date) { return localTime.format(date); }
export function fmtBeijing(date) { return beijingTime.format(date); }
export function fmtClock(date) { return clock.format(date); }

/** "in 2 h 5 min" until a date. */
export function fmtUntil(date, now = Date.now()) {
  const minutes = Math.max(0, Math.ceil((date.getTime() - now) / 60000));
  const d = Math.floor(minutes / 1440);
  const hr = Math.floor((minutes % 1440) / 60);
  const min = minutes % 60;
  if (d) return `in ${d} d ${hr} h`;
  if (hr) return min ? `in ${hr} h ${min} min` : `in ${hr} h`;
  return `in ${min} min`;
}

/** A table: columns [{label, num?, value(row)}]; rows; onRow(row, tr) for clicks. */
export function table(columns, rows, { onRow, rowAttrs } = {}) {
  const head = h("tr", null, columns.map((c) => h("th", { class: c.num ? "num" : null, scope: "col" }, c.label)));
  const body = rows.map((row) => {
    const tr = h("tr", rowAttrs ? rowAttrs(row) : null,
      columns.map((c) => h("td", { class: [c.num ? "num" : "", c.clip ? "clip" : "", c.wrap ? "wrap" : ""].join(" ").trim() || null }, c.value(row))));
    if (onRow) {
      tr.classList.add("clickable");
      tr.tabIndex = 0;
      tr.addEventListener("click", () => onRow(row, tr));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") onRow(row, tr); });
    }
    return tr;
  });
  return h("div", { class: "table-wrap" }, h("table", null, h("thead", null, head), h("tbody", null, body)));
}

/** A horizontal meter filled to `ratio` (0..1). */
export function meter(ratio, { warnAt = 0.8, badAt = 0.95 } = {}) {
  const fill = h("span");
  const clamped = Math.max(0, Math.min(1, ratio || 0));
  fill.style.width = `${(clamped * 100).toFixed(1)}%`;  // CSSOM: allowed by the CSP
  const level = clamped >= badAt ? "bad" : clamped >= warnAt ? "warn" : "";
  return h("div", { class: `meter ${level}`.trim(), role: "meter", "aria-valuenow": (clamped * 100).toFixed(0), "aria-valuemin": 0, "aria-valuemax": 100 }, fill);
}

export function notice(text, kind = "") {
  return h("div", { class: `notice ${kind}`.trim(), role: kind === "bad" ? "alert" : "status" }, text);
}
