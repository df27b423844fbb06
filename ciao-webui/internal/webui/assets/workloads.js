// workloads.js: #/workloads, the workloads a project can launch (the
// public ones and its own private ones), the form that creates a private
// workload (or, for an administrator, a public one) and the deletion of
// the project's own workloads. It speaks the controller's workloads API
// (/{tenant}/workloads, /workloads) through the daemon's relay.
import { api, request, tenant, el, showError, state, SessionExpired, errorWords } from "./core.js";

// DEFAULT_CONFIG is the cloud-init document the form starts with.
export const DEFAULT_CONFIG = `#cloud-config
# cloud-init runs this at each instance's first boot; edit as needed.
runcmd:
  - [ touch, /etc/bootdone ]
`;

const DRAFT = "ciao.workload-draft";

// FIELDS maps the names in the controller's 400 messages to the form's
// inputs ("requirements.vcpus 0 not in 1..1024" -> wl-vcpus).
const FIELDS = [
  [/requirements\.vcpus/, "wl-vcpus"],
  [/requirements\.mem_mb/, "wl-mem"],
  [/image_name/, "wl-image-name"],
  [/image_id|needs an image|bootable disk/, "wl-image-id"],
  [/fw_type/, "wl-fw"],
  [/vm_type/, "wl-type"],
  [/\bconfig\b|cloud-init|YAML/, "wl-config"],
  [/description/, "wl-description"],
];

// fieldOf returns the id of the input a controller message blames: the
// field named first after "bad workload definition:".
export function fieldOf(message) {
  const i = message.indexOf("bad workload definition:");
  const m = i >= 0 ? message.slice(i + "bad workload definition:".length) : message;
  let best = null, at = Infinity;
  for (const [re, id] of FIELDS) {
    const r = m.search(re);
    if (r >= 0 && r < at) { best = id; at = r; }
  }
  return best;
}

// wapi calls the workloads API, which the controller serves beside (not
// under) /v2.1.
function wapi(method, path, body, what) {
  return request(method, "/api" + path, body, what);
}

function field(id, label, input, hint) {
  return el("div", { class: "field", "data-field": id },
    el("label", { for: id }, label, hint ? el("span", { class: "hint" }, " " + hint) : null),
    input,
    el("p", { class: "field-error", id: id + "-err", role: "status" }));
}

