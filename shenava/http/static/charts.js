// The wallboard's charts, drawn with uPlot (npm "uplot", served by the daemon from
// static/vendor/, copied there by scripts/bootstrap). Every point comes from the
// pushed events: "series" (the history, when the page connects) and "board" (the
// current interval, and a new sample every 10 s). Axes in the page's digits; the
// time axis runs left to right in both languages.
"use strict";

(function () {
  const S = window.Shenava;
  if (!S) return;
  const { T, LOCALE } = S;
  const $ = (id) => document.getElementById(id);
  const STATES = ["ready", "on_call", "wrap_up", "ringing", "not_ready"];
  const COLOURS = { ready: "#1b7f3b", on_call: "#0b5cad", wrap_up: "#6f42c1", ringing: "#b35c00",
    not_ready: "#9a6700", target: "#b42318", sl: "#0b5cad", answered: "#1b7f3b",
    abandoned: "#b42318", waiting: "#0b5cad", longest: "#9a6700" };
  const integer = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
  let tz = undefined;
  let hhmm = null;
  const clock = (posix) => {
    if (!hhmm) {
      try {
        hhmm = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: tz });
      } catch (e) {
        hhmm = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
      }
    }
    return hhmm.format(new Date(posix * 1000));
  };

  const COUNTS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000];
  // Ticks on whole 5, 10, 15, 30 minutes or hours (at most 8), whatever the data: uPlot's
  // own time splits fold up when there is a single point.
  const STEPS = [300, 600, 900, 1800, 3600, 7200, 10800, 21600];
  function timeSplits(u, axis, min, max) {
    const step = STEPS.find((s) => (max - min) / s <= 8) || STEPS[STEPS.length - 1];
    const out = [];
    for (let v = Math.ceil(min / step) * step; v <= max; v += step) out.push(v);
    return out;
  }
  const charts = {};
  let intervals = new Map(); // start -> interval figures
  let samples = [];
  let target = null;

  function holder(id) {
    const el = $(id);
    return el ? el.querySelector(".plot") : null;
  }

  function size(el) {
    const width = Math.max(200, Math.floor(el.getBoundingClientRect().width));
    const tall = document.body.classList.contains("tv") ? 0.38 : 0.45;
    return { width, height: Math.max(150, Math.min(420, Math.floor(width * tall))) };
  }

  function make(id, series, axes, scales) {
    if (typeof window.uPlot !== "function") {
      const el = $(id);
      if (el) el.querySelector(".plot").textContent = T.charts_missing;
      return null;
    }
    const el = holder(id);
    // What the axes say is kept on the figure too (data-axis0, data-axis1...): the canvas
    // has no text to read back.
    const noted = (i, values) => (u, splits) => {
      const out = values(u, splits);
      $(id).dataset["axis" + i] = out.join(" ");
      return out;
    };
    const options = {
      ...size(el),
      legend: { show: true, live: false },
      cursor: { show: false },
      // At least an hour (or a few intervals) across, so one point is not the whole width.
      // (from the data itself: uPlot widens a single point's range by a day of ms first).
      scales: { x: { time: true, range: (u, min, max) => {
        const xs = u.data[0];
        if (!xs || !xs.length) return [min, max];
        const lo = xs[0];
        const hi = xs[xs.length - 1];
        return [Math.min(lo, hi - 3600), hi + 60];
      } }, ...(scales || {}) },
      axes: [
        { values: noted(0, (u, splits) => splits.map(clock)), splits: timeSplits,
          stroke: "#5b6b7a", grid: { stroke: "#e4e9ee" } },
        ...axes.map((a, i) => ({ stroke: "#5b6b7a", grid: { stroke: "#e4e9ee" }, size: 56,
          incrs: COUNTS, ...a,
          values: noted(i + 1, a.values) })),
      ],
      // Lines with a point per interval or sample (uPlot's bar and step paths draw a
      // single point across the whole width).
      series: [{}, ...series.map(({ bars, ...s }) => ({ ...s, width: bars ? 2 : s.width,
        points: { show: true, size: 6 } }))],
    };
    const data = [[], ...series.map(() => [])];
    const chart = new window.uPlot(options, data, el);
    new ResizeObserver(() => chart.setSize(size(el))).observe(el);
    return chart;
  }

  const numbers = (suffix) => (u, splits) => splits.map((v) => (v === null ? "" : integer.format(v) + (suffix || "")));

  function build() {
    charts.sl = make("chart-sl", [
      { label: T.chart_sl, stroke: COLOURS.sl, fill: "rgba(11,92,173,0.25)", bars: true, scale: "%" },
      { label: T.chart_target, stroke: COLOURS.target, width: 2, dash: [6, 4], scale: "%" },
    ], [{ scale: "%", values: numbers(S.LANG === "fa" ? "٪" : "%") }],
    { "%": { range: [0, 100] } });
    charts.outcomes = make("chart-outcomes", [
      { label: T.chart_answered, stroke: COLOURS.answered, fill: "rgba(27,127,59,0.35)", bars: true },
      { label: T.chart_abandoned, stroke: COLOURS.abandoned, fill: "rgba(180,35,24,0.35)", bars: true },
    ], [{ values: numbers() }], { y: { range: (u, min, max) => [0, Math.max(4, max)] } });
    charts.waiting = make("chart-waiting", [
      { label: T.chart_waiting, stroke: COLOURS.waiting, width: 2, scale: "calls" },
      { label: T.chart_longest, stroke: COLOURS.longest, width: 2, scale: "s" },
    ], [
      { scale: "calls", values: numbers() },
      { scale: "s", side: 1, values: numbers(" " + T.unit_s), grid: { show: false } },
    ], { calls: { range: (u, min, max) => [0, Math.max(4, max)] }, s: { range: (u, min, max) => [0, Math.max(30, max)] } });
    charts.states = make("chart-states", STATES.map((s) => ({
      label: T["state_" + s], stroke: COLOURS[s], width: 2,
    })), [{ values: numbers() }], { y: { range: (u, min, max) => [0, Math.max(4, max)] } });
  }

  function drawIntervals() {
    const rows = [...intervals.values()].sort((a, b) => a.start - b.start)
      .filter((r) => r.offered || r.answered || r.abandoned);
    const xs = rows.map((r) => r.start);
    if (charts.sl) {
      charts.sl.setData([xs, rows.map((r) => (r.sl === null ? null : Math.round(r.sl * 1000) / 10)),
        rows.map(() => (target === null ? null : target * 100))]);
    }
    if (charts.outcomes) {
      charts.outcomes.setData([xs, rows.map((r) => r.answered || 0), rows.map((r) => r.abandoned || 0)]);
    }
    $("chart-sl").dataset.points = String(xs.length);
    $("chart-outcomes").dataset.points = String(xs.length);
  }

  function drawSamples() {
    const xs = samples.map((p) => p.at);
    if (charts.waiting) {
      charts.waiting.setData([xs, samples.map((p) => p.waiting), samples.map((p) => p.longest_wait_s)]);
    }
    if (charts.states) {
      charts.states.setData([xs, ...STATES.map((s) => samples.map((p) => p.states[s] || 0))]);
    }
    $("chart-waiting").dataset.points = String(xs.length);
    $("chart-states").dataset.points = String(xs.length);
  }

  S.onBoard((kind, data) => {
    if (kind === "series") {
      intervals = new Map(data.intervals.map((r) => [r.start, r]));
      samples = data.samples.slice();
      if (Object.keys(charts).length === 0) build();
      drawIntervals();
      drawSamples();
      return;
    }
    if (tz !== data.site.timezone) {
      tz = data.site.timezone;
      hhmm = null;
    }
    target = data.sla ? data.sla.target : null;
    if (Object.keys(charts).length === 0) build();
    if (data.interval) {
      intervals.set(data.interval.start, data.interval);
      drawIntervals();
    }
    if (data.sample) {
      samples.push(data.sample);
      const cutoff = data.sample.at - 3600;
      while (samples.length && samples[0].at < cutoff) samples.shift();
      drawSamples();
    }
  });
})();
