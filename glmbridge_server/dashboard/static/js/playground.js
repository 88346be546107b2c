// Playground: send a prompt through any door to any model through the live pipeline; the
// answer streams in, and beside it what the server sent to GLM and what GLM answered.
import { getJSON } from "./api.js";
import { h, replace, notice } from "./dom.js";

const DOORS = {
  anthropic: {
    label: "Anthropic Messages",
    path: () => "/v1/messages",
    headers: { "anthropic-version": "2023-06-01" },
    body: (model, prompt, stream) => ({ model, max_tokens: 1024, stream, messages: [{ role: "user", content: prompt }] }),
    delta: (event, data) => {
      if (data.type === "content_block_delta" && data.delta) {
        if (data.delta.type === "text_delta") return { text: data.delta.text };
        if (data.delta.type === "thinking_delta") return { thinking: data.delta.thinking };
      }
      return null;
    },
    whole: (data) => ({
      text: (data.content || []).filter((b) => b.type === "text").map((b) => b.text).join(""),
      thinking: (data.content || []).filter((b) => b.type === "thinking").map((b) => b.thinking).join(""),
    }),
  },
  chat: {
    label: "OpenAI Chat Completions",
    path: () => "/v1/chat/completions",
    headers: {},
    body: (model, prompt, stream) => ({ model, stream, messages: [{ role: "user", content: prompt }] }),
    delta: (event, data) => {
      const d = data.choices && data.choices[0] && data.choices[0].delta;
      return d ? { text: d.content || "", thinking: d.reasoning_content || d.reasoning || "" } : null;
    },
    whole: (data) => {
      const m = (data.choices && data.choices[0] && data.choices[0].message) || {};
      return { text: m.content || "", thinking: m.reasoning_content || "" };
    },
  },
  responses: {
    label: "OpenAI Responses",
    path: () => "/v1/responses",
    headers: {},
    body: (model, prompt, stream) => ({ model, stream, input: prompt }),
    delta: (event, data) => {
      if (data.type === "response.output_text.delta") return { text: data.delta };
      if (data.type === "response.reasoning_summary_text.delta" || data.type === "response.reasoning_text.delta") return { thinking: data.delta };
      return null;
    },
    whole: (data) => ({
      text: (data.output || []).flatMap((o) => o.content || []).filter((c) => c.type === "output_text").map((c) => c.text).join(""),
      thinking: "",
    }),
  },
  gemini: {
    label: "Gemini generateContent",
    path: (model, stream) => `/v1beta/models/${encodeURIComponent(model)}:${stream ? "streamGenerateContent?alt=sse" : "generateContent"}`,
    headers: {},
    body: (model, prompt) => ({ contents: [{ role: "user", parts: [{ text: prompt }] }] }),
    delta: (event, data) => {
      const parts = (data.candidates && data.candidates[0] && data.candidates[0].content && data.candidates[0].content.parts) || [];
      return {
        text: parts.filter((p) => !p.thought).map((p) => p.text || "").join(""),
        thinking: parts.filter((p) => p.thought).map((p) => p.text || "").join(""),
      };
    },
    whole: (data) => DOORS.gemini.delta(null, data),
  },
};

