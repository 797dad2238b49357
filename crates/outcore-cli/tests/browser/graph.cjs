// Draws the dashboard's stage graph in Chromium (playwright-core, found through NODE_PATH):
// node graph.cjs URL CHROMIUM
// Prints JSON at 1280 and 700 px: each stage name's drawn width against its box's, and the
// loops drawn (dashed arcs for dependencies on later stages).
const { chromium } = require("playwright-core");

(async () => {
  const [url, executablePath] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
  const widths = {};
  try {
    for (const width of [700, 1280]) {
      const page = await browser.newPage({ viewport: { width, height: 900 } });
      await page.goto(url);
      await page.waitForFunction(() => document.querySelector("#graph text.stage-name"));
      widths[width] = await page.evaluate(() => ({
        names: [...document.querySelectorAll("#graph g")].map(g => ({
          name: g.querySelector("text.stage-name").textContent,
          drawn: g.querySelector("text.stage-name").getBBox().width,
          box: Number(g.querySelector("rect").getAttribute("width")),
        })),
        loops: document.querySelectorAll("#graph path.loop").length,
      }));
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
