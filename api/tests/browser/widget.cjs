// Drives bichito's widget on a host page of another origin in headless Chromium. Commands on
// stdin, one JSON per line; one JSON answer per line on stdout.
//
//   node widget.cjs SCREENSHOT_PATH
//
// {"goto": url} opens a host page (a fresh page in the same context) and waits for the
// widget's button; {"report": {title, description, severity, email}, "image": path,
// "paste": path, "redact": [x, y, w, h], "wait": "ok"|"error"|"queued"} opens the form, fills
// it, attaches (file input or paste), draws a box over the image (in its own pixels, by
// mouse), sends and answers the status line; {"offline": true|false} cuts or restores the
// network; {"close": true} closes the page; {"pixels": {url, points: [[x, y], …]}} answers the
// RGBA of an image's points, read on the page's origin; {"flaky": ["lose", "503", "429"]}
// makes the next report POSTs fail so; {"drop": path} drops an image on the form; {"api": "expression"} evaluates on
// the host page (window.Bichito…) and answers its value; {"badge": true} answers whether
// "Powered by" shows; {"shot": true} saves a screenshot of the open form; {"axe": true,
// "width": 360, "dark": true, "shot": path} checks the open form with axe-core (and saves a
// screenshot); {"quit": true}.
const { chromium } = require("playwright-core");
const readline = require("node:readline");
const { summarize } = require("./axe.cjs");
const fs = require("node:fs");

