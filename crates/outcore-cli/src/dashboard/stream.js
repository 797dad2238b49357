// The task stream: one row per thread, one rectangle per task coloured by stage, and under it
// the thread's spills (writes to disk) and reloads (reads back) as marks of their own. It shows
// the last WINDOW seconds of a running command, and all of an ended one; the wheel zooms about
// the pointer, a drag pans, a double click goes back to following the run, and hovering names
// what is under the pointer. Drawn on a canvas: thousands of rectangles as SVG elements cost a
// watching browser tens of milliseconds per update.
const WINDOW = 30, ROW = 22, LEFT = 44, RIGHT = 8, AXIS = 18;
const SPILL = "#8b1a1a", RELOAD = "#4b3f9e";
// follow: the window ends at the newest time and spans `span` seconds (Infinity: everything);
// otherwise it is [from, to]. touched: the user zoomed or panned.
const streamView = { follow: true, span: WINDOW, from: 0, to: 1, touched: false };
let streamDrawn = null, streamQueued = false, streamDrag = null;

// The time range drawn: [first, last] of what is kept, and the window within it.
function streamRange() {
  const tasks = S.stream, marks = S.marks;
  let first = Infinity, last = S.elapsed;
  for (const t of tasks) { first = Math.min(first, t[2]); last = Math.max(last, t[3]); }
  for (const m of marks) { first = Math.min(first, m[2]); last = Math.max(last, m[3]); }
  first = Number.isFinite(first) ? first : 0;
  last = Math.max(last, first + 1e-3);
  // A command that ended is shown whole until the user zooms.
  const span = !streamView.touched && S.status !== "running" ? Infinity : streamView.span;
  const [from, to] = streamView.follow ? [Math.max(first, last - span), last] : [streamView.from, streamView.to];
  return { first, last, from, to: Math.max(to, from + 1e-4) };
}

// Tick step: 1, 2 or 5 times a power of ten, about `count` ticks over `span`.
function tickStep(span, count) {
  const raw = span / count, p = Math.pow(10, Math.floor(Math.log10(raw)));
  return [1, 2, 5, 10].map(k => k * p).find(s => s >= raw);
}
function seconds(t, step) {
  return t.toFixed(Math.max(0, -Math.floor(Math.log10(step)))) + " s";
}

function renderStream(width = $("stream").clientWidth || 600) {
  const canvas = $("stream");
  const outside = S.marks.some(m => m[0] == null), rows = Math.max(S.threads.length, 1) + (outside ? 1 : 0);
  const height = rows * ROW + AXIS, dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.height = height + "px";
  }
  const range = streamRange(), { from, to } = range, plot = width - LEFT - RIGHT;
  const x = t => LEFT + plot * (t - from) / (to - from);
  const rowOf = th => th == null ? rows - 1 : th;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "10px sans-serif";
  ctx.fillStyle = "#333";
  S.threads.forEach((t, r) => ctx.fillText(t.label, 2, r * ROW + 13));
  if (outside) ctx.fillText("other", 2, (rows - 1) * ROW + 13);
  ctx.save();
  ctx.beginPath();
  ctx.rect(LEFT, 0, plot, rows * ROW);
  ctx.clip();
  let rects = 0, marks = 0;
  for (const [th, st, a, b] of S.stream) {
    if (b < from || a > to) continue;
    ctx.fillStyle = PALETTE[st % PALETTE.length];
    ctx.fillRect(x(a), th * ROW + 2, Math.max(x(b) - x(a), 0.5), ROW - 8);
    rects++;
  }
  // Under the thread's tasks, at least 2 px wide: a spill or reload is seen at any zoom.
  for (const [th, kind, a, b] of S.marks) {
    if (b < from || a > to) continue;
    ctx.fillStyle = kind === "spill" ? SPILL : RELOAD;
    ctx.fillRect(x(a), rowOf(th) * ROW + ROW - 5, Math.max(x(b) - x(a), 2), 4);
    marks++;
  }
  ctx.restore();
  // The time axis: ticks at round seconds within the window.
  const step = tickStep(to - from, Math.max(2, Math.floor(plot / 90)));
  ctx.fillStyle = "#333";
  ctx.strokeStyle = "#555";
  ctx.textAlign = "center";
  for (let t = Math.ceil(from / step) * step; t <= to + 1e-9; t += step) {
    ctx.fillRect(x(t), rows * ROW, 1, 3);
    ctx.fillText(seconds(t, step), Math.min(Math.max(x(t), LEFT + 16), width - 24), rows * ROW + 14);
  }
  ctx.textAlign = "start";
  streamDrawn = { rows, x, from, to, plot };
  canvas.dataset.rects = rects;
  canvas.dataset.marks = marks;
  canvas.dataset.window = from.toFixed(4) + "-" + to.toFixed(4);
  const all = streamView.follow && (!Number.isFinite(streamView.span) || !streamView.touched && S.status !== "running");
  setText($("stream-window"), all ? "(all)" : streamView.follow ? "(the last " + seconds(to - from, tickStep(to - from, 4)) + ")"
    : "(" + seconds(from, 1e-2) + " to " + seconds(to, 1e-2) + ")");
  const legend = S.stages.map((s, i) => `<span><i style="background:${PALETTE[i % PALETTE.length]}"></i>${s.name}</span>`).join("")
    + `<span><i style="background:${SPILL}"></i>spill (write to disk)</span><span><i style="background:${RELOAD}"></i>reload (read back)</span>`;
  if ($("stream-legend").innerHTML !== legend) $("stream-legend").innerHTML = legend;
}

