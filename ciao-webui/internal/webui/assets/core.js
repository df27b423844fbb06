// core.js: the API client, the session, alerts and small DOM helpers
// shared by every view. The token never reaches this code: it lives in an
// HttpOnly cookie that the webui daemon turns into X-Auth-Token.

export const state = {
  session: null, // {user, project_id, project_name, roles, admin, expires_at}
  onExpired: null, // set by app.js: shows the sign-in form
};

// ApiError carries the HTTP status and the words to show.
export class ApiError extends Error {
  constructor(status, message, what) {
    super(message);
    this.status = status;
    this.what = what;
  }
  // words: "<what> failed: HTTP 403 Forbidden: Over Tenant Limits".
  words() {
    const st = this.status ? `HTTP ${this.status} ${STATUS[this.status] || ""}`.trim() : "no answer";
    return `${this.what ? this.what + " failed" : "Request failed"} (${st}): ${this.message}`;
  }
}

// SessionExpired is thrown after the sign-in form was shown; views stop.
export class SessionExpired extends Error {}

const STATUS = { 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
  413: "Payload Too Large", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout" };

async function errorOf(resp, what) {
  let text = "";
  try { text = await resp.text(); } catch (e) { /* body lost: status only */ }
  let msg = text.trim();
  try {
    const j = JSON.parse(text);
    if (j && j.error && j.error.message) msg = j.error.message;
  } catch (e) { /* plain text body */ }
  return new ApiError(resp.status, msg || STATUS[resp.status] || "error", what);
}

// request sends one call to the webui daemon. what names the action for
// error messages ("Launch", "Loading instances").
export async function request(method, url, body, what) {
  const opts = { method, headers: { "X-Ciao-Webui": "1" }, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, opts);
  } catch (e) {
    throw new ApiError(0, `the web UI server cannot be reached (${e.message})`, what);
  }
  if (resp.ok) {
    const t = await resp.text();
    return t ? JSON.parse(t) : null;
  }
  const err = await errorOf(resp, what);
  if (resp.status === 401 && url.startsWith("/api/")) {
    // The controller says 401 both for a dead token and for a route the
    // user may not use: ask the daemon which one it is.
    if (!(await sessionAlive())) {
      state.onExpired && state.onExpired();
      throw new SessionExpired("session expired");
    }
    err.message = "not allowed: this needs an administrator's token (" + err.message + ")";
  }
  throw err;
}

// api calls the controller's compute API through the daemon.
export function api(method, path, body, what) {
  return request(method, "/api/v2.1" + path, body, what);
}

// tenant is the signed-in project's path prefix.
export function tenant() {
  return "/" + encodeURIComponent(state.session.project_id);
}

export async function sessionAlive() {
  try {
    const s = await fetch("/session", { credentials: "same-origin" });
    if (s.ok) {
      setSession(await s.json());
      return true;
    }
    return false;
  } catch (e) {
    return true; // the daemon is unreachable: that error is shown, not a sign-in
  }
}

export function setSession(s) {
  state.session = s;
  if (s) sessionStorage.setItem("ciao.session", JSON.stringify(s));
  else sessionStorage.removeItem("ciao.session");
}

export function storedSession() {
  try { return JSON.parse(sessionStorage.getItem("ciao.session")); } catch (e) { return null; }
}

// errorWords is the text shown for an error: an ApiError's words, else
// its message.
export function errorWords(err) {
  return err instanceof ApiError ? err.words() : String(err && err.message ? err.message : err);
}

// showError puts a dismissable alert at the top of the page. Same-text
// alerts are not repeated.
export function showError(err, kind) {
  if (err instanceof SessionExpired) return;
  const text = errorWords(err);
  const box = document.getElementById("alerts");
  for (const a of box.children) if (a.dataset.text === text) return;
  const div = el("div", { class: "alert" + (kind ? " " + kind : ""), "data-text": text },
    el("p", {}, text),
    el("button", { type: "button", "aria-label": "Dismiss message", onclick: () => div.remove() }, "Dismiss"));
  box.append(div);
}

export function clearAlerts() {
  document.getElementById("alerts").replaceChildren();
}

// el builds an element: el("a", {href: "#"}, "text", child...).
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// poller calls fn now and then every ms until stop() (or until fn throws
// SessionExpired). Errors go to onError; the next round still runs.
export function poller(fn, ms, onError) {
  let timer = null, stopped = false;
  const round = async () => {
    if (stopped) return;
    try {
      await fn();
    } catch (e) {
      if (e instanceof SessionExpired) { stopped = true; return; }
      onError(e);
    }
    if (!stopped) timer = setTimeout(round, ms);
  };
  round();
  return { stop() { stopped = true; clearTimeout(timer); }, now() { clearTimeout(timer); round(); } };
}

export const POLL_MS = 2000;

export function statusWord(s) {
  return { active: "running", exited: "stopped", pending: "pending" }[s] || s;
}

export function fmtTime(t) {
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}
