// Sentry's own browser SDK (npm @sentry/browser, its ES modules as published, through an
// import map) on a host page served here at http://127.0.0.1:PORT, sending user feedback with a
// screenshot to a bichito DSN with the feedback integration's own API, then through its widget.
//
//   node sentry.cjs DSN SCREENSHOT_PNG PORT
//
// Prints one JSON line: what sendFeedback resolved to, and what the widget said.
const { chromium } = require("playwright-core");
const http = require("node:http");
const fs = require("node:fs");
const path = require("node:path");

// …/node_modules/@sentry/browser/package.json → …/node_modules
const nodeModules = path.resolve(require.resolve("@sentry/browser/package.json"), "../../..");

/** A package's ES module for `specifier` (`@sentry/core`, `@sentry/core/browser`...), by its
 * package.json `exports` (import or default conditions), or `module`. */
function entry(specifier) {
  const parts = specifier.split("/");
  const name = specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
  const sub = specifier.slice(name.length) ? `.${specifier.slice(name.length)}` : ".";
  const manifest = JSON.parse(fs.readFileSync(path.join(nodeModules, name, "package.json"), "utf8"));
  const pick = (target) => {
    if (typeof target === "string") return target;
    if (!target || typeof target !== "object") return null;
    for (const condition of ["browser", "import", "module", "default"]) {
      const found = pick(target[condition]);
      if (found) return found;
    }
    return null;
  };
  const exported = manifest.exports && (typeof manifest.exports === "string" ? manifest.exports : manifest.exports[sub]);
  const file = pick(exported) || (sub === "." ? manifest.module || manifest.main : null);
  if (!file) throw new Error(`cannot resolve ${specifier}`);
  return `/node_modules/${name}/${file.replace(/^\.\//, "")}`;
}

const SPECIFIERS = ["@sentry/browser", "@sentry/core", "@sentry/core/browser", "@sentry/browser-utils",
  "@sentry/feedback", "@sentry/replay", "@sentry/replay-canvas", "@sentry/conventions/attributes",
  "@sentry/conventions/metrics", "@sentry/conventions/op", "web-vitals"];

async function main() {
  const [dsn, screenshot, port] = process.argv.slice(2);
  const imports = Object.fromEntries(SPECIFIERS.map((specifier) => [specifier, entry(specifier)]));
  const page = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<script type="importmap">${JSON.stringify({ imports })}</script>
<script type="module" src="/app.js"></script></head><body><h1>Cart</h1></body></html>`;
  const app = `import * as Sentry from "@sentry/browser";
Sentry.init({ dsn: ${JSON.stringify(dsn)}, release: "shop@2.0.0", environment: "production",
  integrations: [Sentry.feedbackIntegration({ autoInject: true, colorScheme: "light" })] });
window.Sentry = Sentry;`;
  const browser = await chromium.launch({
    executablePath: process.env.BICHITO_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  try {
    // A real loopback server: Chrome lets no page from elsewhere call bichito on loopback.
    const server = http.createServer((request, response) => {
      const url = new URL(request.url, "http://127.0.0.1");
      const send = (status, type, body) => {
        response.writeHead(status, { "content-type": type });
        response.end(body);
      };
      if (url.pathname === "/") return send(200, "text/html", page);
      if (url.pathname === "/app.js") return send(200, "text/javascript", app);
      if (url.pathname.startsWith("/node_modules/")) {
        const file = path.join(nodeModules, url.pathname.slice("/node_modules/".length));
        if (file.startsWith(nodeModules) && fs.existsSync(file)) return send(200, "text/javascript", fs.readFileSync(file));
      }
      return send(404, "text/plain", "");
    });
    await new Promise((resolve) => server.listen(Number(port), "127.0.0.1", resolve));
    const context = await browser.newContext();
    const tab = await context.newPage();
    const errors = [];
    tab.on("pageerror", (error) => errors.push(error.message));
    await tab.goto(`http://127.0.0.1:${port}/`);
    await tab.waitForFunction(() => Boolean(window.Sentry), null, { timeout: 15000 });
    // The feedback integration's own API, with a screenshot as its widget attaches one.
    const bytes = [...fs.readFileSync(screenshot)];
    const sent = await tab.evaluate(async (data) => {
      const id = await window.Sentry.sendFeedback(
        { message: "Coupon ignored\nThe total stays at 40.", email: "ana@example.com", name: "Ana" },
        { attachments: [{ filename: "screenshot.png", data: new Uint8Array(data), contentType: "image/png" }] },
      );
      return id;
    }, bytes);
    // Its widget, as a visitor uses it: the button, the form, submit.
    await tab.locator("#sentry-feedback").getByRole("button").first().click({ timeout: 15000 });
    const form = tab.locator("#sentry-feedback");
    await form.getByLabel(/name/i).fill("Bea");
    await form.getByLabel(/email/i).fill("bea@example.com");
    await form.getByLabel(/description/i).fill("Search finds nothing for café");
    await form.getByRole("button", { name: /send/i }).click();
    await form.getByText(/thank you/i).waitFor({ timeout: 15000 });
    process.stdout.write(`${JSON.stringify({ sent, widget: "sent", errors })}\n`);
    server.close();
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
