/* kefu web chat widget: talks to the hub over /webchat/ws (protocol in adapters/web/adapter.py).
 *
 * Every piece of server or shopper text is put on the page with textContent / createTextNode, never innerHTML.
 * Page URL options: ?user_id=... (e.g. a signed-in demo shopper) and ?locale=... (zh-CN, en, ja, ar ...).
 */
(() => {
  "use strict";

  const USER_ID_RE = /^[A-Za-z0-9_.@:+\-]{1,128}$/;
  const LOCALE_RE = /^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$/;
  const RTL_LANGUAGES = ["ar", "fa", "he", "ur"];
  const STORAGE_USER_KEY = "kefu.webchat.user_id";
  const TRANSCRIPT_LIMIT = 200;
  const RECONNECT_BASE_MS = 500;
  const RECONNECT_MAX_MS = 30000;
  const NEAR_BOTTOM_PX = 80;

  const STRINGS = {
    zh: {
      title: "{shop} · 智能客服",
      pageTitle: "{shop} 在线客服",
      connecting: "正在连接…",
      online: "在线",
      reconnecting: "连接中断，{s} 秒后重连…",
      offline: "网络已断开，恢复后自动重连",
      listLabel: "聊天记录",
      inputLabel: "输入消息",
      placeholder: "输入您的问题…",
      hint: "按 Enter 发送，Shift+Enter 换行",
      send: "发送",
      shareLocation: "分享位置，了解附近门店的免费小样",
      sharedLocation: "📍 已分享我的位置",
      typing: "客服正在输入…",
      bot: "智能助手",
      agent: "人工客服",
      you: "我",
      quickReplies: "快捷回复",
      pending: "等待发送…",
      welcome: "您好！有关订单、退换货、优惠或尺码的问题，都可以在这里问我。",
      lostTurn: "连接中断了，刚才的回复可能没有收到。连接恢复后请再发一次。",
      genericError: "抱歉，出了点问题，请稍后再试。",
      image: "图片",
      viewProduct: "查看商品",
      productImage: "商品图片：{title}",
    },
    en: {
      title: "{shop} assistant",
      pageTitle: "{shop} · Customer service",
      connecting: "Connecting…",
      online: "Online",
      reconnecting: "Connection lost, retrying in {s}s…",
      offline: "You are offline; we'll reconnect when you're back",
      listLabel: "Conversation",
      inputLabel: "Type a message",
      placeholder: "Ask us anything…",
      hint: "Enter sends, Shift+Enter adds a new line",
      send: "Send",
      shareLocation: "Share your location to hear about free samples at stores near you",
      sharedLocation: "📍 Shared my location",
      typing: "The assistant is typing…",
      bot: "Assistant",
      agent: "Agent",
      you: "You",
      quickReplies: "Suggested replies",
      pending: "Waiting to send…",
      welcome: "Hi! Ask me about orders, returns, promotions or sizes.",
      lostTurn: "The connection dropped, so the last answer may be missing. Please send it again once we're back.",
      genericError: "Sorry, something went wrong. Please try again in a moment.",
      image: "Image",
      viewProduct: "View product",
      productImage: "Product photo: {title}",
    },
    ja: {
      title: "{shop} アシスタント",
      pageTitle: "{shop} カスタマーサポート",
      connecting: "接続中…",
      online: "オンライン",
      reconnecting: "接続が切れました。{s} 秒後に再接続します…",
      offline: "オフラインです。回復したら自動で再接続します",
      listLabel: "会話",
      inputLabel: "メッセージを入力",
      placeholder: "ご質問をどうぞ…",
      hint: "Enter で送信、Shift+Enter で改行",
      send: "送信",
      shareLocation: "現在地を共有して、お近くの店舗の無料サンプルのご案内を受け取る",
      sharedLocation: "📍 現在地を共有しました",
      typing: "入力中…",
      bot: "アシスタント",
      agent: "担当者",
      you: "お客様",
      quickReplies: "クイック返信",
      pending: "送信待ち…",
      welcome: "いらっしゃいませ。ご注文、返品、キャンペーン、サイズについて、お気軽にお問い合わせください。",
      lostTurn: "接続が切れたため、直前の回答が届いていない可能性があります。再接続後にもう一度お送りください。",
      genericError: "申し訳ございません。問題が発生いたしました。しばらくしてから、もう一度お試しください。",
      image: "画像",
      viewProduct: "商品を見る",
      productImage: "商品画像：{title}",
    },
    ar: {
      title: "مساعد {shop}",
      pageTitle: "خدمة عملاء {shop}",
      connecting: "جارٍ الاتصال…",
      online: "متصل",
      reconnecting: "انقطع الاتصال، إعادة المحاولة خلال {s} ث…",
      offline: "أنت غير متصل بالإنترنت؛ سنعيد الاتصال تلقائيًا",
      listLabel: "المحادثة",
      inputLabel: "اكتب رسالة",
      placeholder: "اكتب سؤالك…",
      hint: "Enter للإرسال، Shift+Enter لسطر جديد",
      send: "إرسال",
      shareLocation: "شارك موقعك لنخبرك بالعينات المجانية في المتاجر القريبة منك",
      sharedLocation: "📍 تمت مشاركة موقعي",
      typing: "المساعد يكتب…",
      bot: "المساعد",
      agent: "موظف خدمة العملاء",
      you: "أنت",
      quickReplies: "ردود مقترحة",
      pending: "في انتظار الإرسال…",
      welcome: "مرحبًا! اسألني عن الطلبات أو المرتجعات أو العروض أو المقاسات.",
      lostTurn: "انقطع الاتصال وربما لم يصل الرد الأخير. أعد إرسال رسالتك بعد عودة الاتصال من فضلك.",
      genericError: "عذرًا، حدث خطأ ما. يرجى المحاولة مرة أخرى بعد قليل.",
      image: "صورة",
      viewProduct: "عرض المنتج",
      productImage: "صورة المنتج: {title}",
    },
  };

  const ICONS = {
    bot: "M12 2a1 1 0 0 1 1 1v1.07A7 7 0 0 1 19 11v5a3 3 0 0 1-3 3h-1.5l-2.5 2.5L9.5 19H8a3 3 0 0 1-3-3v-5a7 7 0 0 1 "
      + "6-6.93V3a1 1 0 0 1 1-1Zm-3 9.5a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3Zm6 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3Z",
    agent: "M12 3a8 8 0 0 0-8 8v5a3 3 0 0 0 3 3h1v-7H6v-1a6 6 0 1 1 12 0v1h-2v7h2v1a1 1 0 0 1-1 1h-4v2h4a3 3 0 0 0 "
      + "3-3v-1.18A3 3 0 0 0 20 16v-5a8 8 0 0 0-8-8Z",
  };

  /* ---------- settings from the page URL, storage and browser ---------- */

  const params = new URLSearchParams(window.location.search);

  function storageGet(store, key) {
    try {
      return window[store].getItem(key);
    } catch (_) {
      return null; // storage disabled (private mode, sandboxed frame)
    }
  }

  function storageSet(store, key, value) {
    try {
      window[store].setItem(key, value);
    } catch (_) {
      /* storage full or disabled: the widget still works, it just forgets */
    }
  }

  function randomId(prefix) {
    const bytes = new Uint8Array(12);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function resolveUserId() {
    const fromUrl = params.get("user_id");
    if (fromUrl && USER_ID_RE.test(fromUrl)) return fromUrl;
    const stored = storageGet("localStorage", STORAGE_USER_KEY);
    if (stored && USER_ID_RE.test(stored)) return stored;
    const fresh = randomId("web_");
    storageSet("localStorage", STORAGE_USER_KEY, fresh);
    return fresh;
  }

  // The hub's time of the newest agent message this browser has shown: on reconnect the hub sends the
  // ones written after it (an agent may answer while the page is closed). Before any, the time of the
  // shopper's first message, a minute early for clock skew.
  function seenKey() {
    return "kefu.webchat.seen." + userId;
  }

  function markSeen(at) {
    const prev = Number(storageGet("localStorage", seenKey()) || 0);
    if (typeof at === "number" && isFinite(at) && at > prev) storageSet("localStorage", seenKey(), String(at));
  }

  function resolveLocale() {
    const candidates = [params.get("locale"), navigator.language, ...(navigator.languages || [])];
    for (const c of candidates) {
      if (c && LOCALE_RE.test(c)) return c.replace(/_/g, "-");
    }
    return null;
  }

  const userId = resolveUserId();
  const locale = resolveLocale();
  const language = (locale || "zh").split("-")[0].toLowerCase();
  const strings = STRINGS[language] || STRINGS.en;
  const shopMeta = document.querySelector('meta[name="kefu-shop-name"]');
  const shopName = (shopMeta && shopMeta.content.trim()) || "kefu";

  function t(key, vars) {
    let text = strings[key] || STRINGS.en[key] || key;
    for (const [name, value] of Object.entries(vars || {})) text = text.split(`{${name}}`).join(String(value));
    return text;
  }

  let timeFormat = null;
  try {
    timeFormat = new Intl.DateTimeFormat(locale || undefined, { hour: "2-digit", minute: "2-digit" });
  } catch (_) {
    timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  }

  /* ---------- elements ---------- */

  const root = document.documentElement;
  const list = document.getElementById("messages");
  const typing = list.querySelector('[data-testid="typing"]');
  const form = document.getElementById("composer");
  const input = document.getElementById("message-input");
  const sendButton = form.querySelector('[data-testid="send-button"]');
  const status = document.querySelector('[data-testid="connection-status"]');
  const statusText = status.querySelector(".status-text");
  const title = document.querySelector('[data-testid="assistant-name"]');
  const chat = document.querySelector('[data-testid="chat"]');
  const headerAvatar = document.querySelector(".chat-header .avatar-bot");

  function setDirection(direction) {
    root.dir = direction;
    chat.dir = direction; // the chat itself too, for pages that embed it in a left-to-right layout
  }

  function applyLocale() {
    if (locale) root.lang = locale;
    setDirection(RTL_LANGUAGES.includes(language) ? "rtl" : "ltr");
    document.title = t("pageTitle", { shop: shopName });
    title.textContent = t("title", { shop: shopName });
    list.setAttribute("aria-label", t("listLabel"));
    document.getElementById("message-input-label").textContent = t("inputLabel");
    document.getElementById("composer-hint").textContent = t("hint");
    input.placeholder = t("placeholder");
    sendButton.setAttribute("aria-label", t("send"));
    sendButton.title = t("send");
    typing.querySelector(".typing-label").textContent = t("typing");
    typing.querySelector(".avatar").appendChild(icon("bot", 16));
  }

  /** The bot's persona from the hub's locale pack: its name, avatar and the language's direction. */
  function applyPersona(persona) {
    if (!persona || typeof persona !== "object") return;
    if (persona.direction === "rtl" || persona.direction === "ltr") setDirection(persona.direction);
    if (typeof persona.bot_name === "string" && persona.bot_name.trim()) {
      title.textContent = `${persona.bot_name.trim()} · ${shopName}`;
      title.dataset.botName = persona.bot_name.trim();
    }
    if (typeof persona.avatar_kind === "string") headerAvatar.dataset.avatarKind = persona.avatar_kind;
    const avatar = typeof persona.avatar === "string" ? persona.avatar : "";
    if (/^(https:\/\/|\/)/.test(avatar)) {
      const img = el("img", "avatar-image", { src: avatar, alt: "", width: "22", height: "22" });
      headerAvatar.replaceChildren(img);
    }
  }

  async function loadPersona() {
    const url = new URL("/webchat/api/persona", window.location.href);
    if (locale) url.searchParams.set("locale", locale);
    try {
      const response = await fetch(url.href, { headers: { Accept: "application/json" } });
      if (response.ok) applyPersona(await response.json());
    } catch (_) {
      /* offline or an older hub: keep the built-in robot and the page's own title */
    }
  }

  /* ---------- rendering (text only through text nodes) ---------- */

  function el(tag, className, attrs) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function icon(kind, size) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", String(size));
    svg.setAttribute("height", String(size));
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", ICONS[kind]);
    svg.appendChild(path);
    return svg;
  }

  /** A URL safe to load or link to: http(s) or same-origin relative; anything else (javascript:, data:) is dropped. */
  function safeUrl(value) {
    if (typeof value !== "string" || !value.trim()) return null;
    try {
      const url = new URL(value, window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  const LINK_RE = /https?:\/\/[^\s<>"'，。！？、；：（）【】「」]+/g;

  /** Fill `node` with `text`, turning http(s) links into anchors; no markup from the text is ever interpreted. */
  function setRichText(node, text) {
    node.textContent = "";
    let last = 0;
    for (const match of text.matchAll(LINK_RE)) {
      const href = match[0].replace(/[.,!?;:)\]]+$/, "");
      const safe = safeUrl(href);
      if (!safe) continue;
      node.appendChild(document.createTextNode(text.slice(last, match.index)));
      const a = el("a", null, { href: safe, target: "_blank", rel: "noopener noreferrer" });
      a.textContent = href;
      node.appendChild(a);
      last = match.index + href.length;
    }
    node.appendChild(document.createTextNode(text.slice(last)));
  }

  function isNearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_BOTTOM_PX;
  }

  // Keep the newest message in view when the list shrinks (input grows, phone keyboard opens), unless the
  // shopper has scrolled up to read.
  let pinned = true;
  list.addEventListener("scroll", () => { pinned = isNearBottom(); }, { passive: true });
  if (window.ResizeObserver) new ResizeObserver(() => { if (pinned) scrollToBottom(); }).observe(list);

  function scrollToBottom() {
    list.scrollTop = list.scrollHeight;
    pinned = true;
  }

  function append(node, force) {
    const stick = force || isNearBottom();
    const empty = list.querySelector('[data-testid="empty-state"]');
    if (empty && node.classList.contains("message")) empty.remove();
    list.insertBefore(node, typing);
    if (stick) scrollToBottom();
  }

  function senderLabel(role) {
    return role === "shopper" ? t("you") : role === "agent" ? t("agent") : t("bot");
  }

  /** A message row; returns {row, body, bubble}. role: shopper | bot | agent. */
  function messageRow(role, text, when) {
    const row = el("article", `message message-${role}`, { "data-testid": `message-${role}` });
    if (role !== "shopper") {
      const avatar = el("div", `avatar avatar-small avatar-${role}`, { "aria-hidden": "true" });
      avatar.appendChild(icon(role === "agent" ? "agent" : "bot", 16));
      row.appendChild(avatar);
    }
    const body = el("div", "message-body");
    // Agents are labelled visibly; for the bot and the shopper the label is for screen readers only.
    const sender = el("span", role === "agent" ? "sender" : "sender visually-hidden", { "data-testid": "sender" });
    sender.textContent = senderLabel(role);
    body.appendChild(sender);
    const bubble = el("div", "bubble", { dir: "auto", "data-testid": "message-text" });
    setRichText(bubble, text || "");
    body.appendChild(bubble);
    const meta = el("span", "meta");
    const time = el("time", null, { datetime: when.toISOString() });
    time.textContent = timeFormat.format(when);
    meta.appendChild(time);
    body.appendChild(meta);
    row.appendChild(body);
    return { row, body, bubble, meta };
  }

  function renderExtras(parts, reply) {
    const { body, bubble, meta } = parts;
    if (!bubble.textContent) bubble.hidden = true;
    const image = reply.image && safeUrl(reply.image.url);
    if (image) {
      const link = el("a", "reply-image-link", { href: image, target: "_blank", rel: "noopener noreferrer" });
      const img = el("img", "reply-image", { src: image, alt: t("image"), loading: "lazy", "data-testid": "reply-image" });
      link.appendChild(img);
      body.insertBefore(link, meta);
    }
    if (reply.card && typeof reply.card === "object" && reply.card.title) {
      body.insertBefore(productCard(reply.card), meta);
    }
    const buttons = Array.isArray(reply.buttons) ? reply.buttons.filter((b) => b && (b.title || b.payload)) : [];
    if (buttons.length) {
      const group = el("div", "quick-replies", { role: "group", "aria-label": t("quickReplies"),
        "data-testid": "quick-replies" });
      for (const b of buttons) {
        const button = el("button", "quick-reply", { type: "button", dir: "auto", "data-testid": "quick-reply" });
        button.textContent = String(b.title || b.payload);
        const payload = String(b.payload || b.title);
        button.addEventListener("click", () => {
          // A "/command" payload is for the hub, not for reading: the bubble shows the button's title.
          send(payload, payload.startsWith("/") ? button.textContent : undefined);
          if (window.matchMedia("(pointer: fine)").matches) input.focus({ preventScroll: true });
        });
        group.appendChild(button);
      }
      body.insertBefore(group, meta);
    }
  }

  function productCard(card) {
    const box = el("section", "product-card", { "data-testid": "product-card" });
    const image = safeUrl(card.image_url);
    if (image) {
      box.appendChild(el("img", "product-card-image", { src: image, loading: "lazy",
        alt: t("productImage", { title: String(card.title) }) }));
    }
    const inner = el("div", "product-card-body");
    const heading = el("h2", "product-card-title", { dir: "auto" });
    heading.textContent = String(card.title);
    inner.appendChild(heading);
    if (card.price) {
      const price = el("p", "product-card-price", { dir: "auto", "data-testid": "product-card-price" });
      price.textContent = String(card.price);
      inner.appendChild(price);
    }
    if (card.description) {
      const desc = el("p", "product-card-description", { dir: "auto" });
      desc.textContent = String(card.description);
      inner.appendChild(desc);
    }
    const link = safeUrl(card.url);
    if (link) {
      const a = el("a", "product-card-link", { href: link, target: "_blank", rel: "noopener noreferrer" });
      a.textContent = t("viewProduct");
      inner.appendChild(a);
    }
    box.appendChild(inner);
    return box;
  }

  function notice(text, isError) {
    const node = el("p", isError ? "notice notice-error" : "notice",
      { "data-testid": isError ? "error" : "notice", dir: "auto" });
    node.textContent = text;
    append(node, true);
    return node;
  }

  /* ---------- transcript kept for this tab, so a reload does not blank the conversation ---------- */

  const transcriptKey = `kefu.webchat.transcript.${userId}`;
  let transcript = [];

  function remember(entry) {
    transcript.push(entry);
    if (transcript.length > TRANSCRIPT_LIMIT) transcript = transcript.slice(-TRANSCRIPT_LIMIT);
    storageSet("sessionStorage", transcriptKey, JSON.stringify(transcript));
  }

  function restoreTranscript() {
    let saved = [];
    try {
      saved = JSON.parse(storageGet("sessionStorage", transcriptKey) || "[]");
    } catch (_) {
      saved = [];
    }
    if (!Array.isArray(saved)) return;
    for (const entry of saved) {
      if (!entry || !["shopper", "bot", "agent"].includes(entry.role) || typeof entry.text !== "string") continue;
      const parts = messageRow(entry.role, entry.text, new Date(entry.at || Date.now()));
      if (entry.role !== "shopper") renderExtras(parts, entry);
      append(parts.row, true);
      transcript.push(entry);
    }
  }

  function replyEntry(role, frame, text) {
    const entry = { role, text, at: Date.now() };
    if (Array.isArray(frame.buttons)) entry.buttons = frame.buttons;
    if (frame.image) entry.image = frame.image;
    if (frame.card) entry.card = frame.card;
    return entry;
  }

  /* ---------- turn state and typing indicator ---------- */

  let pendingTurns = 0;
  const streams = new Map(); // reply id -> {parts, text, role}

  function updateTyping() {
    const show = pendingTurns > 0 && streams.size === 0;
    if (typing.hidden === !show) return;
    const stick = isNearBottom();
    typing.hidden = !show;
    if (stick) scrollToBottom();
  }

  function turnFinished() {
    pendingTurns = Math.max(0, pendingTurns - 1);
    updateTyping();
  }

  /* ---------- frames from the hub ---------- */

  function roleOf(frame) {
    return frame.from === "agent" ? "agent" : "bot";
  }

  function handleFrame(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch (_) {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    const text = typeof frame.text === "string" ? frame.text : "";
    switch (frame.type) {
      case "push": // outside a turn: a proactive message, or a human agent's reply
        markSeen(frame.at);
      // falls through: shown like a reply
      case "reply": {
        const role = roleOf(frame);
        const parts = messageRow(role, text, new Date());
        if (frame.id) parts.row.dataset.replyId = String(frame.id);
        renderExtras(parts, frame);
        append(parts.row);
        remember(replyEntry(role, frame, text));
        break;
      }
      case "reply_start": {
        const role = roleOf(frame);
        const parts = messageRow(role, text, new Date());
        parts.row.dataset.replyId = String(frame.id);
        parts.row.dataset.streaming = "true";
        parts.bubble.classList.add("streaming");
        streams.set(String(frame.id), { parts, text, role });
        list.setAttribute("aria-busy", "true"); // screen readers wait for the whole reply
        append(parts.row);
        updateTyping();
        break;
      }
      case "delta": {
        const stream = streams.get(String(frame.id));
        if (!stream) break;
        const stick = isNearBottom();
        stream.text += text;
        stream.parts.bubble.textContent = stream.text;
        if (stick) scrollToBottom();
        break;
      }
      case "reply_end": {
        const id = String(frame.id);
        const stream = streams.get(id);
        if (!stream) {
          handleFrame(JSON.stringify({ ...frame, type: "reply" }));
          break;
        }
        streams.delete(id);
        const full = typeof frame.text === "string" ? frame.text : stream.text;
        const { parts } = stream;
        const stick = isNearBottom();
        parts.bubble.classList.remove("streaming");
        delete parts.row.dataset.streaming;
        setRichText(parts.bubble, full);
        renderExtras(parts, frame);
        if (streams.size === 0) list.removeAttribute("aria-busy");
        if (stick) scrollToBottom();
        remember(replyEntry(stream.role, frame, full));
        updateTyping();
        break;
      }
      case "turn_end":
        turnFinished();
        break;
      case "error":
        // The hub puts polite text for the shopper in `message`; the code is for logs, not for people.
        notice((typeof frame.message === "string" && frame.message.trim()) || t("genericError"), true);
        turnFinished();
        break;
      default:
        break; // unknown frame types are ignored, so the hub can add new ones
    }
  }

  /* ---------- connection with reconnect and backoff ---------- */

  let socket = null;
  let attempts = 0;
  let retryTimer = null;
  let countdownTimer = null;
  const outbox = []; // messages typed while disconnected: {frame, row}

  function setStatus(state, text) {
    status.dataset.state = state;
    statusText.textContent = text;
  }

  function socketUrl() {
    const url = new URL("/webchat/ws", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("user_id", userId);
    if (locale) url.searchParams.set("locale", locale);
    const seen = storageGet("localStorage", seenKey());
    if (seen) url.searchParams.set("since", seen);
    return url.href;
  }

  function connect() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = null;
    if (socket) return;
    setStatus("connecting", t("connecting"));
    let ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (_) {
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.addEventListener("open", () => {
      if (socket !== ws) return;
      attempts = 0;
      setStatus("online", t("online"));
      flushOutbox();
    });
    ws.addEventListener("message", (event) => {
      if (socket === ws && typeof event.data === "string") handleFrame(event.data);
    });
    ws.addEventListener("close", () => {
      if (socket !== ws) return;
      socket = null;
      connectionLost();
      scheduleReconnect();
    });
  }

  function connectionLost() {
    const interrupted = pendingTurns > 0 || streams.size > 0;
    for (const { parts } of streams.values()) {
      parts.bubble.classList.remove("streaming");
      delete parts.row.dataset.streaming;
    }
    streams.clear();
    list.removeAttribute("aria-busy");
    pendingTurns = 0;
    updateTyping();
    if (interrupted) notice(t("lostTurn"), true);
  }

  function scheduleReconnect() {
    if (retryTimer) return;
    const base = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** attempts);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    attempts += 1;
    if (!navigator.onLine) {
      setStatus("offline", t("offline"));
    } else {
      const due = Date.now() + delay;
      const tick = () => setStatus("offline", t("reconnecting", { s: Math.max(1, Math.ceil((due - Date.now()) / 1000)) }));
      tick();
      countdownTimer = setInterval(tick, 1000);
    }
    retryTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (socket) return;
    attempts = 0;
    connect();
  }

  window.addEventListener("online", reconnectNow);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") reconnectNow();
  });

  function transmit(frame) {
    socket.send(JSON.stringify(frame));
    pendingTurns += 1;
    updateTyping();
  }

  function flushOutbox() {
    while (outbox.length && socket && socket.readyState === WebSocket.OPEN) {
      const { frame, row } = outbox.shift();
      row.classList.remove("pending");
      const flag = row.querySelector('[data-testid="pending"]');
      if (flag) flag.remove();
      transmit(frame);
    }
  }

  /* ---------- sending ---------- */

  function send(rawText, shown) {
    const text = String(rawText).trim();
    if (!text) return false;
    const frame = { type: "message", text, message_id: randomId("m_") };
    if (!storageGet("localStorage", seenKey())) markSeen(Date.now() / 1000 - 60);
    if (locale) frame.locale = locale;
    const parts = messageRow("shopper", shown || text, new Date());
    append(parts.row, true);
    remember({ role: "shopper", text: shown || text, at: Date.now() });
    if (socket && socket.readyState === WebSocket.OPEN) {
      transmit(frame);
    } else {
      parts.row.classList.add("pending");
      const flag = el("span", null, { "data-testid": "pending" });
      flag.textContent = ` · ${t("pending")}`;
      parts.meta.appendChild(flag);
      outbox.push({ frame, row: parts.row });
      if (!socket) reconnectNow();
    }
    return true;
  }

  function autoresize() {
    input.style.blockSize = "auto";
    input.style.blockSize = `${Math.min(input.scrollHeight + 2, 140)}px`;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (send(input.value)) {
      input.value = "";
      autoresize();
    }
    input.focus({ preventScroll: true });
  });

  input.addEventListener("keydown", (event) => {
    // Enter sends; Shift+Enter is a new line; Enter that confirms an IME candidate (pinyin, kana) does nothing.
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    if (typeof form.requestSubmit === "function") form.requestSubmit();
    else form.dispatchEvent(new Event("submit", { cancelable: true }));
  });

  input.addEventListener("input", autoresize);

  /* ---------- location opt-in (nearby free samples) ---------- */

  // Only when the shopper presses the button: the browser asks for permission, the hub then asks whether it
  // may use the location for nearby offers, and keeps it only after a yes.
  if (navigator.geolocation) {
    const share = el("button", "location-button", { type: "button", "data-testid": "share-location" });
    share.textContent = "📍";
    share.title = t("shareLocation");
    share.setAttribute("aria-label", t("shareLocation"));
    share.addEventListener("click", () => {
      navigator.geolocation.getCurrentPosition((position) => {
        const { latitude, longitude } = position.coords;
        const frame = { type: "message", text: "", message_id: randomId("m_"), location: { lat: latitude, lon: longitude } };
        if (locale) frame.locale = locale;
        const parts = messageRow("shopper", t("sharedLocation"), new Date());
        append(parts.row, true);
        if (socket && socket.readyState === WebSocket.OPEN) transmit(frame);
        else outbox.push({ frame, row: parts.row });
      }, () => {}, { maximumAge: 10 * 60 * 1000, timeout: 15 * 1000 });
    });
    form.insertBefore(share, sendButton);
  }

  /* ---------- start ---------- */

  applyLocale();
  loadPersona();
  restoreTranscript();
  if (!list.querySelector(".message")) {
    const hello = notice(t("welcome"), false);
    hello.dataset.testid = "empty-state";
  }
  connect();
})();
