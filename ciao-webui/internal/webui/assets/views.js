// views.js: the tenant's pages: instances (live list, launch, actions),
// one instance (facts, usage charts, events), quotas, events.
import { api, tenant, el, poller, POLL_MS, showError, statusWord, fmtTime, state, SessionExpired, errorWords } from "./core.js";
import { TimeChart, history, record } from "./charts.js";

const PAGE_SIZES = [50, 100, 500, 1000];

function liveLine() {
  // Not a live region while all is well (it changes every 2 s); a
  // failure is announced.
  return el("p", { class: "live", id: "live", "aria-live": "off" }, "Connecting…");
}

// setLive shows the time of the last update, or the failure (briefly when
// the page shows the reason itself).
function setLive(line, err, reasonShown) {
  line.setAttribute("aria-live", err ? "polite" : "off");
  if (err) {
    line.className = "live bad";
    line.textContent = reasonShown ? "Live update failed (the reason is below); retrying every 2 s."
      : "Live update failed: " + errorWords(err) + " — retrying every 2 s.";
  } else {
    line.className = "live";
    line.textContent = "Live: updated " + new Date().toLocaleTimeString() + " (every 2 s).";
  }
}

// actionButtons returns Stop/Restart/Delete for one instance.
function actionButtons(inst, after) {
  const act = async (what, fn) => {
    try {
      await fn();
    } catch (e) {
      showError(e);
    }
    after && after();
  };
  const id = inst.id;
  const base = tenant() + "/servers/" + encodeURIComponent(id);
  return [
    el("button", { type: "button", "data-act": "stop", "aria-label": "Stop instance " + id, disabled: inst.status !== "active",
      onclick: () => act("Stop", () => api("POST", base + "/action", { "os-stop": null }, "Stop instance " + id)) }, "Stop"),
    el("button", { type: "button", "data-act": "restart", "aria-label": "Restart instance " + id, disabled: inst.status !== "exited",
      onclick: () => act("Restart", () => api("POST", base + "/action", { "os-start": null }, "Restart instance " + id)) }, "Restart"),
    el("button", { type: "button", class: "danger", "data-act": "delete", "aria-label": "Delete instance " + id,
      onclick: (ev) => {
        ev.target.disabled = true;
        const row = ev.target.closest("tr");
        if (row) row.querySelector(".status").className = "status deleting";
        act("Delete", () => api("DELETE", base, undefined, "Delete instance " + id));
      } }, "Delete"),
  ];
}

function addr(inst) {
  const p = inst.addresses && inst.addresses.private && inst.addresses.private[0];
  return p ? p.addr : "";
}

// launchError words a failed launch; over quota, it adds the project's
// current usage and limits.
async function launchError(e, n) {
  let text = errorWords(e);
  if (e.status === 403 && /limit|quota/i.test(e.message)) {
    text = `Over quota: ${n} more instance${n > 1 ? "s" : ""} would exceed this project's limits. ` + text;
    try {
      const q = await api("GET", tenant() + "/quotas", undefined, "Loading quotas");
      const of = (used, lim, unit) => `${used}${unit} of ${lim < 0 ? "unlimited" : lim + unit}`;
      text += `. In use now: ${of(q.instances_usage, q.instances_limit, "")} instances, ${of(q.cpus_usage, q.cpus_limit, "")} vCPUs, ${of(q.ram_usage, q.ram_limit, " MB")} memory.`;
    } catch (qe) {
      text += ` (The quotas could not be read: ${errorWords(qe)})`;
    }
  }
  return text;
}

