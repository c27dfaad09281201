// Pommy chat app: runs in the widget's iframe (our origin, strict CSP: no
// inline script or style, so every dynamic style goes through CSSOM). Every
// text from any party is put in the DOM as text (textContent, text nodes),
// never parsed as HTML. Realtime: a fetch()-read SSE stream per open
// conversation, resumed from the last sequence number it saw; messages are
// kept in a map by id and placed in seq order, so each shows once, in order;
// outgoing messages wait in a persisted queue with their Idempotency-Key
// until the server has them.

const root = document.documentElement;
const tenant = root.dataset.tenant || location.pathname.split("/").pop();

const STR = {
  en: {
    messages: "Messages", chat: "Chat", close: "Close chat", back: "All conversations", greeting: "Hi! How can we help?",
    away: "We're away right now. Leave a message and we'll get back to you.",
    connecting: "Connecting…", online: "Connected", offline: "Offline — messages will be sent when you're back",
    tooFast: "You're sending messages too fast; try again in {n} s.", message: "Message", placeholder: "Type your message…",
    send: "Send", attach: "Attach a file", sending: "Sending…", notSent: "Not sent yet", failed: "Not sent: {n}",
    remove: "Remove", seen: "Seen", you: "You", team: "Support team", assistant: "Assistant", typing: "{n} is typing…",
    newConv: "New conversation", yourConvs: "Your conversations", noConvs: "No conversations yet.",
    open: "Open", pending: "Waiting", snoozed: "Snoozed", resolved: "Resolved",
    prechat: "Before we start, please tell us about you.", name: "Name", email: "Email", optional: "optional",
    needField: "Please fill in this field.", badEmail: "Please enter a valid email address.",
    identity: "Please sign in on this website to chat with us.",
    csatQ: "How would you rate this conversation?", rate: "{n} out of 5", comment: "Comment (optional)",
    submit: "Send rating", thanks: "Thank you for your feedback!", yourRating: "Your rating: {n} out of 5",
    tooBig: "This file is too large (limit {n}).", badType: "This type of file is not accepted.",
    uploading: "Uploading {n}…", download: "Download {n}", error: "Something went wrong. Please try again.",
    loading: "Loading…", noFileOffline: "You're offline; attach the file when you're back.", file: "File"
  },
  tr: {
    messages: "Mesajlar", chat: "Sohbet", close: "Sohbeti kapat", back: "Tüm konuşmalar", greeting: "Merhaba! Size nasıl yardımcı olabiliriz?",
    away: "Şu anda çevrim dışıyız. Mesajınızı bırakın, size en kısa sürede dönelim.",
    connecting: "Bağlanıyor…", online: "Bağlandı", offline: "Çevrim dışı — bağlantı geri geldiğinde mesajlar gönderilecek",
    tooFast: "Çok hızlı mesaj gönderiyorsunuz; {n} sn sonra tekrar deneyin.", message: "Mesaj", placeholder: "Mesajınızı yazın…",
    send: "Gönder", attach: "Dosya ekle", sending: "Gönderiliyor…", notSent: "Henüz gönderilmedi", failed: "Gönderilemedi: {n}",
    remove: "Kaldır", seen: "Görüldü", you: "Siz", team: "Destek ekibi", assistant: "Asistan", typing: "{n} yazıyor…",
    newConv: "Yeni konuşma", yourConvs: "Konuşmalarınız", noConvs: "Henüz konuşma yok.",
    open: "Açık", pending: "Beklemede", snoozed: "Ertelendi", resolved: "Çözüldü",
    prechat: "Başlamadan önce lütfen kendinizi tanıtın.", name: "Adınız", email: "E-posta", optional: "isteğe bağlı",
    needField: "Lütfen bu alanı doldurun.", badEmail: "Lütfen geçerli bir e-posta adresi girin.",
    identity: "Bizimle sohbet etmek için lütfen bu web sitesinde oturum açın.",
    csatQ: "Bu konuşmayı nasıl değerlendirirsiniz?", rate: "5 üzerinden {n}", comment: "Yorum (isteğe bağlı)",
    submit: "Puanı gönder", thanks: "Geri bildiriminiz için teşekkür ederiz!", yourRating: "Puanınız: 5 üzerinden {n}",
    tooBig: "Bu dosya çok büyük (sınır {n}).", badType: "Bu dosya türü kabul edilmiyor.",
    uploading: "{n} yükleniyor…", download: "İndir: {n}", error: "Bir şeyler ters gitti. Lütfen tekrar deneyin.",
    loading: "Yükleniyor…", noFileOffline: "Çevrim dışısınız; bağlantı gelince dosyayı ekleyin.", file: "Dosya"
  }
};
let lang = STR[root.lang] ? root.lang : "en";
const t = (k, n) => (STR[lang][k] || STR.en[k] || k).replace("{n}", n);

// ---- small helpers -------------------------------------------------------

function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const k in props || {}) {
    const v = props[k];
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of kids.flat()) if (c != null && c !== false) el.append(c);
  return el;
}
const $ = (id) => document.getElementById(id);
// Icons as SVG elements (no icon font, no emoji font needed); decorative.
function icon(d, fill) {
  const NS = "http://www.w3.org/2000/svg", svg = document.createElementNS(NS, "svg"), p = document.createElementNS(NS, "path");
  for (const [k, v] of [["viewBox", "0 0 24 24"], ["width", "20"], ["height", "20"], ["aria-hidden", "true"], ["focusable", "false"]]) svg.setAttribute(k, v);
  p.setAttribute("d", d);
  if (fill) p.setAttribute("fill", "currentColor");
  else for (const [k, v] of [["fill", "none"], ["stroke", "currentColor"], ["stroke-width", "2.2"], ["stroke-linecap", "round"], ["stroke-linejoin", "round"]]) p.setAttribute(k, v);
  svg.append(p);
  return svg;
}
const CLIP = "M20.5 11.5l-8.2 8.2a5 5 0 0 1-7.1-7.1l8.6-8.6a3.4 3.4 0 0 1 4.8 4.8l-8.5 8.5a1.7 1.7 0 0 1-2.4-2.4l7.7-7.7";
const store = {
  get(k) { try { return JSON.parse(localStorage.getItem("pommy:" + tenant + ":" + k)); } catch { return null; } },
  set(k, v) { try { localStorage.setItem("pommy:" + tenant + ":" + k, JSON.stringify(v)); } catch { /* storage blocked: memory only */ } },
  del(k) { try { localStorage.removeItem("pommy:" + tenant + ":" + k); } catch { /* ignore */ } }
};
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function size(n) {
  const f = new Intl.NumberFormat(lang, { maximumFractionDigits: 1 });
  return n < 1024 ? f.format(n) + " B" : n < 1048576 ? f.format(n / 1024) + " KB" : f.format(n / 1048576) + " MB";
}
function when(s) {
  const d = new Date(s);
  if (isNaN(d)) return "";
  const today = new Date().toDateString() === d.toDateString();
  return new Intl.DateTimeFormat(lang, today ? { hour: "2-digit", minute: "2-digit" } : { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }).format(d);
}

