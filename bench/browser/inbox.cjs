// The browser side of `bichito-bench inbox`: headless Chromium (Debian's) by playwright-core.
// Signs in once by the link, then answers one JSON line per command line on stdin:
//
//   {"firstLoad": true}  a fresh context (no cache) opens /inbox: bytes transferred (encoded
//                        bodies and headers of every finished request; the stream never
//                        finishes and is left out), bytes decoded, requests, and when the first
//                        page of rows was on screen (ms after navigation started)
//   {"reference": true}  the same for the static reference page
//   {"open": true}       opens the inbox and starts counting long tasks and frame gaps
//   {"waitRow": id}      waits for report id's row; the rows drawn, whether they run without a
//                        gap, the long tasks and the longest frame gap since open
//   {"quit": true}
//
//   node inbox.cjs SIGN_IN_LINK REFERENCE_URL
//
// With BICHITO_BENCH_TRACE=FILE, the live part is also recorded as a Chrome trace (open it in
// Chrome's Performance panel).
const { chromium } = require("playwright-core");
const readline = require("node:readline");

// Runs before the page's own scripts (and is not subject to its CSP).
const MARKS = `
window.__long = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__long.push(entry.duration);
}).observe({ type: "longtask", buffered: true });
// Shown: the frame after the list is in the document (or, for the reference, parsed).
const shown = () => requestAnimationFrame(() => setTimeout(() => { window.__shown = performance.now(); }, 0));
new MutationObserver(() => {
  const table = document.getElementById("bugs");
  if (table && table.dataset.loaded && window.__shown === undefined) {
    window.__shown = -1;
    shown();
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-loaded"] });
document.addEventListener("DOMContentLoaded", () => { if (document.title === "reference") shown(); });
window.__gap = 0;
let last = 0;
const tick = (time) => {
  if (last && window.__measureFrames) window.__gap = Math.max(window.__gap, time - last);
  last = time;
  requestAnimationFrame(tick);
};
requestAnimationFrame(tick);
`;

async function until(page, predicate, limit = 60000) {
  const started = Date.now();
  while (!(await page.evaluate(predicate))) {
    if (Date.now() - started > limit) throw new Error(`timed out: ${predicate}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Opens `url` in a fresh context; the bytes it transferred and when it was shown. */
async function firstLoad(browser, state, url, ready) {
  const context = await browser.newContext({ storageState: state, viewport: { width: 1280, height: 800 } });
  await context.addInitScript(MARKS);
  const page = await context.newPage();
  const sizes = [];
  page.on("requestfinished", (request) => {
    sizes.push((async () => {
      const size = await request.sizes();
      const response = await request.response();
      const body = response ? await response.body().catch(() => Buffer.alloc(0)) : Buffer.alloc(0);
      return { sent: size.responseBodySize + size.responseHeadersSize, decoded: body.length };
    })());
  });
  await page.goto(url);
  await until(page, "window.__shown > 0");
  if (ready) await until(page, ready);
  const renderMs = await page.evaluate("window.__shown");
  const finished = await Promise.all(sizes);
  await context.close();
  return {
    bytes: finished.reduce((sum, size) => sum + size.sent, 0),
    decodedBytes: finished.reduce((sum, size) => sum + size.decoded, 0),
    requests: finished.length,
    renderMs,
  };
}

async function main() {
  const [link, reference] = process.argv.slice(2);
  const inbox = new URL("/inbox", link).toString();
  const browser = await chromium.launch({
    executablePath: process.env.BICHITO_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const answer = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
  try {
    const signing = await browser.newContext();
    const first = await signing.newPage();
    await first.goto(link);
    await first.waitForURL((url) => url.pathname === "/inbox", { timeout: 15000 });
    const state = await signing.storageState();
    await signing.close();
    let live = null;
    let asked = 0;
    for await (const line of readline.createInterface({ input: process.stdin })) {
      const command = JSON.parse(line);
      asked = Date.now();
      try {
        if (command.quit) {
          answer({ ok: true });
          break;
        } else if (command.firstLoad) {
          // Ready once the stream is live too: its request started the list's fetch.
          answer(await firstLoad(browser, state, inbox, "document.getElementById('connection').dataset.state === 'live'"));
        } else if (command.reference) {
          answer(await firstLoad(browser, state, reference, null));
        } else if (command.open) {
          const context = await browser.newContext({ storageState: state, viewport: { width: 1280, height: 800 } });
          await context.addInitScript(MARKS);
          live = await context.newPage();
          await live.goto(inbox);
          await until(live, "window.__shown > 0 && document.getElementById('connection').dataset.state === 'live'");
          await live.evaluate("window.__long = []; window.__gap = 0; window.__measureFrames = true");
          // A Chrome trace of the live part, to see what a long task was made of.
          if (process.env.BICHITO_BENCH_TRACE) {
            await browser.startTracing(live, { path: process.env.BICHITO_BENCH_TRACE, categories: ["devtools.timeline", "disabled-by-default-devtools.timeline", "v8.execute"] });
          }
          answer({ ok: true });
        } else if (command.waitRow) {
          await until(live, `Boolean(document.querySelector('#bugs tr[data-id="${command.waitRow}"]'))`);
          if (process.env.BICHITO_BENCH_TRACE) await browser.stopTracing();
          answer({
            ok: true,
            lagMs: Date.now() - asked,
            rows: await live.evaluate("document.querySelectorAll('#bugs tbody tr').length"),
            // Newest first with no report missing in between.
            gapless: await live.evaluate(`Array.from(document.querySelectorAll('#bugs tbody tr'), (tr) => Number(tr.dataset.id)).every((id, at, ids) => at === 0 || ids[at - 1] === id + 1)`),
            longTasks: await live.evaluate("window.__long"),
            longestFrameGapMs: await live.evaluate("window.__gap"),
          });
        }
      } catch (error) {
        answer({ error: String(error.stack || error) });
      }
    }
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