// instances is #/instances?page=N&per=M[&workload=ID] (the workload
// preselected in the launch form).
export function instances(main, params) {
  const per = PAGE_SIZES.includes(+params.get("per")) ? +params.get("per") : 100;
  const page = Math.max(0, parseInt(params.get("page") || "0", 10) || 0);
  const live = liveLine();
  const wlSelect = el("select", { id: "launch-workload", name: "workload", required: true }, el("option", { value: "" }, "Loading workloads…"));
  const count = el("input", { id: "launch-count", name: "count", type: "number", min: "1", max: "1000", value: "1", required: true, inputmode: "numeric" });
  const launchBtn = el("button", { type: "submit", class: "primary", id: "launch-submit" }, "Launch");
  const launchMsg = el("p", { class: "msg", id: "launch-msg", role: "status", tabindex: "-1" });
  const form = el("form", { class: "panel launch", id: "launch-form", "aria-label": "Launch instances" },
    el("div", {}, el("label", { for: "launch-workload" }, "Workload"), wlSelect),
    el("div", {}, el("label", { for: "launch-count" }, "Count"), count),
    launchBtn);
  const tbody = el("tbody", { id: "instance-rows" });
  const table = el("table", { id: "instances", "aria-describedby": "live" },
    el("caption", { class: "hide-narrow" }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Instance"), el("th", { scope: "col" }, "Status"),
      el("th", { scope: "col", class: "hide-narrow" }, "Node"), el("th", { scope: "col" }, "IP"),
      el("th", { scope: "col", class: "hide-narrow" }, "SSH"), el("th", { scope: "col" }, "Actions"))),
    tbody);
  const summary = el("span", { id: "page-summary" });
  const pageLink = (p, label, disabled) => el("button", { type: "button", disabled, onclick: () => { location.hash = `#/instances?page=${p}&per=${per}`; } }, label);
  const pager = el("nav", { class: "pager", "aria-label": "Pages of instances" });
  const perSel = el("select", { id: "per-page", onchange: (e) => { location.hash = `#/instances?page=0&per=${e.target.value}`; } },
    PAGE_SIZES.map((n) => el("option", { value: n, selected: n === per }, String(n))));
  main.replaceChildren(el("h1", {}, "Instances"), form, launchMsg, live, table, pager);

  // Workloads for the launch form.
  api("GET", tenant() + "/flavors/detail", undefined, "Loading workloads").then((r) => {
    const fl = (r.flavors || []).sort((a, b) => a.name.localeCompare(b.name));
    wlSelect.replaceChildren(el("option", { value: "" }, fl.length ? "Choose a workload" : "No workloads"),
      ...fl.map((f) => el("option", { value: f.id, selected: f.id === params.get("workload") }, `${f.name} (${f.vcpus} vCPU, ${f.ram} MB)`)));
  }).catch((e) => { wlSelect.replaceChildren(el("option", { value: "" }, "Workloads unavailable")); showError(e); });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    launchMsg.className = "msg";
    launchMsg.textContent = "";
    const n = Number(count.value);
    if (!wlSelect.value) { launchMsg.textContent = "Choose a workload to launch."; wlSelect.focus(); return; }
    if (!Number.isInteger(n) || n < 1 || n > 1000) { launchMsg.textContent = "Count must be a whole number from 1 to 1000."; count.focus(); return; }
    launchBtn.disabled = true;
    try {
      const r = await api("POST", tenant() + "/servers",
        { server: { name: "", imageRef: "", flavorRef: wlSelect.value, max_count: n, min_count: n } }, `Launch of ${n} instance${n > 1 ? "s" : ""}`);
      launchMsg.className = "msg info";
      launchMsg.textContent = `Launched ${r.total_servers || n} instance${n > 1 ? "s" : ""}.`;
      p.now();
    } catch (e) {
      launchMsg.textContent = await launchError(e, n);
      launchMsg.focus();
    } finally {
      launchBtn.disabled = false;
    }
  });

  const rows = new Map(); // id -> {tr, status}
  let firstRender = true;
  const refresh = async () => {
    const t0 = performance.now();
    const r = await api("GET", `${tenant()}/servers/detail?limit=${per}&offset=${page * per}`, undefined, "Loading instances");
    const list = r.servers || [];
    const seen = new Set();
    let prev = null;
    for (const inst of list) {
      seen.add(inst.id);
      let row = rows.get(inst.id);
      if (!row || row.status !== inst.status || row.host !== inst.hostId || row.ip !== addr(inst)) {
        const tr = el("tr", { "data-id": inst.id, "data-status": inst.status },
          el("td", { class: "id" }, el("a", { href: "#/instances/" + encodeURIComponent(inst.id) }, inst.id)),
          el("td", {}, el("span", { class: "status " + inst.status }, statusWord(inst.status))),
          el("td", { class: "id hide-narrow" }, inst.hostId || "—"),
          el("td", {}, addr(inst) || "—"),
          el("td", { class: "hide-narrow" }, inst.ssh_ip ? `${inst.ssh_ip}:${inst.ssh_port}` : "—"),
          el("td", { class: "actions" }, actionButtons(inst, () => p.now())));
        if (row) row.tr.replaceWith(tr);
        row = { tr, status: inst.status, host: inst.hostId, ip: addr(inst) };
        rows.set(inst.id, row);
      }
      // Keep the API's order.
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== row.tr) tbody.insertBefore(row.tr, want);
      prev = row.tr;
    }
    for (const [id, row] of rows) if (!seen.has(id)) { row.tr.remove(); rows.delete(id); }
    const total = r.total_servers || 0;
    if (list.length === 0) {
      tbody.replaceChildren(el("tr", { class: "empty-row" }, el("td", { colspan: 6, class: "empty" }, total ? "No instances on this page." : "No instances yet: launch one above.")));
    } else {
      tbody.querySelectorAll(".empty-row").forEach((e) => e.remove());
    }
    summary.textContent = total ? `Instances ${page * per + 1}–${page * per + list.length} of ${total}` : "";
    const last = Math.max(0, Math.ceil(total / per) - 1);
    pager.replaceChildren(pageLink(page - 1, "Previous page", page === 0), summary, pageLink(page + 1, "Next page", page >= last),
      el("label", { for: "per-page" }, "Per page"), perSel);
    setLive(live);
    // Figures for webui's benchmark: first render since navigation start,
    // and the cost of each live-update round (fetch, diff, DOM).
    const perf = (window.ciaoPerf = window.ciaoPerf || { refreshMs: [] });
    if (firstRender) {
      firstRender = false;
      perf.firstRenderMs = performance.now();
      perf.rows = list.length;
      table.dataset.rendered = String(list.length);
    } else {
      perf.refreshMs.push(performance.now() - t0);
    }
  };
  const p = poller(refresh, POLL_MS, (e) => { setLive(live, e); });
  return () => p.stop();
}

