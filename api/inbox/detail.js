// One bichito in full: every field of the canonical payload, its attachment and comments.
import { getJson, send } from "./api.js";

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
  const heading = document.createElement("h2");
  heading.id = "detail-title";
  heading.textContent = `#${bug.id} ${bug.title}`;
  const fields = document.createElement("dl");
  row(fields, "Status", bug.status);
  row(fields, "Severity", bug.severity);
  row(fields, "Assignee", bug.assignee);
  row(fields, "Labels", (bug.labels || []).join(", "));
  row(fields, "Environment", bug.environment);
  row(fields, "App version", bug.app_version);
  row(fields, "URL", bug.url);
  row(fields, "User agent", bug.user_agent);
  row(fields, "Reporter", [bug.reporter_email, bug.reporter_identifier].filter(Boolean).join(" · "));
  row(fields, "Reported", new Date(bug.created_at).toLocaleString());
  const description = document.createElement("p");
  description.className = "description";
  description.textContent = bug.description;
  const parts = [heading, description, fields];
  if (bug.stack_trace) parts.push(labelled("Stack trace", pre(bug.stack_trace)));
  if (bug.extra) parts.push(labelled("Extra", pre(JSON.stringify(bug.extra, null, 2))));
  if (bug.attachment && bug.attachment.download) {
    const image = document.createElement("img");
    image.src = bug.attachment.download.url;
    image.alt = `Attachment: ${bug.attachment.filename}`;
    parts.push(labelled("Attachment", image));
  }
  const list = document.createElement("ol");
  list.className = "comments";
  showComments(list, comments.items);
  parts.push(labelled("Comments", list), commentForm(bug.id, list));
  const close = document.createElement("button");
  close.type = "button";
  close.textContent = "Close";
  close.addEventListener("click", () => closePanel());
  parts.push(close);
  panel().replaceChildren(...parts);
  panel().hidden = false;
  panel().dataset.id = bug.id;
  heading.tabIndex = -1;
  heading.focus();
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
  if (panel().hidden || Number(panel().dataset.id) !== id) return;
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
  panel().hidden = true;
  delete panel().dataset.id;
  document.dispatchEvent(new CustomEvent("detail-closed"));
}
