// The report form, in its own Shadow DOM: title, description, severity, e-mail and a
// screenshot with redaction; the page's context filled in by itself; sent once, however often
// it is retried (see send.js). Loaded by widget.js the first time it is needed.
import { deliver, flush as flushOutbox, newKey, save } from "./send.js";
import { canCapture, capture, editor, fromFile } from "./shot.js";
import { strings as stringsFor } from "./strings.js";

const STYLE = `
:host { all: initial; display: block !important; position: fixed !important; z-index: 2147483001 !important;
  box-sizing: border-box; inset: auto 16px 16px auto; width: min(400px, calc(100vw - 32px));
  max-height: calc(100vh - 32px); overflow: auto; font: 14px/1.4 system-ui, sans-serif; color: #1b1f24; background: #fff;
  border: 1px solid #d0d7de; border-radius: 10px; box-shadow: 0 8px 30px rgb(0 0 0 / 30%); }
:host([data-position="bottom-left"]) { inset: auto auto 16px 16px; }
@media (max-width: 480px) { :host, :host([data-position="bottom-left"]) { inset: auto 0 0 0; width: 100vw; border-radius: 10px 10px 0 0; max-height: 100vh; } }
.panel { padding: 14px 16px 12px; }
header { display: flex; align-items: center; justify-content: space-between; gap: 8px; }
h2 { font-size: 16px; margin: 0; }
label, legend { display: block; margin: 10px 0 4px; font-weight: 600; }
input, textarea, select, button { font: inherit; font-weight: 400; color: inherit; box-sizing: border-box; }
legend { padding: 0; }
input:not([type=file]), textarea, select { display: block; width: 100%; padding: 7px 8px; border: 1px solid #8c959f; border-radius: 6px; background: #fff; }
textarea { min-height: 88px; resize: vertical; }
fieldset { border: 0; margin: 0; padding: 0; }
button { min-height: 36px; padding: 6px 12px; border: 1px solid #8c959f; border-radius: 6px; background: #f6f8fa; cursor: pointer; }
button.primary { width: 100%; margin-top: 12px; color: #fff; background: var(--accent); border-color: var(--accent); font-weight: 600; }
button.primary:disabled { font-weight: 600; }
button.close { min-height: 32px; padding: 2px 10px; }
button:disabled { opacity: 0.6; cursor: progress; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 1px; }
.row { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
.file { position: relative; display: inline-block; margin: 0; font-weight: 400; }
.file input { position: absolute; inset: 0; opacity: 0; cursor: pointer; }
.file span { display: inline-block; padding: 6px 12px; border: 1px solid #8c959f; border-radius: 6px; background: #f6f8fa; }
.file:focus-within span { outline: 3px solid var(--accent); outline-offset: 1px; }
.drop { margin: 8px 0 0; padding: 10px; border: 2px dashed #8c959f; border-radius: 6px; color: #57606a; text-align: center; }
.drop.over { border-color: var(--accent); color: var(--accent); }
canvas { display: block; width: 100%; margin-top: 8px; border: 1px solid #d0d7de; border-radius: 4px; cursor: crosshair; touch-action: none; }
.hint { margin: 4px 0; color: #57606a; font-size: 13px; }
.status { margin: 10px 0 0; min-height: 1.4em; }
.status.error { color: #a40e26; }
.status.ok { color: #116329; }
.powered { margin: 10px 0 0; text-align: center; font-size: 12px; color: #57606a; }
[hidden], :host([hidden]) { display: none !important; }
@media (prefers-color-scheme: dark) {
  :host { color: #e6edf3; background: #161b22; border-color: #30363d; }
  input:not([type=file]), textarea, select { background: #0d1117; border-color: #6e7681; }
  button, .file span { background: #21262d; border-color: #6e7681; }
  .drop, .hint, .powered { color: #9da7b3; border-color: #6e7681; }
  .status.error { color: #ff7b72; }
  .status.ok { color: #56d364; }
}
`;

/** An element with attributes and children. */
function el(name, attributes = {}, ...children) {
  const element = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === true) element.setAttribute(key, "");
    else if (value !== false && value !== null) element.setAttribute(key, value);
  }
  element.append(...children);
  return element;
}

