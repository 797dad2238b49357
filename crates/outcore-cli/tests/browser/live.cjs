// Drives the live dashboard in Chromium (playwright-core, found through NODE_PATH):
//   node live.cjs URL CHROMIUM [SCREENSHOT.png]
// Prints JSON: the task counts the page showed while the run went on, its final numbers and
// notice, the console errors it logged, and how long each of its renders took (ms).
// With URL "-", the browser starts first, says "ready" on stderr, then reads the URL from
// stdin (a bench starts the run only once the browser is up), and the page is left alone
// until it shows the end, as a user's would be (no reading of it every 150 ms).
const { chromium } = require("playwright-core");

(async () => {
  let [url, executablePath, screenshot] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(String(e)));
    const bench = url === "-";
    if (bench) {
      process.stderr.write("ready\n");
      url = await new Promise((resolve) => {
        let text = "";
        process.stdin.on("data", (d) => {
          text += d;
          if (text.includes("\n")) resolve(text.trim());
        });
      });
    }
    await page.goto(url);
    const read = () => page.evaluate(() => ({
      status: document.getElementById("status").dataset.value,
      done: Number(document.getElementById("tasks-done").dataset.value),
      process: Number(document.querySelector('#workers td[data-field="process"]')?.dataset.value ?? -1),
      rects: Number(document.getElementById("stream").dataset.rects ?? 0),
      samples: Number(document.getElementById("timeline").dataset.samples ?? 0),
      notice: document.getElementById("error").textContent,
      roofline: { bound: document.getElementById("roofline").dataset.value, gflops: Number(document.getElementById("roofline").dataset.gflops ?? 0),
        text: document.getElementById("roofline").textContent },
    }));
    const counts = [];
    const deadline = Date.now() + 240000;
    if (bench) {
      await page.waitForFunction(() => ["finished", "failed"].includes(document.getElementById("status").dataset.value),
        null, { polling: 1000, timeout: 3600000 });
    }
    let now = await read();
    while (now.status !== "finished" && now.status !== "failed" && Date.now() < deadline) {
      if (now.status === "running") counts.push(now.done);
      await page.waitForTimeout(150);
      now = await read();
    }
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    // The finished state arrives once more after the last change; let it land.
    await page.waitForTimeout(400);
    const final = await read();
    const render_ms = await page.evaluate(() => window.outcoreRenderTimes.slice());
    process.stdout.write(JSON.stringify({ running_counts: counts, final, console_errors: errors, render_ms }));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