// WCAG relative luminance; the text colour (white or near-black) with the
// larger contrast on bg: at least 4.5:1 for every background colour.
function lum(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [n >> 16, (n >> 8) & 255, n & 255].reduce((a, c, i) => {
    c /= 255;
    return a + (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4) * [0.2126, 0.7152, 0.0722][i];
  }, 0);
}
const onColor = (hex) => { const l = lum(hex); return 1.05 / (l + 0.05) >= (l + 0.05) / 0.0552 ? "#ffffff" : "#111111"; };

// Only http(s) URLs become links; the link's text is the URL's text.
function richText(text) {
  const frag = document.createDocumentFragment();
  const re = /\bhttps?:\/\/[^\s<>"']+/gi;
  let at = 0, m;
  while ((m = re.exec(text))) {
    let url = m[0];
    const trail = /[.,;:!?)\]}]+$/.exec(url);
    if (trail) url = url.slice(0, -trail[0].length);
    let ok = false;
    try { const u = new URL(url); ok = u.protocol === "http:" || u.protocol === "https:"; } catch { /* not a URL */ }
    if (!ok) continue;
    frag.append(document.createTextNode(text.slice(at, m.index)));
    frag.append(h("a", { href: url, target: "_blank", rel: "noopener noreferrer nofollow ugc", text: url }));
    at = m.index + url.length;
    re.lastIndex = at;
  }
  frag.append(document.createTextNode(text.slice(at)));
  return frag;
}

const PALETTE = ["#1f5f8b", "#7a3e9d", "#2e7d32", "#a1451b", "#00695c", "#ad1457", "#4e5b6e", "#5d4037"];
function avatar(name, type) {
  const n = (name || (type === "agent" ? "AI" : "?")).trim();
  // Initials of the words that start with a letter or digit ("Ayşe <b>" → "A").
  const ini = type === "agent" && !name ? "AI" : n.split(/\s+/).filter((w) => /^[\p{L}\p{N}]/u.test(w)).slice(0, 2).map((w) => Array.from(w)[0]).join("").toLocaleUpperCase(lang);
  let hsh = 0;
  for (const c of n) hsh = (hsh * 31 + c.codePointAt(0)) >>> 0;
  const el = h("span", { class: "pw-av", "aria-hidden": "true", text: ini || "?" });
  el.style.setProperty("background", PALETTE[hsh % PALETTE.length]);
  return el;
}

// ---- talking to the parent page -------------------------------------------

let parentOrigin = null, widgetToken = null, isOpen = false, tokenWait = null;
function toParent(msg) { if (parentOrigin) parent.postMessage(msg, parentOrigin); }

function newToken() {
  // Ask the loader for a fresh widget token; it answers with pommy:token.
  // One request at a time; false after 10 s without an answer.
  if (!tokenWait) {
    let done;
    const p = new Promise((resolve) => { done = resolve; });
    p.resolve = done;
    tokenWait = p;
    toParent({ type: "pommy:token-expired" });
    setTimeout(() => done(false), 10000);
    p.then(() => { if (tokenWait === p) tokenWait = null; });
  }
  return tokenWait;
}

let pendingJWT = null, pendingAttrs = null;
window.addEventListener("message", (e) => {
  if (e.source !== window.parent) return;
  const m = e.data;
  if (!m || typeof m.type !== "string") return;
  if (!parentOrigin) {
    if (m.type !== "pommy:init" || typeof m.token !== "string" || m.origin !== e.origin) return;
    const anc = location.ancestorOrigins;
    if (anc && anc.length && anc[0] !== e.origin) return;
    parentOrigin = e.origin;
    widgetToken = m.token;
    if (STR[m.locale]) lang = m.locale;
    start();
    return;
  }
  if (e.origin !== parentOrigin) return;
  switch (m.type) {
    case "pommy:token":
      if (typeof m.token === "string") { widgetToken = m.token; if (tokenWait) tokenWait.resolve(true); }
      break;
    case "pommy:identify":
      if (typeof m.jwt === "string") { pendingJWT = m.jwt; if (booted) boot(); }
      break;
    case "pommy:logout":
      // The page's user signed out: on a shared computer the next person
      // must not see their chats. The queue goes too (it is theirs).
      pendingJWT = null;
      forgetVisitor();
      if (booted) boot();
      break;
    case "pommy:attributes":
      if (m.attributes && typeof m.attributes === "object") {
        pendingAttrs = Object.assign(pendingAttrs || {}, m.attributes);
        if (booted) sendAttrs();
      }
      break;
    case "pommy:open": isOpen = true; onShown(); break;
    case "pommy:close": isOpen = false; break;
  }
});

// ---- API ---------------------------------------------------------------------

class ApiError extends Error {}
function fail(status, code, message, extra) { return Object.assign(new ApiError(message || t("error")), { status, code }, extra); }

let visitor = null; // {token, id, verified}
async function api(method, path, { body, key, raw, signal, retried } = {}) {
  const headers = { "Pommy-Widget": widgetToken };
  if (visitor) headers["Pommy-Visitor"] = visitor.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["Idempotency-Key"] = key;
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store", credentials: "omit", signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw fail(0, "offline", t("offline"), { offline: true });
  }
  if (r.ok) return raw ? r : r.json();
  const err = await errorOf(r);
  if (!retried && err.code === "widget_token_invalid" && await newToken()) return api(method, path, { body, key, raw, signal, retried: true });
  if (err.code === "visitor_token_invalid" && visitor) { store.del("visitor"); visitor = null; setTimeout(boot, 0); }
  throw err;
}
async function errorOf(r) {
  let e = {};
  try { e = (await r.json()).error || {}; } catch { /* not JSON */ }
  return fail(r.status, e.code || "http_" + r.status, e.message, { retryAfter: +r.headers.get("Retry-After") || 0 });
}

