// Charts drawn as SVG by our own code: stacked bars over time and horizontal bars.
import { h, fmtTokens } from "./dom.js";

const W = 640;

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

/**
 * Stacked bars: labels[i] under bar i; series [{name, values[], cls}] stacked bottom-up.
 * Every bar has a <title> with its numbers (hover or long-press shows them).
 */
export function stackedBars({ labels, series, height = 200, format = fmtTokens, title, integer = false }) {
  const pad = { left: 44, right: 24, top: 8, bottom: 22 };
  const totals = labels.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  // whole counts (requests) never get fractional ticks
  const nice = niceMax(Math.max(0, ...totals));
  const top = integer ? Math.max(4, Math.ceil(nice / 4) * 4) : nice;
  const plotW = W - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const svg = h("svg:svg", { class: "chart", viewBox: `0 0 ${W} ${height}`, role: "img", "aria-label": title || "chart" });
  if (title) svg.append(h("svg:title", null, title));
  for (let k = 0; k <= 4; k++) {
    const y = pad.top + plotH - (plotH * k) / 4;
    svg.append(h("svg:line", { class: "grid-line", x1: pad.left, x2: W - pad.right, y1: y, y2: y }));
    svg.append(h("svg:text", { x: pad.left - 6, y: y + 3, "text-anchor": "end" }, format((top * k) / 4)));
  }
  const n = Math.max(1, labels.length);
  const slot = plotW / n;
  const barW = Math.max(2, Math.min(36, slot * 0.7));
  const every = Math.ceil(n / 12);
  labels.forEach((label, i) => {
    const x = pad.left + slot * i + (slot - barW) / 2;
    let y = pad.top + plotH;
    const group = h("svg:g", { "data-index": i });
    const lines = [label];
    series.forEach((s, si) => {
      const v = s.values[i] || 0;
      lines.push(`${s.name}: ${format(v)}`);
      if (v <= 0) return;
      const bh = (v / top) * plotH;
      y -= bh;
      group.append(h("svg:rect", { class: s.cls || `s${si}`, x: x.toFixed(1), y: y.toFixed(1), width: barW.toFixed(1), height: Math.max(0.5, bh).toFixed(1), rx: 1.5 }));
    });
    group.prepend(h("svg:title", null, lines.join("\n")));
    // an invisible full-height target so small bars are easy to hover
    group.append(h("svg:rect", { x: (pad.left + slot * i).toFixed(1), y: pad.top, width: slot.toFixed(1), height: plotH, fill: "transparent" }));
    svg.append(group);
    if (i % every === 0) {
      svg.append(h("svg:text", { x: (x + barW / 2).toFixed(1), y: height - 6, "text-anchor": "middle" }, label));
    }
  });
  const legend = h("div", { class: "legend" }, series.map((s, si) => h("span", null, h("i", { class: s.cls || `s${si}` }), s.name)));
  return h("div", null, svg, legend);
}

/** Horizontal bars: rows [{label, value, text}]; the longest bar is the largest value. */
export function hbars(rows, { format = fmtTokens, cls = null } = {}) {
  const max = Math.max(1, ...rows.map((r) => r.value || 0));
  const grid = h("div", { class: "hbars" });
  for (const row of rows) {
    const fill = h("span", { class: cls });
    fill.style.width = `${((100 * (row.value || 0)) / max).toFixed(1)}%`;
    grid.append(
      h("span", { class: "name", title: row.label }, row.label),
      h("div", { class: "bar" }, fill),
      h("span", { class: "mono" }, row.text ?? format(row.value)),
    );
  }
  return grid;
}
