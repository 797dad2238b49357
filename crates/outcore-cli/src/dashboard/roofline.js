// The roofline line: the run's rates against the machine's compute roof, measured when the
// dashboard started (faer's GEMM on the run's threads), and what bounds the run.
// Rates are taken over the last ROOF_WINDOW seconds while the command runs, over the whole
// command once it ended (and in a report).
const ROOF_WINDOW = 5;
// [elapsed, flops, bytes read, CPU seconds] of the states rendered, the oldest within the window.
const workSeen = [];

function rate(bytesPerSecond) {
  return bytesPerSecond >= 1e9 ? (bytesPerSecond / 1e9).toFixed(2) + " GB/s" : (bytesPerSecond / 1e6).toFixed(0) + " MB/s";
}

// Every rank's work and roofs summed.
function combineWork(all) {
  const sum = { flops: 0, read: 0, cpu: 0, roofs: { gemm: 0 } };
  for (const d of all) {
    if (!d.work) continue;
    sum.flops += d.work.flops; sum.read += d.work.read; sum.cpu += d.work.cpu; sum.roofs.gemm += d.work.roofs.gemm;
  }
  return sum;
}

function renderRoofline() {
  const el = $("roofline"), w = S.work, live = S.status === "running";
  if (!w || !w.roofs.gemm) return setText(el, "roof not measured", "");
  const now = [S.elapsed, w.flops, w.read, w.cpu];
  if (!workSeen.length || workSeen[workSeen.length - 1][0] < now[0]) workSeen.push(now);
  while (workSeen.length > 2 && workSeen[1][0] <= now[0] - ROOF_WINDOW) workSeen.shift();
  const from = live ? workSeen[0] : [0, 0, 0, 0], dt = now[0] - from[0];
  if (!(dt > 0) || !w.flops) return setText(el, "no work counted yet", "");
  const flops = (now[1] - from[1]) / dt, read = (now[2] - from[2]) / dt, cpu = (now[3] - from[3]) / dt;
  const threads = Math.max(1, S.workers.reduce((n, x) => n + x.threads, 0)), busy = cpu / threads;
  const bound = busy < 0.6 ? "disk" : flops >= 0.5 * w.roofs.gemm ? "compute" : "decode";
  const says = {
    disk: "disk-bound: threads wait (reads, spills or memory), busy " + Math.round(100 * busy) + "%",
    compute: "compute-bound",
    decode: "decode-bound: busy below GEMM (decoding, generating, memory-bound kernels)",
  };
  const gf = f => (f / 1e9).toFixed(1);
  const text = (live ? "last " + Math.min(ROOF_WINDOW, Math.round(dt)) + " s" : "whole run") + ": "
    + gf(flops) + " GFLOP/s, " + Math.round(100 * flops / w.roofs.gemm) + "% of GEMM's " + gf(w.roofs.gemm)
    + " · reads " + rate(read) + (read > 0 ? " (" + (flops / read).toFixed(1) + " flop/B)" : "")
    + " · CPU " + cpu.toFixed(2) + " of " + threads + " thread" + (threads > 1 ? "s" : "") + " → " + says[bound];
  setText(el, text, bound);
  el.dataset.gflops = gf(flops);
}
