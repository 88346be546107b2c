// The dashboard's shell: theme, navigation between views, and the one event stream.
import { getJSON } from "./api.js";
import { h, replace, notice } from "./dom.js";
import * as usage from "./usage.js";
import * as inspector from "./inspector.js";
import * as settings from "./settings.js";
import * as playground from "./playground.js";

const VIEWS = { usage, inspector, settings, playground };
const bus = new EventTarget();  // "live" and "exchange" events from the server
const ctx = { bus, overview: null, live: null };
let current = null;

function applyTheme(theme) {
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

function toggleTheme() {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === "dark"
    : window.matchMedia("(prefers-color-scheme: dark)").matches;
  const next = dark ? "light" : "dark";
  localStorage.setItem("glmbridge-theme", next);  // a display preference, nothing secret
  applyTheme(next);
}

function connect() {
  const pill = document.getElementById("conn");
  const source = new EventSource("/dashboard/api/events");
  source.addEventListener("open", () => { pill.textContent = "live"; pill.className = "pill ok"; });
  source.addEventListener("error", () => { pill.textContent = "reconnecting…"; pill.className = "pill warn"; });
  for (const kind of ["live", "exchange"]) {
    source.addEventListener(kind, (event) => {
      const data = JSON.parse(event.data);
      if (kind === "live") ctx.live = data;
      bus.dispatchEvent(new CustomEvent(kind, { detail: data }));
    });
  }
}

async function show() {
  const name = (location.hash || "#usage").slice(1);
  const view = VIEWS[name] ? name : "usage";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (current && current.unmount) current.unmount();
  const container = document.getElementById("view");
  replace(container);
  try {
    current = (await VIEWS[view].mount(container, ctx)) || null;
  } catch (err) {
    replace(container, notice(`Could not load this view: ${err.message}`, "bad"));
  }
}

async function start() {
  applyTheme(localStorage.getItem("glmbridge-theme"));
  document.getElementById("theme").addEventListener("click", toggleTheme);
  try {
    ctx.overview = await getJSON("/dashboard/api/overview");
  } catch (err) {
    replace(document.getElementById("view"), notice(`The server did not answer: ${err.message}`, "bad"));
    return;
  }
  const o = ctx.overview;
  document.getElementById("logout").hidden = !o.auth;
  replace(document.getElementById("foot"),
    `glmbridge ${o.version} · ${o.mode} · upstream ${o.upstream} · plan ${o.plan}`,
    o.tracing ? " · OpenTelemetry on" : "", workerNote(o.status.worker));
  ctx.live = o.status;
  connect();
  window.addEventListener("hashchange", show);
  await show();
}

// With several worker processes, this page talks to one of them: say which, and that the
// inspector and the live figures are that worker's (docs/configuration.md).
function workerNote(w) {
  if (!w || w.count <= 1) return "";
  return ` · worker ${w.index + 1} of ${w.count} (pid ${w.pid}): inspector and live figures are this worker's`;
}

start();