// ---- the shell ---------------------------------------------------------------

let cfg = null, booted = false;
const ui = {};
function shell() {
  document.body.replaceChildren();
  ui.title = h("h1", { id: "pw-title", class: "pw-title", "data-pommy": "title", text: t("chat") });
  ui.back = h("button", { type: "button", class: "pw-icon pw-back", "data-pommy": "back", "aria-label": t("back"), title: t("back"), hidden: true, onclick: showList }, icon("M15 5l-7 7 7 7"));
  ui.close = h("button", { type: "button", class: "pw-icon", "data-pommy": "close", "aria-label": t("close"), title: t("close"), onclick: () => toParent({ type: "pommy:close" }) }, icon("M6 6l12 12M18 6L6 18"));
  ui.conn = h("div", { class: "pw-conn", "data-pommy": "connection", "data-state": "connecting", role: "status" });
  ui.notice = h("div", { class: "pw-notice", "data-pommy": "notice", role: "status", hidden: true });
  ui.body = h("div", { class: "pw-body" }, h("p", { class: "pw-muted", text: t("loading") }));
  ui.foot = h("div", { class: "pw-foot" });
  ui.dialog = h("div", { class: "pw", role: "dialog", "aria-modal": "true", "aria-labelledby": "pw-title", "data-pommy": "dialog" },
    h("header", { class: "pw-head" }, ui.back, ui.title, ui.close), ui.conn, ui.notice, ui.body, ui.foot);
  document.body.append(ui.dialog);
  setConn(conn);
}

// Keyboard: Tab stays inside the chat, Escape closes it (the loader puts the
// focus back on its launcher).
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") { e.preventDefault(); toParent({ type: "pommy:close" }); return; }
  if (e.key !== "Tab" || !ui.dialog) return;
  const f = [...ui.dialog.querySelectorAll("button,a[href],input,textarea,select,[tabindex]:not([tabindex='-1'])")]
    .filter((el) => !el.disabled && el.getClientRects().length);
  if (!f.length) return;
  const first = f[0], last = f[f.length - 1];
  if (e.shiftKey && (document.activeElement === first || !ui.dialog.contains(document.activeElement))) { e.preventDefault(); last.focus(); }
  else if (!e.shiftKey && (document.activeElement === last || !ui.dialog.contains(document.activeElement))) { e.preventDefault(); first.focus(); }
});

let conn = "connecting", connTimer = 0;
function setConn(s) {
  conn = s;
  if (!ui.conn) return;
  ui.conn.dataset.state = s;
  ui.conn.textContent = t(s);
  clearTimeout(connTimer);
  ui.conn.hidden = false;
  if (s === "online") connTimer = setTimeout(() => { ui.conn.hidden = true; }, 2500);
}
let noticeTimer = 0;
function notice(text, secs) {
  clearInterval(noticeTimer);
  if (!text) { ui.notice.hidden = true; return; }
  ui.notice.hidden = false;
  if (!secs) { ui.notice.textContent = text; noticeTimer = setTimeout(() => { ui.notice.hidden = true; }, 8000); return; }
  let left = Math.ceil(secs);
  const tick = () => {
    if (left <= 0) { clearInterval(noticeTimer); ui.notice.hidden = true; return; }
    ui.notice.textContent = t("tooFast", left--);
  };
  tick();
  noticeTimer = setInterval(tick, 1000);
}

function applyConfig() {
  const color = /^#[0-9a-f]{6}$/i.test(cfg.color || "") ? cfg.color : "#2f5bea";
  root.style.setProperty("--pommy-color", color);
  root.style.setProperty("--pommy-on-color", onColor(color));
  // The brand colour as text on white only where it reads (≥ 4.5:1), else ink.
  root.style.setProperty("--pommy-ink", 1.05 / (lum(color) + 0.05) >= 4.5 ? color : "#1a1a1a");
  root.lang = lang;
  document.title = cfg.tenant_name || t("chat");
  ui.title.textContent = cfg.tenant_name || t("chat");
}

// Business hours are the tenant's, in its IANA zone, judged here with Intl.
function isAway() {
  const bh = cfg.business_hours;
  if (!bh || !bh.week) return false;
  try {
    const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", { timeZone: bh.timezone, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
      .formatToParts(new Date()).map((p) => [p.type, p.value]));
    const now = parts.hour.replace(/^24/, "00") + ":" + parts.minute;
    const day = bh.week[parts.weekday.toLowerCase().slice(0, 3)] || [];
    return !day.some(([a, b]) => now >= a && now < (b === "00:00" ? "24:00" : b));
  } catch { return false; }
}

// ---- start -------------------------------------------------------------------

function start() {
  shell();
  // Ready before boot: the loader then hands over a pending identify or
  // attributes at once, and the first boot uses them.
  toParent({ type: "pommy:ready" });
  boot();
}

// forgetVisitor drops the visitor this browser holds, with their queued
// messages and open conversation.
function forgetVisitor() {
  visitor = null;
  for (const k of ["visitor", "queue", "current"]) store.del(k);
}

let bootN = 0;
async function boot() {
  const n = ++bootN;
  stopStream();
  try {
    if (!cfg) { cfg = await api("GET", "/v1/widget/config"); applyConfig(); }
    visitor = store.get("visitor");
    if (pendingJWT) {
      const jwt = pendingJWT;
      pendingJWT = null;
      try {
        const v = await api("POST", "/v1/widget/identify", { body: { jwt } });
        visitor = { token: v.visitor_token, id: v.visitor_id, verified: true };
        store.set("visitor", visitor);
      } catch (e) {
        console.warn("Pommy: identify refused:", e.code, e.message);
        // A refused identity must not leave the page on the previous
        // verified user's chats (another user signed in on this browser).
        if (visitor && visitor.verified) forgetVisitor();
      }
    }
    if (cfg.identity === "enforce" && !(visitor && visitor.verified)) {
      visitor = null;
      ui.body.replaceChildren(h("p", { class: "pw-gate", "data-pommy": "identity-required", text: t("identity") }));
      setConn(navigator.onLine ? "online" : "offline");
      ui.foot.replaceChildren();
      booted = true;
      if (pendingJWT && n === bootN) boot();
      return;
    }
    if (!visitor) {
      const v = await api("POST", "/v1/widget/visitors", { body: {} });
      visitor = { token: v.visitor_token, id: v.visitor_id, verified: false };
      store.set("visitor", visitor);
    }
    if (n !== bootN) return;
    booted = true;
    if (pendingJWT) return boot();
    queue = (store.get("queue") || []).filter((q) => q.visitor === visitor.id);
    if (pendingAttrs) sendAttrs();
    const list = await loadList();
    const last = store.get("current");
    const pick = list.find((c) => c.id === last && c.status !== "resolved") || list.find((c) => c.status !== "resolved");
    const draft = queue.find((q) => q.conv.startsWith("new:"));
    if (draft) openDraft(draft.conv);
    else if (pick) await openConv(pick);
    else if (list.length) showList();
    else openDraft();
    flush();
  } catch (e) {
    if (n !== bootN) return;
    console.warn("Pommy:", e.code, e.message);
    ui.body.replaceChildren(h("p", { class: "pw-gate", role: "alert", text: e.offline ? t("offline") : t("error") }));
    setConn(e.offline ? "offline" : "connecting");
    // Try again: the network may come back, the rate limit pass.
    setTimeout(() => { if (n === bootN) boot(); }, Math.max(e.retryAfter * 1000, 5000));
  }
}

