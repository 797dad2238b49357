const REPORT = /*STATE*/null;
const query = new URLSearchParams(location.search);
const token = query.get("token");
const url = p => p + (token ? "?token=" + encodeURIComponent(token) : "");
const STREAM_CAP = 3000, MARK_CAP = 1000, PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const BLUE = "31,119,180", ORANGE = "255,127,14", RED = "214,39,40";
// S: the view rendered, every rank's state combined (see combine); ranks: each rank's latest
// state; streams: each rank's tasks seen; samples: rank 0's memory timeline.
let S = null, lastSample = -1, run = null, combined = false;
const ranks = new Map(), streams = new Map(), samples = [];
const $ = id => document.getElementById(id);
const NS = "http://www.w3.org/2000/svg";

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n.toFixed(0)) + " " + u[i];
}
function setText(el, text, value) {
  if (el.textContent !== text) el.textContent = text;
  if (value !== undefined) el.dataset.value = value;
}
function svgEl(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

// What a message brought: rank 0's state, with the other ranks' (`ranks`) in an MPI job; of
// each, the tasks and samples the page has not seen.
function merge(d) {
  // Another command on the same port (the page reconnected to it): start afresh.
  if (run !== null && d.run !== run) { ranks.clear(); streams.clear(); samples.length = 0; workSeen.length = 0; lastSample = -1; }
  run = d.run;
  absorb(d);
  for (const r of d.ranks ?? []) r.unreachable ? fail("rank " + r.rank + " unreachable: " + r.unreachable) : absorb(r);
  for (const p of d.timeline) if (p[0] > lastSample) { samples.push(p); lastSample = p[0]; }
  if (samples.length > 4096) { const kept = samples.filter((_, i) => i % 2 === 0); samples.length = 0; samples.push(...kept); }
  // Combined once per render, not per message.
  combined = false;
  schedule(d.status);
}
// Live updates render at most every RENDER_INTERVAL ms of a running command, in a frame, and
// not while the page is hidden (a background tab gets no frames): a browser on the machine
// of the run takes its CPU from the run. The end renders at once, and so do a report and a
// snapshot.
const RENDER_INTERVAL = 250;
let scheduled = false, lastRender = -Infinity;
function schedule(status) {
  if (REPORT || query.get("snapshot")) return render();
  if (scheduled) return;
  scheduled = true;
  const wait = status === "running" ? Math.max(0, lastRender + RENDER_INTERVAL - performance.now()) : 0;
  setTimeout(() => requestAnimationFrame(() => { scheduled = false; lastRender = performance.now(); render(); }), wait);
}
function absorb(d) {
  ranks.set(d.rank, d);
  const st = streams.get(d.rank) ?? { next: 0, tasks: [], nextMark: 0, marks: [] };
  d.stream.tasks.forEach((t, i) => { if (d.stream.from + i >= st.next) st.tasks.push(t); });
  st.next = Math.max(st.next, d.stream.from + d.stream.tasks.length);
  const marks = d.stream.marks ?? [], marksFrom = d.stream.marks_from ?? 0;
  marks.forEach((m, i) => { if (marksFrom + i >= st.nextMark) st.marks.push(m); });
  st.nextMark = Math.max(st.nextMark, marksFrom + marks.length);
  // The stream drawn holds STREAM_CAP rectangles and MARK_CAP marks, shared by the ranks.
  const share = Math.max(1, (d.ranks?.length ?? 0) + 1, ranks.size);
  const cap = Math.ceil(STREAM_CAP / share), markCap = Math.ceil(MARK_CAP / share);
  if (st.tasks.length > cap) st.tasks.splice(0, st.tasks.length - cap);
  if (st.marks.length > markCap) st.marks.splice(0, st.marks.length - markCap);
  streams.set(d.rank, st);
}
// Every rank is a worker: workers and threads side by side, stages and counts summed by name.
function combine() {
  const all = [...ranks.keys()].sort((a, b) => a - b).map(r => ranks.get(r)), first = all[0];
  const stages = [], index = name => {
    let i = stages.findIndex(s => s.name === name);
    if (i < 0) { stages.push({ name, total: 0, done: 0, running: 0, after: [] }); i = stages.length - 1; }
    return i;
  };
  const threads = [], tasks = [], marks = [];
  let done = 0, total = 0;
  for (const d of all) {
    const map = d.stages.map(s => index(s.name));
    d.stages.forEach((s, i) => {
      const c = stages[map[i]];
      c.total += s.total; c.done += s.done; c.running += s.running;
      for (const a of s.after) if (!c.after.includes(map[a])) c.after.push(map[a]);
    });
    const offset = threads.length;
    d.threads.forEach((t, i) => threads.push({ ...t, label: (all.length > 1 ? "r" + d.rank + " " : "") + "t" + i,
      stageName: t.stage == null ? "" : d.stages[t.stage].name }));
    const st = streams.get(d.rank);
    for (const [th, stage, a, b, reserved, number] of st.tasks) tasks.push([th + offset, map[stage], a, b, reserved, number]);
    for (const [th, kind, a, b, size] of st.marks) marks.push([th == null ? null : th + offset, kind, a, b, size]);
    done += d.tasks.done; total += d.tasks.total;
  }
  const status = all.some(d => d.status === "running") ? "running" : all.some(d => d.status === "failed") ? "failed" : first.status;
  return { ...first, status, stages, threads, tasks: { done, total }, stream: tasks, marks, workers: all.map(d => d.workers[0]), work: combineWork(all) };
}

// How long each render took (ms, the newest 1,000): what a watching browser costs, read by
// the tests and benches.
const renderTimes = [];
window.outcoreRenderTimes = renderTimes;
function render() {
  const started = performance.now();
  if (!combined) { S = combine(); combined = true; }
  draw();
  renderTimes.push(performance.now() - started);
  if (renderTimes.length > 1000) renderTimes.shift();
}
// The stage graph and the memory timeline, whose SVGs are rebuilt whole (most of what a
// browser spends on an update), are redrawn at most every SLOW_INTERVAL ms of a running
// command, and at once when their width changed or the command ended.
const SLOW_INTERVAL = 2000;
let slowDrawn = { at: -Infinity, widths: "" };
function draw() {
  // Sizes read before anything is written: one layout per render, not one per chart.
  const width = id => $(id).clientWidth || 600, widths = [width("stream"), width("graph"), width("timeline")];
  const now = performance.now(), key = widths.join();
  const slow = S.status !== "running" || now - slowDrawn.at >= SLOW_INTERVAL || key !== slowDrawn.widths;
  const w = S.workers[0];
  setText($("status"), S.status, S.status);
  $("status").className = "status-" + S.status;
  setText($("tasks-done"), String(S.tasks.done), S.tasks.done);
  setText($("tasks-total"), String(S.tasks.total), S.tasks.total);
  setText($("elapsed"), S.elapsed.toFixed(1) + " s");
  setText($("limit"), w.limit ? bytes(w.limit) + " (" + w.accounting + ")" : "-");
  setText($("title"), S.title);
  renderBars(); renderWorkers(); renderStream(widths[0]); renderProgress(); renderRoofline();
  if (slow) { renderGraph(widths[1]); renderTimeline(widths[2]); slowDrawn = { at: now, widths: key }; }
}

// Dask's colour rule: blue; orange from min(target, spill) of the limit; red from terminate, or paused.
function colour(w) {
  const t = w.thresholds, mem = w.accounting === "own" ? w.managed : w.process;
  if (!w.limit) return BLUE;
  const paused = t.pause != null && mem >= t.pause * w.limit;
  if ((t.terminate != null && mem >= t.terminate * w.limit) || paused) return RED;
  const warn = Math.min(t.target ?? Infinity, t.spill ?? Infinity);
  return mem >= warn * w.limit ? ORANGE : BLUE;
}
function workerState(w) {
  if (S.status !== "running") return S.status;
  const t = w.thresholds, mem = w.accounting === "own" ? w.managed : w.process;
  return t.pause != null && w.limit && mem >= t.pause * w.limit ? "paused" : "running";
}

function renderBars() {
  const box = $("bars");
  S.workers.forEach((w, i) => {
    let wrap = box.children[i], bar = wrap?.querySelector(".bar");
    if (!wrap) {
      wrap = document.createElement("div");
      const name = document.createElement("div"); name.className = "barname"; wrap.appendChild(name);
      bar = document.createElement("div"); bar.className = "bar"; bar.id = "bar-" + i;
      for (const k of ["managed", "unmanaged_old", "unmanaged_recent", "host", "spilled"]) {
        const seg = document.createElement("div"); seg.className = "seg"; seg.dataset.field = k; bar.appendChild(seg);
      }
      // Labels of neighbouring ticks on two lines, so that none covers another.
      for (const [j, k] of ["target", "spill", "pause", "terminate"].entries()) {
        const tick = document.createElement("div"); tick.className = j % 2 ? "tick low" : "tick"; tick.dataset.field = k;
        tick.innerHTML = "<span>" + k + "</span>"; bar.appendChild(tick);
      }
      wrap.appendChild(bar); box.appendChild(wrap);
    }
    setText(wrap.querySelector(".barname"), w.name + ": process " + bytes(w.process) + (w.spilled ? ", spilled " + bytes(w.spilled) : ""));
    const rgb = colour(w), scale = Math.max(w.limit, w.process + w.spilled, 1) * 1.04;
    const alpha = { managed: 1, unmanaged_old: 0.7, unmanaged_recent: 0.4 };
    let x = 0;
    for (const seg of bar.querySelectorAll(".seg")) {
      const k = seg.dataset.field, v = w[k];
      seg.style.left = (100 * x / scale) + "%"; seg.style.width = (100 * v / scale) + "%";
      seg.style.background = k === "spilled" ? "#999" : k === "host" ? "#ccc" : "rgba(" + rgb + "," + alpha[k] + ")";
      seg.dataset.value = v; seg.title = k.replace("_", " ") + ": " + bytes(v);
      x += v;
    }
    for (const tick of bar.querySelectorAll(".tick")) {
      const f = w.thresholds[tick.dataset.field];
      tick.style.display = f == null ? "none" : "";
      if (f != null) tick.style.left = (100 * f * w.limit / scale) + "%";
    }
    bar.title = "process " + bytes(w.process);
  });
  // The legend in the first bar's colour: blue, orange or red as the bar is.
  const rgb = colour(S.workers[0]);
  if ($("legend").dataset.rgb !== rgb) {
    $("legend").dataset.rgb = rgb;
    $("legend").innerHTML = [["managed", "rgba(" + rgb + ",1)"], ["unmanaged old", "rgba(" + rgb + ",0.7)"],
      ["unmanaged recent", "rgba(" + rgb + ",0.4)"], ["host (own accounting)", "#ccc"], ["spilled (disk)", "#999"]]
      .map(([n, c]) => `<span><i style="background:${c}"></i>${n}</span>`).join("") +
      "<span>ticks: target, spill, pause, terminate; orange from min(target, spill), red from terminate or paused</span>";
  }
}

function row(tbody, i, cells) {
  let tr = tbody.children[i];
  if (!tr) { tr = document.createElement("tr"); cells.forEach(() => tr.appendChild(document.createElement("td"))); tbody.appendChild(tr); }
  cells.forEach(([text, key, value], j) => { const td = tr.children[j]; setText(td, text, value); if (key) td.dataset.field = key; });
}
// A value with its peak beside it once the peak is higher: a finished run's report shows what
// it spilled, not only the nothing left at its end.
function withPeak(now, peak) {
  return peak > now ? bytes(now) + " (peak " + bytes(peak) + ")" : bytes(now);
}
function renderWorkers() {
  const wt = $("workers").tBodies[0];
  S.workers.forEach((w, i) => row(wt, i, [
    [w.name], [String(w.threads)], [workerState(w), "state", workerState(w)],
    [withPeak(w.process, w.peak_process), "process", w.process], [withPeak(w.managed, w.peak_managed), "managed", w.managed],
    [bytes(w.unmanaged_old), "unmanaged_old", w.unmanaged_old], [bytes(w.unmanaged_recent), "unmanaged_recent", w.unmanaged_recent],
    [withPeak(w.spilled, w.peak_spilled), "spilled", w.spilled], [String(w.spills), "spills", w.spills], [String(w.reloads), "reloads", w.reloads],
    [bytes(w.read_bytes), "read_bytes", w.read_bytes], [bytes(w.written_bytes), "written_bytes", w.written_bytes]]));
  const tt = $("threads").tBodies[0];
  S.threads.forEach((t, i) => {
    const busy = S.elapsed > 0 ? (100 * t.busy / S.elapsed).toFixed(0) + " %" : "-";
    row(tt, i, [[t.label], [t.state, "state", t.state], [t.stageName],
      [String(t.done), "done", t.done], [busy], [bytes(t.reserved), "reserved", t.reserved]]);
  });
}

function stageState(s) { return s.done >= s.total && s.total > 0 ? "done" : s.running > 0 ? "running" : s.done > 0 ? "partly done" : "waiting"; }
function renderProgress() {
  const box = $("progress");
  S.stages.forEach((s, i) => {
    let r = box.children[i];
    if (!r) {
      r = document.createElement("div"); r.className = "prog"; r.id = "stage-" + i;
      r.innerHTML = '<span class="name"></span><div class="track"><div class="fill"></div></div><span class="count"></span>';
      box.appendChild(r);
    }
    setText(r.querySelector(".name"), s.name);
    const fill = r.querySelector(".fill");
    fill.style.width = (s.total ? 100 * s.done / s.total : 0) + "%";
    fill.style.background = PALETTE[i % PALETTE.length];
    setText(r.querySelector(".count"), s.done + " / " + s.total, s.done);
    r.dataset.state = stageState(s);
  });
}

// Stages in columns by their forward dependencies (on stages numbered before them); a
// dependency on a later stage is an iteration's loop, drawn as a dashed arc above the boxes.
function renderGraph(width) {
  const svg = $("graph");
  const layer = [];
  S.stages.forEach((s, i) => { layer[i] = s.after.filter(a => a < i).reduce((m, a) => Math.max(m, layer[a] + 1), 0); });
  const layers = Math.max(0, ...layer) + 1, perLayer = [], slot = [];
  S.stages.forEach((s, i) => { perLayer[layer[i]] = (perLayer[layer[i]] ?? 0) + 1; slot[i] = perLayer[layer[i]] - 1; });
  const bw = Math.min(150, (width - 10) / layers - 20), bh = 34, gap = (width - layers * bw) / Math.max(layers, 1);
  const rows = Math.max(1, ...perLayer.filter(Boolean));
  const loops = S.stages.some((s, i) => s.after.some(a => a >= i)), top = loops ? 30 : 6;
  svg.setAttribute("height", top + rows * (bh + 14) + 4);
  const pos = i => [gap / 2 + layer[i] * (bw + gap), top + slot[i] * (bh + 14)];
  const fill = { waiting: "#ddd", running: "#7fd17f", "partly done": "#b9e3b9", done: "#9cc3e6" };
  const frag = document.createDocumentFragment();
  S.stages.forEach((s, i) => s.after.forEach(a => {
    const [x0, y0] = pos(a), [x1, y1] = pos(i);
    if (a < i) {
      frag.appendChild(svgEl("line", { x1: x0 + bw, y1: y0 + bh / 2, x2: x1, y2: y1 + bh / 2, stroke: "#888" }));
    } else {
      const [xa, xb] = [x0 + bw / 2, x1 + bw / 2], lift = Math.min(y0, y1) - top + 24;
      frag.appendChild(svgEl("path", { d: `M${xa},${y0} C${xa},${y0 - lift} ${xb},${y1 - lift} ${xb},${y1}`,
        fill: "none", stroke: "#a65300", "stroke-dasharray": "4 3", class: "loop" }));
    }
  }));
  S.stages.forEach((s, i) => {
    const [x, y] = pos(i), st = stageState(s);
    const g = svgEl("g", { "data-state": st });
    g.appendChild(svgEl("title", {}, s.name));
    g.appendChild(svgEl("rect", { x, y, width: bw, height: bh, rx: 4, fill: fill[st], stroke: "#666" }));
    // A name longer than its box is squeezed into it (the whole name is the box's title).
    const fit = s.name.length * 6.2 > bw - 10 ? { textLength: bw - 10, lengthAdjust: "spacingAndGlyphs" } : {};
    g.appendChild(svgEl("text", { x: x + 5, y: y + 14, "font-size": 11, class: "stage-name", ...fit }, s.name));
    g.appendChild(svgEl("text", { x: x + 5, y: y + 28, "font-size": 10 }, s.done + "/" + s.total + " " + st));
    frag.appendChild(g);
  });
  svg.replaceChildren(frag);
}

function renderTimeline(width) {
  const svg = $("timeline"), height = 200, w = S.workers[0];
  setText($("timeline-of"), S.workers.length > 1 ? "(" + w.name + ")" : "");
  const left = 56, bottom = height - 18;
  const t1 = Math.max(S.elapsed, samples.length ? samples[samples.length - 1][0] : 0, 1e-3);
  const peak = samples.reduce((m, p) => Math.max(m, p[1], p[6]), Math.max(w.limit, 1)) * 1.08;
  // At most one sample per pixel is drawn (the newest always), the peak from them all.
  const stride = Math.ceil(samples.length / Math.max(width - left - 8, 1));
  const shown = samples.filter((_, i) => (samples.length - 1 - i) % stride === 0);
  const x = t => left + (width - left - 8) * t / t1, y = v => bottom - (bottom - 6) * v / peak;
  const frag = document.createDocumentFragment();
  // Stacked: managed, unmanaged old, unmanaged recent, host (their top is the process RSS).
  const layers = [[2, "rgba(" + BLUE + ",1)"], [3, "rgba(" + BLUE + ",0.7)"], [4, "rgba(" + BLUE + ",0.4)"], [5, "#ccc"]];
  let below = shown.map(() => 0);
  for (const [k, c] of layers) {
    if (!shown.length) break;
    const top = shown.map((p, i) => below[i] + p[k]);
    const pts = shown.map((p, i) => x(p[0]) + "," + y(top[i])).concat(shown.map((p, i) => x(p[0]) + "," + y(below[i])).reverse());
    frag.appendChild(svgEl("polygon", { points: pts.join(" "), fill: c }));
    below = top;
  }
  if (shown.length) {
    frag.appendChild(svgEl("polyline", { points: shown.map(p => x(p[0]) + "," + y(p[6])).join(" "), fill: "none", stroke: "#555", "stroke-dasharray": "4 3" }));
  }
  // Colours that read on white (4.5:1 and more); labels of lines close together are moved
  // down so that none covers another.
  const lines = [["limit", 1, "#000"], ["target", w.thresholds.target, "#1b7d1b"], ["spill", w.thresholds.spill, "#a65300"],
    ["pause", w.thresholds.pause, "#c4161c"], ["terminate", w.thresholds.terminate, "#800"]]
    .filter(([, f]) => f != null && w.limit).sort((a, b) => b[1] - a[1]);
  let above = -Infinity;
  for (const [name, f, c] of lines) {
    const at = y(f * w.limit), label = Math.max(at - 2, above + 11);
    above = label;
    frag.appendChild(svgEl("line", { x1: left, x2: width - 8, y1: at, y2: at, stroke: c, "stroke-dasharray": "6 3" }));
    frag.appendChild(svgEl("text", { x: width - 10, y: label, "font-size": 10, "text-anchor": "end", fill: c, class: "threshold" }, name));
  }
  // Axes: memory at 0, half and the top; time at every quarter.
  for (const v of [0, peak / 2, peak]) {
    frag.appendChild(svgEl("text", { x: 2, y: Math.max(y(v) + 4, 10), "font-size": 10 }, bytes(v)));
  }
  for (const q of [0, 0.25, 0.5, 0.75, 1]) {
    const anchor = q === 0 ? "start" : q === 1 ? "end" : "middle";
    frag.appendChild(svgEl("line", { x1: x(q * t1), x2: x(q * t1), y1: bottom, y2: bottom + 3, stroke: "#555" }));
    frag.appendChild(svgEl("text", { x: x(q * t1), y: height - 4, "font-size": 10, "text-anchor": anchor }, (q * t1).toFixed(2) + " s"));
  }
  svg.replaceChildren(frag);
  svg.dataset.samples = samples.length;
  if (!$("timeline-legend").childElementCount) {
    $("timeline-legend").innerHTML = "<span>stacked: managed, unmanaged old, unmanaged recent, host (top = process RSS); dashed grey: spilled</span>";
  }
}

function fail(text, kind) { $("error").textContent = text; $("error").className = kind || ""; }
initStream();
if (REPORT) {
  merge(REPORT);
} else if (query.get("snapshot")) {
  fetch(url("api/state.json")).then(r => r.json()).then(merge).catch(e => fail("cannot load the state: " + e));
} else {
  const events = new EventSource(url("api/events"));
  let ended = false;
  events.onmessage = e => { fail(""); merge(JSON.parse(e.data)); };
  // The command ended: this is its final state, and no server will answer again.
  events.addEventListener("end", () => {
    ended = true;
    events.close();
    fail("the command has ended: its final state, no longer live", "ended");
  });
  events.onerror = () => ended || fail(S && S.status !== "running"
    ? "the run's server is gone: its last state, no longer live" : "reconnecting to the run...");
}
