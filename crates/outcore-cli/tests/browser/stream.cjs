// Uses the task stream of a dashboard page in Chromium (playwright-core, found through
// NODE_PATH) as a user would: node stream.cjs URL CHROMIUM
// Prints JSON: the window, rectangles and spill/reload marks drawn at first; the tooltip over
// a task and over a mark; the window after zooming in with the wheel, after dragging, after a
// double click; and console errors.
const { chromium } = require("playwright-core");

(async () => {
  const [url, executablePath] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url);
    await page.waitForFunction(() => Number(document.getElementById("stream").dataset.rects) > 0);
    const canvas = await page.locator("#stream").boundingBox();
    const read = () => page.evaluate(() => {
      const c = document.getElementById("stream"), tip = document.getElementById("stream-tip");
      const [from, to] = c.dataset.window.split("-").map(Number);
      return { from, to, rects: Number(c.dataset.rects), marks: Number(c.dataset.marks),
        label: document.getElementById("stream-window").textContent, tip: tip.hidden ? null : tip.textContent };
    });
    // Where, in page pixels, the first task and the first mark of the state are drawn.
    const spots = await page.evaluate(() => {
      const d = streamDrawn, S0 = S;
      const task = S0.stream[0], mark = S0.marks[0];
      const spot = (row, a, b, y) => ({ x: (d.x(a) + d.x(b)) / 2, y: row * ROW + y });
      return {
        task: spot(task[0], task[2], task[3], 8),
        mark: mark ? spot(mark[0] ?? d.rows - 1, mark[2], mark[3], ROW - 3) : null,
      };
    });
    const result = { first: await read() };
    await page.mouse.move(canvas.x + spots.task.x, canvas.y + spots.task.y);
    await page.waitForTimeout(100);
    result.over_task = (await read()).tip;
    if (spots.mark) {
      await page.mouse.move(canvas.x + spots.mark.x, canvas.y + spots.mark.y);
      await page.waitForTimeout(100);
      result.over_mark = (await read()).tip;
    }
    // Zoom in about the middle of the plot, three notches.
    await page.mouse.move(canvas.x + canvas.width / 2, canvas.y + 10);
    for (let i = 0; i < 3; i++) await page.mouse.wheel(0, -100);
    await page.waitForTimeout(150);
    result.zoomed = await read();
    // Drag 200 px to the right: earlier times come into view.
    await page.mouse.down();
    await page.mouse.move(canvas.x + canvas.width / 2 + 200, canvas.y + 10, { steps: 5 });
    await page.mouse.up();
    await page.waitForTimeout(150);
    result.dragged = await read();
    await page.mouse.dblclick(canvas.x + canvas.width / 2, canvas.y + 10);
    await page.waitForTimeout(150);
    result.reset = await read();
    result.console_errors = errors;
    process.stdout.write(JSON.stringify(result));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
