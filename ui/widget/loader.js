/* Pommy widget loader, served as /widget.js. It runs in the host page, so it
   has no dependency, touches no global but window.Pommy, and styles its two
   elements only through CSSOM (el.style), which works under a strict CSP that
   forbids inline style attributes and <style> elements. The chat itself runs
   in an iframe of the platform's origin; the two talk by postMessage with the
   origin checked on both sides. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || (window.Pommy && window.Pommy.version)) return;
  var tenant = script.getAttribute("data-tenant");
  var base = new URL(script.src, location.href).origin;
  var warn = function (m) { console.warn("Pommy widget: " + m); };
  if (!tenant) return warn("data-tenant is missing");

  // The locale: the tag's data-locale, else the page's <html lang> when it is
  // one we speak, else the tenant's (known once the token answers).
  var pick = function (l) { l = (l || "").toLowerCase().slice(0, 2); return l === "tr" || l === "en" ? l : ""; };
  var locale = pick(script.getAttribute("data-locale")) || pick(document.documentElement.lang);
  var T = {
    en: { title: "Chat window", open: "Open chat", close: "Close chat", unread: " unread" },
    tr: { title: "Sohbet penceresi", open: "Sohbeti aç", close: "Sohbeti kapat", unread: " okunmamış" }
  };

  var token = null, launcher = null, button = null, badge = null, frame = null;
  var frameReady = false, isOpen = false, unread = 0, refreshTimer = 0;
  var pending = [];   // messages for the iframe until it is ready
  var handlers = {};  // host-page listeners by event name

  function emit(name, data) {
    (handlers[name] || []).forEach(function (fn) { try { fn(data); } catch (e) { console.error(e); } });
  }
  function post(msg) {
    if (frame && frameReady) frame.contentWindow.postMessage(msg, base);
    else pending.push(msg);
  }

  // Relative luminance (WCAG 2) and the text colour that reads on bg.
  function lum(hex) {
    var n = parseInt(hex.slice(1), 16);
    return [n >> 16, (n >> 8) & 255, n & 255].reduce(function (a, c, i) {
      c /= 255; c = c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
      return a + c * [0.2126, 0.7152, 0.0722][i];
    }, 0);
  }
  function onColor(hex) {
    var l = lum(hex);
    return 1.05 / (l + 0.05) >= (l + 0.05) / 0.0552 ? "#ffffff" : "#111111";
  }

  function fetchToken() {
    return fetch(base + "/v1/widget/token?tenant=" + encodeURIComponent(tenant), { credentials: "omit", cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { var e = new Error("status " + r.status); e.status = r.status; throw e; }
        return r.json();
      })
      .then(function (t) {
        token = t;
        // Refresh a minute before it expires, so the chat rarely sees a stale one.
        clearTimeout(refreshTimer);
        // The page's clock may be off: a lifetime that makes no sense (the
        // contract's is 15 min) counts as 14 min from now.
        var life = Date.parse(t.expires_at) - Date.now();
        t.until = Date.now() + (life > 120000 && life < 3600000 ? life : 840000);
        var ms = t.until - Date.now() - 60000;
        // Only a chat that was opened needs a fresh token in the background:
        // idle pages ask again when (if ever) the visitor opens it.
        refreshTimer = setTimeout(function () { if (frame) refresh(); }, Math.max(ms, 10000));
        return t;
      });
  }
  function refresh() {
    return fetchToken().then(function (t) {
      if (frame) post({ type: "pommy:token", token: t.token });
    }, function (e) {
      // A refused origin now (settings changed) ends the widget for this page.
      if (e.status === 403 || e.status === 404) return remove();
      refreshTimer = setTimeout(refresh, 30000);
    });
  }
  function remove() {
    clearTimeout(refreshTimer);
    if (launcher) launcher.remove();
    if (frame) frame.remove();
    launcher = frame = null;
  }

  function px(n) { return n + "px"; }
  function assign(el, css) { for (var k in css) el.style.setProperty(k, css[k]); return el; }

  function buildLauncher(cfg) {
    var color = /^#[0-9a-f]{6}$/i.test(cfg.color || "") ? cfg.color : "#2f5bea";
    var side = cfg.position === "left" ? "left" : "right";
    var fg = onColor(color);
    locale = locale || pick(cfg.locale) || "en";
    var t = T[locale];
    launcher = document.createElement("div");
    launcher.setAttribute("data-pommy", "widget");
    assign(launcher, { position: "fixed", bottom: "0", [side]: "0", width: "0", height: "0", "z-index": "2147483000" });
    button = document.createElement("button");
    button.type = "button";
    button.id = "pommy-launcher";
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-haspopup", "dialog");
    assign(button, {
      position: "fixed", bottom: "20px", [side]: "20px", width: "60px", height: "60px", margin: "0", padding: "0",
      border: "2px solid " + fg, "border-radius": "50%", background: color, color: fg, cursor: "pointer",
      "box-shadow": "0 4px 14px rgba(0,0,0,.25)", display: "flex", "align-items": "center", "justify-content": "center",
      outline: "none", "z-index": "2147483001"
    });
    var NS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24"); svg.setAttribute("width", "28"); svg.setAttribute("height", "28");
    svg.setAttribute("aria-hidden", "true"); svg.setAttribute("focusable", "false");
    var path = document.createElementNS(NS, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z");
    svg.appendChild(path);
    button.appendChild(svg);
    badge = document.createElement("span");
    badge.setAttribute("data-pommy", "unread");
    badge.setAttribute("aria-hidden", "true");
    assign(badge, {
      position: "absolute", top: "-4px", [side === "right" ? "left" : "right"]: "-4px", "min-width": "20px", height: "20px",
      padding: "0 5px", "box-sizing": "border-box", "border-radius": "10px", background: "#c8102e", color: "#ffffff",
      font: "bold 12px/20px system-ui,sans-serif", "text-align": "center", display: "none"
    });
    button.appendChild(badge);
    // A visible focus ring for keyboard users; the page's CSS may not give one.
    button.addEventListener("focus", function () {
      var kb = true; try { kb = button.matches(":focus-visible"); } catch (e) {}
      if (kb) assign(button, { outline: "3px solid " + (lum(color) > 0.4 ? "#111111" : color), "outline-offset": "3px" });
    });
    button.addEventListener("blur", function () { button.style.setProperty("outline", "none"); });
    button.addEventListener("click", function () { isOpen ? close() : open(); });
    launcher.appendChild(button);
    launcher.side = side;
    label();
    document.body.appendChild(launcher);
  }
  function label() {
    if (!button) return;
    var t = T[locale], l = isOpen ? t.close : (token.launcher && token.launcher.label) || t.open;
    button.setAttribute("aria-label", l + (unread ? " (" + unread + t.unread + ")" : ""));
    button.title = l;
    badge.textContent = unread > 99 ? "99+" : String(unread);
    badge.style.setProperty("display", unread && !isOpen ? "block" : "none");
  }

  // Full screen on phones and on short viewports (200% zoom), a panel above
  // the launcher otherwise.
  var small = window.matchMedia("(max-width: 480px), (max-height: 560px)");
  function place() {
    if (!frame) return;
    var s = launcher.side;
    if (small.matches) {
      assign(frame, { top: "0", bottom: "0", left: "0", right: "0", width: "100%", height: "100%", "max-height": "none", "border-radius": "0" });
    } else {
      assign(frame, { top: "auto", bottom: "92px", left: s === "left" ? "20px" : "auto", right: s === "right" ? "20px" : "auto",
        width: "380px", height: "calc(100vh - 112px)", "max-height": "600px", "border-radius": "12px" });
    }
    // On a full-screen chat the launcher would cover the composer.
    button.style.setProperty("display", small.matches && isOpen ? "none" : "flex");
  }
  if (small.addEventListener) small.addEventListener("change", place);

  function buildFrame() {
    frame = document.createElement("iframe");
    frame.id = "pommy-frame";
    frame.title = T[locale].title;
    frame.setAttribute("allow", "");
    frame.setAttribute("referrerpolicy", "origin");
    assign(frame, { position: "fixed", border: "0", margin: "0", padding: "0", background: "#ffffff",
      "box-shadow": "0 8px 30px rgba(0,0,0,.3)", "z-index": "2147483002", display: "none", "color-scheme": "light" });
    frame.addEventListener("load", function () {
      // The frame's app listens before its load event; init it now. After a
      // reload of the frame (it navigated, or crashed) it is initialised again.
      frameReady = false;
      frame.contentWindow.postMessage({ type: "pommy:init", token: token.token, origin: location.origin, locale: locale }, base);
    });
    button.setAttribute("aria-controls", frame.id);
    // src before insertion: an iframe inserted without one loads about:blank
    // (of the page's origin) first and fires a load event for it.
    frame.src = token.frame_url + (token.frame_url.indexOf("?") < 0 ? "?" : "&") + "locale=" + locale;
    launcher.appendChild(frame);
  }

  window.addEventListener("message", function (e) {
    if (!frame || e.origin !== base || e.source !== frame.contentWindow) return;
    var m = e.data;
    if (!m || typeof m.type !== "string") return;
    switch (m.type) {
      case "pommy:ready":
        frameReady = true;
        var q = pending; pending = [];
        q.forEach(post);
        if (isOpen) post({ type: "pommy:open" });
        emit("ready");
        break;
      case "pommy:token-expired": refresh(); break;
      case "pommy:close": close(); break;
      case "pommy:unread":
        unread = Math.max(0, m.count | 0); label();
        break;
      case "pommy:event":
        if (m.name === "message") emit("message", { conversation_id: String(m.conversation_id || ""), author_type: String(m.author_type || "") });
        break;
    }
  });

  function open() {
    if (!launcher) return;
    if (!frame && token.until - Date.now() < 60000) {
      token.until = Infinity; // one fetch, whatever it answers
      return fetchToken().then(open, function () { warn("the platform could not be reached"); });
    }
    if (!frame) buildFrame();
    if (isOpen) return;
    isOpen = true;
    frame.style.setProperty("display", "block");
    place();
    button.setAttribute("aria-expanded", "true");
    label();
    if (frameReady) post({ type: "pommy:open" });
    // Move focus into the chat (the frame's app then focuses its composer).
    try { frame.focus(); } catch (e) {}
    emit("opened");
  }
  function close() {
    if (!isOpen) return;
    isOpen = false;
    frame.style.setProperty("display", "none");
    button.setAttribute("aria-expanded", "false");
    place(); label();
    post({ type: "pommy:close" });
    button.focus();
    emit("closed");
  }

  var api = {
    version: 1,
    open: function () { open(); },
    close: function () { close(); },
    identify: function (jwt) { if (typeof jwt === "string" && jwt) post({ type: "pommy:identify", jwt: jwt }); },
    logout: function () { post({ type: "pommy:logout" }); },
    setAttributes: function (a) { if (a && typeof a === "object") post({ type: "pommy:attributes", attributes: JSON.parse(JSON.stringify(a)) }); },
    on: function (name, fn) { if (typeof fn === "function") (handlers[name] = handlers[name] || []).push(fn); }
  };
  // Calls made before the loader ran: window.PommyQ (or window.Pommy used as
  // an array) holds ["method", ...args] entries.
  var queued = [].concat(Array.isArray(window.Pommy) ? window.Pommy : [], Array.isArray(window.PommyQ) ? window.PommyQ : []);
  window.Pommy = api;
  window.PommyQ = { push: function (c) { run(c); } };
  function run(c) { if (Array.isArray(c) && typeof api[c[0]] === "function" && c[0] !== "version") api[c[0]].apply(null, c.slice(1)); }

  function start() {
    fetchToken().then(function (t) {
      buildLauncher(t.launcher || {});
      queued.forEach(run);
    }, function (e) {
      // A refused origin gets no CORS header, so the page sees only a failed fetch.
      warn(e.status === 404 ? "unknown tenant" : "no widget: this site's origin is not allowed for the tenant, or the platform could not be reached");
    });
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