async function sendAttrs() {
  if (!visitor) return;
  const attributes = {};
  // Strings, numbers and booleans as given; null removes the attribute.
  for (const k in pendingAttrs) {
    const v = pendingAttrs[k];
    attributes[k] = v === null || ["string", "number", "boolean"].includes(typeof v) ? v : String(v);
  }
  pendingAttrs = null;
  try { await api("PATCH", "/v1/widget/visitor", { body: { attributes } }); } catch (e) { console.warn("Pommy: attributes refused:", e.code, e.message); }
}

let convs = [];
async function loadList() {
  convs = (await api("GET", "/v1/widget/conversations")).conversations || [];
  return convs;
}

function showList() {
  stopStream();
  cur = null;
  store.del("current");
  ui.back.hidden = true;
  setConn(navigator.onLine ? "online" : "offline");
  const items = convs.map((c) => h("li", {},
    h("button", { type: "button", class: "pw-conv", "data-pommy": "conversation-item", "data-id": c.id, onclick: () => openConv(c) },
      h("span", { class: "pw-st pw-st-" + c.status, text: t(c.status) || c.status }),
      h("span", { class: "pw-muted", text: when(c.last_activity_at) }))));
  ui.body.replaceChildren(h("div", { class: "pw-home" },
    h("p", { class: "pw-greet", "data-pommy": "greeting", text: cfg.greeting || t("greeting") }),
    isAway() ? h("p", { class: "pw-away", "data-pommy": "offline", text: cfg.offline_message || t("away") }) : null,
    h("button", { type: "button", class: "pw-btn", "data-pommy": "new-conversation", onclick: () => openDraft() }, t("newConv")),
    h("h2", { class: "pw-h2", text: t("yourConvs") }),
    items.length ? h("ul", { class: "pw-list" }, items) : h("p", { class: "pw-muted", text: t("noConvs") })));
  ui.foot.replaceChildren();
  ui.body.querySelector("button").focus();
  loadList().then(() => { if (!cur && ui.body.querySelector(".pw-home") && convs.length !== items.length) showList(); }, () => {});
}

// ---- a conversation ----------------------------------------------------------

let cur = null;        // the open conversation (VConversation), or {draft: "new:…"}
let msgs = new Map();  // message id → VMessage of cur
let lastSeq = 0;       // the last event seq of cur the widget has applied

function convView() {
  ui.back.hidden = false;
  ui.log = h("ol", { class: "pw-log" });
  // The live region is the log's wrapper: an <ol> cannot take role=log.
  ui.logRegion = h("div", { role: "log", "aria-live": "polite", "aria-relevant": "additions", "aria-label": t("messages"), "data-pommy": "messages" }, ui.log);
  ui.typing = h("p", { class: "pw-typing", "data-pommy": "typing", hidden: true });
  ui.csat = h("div", { class: "pw-csat-wrap" });
  ui.top = h("div", { class: "pw-top" });
  // Focusable, so that a keyboard alone can scroll back through a long
  // conversation (WCAG 2.1.1; axe scrollable-region-focusable).
  ui.scroll = h("div", { class: "pw-scroll", tabindex: "0" }, ui.top, ui.logRegion, ui.typing, ui.csat);
  ui.body.replaceChildren(ui.scroll);
  // One composer for the frame's life: what the visitor is typing (or picking)
  // survives the draft becoming a conversation.
  if (!ui.form) ui.form = composer();
  if (ui.form.parentNode !== ui.foot) ui.foot.replaceChildren(ui.form);
}

// The tenant's greeting opens every conversation (it is not a message). It
// speaks for the team, under the tenant's name, unless the tenant named an
// AI agent: a visitor must not be told a machine greets them when none does.
function greet() {
  const who = cfg.agent_name || cfg.tenant_name || t("team");
  ui.top.append(h("div", { class: "pw-msg pw-them", "data-pommy": "greeting" }, avatar(who, cfg.agent_name ? "agent" : "person"),
    h("div", { class: "pw-bubble" }, h("span", { class: "pw-name", text: who }),
      h("p", { class: "pw-text", text: cfg.greeting || t("greeting") }))));
}

function openDraft(id) {
  stopStream();
  cur = { draft: id || "new:" + uuid(), status: "open" };
  msgs = new Map();
  lastSeq = 0;
  convView();
  greet();
  if (isAway()) ui.top.append(h("p", { class: "pw-away", "data-pommy": "offline", text: cfg.offline_message || t("away") }));
  const pc = cfg.pre_chat;
  if (pc && pc.enabled && pc.fields && pc.fields.length && !visitor.verified && !queue.some((q) => q.conv === cur.draft)) {
    // Its own form for the fields; the composer's send starts the chat with
    // them. Enter in a field moves on to the message.
    ui.prechat = h("form", { class: "pw-pre", "data-pommy": "prechat", "aria-labelledby": "pw-pre-l", novalidate: true, onsubmit: (e) => { e.preventDefault(); ui.input.focus(); } },
      h("p", { id: "pw-pre-l", class: "pw-legend", text: t("prechat") }),
      pc.fields.filter((f) => f.name === "name" || f.name === "email").map((f) => h("div", { class: "pw-field" },
        h("label", { for: "pw-f-" + f.name }, t(f.name), f.required ? " *" : h("span", { class: "pw-muted", text: " (" + t("optional") + ")" })),
        h("input", { id: "pw-f-" + f.name, name: f.name, type: f.name === "email" ? "email" : "text", autocomplete: f.name, required: f.required, maxlength: 200, "data-pommy": "prechat-" + f.name, "aria-describedby": "pw-e-" + f.name }),
        h("p", { id: "pw-e-" + f.name, class: "pw-err", hidden: true }))));
    ui.top.append(ui.prechat);
  } else ui.prechat = null;
  renderPending();
  setConn(navigator.onLine ? "online" : "offline");
  focusInput();
}

