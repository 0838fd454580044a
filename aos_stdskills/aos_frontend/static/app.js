// aos-frontend: the AgentOS web UI. Vanilla JS, no build step.
//
// Safety rule: the DOM is built with createElement and textContent only. Model
// output, tool output, skill descriptions... are always text, never markup.
"use strict";

// -- DOM helpers -------------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function link(hash, text) {
  return el("a", { href: hash }, text);
}

function badge(text, kind) {
  return el("span", { class: `badge ${kind || text}` }, text);
}

/** "N calls · X in + Y out tokens · $C" of a session's or agent's usage totals. */
function usageText(u) {
  const n = (x) => x.toLocaleString("en-US");
  const cost = u.cost === null || u.cost === undefined ? "" : ` · $${u.cost.toFixed(4)}`;
  return `${n(u.calls)} model calls · ${n(u.input_tokens)} in + ${n(u.output_tokens)} out tokens${cost}`;
}

async function usageOf(id, by) {
  const [totals] = await api("GET", "/usage" + query({ ids: id, by }));
  return usageText(totals);
}

const count = (x) => (x || 0).toLocaleString("en-US");
const dollars = (cost) => (cost === null || cost === undefined ? "" : `$${cost.toFixed(4)}`);

/** "1,234 in + 56 out tokens · $0.0012" of a model call's or a dispatch's usage fact. */
function tokensText(usage) {
  if (!usage) return "";
  const cost = dollars(usage.cost);
  return `${count(usage.prompt_tokens)} in + ${count(usage.completion_tokens)} out tokens${cost ? " · " + cost : ""}`;
}

/** "3.2 s", "1 min 5 s" of a duration in seconds. */
function duration(seconds) {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

/** A time for people: "just now", "5 min ago", "3 h ago", else the date. */
function ago(ts) {
  const seconds = Date.now() / 1000 - ts;
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(ts * 1000).toLocaleDateString();
}

/** A message's time: relative, the exact time on hover. */
function stamp(ts) {
  return el("time", { class: "when", datetime: new Date(ts * 1000).toISOString(), title: when(ts) }, ago(ts));
}

function when(ts) {
  if (!ts) return "";
  return new Date(ts * 1000).toLocaleString();
}

function errorBox() {
  const box = el("p", { class: "error", role: "alert" });
  box.hidden = true;
  box.show = (err) => {
    box.textContent = err ? String(err.message || err) : "";
    box.hidden = !err;
  };
  return box;
}

// -- the API -----------------------------------------------------------------------

async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body || {});
  }
  const response = await fetch("/api" + path, init);
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error;
    const err = new Error(error ? `${error.code}: ${error.message}` : `HTTP ${response.status}`);
    err.status = response.status;
    throw err;
  }
  return data;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? "?" + text : "";
}

const enc = encodeURIComponent;

// -- pages, routing, live updates ----------------------------------------------------

const main = document.getElementById("main");
let cleanups = [];
let generation = 0;

function onLeave(fn) {
  cleanups.push(fn);
}

function stream(url, handlers) {
  const source = new EventSource(url);
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => fn(JSON.parse(event.data), event));
  }
  onLeave(() => source.close());
  return source;
}

// One stream of "something changed" for the whole page.
const changeListeners = new Set();
function startChanges() {
  const indicator = document.getElementById("connection");
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => {
    indicator.textContent = "live";
    indicator.classList.add("live");
  });
  source.addEventListener("error", () => {
    indicator.textContent = "reconnecting";
    indicator.classList.remove("live");
  });
  source.addEventListener("change", (event) => {
    const change = JSON.parse(event.data);
    for (const fn of changeListeners) fn(change);
  });
}

function onChange(fn) {
  changeListeners.add(fn);
  onLeave(() => changeListeners.delete(fn));
}

