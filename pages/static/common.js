// Shared by the pages: calls to /api/v1 with the sign-in cookie and the page's CSRF token,
// and the event socket URL (the cookie authenticates it; no token in the URL).
"use strict";
const CC = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  // extraHeaders: e.g. {"Idempotency-Key": ...}. A refusal's error carries status, the
  // error body and retryAfter (seconds, from a 503's or 429's Retry-After header).
  async function api(method, path, body, extraHeaders) {
    const headers = {"X-CSRF-Token": csrf, ...(extraHeaders || {})};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch("/api/v1" + path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (response.status === 401) toLogin();
    if (!response.ok) {
      const error = new Error((data && data.message) || response.statusText);
      error.status = response.status;
      error.data = data;  // the API's error body: error_id, message, details (problems, field)
      const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10);
      if (Number.isFinite(retryAfter)) error.retryAfter = retryAfter;
      throw error;
    }
    return data;
  }

  function socketUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1" + path;
  }

  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    const mm = (h ? String(m).padStart(2, "0") : String(m));
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  // An ISO timestamp (UTC from the API) as the center's wall clock, "2026-12-07 03:37".
  function localTime(iso, timeZone) {
    if (!iso) return "";
    const moment = new Date(iso);
    if (Number.isNaN(moment.getTime())) return String(iso);
    const parts = {};
    const options = {timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23"};
    for (const part of new Intl.DateTimeFormat("en-US", options).formatToParts(moment)) parts[part.type] = part.value;
    return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute;
  }

  // Opens a socket and keeps it open: reconnects after a drop, sends a ping every 20 s, and
  // goes to the sign-in page when the session is gone. A refused handshake reaches the browser
  // without the server's close code, so a socket that never opened asks /api/v1/me why.
  function toLogin() {
    window.location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
  }
  function keepSocket(path, onMessage, onStatus) {
    let socket = null, timer = null;
    function open() {
      let opened = false;
      socket = new WebSocket(socketUrl(path));
      socket.onopen = () => { opened = true; onStatus(true); timer = setInterval(() => socket.send("ping"), 20000); };
      socket.onmessage = (event) => onMessage(JSON.parse(event.data));
      socket.onclose = async (event) => {
        clearInterval(timer);
        onStatus(false);
        if (event.code === 4401) { toLogin(); return; }
        if (!opened) {
          const me = await fetch("/api/v1/me", {credentials: "same-origin"});
          if (me.status === 401) { toLogin(); return; }
        }
        setTimeout(open, 2000);
      };
    }
    open();
    return () => socket;
  }

  return {api, el, duration, localTime, keepSocket, csrf};
})();