async function main() {
  const [shotPath] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.BICHITO_CHROMIUM || "/usr/bin/chromium",
    // Tab capture accepted without a prompt (getDisplayMedia with preferCurrentTab).
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--auto-accept-this-tab-capture"],
  });
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
  const answer = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
  const errors = [];
  const consoleWarnings = [];
  let page = null;
  const statusOf = () => page.locator("bichito-widget-form .status").textContent();
  try {
    for await (const line of readline.createInterface({ input: process.stdin })) {
      const command = JSON.parse(line);
      try {
        if (command.quit) break;
        if (command.goto) {
          page = await context.newPage();
          page.on("pageerror", (error) => errors.push(error.message));
          // What the widget logged (it logs each error once, as "bichito widget: …").
          page.on("console", (message) => message.text().startsWith("bichito widget") && consoleWarnings.push(message.text()));
          await page.goto(command.goto);
          // The floating button, or (with data-button="false") window.Bichito alone.
          if (command.ownButton) {
            const started = Date.now();
            while (!(await page.evaluate("Boolean(window.Bichito && window.Bichito.version)"))) {
              if (Date.now() - started > 10000) throw new Error("no window.Bichito");
              await new Promise((resolve) => setTimeout(resolve, 25));
            }
          } else {
            await page.locator("bichito-widget button").waitFor({ timeout: 10000 });
          }
          answer({ ok: true, floating: await page.locator("bichito-widget").count() });
        } else if (command.report) {
          const form = page.locator("bichito-widget-form");
          if (!(await form.isVisible())) await page.locator(command.opener || "bichito-widget button").click();
          await form.locator("input[name=title]").waitFor({ timeout: 10000 });
          const focused = await page.evaluate(() => {
            const host = document.querySelector("bichito-widget-form");
            return host.shadowRoot.activeElement && host.shadowRoot.activeElement.name;
          });
          const fields = command.report;
          await form.locator("input[name=title]").fill(fields.title || "");
          await form.locator("textarea[name=description]").fill(fields.description || "");
          if (fields.severity) await form.locator("select[name=severity]").selectOption(fields.severity);
          if (fields.email) await form.locator("input[name=email]").fill(fields.email);
          if (command.image) await form.locator("input[type=file]").setInputFiles(command.image);
          if (command.paste) {
            const bytes = fs.readFileSync(command.paste).toString("base64");
            await form.locator(".panel").evaluate((panel, data) => {
              const binary = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
              const transfer = new DataTransfer();
              transfer.items.add(new File([binary], "pasted.png", { type: "image/png" }));
              panel.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true }));
            }, bytes);
          }
          if (command.image || command.paste) await form.locator("canvas").waitFor({ timeout: 10000 });
          if (command.redact) {
            // By mouse, as a reporter would: image pixels to screen points.
            const canvas = form.locator("canvas");
            const box = await canvas.boundingBox();
            const size = await canvas.evaluate((element) => [element.width, element.height]);
            const [x, y, w, h] = command.redact;
            const sx = box.width / size[0];
            const sy = box.height / size[1];
            await page.mouse.move(box.x + x * sx, box.y + y * sy);
            await page.mouse.down();
            await page.mouse.move(box.x + (x + w / 2) * sx, box.y + (y + h / 2) * sy, { steps: 4 });
            await page.mouse.move(box.x + (x + w) * sx, box.y + (y + h) * sy, { steps: 4 });
            await page.mouse.up();
          }
          if (command.shot) {
            await page.screenshot({ path: shotPath });
          }
          const started = Date.now();
          await form.locator("button[type=submit]").click();
          const wanted = { ok: "status ok", error: "status error", queued: "status ok" }[command.wait || "ok"];
          await form.locator(`.status[class="${wanted}"]`).waitFor({ timeout: 20000 });
          answer({ ok: true, status: await statusOf(), focused, ms: Date.now() - started });
        } else if (command.flaky) {
          // The next POSTs of a report meet these, in order: "lose" (stored by bichito, but
          // the answer never reaches the page), "503" or "429" (answered here, with
          // Retry-After: 1 for the 429); then they pass.
          const faults = [...command.flaky];
          await context.route((url) => url.pathname === "/api/v1/bugs", async (route) => {
            const fault = route.request().method() === "POST" ? faults.shift() : undefined;
            if (fault === "lose") {
              await route.fetch();
              await route.abort("connectionreset");
            } else if (fault === "503") {
              await route.fulfill({ status: 503, contentType: "application/json", headers: { "access-control-allow-origin": "*" }, body: '{"error":"temporarily unavailable"}' });
            } else if (fault === "429") {
              await route.fulfill({ status: 429, contentType: "application/json", headers: { "retry-after": "1", "access-control-allow-origin": "*", "access-control-expose-headers": "retry-after" }, body: '{"error":"rate limited"}' });
            } else {
              await route.continue();
            }
          });
          answer({ ok: true });
        } else if (command.keyboard) {
          // By keyboard alone: focus the button, Enter opens the form; Tab 30 times, then
          // Shift+Tab 30 times, noting where the focus is; Escape closes.
          await page.locator("bichito-widget button").focus();
          await page.keyboard.press("Enter");
          const form = page.locator("bichito-widget-form");
          await form.locator("input[name=title]").waitFor({ timeout: 10000 });
          const where = () => page.evaluate(() => {
            const host = document.activeElement && document.activeElement.tagName.toLowerCase();
            const inner = document.activeElement && document.activeElement.shadowRoot && document.activeElement.shadowRoot.activeElement;
            return `${host}:${inner ? inner.name || inner.textContent.trim() || inner.tagName.toLowerCase() : ""}`;
          });
          const visited = [await where()];
          for (let i = 0; i < 30; i += 1) {
            await page.keyboard.press("Tab");
            visited.push(await where());
          }
          for (let i = 0; i < 30; i += 1) {
            await page.keyboard.press("Shift+Tab");
            visited.push(await where());
          }
          await page.keyboard.press("Escape");
          await form.waitFor({ state: "hidden", timeout: 10000 });
          answer({ ok: true, visited, after: await where() });
        } else if (command.pasteNoise) {
          // A large photo-like image (random pixels: PNG cannot shrink it) pasted into the form.
          const form = page.locator("bichito-widget-form");
          if (!(await form.isVisible())) await page.locator("bichito-widget button").click();
          const bytes = await form.locator(".panel").evaluate(async (panel, [width, height]) => {
            const canvas = new OffscreenCanvas(width, height);
            const context = canvas.getContext("2d");
            const image = context.createImageData(width, height);
            const noise = new Uint32Array(image.data.buffer);
            for (let i = 0; i < noise.length; i += 16384) crypto.getRandomValues(noise.subarray(i, i + 16384));
            for (let i = 3; i < image.data.length; i += 4) image.data[i] = 255;
            context.putImageData(image, 0, 0);
            const blob = await canvas.convertToBlob({ type: "image/png" });
            const transfer = new DataTransfer();
            transfer.items.add(new File([blob], "photo.png", { type: "image/png" }));
            panel.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true }));
            return blob.size;
          }, command.pasteNoise);
          await form.locator("canvas").waitFor({ timeout: 10000 });
          answer({ ok: true, bytes });
        } else if (command.capture) {
          // "Capture this tab": the canvas then shows the page itself.
          const form = page.locator("bichito-widget-form");
          if (!(await form.isVisible())) await page.locator("bichito-widget button").click();
          await form.locator("button", { hasText: "Capture this tab" }).click();
          await form.locator("canvas").waitFor({ timeout: 10000 });
          const size = await form.locator("canvas").evaluate((canvas) => [canvas.width, canvas.height]);
          answer({ ok: true, size });
        } else if (command.drop) {
          // An image dropped on the form's drop zone.
          const form = page.locator("bichito-widget-form");
          if (!(await form.isVisible())) await page.locator("bichito-widget button").click();
          const bytes = fs.readFileSync(command.drop).toString("base64");
          await form.locator(".drop").evaluate((zone, data) => {
            const binary = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([binary], "dropped.png", { type: "image/png" }));
            zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
          }, bytes);
          await form.locator("canvas").waitFor({ timeout: 10000 });
          answer({ ok: true });
        } else if (command.offline !== undefined) {
          await context.setOffline(command.offline);
          answer({ ok: true });
        } else if (command.close) {
          await page.close();
          page = null;
          answer({ ok: true });
        } else if (command.pixels) {
          const pixels = await page.evaluate(async ({ url, points }) => {
            const bitmap = await createImageBitmap(await (await fetch(url)).blob());
            const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
            const context = canvas.getContext("2d", { willReadFrequently: true });
            context.drawImage(bitmap, 0, 0);
            return { size: [bitmap.width, bitmap.height], points: points.map(([x, y]) => Array.from(context.getImageData(x, y, 1, 1).data)) };
          }, command.pixels);
          answer({ ok: true, ...pixels });
        } else if (command.axe) {
          // The form open, light or dark, at a width: axe-core's WCAG 2.1 A and AA rules on the
          // widget's own elements (inside their shadow roots).
          await page.setViewportSize({ width: command.width || 1000, height: 760 });
          await page.emulateMedia({ colorScheme: command.dark ? "dark" : "light" });
          const form = page.locator("bichito-widget-form");
          if (!(await form.isVisible())) await page.locator("bichito-widget button").click();
          await form.locator("input[name=title]").waitFor({ timeout: 10000 });
          await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
          const results = await page.evaluate(() => window.axe.run(
            { include: [["bichito-widget-form"]] },
            { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } },
          ));
          const overflow = await form.evaluate((host) => host.getBoundingClientRect().right - window.innerWidth);
          if (command.shot) await page.screenshot({ path: command.shot });
          await page.keyboard.press("Escape");
          await page.setViewportSize({ width: 1000, height: 760 });
          await page.emulateMedia({ colorScheme: "light" });
          answer({
            ok: true,
            overflow,
            violations: summarize(results),
          });
        } else if (command.api) {
          answer({ ok: true, value: await page.evaluate(command.api) });
        } else if (command.badge) {
          // The badge depends on a request: wait until the form has asked.
          const form = page.locator("bichito-widget-form");
          if (!(await form.isVisible())) await page.locator("bichito-widget button").click();
          await form.locator("input[name=title]").waitFor({ timeout: 10000 });
          await page.locator("bichito-widget-form[data-info=known]").waitFor({ state: "attached", timeout: 10000 });
          const shown = await form.locator(".powered").evaluate((element) => !element.hidden);
          await page.keyboard.press("Escape");
          answer({ ok: true, shown });
        }
      } catch (error) {
        answer({ ok: false, error: String(error.stack || error), status: page ? await statusOf().catch(() => null) : null });
      }
    }
    answer({ errors, warnings: consoleWarnings });
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
