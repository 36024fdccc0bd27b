/* kefu agent console: the queue, one conversation at a time, live over /console/ws (core/console.py).
 *
 * Shopper text is put on the page with textContent only, never innerHTML.
 */
(() => {
  "use strict";

  const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
  const RECONNECT_MAX_MS = 10000;

  let me = null;
  let intents = [];
  let current = null; // ticket id on screen
  let conv = null; // last /api/tickets/{id} answer
  let clockOffset = 0; // server now - local now, seconds
  let queueTimer = null;

  function el(tag, className, text, attrs) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function flash(text, isError) {
    const node = $("flash");
    node.textContent = text || "";
    node.classList.toggle("error", Boolean(isError));
  }

  async function api(path, body) {
    const init = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    };
    const response = await fetch(`/console/api/${path}`, { credentials: "same-origin", ...init });
    if (response.status === 401 || response.status === 403) {
      window.location.assign("/console/");
      throw new Error("signed out");
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((data.error && data.error.message) || `HTTP ${response.status}`);
    return data;
  }

  function now() {
    return Date.now() / 1000 + clockOffset;
  }

  function ago(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
    return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
  }

  function clock(at) {
    return new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  /* ---------- queue ---------- */

  function ticketItem(t, held) {
    const li = el("li", "ticket", null, { "data-testid": held ? "held-item" : "queue-item", "data-ticket": t.id });
    if (t.id === current) li.classList.add("selected");
    const button = el("button", "ticket-button", null, { type: "button" });
    const top = el("div", "ticket-top");
    top.appendChild(el("span", `tier tier-${t.tier}`, t.tier));
    top.appendChild(el("span", "reason", t.reason.replace("_", " ")));
    top.appendChild(el("span", "channel", t.channel));
    const wait = el("span", "waiting", ago(now() - (held ? (t.claimed_at || t.opened_at) : t.opened_at)),
      { "data-testid": "waiting", "data-since": String(held ? (t.claimed_at || t.opened_at) : t.opened_at) });
    top.appendChild(wait);
    button.appendChild(top);
    button.appendChild(el("div", "preview", t.question || "…", { dir: "auto" }));
    const bottom = el("div", "ticket-bottom");
    bottom.appendChild(el("span", "priority", held ? `with ${t.agent_id}` : `priority ${t.priority_now.toFixed(0)}`,
      { "data-testid": "priority" }));
    if (t.emotion > 0) bottom.appendChild(el("span", "emotion", `upset ${Math.round(t.emotion * 100)}%`));
    button.appendChild(bottom);
    button.addEventListener("click", () => open(t.id));
    li.appendChild(button);
    return li;
  }

  async function refreshQueue() {
    const data = await api("queue");
    clockOffset = data.now - Date.now() / 1000;
    $("queue").replaceChildren(...data.queue.map((t) => ticketItem(t, false)));
    $("held").replaceChildren(...data.held.map((t) => ticketItem(t, true)));
    $("queue-count").textContent = String(data.queue.length);
    $("held-count").textContent = String(data.held.length);
  }

  function scheduleQueue() {
    if (queueTimer) return;
    queueTimer = setTimeout(() => {
      queueTimer = null;
      refreshQueue().catch((e) => flash(e.message, true));
    }, 50);
  }

  function tickWaiting() {
    for (const node of document.querySelectorAll('[data-testid="waiting"]')) {
      node.textContent = ago(now() - Number(node.dataset.since));
    }
  }

  /* ---------- one conversation ---------- */

  function entryRow(role, text, at, channel, by) {
    const li = el("li", `entry entry-${role}`, null, { "data-testid": `entry-${role}` });
    const meta = el("div", "entry-meta");
    meta.appendChild(el("span", "who", role === "agent" ? (by || "agent") : role));
    if (channel) meta.appendChild(el("span", "channel", channel, { "data-testid": "entry-channel" }));
    meta.appendChild(el("time", "at", clock(at)));
    li.appendChild(meta);
    li.appendChild(el("p", "text", text, { dir: "auto", "data-testid": "entry-text" }));
    return li;
  }

  let shown = new Set(); // entries on screen, so a live event and a reload never show one twice

  function appendEntry(role, text, at, channel, by) {
    const key = `${role}|${at}|${text}`;
    if (shown.has(key)) return;
    shown.add(key);
    const list = $("transcript");
    list.appendChild(entryRow(role, text, at, channel, by));
    list.scrollTop = list.scrollHeight;
  }

  function renderProfile(p, ticket) {
    const dl = $("profile");
    const rows = [
      ["Customer", ticket.customer_id],
      ["Name", p.name || "—"],
      ["Store account", p.store_user_id || "not signed in"],
      ["Tier", p.tier],
      ["Lifetime spend", (p.lifetime_spend || 0).toFixed(2)],
      ["Order in question", (p.order_value || 0).toFixed(2)],
      ["Language", ticket.locale],
    ];
    dl.replaceChildren();
    for (const [k, v] of rows) {
      dl.appendChild(el("dt", null, k));
      dl.appendChild(el("dd", null, v, k === "Tier" ? { "data-testid": "profile-tier" } : {}));
    }
    $("tags").replaceChildren(...(p.tags || []).map((tag) => el("li", "tag", tag, { "data-testid": "tag" })));
    $("orders").replaceChildren(...(p.orders || []).map((o) =>
      el("li", null, `${o.order_id} · ${o.status} · ${o.total.toFixed(2)} · ${o.items.join(", ")}`,
        { "data-testid": "order" })));
    if (!(p.orders || []).length) $("orders").appendChild(el("li", "muted", "no orders known"));
  }

  function render(data) {
    conv = data;
    const t = data.ticket;
    $("conversation").hidden = false;
    $("side").hidden = false;
    $("conv-title").textContent = `${t.customer_id} · ${t.reason.replace("_", " ")}`;
    const state = data.state === "agent" ? `held by ${t.agent_id}` : data.state;
    $("conv-meta").textContent = `ticket ${t.id} · ${state} · opened ${clock(t.opened_at)} on ${t.channel}`;
    $("conversation").dataset.state = data.state;
    const list = $("transcript");
    list.replaceChildren();
    shown = new Set();
    for (const e of data.transcript) appendEntry(e.role, e.text, e.at, e.channel);
    const mine = data.state === "agent" && t.agent_id === me;
    const open = data.state === "queued" || data.state === "agent";
    $("claim").disabled = data.state !== "queued";
    $("release").disabled = !(mine || data.state === "queued");
    $("reply-input").disabled = !mine;
    $("reply-send").disabled = !mine;
    $("resolve-reason").disabled = !(mine || data.state === "queued");
    $("resolve-label").disabled = !(mine || data.state === "queued");
    $("resolve").disabled = !(mine || data.state === "queued");
    $("suggestions").replaceChildren(...(open ? data.suggestions : []).map((s) => {
      const b = el("button", "suggestion", s, { type: "button", "data-testid": "suggestion", dir: "auto" });
      b.disabled = !mine;
      b.addEventListener("click", () => {
        $("reply-input").value = s;
        $("reply-input").focus();
      });
      return b;
    }));
    renderProfile(t.profile || {}, t);
    $("events").replaceChildren(...data.events.map((e) =>
      el("li", null, `${clock(e.at)} ${e.kind}${e.by && e.kind !== "shopper" ? ` (${e.by})` : ""}` +
        (e.text && !["shopper", "agent"].includes(e.kind) ? `: ${e.text}` : ""))));
    $("ticket-history").replaceChildren(...data.history.map((h) =>
      el("li", null, `${new Date(h.opened_at * 1000).toLocaleDateString()} · ${h.reason} · ${h.state}` +
        (h.resolution ? ` · ${h.resolution}` : ""), { "data-testid": "history-item" })));
    if (!data.history.length) $("ticket-history").appendChild(el("li", "muted", "none"));
    for (const li of document.querySelectorAll(".ticket")) li.classList.toggle("selected", li.dataset.ticket === current);
  }

  async function open(ticketId) {
    current = ticketId;
    flash("");
    render(await api(`tickets/${encodeURIComponent(ticketId)}`));
  }

  async function reload() {
    if (current) render(await api(`tickets/${encodeURIComponent(current)}`));
  }

  async function act(path, body, done) {
    try {
      const result = await api(`tickets/${encodeURIComponent(current)}/${path}`, body === undefined ? {} : body);
      if (done) done(result);
      await Promise.all([reload(), refreshQueue()]);
    } catch (e) {
      flash(e.message, true);
      await reload().catch(() => {});
    }
  }

  /* ---------- live events ---------- */

  let socket = null;
  let backoff = 500;

  function setStatus(state, text) {
    const node = $("console-status");
    node.dataset.state = state;
    node.textContent = text;
  }

  function connect() {
    const url = new URL("/console/ws", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(url.href);
    socket.addEventListener("open", () => {
      backoff = 500;
      setStatus("online", "live");
      refreshQueue().catch((e) => flash(e.message, true));
      reload().catch(() => {});
    });
    socket.addEventListener("message", (msg) => {
      let event;
      try {
        event = JSON.parse(msg.data);
      } catch (_) {
        return;
      }
      if (event.type === "message") {
        if (event.ticket === current) appendEntry(event.kind, event.text, event.at, event.channel, event.by);
        if (event.kind === "shopper") scheduleQueue();
      } else if (event.type === "queue" || event.type === "ticket") {
        scheduleQueue();
        if (event.ticket === current) reload().catch(() => {});
      } else if (event.type === "resync") {
        scheduleQueue();
        reload().catch(() => {});
      }
    });
    socket.addEventListener("close", () => {
      setStatus("offline", `reconnecting in ${Math.round(backoff / 1000)}s…`);
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
    });
  }

  /* ---------- start ---------- */

  $("claim").addEventListener("click", () => act("claim"));
  $("release").addEventListener("click", () => act("release"));
  $("reply-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("reply-input");
    const text = input.value.trim();
    if (!text) return;
    act("reply", { text }, (result) => {
      input.value = "";
      flash(result.delivered ? "" : "Saved, but the shopper's channel did not take it (are they still online?)",
        !result.delivered);
    });
  });
  $("reply-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("reply-form").requestSubmit();
    }
  });
  $("resolve-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const reason = $("resolve-reason").value.trim();
    if (!reason) {
      flash("Say briefly how it was resolved.", true);
      return;
    }
    const label = $("resolve-label").value || null;
    act("resolve", { reason, label }, () => { $("resolve-reason").value = ""; });
  });

  (async () => {
    const who = await api("me");
    me = who.agent;
    intents = who.intents;
    $("agent-id").textContent = me;
    const select = $("resolve-label");
    for (const intent of intents) select.appendChild(el("option", null, intent, { value: intent }));
    await refreshQueue();
    connect();
    setInterval(tickWaiting, 1000);
  })().catch((e) => flash(e.message, true));
})();