function debounce(fn, ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

function every(ms, fn) {
  const timer = setInterval(fn, ms);
  onLeave(() => clearInterval(timer));
}

const routes = [
  [/^#\/agents\/?$/, "agents", () => agentsPage()],
  [/^#\/agents\/([^/]+)$/, "agents", (m) => agentPage(decodeURIComponent(m[1]))],
  [/^#\/sessions\/?(\?.*)?$/, "sessions", () => sessionsPage()],
  [/^#\/sessions\/([^/?]+)$/, "sessions", (m) => sessionPage(decodeURIComponent(m[1]))],
  [/^#\/sessions\/([^/?]+)\/context$/, "sessions", (m) => contextPage(decodeURIComponent(m[1]))],
  [/^#\/skills\/?$/, "skills", () => skillsPage()],
  [/^#\/hooks\/?$/, "hooks", () => hooksPage()],
  [/^#\/log\/?(\?.*)?$/, "log", () => logPage()],
  [/^#\/nodes\/?$/, "nodes", () => nodesPage()],
];

function route() {
  for (const fn of cleanups) fn();
  cleanups = [];
  generation += 1;
  const hash = location.hash || "#/agents";
  for (const [pattern, nav, render] of routes) {
    const match = hash.match(pattern);
    if (!match) continue;
    for (const a of document.querySelectorAll("#nav a")) {
      a.classList.toggle("current", a.dataset.page === nav);
    }
    const page = el("section", { class: "page" });
    main.replaceChildren(page);
    render(match).then(
      (content) => page.replaceChildren(content),
      (err) => page.replaceChildren(el("p", { class: "error" }, String(err.message || err))),
    );
    return;
  }
  main.replaceChildren(el("p", { class: "error" }, "No such page: ", hash));
}

// -- agents ------------------------------------------------------------------------------

const agentNames = new Map();

async function loadAgents(status) {
  const agents = await api("GET", "/agents" + query({ status }));
  for (const a of agents) agentNames.set(a.id, a.name);
  return agents;
}

async function agentName(id) {
  if (!agentNames.has(id)) {
    try {
      const info = await api("GET", "/agents/" + enc(id));
      agentNames.set(id, info.agent.name);
    } catch (_) {
      agentNames.set(id, id);
    }
  }
  return agentNames.get(id);
}

async function agentsPage() {
  const error = errorBox();
  const tree = el("div", { id: "agent-tree", class: "panel" });
  const showArchived = el("input", { type: "checkbox", id: "show-archived" });
  const name = el("input", { name: "name", id: "agent-name", required: true, placeholder: "name" });
  const parent = el("select", { name: "parent", id: "agent-parent" });
  const model = el("input", { name: "model", id: "agent-model", placeholder: "inherited" });
  const skills = el("input", { name: "skills", id: "agent-skills", placeholder: "on top of the defaults" });
  const prompt = el("textarea", { name: "prompt", id: "agent-prompt", rows: 2, placeholder: "added to the system prompt" });
  const form = el(
    "form",
    { class: "inline", id: "create-agent" },
    el("label", null, "Name", name),
    el("label", null, "Parent", parent),
    el("label", null, "Model", model),
    el("label", null, "Skills", skills),
    el("label", { class: "wide" }, "System-prompt addition", prompt),
    el("button", { type: "submit" }, "Create agent"),
  );

  async function load() {
    const agents = await loadAgents(showArchived.checked ? undefined : "active");
    const children = new Map();
    const ids = new Set(agents.map((a) => a.id));
    for (const a of agents) {
      const key = a.parent && ids.has(a.parent) ? a.parent : "";
      if (!children.has(key)) children.set(key, []);
      children.get(key).push(a);
    }
    const branch = (key, root) => {
      const list = el("ul", { class: root ? "tree root" : "tree" });
      for (const a of (children.get(key) || []).sort((x, y) => x.created_at - y.created_at)) {
        const archive = el("button", { class: "danger archive", type: "button" }, "Archive");
        archive.disabled = a.status !== "active";
        archive.addEventListener("click", async () => {
          error.show(null);
          try {
            if (await archiveAgent(a)) await load();
          } catch (err) {
            error.show(err);
          }
        });
        const row = el(
          "div",
          { class: "agent-row" },
          link(`#/agents/${enc(a.id)}`, el("span", { class: "agent-name" }, a.name)),
          el("span", { class: "mono muted" }, a.id),
          a.config && a.config.model ? el("span", { class: "muted" }, "model ", a.config.model) : null,
          a.status !== "active" ? badge(a.status) : null,
          archive,
        );
        list.append(el("li", { "data-agent-id": a.id }, row, children.has(a.id) ? branch(a.id) : null));
      }
      return list;
    };
    tree.replaceChildren(agents.length ? branch("", true) : el("p", { class: "muted" }, "No agents yet."));
    const chosen = parent.value;
    parent.replaceChildren(
      el("option", { value: "" }, "(none: a root agent)"),
      ...agents.filter((a) => a.status === "active").map((a) => el("option", { value: a.id }, `${a.name} (${a.id})`)),
    );
    parent.value = chosen;
  }

  showArchived.addEventListener("change", () => load().catch((err) => error.show(err)));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.show(null);
    try {
      const config = configFrom({}, model, skills, prompt);
      await api("POST", "/agents", { name: name.value.trim(), parent: parent.value || null, config });
      for (const input of [name, model, skills, prompt]) input.value = "";
      await load();
    } catch (err) {
      error.show(err);
    }
  });
  await load();
  const mine = generation;
  every(5000, () => mine === generation && load().catch(() => {}));
  return el(
    "div",
    { id: "agents-page" },
    el("h1", null, "Agents"),
    el("label", { class: "muted" }, showArchived, " show archived"),
    tree,
    el("h2", null, "Create an agent"),
    form,
    error,
  );
}

const AGENT_SESSIONS = 50; // the most recently active sessions the agent page lists

async function agentPage(id) {
  const error = errorBox();
  const info = await api("GET", "/agents/" + enc(id));
  const agent = info.agent;
  const effective = info.effective;
  agentNames.set(agent.id, agent.name);
  const sessions = sessionTable(false);
  const title = el("input", { name: "title", id: "session-title", placeholder: "title (optional)" });
  const form = el(
    "form",
    { class: "inline", id: "create-session" },
    el("label", null, "Title", title),
    el("button", { type: "submit" }, "New session"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.show(null);
    try {
      const scb = await api("POST", "/sessions", { agent_id: agent.id, title: title.value.trim() });
      location.hash = `#/sessions/${enc(scb.id)}`;
    } catch (err) {
      error.show(err);
    }
  });

  const more = el("p", { class: "muted", id: "agent-sessions-more" }, link(`#/sessions?agent_id=${enc(agent.id)}`, "All its sessions, with search and filters →"));
  async function load() {
    const found = await api("GET", "/sessions" + query({ agent_id: agent.id, limit: AGENT_SESSIONS }));
    more.hidden = found.length < AGENT_SESSIONS;
    await sessions.fill(found);
  }
  await load();
  const reload = debounce(() => load().catch(() => {}), 300);
  onChange((change) => {
    if (change.topic === "history.append" && change.agent_id === agent.id) reload();
  });
  every(10000, reload);

  const archive = el("button", { class: "danger", type: "button", id: "archive-agent" }, "Archive agent");
  archive.disabled = agent.status !== "active";
  archive.addEventListener("click", async () => {
    error.show(null);
    try {
      if (await archiveAgent(agent)) location.hash = "#/agents";
    } catch (err) {
      error.show(err);
    }
  });
  const edit = await agentEditor(agent, effective, error);
  const parentLink = agent.parent ? link(`#/agents/${enc(agent.parent)}`, await agentName(agent.parent)) : "(root)";
  const children = await api("GET", "/agents" + query({ parent: agent.id }));
  const childLinks = children.length
    ? children.map((c) => el("span", { class: "child" }, link(`#/agents/${enc(c.id)}`, c.name), " "))
    : "(none)";
  return el(
    "div",
    { id: "agent-page" },
    el("p", null, link("#/agents", "← Agents")),
    el("h1", null, agent.name, " ", agent.status !== "active" ? badge(agent.status) : null),
    el(
      "dl",
      { class: "kv panel" },
      el("dt", null, "id"), el("dd", { class: "mono" }, agent.id),
      el("dt", null, "parent"), el("dd", null, parentLink),
      el("dt", null, "children"), el("dd", { id: "agent-children" }, childLinks),
      el("dt", null, "model"), el("dd", null, effective.model || "(none configured)"),
      el("dt", null, "skills"), el("dd", null, effective.skills.length ? effective.skills.join(", ") : "(the defaults)"),
      el("dt", null, "prompt"), el("dd", { class: "prompt-text" }, effective.prompt || "(the node's only)"),
      el("dt", null, "scopes"), el("dd", { class: "mono" }, effective.scopes.join(" ")),
      el("dt", null, "max steps"), el("dd", null, String(effective.max_steps)),
      el("dt", null, "created"), el("dd", null, when(agent.created_at)),
      el("dt", null, "usage"), el("dd", { id: "agent-usage" }, await usageOf(agent.id, "agent")),
    ),
    el("h2", null, "Edit"),
    edit,
    el("p", null, archive),
    el("h2", null, "Sessions"),
    sessions.node,
    more,
    el("h2", null, "Messages between this agent and its children"),
    await a2aTable([agent, ...children]),
    el("h2", null, "Open a session"),
    form,
    error,
  );
}

/** An agent's config with the model, skills and prompt of a form's inputs (an empty
 * one drops the key: inherited again). */
function configFrom(base, model, skills, prompt) {
  const config = { ...base };
  const named = skills.value.split(",").map((x) => x.trim()).filter(Boolean);
  const set = (key, value) => (value ? (config[key] = value) : delete config[key]);
  set("model", model.value.trim());
  set("skills", named.length ? named : null);
  set("prompt", prompt.value.trim());
  return config;
}

/** Archive an agent once the person confirmed it (agent.archive, audited); false
 * when they did not. */
async function archiveAgent(agent) {
  const sure = confirm(`Archive the agent “${agent.name}”? Its running dispatches are interrupted and its sessions cannot run again.`);
  if (sure) await api("POST", `/agents/${enc(agent.id)}/archive`);
  return sure;
}

/** The form that edits an agent: model, skills, system-prompt addition, parent. It
 * sends the whole config (agent.update replaces it), and the parent when it moved. */
async function agentEditor(agent, effective, error) {
  const config = agent.config;
  const model = el("input", { name: "model", id: "edit-model", value: config.model || "", placeholder: `inherit (${effective.model || "none"})` });
  const skills = el("input", { name: "skills", id: "edit-skills", value: (config.skills || []).join(", "), placeholder: "skills on top of the defaults" });
  const prompt = el("textarea", { name: "prompt", id: "edit-prompt", rows: 3, placeholder: "text added to the system prompt (after the node's and the ancestors')" });
  prompt.value = config.prompt || "";
  const everyone = await loadAgents("active");
  const below = new Set([agent.id]); // the agent and its descendants: no parent for it
  for (let grew = true; grew; ) {
    const more = everyone.filter((a) => a.parent && below.has(a.parent) && !below.has(a.id));
    for (const a of more) below.add(a.id);
    grew = more.length > 0;
  }
  const parent = el(
    "select",
    { name: "parent", id: "edit-parent" },
    el("option", { value: "" }, "(none: a root agent)"),
    everyone.filter((a) => !below.has(a.id)).map((a) => el("option", { value: a.id }, `${a.name} (${a.id})`)),
  );
  parent.value = agent.parent || "";
  const form = el(
    "form",
    { class: "inline", id: "edit-agent" },
    el("label", null, "Model", model),
    el("label", null, "Skills", skills),
    el("label", null, "Parent", parent),
    el("label", { class: "wide" }, "System-prompt addition", prompt),
    el("button", { type: "submit" }, "Save"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.show(null);
    const body = { config: configFrom(config, model, skills, prompt) };
    if (parent.value !== (agent.parent || "")) body.parent = parent.value; // "": a root
    try {
      await api("POST", `/agents/${enc(agent.id)}`, body); // agent.update: audited
      route();
    } catch (err) {
      error.show(err);
    }
  });
  return form;
}

const A2A_SESSIONS = 50; // the sessions read, newest activity first
const A2A_SHOWN = 50;

/** The a2a messages in the sessions of these agents (an agent and its children):
 * sender, receiver, mode, text, with links to both sessions. */
async function a2aTable(agents) {
  const ids = new Set(agents.map((a) => a.id));
  const sessions = (await Promise.all(agents.map((a) => api("GET", "/sessions" + query({ agent_id: a.id, limit: A2A_SESSIONS }))))).flat();
  const recent = sessions.sort((a, b) => b.updated_at - a.updated_at).slice(0, A2A_SESSIONS);
  const histories = await Promise.all(recent.map((s) => api("GET", `/sessions/${enc(s.id)}/history` + query({ kinds: "a2a.message" }))));
  const messages = histories
    .flat()
    .filter((e) => ids.has(e.fact.from_agent) || ids.has(e.fact.to_agent))
    .sort((a, b) => b.ts - a.ts)
    .slice(0, A2A_SHOWN);
  if (!messages.length) return el("p", { class: "muted", id: "agent-a2a" }, "No messages between them yet.");
  const names = new Map();
  for (const e of messages) for (const id of [e.fact.from_agent, e.fact.to_agent]) names.set(id, await agentName(id));
  const sessionLink = (sid) => (sid ? link(`#/sessions/${enc(sid)}`, "session") : "—");
  return el(
    "div",
    { class: "scroll" },
    el(
      "table",
      { id: "agent-a2a" },
      el("thead", null, el("tr", null, ...["when", "from", "to", "mode", "message"].map((h) => el("th", null, h)))),
      el(
        "tbody",
        null,
        messages.map((e) =>
          el(
            "tr",
            { "data-message-id": e.fact.message_id },
            el("td", null, stamp(e.ts)),
            el("td", { class: "a2a-from" }, link(`#/agents/${enc(e.fact.from_agent)}`, names.get(e.fact.from_agent)), " · ", sessionLink(e.fact.from_session)),
            el("td", { class: "a2a-to" }, link(`#/agents/${enc(e.fact.to_agent)}`, names.get(e.fact.to_agent)), " · ", sessionLink(e.session_id)),
            el("td", null, e.fact.mode, e.fact.reply_to ? el("div", { class: "muted small" }, "reply to ", e.fact.reply_to) : null),
            el("td", { class: "a2a-text" }, e.fact.text.length > 300 ? e.fact.text.slice(0, 300) + "…" : e.fact.text),
          ),
        ),
      ),
    ),
  );
}

// -- chat ------------------------------------------------------------------------------------

const LONG_LINES = 12;
const LONG_CHARS = 1500;

function toolStatusText(result) {
  switch (result.status) {
    case "ok":
      return `exit ${result.exit_code ?? 0}`;
    case "error":
      return result.exit_code !== null && result.exit_code !== undefined ? `exit ${result.exit_code}` : "error";
    case "timeout":
      return "timed out";
    case "rejected":
      return `rejected by ${result.rejected_by || "a hook"}`;
    default:
      return result.status;
  }
}

function senderLabel(sender) {
  if (!sender || sender === "user") return "you";
  if (sender === "service:aos-frontend") return "you (web UI)";
  return `from ${sender}`;
}

class Transcript {
  constructor(sessionId, onStatus) {
    this.sessionId = sessionId;
    this.onStatus = onStatus;
    this.node = el("div", { class: "transcript", "aria-live": "polite" });
    this.tools = [];
    this.calls = []; // the blocks of the latest reply's calls: a call is its reply and index
    this.pending = null;
    this.lastSeq = 0;
    this.turn = null; // the running dispatch: when it started, the models it asked
  }

  /** Whether the person is at the newest turn (then the page follows what comes). */
  following() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
  }

  add(node) {
    const follow = this.following();
    this.node.append(node);
    if (follow) node.scrollIntoView({ block: "end" });
    return node;
  }

  bubble(kind, who, ts) {
    const text = el("div", { class: "text" });
    const reasoning = el("div", { class: "reasoning" });
    reasoning.hidden = true;
    const head = el("div", { class: "who" }, who, " ", ts ? stamp(ts) : null);
    const node = el("div", { class: `bubble ${kind}` }, head, reasoning, text);
    node.textNode = text;
    node.reasoningNode = reasoning;
    node.head = head;
    return node;
  }

  // The model's text as it streams: appended piece by piece to the pending bubble.
  delta(data) {
    if (!this.pending) {
      this.pending = this.add(this.bubble("assistant pending", "assistant"));
      this.pending.dataset.deltas = "0";
    }
    const target = data.kind === "reasoning" ? this.pending.reasoningNode : this.pending.textNode;
    const follow = this.following();
    target.hidden = false;
    target.append(document.createTextNode(data.text));
    if (follow) this.pending.scrollIntoView({ block: "end" });
    this.pending.dataset.deltas = String(Number(this.pending.dataset.deltas) + 1);
  }

  fact(entry) {
    if (entry.seq <= this.lastSeq) return;
    this.lastSeq = entry.seq;
    const fact = entry.fact;
    const render = this["on_" + fact.kind.replace(".", "_")];
    if (render) render.call(this, fact, entry);
    else this.add(el("div", { class: "note" }, fact.kind, " ", JSON.stringify(fact)));
  }

  on_message_user(fact, entry) {
    const node = this.bubble("user", senderLabel(fact.sender), entry.ts);
    node.textNode.textContent = fact.text;
    this.add(node);
  }

  on_message_assistant(fact, entry) {
    let node = this.pending;
    this.pending = null;
    if (!node) {
      node = this.add(this.bubble("assistant", "assistant"));
    }
    node.classList.remove("pending");
    if (!node.head.querySelector("time")) node.head.append(" ", stamp(entry.ts));
    node.dataset.seq = String(entry.seq);
    node.textNode.textContent = fact.text || "";
    node.reasoningNode.textContent = fact.reasoning || "";
    node.reasoningNode.hidden = !fact.reasoning;
    node.textNode.hidden = !fact.text;
    if (!fact.text && !fact.reasoning) node.hidden = true;
    node.title = [fact.model, when(entry.ts)].filter(Boolean).join(" · ");
    if (fact.model || fact.usage) {
      node.head.append(" ", el("span", { class: "call-meta" }, [fact.model, tokensText(fact.usage)].filter(Boolean).join(" · ")));
    }
    if (this.turn && fact.model) this.turn.models.add(fact.model);
    if (!(fact.tool_calls || []).length) return;
    this.calls = fact.tool_calls.map((call) => {
      const block = this.tool(call.id, call.command);
      if (call.error) this.finishTool(block, { status: "error", output: call.error });
      return block;
    });
  }

  tool(callId, command) {
    const commandNode = el("code", { class: "tool-command" });
    const status = badge("requested", "running");
    const reason = el("div", { class: "tool-reason" });
    reason.hidden = true;
    const node = el(
      "div",
      { class: "tool", "data-call-id": callId },
      el("div", { class: "tool-head" }, el("span", { class: "muted" }, "$"), commandNode, status),
      reason,
    );
    const block = { node, commandNode, status, reason, callId };
    commandNode.textContent = command;
    this.tools.push(block);
    this.add(node);
    return block;
  }

  // The block of the call a tool.call or tool.result names: by index in the latest
  // reply (providers reuse ids), by id for facts recorded before indexes were.
  callOf(fact) {
    const block =
      fact.index !== undefined
        ? this.calls[fact.index]
        : this.calls.find((b) => b.callId === fact.call_id && !b.node.dataset.status);
    return block || this.tool(fact.call_id, fact.command || "");
  }

  on_tool_call(fact) {
    const block = this.callOf(fact);
    block.commandNode.textContent = fact.command;
    block.status.textContent = "running";
    block.status.className = "badge running";
    block.node.title = `cwd ${fact.cwd} · timeout ${fact.timeout}s`;
  }

  on_tool_result(fact) {
    // facts leave out fields at their defaults: status "ok", no exit code, nothing cut
    this.finishTool(this.callOf(fact), { status: "ok", ...fact });
  }

  finishTool(block, result) {
    const ok = result.status === "ok";
    block.status.textContent = toolStatusText(result);
    block.status.className = `badge ${ok ? "ok" : result.status === "interrupted" ? "interrupted" : "bad"}`;
    block.node.dataset.status = result.status;
    block.node.classList.add(ok ? "done-ok" : "done-bad");
    let output = result.output || "";
    if (result.status === "rejected") {
      const prefix = `rejected by ${result.rejected_by}: `;
      block.reason.textContent = output.startsWith(prefix) ? output.slice(prefix.length) : output;
      block.reason.hidden = false;
      return;
    }
    const old = block.node.querySelector("details");
    if (old) old.remove();
    const lines = output ? output.split("\n").length : 0;
    const long = lines > LONG_LINES || output.length > LONG_CHARS;
    const details = el(
      "details",
      { class: "tool-output" },
      el(
        "summary",
        null,
        output ? `output · ${lines} line${lines === 1 ? "" : "s"}` : "no output",
        result.truncated_bytes ? ` · ${result.truncated_bytes} bytes cut` : "",
      ),
      el("pre", { class: "output" }, output),
    );
    details.open = !long && output.length > 0;
    block.node.append(details);
  }

  on_a2a_message(fact, entry) {
    const node = this.bubble("a2a", "a2a");
    const who = node.querySelector(".who");
    who.textContent = `a2a from ${agentNames.get(fact.from_agent) || fact.from_agent} · ${fact.mode}`;
    if (fact.reply_to) who.append(document.createTextNode(` · reply to ${fact.reply_to}`));
    who.append(" ", stamp(entry.ts));
    node.dataset.mode = fact.mode;
    node.title = `message ${fact.message_id}, hop ${fact.hops}`;
    node.textNode.textContent = fact.text;
    this.add(node);
    if (!agentNames.has(fact.from_agent) && fact.from_agent.startsWith("agt")) {
      agentName(fact.from_agent).then((name) => {
        who.firstChild.textContent = `a2a from ${name} · ${fact.mode}`;
      });
    }
  }

  on_mcp_call(fact) {
    const took = `${fact.duration_ms} ms, ${fact.arguments_bytes} bytes of arguments`;
    this.add(el("div", { class: "note" }, `mcp ${fact.server} ${fact.tool}: ${fact.status} (${took})`));
  }

  on_skill_loaded(fact) {
    this.add(el("div", { class: "note" }, `skill ${fact.skill} loaded`));
  }

  on_skill_unloaded(fact) {
    this.add(el("div", { class: "note" }, `skill ${fact.skill} unloaded`));
  }

  on_context_compacted(fact) {
    this.add(
      el(
        "details",
        { class: "note" },
        el("summary", null, `context compacted through #${fact.through_seq}`),
        el("div", { class: "text" }, fact.summary),
      ),
    );
  }

  on_dispatch_started(fact, entry) {
    this.turn = { started: entry.ts, models: new Set() };
    this.onStatus("running");
  }

  on_dispatch_finished(fact, entry) {
    if (this.pending) {
      this.pending.classList.remove("pending");
      this.pending = null;
    }
    for (const block of this.tools) {
      if (!block.node.dataset.status) {
        block.status.textContent = fact.status;
        block.status.className = `badge ${fact.status}`;
      }
    }
    const text = fact.status === "completed" ? "done" : fact.status;
    const turn = this.turn;
    this.turn = null;
    const meta = [
      turn && turn.models.size ? [...turn.models].join(", ") : null,
      tokensText(fact.usage),
      turn ? duration(entry.ts - turn.started) : null,
    ].filter(Boolean);
    this.add(
      el(
        "div",
        { class: `note ${fact.status}`, "data-status": fact.status },
        text,
        fact.error ? `: ${fact.error}` : "",
        meta.length ? el("div", { class: "turn-meta" }, meta.join(" · ")) : null,
      ),
    );
    this.onStatus("idle");
  }
}

async function sessionPage(id) {
  const error = errorBox();
  const scb = await api("GET", "/sessions/" + enc(id));
  const name = await agentName(scb.agent_id);
  const status = el("span", { id: "session-status" });
  const message = el("textarea", { id: "message", name: "message", placeholder: "Message the agent (Enter sends, Shift+Enter a new line, Esc interrupts)" });
  const send = el("button", { type: "submit", id: "send" }, "Send");
  const interrupt = el("button", { type: "button", id: "interrupt", class: "danger" }, "Interrupt");

  const setStatus = (value) => {
    status.replaceChildren(badge(value));
    status.dataset.status = value;
    interrupt.disabled = value !== "running";
  };
  const transcript = new Transcript(id, setStatus);
  transcript.node.id = "transcript";
  setStatus(scb.status);

  // The newest facts first (a long session opens fast, at its newest turn); the
  // earlier ones a window at a time, on request.
  const history = await api("GET", `/sessions/${enc(id)}/history` + query({ limit: WINDOW, newest: "true" }));
  for (const entry of history) transcript.fact(entry);
  setStatus(scb.status); // history may end mid-dispatch
  const earlier = earlierButton(id, history.length ? history[0].seq : 1, transcript);
  const usage = el("span", { id: "session-usage", class: "muted" }, await usageOf(id, "session"));
  const recount = debounce(() => usageOf(id, "session").then((text) => usage.replaceChildren(text), () => {}), 300);

  // Then follow: facts after the last seq, and the model's text as it streams.
  stream(`/api/sessions/${enc(id)}/events?after=${transcript.lastSeq}`, {
    fact: (entry) => {
      transcript.fact(entry);
      if (entry.fact.kind === "message.assistant") recount(); // a model call: its tokens
    },
    delta: (data) => transcript.delta(data),
  });

  const form = el("form", { id: "composer" }, message, send, interrupt);
  const submit = async () => {
    const text = message.value;
    if (!text.trim()) return;
    error.show(null);
    send.disabled = true;
    try {
      await api("POST", `/sessions/${enc(id)}/dispatch`, { message: text });
      message.value = "";
      setStatus("running");
    } catch (err) {
      error.show(err);
    } finally {
      send.disabled = false;
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault(); // Enter sends; Shift+Enter is a new line
      submit();
    } else if (event.key === "Escape" && !interrupt.disabled) {
      event.preventDefault();
      if (confirm("Interrupt the running dispatch? Its running command is killed.")) interrupt.click();
    }
  });
  interrupt.addEventListener("click", async () => {
    error.show(null);
    interrupt.disabled = true;
    try {
      await api("POST", `/sessions/${enc(id)}/interrupt`);
    } catch (err) {
      error.show(err);
      interrupt.disabled = false;
    }
  });

  requestAnimationFrame(() => transcript.node.lastElementChild?.scrollIntoView({ block: "end" })); // the newest turn
  return el(
    "div",
    { id: "session-page", "data-session-id": id },
    el("p", null, link(`#/agents/${enc(scb.agent_id)}`, `← ${name}`)),
    el("div", { class: "session-head" }, titleEditor(scb, error), el("span", { class: "mono muted" }, id), status),
    el("p", null, usage, " · ", link(`#/sessions/${enc(id)}/context`, "the context the model sees next")),
    earlier,
    transcript.node,
    error,
    form,
  );
}

/** The filters of a page kept in its address (``#/page?key=value``): links and
 * reloads keep them. */
function hashParams() {
  return new URLSearchParams(location.hash.split("?")[1] || "");
}

function setHashParams(page, values) {
  const text = query(values);
  history.replaceState(null, "", `#/${page}${text}`);
}

const SESSIONS_SHOWN = 200; // the most recently active matches the sessions page shows
const SESSION_STATES = [
  ["", "any status"],
  ["running", "running"],
  ["idle", "idle"],
  ["completed", "completed"],
  ["failed", "failed"],
  ["interrupted", "interrupted"],
  ["archived", "archived"],
];
const OUTCOMES = new Set(["completed", "failed", "interrupted"]); // how the last dispatch ended

async function sessionsPage() {
  const params = hashParams();
  const error = errorBox();
  const agents = await loadAgents();
  const agent = el(
    "select",
    { id: "sessions-agent", name: "agent_id" },
    el("option", { value: "" }, "any agent"),
    agents.map((a) => el("option", { value: a.id }, a.status === "active" ? a.name : `${a.name} (archived)`)),
  );
  agent.value = params.get("agent_id") || "";
  const status = el("select", { id: "sessions-status", name: "status" }, SESSION_STATES.map(([value, text]) => el("option", { value }, text)));
  status.value = params.get("status") || "";
  const search = el("input", { type: "search", id: "sessions-search", name: "search", placeholder: "title or message text", value: params.get("search") || "" });
  const summary = el("p", { class: "muted", id: "sessions-summary" });
  const table = sessionTable(true);
  const form = el(
    "form",
    { class: "inline", id: "sessions-filter" },
    el("label", null, "Agent", agent),
    el("label", null, "Status", status),
    el("label", { class: "grow" }, "Search", search),
    el("button", { type: "submit" }, "Find"),
  );

  async function load() {
    const filters = { agent_id: agent.value, status: status.value, search: search.value.trim() };
    setHashParams("sessions", filters);
    const ended = OUTCOMES.has(filters.status);
    const asked = { ...filters, status: ended ? "idle" : filters.status, outcome: ended ? filters.status : null };
    const found = await api("GET", "/sessions" + query({ ...asked, limit: SESSIONS_SHOWN }));
    summary.textContent = `${found.length}${found.length >= SESSIONS_SHOWN ? "+" : ""} session${found.length === 1 ? "" : "s"}${filters.search ? ` matching “${filters.search}”` : ""}`;
    await table.fill(found);
  }
  for (const input of [agent, status]) input.addEventListener("change", () => load().catch((err) => error.show(err)));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    error.show(null);
    load().catch((err) => error.show(err));
  });
  await load();
  const reload = debounce(() => load().catch(() => {}), 500);
  onChange((change) => change.topic === "history.append" && reload());
  return el("div", { id: "sessions-page" }, el("h1", null, "Sessions"), form, error, summary, table.node);
}

/** A table of sessions people can scan: title, (agent,) last activity, status with
 * outcome, tokens and cost. ``fill(found)`` shows them, newest activity first. */
function sessionTable(withAgent) {
  const heads = ["title", withAgent ? "agent" : null, "last activity", "status", "tokens", "cost"].filter(Boolean);
  const body = el("tbody");
  const table = el("table", { class: "sessions" }, el("thead", null, el("tr", null, ...heads.map((h) => el("th", null, h)))), body);
  async function fill(found) {
    found.sort((a, b) => b.updated_at - a.updated_at);
    const totals = found.length ? await api("GET", "/usage" + query({ ids: found.map((s) => s.id).join(","), by: "session" })) : [];
    const usage = new Map(totals.map((u) => [u.id, u]));
    const names = withAgent ? await Promise.all(found.map((s) => agentName(s.agent_id))) : [];
    body.replaceChildren(
      ...found.map((s, i) => {
        const u = usage.get(s.id) || { input_tokens: 0, output_tokens: 0, cost: null };
        return el(
          "tr",
          { "data-session-id": s.id },
          el("td", null, link(`#/sessions/${enc(s.id)}`, s.title || "(untitled)"), el("div", { class: "mono muted small" }, s.id)),
          withAgent ? el("td", null, link(`#/agents/${enc(s.agent_id)}`, names[i])) : null,
          el("td", null, stamp(s.updated_at)),
          el("td", { class: "session-state" }, ...sessionState(s)),
          el("td", { class: "session-tokens" }, `${count(u.input_tokens)} in + ${count(u.output_tokens)} out`),
          el("td", { class: "session-cost" }, dollars(u.cost) || "—"),
        );
      }),
    );
    if (!found.length) body.append(el("tr", null, el("td", { colspan: heads.length, class: "muted" }, "No sessions.")));
  }
  return { node: el("div", { class: "scroll" }, table), fill };
}

const WINDOW = 400; // the facts of a session the chat renders at once

/** "Show earlier messages": the window of facts before ``first``, rendered by a
 * transcript of its own and put above, the page kept where the person reads. */
function earlierButton(id, first, transcript) {
  const button = el("button", { type: "button", id: "earlier", class: "subtle" }, "Show earlier messages");
  button.hidden = first <= 1;
  button.addEventListener("click", async () => {
    button.disabled = true;
    const entries = await api("GET", `/sessions/${enc(id)}/history` + query({ until: first - 1, limit: WINDOW, newest: "true" }));
    const older = new Transcript(id, () => {});
    for (const entry of entries) older.fact(entry);
    const height = document.body.scrollHeight;
    transcript.node.prepend(...older.node.childNodes);
    window.scrollBy(0, document.body.scrollHeight - height);
    first = entries.length ? entries[0].seq : 1;
    button.hidden = first <= 1;
    button.disabled = false;
  });
  return el("p", null, button);
}

/** The session's title, renamed in place (session.update, audited). */
function titleEditor(scb, error) {
  const title = el("h1", { id: "session-title-text" }, scb.title || "(untitled)");
  const input = el("input", { id: "rename-input", name: "title", value: scb.title, maxlength: 200, required: true });
  const form = el("form", { class: "inline", id: "rename-form" }, input, el("button", { type: "submit" }, "Save"));
  const rename = el("button", { type: "button", id: "rename", class: "subtle" }, "Rename");
  form.hidden = true;
  rename.addEventListener("click", () => {
    form.hidden = false;
    title.hidden = rename.hidden = true;
    input.focus();
    input.select();
  });
  const close = () => {
    form.hidden = true;
    title.hidden = rename.hidden = false;
  };
  input.addEventListener("keydown", (event) => event.key === "Escape" && close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.show(null);
    try {
      const updated = await api("POST", `/sessions/${enc(scb.id)}`, { title: input.value.trim() });
      title.textContent = updated.title || "(untitled)";
      close();
    } catch (err) {
      error.show(err);
    }
  });
  return el("div", { class: "title-editor" }, title, rename, form);
}

/** A session's status for people: running (and its phase), else how its last
 * dispatch ended (a failure with its one-line reason). */
function sessionState(s) {
  if (s.status !== "idle" || !s.outcome) {
    return [badge(s.status), s.phase ? el("span", { class: "muted" }, " ", s.phase) : null];
  }
  const [status, ...why] = s.outcome.split(": ");
  const good = status === "completed" || status === "max_steps";
  const reason = why.join(": ").split("\n")[0];
  return [
    el("span", { class: `badge ${good ? "ok" : status === "interrupted" ? "interrupted" : "bad"}` }, status),
    reason ? el("span", { class: "muted outcome-reason", title: why.join(": ") }, " ", reason.slice(0, 120)) : null,
  ];
}

// -- the context view ------------------------------------------------------------------------

const CHARS_PER_TOKEN = 4; // the kernel's estimate where no tokenizer is at hand

/** A message's text, whatever its shape (string content, parts, tool calls). */
function messageText(message) {
  const content = message.content;
  const text = typeof content === "string" || content == null ? content || "" : JSON.stringify(content);
  const calls = (message.tool_calls || []).map((c) => `${c.function?.name}(${c.function?.arguments})`);
  return [text, ...calls].filter(Boolean).join("\n");
}

async function contextPage(id) {
  const scb = await api("GET", "/sessions/" + enc(id));
  const [context, compactions] = await Promise.all([
    api("GET", `/sessions/${enc(id)}/context` + query({ explain: "true" })),
    api("GET", `/sessions/${enc(id)}/history` + query({ kinds: "context.compacted" })),
  ]);
  const messages = context.messages;
  const sizes = messages.map((m) => Math.ceil(messageText(m).length / CHARS_PER_TOKEN));
  const total = sizes.reduce((a, b) => a + b, 0);
  const share = context.budget ? Math.min(100, (100 * total) / context.budget) : 0;
  const rows = messages.map((m, i) => {
    const text = messageText(m);
    const summary = el(
      "summary",
      null,
      badge(m.role, m.role === "system" ? "kind" : "running"),
      ` ~${count(sizes[i])} tokens · `,
      el("span", { class: "muted" }, text.slice(0, 120).replaceAll("\n", " ")),
    );
    const details = el("details", { class: "context-message", "data-role": m.role }, summary, el("pre", { class: "output" }, text));
    details.open = m.role === "system";
    return details;
  });
  const last = compactions[compactions.length - 1];
  return el(
    "div",
    { id: "context-page" },
    el("p", null, link(`#/sessions/${enc(id)}`, `← ${scb.title || "Session"}`)),
    el("h1", null, "The context the model sees next"),
    el(
      "p",
      { id: "context-total" },
      `${messages.length} messages · about ${count(total)} tokens (${CHARS_PER_TOKEN} characters a token)`,
      context.budget ? ` of the ${count(context.budget)}-token budget (${share.toFixed(0)}%)` : "",
    ),
    context.budget ? el("meter", { id: "context-meter", min: 0, max: context.budget, value: total, high: context.budget * 0.9 }) : null,
    el(
      "dl",
      { class: "kv panel" },
      el("dt", null, "skills"),
      el("dd", { id: "context-skills" }, context.skills.length ? context.skills.join(", ") : "(none)"),
      el("dt", null, "compacted"),
      el(
        "dd",
        { id: "context-compactions" },
        last
          ? `${compactions.length} time${compactions.length === 1 ? "" : "s"}; the last through fact #${last.fact.through_seq}, ${when(last.ts)}: the facts up to it reach the model as the summary after the system prompt`
          : "never: the model sees the whole conversation",
      ),
    ),
    el("p", { class: "muted" }, "The system prompt comes first: the provider's, the node's prompt, the agent's additions and the active skills' context faces."),
    ...rows,
  );
}

// -- skills and hooks ------------------------------------------------------------------------

async function skillsPage() {
  const error = errorBox();
  const body = el("tbody");

  async function load() {
    const [skills, hooks] = await Promise.all([api("GET", "/skills"), api("GET", "/hooks")]);
    const bySkill = new Map();
    for (const hook of hooks) {
      for (const impl of hook.implementations) {
        if (!bySkill.has(impl.owner)) bySkill.set(impl.owner, []);
        bySkill.get(impl.owner).push(hook.hook);
      }
    }
    body.replaceChildren(
      ...skills.map((s) => {
        const reload = el("button", { type: "button", class: "reload" }, "Reload");
        reload.addEventListener("click", async () => {
          error.show(null);
          reload.disabled = true;
          try {
            await api("POST", `/skills/${enc(s.name)}/reload`);
            await load();
          } catch (err) {
            // reloading aos-frontend restarts the service answering this request
            error.show(s.name === "aos-frontend" ? "aos-frontend is restarting: reload the page in a moment" : err);
            reload.disabled = false;
          }
        });
        const hooksOf = s.status === "active" ? bySkill.get(s.name) || [] : [];
        return el(
          "tr",
          { "data-skill": s.name, "data-status": s.status },
          el(
            "td",
            null,
            el("strong", null, s.name),
            el("div", { class: "muted" }, s.description),
            s.warnings.map((w) => el("div", { class: "skill-warning" }, "warning: ", w)),
          ),
          el("td", null, s.root, el("div", { class: "mono muted" }, s.path || s.entry_point || "")),
          el("td", null, s.kind),
          el("td", null, badge(s.status), s.reason ? el("div", { class: "skill-reason" }, s.reason) : null),
          el("td", { class: "mono" }, hooksOf.length ? hooksOf.join(", ") : el("span", { class: "muted" }, "none")),
          el("td", null, reload),
        );
      }),
    );
  }
  await load();
  const reload = debounce(() => load().catch((err) => error.show(err)), 300);
  onChange((change) => {
    if (change.topic === "skill" || change.topic === "service") reload();
  });
  return el(
    "div",
    { id: "skills-page" },
    el("h1", null, "Skills"),
    error,
    el(
      "div",
      { class: "scroll" },
      el(
        "table",
        { id: "skills" },
        el("thead", null, el("tr", null, ...["skill", "root", "kind", "status", "hooks", ""].map((h) => el("th", null, h)))),
        body,
      ),
    ),
  );
}

async function hooksPage() {
  const list = el("div", { id: "hooks" });

  async function load() {
    const hooks = await api("GET", "/hooks");
    list.replaceChildren(
      ...hooks.map((hook) =>
        el(
          "div",
          { class: "panel hook", "data-hook": hook.hook },
          el("strong", { class: "mono" }, hook.hook),
          " ",
          badge(hook.kind, "kind"),
          hook.required ? el("span", { class: "muted" }, " required") : null,
          hook.implementations.length
            ? el(
                "ol",
                { class: "impls" },
                hook.implementations.map((impl) =>
                  el(
                    "li",
                    null,
                    el("strong", null, impl.owner),
                    el("span", { class: "muted" }, ` (${impl.where}) `),
                    el("code", null, impl.function),
                    el(
                      "span",
                      { class: "muted" },
                      ` · ${impl.failure} · timeout ${impl.timeout}s`,
                      impl.tryfirst ? " · first" : "",
                      impl.trylast ? " · last" : "",
                    ),
                  ),
                ),
              )
            : el("div", { class: "muted" }, "no implementations"),
        ),
      ),
    );
  }
  await load();
  const reload = debounce(() => load().catch(() => {}), 300);
  onChange((change) => {
    if (change.topic === "skill" || change.topic === "service") reload();
  });
  return el("div", { id: "hooks-page" }, el("h1", null, "Hooks"), el("p", { class: "muted" }, "Implementations in call order."), list);
}

// -- nodes -------------------------------------------------------------------------------------

async function nodesPage() {
  const summary = el("p", { class: "muted", id: "cluster-summary" });
  const table = el("div", { id: "nodes", class: "scroll" });

  async function load() {
    const status = await api("GET", "/node");
    const cluster = status.cluster;
    const alive = cluster.nodes.filter((n) => n.alive).length;
    summary.replaceChildren(
      cluster.shared
        ? `${alive} of ${cluster.nodes.length} nodes alive on PostgreSQL · a node is dead after ${cluster.node_ttl} s without a heartbeat`
        : "One node: SQLite serves one daemon (PostgreSQL runs several).",
    );
    table.replaceChildren(
      el(
        "table",
        null,
        el("thead", null, el("tr", null, ...["node", "state", "heartbeat", "labels", "services", "running sessions"].map((h) => el("th", null, h)))),
        el(
          "tbody",
          null,
          cluster.nodes.map((n) =>
            el(
              "tr",
              { "data-node": n.id, class: n.alive ? "" : "muted" },
              el("td", { class: "mono" }, n.id, n.id === status.node ? el("span", { class: "muted" }, " (this one)") : null),
              el("td", null, badge(n.alive ? n.state : `${n.state}, not alive`, n.alive ? "active" : "broken")),
              el("td", null, `${n.heartbeat_age.toFixed(1)} s ago`),
              el("td", null, n.labels.join(", ")),
              el("td", null, n.services.map((s) => `${s.skill} ${s.state}`).join(", ")),
              el("td", { class: "mono" }, n.sessions.map((id) => el("div", null, link(`#/sessions/${enc(id)}`, id)))),
            ),
          ),
        ),
      ),
    );
  }
  await load();
  every(2000, () => load().catch(() => {}));
  return el("div", { id: "nodes-page" }, el("h1", null, "Nodes"), summary, table);
}

// -- runtime log -------------------------------------------------------------------------------

const LOG_PAGE = 100;
const LOG_LEVELS = [
  ["", "any level"],
  ["info", "info and above"],
  ["warning", "warnings and errors"],
  ["error", "errors"],
];

/** The RuntimeLog, newest first, a page at a time: filters by session, kind, level
 * and skill, and a search of the messages, kept in the address. The first page
 * follows new records live; older pages stay put. */
async function logPage() {
  const params = hashParams();
  const error = errorBox();
  const input = (name, placeholder, props) => el("input", { name, id: `log-${name.replace("_id", "")}`, placeholder, value: params.get(name) || "", ...props });
  const session = input("session_id", "any session");
  const kind = input("kind", "any kind", { list: "log-kinds" });
  const search = input("search", "text in the message", { type: "search" });
  const kinds = el("datalist", { id: "log-kinds" });
  const level = el("select", { name: "level", id: "log-level" }, LOG_LEVELS.map(([value, text]) => el("option", { value }, text)));
  level.value = params.get("level") || "";
  const skills = await api("GET", "/skills");
  const skill = el(
    "select",
    { name: "skill", id: "log-skill" },
    el("option", { value: "" }, "any skill"),
    [...new Set(skills.map((x) => x.name))].sort().map((name) => el("option", { value: name }, name)),
  );
  skill.value = params.get("skill") || "";
  const live = el("input", { type: "checkbox", id: "log-live", checked: true });
  const rows = el("tbody");
  const position = el("span", { class: "muted", id: "log-position" });
  const newer = el("button", { type: "button", id: "log-newest" }, "← Newest");
  const older = el("button", { type: "button", id: "log-older" }, "Older →");
  const form = el(
    "form",
    { class: "inline", id: "log-filter" },
    el("label", { class: "grow" }, "Search", search),
    el("label", null, "Kind", kind, kinds),
    el("label", null, "Level", level),
    el("label", null, "Skill", skill),
    el("label", null, "Session", session),
    el("button", { type: "submit" }, "Filter"),
    el("label", null, "Live", live),
  );
  let tail = null;
  let pages = []; // the before_id of each page shown so far (null: the newest)
  let last = null; // the oldest id of the current page
  const seenKinds = new Set();

  const row = (e) => {
    if (!seenKinds.has(e.kind)) {
      seenKinds.add(e.kind);
      kinds.append(el("option", { value: e.kind }));
    }
    const data = e.data && Object.keys(e.data).length ? JSON.stringify(e.data, null, 2) : "";
    return el(
      "tr",
      { class: `log-row ${e.level || "info"}`, "data-id": String(e.id) },
      el("td", null, stamp(e.ts)),
      el("td", null, e.level || "info"),
      el("td", { class: "mono" }, e.kind),
      el("td", { class: "mono" }, e.session_id ? link(`#/sessions/${enc(e.session_id)}`, e.session_id) : ""),
      el("td", { class: "log-message" }, e.message, data ? el("details", { class: "log-data" }, el("summary", null, "data"), el("pre", null, data)) : null),
    );
  };

  const filters = () => ({
    session_id: session.value.trim(),
    kind: kind.value.trim(),
    level: level.value,
    skill: skill.value,
    search: search.value.trim(),
  });

  async function show(before) {
    if (tail) tail.close();
    tail = null;
    setHashParams("log", filters());
    const entries = await api("GET", "/log" + query({ ...filters(), newest_first: "true", limit: LOG_PAGE, before_id: before }));
    rows.replaceChildren(...entries.map(row));
    if (!entries.length) rows.append(el("tr", null, el("td", { colspan: 5, class: "muted" }, "No records.")));
    last = entries.length ? entries[entries.length - 1].id : null;
    older.disabled = entries.length < LOG_PAGE;
    newer.disabled = before === null;
    position.textContent = before === null ? "the newest records" : `page ${pages.length} · records before #${before}`;
    if (before !== null || !live.checked) return;
    const newest = entries.length ? entries[0].id : 0;
    tail = stream("/api/log/stream" + query({ ...filters(), after_id: newest }), {
      log: (entry) => {
        rows.querySelector("td[colspan]")?.parentElement.remove();
        rows.prepend(row(entry));
        while (rows.childElementCount > LOG_PAGE) rows.lastElementChild.remove();
        last = Number(rows.lastElementChild.dataset.id);
      },
    });
  }
  const first = () => {
    pages = [null];
    return show(null);
  };
  const failing = (promise) => promise.catch((err) => error.show(err));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    error.show(null);
    failing(first());
  });
  for (const select of [level, skill]) select.addEventListener("change", () => failing(first()));
  live.addEventListener("change", () => failing(first()));
  newer.addEventListener("click", () => failing(first()));
  older.addEventListener("click", () => {
    pages.push(last);
    failing(show(last));
  });
  await first();
  return el(
    "div",
    { id: "log-page" },
    el("h1", null, "Runtime log"),
    form,
    error,
    el("div", { class: "scroll" }, el(
      "table",
      { id: "log" },
      el("thead", null, el("tr", null, ...["time", "level", "kind", "session", "message"].map((h) => el("th", null, h)))),
      rows,
    )),
    el("p", { class: "pager" }, newer, " ", position, " ", older),
  );
}

// -- start -------------------------------------------------------------------------------------

window.addEventListener("hashchange", route);
startChanges();
route();
