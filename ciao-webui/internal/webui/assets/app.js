// app.js: boot, sign-in and sign-out, and the #/ router. Pages keep their
// address in the URL fragment, so a sign-in forced by an expired token
// returns to the same page.
import { state, request, setSession, storedSession, showError, clearAlerts, el, SessionExpired } from "./core.js";
import * as views from "./views.js";
import * as admin from "./admin.js";
import * as workloads from "./workloads.js";

const main = document.getElementById("view");
const top = document.getElementById("top");
const signin = document.getElementById("signin");
const signinMsg = document.getElementById("signin-msg");
let cleanup = null;

const routes = [
  [/^\/instances$/, (p) => views.instances(main, p)],
  [/^\/instances\/([^/]+)$/, (p, id) => views.instance(main, id)],
  [/^\/workloads$/, () => workloads.workloads(main)],
  [/^\/quotas$/, () => views.quotas(main)],
  [/^\/events$/, () => views.events(main)],
  [/^\/admin\/nodes$/, () => admin.nodes(main)],
  [/^\/admin\/nodes\/([^/]+)$/, (p, id) => admin.node(main, id)],
  [/^\/admin\/tenants$/, () => admin.tenants(main)],
  [/^\/admin\/tenants\/([^/]+)$/, (p, id) => admin.tenantQuotas(main, id)],
  [/^\/admin\/cncis$/, () => admin.cncis(main)],
  [/^\/admin\/events$/, () => admin.clusterEvents(main)],
];

function stopView() {
  if (cleanup) { cleanup(); cleanup = null; }
}

function route() {
  if (!state.session) return;
  stopView();
  const h = location.hash.replace(/^#/, "") || "/instances";
  const [path, query] = h.split("?");
  const params = new URLSearchParams(query || "");
  for (const a of document.querySelectorAll("header nav a")) {
    const target = a.getAttribute("href").slice(1);
    if (path === target || path.startsWith(target + "/")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  for (const [re, view] of routes) {
    const m = path.match(re);
    if (m) {
      cleanup = view(params, ...m.slice(1).map(decodeURIComponent)) || null;
      document.title = "Ciao — " + (main.querySelector("h1") ? main.querySelector("h1").textContent : "");
      return;
    }
  }
  main.replaceChildren(el("h1", {}, "Page not found"), el("p", {}, "There is no page at " + h + ". ", el("a", { href: "#/instances" }, "Go to the instances.")));
}

function showApp() {
  signin.hidden = true;
  top.hidden = false;
  main.hidden = false;
  document.body.classList.toggle("admin", !!state.session.admin);
  document.getElementById("who").textContent = `${state.session.user} · ${state.session.project_name}${state.session.admin ? " (admin)" : ""}`;
  route();
}

// showSignIn hides the app and asks for credentials; the current page's
// address stays in the URL and is shown again after sign-in.
function showSignIn(message, info) {
  stopView();
  clearAlerts();
  setSession(null);
  top.hidden = true;
  main.hidden = true;
  main.replaceChildren();
  signin.hidden = false;
  signinMsg.className = "msg" + (info ? " info" : "");
  signinMsg.textContent = message || "";
  const pw = document.getElementById("si-password");
  pw.value = "";
  const user = document.getElementById("si-user");
  (user.value ? pw : user).focus();
}

state.onExpired = () => {
  const prev = storedSession() || state.session;
  const until = prev && prev.expires_at ? ` (it was valid until ${new Date(prev.expires_at).toLocaleTimeString()})` : "";
  showSignIn(`Your session has ended: the token expired or was revoked${until}. Sign in again to return to this page.`);
};

document.getElementById("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const body = { user: f.user.value.trim(), password: f.password.value, project: f.project.value.trim() };
  if (!body.user || !body.password) {
    signinMsg.className = "msg";
    signinMsg.textContent = "Enter a user name and a password.";
    return;
  }
  const btn = document.getElementById("si-submit");
  btn.disabled = true;
  signinMsg.className = "msg info";
  signinMsg.textContent = "Signing in…";
  try {
    setSession(await request("POST", "/session", body, "Sign-in"));
    f.password.value = "";
    signinMsg.textContent = "";
    clearAlerts();
    showApp();
    main.focus();
  } catch (e) {
    signinMsg.className = "msg";
    signinMsg.textContent = e.message;
    f.password.select();
  } finally {
    btn.disabled = false;
  }
});

document.getElementById("signout").addEventListener("click", async () => {
  try {
    await request("DELETE", "/session", undefined, "Sign-out");
  } catch (e) {
    showError(e);
    return;
  }
  clearAlerts();
  location.hash = "";
  showSignIn("You are signed out.", true);
});

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (ev) => {
  if (!(ev.reason instanceof SessionExpired)) showError(ev.reason);
});

async function boot() {
  let resp;
  try {
    resp = await fetch("/session", { credentials: "same-origin" });
  } catch (e) {
    showSignIn("The web UI server cannot be reached: " + e.message);
    return;
  }
  if (resp.ok) {
    setSession(await resp.json());
    showApp();
    return;
  }
  const had = storedSession();
  let msg = "";
  try { msg = (await resp.json()).error.message; } catch (e) { msg = "HTTP " + resp.status; }
  if (had) state.onExpired();
  else showSignIn(resp.status === 401 ? "" : "Checking your session failed: " + msg);
}

boot();
