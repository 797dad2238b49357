// Lays a dashboard page out in Chromium (playwright-core, found through NODE_PATH) at several
// window widths: node layout.cjs URL CHROMIUM
// Prints JSON, for each width: whether the workers table fits its card (nothing hidden to the
// right), how far any card reaches past the window's right edge (px), whether the memory
// chart's threshold labels or the memory bar's tick labels overlap, the colours of the legend's and the bar's managed part,
// each stage name's drawn width against its box's in the graph, and the loops drawn there.
const { chromium } = require("playwright-core");

(async () => {
  const [url, executablePath] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
  const widths = {};
  try {
    for (const width of [375, 700, 1280, 1600]) {
      const page = await browser.newPage({ viewport: { width, height: 900 } });
      await page.goto(url);
      await page.waitForFunction(() => document.querySelector('#workers td[data-field="written_bytes"]')
        && document.querySelector("#graph text.stage-name"));
      widths[width] = await page.evaluate(() => {
        const table = document.getElementById("workers"), card = table.closest("section");
        const past = Math.max(...[...document.querySelectorAll("section")].map(s => s.getBoundingClientRect().right))
          - document.documentElement.clientWidth;
        // The memory chart's threshold labels: no two boxes overlap.
        const boxes = [...document.querySelectorAll("#timeline text.threshold")].map(t => t.getBBox());
        const overlap = boxes.some((a, i) => boxes.some((b, j) => i < j && a.x < b.x + b.width && b.x < a.x + a.width
          && a.y < b.y + b.height && b.y < a.y + a.height));
        // The legend's swatch for managed memory has the bar's colour.
        const swatch = document.querySelector("#legend i").style.background;
        const segment = document.querySelector('#bars .seg[data-field="managed"]').style.background;
        // The memory bar's tick labels: no two boxes overlap either.
        const ticks = [...document.querySelectorAll("#bars .tick span")].filter(s => s.offsetParent)
          .map(s => s.getBoundingClientRect());
        const ticksOverlap = ticks.some((a, i) => ticks.some((b, j) => i < j && a.left < b.right && b.left < a.right
          && a.top < b.bottom && b.top < a.bottom));
        const names = [...document.querySelectorAll("#graph g")].map(g => ({
          name: g.querySelector("text.stage-name").textContent,
          drawn: g.querySelector("text.stage-name").getBBox().width,
          box: Number(g.querySelector("rect").getAttribute("width")),
        }));
        return { table_fits: table.scrollWidth <= card.clientWidth, table: table.scrollWidth, card: card.clientWidth,
          cards_past_window: Math.max(0, Math.round(past)), threshold_labels: boxes.length, labels_overlap: overlap,
          tick_labels: ticks.length, tick_labels_overlap: ticksOverlap,
          legend: swatch, bar: segment, names, loops: document.querySelectorAll("#graph path.loop").length };
      });
      await page.close();
    }
    process.stdout.write(JSON.stringify(widths));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
