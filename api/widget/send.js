// Delivery: one Idempotency-Key per report, kept across retries, reloads and offline spells,
// so a report is stored once however often it is sent. Network failures and 5xx are retried
// with backoff, 429 after its Retry-After; offline reports wait in IndexedDB (the outbox) and
// go out when the page, or a later visit, is back online. Then the attachment dance.

const DB = "bichito-widget";
const RETRIES = 3;

/** A failure the reporter should read; `offline` when the network is gone. */
export class DeliveryError extends Error {
  constructor(message, { offline = false, status = 0 } = {}) {
    super(message);
    this.offline = offline;
    this.status = status;
  }
}

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `fetch` with the widget's retry rules; resolves to a successful response. */
async function request(url, init, strings) {
  for (let attempt = 0; ; attempt += 1) {
    let response = null;
    try {
      response = await fetch(url, { ...init, credentials: "omit", mode: "cors" });
    } catch (_) {
      // No answer: offline, an ad blocker, or an origin bichito does not allow (CORS).
      if (!navigator.onLine) throw new DeliveryError(strings.offline, { offline: true });
      if (attempt >= RETRIES) throw new DeliveryError(strings.unreachable);
      await sleep(500 * 2 ** attempt);
      continue;
    }
    if (response.ok) return response;
    const retryable = response.status === 429 || response.status >= 500;
    if (!retryable || attempt >= RETRIES) {
      const answer = await response.json().catch(() => ({}));
      const reason = answer.fields && answer.fields.length
        ? answer.fields.map((field) => `${field.field} ${field.message}`).join("; ")
        : answer.error || `HTTP ${response.status}`;
      throw new DeliveryError(`${strings.refused} ${reason}`, { status: response.status });
    }
    const after = Number(response.headers.get("retry-after"));
    await sleep(Number.isFinite(after) && after > 0 ? Math.min(after, 60) * 1000 : 500 * 2 ** attempt);
  }
}

const JSON_BODY = { "content-type": "application/json" };

/** Sends `item` ({idempotencyKey, report, image?}) with `config`'s key; resolves to
 * `{bichito, attachmentError}` once the report is stored (and its image, unless that failed:
 * the report stands without it). */
export async function deliver(config, item, strings) {
  const headers = { ...JSON_BODY, "x-api-key": config.key, "idempotency-key": item.idempotencyKey };
  const bichito = await (await request(`${config.origin}/api/v1/bugs`, {
    method: "POST",
    headers,
    body: JSON.stringify(item.report),
  }, strings)).json();
  let attachmentError = null;
  if (item.image) {
    try {
      await attach(config, bichito.id, item.image, strings);
    } catch (error) {
      attachmentError = error;
    }
  }
  return { bichito, attachmentError };
}

async function attach(config, id, image, strings) {
  const auth = { "x-api-key": config.key };
  let ticket;
  try {
    ticket = await (await request(`${config.origin}/api/v1/bugs/${id}/attachments`, {
      method: "POST",
      headers: { ...JSON_BODY, ...auth },
      body: JSON.stringify({ filename: image.name || "screenshot.png", content_type: image.type, content_length: image.size }),
    }, strings)).json();
  } catch (error) {
    // Already attached by an earlier try of this very report.
    if (error.status === 409) return;
    throw error;
  }
  await request(ticket.url, { method: ticket.method || "PUT", headers: ticket.headers || {}, body: image }, strings);
  await request(`${config.origin}${ticket.complete_url}`, { method: "POST", headers: auth }, strings);
}

function open() {
  return new Promise((resolve, reject) => {
    const opening = indexedDB.open(DB, 1);
    opening.onupgradeneeded = () => opening.result.createObjectStore("outbox", { keyPath: "idempotencyKey" });
    opening.onsuccess = () => resolve(opening.result);
    opening.onerror = () => reject(opening.error);
  });
}

function run(mode, act) {
  return open().then((db) => new Promise((resolve, reject) => {
    const transaction = db.transaction("outbox", mode);
    const result = act(transaction.objectStore("outbox"));
    transaction.oncomplete = () => {
      db.close();
      resolve(result && "result" in result ? result.result : undefined);
    };
    transaction.onerror = () => {
      db.close();
      reject(transaction.error);
    };
  }));
}

/** Keeps `item` (with its key and image) until it is delivered. */
export const save = (item) => run("readwrite", (store) => store.put({ ...item, origin: location.href }));

const forget = (key) => run("readwrite", (store) => store.delete(key));

const saved = () => run("readonly", (store) => store.getAll());

let flushing = null;

/** Sends every saved report, oldest first, each once; resolves to the bichitos stored. */
export function flush(config, strings) {
  flushing = flushing || (async () => {
    const stored = [];
    try {
      for (const item of (await saved()).sort((a, b) => a.savedAt - b.savedAt)) {
        try {
          stored.push((await deliver(config, item, strings)).bichito);
          await forget(item.idempotencyKey);
        } catch (error) {
          if (error.offline) break;
          // Refused for good (400, 403): kept would be retried forever.
          if (error.status && error.status < 500 && error.status !== 429) await forget(item.idempotencyKey);
        }
      }
    } finally {
      flushing = null;
    }
    return stored;
  })();
  return flushing;
}
