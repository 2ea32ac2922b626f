// Triage from the page: a change shows at once, and is taken back, with the API's message, if
// the API refuses it.
import { patchBug } from "./api.js";
import * as rows from "./rows.js";

function alert(text) {
  const element = document.getElementById("error");
  element.textContent = text;
  element.hidden = !text;
}

/** Applies `changes` (status, severity) to report `id`. */
export async function change(id, changes) {
  const before = rows.values(id);
  if (!before) return;
  rows.update(id, changes);
  alert("");
  try {
    await patchBug(id, changes);
  } catch (error) {
    const undo = {};
    for (const field of Object.keys(changes)) undo[field] = before[field];
    rows.update(id, undo);
    alert(`Not saved: ${error.message}`);
  }
}