/** A JSON body pretty-printed; anything else as it came. */
function pretty(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

/** Split server-sent events out of a growing text buffer; returns the unfinished rest. */
function drainEvents(buffer, onEvent) {
  const blocks = buffer.split(/\r?\n\r?\n/);
  const rest = blocks.pop();
  for (const block of blocks) {
    let event = "message";
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (data.length) onEvent(event, data.join("\n"));
  }
  return rest;
}

function pane(title, id, empty) {
  const pre = h("pre", { id });
  return { node: h("div", { class: "card pane" }, h("h3", null, title), pre, h("p", { class: "placeholder small muted" }, empty)), pre };
}

/** Read an answer (a stream or a whole body) into the answer box's two parts. */
async function readAnswer(response, d, ui) {
  const type = response.headers.get("content-type") || "";
  if (!type.startsWith("text/event-stream")) {
    const data = await response.json().catch(() => null);
    if (!response.ok || !data) {
      ui.text.append(`[HTTP ${response.status}] ${JSON.stringify(data)}`);
      return;
    }
    const whole = d.whole(data);
    ui.thinking.append(whole.thinking || "");
    ui.text.append(whole.text || "");
    return;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer = drainEvents(buffer + value, (name, data) => {
      if (data === "[DONE]") return;
      let parsed;
      try { parsed = JSON.parse(data); } catch { return; }
      const part = d.delta(name, parsed);
      if (part && part.thinking) ui.thinking.append(part.thinking);
      if (part && part.text) ui.text.append(part.text);
      if (parsed.error || parsed.type === "error") ui.text.append(`\n[error] ${JSON.stringify(parsed.error || parsed)}`);
    });
  }
}

/** The GLM side of one exchange, from the inspector's record of it. */
async function showUpstream(requestId, ui) {
  try {
    const found = await getJSON(`/dashboard/api/inspector/${encodeURIComponent(requestId)}`);
    const up = found.panes.upstream_request;
    const ans = found.panes.upstream_stream;
    ui.upReq.pre.textContent = up.size ? pretty(up.text) : "(nothing was sent upstream)";
    ui.upStream.pre.textContent = ans.size ? ans.text : "(no answer from upstream)";
  } catch (err) {
    ui.upReq.pre.textContent = `(not available: ${err.message})`;
  }
}

/** Send the form's prompt through the chosen door and show what happened. */
async function sendPrompt(ui) {
  const d = DOORS[ui.door.value];
  const model = ui.model.value.trim();
  const path = d.path(model, ui.stream.checked);
  const body = d.body(model, ui.prompt.value, ui.stream.checked);
  replace(ui.thinking); replace(ui.text); replace(ui.upReq.pre); replace(ui.upStream.pre);
  ui.sent.pre.textContent = `POST ${path}\n\n${JSON.stringify(body, null, 2)}`;
  ui.send.disabled = true;
  ui.status.textContent = "sending…";
  const started = performance.now();
  let requestId = null;
  try {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      // record this one exchange for the panes beside the answer, even with the inspector off
      headers: { "content-type": "application/json", "x-glmbridge-inspect": "on", ...d.headers },
      body: JSON.stringify(body),
    });
    requestId = response.headers.get("request-id");
    await readAnswer(response, d, ui);
    ui.status.textContent = `HTTP ${response.status} · ${Math.round(performance.now() - started)} ms · request ${requestId || "?"}`;
  } catch (err) {
    ui.status.textContent = `failed: ${err.message}`;
  } finally {
    ui.send.disabled = false;
  }
  if (requestId) await showUpstream(requestId, ui);
}

function controls(ctx) {
  const stream = h("input", { type: "checkbox", id: "pg-stream" });
  stream.checked = true;
  return {
    door: h("select", { id: "pg-door" }, Object.entries(DOORS).map(([k, d]) => h("option", { value: k }, d.label))),
    models: h("datalist", { id: "pg-models" }, ctx.overview.models.map((m) => h("option", { value: m }))),
    model: h("input", { id: "pg-model", list: "pg-models", value: ctx.overview.default_model, autocomplete: "off" }),
    stream,
    prompt: h("textarea", { id: "pg-prompt", rows: 5, placeholder: "Say hello in three languages." }),
    send: h("button", { type: "submit", id: "pg-send" }, "Send"),
    status: h("div", { class: "small muted", id: "pg-status" }),
    thinking: h("div", { class: "thinking" }),
    text: h("div"),
    sent: pane("Request sent (client side)", "pg-sent", "The request this page sends appears here."),
    upReq: pane("Upstream request (GLM side)", "pg-upstream-request", "What the server sent to GLM for it: the translation."),
    upStream: pane("Upstream answer (GLM side)", "pg-upstream-stream", "What GLM answered, before the server translated it back."),
  };
}

export async function mount(container, ctx) {
  const ui = controls(ctx);
  const form = h("form", { class: "card", id: "pg-form" },
    h("div", { class: "row" },
      h("div", null, h("label", { for: "pg-door" }, "Door"), ui.door),
      h("div", null, h("label", { for: "pg-model" }, "Model (a client name or a GLM id)"), ui.model, ui.models),
      h("label", { class: "switch", for: "pg-stream" }, ui.stream, "stream")),
    h("label", { for: "pg-prompt" }, "Prompt"), ui.prompt,
    h("div", { class: "row" }, ui.send, ui.status));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendPrompt(ui);
  });
  const answer = h("div", { class: "card" }, h("h3", null, "Answer"),
    h("div", { class: "answer", id: "pg-answer", "aria-live": "polite" }, ui.thinking, ui.text));
  replace(container, h("section", { class: "section" },
    h("div", { class: "section-head" }, h("h2", null, "Playground"),
      h("span", { class: "small muted" }, "Sent through the live pipeline: routing, keys and quota apply.")),
    h("div", { class: "playground" },
      h("div", null, form, answer, ui.sent.node),
      h("div", null, ui.upReq.node, ui.upStream.node))));
  if (!ctx.overview.models.length) replace(ui.status, notice("No models configured."));
}
