// bindsearch search page: vanilla JS, no build step. Talks to the JSON API of the same origin.
// Every value from the server is inserted with textContent or as a URL attribute, never as HTML.
"use strict";

const MODALITIES = ["image", "video", "audio", "text", "depth", "thermal", "imu"];
const KINDS = ["auto", ...MODALITIES];
const KEY_STORAGE = "bindsearch.apiKey";

const state = { parts: [], modalities: new Set(), nextId: 0 };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

function setStatus(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    return body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

// --- query parts ---------------------------------------------------------------------

function addPart(part) {
  state.parts.push({ weight: 1, uid: state.nextId++, ...part });
  renderParts();
}

function describe(part) {
  if (part.type === "text") return `“${part.text}”`;
  if (part.type === "item") return `item: ${part.label}`;
  return `${part.file.name}`;
}

function renderParts() {
  const list = $("parts");
  list.replaceChildren();
  for (const part of state.parts) {
    const value = el("output", { text: part.weight.toFixed(1) });
    const slider = el("input", {
      type: "range", min: "-2", max: "2", step: "0.1", value: String(part.weight),
      "aria-label": `weight of ${describe(part)}`, class: "weight",
      oninput: (event) => {
        part.weight = Number(event.target.value);
        value.textContent = part.weight.toFixed(1);
        item.classList.toggle("negative", part.weight < 0);
      },
    });
    const item = el("li", { "data-type": part.type }, el("span", { class: "what", title: describe(part), text: describe(part) }));
    if (part.type === "file") {
      const select = el("select", { "aria-label": "kind", onchange: (e) => { part.kind = e.target.value; } });
      for (const kind of KINDS) select.append(el("option", { value: kind, text: kind }));
      select.value = part.kind || "auto";
      item.append(select);
    }
    item.append(slider, value, el("button", {
      type: "button", title: "remove", "aria-label": "remove part", text: "×",
      onclick: () => { state.parts = state.parts.filter((p) => p !== part); renderParts(); },
    }));
    item.classList.toggle("negative", part.weight < 0);
    list.append(item);
  }
}

function takeText() {
  const text = $("text").value.trim();
  if (text) addPart({ type: "text", text });
  $("text").value = "";
}

function addFiles(files) {
  for (const file of files) addPart({ type: "file", file, kind: "auto" });
}

// --- search --------------------------------------------------------------------------

function requestBody() {
  const body = {
    parts: [], modalities: [...state.modalities],
    top_k: Math.max(1, Math.min(1000, Number($("top-k").value) || 12)),
    segments: $("segments").checked,
  };
  const files = [];
  state.parts.forEach((part, i) => {
    const weight = part.weight;
    if (part.type === "text") body.parts.push({ text: part.text, weight });
    else if (part.type === "item") body.parts.push({ id: part.id, weight });
    else {
      const field = `f${i}`;
      const entry = { upload: field, weight };
      if (part.kind && part.kind !== "auto") entry.kind = part.kind;
      body.parts.push(entry);
      files.push([field, part.file]);
    }
  });
  if (!files.length) {
    return { headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  }
  const form = new FormData();
  form.append("query", JSON.stringify(body));
  for (const [field, file] of files) form.append(field, file, file.name);
  return { headers: {}, body: form };
}

async function search() {
  takeText();
  if (!state.parts.length) { setStatus("Type some text or drop a file first."); return; }
  const { headers, body } = requestBody();
  setStatus("Searching…");
  const response = await fetch("/search", { method: "POST", headers: { ...headers, ...authHeaders() }, body });
  if (!response.ok) { setStatus(await errorText(response), true); return; }
  const result = await response.json();
  setStatus(`${result.hits.length} results for ${result.query.join("  ")} in ${result.took_ms.toFixed(0)} ms`);
  renderHits(result.hits);
}

function timeRange(hit) {
  if (hit.start_s === null || hit.end_s === null) return "";
  return ` ${hit.start_s.toFixed(1)}–${hit.end_s.toFixed(1)} s`;
}

function preview(hit) {
  const start = hit.start_s || 0;
  const box = el("div", { class: "media" });
  if (["image", "depth", "thermal"].includes(hit.modality) && !/\.(npy|csv)$/i.test(hit.path)) {
    box.append(el("img", { src: hit.media_url, alt: hit.path, loading: "lazy" }));
  } else if (hit.modality === "video") {
    box.append(el("video", { src: `${hit.media_url}#t=${start}`, preload: "metadata", muted: "", controls: "" }));
  } else if (hit.modality === "audio") {
    const audio = el("audio", { src: `${hit.media_url}#t=${start}`, preload: "metadata", controls: "" });
    // Start at the moment that matched, also where media fragments are not honoured.
    audio.addEventListener("loadedmetadata", () => { if (audio.currentTime < start) audio.currentTime = start; });
    box.append(audio);
  } else if (hit.modality === "text") {
    box.append(el("blockquote", { text: hit.text || "" }));
  } else {
    box.append(el("span", { class: "muted", text: hit.modality }));
  }
  return box;
}

function renderHits(hits) {
  const grid = $("results");
  grid.replaceChildren();
  for (const hit of hits) {
    const name = hit.path.split("/").pop();
    const card = el("article", { class: "card", "data-id": hit.id, title: "Search by this result (shift: add it to the query)" },
      preview(hit),
      el("div", { class: "meta" },
        el("span", { class: "score", text: `#${hit.rank} ${hit.score.toFixed(4)}` }),
        el("span", { class: "badge", text: hit.modality }),
        el("span", { class: "muted", text: timeRange(hit) }),
        el("div", { class: "path", text: hit.path })));
    card.addEventListener("click", (event) => {
      if (event.target.closest("audio, video")) return;
      if (!event.shiftKey) state.parts = [];
      addPart({ type: "item", id: hit.id, label: name + timeRange(hit) });
      search().catch((err) => setStatus(String(err), true));
    });
    grid.append(card);
  }
}

// --- page set-up ---------------------------------------------------------------------

function setUpChips() {
  for (const modality of MODALITIES) {
    const chip = el("button", { type: "button", class: "chip", "aria-pressed": "false", "data-modality": modality, text: modality });
    chip.addEventListener("click", () => {
      if (state.modalities.has(modality)) state.modalities.delete(modality); else state.modalities.add(modality);
      chip.setAttribute("aria-pressed", String(state.modalities.has(modality)));
    });
    $("chips").append(chip);
  }
}

function setUpDrop() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); addFiles(e.dataTransfer.files); });
  $("file-input").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
}

async function loadStats() {
  const response = await fetch("/stats", { headers: authHeaders() });
  if (!response.ok) { $("stats").textContent = response.status === 401 ? "enter the API key" : ""; return; }
  const stats = await response.json();
  const counts = Object.entries(stats.rows_by_modality).map(([m, n]) => `${n} ${m}`).join(", ");
  $("stats").textContent = `${stats.rows_total} items (${counts}) · ${stats.model}`;
}

function init() {
  const key = $("api-key");
  key.value = localStorage.getItem(KEY_STORAGE) || "";
  key.addEventListener("change", () => { localStorage.setItem(KEY_STORAGE, key.value.trim()); loadStats(); });
  setUpChips();
  setUpDrop();
  $("add-text").addEventListener("click", takeText);
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search().catch((err) => setStatus(String(err), true)); });
  loadStats().catch(() => {});
}

document.addEventListener("DOMContentLoaded", init);