// instance is #/instances/{id}: facts, actions, CPU and memory charts,
// and the instance's events.
export function instance(main, id) {
  const live = liveLine();
  const facts = el("dl", { class: "facts", id: "instance-facts" });
  const actions = el("div", { class: "actions", id: "instance-actions" });
  const charts = el("div", { class: "charts" });
  const chartMsg = el("p", { class: "msg", id: "chart-msg", role: "status" });
  const events = el("tbody", { id: "instance-events" });
  main.replaceChildren(el("p", {}, el("a", { href: "#/instances" }, "← All instances")),
    el("h1", {}, "Instance ", el("span", { class: "id" }, id)), live, facts, actions,
    el("h2", {}, "Usage"), chartMsg, charts,
    el("h2", {}, "Events"), el("table", {}, el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Time"),
      el("th", { scope: "col" }, "Type"), el("th", { scope: "col" }, "Message"))), events));
  const cpu = new TimeChart(charts, { id: "chart-cpu", title: "CPU usage", series: [{ label: "CPU", unit: "%" }] });
  const mem = new TimeChart(charts, { id: "chart-mem", title: "Memory usage", series: [{ label: "Memory", unit: " MB" }] });
  const h = history("instance:" + id, 2);
  cpu.show({ t: h.t, v: [h.v[0]] });
  mem.show({ t: h.t, v: [h.v[1]] });
  const path = tenant() + "/servers/" + encodeURIComponent(id);
  let gone = false;
  const refresh = async () => {
    if (gone) return;
    let inst;
    try {
      inst = (await api("GET", path, undefined, "Loading the instance")).server;
    } catch (e) {
      if (e.status === 404) {
        gone = true;
        live.className = "live bad";
        live.textContent = "This instance no longer exists (deleted).";
        actions.replaceChildren();
        return;
      }
      throw e;
    }
    facts.replaceChildren(...[["Status", statusWord(inst.status)], ["Node", inst.hostId || "not placed yet"], ["IP address", addr(inst) || "—"],
      ["SSH", inst.ssh_ip ? `${inst.ssh_ip} port ${inst.ssh_port}` : "—"], ["Workload", inst.flavor && inst.flavor.id], ["Tenant", inst.tenant_id]]
      .flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-fact": k }, v || "—")]));
    facts.dataset.status = inst.status;
    actions.replaceChildren(...actionButtons(inst, () => p.now()));
    setLive(live);
    // Usage: only the node API carries per-instance figures.
    if (!inst.hostId) {
      chartMsg.className = "msg info";
      chartMsg.textContent = "The instance is not placed on a node yet: no usage figures.";
    } else {
      try {
        const r = await api("GET", "/nodes/" + encodeURIComponent(inst.hostId) + "/servers/detail", undefined, "Loading usage figures");
        const s = (r.servers || []).find((x) => x.id === id);
        if (s) {
          record(h, [s.cpus_usage, s.ram_usage]);
          cpu.show({ t: h.t, v: [h.v[0]] });
          mem.show({ t: h.t, v: [h.v[1]] });
          chartMsg.textContent = "";
        } else {
          chartMsg.className = "msg info";
          chartMsg.textContent = "The node has not reported figures for this instance yet.";
        }
      } catch (e) {
        chartMsg.className = "msg";
        chartMsg.textContent = "Usage figures are unavailable: " + errorWords(e) +
          (e.status === 401 ? " The controller serves per-instance figures only on its admin node API." : "");
      }
    }
    const ev = await api("GET", tenant() + "/events", undefined, "Loading events");
    const mine = (ev.events || []).filter((e) => e.message.includes(id)).reverse(); // newest first
    events.replaceChildren(...(mine.length ? mine.map((e) => el("tr", {}, el("td", {}, fmtTime(e.time_stamp)), el("td", {}, e.type), el("td", {}, e.message)))
      : [el("tr", {}, el("td", { colspan: 3, class: "empty" }, "No events for this instance."))]));
  };
  const p = poller(refresh, POLL_MS, (e) => setLive(live, e));
  return () => { p.stop(); cpu.destroy(); mem.destroy(); };
}

