// Drives the live dashboard in Chromium (playwright-core, found through NODE_PATH):
//   node live.cjs URL CHROMIUM [SCREENSHOT.png]
// Prints JSON: the task counts the page showed while the run went on, its final numbers and
// notice, the console errors it logged, and how long each of its renders took (ms).
const { chromium } = require("playwright-core");

(async () => {
  const [url, executablePath, screenshot] = process.argv.slice(2);
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
    await page.goto(url);
    const read = () => page.evaluate(() => ({
      status: document.getElementById("status").dataset.value,
      done: Number(document.getElementById("tasks-done").dataset.value),
      process: Number(document.querySelector('#workers td[data-field="process"]')?.dataset.value ?? -1),
      rects: Number(document.getElementById("stream").dataset.rects ?? 0),
      samples: Number(document.getElementById("timeline").dataset.samples ?? 0),
      notice: document.getElementById("error").textContent,
    }));
    const counts = [];
    const deadline = Date.now() + 240000;
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