async function openConv(c) {
  stopStream();
  cur = c;
  msgs = new Map();
  store.set("current", c.id);
  lastSeq = 0;
  convView();
  greet();
  ui.prechat = null;
  setConn("connecting");
  try {
    // Everything up to the conversation's last_seq from the messages; the
    // stream continues after it. A message in both shows once (map by id).
    const fresh = await api("GET", "/v1/widget/conversations/" + c.id);
    if (cur !== c) return;
    Object.assign(c, fresh);
    await catchUp();
    lastSeq = Math.max(lastSeq, c.last_seq || 0);
  } catch (e) {
    if (cur !== c) return;
    if (e.status === 404) { await loadList().catch(() => {}); return showList(); }
  }
  renderPending();
  renderCsat();
  focusInput();
  connect();
}

let maxMsgSeq = 0;
const notified = new Set(); // replies already announced to the host page
async function catchUp() {
  const c = cur;
  let after = maxMsgSeq = [...msgs.values()].reduce((a, m) => Math.max(a, m.seq), 0);
  for (let i = 0; i < 100; i++) {
    const r = await api("GET", `/v1/widget/conversations/${c.id}/messages?after=${after}&limit=100`);
    if (cur !== c) return;
    for (const m of r.messages || []) upsert(m, false);
    if (!r.more || !(r.next_after > after)) break;
    after = r.next_after;
  }
}

// upsert shows m once, at its seq's place; a second copy only refreshes it
// (an attachment that was added).
function upsert(m, live) {
  if (!cur || m.conversation_id !== cur.id) return;
  const old = msgs.get(m.id);
  msgs.set(m.id, m);
  // The stream can bring the visitor's message before its POST answers:
  // the queued copy leaves the log now (the entry stays queued until the
  // answer, so a lost answer is still resent with its key).
  const q = inflight;
  if (!old && m.author_type === "visitor" && q && q.conv === m.conversation_id && q.text === m.text) {
    q.shown = true;
    const li = ui.log.querySelector(`li[data-key="${CSS.escape(q.key)}"]`);
    if (li) li.remove();
  }
  maxMsgSeq = Math.max(maxMsgSeq, m.seq);
  const el = renderMsg(m);
  if (old) {
    const prev = ui.log.querySelector(`[data-id="${CSS.escape(m.id)}"]`);
    if (prev) { prev.replaceWith(el); renderSeen(); return; }
  }
  const near = ui.scroll.scrollHeight - ui.scroll.scrollTop - ui.scroll.clientHeight < 80;
  let before = null;
  for (const li of ui.log.children) if (!li.dataset.seq || +li.dataset.seq > m.seq) { before = li; break; }
  ui.log.insertBefore(el, before);
  if (m.author_type === "person" || m.author_type === "agent") {
    typingOff();
    // New to the visitor: it came live, or is past what they had read when
    // this conversation was opened (a reply that beat the stream). Once each.
    if ((live || m.seq > (cur.visitor_read_seq || 0)) && !notified.has(m.id)) {
      notified.add(m.id);
      toParent({ type: "pommy:event", name: "message", conversation_id: m.conversation_id, author_type: m.author_type });
      if (!isOpen || document.hidden) { unread++; toParent({ type: "pommy:unread", count: unread }); }
    }
    readSoon();
  }
  renderSeen();
  if (near || m.author_type === "visitor" || !live) ui.scroll.scrollTop = ui.scroll.scrollHeight;
}

function authorName(m) {
  if (m.author_type === "visitor") return t("you");
  if (m.author_type === "agent") return m.author_name || cfg.agent_name || t("assistant");
  return m.author_name || t("team");
}

function renderMsg(m) {
  const mine = m.author_type === "visitor", sys = m.author_type === "system";
  const bubble = h("div", { class: "pw-bubble" }, sys ? null : h("span", { class: "pw-name", "data-pommy": "author", text: authorName(m) }));
  if (m.text) bubble.append(h("p", { class: "pw-text", "data-pommy": "text" }, richText(m.text)));
  if (m.attachment) bubble.append(attachmentView(m));
  // A message that announced a file whose upload has not landed yet.
  else if (!m.text) bubble.append(h("p", { class: "pw-text pw-muted", text: t("file") + " …" }));
  bubble.append(h("time", { class: "pw-time", datetime: m.created_at, text: when(m.created_at) }));
  return h("li", { class: "pw-msg " + (sys ? "pw-sys" : mine ? "pw-mine" : "pw-them"), "data-pommy": "message", "data-author": m.author_type, "data-id": m.id, "data-seq": m.seq, "data-state": mine ? "sent" : null },
    mine || sys ? null : avatar(authorName(m), m.author_type), bubble);
}

// Attachments are fetched with the token headers (an <img src> could not
// send them) and shown from a blob: URL.
const blobs = new Map();
async function fetchBlob(m) {
  if (blobs.has(m.id)) return blobs.get(m.id);
  const url = m.attachment.url || `/v1/widget/conversations/${m.conversation_id}/messages/${m.id}/attachment`;
  const r = await api("GET", url, { raw: true });
  const u = URL.createObjectURL(await r.blob());
  blobs.set(m.id, u);
  return u;
}
function attachmentView(m) {
  const a = m.attachment, ready = !!a.type;
  const name = h("span", { "data-pommy": "file-name", text: a.name }), label = " · " + size(a.size || 0);
  if (ready && /^image\/(png|jpeg|gif|webp)$/.test(a.type)) {
    const img = h("img", { class: "pw-img", alt: a.name, "data-pommy": "preview" });
    fetchBlob(m).then((u) => { img.src = u; }, () => img.remove());
    return h("figure", { class: "pw-fig", "data-pommy": "attachment" }, img, h("figcaption", { class: "pw-muted" }, name, label));
  }
  if (!ready) return h("span", { class: "pw-file", "data-pommy": "attachment" }, icon(CLIP), name, " · ", t("uploading", "").trim());
  return h("button", { type: "button", class: "pw-file pw-link", "data-pommy": "attachment", title: t("download", a.name),
    onclick: async () => {
      try {
        const u = await fetchBlob(m);
        const link = h("a", { href: u, download: a.name, hidden: true });
        document.body.append(link); link.click(); link.remove();
      } catch (e) { notice(e.message); }
    } }, icon(CLIP), h("span", { class: "pw-sr", text: t("download", "").trim() + " " }), name, label);
}

