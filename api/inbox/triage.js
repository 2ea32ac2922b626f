// Triage from the page: a change shows at once, and is taken back, with the API's message, if
// the API refuses it. Deletion asks first; bulk changes go report by report.
import { deleteBug, patchBug } from "./api.js";
import * as rows from "./rows.js";

/** Shows (or, given "", hides) the page's error line. */
export function alert(text) {
  const element = document.getElementById("error");
  element.textContent = text;
  element.hidden = !text;
}

/** Tells whoever shows report `id` (the detail panel) how it changed. */
function announce(id, changes) {
  document.dispatchEvent(new CustomEvent("bug-changed", { detail: { id, changes } }));
}

/** Applies `changes` (any of status, severity, assignee, labels, duplicate_of) to report
 * `id` (`shown`: how the detail panel shows it, for a report not listed); resolves to whether
 * the API took them. */
export async function change(id, changes, shown = null) {
  const before = rows.values(id) || (shown && { ...shown });
  if (before) rows.update(id, changes);
  announce(id, changes);
  alert("");
  try {
    await patchBug(id, changes);
    return true;
  } catch (error) {
    if (before) {
      const undo = {};
      for (const field of Object.keys(changes)) undo[field] = before[field] ?? null;
      rows.update(id, undo);
      announce(id, undo);
    }
    alert(`Not saved (#${id}): ${error.message}`);
    return false;
  }
}

/** Applies the same `changes` to every report in `ids`, a few at a time. */
export async function bulk(ids, changes) {
  const queue = [...ids];
  const worker = async () => {
    while (queue.length) {
      const id = queue.shift();
      if (await change(id, changes)) rows.pick(id, false);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

/** Shows `dialog` and resolves to the value of the button that closed it ("cancel" for Esc).
 * Read from the form's submit (dispatched as the button is clicked), not the `close` event,
 * which comes a task later, possibly after the dialog was shown again. */
function ask(dialog) {
  const form = dialog.querySelector("form");
  return new Promise((resolve) => {
    const finish = (value) => {
      form.removeEventListener("submit", submitted);
      dialog.removeEventListener("cancel", cancelled);
      resolve(value);
    };
    const submitted = (event) => finish(event.submitter ? event.submitter.value : "cancel");
    const cancelled = () => finish("cancel");
    form.addEventListener("submit", submitted);
    dialog.addEventListener("cancel", cancelled);
    dialog.showModal();
  });
}

/** Asks, then deletes report `id`; the row goes at once and comes back if the API refuses. */
export async function remove(id) {
  const bug = rows.values(id);
  const dialog = document.getElementById("confirm-delete");
  document.getElementById("confirm-text").textContent =
    `#${id}${bug ? ` “${bug.title}”` : ""} and its comments are deleted for everyone. This cannot be undone.`;
  if (dialog.open) return false;
  if ((await ask(dialog)) !== "delete") return false;
  rows.remove(id);
  document.dispatchEvent(new CustomEvent("bug-deleted", { detail: { id } }));
  alert("");
  try {
    await deleteBug(id);
    return true;
  } catch (error) {
    if (error.status === 404) return true;
    if (bug) rows.add(bug);
    alert(`Not deleted (#${id}): ${error.message}`);
    return false;
  }
}
