// bichito's widget loader: one <script src=".../widget.js" data-key="sk_live_…" async>.
// It draws the floating button in a Shadow DOM and defines window.Bichito; the form (form.js)
// is loaded the first time it is needed. Nothing here may break the host page: every error
// is caught and logged once.
(() => {
  "use strict";
  if (window.Bichito && window.Bichito.version) return;
  const script = document.currentScript;
  const logged = new Set();
  const warn = (error) => {
    const text = String((error && error.message) || error);
    if (logged.has(text)) return;
    logged.add(text);
    try {
      console.warn(`bichito widget: ${text}`);
    } catch (_) {
      // A console that throws: nothing more to do.
    }
  };
  const safely = (run) => (...args) => {
    try {
      const result = run(...args);
      if (result && typeof result.catch === "function") result.catch(warn);
      return result;
    } catch (error) {
      warn(error);
      return undefined;
    }
  };
  if (!script || !script.src) {
    warn("load me with <script src=… data-key=…>: I cannot find my own tag");
    return;
  }
  const data = script.dataset;
  const config = {
    // Where widget.js came from: the API lives there too.
    origin: new URL(script.src).origin,
    key: data.key || "",
    appVersion: data.appVersion || null,
    environment: data.environment || null,
    position: data.position === "bottom-left" ? "bottom-left" : "bottom-right",
    color: /^#[0-9a-fA-F]{3,8}$/.test(data.color || "") ? data.color : "#0550ae",
    locale: data.locale || (navigator.language || "en").slice(0, 2),
    button: data.button !== "false",
    nonce: script.nonce || null,
  };
  const OUTBOX_DB = "bichito-widget";
  const listeners = {};
  const state = { user: {}, strings: null };
  let form = null;
  // The form's files, at the URL of this very version (the server writes it in: this file is
  // also served at /widget.js, which moves with each release).
  const FILES = new URL("/widget/__VERSION__/", script.src).href;
  const loadForm = () => {
    form = form || import(`${FILES}form.js`).then((module) => module.mount(api, config, state));
    return form;
  };
  let buttonHost = null;
  const emit = (name, detail) => {
    // The form sits where the button is: one or the other.
    if (buttonHost && (name === "open" || name === "close")) buttonHost.hidden = name === "open";
    for (const listener of listeners[name] || []) {
      try {
        listener(detail);
      } catch (error) {
        warn(error);
      }
    }
  };
  const api = {
    version: "1",
    /** Opens the form (loading it the first time). */
    open: safely((fields) => loadForm().then((mounted) => mounted.open(fields || {}))),
    close: safely(() => form && form.then((mounted) => mounted.close())),
    /** Sends a report without the form; resolves to the stored bichito. */
    report: (fields) => loadForm().then((mounted) => mounted.send(fields || {})),
    /** Who reports: `{email, id}` (both optional). */
    setUser: safely((user) => {
      state.user = { email: (user && user.email) || null, id: (user && user.id) || null };
    }),
    /** Replaces the form's strings (any of them). */
    setStrings: safely((strings) => {
      state.strings = strings && typeof strings === "object" ? strings : null;
    }),
    /** `sent` (the bichito), `error` (an Error), `open`, `close`. */
    on: safely((name, listener) => {
      (listeners[name] = listeners[name] || []).push(listener);
    }),
    emit,
    warn,
  };
  window.Bichito = api;

  const button = safely(() => {
    if (!config.button) return;
    const host = document.createElement("bichito-widget");
    buttonHost = host;
    host.setAttribute("data-bichito", "button");
    // delegatesFocus: focusing the element (as the form does on close) focuses the button.
    const root = host.attachShadow({ mode: "open", delegatesFocus: true });
    const sheet = new CSSStyleSheet();
    // Adopted, not a <style>: a host page's strict style-src does not apply to it. `!important`
    // on the host element: there, the page's own `!important` rules would win otherwise.
    sheet.replaceSync(`
      :host { all: initial; display: block !important; position: fixed !important; z-index: 2147483000 !important;
        bottom: 16px !important; ${config.position === "bottom-left" ? "left" : "right"}: 16px !important; }
      :host([hidden]) { display: none !important; }
      button { font: 600 14px/1 system-ui, sans-serif; color: #fff; background: ${config.color}; border: 0; border-radius: 999px;
        padding: 12px 16px; box-shadow: 0 2px 8px rgb(0 0 0 / 30%); cursor: pointer; min-height: 44px; }
      button:focus-visible { outline: 3px solid #fff; outline-offset: -6px; }`);
    root.adoptedStyleSheets = [sheet];
    const open = document.createElement("button");
    open.type = "button";
    open.textContent = config.locale === "es" ? "Reportar un problema" : "Report a bug";
    open.addEventListener("click", () => api.open());
    root.append(open);
    document.body.append(host);
  });
  if (document.body) button();
  else document.addEventListener("DOMContentLoaded", button, { once: true });
  // Reports saved while offline (by an earlier visit too) go out when the page is online:
  // the form is loaded for that only when some wait.
  const waiting = () =>
    new Promise((resolve) => {
      const request = indexedDB.open(OUTBOX_DB, 1);
      request.onupgradeneeded = () => request.result.createObjectStore("outbox", { keyPath: "idempotencyKey" });
      request.onerror = () => resolve(0);
      request.onsuccess = () => {
        const db = request.result;
        const counted = db.transaction("outbox").objectStore("outbox").count();
        counted.onsuccess = () => resolve(counted.result);
        counted.onerror = () => resolve(0);
        db.close();
      };
    });
  const flush = safely(() => {
    if (!window.indexedDB || !navigator.onLine) return undefined;
    return waiting().then((count) => count > 0 && loadForm().then((mounted) => mounted.flush()));
  });
  flush();
  window.addEventListener("online", flush);
})();