function renderSeen() {
  if (!ui.log) return;
  for (const s of ui.log.querySelectorAll(".pw-seen")) s.remove();
  const read = (cur && cur.team_read_seq) || 0;
  let last = null;
  for (const m of msgs.values()) if (m.author_type === "visitor" && m.seq <= read && (!last || m.seq > last.seq)) last = m;
  const li = last && ui.log.querySelector(`[data-id="${CSS.escape(last.id)}"] .pw-bubble`);
  if (li) li.append(h("span", { class: "pw-seen", "data-pommy": "seen", text: t("seen") }));
}

function renderCsat() {
  ui.csat.replaceChildren();
  if (!cur || !cur.id || !cfg.csat || cur.status !== "resolved") return;
  if (cur.csat) { ui.csat.append(h("p", { class: "pw-muted", "data-pommy": "csat-done", text: t("yourRating", cur.csat.rating) })); return; }
  let rating = 0;
  const stars = [1, 2, 3, 4, 5].map((n) => h("button", { type: "button", class: "pw-star", "aria-pressed": "false", "aria-label": t("rate", n), "data-rating": n,
    onclick: () => { rating = n; stars.forEach((b, i) => b.setAttribute("aria-pressed", String(i < n))); submit.disabled = false; } },
    icon("M12 2.8l2.8 5.8 6.3.9-4.6 4.4 1.1 6.3L12 17.2l-5.6 3 1.1-6.3-4.6-4.4 6.3-.9z", true)));
  const comment = h("textarea", { id: "pw-csat-c", class: "pw-input", maxlength: 1000, rows: 2, "data-pommy": "csat-comment" });
  const submit = h("button", { type: "submit", class: "pw-btn", disabled: true, "data-pommy": "csat-submit" }, t("submit"));
  const c = cur;
  const form = h("form", { class: "pw-csat", "data-pommy": "csat", "aria-labelledby": "pw-csat-q",
    onsubmit: async (e) => {
      e.preventDefault();
      submit.disabled = true;
      try {
        const body = { rating };
        if (comment.value.trim()) body.comment = comment.value.trim();
        c.csat = await api("POST", `/v1/widget/conversations/${c.id}/csat`, { body });
        ui.csat.replaceChildren(h("p", { class: "pw-thanks", "data-pommy": "csat-thanks", role: "status", text: t("thanks") }));
      } catch (err) {
        if (err.code === "csat_already_given") { c.csat = { rating }; return renderCsat(); }
        submit.disabled = false;
        notice(err.status === 429 ? t("tooFast", err.retryAfter || 1) : err.message);
      }
    } },
    h("p", { id: "pw-csat-q", class: "pw-h2", text: t("csatQ") }), h("div", { class: "pw-stars", role: "group", "aria-labelledby": "pw-csat-q" }, stars),
    h("label", { for: "pw-csat-c", text: t("comment") }), comment, submit);
  ui.csat.append(form);
  ui.scroll.scrollTop = ui.scroll.scrollHeight;
}

// ---- typing and read state ---------------------------------------------------

let typingTimer = 0;
function typingOff() { clearTimeout(typingTimer); if (ui.typing) ui.typing.hidden = true; }
function showTyping(d) {
  if (d.by === "visitor") return;
  if (!d.typing) return typingOff();
  ui.typing.textContent = t("typing", d.name || (d.by === "agent" ? cfg.agent_name || t("assistant") : t("team")));
  ui.typing.hidden = false;
  clearTimeout(typingTimer);
  // A lost "typing: false" must not leave the indicator on forever.
  typingTimer = setTimeout(typingOff, 8000);
}
let typingSentAt = 0;
function typing(on) {
  if (!cur || !cur.id || !navigator.onLine) return;
  const now = Date.now();
  if (on && now - typingSentAt < 3000) return;
  if (!on && !typingSentAt) return;
  typingSentAt = on ? now : 0;
  api("POST", `/v1/widget/conversations/${cur.id}/typing`, { body: { typing: on } }).catch(() => {});
}

let unread = 0, readTimer = 0, readSent = 0;
function onShown() {
  if (unread) { unread = 0; toParent({ type: "pommy:unread", count: 0 }); }
  readSoon();
  focusInput();
}
function readSoon() {
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    if (!cur || !cur.id || !isOpen || document.hidden) return;
    const seq = Math.max(lastSeq, maxMsgSeq);
    if (seq <= readSent) return;
    readSent = seq;
    api("POST", `/v1/widget/conversations/${cur.id}/read`, { body: { seq } }).catch(() => { readSent = 0; });
  }, 600);
}
document.addEventListener("visibilitychange", () => {
  if (document.hidden) return;
  if (isOpen) onShown();
  // After sleep a stream can look alive and be dead: catch up at once
  // (the watchdog ends it later); a dead one is reconnected now.
  if (stream && cur && cur.id === stream.conv.id) catchUp().catch(() => {});
  reconnectNow();
});

// ---- the composer and the outgoing queue -----------------------------------

function focusInput() { if (isOpen && ui.input && !ui.input.disabled) ui.input.focus(); }

function composer() {
  ui.input = h("textarea", { id: "pw-input", class: "pw-input", rows: 1, maxlength: 10000, placeholder: t("placeholder"), "aria-label": t("message"), "data-pommy": "composer",
    onkeydown: (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendText(); }
    },
    oninput: () => { grow(); if (ui.input.value.trim()) typing(true); },
    onblur: () => typing(false),
    onpaste: (e) => {
      const files = [...(e.clipboardData && e.clipboardData.files || [])];
      if (files.length) { e.preventDefault(); files.forEach(upload); }
    } });
  ui.file = h("input", { type: "file", class: "pw-hide", tabindex: "-1", "aria-hidden": "true", "data-pommy": "file",
    accept: (cfg.attachments && cfg.attachments.types || []).join(","),
    onchange: (e) => { [...e.target.files].forEach(upload); e.target.value = ""; } });
  return h("form", { class: "pw-composer", "data-pommy": "composer-form", onsubmit: (e) => { e.preventDefault(); sendText(); } },
    ui.input, ui.file,
    h("button", { type: "button", class: "pw-icon pw-attach", "data-pommy": "attach", "aria-label": t("attach"), title: t("attach"), onclick: () => ui.file.click() }, icon(CLIP)),
    h("button", { type: "submit", class: "pw-send", "data-pommy": "send", "aria-label": t("send"), title: t("send") }, icon("M3 20.5l18.5-8.5L3 3.5v6.8l12.5 1.7L3 13.7z", true)));
}
function grow() {
  ui.input.style.setProperty("height", "auto");
  ui.input.style.setProperty("height", Math.min(ui.input.scrollHeight, 120) + "px");
}