// quotas is #/quotas: limits and usage of the project, and its usage
// over the last hour from the controller's history (one point a minute).
export function quotas(main) {
  const live = liveLine();
  const box = el("div", { class: "quota", id: "quotas" });
  const charts = el("div", { class: "charts" });
  const histMsg = el("p", { class: "msg", id: "usage-msg", role: "status" });
  main.replaceChildren(el("h1", {}, "Quotas and usage"), live, box, el("h2", {}, "Usage over the last hour"), histMsg, charts);
  const cpu = new TimeChart(charts, { id: "chart-project-cpu", title: "CPU usage of the project's instances", series: [{ label: "CPU", unit: "%" }], windowSec: 3600 });
  const mem = new TimeChart(charts, { id: "chart-project-mem", title: "Memory of the project's instances", series: [{ label: "Memory", unit: " MB" }], windowSec: 3600 });
  const usage = async () => {
    const end = new Date(Date.now() + 60000), start = new Date(Date.now() - 3600000);
    try {
      const r = await api("GET", `${tenant()}/resources?start_date=${encodeURIComponent(start.toISOString())}&end_date=${encodeURIComponent(end.toISOString())}`,
        undefined, "Loading the usage history");
      const u = r.usage || [];
      const t = u.map((x) => Date.parse(x.timestamp) / 1000);
      cpu.show({ t, v: [u.map((x) => x.cpus_usage)] });
      mem.show({ t, v: [u.map((x) => x.ram_usage)] });
      histMsg.className = "msg info";
      histMsg.textContent = u.length ? "" : "No usage reported in the last hour.";
    } catch (e) {
      if (e instanceof SessionExpired) throw e;
      histMsg.className = "msg";
      histMsg.textContent = errorWords(e);
    }
  };
  const p = poller(async () => {
    await usage();
    const q = await api("GET", tenant() + "/quotas", undefined, "Loading quotas");
    const item = (label, used, limit, unit) => el("div", { "data-quota": label },
      el("div", {}, label),
      el("div", { class: "n" }, `${used}${unit} ${limit < 0 ? "(no limit)" : "of " + limit + unit}`),
      limit > 0 ? el("meter", { min: 0, max: limit, value: used, "aria-label": `${label}: ${used} of ${limit}` }) : null);
    box.replaceChildren(item("Instances", q.instances_usage, q.instances_limit, ""), item("vCPUs", q.cpus_usage, q.cpus_limit, ""),
      item("Memory", q.ram_usage, q.ram_limit, " MB"), item("Disk", q.disk_usage, q.disk_limit, " MB"));
    setLive(live);
  }, POLL_MS * 5, (e) => setLive(live, e));
  return () => { p.stop(); cpu.destroy(); mem.destroy(); };
}

// eventsTable renders events rows.
export function eventRows(list, withTenant) {
  if (!list.length) return [el("tr", {}, el("td", { colspan: withTenant ? 4 : 3, class: "empty" }, "No events."))];
  return list.slice().reverse().map((e) => el("tr", {}, el("td", {}, fmtTime(e.time_stamp)), withTenant ? el("td", { class: "id" }, e.tenant_id) : null,
    el("td", {}, e.type), el("td", {}, e.message)));
}

// events is #/events: the project's events, newest first.
export function events(main) {
  const live = liveLine();
  const tbody = el("tbody", { id: "event-rows" });
  main.replaceChildren(el("h1", {}, "Events of " + state.session.project_name), live,
    el("table", {}, el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Time"), el("th", { scope: "col" }, "Type"), el("th", { scope: "col" }, "Message"))), tbody));
  const p = poller(async () => {
    const r = await api("GET", tenant() + "/events", undefined, "Loading events");
    tbody.replaceChildren(...eventRows(r.events || [], false));
    setLive(live);
  }, POLL_MS, (e) => setLive(live, e));
  return () => p.stop();
}

export { liveLine, setLive };
