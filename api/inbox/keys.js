// Keyboard: j/k move the cursor (the selected row), Enter or o opens it, e resolves it (or
// every ticked row), x ticks it, a / l / Shift+D go to its assignee, labels or duplicate-of,
// # deletes it, / goes to the filters, ? lists the shortcuts, Escape closes or leaves a field.
// Mouse and touch reach the same actions through the rows, the detail and the bulk bar.
import * as detail from "./detail.js";
import * as rows from "./rows.js";
import * as triage from "./triage.js";

function rowsOf() {
  return Array.from(document.querySelectorAll("#bugs tbody tr"));
}

function selected() {
  return document.querySelector('#bugs tbody tr[aria-selected="true"]');
}

const selectedId = () => Number(selected().dataset.id);

/** Selects `tr` (and no other row), scrolling it into view. */
export function select(tr) {
  if (!tr) return;
  for (const other of rowsOf()) other.removeAttribute("aria-selected");
  tr.setAttribute("aria-selected", "true");
  tr.scrollIntoView({ block: "nearest" });
}

function move(step) {
  const all = rowsOf();
  if (all.length === 0) return;
  const at = all.indexOf(selected());
  const next = at < 0 ? 0 : Math.min(all.length - 1, Math.max(0, at + step));
  select(all[next]);
}

/** Opens the selected report (unless shown already), then puts the keyboard in `control`. */
async function edit(control) {
  const id = selectedId();
  if (detail.shown() !== id) await detail.open(id);
  detail.focusControl(control);
}

/** What each key does; a key whose action needs a row does nothing without one. */
const ACTIONS = {
  j: () => move(1),
  k: () => move(-1),
  Enter: { row: () => detail.open(selectedId()) },
  o: { row: () => detail.open(selectedId()) },
  e: () => {
    const ticked = rows.picked();
    if (ticked.length) triage.bulk(ticked, { status: "resolved" });
    else if (selected()) triage.change(selectedId(), { status: "resolved" });
  },
  x: { row: () => rows.pick(selectedId(), !rows.picked().includes(selectedId())) },
  a: { row: () => edit("assignee") },
  l: { row: () => edit("labels") },
  D: { row: () => edit("duplicate_of") },
  "#": { row: () => triage.remove(selectedId()) },
  "/": () => document.querySelector("#filters input, #filters select").focus(),
  "?": () => {
    const shortcuts = document.getElementById("shortcuts");
    if (!shortcuts.open) shortcuts.showModal();
  },
  Escape: () => detail.closePanel(),
};

export function install() {
  document.addEventListener("keydown", (event) => {
    const field = event.target.closest("input, textarea, select");
    if (field) {
      // Escape gives the keyboard back to the list.
      if (event.key === "Escape" && !document.querySelector("dialog[open]")) field.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    // An open dialog keeps its keys: Esc closes it.
    if (document.querySelector("dialog[open]")) return;
    const action = ACTIONS[event.key];
    if (!action) return;
    event.preventDefault();
    if (typeof action === "function") action();
    else if (selected()) action.row();
  });
  document.querySelector("#bugs tbody").addEventListener("click", (event) => {
    const tr = event.target.closest("tr");
    if (!tr) return;
    if (event.target.closest("input.pick")) {
      rows.changedSelection();
      return;
    }
    select(tr);
    detail.open(Number(tr.dataset.id));
  });
  document.getElementById("pick-all").addEventListener("change", (event) => {
    rows.pickAll(event.target.checked);
  });
  document.getElementById("bulk").addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const ticked = rows.picked();
    if (button.dataset.status) triage.bulk(ticked, { status: button.dataset.status });
    else for (const id of ticked) rows.pick(id, false);
  });
  document.getElementById("new-bar").addEventListener("click", () => {
    scrollTo({ top: 0, behavior: "smooth" });
  });
  addEventListener("scroll", () => rows.showNewBar(), { passive: true });
}
