// One bichito in full: every field of the canonical payload, its attachment and comments.
import { getJson, send } from "./api.js";
import * as rows from "./rows.js";
import * as triage from "./triage.js";

const STATUSES = ["open", "in_progress", "resolved", "closed"];
const SEVERITIES = ["low", "medium", "high", "critical"];
let current = null; // the report shown, as last read or changed

const panel = () => document.getElementById("detail");

function row(list, label, value, className) {
  if (value === null || value === undefined || value === "") return;
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  if (className) dd.className = className;
  if (value instanceof Node) dd.append(value);
  else dd.textContent = String(value);
  list.append(dt, dd);
}

function pre(text) {
  const element = document.createElement("pre");
  element.textContent = text;
  element.tabIndex = 0;
  return element;
}

/** Shows bichito `id` in the detail panel; resolves once it is there. */
export async function open(id) {
  const [bug, comments] = await Promise.all([
    getJson(`/api/v1/bugs/${id}`),
    getJson(`/api/v1/bugs/${id}/comments`),
  ]);
  current = bug;
  const heading = document.createElement("h2");
  heading.id = "detail-title";
  heading.textContent = `#${bug.id} ${bug.title}`;
  const fields = document.createElement("dl");
  row(fields, "Environment", bug.environment);
  row(fields, "App version", bug.app_version);
  row(fields, "URL", bug.url);
  row(fields, "User agent", bug.user_agent);
  row(fields, "Reporter", [bug.reporter_email, bug.reporter_identifier].filter(Boolean).join(" · "));
  row(fields, "Reported", new Date(bug.created_at).toLocaleString());
  const description = document.createElement("p");
  description.className = "description";
  description.textContent = bug.description;
  const parts = [heading, triageForm(bug), description];
  if (bug.attachment && bug.attachment.download) {
    const image = document.createElement("img");
    image.src = bug.attachment.download.url;
    image.alt = `Attachment: ${bug.attachment.filename}`;
    parts.push(image);
  }
  parts.push(fields);
  if (bug.stack_trace) parts.push(labelled("Stack trace", pre(bug.stack_trace)));
  if (bug.extra) parts.push(labelled("Extra", pre(JSON.stringify(bug.extra, null, 2))));
  const list = document.createElement("ol");
  list.className = "comments";
  showComments(list, comments.items);
  parts.push(labelled("Comments", list), commentForm(bug.id, list));
  const close = document.createElement("button");
  close.type = "button";
  close.textContent = "Close";
  close.className = "close";
  close.addEventListener("click", () => closePanel());
  const head = document.createElement("header");
  head.className = "detail-head";
  head.append(heading, close);
  parts.splice(parts.indexOf(heading), 1, head);
  panel().replaceChildren(...parts);
  panel().hidden = false;
  document.body.classList.add("detail-open");
  panel().dataset.id = bug.id;
  heading.tabIndex = -1;
  heading.focus();
}

/** The id of the report shown, or null. */
export function shown() {
  return panel().hidden ? null : current && current.id;
}

function control(form, label, input) {
  const wrapper = document.createElement("label");
  wrapper.append(label, input);
  form.append(wrapper);
  return input;
}

function select(name, options) {
  const element = document.createElement("select");
  element.name = name;
  for (const [value, text] of options) element.append(new Option(text, value));
  return element;
}

function text(name) {
  const element = document.createElement("input");
  element.name = name;
  element.autocomplete = "off";
  return element;
}

/** Status, severity, assignee, labels, duplicate-of and delete: each change is saved at once
 * (text fields once committed: Enter or leaving them). */
