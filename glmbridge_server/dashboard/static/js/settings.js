// Settings: every setting with its value, source and restart flag. Edits go through
// POST /config (its validation, its atomic swap) and carry only the fields the user
// changed, so nothing the page does not show is ever rewritten.
import { getJSON, postJSON } from "./api.js";
import { h, replace, notice } from "./dom.js";

function show(value) {
  if (value === null || value === undefined || value === "") return "–";
  if (Array.isArray(value)) return value.length ? value.join(", ") : "–";
  if (typeof value === "object") {
    const entries = Object.entries(value);
    return entries.length ? entries.map(([k, v]) => `${k} = ${Array.isArray(v) ? v.join(" > ") : v}`).join("\n") : "–";
  }
  return String(value);
}

/** An input for one editable setting; read() gives its value as POST /config wants it,
 *  or undefined when unchanged. */
function editor(row) {
  const ed = row.editor;
  const id = `set-${row.name}`;
  let input;
  let read;
  if (ed.type === "bool") {
    input = h("input", { type: "checkbox", id, name: row.name });
    input.checked = Boolean(row.value);
    read = () => (input.checked === Boolean(row.value) ? undefined : input.checked);
  } else if (ed.type === "choice") {
    input = h("select", { id, name: row.name }, ed.choices.map((c) => h("option", { value: c }, c)));
    input.value = row.value;
    read = () => (input.value === row.value ? undefined : input.value);
  } else if (ed.type === "int" || ed.type === "number") {
    input = h("input", {
      type: "number", id, name: row.name, step: ed.type === "int" ? 1 : "any",
      min: ed.ge ?? ed.gt ?? null, max: ed.le ?? ed.lt ?? null, inputmode: "decimal",
    });
    input.value = String(row.value);
    read = () => {
      if (input.value.trim() === String(row.value)) return undefined;
      const n = Number(input.value);
      return input.value.trim() === "" || Number.isNaN(n) ? input.value : n;
    };
  } else if (ed.type === "int_list") {
    input = h("input", { type: "text", id, name: row.name, placeholder: "e.g. 2 or 2,3", inputmode: "numeric" });
    input.value = (row.value || []).join(",");
    read = () => {
      if (input.value.replace(/\s/g, "") === (row.value || []).join(",")) return undefined;
      return input.value.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
    };
  } else if (ed.type === "map") {
    input = h("textarea", { id, name: row.name, rows: 4, placeholder: "opus = glm-5.3" });
    const before = row.value || {};
    input.value = Object.entries(before).map(([k, v]) => `${k} = ${v}`).join("\n");
    read = () => {  // a merge patch: changed entries, removed ones as null
      const after = {};
      for (const line of input.value.split("\n")) {
        const at = line.indexOf("=");
        if (at > 0) after[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      }
      const patch = {};
      for (const [k, v] of Object.entries(after)) if (before[k] !== v) patch[k] = v;
      for (const k of Object.keys(before)) if (!(k in after)) patch[k] = null;
      return Object.keys(patch).length ? patch : undefined;
    };
  } else {
    input = h("input", { type: "text", id, name: row.name });
    input.value = row.value ?? "";
    read = () => (input.value === (row.value ?? "") ? undefined : input.value);
  }
  return { input, read };
}

function sourcePill(row) {
  const cls = row.source === "runtime" ? "warn" : row.source === "default" ? "" : "ok";
  return h("span", { class: `pill ${cls}`.trim(), title: row.source_detail }, row.source);
}

export async function mount(container) {
  const message = h("div", { id: "settings-message" });
  const body = h("div");

  async function load() {
    const { settings } = await getJSON("/dashboard/api/settings");
    const editors = new Map();
    const editable = settings.filter((r) => r.editor);
    const fixed = settings.filter((r) => !r.editor);
    const editRows = editable.map((row) => {
      const ed = editor(row);
      editors.set(row.name, ed);
      return h("tr", { "data-setting": row.name },
        h("td", null, h("label", { for: `set-${row.name}`, class: "mono" }, row.name)),
        h("td", null, ed.input), h("td", null, sourcePill(row)));
    });
    const save = h("button", { type: "submit" }, "Save changes");
    const form = h("form", { id: "settings-form" },
      h("div", { class: "table-wrap" }, h("table", null,
        h("thead", null, h("tr", null, h("th", null, "Setting"), h("th", null, "Value"), h("th", null, "Source"))),
        h("tbody", null, editRows))),
      h("div", { class: "row" }, save, h("span", { class: "small muted" }, "Only the fields you change are sent; they apply at once, to new requests.")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const changes = {};
      for (const [name, ed] of editors) {
        const value = ed.read();
        if (value !== undefined) changes[name] = value;
      }
      if (!Object.keys(changes).length) {
        replace(message, notice("Nothing changed."));
        return;
      }
      save.disabled = true;
      try {
        await postJSON("/config", changes);
        replace(message, notice(`Saved: ${Object.keys(changes).join(", ")}.`, "ok"));
        await load();
      } catch (err) {
        replace(message, notice(`Not saved: ${err.message}`, "bad"));
      } finally {
        save.disabled = false;
      }
    });
    replace(body,
      h("div", { class: "card section" }, h("h3", null, "Changeable while running"), form),
      h("div", { class: "card section" }, h("h3", null, "Needs a restart"),
        h("p", { class: "small muted" }, "Set these in the config file, the environment or on the command line, then restart. Keys and the token are never shown."),
        h("div", { class: "table-wrap" }, h("table", null,
          h("thead", null, h("tr", null, h("th", null, "Setting"), h("th", null, "Value"), h("th", null, "Source"))),
          h("tbody", null, fixed.map((row) => h("tr", { "data-setting": row.name },
            h("td", { class: "mono" }, row.name),
            h("td", { class: "mono clip", title: show(row.value) }, show(row.value)),
            h("td", null, sourcePill(row)))))))));
  }

  replace(container, h("section", { class: "section" },
    h("div", { class: "section-head" }, h("h2", null, "Settings")), message, body));
  await load();
}
