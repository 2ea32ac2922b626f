// Opens the inbox in headless Chromium, signed in by a one-time link, and follows what the
// test does to the team's reports from outside (create, update, delete) as it shows on the
// page. Commands come on stdin, one JSON per line; each answer is one JSON line on stdout.
//
//   node inbox.cjs SIGN_IN_LINK SCREENSHOT_PREFIX
//
// Commands: {"wait": "row", "id": 12, "status": "resolved"} waits for a row (with that
// status), {"wait": "gone", "id": 12} for it to go, {"keys": ["j", "Enter"]} presses keys and
// answers what the detail panel then shows, {"filter": {"status": "open"}} sets the filter
// form and answers the rows and the URL once the list is fetched again, {"list": true}
// answers the rows, {"shortcuts": true} opens the shortcut list with ?, closes it with Esc and
// answers what it listed and what / focused, {"axe": true, "dark": false, "width": 360} checks the inbox with a
// detail open in a second context (same session; CSP bypassed there only, for axe-core's
// script) and answers the WCAG 2.1 A/AA violations, {"comment": "text"} adds a comment in the open detail and answers its
// comments, {"wait": "comment", "text": "…"} waits for one to show there,
// {"press": "e", "id": 12, "status": "resolved"} selects row 12, presses a
// key and waits for the row's status, {"refusePatches": true} makes every PATCH fail from here
// on (503, as a database outage would), {"shot": "name", "dark": false} saves a
// screenshot, {"eval": "expression"} answers its value on the page, {"waitFor": "expression"}
// waits until it is true, {"press_keys": ["x"]} presses keys, {"type": "text"} types into the
// focused field and leaves it, {"click": "selector"} clicks, {"choose": "selector", "value":
// "v"} picks an option, {"quit": true} ends.
const { chromium } = require("playwright-core");
const readline = require("node:readline");
const { summarize } = require("./axe.cjs");