function prechatValues() {
  if (!ui.prechat) return {};
  const out = {};
  let bad = null;
  for (const input of ui.prechat.querySelectorAll("input")) {
    const v = input.value.trim(), err = $("pw-e-" + input.name);
    let msg = "";
    if (input.required && !v) msg = t("needField");
    else if (v && input.type === "email" && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(v)) msg = t("badEmail");
    err.textContent = msg;
    err.hidden = !msg;
    input.setAttribute("aria-invalid", String(!!msg));
    if (msg && !bad) bad = input;
    if (v) out[input.name] = v;
  }
  if (bad) { bad.focus(); return null; }
  return out;
}

let queue = []; // [{key, visitor, conv ("c_…" or "new:…"), text, pre_chat?, error?}]
function saveQueue() { store.set("queue", queue.filter((q) => !q.error).map(({ shown, ...q }) => q)); }

function sendText() {
  const text = ui.input.value.trim();
  if (!text || !cur) return;
  const entry = { key: uuid(), visitor: visitor.id, conv: cur.id || cur.draft, text };
  if (cur.draft && !queue.some((q) => q.conv === cur.draft)) {
    const pre = prechatValues();
    if (pre === null) return;
    if (Object.keys(pre).length) entry.pre_chat = pre;
    if (ui.prechat) { ui.prechat.remove(); ui.prechat = null; }
  }
  ui.input.value = "";
  grow();
  typing(false);
  queue.push(entry);
  saveQueue();
  renderPending();
  flush();
}

// The visitor's queued messages sit at the end of the log, without a seq,
// data-state "pending" (or "failed"), until the server has them.
function renderPending() {
  if (!ui.log || !cur) return;
  for (const li of ui.log.querySelectorAll("li[data-key]")) li.remove();
  const id = cur.id || cur.draft, live = navigator.onLine && conn !== "offline";
  for (const q of queue.filter((x) => x.conv === id && !x.shown)) {
    ui.log.append(h("li", { class: "pw-msg pw-mine pw-queued", "data-pommy": "message", "data-author": "visitor", "data-key": q.key, "data-state": q.error ? "failed" : "pending" },
      h("div", { class: "pw-bubble" }, h("span", { class: "pw-name", "data-pommy": "author", text: t("you") }),
        h("p", { class: "pw-text", "data-pommy": "text" }, richText(q.text)),
        h("span", { class: "pw-time", "data-pommy": "status" }, q.error ? t("failed", q.error) : live ? t("sending") : t("notSent")),
        q.error ? h("button", { type: "button", class: "pw-link", onclick: () => { queue = queue.filter((x) => x !== q); renderPending(); } }, t("remove")) : null)));
  }
  ui.scroll.scrollTop = ui.scroll.scrollHeight;
}

// flush sends the queue in order, one at a time. A network failure leaves
// the entry queued (sent again with the same Idempotency-Key, so the server
// keeps one copy); a refusal (4xx) marks it failed and moves on.
let flushing = false, flushTimer = 0, inflight = null;
async function flush() {
  if (flushing || !visitor) return;
  flushing = true;
  clearTimeout(flushTimer);
  try {
    for (;;) {
      const q = queue.find((x) => !x.error);
      if (!q) break;
      inflight = q;
      try {
        if (q.conv.startsWith("new:")) {
          const body = { text: q.text };
          if (q.pre_chat) body.pre_chat = q.pre_chat;
          const r = await api("POST", "/v1/widget/conversations", { body, key: q.key });
          const draft = q.conv;
          for (const x of queue) if (x.conv === draft) x.conv = r.conversation.id;
          remove(q);
          convs.unshift(r.conversation);
          if (cur && cur.draft === draft) {
            await openConv(r.conversation);
            if (r.message) upsert(r.message, false);
          }
        } else {
          const m = await api("POST", `/v1/widget/conversations/${q.conv}/messages`, { body: { text: q.text }, key: q.key });
          remove(q);
          if (cur && cur.id === q.conv) upsert(m, false);
        }
        notice("");
      } catch (e) {
        if (e.offline || e.status >= 500) { setConn("offline"); flushTimer = setTimeout(flush, 5000); break; }
        if (e.status === 429) { notice(t("tooFast"), e.retryAfter || 5); flushTimer = setTimeout(flush, (e.retryAfter || 5) * 1000); break; }
        if (e.code === "visitor_token_invalid" || e.code === "widget_token_invalid") { flushTimer = setTimeout(flush, 5000); break; }
        q.error = e.message;
        saveQueue();
      }
    }
  } finally {
    flushing = false;
    inflight = null;
    renderPending();
  }
}
function remove(q) {
  queue = queue.filter((x) => x !== q);
  saveQueue();
  // Gone from the log in the same task the sent copy enters it: never two.
  const li = ui.log && ui.log.querySelector(`li[data-key="${CSS.escape(q.key)}"]`);
  if (li) li.remove();
}