// workloads is #/workloads.
export function workloads(main) {
  const admin = !!state.session.admin;
  const desc = el("input", { id: "wl-description", name: "description", required: true, maxlength: "256", autocomplete: "off", placeholder: "e.g. Ubuntu web server" });
  const type = el("select", { id: "wl-type", name: "vm_type" }, el("option", { value: "docker" }, "Container (docker)"), el("option", { value: "qemu" }, "Virtual machine (qemu)"));
  const imageName = el("input", { id: "wl-image-name", name: "image_name", autocomplete: "off", value: "ubuntu:latest", spellcheck: "false" });
  const imageID = el("select", { id: "wl-image-id", name: "image_id" }, el("option", { value: "" }, "Loading images…"));
  const fw = el("select", { id: "wl-fw", name: "fw_type" }, el("option", { value: "legacy" }, "BIOS (legacy)"), el("option", { value: "efi" }, "UEFI"));
  const vcpus = el("input", { id: "wl-vcpus", name: "vcpus", type: "number", min: "1", value: "1", inputmode: "numeric", required: true });
  const mem = el("input", { id: "wl-mem", name: "mem_mb", type: "number", min: "1", value: "512", inputmode: "numeric", required: true });
  const config = el("textarea", { id: "wl-config", name: "config", rows: "8", spellcheck: "false", required: true });
  config.value = DEFAULT_CONFIG;
  const pub = el("input", { id: "wl-public", name: "public", type: "checkbox" });
  const submit = el("button", { type: "submit", class: "primary", id: "wl-submit" }, "Create workload");
  const formMsg = el("p", { class: "msg", id: "wl-msg", role: "alert", tabindex: "-1" });
  const dockerFields = el("div", { class: "row" }, field("wl-image-name", "Docker image", imageName, "(a reference, e.g. debian:12)"));
  const qemuFields = el("div", { class: "row", hidden: true }, field("wl-image-id", "Disk image", imageID), field("wl-fw", "Firmware", fw));
  const form = el("form", { class: "panel workload-form", id: "workload-form", "aria-labelledby": "wl-form-title", novalidate: true },
    el("h2", { id: "wl-form-title" }, "Create a workload"),
    formMsg,
    el("div", { class: "row" }, field("wl-description", "Description", desc), field("wl-type", "Type", type)),
    dockerFields, qemuFields,
    el("div", { class: "row" }, field("wl-vcpus", "vCPUs", vcpus), field("wl-mem", "Memory", mem, "(MB)")),
    field("wl-config", "Cloud-init", config, "(the cloud-config document given to each instance)"),
    admin ? el("div", { class: "check" }, pub, el("label", { for: "wl-public" }, "Public: every project may launch it (administrators only)")) : null,
    el("div", {}, submit));
  const listMsg = el("p", { class: "msg", id: "workloads-msg", role: "alert", tabindex: "-1" });
  const tbody = el("tbody", { id: "workload-rows" });
  const table = el("table", { id: "workloads" },
    el("thead", {}, el("tr", {}, ...["Workload", "Type", "Image", "vCPUs", "Memory", "Visibility", "Actions"]
      .map((h, i) => el("th", { scope: "col", class: i === 2 || i === 5 ? "hide-narrow" : undefined }, h)))),
    tbody);
  main.replaceChildren(el("h1", {}, "Workloads"), el("h2", {}, "Workloads of " + state.session.project_name), listMsg, table, form);

  // A submit that met an expired session keeps what was typed (tied to
  // the user and project) for the form shown after signing in again.
  const inputs = [desc, type, imageName, imageID, fw, vcpus, mem, config];
  // (The session is gone by the time SessionExpired arrives: take the
  // owner now.)
  const owner = state.session.user + "\n" + state.session.project_id;
  const saveDraft = () => sessionStorage.setItem(DRAFT, JSON.stringify({ owner, values: inputs.map((i) => i.value), pub: pub.checked }));
  let draftImage = "";
  try {
    const d = JSON.parse(sessionStorage.getItem(DRAFT));
    if (d && d.owner === owner) {
      inputs.forEach((i, n) => { i.value = d.values[n]; });
      draftImage = d.values[inputs.indexOf(imageID)];
      pub.checked = admin && d.pub;
      formMsg.className = "msg info";
      formMsg.textContent = "Your session ended before the workload was created; what you typed is back. Create it again when ready.";
    }
  } catch (e) { /* no draft */ }
  sessionStorage.removeItem(DRAFT);

  const showType = () => {
    const q = type.value === "qemu";
    dockerFields.hidden = q;
    qemuFields.hidden = !q;
  };
  type.addEventListener("change", showType);
  showType();

  // The qemu image list (the controller's image service may be off).
  request("GET", "/api/v2/images", undefined, "Loading images").then((r) => {
    const imgs = (r.images || []).filter((i) => i.status === "active").sort((a, b) => (a.name || "").localeCompare(b.name || ""));
    imageID.replaceChildren(el("option", { value: "" }, imgs.length ? "Choose an image" : "No images: upload one first"),
      ...imgs.map((i) => el("option", { value: i.id, selected: i.id === draftImage }, `${i.name || i.id}${i.visibility === "public" ? "" : " (" + i.visibility + ")"}`)));
  }).catch((e) => {
    if (e instanceof SessionExpired) return;
    imageID.replaceChildren(el("option", { value: "" }, e.status === 404 ? "No image service on this controller" : "Images unavailable: " + e.message));
  });

  const clearErrors = () => {
    formMsg.className = "msg";
    formMsg.textContent = "";
    for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
    for (const i of form.querySelectorAll("[aria-invalid]")) { i.removeAttribute("aria-invalid"); i.removeAttribute("aria-describedby"); }
  };
  // blame marks one input with a message beside it and focuses it.
  const blame = (id, text) => {
    const input = document.getElementById(id);
    if (!input) return false;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", id + "-err");
    document.getElementById(id + "-err").textContent = text;
    input.focus();
    return true;
  };
  const whole = (input, label) => {
    const n = Number(input.value);
    if (input.value.trim() === "" || !Number.isInteger(n)) {
      blame(input.id, `${label} must be a whole number.`);
      return null;
    }
    return n;
  };

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors();
    // Only what the form can tell by itself; bounds and the rest are the
    // controller's, whose message is shown beside the field at fault.
    if (!desc.value.trim()) { blame("wl-description", "Enter a description."); return; }
    const v = whole(vcpus, "vCPUs");
    if (v === null) return;
    const m = whole(mem, "Memory");
    if (m === null) return;
    const q = type.value === "qemu";
    if (q && !imageID.value) { blame("wl-image-id", "Choose a disk image."); return; }
    if (!q && !imageName.value.trim()) { blame("wl-image-name", "Enter a docker image, e.g. ubuntu:latest."); return; }
    const spec = { description: desc.value.trim(), vm_type: type.value, fw_type: q ? fw.value : "",
      image_name: q ? "" : imageName.value.trim(), requirements: { vcpus: v, mem_mb: m }, config: config.value };
    if (q) spec.image_id = imageID.value;
    const isPublic = admin && pub.checked;
    submit.disabled = true;
    try {
      const r = await wapi("POST", isPublic ? "/workloads" : tenant() + "/workloads", spec, "Creating the workload");
      const w = r.workload;
      formMsg.className = "msg info";
      formMsg.replaceChildren(`Created ${w.visibility} workload “${w.description}” (${w.id}). `,
        el("a", { href: "#/instances?workload=" + encodeURIComponent(w.id) }, "Launch it"), ".");
      // A new definition starts from the defaults; the type is kept.
      desc.value = "";
      config.value = DEFAULT_CONFIG;
      pub.checked = false;
      await load();
    } catch (e) {
      if (e instanceof SessionExpired) { saveDraft(); return; }
      // Nothing in the form is changed: the user fixes the field at fault.
      formMsg.className = "msg";
      formMsg.textContent = errorWords(e);
      const f = e.status === 400 ? fieldOf(e.message) : null;
      // Beside the field, only the controller's words about it.
      const why = e.message.replace(/^.*bad workload definition:\s*/, "");
      if (!(f && blame(f, why))) formMsg.focus();
    } finally {
      submit.disabled = false;
    }
  });

  // usersOf lists the project's instances of workload id (for the 409).
  const usersOf = async (id) => {
    try {
      const r = await api("GET", tenant() + "/servers/detail?limit=1000", undefined, "Loading instances");
      return (r.servers || []).filter((s) => s.flavor && s.flavor.id === id).map((s) => s.id);
    } catch (e) {
      return null;
    }
  };

  const del = async (w, row) => {
    listMsg.className = "msg";
    listMsg.textContent = "";
    const path = (w.visibility === "public" ? "" : tenant()) + "/workloads/" + encodeURIComponent(w.id);
    try {
      await wapi("DELETE", path, undefined, `Deleting workload “${w.description}”`);
      listMsg.className = "msg info";
      listMsg.textContent = `Deleted workload “${w.description}”.`;
      await load();
    } catch (e) {
      if (e instanceof SessionExpired) return;
      renderActions(w, row);
      if (e.status === 409) {
        const ids = await usersOf(w.id);
        const links = (ids || []).map((id) => el("a", { href: "#/instances/" + encodeURIComponent(id) }, id));
        listMsg.replaceChildren(...[`Workload “${w.description}” is in use and was not deleted: `,
          ids && ids.length ? [`${ids.length} instance${ids.length > 1 ? "s" : ""} of this project still use${ids.length > 1 ? "" : "s"} it (`,
            ...links.flatMap((a, i) => (i ? [", ", a] : [a])), "). "] : "instances still use it. ",
          "Delete them first, then delete the workload. ", el("span", { class: "hint" }, "The controller said: " + e.message)].flat());
      } else {
        listMsg.textContent = errorWords(e);
      }
      listMsg.focus();
    }
  };

  const mine = (w) => (w.visibility === "private" && w.tenant_id === state.session.project_id) || (w.visibility === "public" && admin);

  // renderActions fills a row's actions cell: Launch and, for a workload
  // the user may delete, Delete, which asks for a confirmation in place.
  const renderActions = (w, row) => {
    const cell = row.querySelector("td.actions");
    const launch = el("a", { class: "button", href: "#/instances?workload=" + encodeURIComponent(w.id), "data-act": "launch",
      "aria-label": `Launch workload ${w.description}` }, "Launch");
    if (!mine(w)) { cell.replaceChildren(launch); return; }
    cell.replaceChildren(launch, el("button", { type: "button", class: "danger", "data-act": "delete", "aria-label": `Delete workload ${w.description}`,
      onclick: () => {
        const yes = el("button", { type: "button", class: "danger", "data-act": "confirm-delete", "aria-label": `Confirm: delete workload ${w.description}`,
          onclick: (ev) => { ev.target.disabled = true; del(w, row); } }, "Delete");
        cell.replaceChildren(el("span", { class: "confirm" }, `Delete “${w.description}”?`), " ", yes, " ",
          el("button", { type: "button", "data-act": "cancel", onclick: () => renderActions(w, row) }, "Cancel"));
        yes.focus();
      } }, "Delete"));
  };

  const load = async () => {
    let r;
    try {
      r = await wapi("GET", tenant() + "/workloads", undefined, "Loading workloads");
    } catch (e) {
      if (e instanceof SessionExpired) return;
      tbody.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "empty" }, "Workloads unavailable.")));
      listMsg.className = "msg";
      listMsg.textContent = errorWords(e);
      return;
    }
    // The project's own first, then public ones; by description.
    const list = (r.workloads || []).sort((a, b) => (a.visibility === b.visibility ? 0 : a.visibility === "private" ? -1 : 1) ||
      a.description.localeCompare(b.description));
    tbody.replaceChildren(...(list.length ? list.map((w) => {
      const tr = el("tr", { "data-id": w.id, "data-visibility": w.visibility },
        el("td", {}, el("div", { class: "wl-desc" }, w.description), el("div", { class: "id" }, w.id)),
        el("td", {}, w.vm_type),
        el("td", { class: "id hide-narrow" }, w.vm_type === "docker" ? w.image_name : w.image_id || "—"),
        el("td", {}, String(w.requirements.vcpus)),
        el("td", {}, `${w.requirements.mem_mb} MB`),
        el("td", { class: "hide-narrow" }, w.visibility === "private" ? "This project" : "Public"),
        el("td", { class: "actions" }));
      renderActions(w, tr);
      return tr;
    }) : [el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No workloads yet: create one below."))]));
    tbody.dataset.loaded = String(list.length);
  };
  load().catch(showError);
  return null;
}
