// semrec A/B dashboard: two systems side by side on the same query, "more like this", ask with its
// explanations, and live latency per system. Talks only to this server (serving/dashboard.py, /ask).
// Every text from the API goes into the page through textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const SIDES = ["a", "b"];
const state = {
  config: null,
  last: null,          // the last comparison: {kind: "search", text} or {kind: "similar", item}
  history: [],         // recent distinct query texts, newest last (what the replay button sends)
  timings: new Map(),  // system id -> [{server, roundTrip}] in ms, newest last
};

async function post(path, body) {
  const started = performance.now();
  const response = await fetch(path, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  const roundTrip = performance.now() - started;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = Array.isArray(data.detail) ? data.detail.join("; ") : data.detail;
    throw new Error(`${path}: ${response.status} ${detail || response.statusText}`);
  }
  return {data, roundTrip};
}

function showError(err) {
  $("error").textContent = err ? String(err.message || err) : "";
  $("error").hidden = !err;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function details(item) {
  return [item.creator, item.year, (item.categories || []).join(", ")].filter((v) => v).join(" · ");
}

// One result: title, details, score, optional explanation, and its "more like this" button.
function renderItem(item, inBoth) {
  const li = el("li", inBoth ? "item in-both" : "item");
  li.dataset.itemId = item.item_id;
  li.append(el("span", "title", item.title), el("span", "details", details(item)),
            el("span", "score", item.score.toFixed(3)));
  const more = el("button", "more-like", "more like this");
  more.type = "button";
  more.addEventListener("click", () => compareSimilar(item).catch(showError));
  li.append(more);
  if (item.explanation) li.append(el("p", "explanation", item.explanation));
  return li;
}

function renderList(list, items, otherIds) {
  list.replaceChildren(...items.map((item) => renderItem(item, otherIds && otherIds.has(item.item_id))));
}

function record(system, server, roundTrip) {
  const kept = state.timings.get(system) || [];
  kept.push({server, roundTrip});
  const limit = 1000;
  state.timings.set(system, kept.slice(-limit));
}

function percentile(values, p) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

// p50 / p99 of the server-side time, and queries per second one client in a loop would get.
function updateLive() {
  const window = Math.max(1, Number($("window").value) || 50);
  const rows = [];
  for (const info of state.config.systems) {
    const recent = (state.timings.get(info.id) || []).slice(-window);
    if (!recent.length) continue;
    const server = recent.map((t) => t.server);
    const total = server.reduce((sum, ms) => sum + ms, 0) / 1000;
    const tr = el("tr");
    tr.dataset.system = info.id;
    tr.append(el("td", "system", info.id), el("td", "count", String(recent.length)),
              el("td", "p50", percentile(server, 0.5).toFixed(2)),
              el("td", "p99", percentile(server, 0.99).toFixed(2)),
              el("td", "qps", total > 0 ? (recent.length / total).toFixed(1) : "-"),
              el("td", "round-trip", percentile(recent.map((t) => t.roundTrip), 0.5).toFixed(1)));
    rows.push(tr);
  }
  $("live-rows").replaceChildren(...rows);
}

const systemOf = (side) => $(`system-${side}`).value;
const k = () => Math.min(state.config.max_k, Math.max(1, Number($("k").value) || 10));

// Query both sides (one after the other, so neither is timed while the other runs), then render.
// A side whose system fails (e.g. an item only the other system knows) shows its error; the other renders.
async function compare(path, body, heading) {
  const answers = {};
  for (const side of SIDES) {
    const system = systemOf(side);
    try {
      const {data, roundTrip} = await post(path, {...body, system, k: k()});
      record(system, data.server_ms, roundTrip);
      answers[side] = data;
    } catch (err) {
      answers[side] = {items: [], error: err.message};
    }
  }
  const ids = Object.fromEntries(SIDES.map((s) => [s, new Set(answers[s].items.map((i) => i.item_id))]));
  for (const side of SIDES) {
    const answer = answers[side];
    renderList($(`results-${side}`), answer.items, ids[side === "a" ? "b" : "a"]);
    $(`status-${side}`).textContent = answer.error ? `${heading} · ${answer.error}`
      : `${heading} · ${answer.items.length} results · ${answer.server_ms.toFixed(2)} ms in the system`;
  }
  const shared = [...ids.a].filter((id) => ids.b.has(id)).length;
  $("overlap").textContent = `in both lists: ${shared} of ${Math.max(ids.a.size, ids.b.size)}`;
  updateLive();
}

async function compareSearch(text) {
  state.last = {kind: "search", text};
  state.history = [...state.history.filter((t) => t !== text), text].slice(-20);
  await compare("/dashboard/search", {text}, `“${text}”`);
}

async function compareSimilar(item) {
  state.last = {kind: "similar", item};
  await compare("/dashboard/similar", {item_id: item.item_id}, `more like ${item.title}`);
}

async function ask(text) {
  const {data} = await post("/ask", {text, k: k()});
  const request = data.request;
  const read = ["titles", "genres", "people", "themes"].filter((f) => request[f].length)
    .map((f) => `${f}: ${request[f].join(", ")}`);
  $("ask-request").textContent = [`intent: ${data.intent}`, ...read].join(" · ");
  $("ask-message").textContent = data.message;
  renderList($("ask-results"), data.items, null);
  $("ask-panel").hidden = false;
  $("ask-panel").scrollIntoView({block: "nearest"});
}

// Send the recent queries again, alternating systems, to fill the live panel.
async function replay() {
  const queries = state.history.length ? state.history : [$("query").value || "something good"];
  const button = $("bench");
  button.disabled = true;
  try {
    for (let i = 0; i < 20; i += 1) {
      for (const side of SIDES) {
        const system = systemOf(side);
        const {data, roundTrip} = await post("/dashboard/search",
                                             {system, text: queries[i % queries.length], k: k()});
        record(system, data.server_ms, roundTrip);
      }
      updateLive();
    }
  } finally {
    button.disabled = false;
  }
}

function rerun() {
  if (!state.last) return Promise.resolve();
  return state.last.kind === "search" ? compareSearch(state.last.text) : compareSimilar(state.last.item);
}

async function start() {
  const response = await fetch("/dashboard/systems");
  state.config = await response.json();
  const c = state.config;
  $("snapshot").textContent = `${c.catalog} · snapshot ${c.snapshot_id} · ${c.items} items`;
  $("k").max = String(c.max_k);
  SIDES.forEach((side, i) => {
    const select = $(`system-${side}`);
    select.replaceChildren(...c.systems.map((s) => {
      const option = el("option", null, s.label);
      option.value = s.id;
      return option;
    }));
    select.value = c.systems[Math.min(i, c.systems.length - 1)].id;
    select.addEventListener("change", () => rerun().catch(showError));
  });
  $("ask").disabled = !c.ask;
  if (!c.ask) $("ask").title = "this snapshot ships no intent/ folder";
  $("query-form").addEventListener("submit", (event) => {
    event.preventDefault();
    showError(null);
    compareSearch($("query").value.trim()).catch(showError);
  });
  $("ask").addEventListener("click", () => {
    showError(null);
    const text = $("query").value.trim();
    if (text) ask(text).catch(showError);
  });
  $("window").addEventListener("change", updateLive);
  $("bench").addEventListener("click", () => replay().catch(showError));
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", () => start().catch(showError));