// Interaction redraws the stream alone, once a frame.
function redrawStream() {
  if (streamQueued || !S) return;
  streamQueued = true;
  requestAnimationFrame(() => { streamQueued = false; renderStream(); });
}
// Sets the window to [from, to] within what is kept; following the run if it reaches the end.
function streamWindow(from, to) {
  const { first, last } = streamRange(), span = Math.min(Math.max(to - from, 1e-3), last - first + 1e-3);
  from = Math.min(Math.max(from, first), last - span);
  to = from + span;
  Object.assign(streamView, { touched: true, from, to, follow: to >= last - span * 1e-3, span });
  redrawStream();
}
function streamTime(event) {
  const d = streamDrawn, px = event.offsetX;
  return d.from + (d.to - d.from) * (px - LEFT) / d.plot;
}
// What is under the pointer: a mark in its band, else the task at that time in that row.
function streamHit(event) {
  const d = streamDrawn;
  if (!d || event.offsetX < LEFT) return null;
  const row = Math.floor(event.offsetY / ROW), t = streamTime(event), slack = 3 * (d.to - d.from) / d.plot;
  if (row >= d.rows) return null;
  const inBand = event.offsetY - row * ROW >= ROW - 7, other = row === d.rows - 1 && S.marks.some(m => m[0] == null);
  if (inBand || other) {
    const m = S.marks.find(m => (m[0] == null ? d.rows - 1 : m[0]) === row && m[2] - slack <= t && t <= m[3] + slack);
    if (m) return { mark: m };
  }
  const task = S.stream.find(k => k[0] === row && k[2] - slack <= t && t <= k[3] + slack);
  return task ? { task } : null;
}
function duration(s) {
  return s < 1 ? (s * 1000).toFixed(1) + " ms" : s.toFixed(2) + " s";
}
function streamTip(event) {
  const tip = $("stream-tip"), hit = streamHit(event);
  if (!hit) { tip.hidden = true; return; }
  const thread = r => r == null ? "outside the run's tasks" : "thread " + (S.threads[r]?.label ?? r);
  if (hit.task) {
    const [th, st, a, b, reserved, number] = hit.task;
    tip.textContent = `${S.stages[st]?.name ?? "task"} (task ${number}) on ${thread(th)}: ${duration(b - a)} from ${a.toFixed(3)} s, `
      + `${bytes(reserved)} reserved`;
  } else {
    const [th, kind, a, b, size] = hit.mark;
    tip.textContent = `${kind === "spill" ? "spill: wrote" : "reload: read back"} ${bytes(size)} on ${thread(th)} in ${duration(b - a)}, `
      + `at ${a.toFixed(3)} s`;
  }
  tip.hidden = false;
  tip.style.left = Math.min(event.offsetX + 12, $("stream").clientWidth - tip.offsetWidth) + "px";
  tip.style.top = (event.offsetY + 16) + "px";
}

function initStream() {
  const canvas = $("stream");
  canvas.addEventListener("wheel", e => {
    if (!streamDrawn) return;
    e.preventDefault();
    const { from, to } = streamDrawn, at = Math.min(Math.max(streamTime(e), from), to);
    const k = Math.pow(1.2, Math.sign(e.deltaY) * Math.min(Math.abs(e.deltaY) / 100, 3));
    streamWindow(at - (at - from) * k, at + (to - at) * k);
  }, { passive: false });
  canvas.addEventListener("pointerdown", e => {
    if (!streamDrawn) return;
    streamDrag = { x: e.offsetX, from: streamDrawn.from, to: streamDrawn.to };
    $("stream-tip").hidden = true;
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", e => {
    if (!streamDrag) return streamTip(e);
    const dt = (e.offsetX - streamDrag.x) * (streamDrag.to - streamDrag.from) / streamDrawn.plot;
    if (dt) streamWindow(streamDrag.from - dt, streamDrag.to - dt);
  });
  canvas.addEventListener("pointerup", () => { streamDrag = null; });
  canvas.addEventListener("pointerleave", () => { $("stream-tip").hidden = true; });
  canvas.addEventListener("dblclick", () => {
    Object.assign(streamView, { follow: true, span: WINDOW, touched: false });
    redrawStream();
  });
  for (const button of document.querySelectorAll("#stream-controls button")) {
    button.addEventListener("click", () => {
      const span = Number(button.dataset.span || Infinity);
      Object.assign(streamView, { follow: true, span, touched: true });
      redrawStream();
    });
  }
}
