// admin.js: the administrator's pages: nodes (with utilisation charts),
// tenants, CNCIs and the cluster's events. Every call needs an admin
// token; the controller's refusal is shown in words.
import { api, el, poller, POLL_MS, showError, statusWord, errorWords } from "./core.js";
import { TimeChart, history, record } from "./charts.js";
import { liveLine, setLive, eventRows } from "./views.js";

function pct(used, total) {
  return total > 0 ? Math.round((1000 * used) / total) / 10 : 0;
}

// sampleNodes records every node's utilisation for the node charts.
function sampleNodes(nodes) {
  for (const n of nodes) {
    record(history("node:" + n.id, 3), [pct(n.ram_total - n.ram_available, n.ram_total), pct(n.disk_total - n.disk_available, n.disk_total), n.load]);
  }
}

function errorBox(id) {
  return el("p", { class: "msg", id, role: "status" });
}

function showIn(box, e) {
  box.className = "msg";
  box.textContent = errorWords(e);
}

// nodes is #/admin/nodes.
export function nodes(main) {
  const live = liveLine();
  const msg = errorBox("nodes-msg");
  const summary = el("p", { id: "nodes-summary" });
  const tbody = el("tbody", { id: "node-rows" });
  const charts = el("div", { class: "charts" });
  main.replaceChildren(el("h1", {}, "Nodes"), live, msg, summary, charts,
    el("table", { id: "nodes" }, el("thead", {}, el("tr", {}, ...["Node", "Status", "Load", "CPUs", "Memory used", "Disk used", "Instances"]
      .map((h, i) => el("th", { scope: "col", class: i === 3 || i === 5 ? "hide-narrow" : undefined }, h)))), tbody));
  // The whole cluster: memory used over all nodes, and instances running.
  const ch = history("cluster", 2);
  const mem = new TimeChart(charts, { id: "chart-cluster-mem", title: "Memory used, all nodes", series: [{ label: "Memory", unit: "%" }], yRange: [0, 100] });
  const run = new TimeChart(charts, { id: "chart-cluster-running", title: "Instances running", series: [{ label: "Running" }] });
  const draw = () => { mem.show({ t: ch.t, v: [ch.v[0]] }); run.show({ t: ch.t, v: [ch.v[1]] }); };
  draw();
  const p = poller(async () => {
    let r;
    try {
      r = await api("GET", "/nodes", undefined, "Loading nodes");
    } catch (e) {
      showIn(msg, e);
      throw e;
    }
    msg.textContent = "";
    const list = r.nodes || [];
    sampleNodes(list);
    const sum = (f) => list.reduce((a, n) => a + f(n), 0);
    record(ch, [pct(sum((n) => n.ram_total - n.ram_available), sum((n) => n.ram_total)), sum((n) => n.total_running_instances)]);
    draw();
    tbody.replaceChildren(...(list.length ? list.map((n) => el("tr", { "data-id": n.id },
      el("td", { class: "id" }, el("a", { href: "#/admin/nodes/" + encodeURIComponent(n.id) }, n.id)),
      el("td", {}, n.status), el("td", {}, String(n.load)), el("td", { class: "hide-narrow" }, String(n.online_cpus)),
      el("td", {}, `${pct(n.ram_total - n.ram_available, n.ram_total)}% of ${n.ram_total} MB`),
      el("td", { class: "hide-narrow" }, `${pct(n.disk_total - n.disk_available, n.disk_total)}% of ${n.disk_total} MB`),
      el("td", {}, `${n.total_instances} (${n.total_running_instances} running)`)))
      : [el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No node has reported yet."))]));
    summary.textContent = `${list.length} node${list.length === 1 ? "" : "s"}: ` +
      ["READY", "FULL", "OFFLINE", "MAINTENANCE"].map((s) => `${list.filter((n) => n.status === s).length} ${s.toLowerCase()}`).join(", ") + ".";
    setLive(live);
  }, POLL_MS, (e) => setLive(live, e, true));
  return () => { p.stop(); mem.destroy(); run.destroy(); };
}

// node is #/admin/nodes/{id}: utilisation charts and the node's instances.
export function node(main, id) {
  const live = liveLine();
  const msg = errorBox("node-msg");
  const facts = el("dl", { class: "facts", id: "node-facts" });
  const charts = el("div", { class: "charts", id: "node-charts" });
  const tbody = el("tbody", { id: "node-instances" });
  main.replaceChildren(el("p", {}, el("a", { href: "#/admin/nodes" }, "← All nodes")),
    el("h1", {}, "Node ", el("span", { class: "id" }, id)), live, msg, facts, el("h2", {}, "Utilisation"), charts,
    el("h2", {}, "Instances on this node"),
    el("table", {}, el("thead", {}, el("tr", {}, ...["Instance", "Tenant", "Status", "CPU", "Memory", "Disk"].map((h) => el("th", { scope: "col" }, h)))), tbody));
  const h = history("node:" + id, 3);
  const mem = new TimeChart(charts, { id: "chart-node-mem", title: "Memory used", series: [{ label: "Memory", unit: "%" }], yRange: [0, 100] });
  const disk = new TimeChart(charts, { id: "chart-node-disk", title: "Disk used", series: [{ label: "Disk", unit: "%" }], yRange: [0, 100] });
  const load = new TimeChart(charts, { id: "chart-node-load", title: "Load", series: [{ label: "Load" }] });
  const draw = () => {
    mem.show({ t: h.t, v: [h.v[0]] });
    disk.show({ t: h.t, v: [h.v[1]] });
    load.show({ t: h.t, v: [h.v[2]] });
  };
  draw();
  const p = poller(async () => {
    let r;
    try {
      r = await api("GET", "/nodes", undefined, "Loading nodes");
    } catch (e) {
      showIn(msg, e);
      throw e;
    }
    const list = r.nodes || [];
    sampleNodes(list.filter((n) => n.id !== id));
    const n = list.find((x) => x.id === id);
    if (!n) {
      msg.className = "msg";
      msg.textContent = "This node is not connected (it has not reported, or it has left the cluster).";
    } else {
      msg.textContent = "";
      record(h, [pct(n.ram_total - n.ram_available, n.ram_total), pct(n.disk_total - n.disk_available, n.disk_total), n.load]);
      draw();
      facts.replaceChildren(...[["Status", n.status], ["CPUs", n.online_cpus], ["Memory", `${n.ram_available} of ${n.ram_total} MB free`],
        ["Disk", `${n.disk_available} of ${n.disk_total} MB free`], ["Instances", `${n.total_instances} (${n.total_running_instances} running, ${n.total_pending_instances} pending, ${n.total_paused_instances} stopped)`]]
        .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
    }
    const s = await api("GET", "/nodes/" + encodeURIComponent(id) + "/servers/detail", undefined, "Loading the node's instances");
    const servers = s.servers || [];
    tbody.replaceChildren(...(servers.length ? servers.map((x) => el("tr", {}, el("td", { class: "id" }, x.id), el("td", { class: "id" }, x.tenant_id || "(CNCI)"),
      el("td", {}, statusWord(x.status)), el("td", {}, x.cpus_usage + "%"), el("td", {}, x.ram_usage + " MB"), el("td", {}, x.disk_usage + " MB")))
      : [el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No instances reported on this node."))]));
    setLive(live);
  }, POLL_MS, (e) => setLive(live, e, true));
  return () => { p.stop(); mem.destroy(); disk.destroy(); load.destroy(); };
}

// tenants is #/admin/tenants.
export function tenants(main) {
  const live = liveLine();
  const msg = errorBox("tenants-msg");
  const tbody = el("tbody", { id: "tenant-rows" });
  main.replaceChildren(el("h1", {}, "Tenants"), live, msg,
    el("table", {}, el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Tenant"), el("th", { scope: "col" }, "Name"), el("th", { scope: "col" }, "Quotas"))), tbody));
  const p = poller(async () => {
    let r;
    try { r = await api("GET", "/tenants", undefined, "Loading tenants"); } catch (e) { showIn(msg, e); throw e; }
    msg.textContent = "";
    const list = r.tenants || [];
    tbody.replaceChildren(...(list.length ? list.map((t) => el("tr", { "data-id": t.id }, el("td", { class: "id" }, t.id), el("td", {}, t.name || "—"),
      el("td", {}, el("a", { href: "#/admin/tenants/" + encodeURIComponent(t.id), "aria-label": "Quotas of tenant " + t.id }, "Quotas"))))
      : [el("tr", {}, el("td", { colspan: 3, class: "empty" }, "No tenants yet."))]));
    setLive(live);
  }, POLL_MS * 5, (e) => setLive(live, e, true));
  return () => p.stop();
}

// cncis is #/admin/cncis.
export function cncis(main) {
  const live = liveLine();
  const msg = errorBox("cncis-msg");
  const tbody = el("tbody", { id: "cnci-rows" });
  main.replaceChildren(el("h1", {}, "CNCIs"), live, msg,
    el("table", {}, el("thead", {}, el("tr", {}, ...["CNCI", "Tenant", "IPv4", "Subnets"].map((h) => el("th", { scope: "col" }, h)))), tbody));
  const p = poller(async () => {
    let r;
    try { r = await api("GET", "/cncis", undefined, "Loading CNCIs"); } catch (e) { showIn(msg, e); throw e; }
    msg.textContent = "";
    const list = r.cncis || [];
    tbody.replaceChildren(...(list.length ? list.map((c) => el("tr", {}, el("td", { class: "id" }, c.id), el("td", { class: "id" }, c.tenant_id),
      el("td", {}, c.IPv4 || "—"), el("td", {}, (c.subnets || []).map((s) => s.subnet_cidr).join(", ") || "—")))
      : [el("tr", {}, el("td", { colspan: 4, class: "empty" }, "No CNCIs (tenant networking is off, or no tenant has one yet)."))]));
    setLive(live);
  }, POLL_MS * 5, (e) => setLive(live, e, true));
  return () => p.stop();
}

// clusterEvents is #/admin/events.
export function clusterEvents(main) {
  const live = liveLine();
  const msg = errorBox("cluster-events-msg");
  const tbody = el("tbody", { id: "cluster-event-rows" });
  const clear = el("button", { type: "button", class: "danger", id: "clear-events", onclick: async () => {
    try { await api("DELETE", "/events", undefined, "Clearing events"); p.now(); } catch (e) { showError(e); }
  } }, "Clear all events");
  main.replaceChildren(el("h1", {}, "Cluster events"), live, msg, el("p", {}, clear),
    el("table", {}, el("thead", {}, el("tr", {}, ...["Time", "Tenant", "Type", "Message"].map((h) => el("th", { scope: "col" }, h)))), tbody));
  const p = poller(async () => {
    let r;
    try { r = await api("GET", "/events", undefined, "Loading events"); } catch (e) { showIn(msg, e); throw e; }
    msg.textContent = "";
    tbody.replaceChildren(...eventRows(r.events || [], true));
    setLive(live);
  }, POLL_MS, (e) => setLive(live, e, true));
  return () => p.stop();
}

const QUOTA_LABELS = { "tenant-instances-quota": "Instances", "tenant-vcpu-quota": "vCPUs",
  "tenant-mem-quota": "Memory (MB)", "tenant-disk-quota": "Disk (MB)" };

// tenantQuotas is #/admin/tenants/{id}: the tenant's limits, editable.
export function tenantQuotas(main, id) {
  const msg = errorBox("quota-msg");
  const form = el("form", { class: "panel", id: "quota-form", "aria-label": "Quotas of tenant " + id, novalidate: true });
  main.replaceChildren(el("p", {}, el("a", { href: "#/admin/tenants" }, "← All tenants")),
    el("h1", {}, "Quotas of ", el("span", { class: "id" }, id)), msg, form);
  const path = "/tenants/" + encodeURIComponent(id) + "/quotas";
  const show = (qs) => {
    const rows = qs.map((q) => {
      const inputId = "quota-" + q.name;
      return el("div", { class: "quota-row" },
        el("label", { for: inputId }, QUOTA_LABELS[q.name] || q.name),
        el("input", { id: inputId, name: q.name, value: q.value, inputmode: "numeric", "aria-describedby": inputId + "-usage" }),
        el("span", { id: inputId + "-usage", class: "hint" }, `in use: ${q.usage || 0}`));
    });
    form.replaceChildren(el("p", { class: "hint" }, "A whole number, or \u201cunlimited\u201d."), ...rows,
      el("button", { type: "submit", class: "primary", id: "quota-save" }, "Save quotas"));
  };
  api("GET", path, undefined, "Loading quotas").then((r) => show(r.quotas || [])).catch((e) => showIn(msg, e));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const quotas = [];
    for (const input of form.querySelectorAll("input")) {
      const v = input.value.trim().toLowerCase();
      if (v !== "unlimited" && !/^(-1|\d+)$/.test(v)) {
        msg.className = "msg";
        msg.textContent = `${QUOTA_LABELS[input.name] || input.name}: \u201c${input.value}\u201d is not a whole number or \u201cunlimited\u201d.`;
        input.focus();
        return;
      }
      quotas.push({ name: input.name, value: v });
    }
    try {
      const r = await api("PUT", path, { quotas }, "Saving quotas");
      if (r && r.quotas) show(r.quotas);
      msg.className = "msg info";
      msg.textContent = "Quotas saved.";
    } catch (e) {
      showIn(msg, e);
    }
  });
}