// Attachments are sent at once, not queued: a File cannot be kept in storage.
async function upload(file) {
  const lim = cfg.attachments || {};
  if (lim.max_bytes && file.size > lim.max_bytes) return notice(t("tooBig", size(lim.max_bytes)));
  if (lim.types && lim.types.length && file.type && !lim.types.includes(file.type)) return notice(t("badType"));
  if (!navigator.onLine || conn === "offline") return notice(t("noFileOffline"));
  const row = h("li", { class: "pw-msg pw-mine pw-queued", "data-pommy": "upload" },
    h("div", { class: "pw-bubble" }, h("p", { class: "pw-text", text: t("uploading", file.name) }),
      h("progress", { max: 100, value: 0, "aria-label": t("uploading", file.name) })));
  ui.log.append(row);
  ui.scroll.scrollTop = ui.scroll.scrollHeight;
  const bar = row.querySelector("progress");
  try {
    // The draft's first message may be starting the conversation right now:
    // attach to that one rather than start a second.
    for (let i = 0; i < 150 && cur.draft && queue.some((q) => q.conv === cur.draft); i++) await sleep(200);
    if (!row.isConnected) ui.log.append(row);
    if (!cur.id) {
      const draft = cur.draft;
      const body = {};
      const pre = prechatValues();
      if (pre === null) { row.remove(); return; }
      if (Object.keys(pre).length) body.pre_chat = pre;
      const r = await api("POST", "/v1/widget/conversations", { body, key: uuid() });
      for (const x of queue) if (x.conv === draft) x.conv = r.conversation.id;
      saveQueue();
      convs.unshift(r.conversation);
      await openConv(r.conversation);
      ui.log.append(row);
    }
    const c = cur;
    if (!row.isConnected) ui.log.append(row);
    const m = await api("POST", `/v1/widget/conversations/${c.id}/messages`, { body: { text: "", attachment: { name: file.name, size: file.size } }, key: uuid() });
    upsert(m, false);
    const done = await put(`/v1/widget/conversations/${c.id}/messages/${m.id}/attachment`, file, bar);
    upsert(done, false);
  } catch (e) {
    notice(e.status === 413 ? t("tooBig", size(lim.max_bytes || 10485760)) : e.status === 415 ? t("badType") : e.status === 429 ? t("tooFast", e.retryAfter || 1) : e.message);
  } finally { row.remove(); }
}

function put(url, file, bar, retried) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("PUT", url);
    x.setRequestHeader("Pommy-Widget", widgetToken);
    x.setRequestHeader("Pommy-Visitor", visitor.token);
    x.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100); };
    x.onerror = () => reject(fail(0, "offline", t("offline"), { offline: true }));
    x.onload = async () => {
      let body = {};
      try { body = JSON.parse(x.responseText); } catch { /* not JSON */ }
      if (x.status >= 200 && x.status < 300) return resolve(body);
      const e = body.error || {};
      if (!retried && e.code === "widget_token_invalid" && await newToken()) return put(url, file, bar, true).then(resolve, reject);
      reject(fail(x.status, e.code, e.message, { retryAfter: +x.getResponseHeader("Retry-After") || 0 }));
    };
    x.send(file);
  });
}

// ---- the event stream ------------------------------------------------------

let stream = null, attempt = 0, retryTimer = 0;
function stopStream() {
  clearTimeout(retryTimer);
  if (stream) { stream.ctrl.abort(); stream = null; }
  typingOff();
}
function reconnectNow() {
  if (!cur || !cur.id) return;
  if (stream && conn === "online") return;
  attempt = 0;
  connect();
}
window.addEventListener("online", () => { flush(); reconnectNow(); if (!cur || !cur.id) setConn("online"); });
window.addEventListener("offline", () => { setConn("offline"); renderPending(); if (stream) { stream.ctrl.abort(); stream = null; } });

function connect() {
  stopStream();
  if (!cur || !cur.id) return;
  const s = { ctrl: new AbortController(), conv: cur };
  stream = s;
  if (conn !== "offline" || navigator.onLine) setConn("connecting");
  run(s).then((err) => {
    if (stream !== s) return;
    stream = null;
    if (err && err.code === "not_found") { loadList().then(showList, showList); return; }
    if (err && err.code === "visitor_token_invalid") return;
    // Backoff 1 s … 15 s with jitter; a rate limit waits what it says.
    const base = Math.min(15000, 1000 * 2 ** attempt++);
    const wait = err && err.retryAfter ? err.retryAfter * 1000 : base / 2 + Math.random() * base / 2;
    setConn(navigator.onLine ? "connecting" : "offline");
    renderPending();
    retryTimer = setTimeout(connect, wait);
  });
}

// run reads one stream until it ends; it returns the error that ended it.
async function run(s) {
  const c = s.conv;
  let watchdog = 0;
  const alive = () => { clearTimeout(watchdog); watchdog = setTimeout(() => s.ctrl.abort(), 40000); };
  try {
    await catchUp();
    if (stream !== s) return null;
    const r = await api("GET", `/v1/widget/conversations/${c.id}/events/stream?after=${lastSeq}`, { raw: true, signal: s.ctrl.signal });
    setConn("online");
    attempt = 0;
    flush();
    renderPending();
    readSoon();
    alive();
    const reader = r.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null;
      alive();
      buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let type = "message", data = "";
        for (const line of frame.split("\n")) {
          const k = line.indexOf(":"), f = k < 0 ? line : line.slice(0, k), v = k < 0 ? "" : line.slice(k + 1).replace(/^ /, "");
          if (f === "event") type = v;
          else if (f === "data") data += (data ? "\n" : "") + v;
        }
        if (stream !== s) return null;
        if (type === "ping" || !data) continue;
        if (type === "error") {
          let e = {};
          try { e = JSON.parse(data).error || {}; } catch { /* keep empty */ }
          if (e.code === "widget_token_invalid") await newToken();
          if (e.code === "visitor_token_invalid") { store.del("visitor"); visitor = null; setTimeout(boot, 0); }
          return fail(0, e.code, e.message);
        }
        try { onEvent(JSON.parse(data)); } catch (e) { console.warn("Pommy: bad event", e); }
      }
    }
  } catch (e) {
    return e.name === "AbortError" ? null : e;
  } finally {
    clearTimeout(watchdog);
  }
}

function onEvent(ev) {
  if (!cur || ev.conversation_id !== cur.id) return;
  const fresh = ev.seq > lastSeq;
  if (fresh) lastSeq = ev.seq;
  const d = ev.data || {};
  switch (ev.type) {
    case "message.created": case "attachment.added": case "message.attachment_added":
      if (d.id) upsert(d, fresh);
      break;
    case "typing": if (fresh) showTyping(d); break;
    case "read":
      if (d.by === "team" && d.seq > (cur.team_read_seq || 0)) { cur.team_read_seq = d.seq; renderSeen(); }
      break;
    case "status.changed": case "conversation.status_changed":
      if (d.to) { cur.status = d.to; renderCsat(); }
      break;
    case "csat.submitted":
      if (!cur.csat && d.rating) { cur.csat = { rating: d.rating }; renderCsat(); }
      break;
    case "merged": case "conversation.merged":
      // This conversation went into another: follow it there.
      loadList().then(() => {
        const into = convs.find((c) => c.id === d.into);
        if (into) openConv(into); else showList();
      }, showList);
      break;
  }
}