/** The page's context, filled in by the widget itself. */
function context(config, user) {
  let timezone = null;
  try {
    timezone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (_) {
    // An old engine: no time zone, nothing else lost.
  }
  const report = {
    url: location.href.slice(0, 2000),
    user_agent: navigator.userAgent,
    app_version: config.appVersion,
    environment: config.environment,
    reporter_email: user.email,
    reporter_identifier: user.id,
    extra: {
      viewport: `${innerWidth}x${innerHeight}`,
      language: navigator.language,
      timezone,
      referrer: document.referrer || null,
      widget: "bichito-widget/1",
    },
  };
  for (const key of Object.keys(report)) if (report[key] === null || report[key] === undefined) delete report[key];
  return report;
}

export function mount(api, config, state) {
  const text = () => stringsFor(config.locale, state.strings);
  let strings = text();
  const host = el("bichito-widget-form", { "data-position": config.position, hidden: true });
  const root = host.attachShadow({ mode: "open" });
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(STYLE.replaceAll("var(--accent)", config.color));
  root.adoptedStyleSheets = [sheet];

  const title = el("input", { name: "title", required: true, maxlength: "500", autocomplete: "off" });
  const description = el("textarea", { name: "description", required: true, maxlength: "10000" });
  const severity = el("select", { name: "severity" });
  const email = el("input", { name: "email", type: "email", autocomplete: "email" });
  const file = el("input", { type: "file", accept: "image/png,image/jpeg,image/webp,image/*" });
  const captureButton = el("button", { type: "button", hidden: !canCapture() });
  const drop = el("p", { class: "drop", tabindex: "0" });
  const canvasSlot = el("div");
  const hint = el("p", { class: "hint" });
  const undo = el("button", { type: "button" });
  const remove = el("button", { type: "button" });
  const editorBox = el("div", { hidden: true }, canvasSlot, hint, el("div", { class: "row" }, undo, remove));
  const status = el("p", { class: "status", role: "status", "aria-live": "polite" });
  const send = el("button", { type: "submit", class: "primary" });
  const powered = el("p", { class: "powered", hidden: true });
  const heading = el("h2", { id: "bichito-title" });
  const close = el("button", { type: "button", class: "close" });
  const chooseLabel = el("span");
  const screenshotLegend = el("legend");
  const labels = {};
  const labelled = (key, control) => {
    labels[key] = el("span");
    return el("label", {}, labels[key], control);
  };
  const form = el("form", { novalidate: true },
    labelled("summary", title),
    labelled("description", description),
    labelled("severity", severity),
    labelled("email", email),
    el("fieldset", { class: "screenshot", hidden: true }, screenshotLegend,
      el("div", { class: "row" }, captureButton, el("label", { class: "file" }, chooseLabel, file)),
      drop, editorBox),
    status, send, powered);
  const panel = el("div", { class: "panel", role: "dialog", "aria-modal": "true", "aria-labelledby": "bichito-title" },
    el("header", {}, heading, close), form);
  root.append(panel);
  document.body.append(host);

  /** Writes the strings (again, after setStrings). */
  const label = () => {
    strings = text();
    heading.textContent = strings.title;
    close.textContent = strings.close;
    for (const key of Object.keys(labels)) labels[key].textContent = strings[key];
    title.placeholder = strings.summaryHint;
    description.placeholder = strings.descriptionHint;
    severity.replaceChildren(...["low", "medium", "high", "critical"].map((value) =>
      el("option", { value, selected: value === "medium" }, strings.severities[value])));
    screenshotLegend.textContent = strings.screenshot;
    captureButton.textContent = strings.capture;
    chooseLabel.textContent = strings.choose;
    drop.textContent = strings.dropHint;
    hint.textContent = strings.redactHint;
    undo.textContent = strings.undo;
    remove.textContent = strings.remove;
    send.textContent = strings.send;
    powered.textContent = strings.poweredBy;
  };
  label();

  // The badge shows exactly when the API says so (it also tells whether this origin may report).
  fetch(`${config.origin}/api/v1/widget/info`, { headers: { "x-api-key": config.key }, credentials: "omit" })
    .then((response) => (response.ok ? response.json() : null))
    .then((info) => {
      powered.hidden = !(info && info.powered_by_visible);
      // A server without attachment storage takes no screenshot: none is offered.
      form.querySelector("fieldset.screenshot").hidden = !(info && info.attachments);
    })
    .catch(() => {})
    .finally(() => host.setAttribute("data-info", "known"));

  // The screenshot.
  let shot = null;
  const show = async (bitmap) => {
    shot = editor(bitmap);
    canvasSlot.replaceChildren(shot.canvas);
    editorBox.hidden = false;
    shot.canvas.setAttribute("role", "img");
    shot.canvas.setAttribute("aria-label", strings.screenshot);
  };
  const problem = (message) => {
    status.textContent = message;
    status.className = "status error";
    status.setAttribute("role", "alert");
  };
  const take = async (source) => {
    try {
      await show(await fromFile(source));
    } catch (_) {
      problem(strings.notAnImage);
    }
  };
  file.addEventListener("change", () => file.files[0] && take(file.files[0]));
  captureButton.addEventListener("click", async () => {
    try {
      host.hidden = true;
      await show(await capture());
    } catch (error) {
      api.warn(error);
    } finally {
      host.hidden = false;
    }
  });
  panel.addEventListener("paste", (event) => {
    const item = Array.from(event.clipboardData ? event.clipboardData.items : []).find((entry) => entry.type.startsWith("image/"));
    if (!item) return;
    event.preventDefault();
    take(item.getAsFile());
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files[0]) take(event.dataTransfer.files[0]);
  });
  undo.addEventListener("click", () => shot && shot.undo());
  const clearShot = () => {
    shot = null;
    file.value = "";
    canvasSlot.replaceChildren();
    editorBox.hidden = true;
  };
  remove.addEventListener("click", clearShot);

  // Opening, closing, the focus kept inside while open.
  let returnFocus = null;
  const focusables = () => Array.from(panel.querySelectorAll("button:not([hidden]), input, textarea, select, [tabindex='0']"))
    .filter((element) => !element.disabled && !element.closest("[hidden]"));
  panel.addEventListener("keydown", (event) => {
    event.stopPropagation();
    if (event.key === "Escape") {
      event.preventDefault();
      closeForm();
    } else if (event.key === "Tab") {
      const all = focusables();
      const at = all.indexOf(root.activeElement);
      const next = event.shiftKey ? (at <= 0 ? all.length - 1 : at - 1) : (at === all.length - 1 ? 0 : at + 1);
      event.preventDefault();
      all[next].focus();
    }
  });
  close.addEventListener("click", () => closeForm());
  const openForm = (fields) => {
    label();
    if (fields.title) title.value = fields.title;
    if (fields.description) description.value = fields.description;
    returnFocus = document.activeElement;
    status.textContent = "";
    status.className = "status";
    host.hidden = false;
    title.focus();
    api.emit("open");
  };
  const closeForm = () => {
    if (host.hidden) return;
    host.hidden = true;
    // The floating button is back first, so that the focus can return to it.
    api.emit("close");
    if (returnFocus && returnFocus.focus) returnFocus.focus();
  };

  /** Delivers (or, offline, keeps) one report; what the form then says. */
  const submit = async (report, image) => {
    const item = { idempotencyKey: newKey(), report, image, savedAt: Date.now() };
    try {
      const { bichito, attachmentError } = await deliver(config, item, strings);
      api.emit("sent", bichito);
      return { bichito, note: attachmentError ? `${strings.attachmentFailed} ${attachmentError.message}` : null };
    } catch (error) {
      if (!error.offline) throw error;
      await save(item);
      return { queued: true };
    }
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!title.value.trim()) return title.focus();
    if (!description.value.trim()) return description.focus();
    if (email.value && !email.checkValidity()) return email.focus();
    send.disabled = true;
    status.className = "status";
    status.setAttribute("role", "status");
    status.textContent = strings.sending;
    try {
      const report = {
        ...context(config, state.user),
        title: title.value.trim(),
        description: description.value.trim(),
        severity: severity.value,
      };
      if (email.value.trim()) report.reporter_email = email.value.trim();
      let image = null;
      if (shot) {
        try {
          image = await shot.encode();
        } catch (_) {
          throw new Error(strings.imageTooLarge);
        }
      }
      const done = await submit(report, image);
      status.className = done.note ? "status error" : "status ok";
      status.textContent = done.queued ? strings.savedOffline : done.note || strings.sent;
      form.reset();
      label();
      clearShot();
    } catch (error) {
      problem(error.message);
      api.emit("error", error);
    } finally {
      send.disabled = false;
    }
  });

  return {
    open: openForm,
    close: closeForm,
    /** A report from the page's own code: the same context, the same delivery. */
    async send(fields) {
      const base = context(config, state.user);
      const report = { ...base, severity: "medium", ...fields, extra: { ...base.extra, ...(fields.extra || {}) } };
      const done = await submit(report, null);
      return done.bichito || { queued: true };
    },
    flush: () => flushOutbox(config, strings).then((stored) => {
      for (const bichito of stored) api.emit("sent", bichito);
      return stored;
    }),
  };
}
