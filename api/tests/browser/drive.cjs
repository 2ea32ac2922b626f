// Opens a page in headless Chromium (Debian's, through playwright-core) and prints, as one
// JSON line, what the page left in `window.__result`, with its console output.
//
//   node drive.cjs URL [SCREENSHOT.png]
//
// BICHITO_CHROMIUM names the browser (default /usr/bin/chromium). playwright-core is found
// through NODE_PATH (scripts/test.sh installs it into the tools cache).
const { chromium } = require("playwright-core");

async function main() {
  const [url, screenshot] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.BICHITO_CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage();
    const consoleLines = [];
    page.on("console", (message) => consoleLines.push(message.text()));
    page.on("pageerror", (error) => consoleLines.push(`pageerror: ${error.message}`));
    await page.goto(url);
    const handle = await page.waitForFunction(() => window.__result, null, { timeout: 20000 });
    const result = await handle.jsonValue();
    if (screenshot) {
      await page.screenshot({ path: screenshot, fullPage: true });
    }
    process.stdout.write(JSON.stringify({ result, console: consoleLines }) + "\n");
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
