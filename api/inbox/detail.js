// One bichito in full: every field of the canonical payload, its attachment and comments.
import { getJson } from "./api.js";

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
  for (const comment of comments.items) {
    const item = document.createElement("li");
    item.textContent = `${comment.author_id}: ${comment.body}`;
    list.append(item);
  }
  parts.push(labelled(`Comments (${comments.items.length})`, list));
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
