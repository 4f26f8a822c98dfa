// galera-pilot dashboard: one page, read-only, fed by server-sent events (/events).
// The server sends `state` (the whole frame and 15 minutes of samples) when the page connects, then
// `update` after every look at the cluster (new samples, and the frame when it changed). Everything is
// drawn with the DOM and SVG: no third-party code, and no text from the cluster is ever parsed as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const FLASH_MS = 4000;
const CHARTS = [
  { key: 1, label: "commits/s", digits: 0 },
  { key: 2, label: "recv queue", digits: 0 },
  { key: 3, label: "flow control", digits: 1, percent: true },
];

const page = { frame: null, series: {}, window: 900, cards: new Map(), seen: new Map() };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function clock(seconds) {
  if (!seconds) return "";
  const d = new Date(seconds * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function ago(seconds) {
  if (!seconds) return "unknown (before the history kept)";
  const s = Math.max(0, Date.now() / 1000 - seconds);
  if (s < 90) return `${clock(seconds)} (${s.toFixed(0)} s ago)`;
  if (s < 5400) return `${clock(seconds)} (${(s / 60).toFixed(0)} min ago)`;
  return `${new Date(seconds * 1000).toLocaleString()} (${(s / 3600).toFixed(1)} h ago)`;
}

function stateClass(state) {
  if (state === "Synced") return "ok";
  if (["Donor/Desynced", "Joiner", "Joined", "Donor", "starting", "joining"].includes(state)) return "busy";
  return "bad";
}

function setText(id, text) {
  const node = document.getElementById(id);
  if (node.textContent !== String(text)) node.textContent = String(text);
}

// ---- the cluster header ---------------------------------------------------------------------------
function renderCluster(frame) {
  const c = frame.cluster;
  setText("cluster-name", c.name);
  setText("writer", c.writer || "none");
  document.getElementById("writer").className = c.writer ? "writer" : "bad";
  setText("writer-since", c.writer ? ago(c.writer_since) : "");
  setText("synced", `${c.synced} of ${c.members} Synced`);
  setText("uuid", c.uuid || "unknown");
  setText("dcs", `${c.dcs} — ${c.dcs_ok ? "answers" : "UNREACHABLE"}`);
  document.getElementById("dcs").className = c.dcs_ok ? "" : "bad";
  const endpoints = Object.entries(c.endpoints).map(([role, bind]) => `${role} ${bind}`).join(", ");
  setText("endpoints", endpoints || "none known here");
  const error = document.getElementById("dcs-error");
  error.hidden = c.dcs_ok;
  error.textContent = c.dcs_error;
  setText("updated", `updated ${clock(frame.at)}`);
}

// ---- one card per member --------------------------------------------------------------------------
function newCard(name) {
  const card = el("article", "card");
  card.dataset.member = name;
  const head = el("div", "card-head");
  head.append(el("h2", "name", name), el("span", "role"), el("span", "state"));
  const facts = el("dl", "facts small");
  for (const [key, label] of [["status", "cluster"], ["seqno", "seqno"], ["queues", "recv / send queue"],
                              ["flow", "flow control"], ["version", "version"], ["address", "address"]]) {
    const row = el("div");
    row.append(el("dt", null, label), el("dd", `f-${key}`));
    facts.append(row);
  }
  const checks = el("div", "checks");
  for (const check of ["health", "read", "writer"]) {
    const pill = el("span", "check", `/${check}`);
    pill.dataset.check = check;
    checks.append(pill);
  }
  const charts = el("div", "charts");
  for (const chart of CHARTS) {
    const box = el("figure", "chart");
    box.dataset.chart = chart.label;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 300 60");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.append(document.createElementNS(SVG, "path"));
    const caption = el("figcaption", null, chart.label);
    caption.append(el("span", "last"));
    box.append(svg, caption);
    charts.append(box);
  }
  card.append(head, el("p", "activity"), checks, facts, el("p", "api muted"), charts);
  return card;
}

function flash(node) {
  node.classList.remove("changed");
  void node.offsetWidth; // restart the animation
  node.classList.add("changed");
  node.dataset.changedAt = String(Date.now());
}

function update(node, text) {
  text = text === undefined || text === null ? "" : String(text);
  if (node.textContent === text) return false;
  node.textContent = text;
  return true;
}

function renderCard(card, m) {
  const q = (selector) => card.querySelector(selector);
  const before = page.seen.get(m.name);
  card.dataset.state = m.state;
  card.dataset.role = m.role || "";
  card.classList.toggle("is-writer", m.role === "writer");
  update(q(".name"), (m.role === "writer" ? "★ " : "") + m.name);
  update(q(".role"), m.role || "—");
  q(".role").className = `role role-${m.role || "none"}`;
  const state = q(".state");
  update(state, m.state);
  state.className = `state ${stateClass(m.state)}`;
  if (before && (before.state !== m.state || before.role !== m.role)) flash(card);
  page.seen.set(m.name, { state: m.state, role: m.role });
  update(q(".activity"), m.activity);
  update(q(".f-status"), m.cluster_status ? `${m.cluster_status}, size ${m.cluster_size}` : "—");
  update(q(".f-seqno"), m.seqno >= 0 ? m.seqno : "—");
  const queues = m.recv_queue === null || m.recv_queue === undefined ? "—" : `${m.recv_queue} / ${m.send_queue ?? "—"}`;
  update(q(".f-queues"), queues);
  update(q(".f-flow"), m.flow_control === null || m.flow_control === undefined ? "—"
                                                                                : `${(m.flow_control * 100).toFixed(1)} %`);
  update(q(".f-version"), m.version || "—");
  update(q(".f-address"), m.address || "—");
  for (const pill of card.querySelectorAll(".check")) {
    const verdict = m.checks ? m.checks[pill.dataset.check] : null;
    pill.className = `check ${verdict ? (verdict.ok ? "pass" : "fail") : "unknown"}`;
    pill.title = verdict ? `${verdict.ok ? "200" : "503"}: ${verdict.reason}` : "its REST API did not answer";
    pill.dataset.ok = verdict ? String(verdict.ok) : "";
  }
  update(q(".api"), m.api === "answered" ? "" : `REST API: ${m.api}`);
}

function renderMembers(frame) {
  const box = document.getElementById("members");
  const names = frame.members.map((m) => m.name);
  for (const [name, card] of page.cards) {
    if (!names.includes(name)) { card.remove(); page.cards.delete(name); page.seen.delete(name); }
  }
  frame.members.forEach((m, index) => {
    let card = page.cards.get(m.name);
    if (!card) { card = newCard(m.name); page.cards.set(m.name, card); }
    if (box.children[index] !== card) box.insertBefore(card, box.children[index] || null);
    renderCard(card, m);
  });
}

// ---- charts ---------------------------------------------------------------------------------------
function drawCharts() {
  // The time axis spans what the dashboard holds, up to its window (15 minutes), and at least a minute:
  // a dashboard started a moment ago draws its first minute across the chart, not as a sliver at its edge.
  const now = page.frame ? page.frame.at : Date.now() / 1000;
  const oldest = Math.min(now, ...Object.values(page.series).filter((s) => s.length).map((s) => s[0][0]));
  const start = Math.min(now - 60, Math.max(now - page.window, oldest));
  const minutes = Math.round((now - start) / 60);
  setText("chart-span", minutes >= 15 ? "the last 15 minutes" : `the last ${Math.max(1, minutes)} min`);
  for (const [name, card] of page.cards) {
    const samples = page.series[name] || [];
    card.querySelectorAll(".chart").forEach((box, i) => drawChart(box, CHARTS[i], samples, start, now));
  }
}

function drawChart(box, chart, samples, start, now) {
  const values = samples.map((s) => s[chart.key]).filter((v) => v !== null && v !== undefined);
  const top = Math.max(chart.percent ? 0.05 : 1, ...values);
  let d = "";
  let pen = false;
  for (const s of samples) {
    const v = s[chart.key];
    if (v === null || v === undefined || s[0] < start) { pen = false; continue; }
    const x = ((s[0] - start) / (now - start)) * 300;
    const y = 58 - (v / top) * 54;
    d += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
    pen = true;
  }
  box.querySelector("path").setAttribute("d", d);
  const last = samples.length ? samples[samples.length - 1][chart.key] : null;
  const shown = last === null || last === undefined ? "—"
    : chart.percent ? `${(last * 100).toFixed(chart.digits)} %` : Number(last).toFixed(chart.digits);
  box.querySelector(".last").textContent = ` ${shown} (max ${chart.percent ? (top * 100).toFixed(1) + " %" : top.toFixed(0)})`;
}

function addSamples(series) {
  const horizon = Date.now() / 1000 - page.window - 60;
  for (const [name, samples] of Object.entries(series)) {
    const kept = (page.series[name] || []).concat(samples);
    page.series[name] = kept.filter((s) => s[0] >= horizon);
  }
}

// ---- history --------------------------------------------------------------------------------------
function renderHistory(frame) {
  const list = document.getElementById("history");
  document.getElementById("history-note").hidden = frame.cluster.dcs_ok;
  if (!frame.cluster.dcs_ok) return; // keep what was shown: the outage note says why it stands still
  const key = JSON.stringify(frame.history.slice(0, 1)) + frame.history.length;
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  list.replaceChildren(...frame.history.map((e) => {
    const item = el("li", `event action-${e.action}`);
    item.append(el("time", "mono", clock(e.at)), el("span", "member", e.member), el("span", "action", e.action),
                el("span", "reason", e.reason));
    return item;
  }));
}

// ---- wiring ---------------------------------------------------------------------------------------
function render(frame) {
  if (!frame) return;
  page.frame = frame;
  renderCluster(frame);
  renderMembers(frame);
  renderHistory(frame);
}

function link(state, text) {
  const node = document.getElementById("link");
  node.className = `link ${state}`;
  node.textContent = text;
}

function connect() {
  const events = new EventSource("/events");
  events.addEventListener("state", (message) => {
    const data = JSON.parse(message.data);
    page.window = data.window || page.window;
    page.series = {};
    addSamples(data.series || {});
    render(data.frame);
    drawCharts();
    link("live", "live");
  });
  events.addEventListener("update", (message) => {
    const data = JSON.parse(message.data);
    addSamples(data.series || {});
    if (data.frame) render(data.frame);
    else if (page.frame && data.at) { page.frame.at = data.at; setText("updated", `updated ${clock(data.at)}`); }
    drawCharts();
    link("live", "live");
  });
  events.onerror = () => link("connecting", "reconnecting… (the dashboard process does not answer)");
}

connect();
