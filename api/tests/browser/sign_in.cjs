// Signs in to bichito through its OpenID Connect provider in headless Chromium, then uses the
// session like a dashboard would, and prints what it saw as one JSON line.
//
//   node sign_in.cjs BICHITO_URL OTHER_SITE_URL SAME_SITE_URL API_KEY BUG_ID [SCREENSHOT.png]
//
// 1. /login → the provider's login and consent pages → back to bichito, signed in.
// 2. On bichito's origin: GET /api/v1/session, and the team stream opened by cookie
//    (EventSource, no token in its URL); a report sent meanwhile arrives live.
// 3. Forged changes: pages on another site and on another origin of the same site submit a
//    form that comments on BUG_ID with the cookie.
// 4. Sign-out (DELETE /api/v1/session): the open stream gets `stream.expired` and closes.
// Every request URL the browser made, and the cookie's attributes, are reported for checks.
const { chromium } = require("playwright-core");

async function main() {
  const [bichito, otherSite, sameSite, apiKey, bugId, screenshot] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.BICHITO_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const result = { urls: [], console: [] };
  let page;
  try {
    const context = await browser.newContext();
    // Loopback only: the provider's pages ask for web fonts, which are not fetched.
    await context.route(
      (url) => !["127.0.0.1", "localhost"].includes(url.hostname),
      (route) => route.abort(),
    );
    context.on("request", (request) => result.urls.push(request.url()));
    page = await context.newPage();
    page.on("console", (message) => result.console.push(message.text()));

    // 1. Sign in.
    await page.goto(`${bichito}/login`);
    await page.fill("input[name=login]", "ana");
    await page.fill("input[name=password]", "any password");
    await page.click("button[type=submit]");
    // The consent page (first sign-in of this client).
    await page.waitForLoadState();
    if (!page.url().startsWith(bichito)) {
      await page.click("button[type=submit]");
    }
    await page.waitForURL((url) => url.href === `${bichito}/inbox`, { timeout: 15000 });
    result.landedOn = new URL(page.url()).pathname;
    result.signedInAt = result.urls.length;
    result.cookies = (await context.cookies(bichito)).map((cookie) => ({
      name: cookie.name, value: cookie.value, httpOnly: cookie.httpOnly,
      secure: cookie.secure, sameSite: cookie.sameSite, path: cookie.path,
    }));

    // 2. The session, and the stream by cookie.
    result.session = await page.evaluate(async () => {
      const response = await fetch("/api/v1/session");
      return { status: response.status, body: await response.json() };
    });
    await page.evaluate(() => {
      window.__events = [];
      const source = new EventSource("/api/v1/teams/payments/stream");
      window.__source = source;
      for (const type of ["hello", "bug.created", "stream.expired"]) {
        source.addEventListener(type, (event) => {
          window.__events.push({ type, data: JSON.parse(event.data), id: event.lastEventId, at: Date.now() });
          if (type === "stream.expired") source.close();
        });
      }
    });
    await page.waitForFunction(() => window.__events.some((e) => e.type === "hello"), null, { timeout: 10000 });
    const sent = await fetch(`${bichito}/api/v1/bugs`, {
      method: "POST",
      headers: { "x-api-key": apiKey, "content-type": "application/json" },
      body: JSON.stringify({ title: "Seen live in the browser", description: "over the cookie" }),
    });
    result.reportStatus = sent.status;
    await page.waitForFunction(() => window.__events.some((e) => e.type === "bug.created"), null, { timeout: 10000 });

    // 3. Forged comments from another site and from another origin of the same site.
    result.forged = {};
    for (const [name, origin] of [["otherSite", otherSite], ["sameSite", sameSite]]) {
      const forger = await context.newPage();
      await forger.goto(`${origin}/forge.html?target=${encodeURIComponent(`${bichito}/api/v1/bugs/${bugId}/comments`)}`);
      const [response] = await Promise.all([
        forger.waitForNavigation({ timeout: 10000 }),
        forger.click("button"),
      ]);
      result.forged[name] = response ? response.status() : null;
      await forger.close();
    }

    // 4. Sign out: the stream ends.
    const signedOutAt = Date.now();
    result.signOut = await page.evaluate(async () => (await fetch("/api/v1/session", { method: "DELETE" })).status);
    await page.waitForFunction(() => window.__events.some((e) => e.type === "stream.expired"), null, { timeout: 10000 });
    result.events = await page.evaluate(() => window.__events);
    result.expiredAfterMs = result.events.find((e) => e.type === "stream.expired").at - signedOutAt;
    result.afterSignOut = await page.evaluate(async () => (await fetch("/api/v1/session")).status);
    if (screenshot) {
      await page.screenshot({ path: screenshot, fullPage: true });
    }
  } catch (error) {
    // Where it stood, for whoever reads the failure.
    if (page) {
      const html = await page.content();
      const errorCode = (html.match(/ERR_[A-Z_]+/) || [""])[0];
      const text = await page.evaluate(() => document.body && document.body.innerText).catch(() => "");
      process.stderr.write(`the page at ${page.url()} ${errorCode}:\n${String(text).slice(0, 2000)}\nvisited: ${result.urls.join("\n  ")}\n`);
    }
    throw error;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
