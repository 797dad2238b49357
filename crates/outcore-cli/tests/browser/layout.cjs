// Lays the dashboard out in Chromium (playwright-core, found through NODE_PATH) at several
// window widths: node layout.cjs URL CHROMIUM
// Prints JSON, for each width: whether the workers table fits its card (nothing hidden to the
// right), and how far any card reaches past the window's right edge (px).
const { chromium } = require("playwright-core");

(async () => {
  const [url, executablePath] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
  const widths = {};
  try {
    for (const width of [375, 1280, 1600]) {
      const page = await browser.newPage({ viewport: { width, height: 900 } });
      await page.goto(url);
      await page.waitForFunction(() => document.querySelector('#workers td[data-field="written_bytes"]'));
      widths[width] = await page.evaluate(() => {
        const table = document.getElementById("workers"), card = table.closest("section");
        const past = Math.max(...[...document.querySelectorAll("section")].map(s => s.getBoundingClientRect().right))
          - document.documentElement.clientWidth;
        return { table_fits: table.scrollWidth <= card.clientWidth, table: table.scrollWidth, card: card.clientWidth,
          cards_past_window: Math.max(0, Math.round(past)) };
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
