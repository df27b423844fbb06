// charts.js: time-series charts drawn by uPlot (vendor/, MIT licence),
// with a caption and a text summary of the latest values so the figure is
// readable without seeing the canvas.
import { el } from "./core.js";

const COLORS = ["#0b5cad", "#c2410c", "#1a7f37", "#7c3aed"];

// Series keeps samples across page visits (by key) while the tab lives:
// the controller has no history endpoint, so the UI samples while open.
const store = new Map();

export function history(key, n) {
  if (!store.has(key)) store.set(key, { t: [], v: Array.from({ length: n }, () => []) });
  return store.get(key);
}

// record adds one sample (seconds since the epoch, values) to a history,
// keeping the last 900 (30 minutes at 2 s).
export function record(h, values) {
  h.t.push(Date.now() / 1000);
  values.forEach((v, i) => h.v[i].push(v));
  if (h.t.length > 900) { h.t.shift(); h.v.forEach((a) => a.shift()); }
}

// TimeChart is one figure: title, series [{label, unit}], a history.
export class TimeChart {
  constructor(parent, { id, title, series, yRange, windowSec }) {
    this.series = series;
    this.windowSec = windowSec || 60;
    this.summary = el("p", { class: "chart-summary", id: id + "-summary", "aria-live": "off" }, "No samples yet.");
    this.box = el("div", { class: "chart", role: "img", "aria-label": title + " over time", "aria-describedby": id + "-summary" });
    this.fig = el("figure", { id }, el("figcaption", {}, title), this.box, this.summary);
    parent.append(this.fig);
    const opts = {
      width: this.width(), height: 200,
      scales: { x: { time: true }, y: yRange ? { range: yRange } : {} },
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2,
        value: (u, v) => (v == null ? "–" : v + (s.unit || "")) }))],
      axes: [{}, { size: 60 }],
      legend: { live: false },
    };
    this.plot = new uPlot(opts, [[], ...series.map(() => [])], this.box);
    this.ro = new ResizeObserver(() => this.plot.setSize({ width: this.width(), height: 200 }));
    this.ro.observe(this.fig);
  }

  width() {
    return Math.max(240, (this.fig ? this.fig.clientWidth : 320) - 20);
  }

  // show draws a history.
  show(h) {
    this.plot.setData([h.t.slice(), ...h.v.map((a) => a.slice())]);
    if (h.t.length === 0) return;
    const last = h.t.length - 1;
    // At least the chart's window (a minute by default), so a few samples
    // do not stretch the time axis over years.
    const now = Math.max(h.t[last], this.windowSec > 60 ? Date.now() / 1000 : 0);
    this.plot.setScale("x", { min: Math.min(h.t[0], now - this.windowSec), max: now });
    const parts = this.series.map((s, i) => `${s.label}: ${h.v[i][last]}${s.unit || ""}`);
    this.summary.textContent = `Latest (${new Date(h.t[last] * 1000).toLocaleTimeString()}): ${parts.join(", ")}; ${h.t.length} samples.`;
  }

  destroy() {
    this.ro.disconnect();
    this.plot.destroy();
  }
}