async function main() {
  const [link, shots] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.BICHITO_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const answer = (value) => process.stdout.write(JSON.stringify(value) + "\n");
  try {
    const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
    const outside = [];
    await context.route((url) => !["127.0.0.1", "localhost"].includes(url.hostname), (route) => {
      outside.push(route.request().url());
      route.abort();
    });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (error) => { errors.push(error.message); process.stderr.write(`page error: ${error.stack}\n`); });
    await page.goto(link);
    await page.waitForURL((url) => url.pathname === "/inbox", { timeout: 15000 });
    await page.waitForSelector("#connection[data-state=live]", { timeout: 10000 });
    await page.waitForSelector("#bugs[data-loaded]", { timeout: 10000 });
    const listed = await page.$$eval("#bugs tbody tr", (trs) => trs.map((tr) => Number(tr.dataset.id)));
    answer({ ready: true, listed, who: await page.textContent("#who") });
    const lines = readline.createInterface({ input: process.stdin });
    for await (const line of lines) {
      const command = JSON.parse(line);
      const started = Date.now();
      if (command.quit) break;
      if (command.wait === "row") {
        const selector = command.status
          ? `#bugs tr[data-id="${command.id}"] .status:text-is("${command.status}")`
          : `#bugs tr[data-id="${command.id}"]`;
        await page.waitForSelector(selector, { timeout: 10000 });
        const first = await page.$eval("#bugs tbody tr", (tr) => Number(tr.dataset.id));
        answer({ ok: true, ms: Date.now() - started, first });
      } else if (command.wait === "gone") {
        await page.waitForSelector(`#bugs tr[data-id="${command.id}"]`, { state: "detached", timeout: 10000 });
        answer({ ok: true, ms: Date.now() - started });
      } else if (command.keys) {
        for (const key of command.keys) await page.keyboard.press(key);
        if (command.keys.includes("Escape")) {
          await page.waitForSelector("#detail", { state: "hidden", timeout: 10000 });
          answer({ ok: true, detail: null });
        } else {
          await page.waitForSelector("#detail:not([hidden]) #detail-title", { timeout: 10000 });
          answer({
            ok: true,
            selected: await page.$eval('#bugs tr[aria-selected="true"]', (tr) => Number(tr.dataset.id)),
            title: await page.textContent("#detail-title"),
            focused: await page.evaluate(() => document.activeElement && document.activeElement.id),
            comments: await page.$$eval("#detail .comments li", (items) => items.map((li) => li.textContent)),
            text: await page.textContent("#detail"),
          });
        }
      } else if (command.filter) {
        const loads = await page.$eval("#bugs", (table) => table.dataset.loaded);
        await page.evaluate((values) => {
          const form = document.getElementById("filters");
          for (const [name, value] of Object.entries(values)) form.elements[name].value = value;
          form.dispatchEvent(new Event("change"));
        }, command.filter);
        await page.waitForFunction(
          (before) => document.getElementById("bugs").dataset.loaded !== before,
          loads,
          { timeout: 10000 },
        );
        const listed = await page.$$eval("#bugs tbody tr", (trs) => trs.map((tr) => Number(tr.dataset.id)));
        answer({ ok: true, listed, search: new URL(page.url()).search });
      } else if (command.press) {
        // Select the row, record every status its cell shows, press the key, and wait for
        // the status wanted (after the error, when one is expected).
        await page.evaluate((id) => {
          for (const other of document.querySelectorAll("#bugs tbody tr")) other.removeAttribute("aria-selected");
          const tr = document.querySelector(`#bugs tr[data-id="${id}"]`);
          tr.setAttribute("aria-selected", "true");
          const cell = tr.querySelector(".status");
          window.__statuses = [cell.textContent];
          // Consecutive repeats are one state (a live update may write the same status again).
          new MutationObserver(() => {
            if (window.__statuses[window.__statuses.length - 1] !== cell.textContent) {
              window.__statuses.push(cell.textContent);
            }
          })
            .observe(cell, { childList: true, characterData: true, subtree: true });
        }, command.id);
        await page.keyboard.press(command.press);
        if (command.expectError) await page.waitForSelector("#error:not([hidden])", { timeout: 10000 });
        await page.waitForFunction(
          ({ id, wanted }) => document.querySelector(`#bugs tr[data-id="${id}"] .status`).textContent === wanted,
          { id: command.id, wanted: command.status },
          { timeout: 10000 },
        );
        const statuses = await page.evaluate(() => window.__statuses);
        const error = await page.$eval("#error", (element) => (element.hidden ? null : element.textContent));
        answer({ ok: true, statuses, error });
      } else if (command.refusePatches) {
        await context.route("**/api/v1/bugs/*", (route) =>
          route.request().method() === "PATCH"
            ? route.fulfill({ status: 503, contentType: "application/json", body: '{"error":"temporarily unavailable"}' })
            : route.continue());
        answer({ ok: true });
      } else if (command.comment) {
        await page.fill("#detail textarea[name=body]", command.comment);
        await page.click("#detail .comment-form button[type=submit]");
        await page.waitForFunction(
          (text) => Array.from(document.querySelectorAll("#detail .comments li")).some((li) => li.textContent.endsWith(text)),
          command.comment,
          { timeout: 10000 },
        );
        const comments = await page.$$eval("#detail .comments li", (items) => items.map((li) => li.textContent));
        answer({ ok: true, comments });
      } else if (command.wait === "comment") {
        await page.waitForFunction(
          (text) => Array.from(document.querySelectorAll("#detail .comments li")).some((li) => li.textContent === text),
          command.text,
          { timeout: 10000 },
        );
        answer({ ok: true, ms: Date.now() - started });
      } else if (command.axe) {
        const checker = await browser.newContext({
          storageState: await context.storageState(),
          bypassCSP: true,
          colorScheme: command.dark ? "dark" : "light",
          viewport: { width: command.width || 1100, height: 700 },
        });
        try {
          const checked = await checker.newPage();
          await checked.goto(page.url());
          await checked.waitForSelector("#connection[data-state=live]", { timeout: 10000 });
          await checked.waitForSelector("#bugs[data-loaded]", { timeout: 10000 });
          await checked.keyboard.press("j");
          await checked.keyboard.press("Enter");
          await checked.waitForSelector("#detail:not([hidden]) #detail-title", { timeout: 10000 });
          await checked.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
          const results = await checked.evaluate(() =>
            window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }));
          const overflow = await checked.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
          answer({
            ok: true,
            overflow,
            violations: summarize(results),
          });
        } finally {
          await checker.close();
        }
      } else if (command.shortcuts) {
        await page.keyboard.press("?");
        await page.waitForSelector("#shortcuts[open]", { timeout: 10000 });
        const listed = await page.$$eval("#shortcuts dt", (items) => items.map((dt) => dt.textContent));
        await page.keyboard.press("Escape");
        await page.waitForSelector("#shortcuts:not([open])", { state: "attached", timeout: 10000 });
        await page.keyboard.press("/");
        const focused = await page.evaluate(() => document.activeElement && document.activeElement.name);
        await page.evaluate(() => document.activeElement.blur());
        answer({ ok: true, listed, focused });
      } else if (command.eval) {
        // A script expression on the page (awaited); its JSON value.
        const value = await page.evaluate(`(async () => (${command.eval}))()`);
        answer({ ok: true, value: value === undefined ? null : value });
      } else if (command.waitFor) {
        // Polled from here: the page's policy forbids the eval a waitForFunction string needs.
        while (!(await page.evaluate(command.waitFor))) {
          if (Date.now() - started > 10000) throw new Error(`waitFor timed out: ${command.waitFor}`);
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
        answer({ ok: true, ms: Date.now() - started });
      } else if (command.press_keys) {
        // Presses keys; with "focus", waits until the field of that name has the keyboard.
        for (const key of command.press_keys) await page.keyboard.press(key);
        const focused = () => page.evaluate(() => (document.activeElement && document.activeElement.name) || null);
        while (command.focus && (await focused()) !== command.focus) {
          if (Date.now() - started > 10000) break;
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
        answer({ ok: true, focused: await focused() });
      } else if (command.type) {
        // Types into the focused field, then leaves it with Tab (a text field's change is
        // committed when it is left).
        await page.keyboard.type(command.type);
        await page.keyboard.press("Tab");
        answer({ ok: true });
      } else if (command.click) {
        await page.click(command.click, { timeout: 10000 });
        answer({ ok: true });
      } else if (command.choose) {
        await page.selectOption(command.choose, command.value, { timeout: 10000 });
        answer({ ok: true });
      } else if (command.list) {
        const listed = await page.$$eval("#bugs tbody tr", (trs) => trs.map((tr) => Number(tr.dataset.id)));
        answer({ ok: true, listed });
      } else if (command.shot) {
        await page.emulateMedia({ colorScheme: command.dark ? "dark" : "light" });
        await page.screenshot({ path: `${shots}-${command.shot}.png`, fullPage: Boolean(command.full) });
        await page.emulateMedia({ colorScheme: "light" });
        answer({ ok: true });
      }
    }
    answer({ errors, outside });
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