function triageForm(bug) {
  const form = document.createElement("form");
  form.className = "triage";
  form.setAttribute("aria-label", "Triage");
  const pairs = (values) => values.map((value) => [value, value]);
  control(form, "Status", select("status", pairs(STATUSES)));
  control(form, "Severity", select("severity", pairs(SEVERITIES)));
  control(form, "Assignee", text("assignee")).placeholder = "nobody";
  control(form, "Labels", text("labels")).placeholder = "comma, separated";
  control(form, "Duplicate of", select("duplicate_of", []));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "danger";
  remove.name = "delete";
  remove.textContent = "Delete…";
  remove.addEventListener("click", () => triage.remove(bug.id));
  form.append(remove);
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("change", (event) => {
    const field = event.target.name;
    const value = event.target.value.trim();
    const changes = {
      status: () => ({ status: value }),
      severity: () => ({ severity: value }),
      assignee: () => ({ assignee: value || null }),
      labels: () => ({ labels: value.split(",").map((label) => label.trim()).filter(Boolean) }),
      duplicate_of: () => ({ duplicate_of: value ? Number(value) : null }),
    }[field];
    if (changes) triage.change(bug.id, changes(), current);
  });
  show(form, bug);
  return form;
}

/** Writes `bug`'s values into the triage controls, except a text field being edited. */
function show(form, bug) {
  const values = {
    status: bug.status,
    severity: bug.severity,
    assignee: bug.assignee || "",
    labels: (bug.labels || []).join(", "),
  };
  const duplicate = form.elements.duplicate_of;
  const others = rows.all().filter((other) => other.id !== bug.id);
  if (bug.duplicate_of && !others.some((other) => other.id === bug.duplicate_of)) {
    others.push({ id: bug.duplicate_of, title: "" });
  }
  duplicate.replaceChildren(new Option("not a duplicate", ""),
    ...others.map((other) => new Option(`#${other.id} ${other.title}`.trim(), String(other.id))));
  duplicate.value = bug.duplicate_of ? String(bug.duplicate_of) : "";
  // A text field being typed into keeps what is typed; a select always shows the stored value
  // (a refused change goes back).
  for (const [name, value] of Object.entries(values)) {
    const element = form.elements[name];
    if (!(element === document.activeElement && element.tagName === "INPUT")) element.value = value;
  }
}

/** Applies a change set (live or made here) to the report shown, if it is `id`. */
export function changed(id, changes) {
  if (shown() !== id) return;
  Object.assign(current, changes);
  show(panel().querySelector("form.triage"), current);
}

/** Puts the keyboard in one triage control (`assignee`, `labels`, `duplicate_of`). */
export function focusControl(name) {
  const element = panel().querySelector(`form.triage [name="${name}"]`);
  if (!element) return;
  element.focus();
  if (element.select) element.select();
}

function showComments(list, comments) {
  list.replaceChildren(
    ...comments.map((comment) => {
      const item = document.createElement("li");
      item.textContent = `${comment.author_id}: ${comment.body}`;
      return item;
    }),
  );
}

/** The form that adds a comment; the list is read again once it is stored. */
function commentForm(id, list) {
  const form = document.createElement("form");
  form.className = "comment-form";
  const label = document.createElement("label");
  label.textContent = "Add a comment";
  const text = document.createElement("textarea");
  text.name = "body";
  text.rows = 3;
  text.required = true;
  label.append(text);
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = "Comment";
  const problem = document.createElement("p");
  problem.className = "error";
  problem.setAttribute("role", "alert");
  problem.hidden = true;
  form.append(label, button, problem);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await send("POST", `/api/v1/bugs/${id}/comments`, { body: text.value });
      text.value = "";
      problem.hidden = true;
      await refreshComments(id);
    } catch (error) {
      problem.textContent = `Not saved: ${error.message}`;
      problem.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/** Reads the comments again when the detail shows report `id` (a `bug.commented` event). */
export async function refreshComments(id) {
  if (shown() !== id) return;
  const list = panel().querySelector(".comments");
  showComments(list, (await getJson(`/api/v1/bugs/${id}/comments`)).items);
}

function labelled(label, content) {
  const section = document.createElement("section");
  const heading = document.createElement("h3");
  heading.textContent = label;
  section.append(heading, content);
  return section;
}

export function closePanel() {
  if (panel().hidden) return;
  panel().hidden = true;
  document.body.classList.remove("detail-open");
  current = null;
  delete panel().dataset.id;
  document.dispatchEvent(new CustomEvent("detail-closed"));
}
