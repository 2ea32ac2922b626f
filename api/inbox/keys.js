// Keyboard: j/k move the selection, Enter or o opens it, e resolves it, / goes to the
// filters, ? lists the shortcuts, Escape closes the detail.
import * as detail from "./detail.js";
import * as triage from "./triage.js";

function rowsOf() {
  return Array.from(document.querySelectorAll("#bugs tbody tr"));
}

function selected() {
  return document.querySelector('#bugs tbody tr[aria-selected="true"]');
}

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

export function install() {
  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest("input, textarea, select");
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    // An open dialog (the shortcut list) keeps its keys: Esc closes it.
    if (document.querySelector("dialog[open]")) return;
    if (event.key === "j") move(1);
    else if (event.key === "k") move(-1);
    else if ((event.key === "Enter" || event.key === "o") && selected()) {
      detail.open(Number(selected().dataset.id));
    } else if (event.key === "e" && selected()) {
      triage.change(Number(selected().dataset.id), { status: "resolved" });
    } else if (event.key === "/") {
      document.querySelector("#filters select, #filters input").focus();
    } else if (event.key === "?") {
      const shortcuts = document.getElementById("shortcuts");
      if (!shortcuts.open) shortcuts.showModal();
    } else if (event.key === "Escape") detail.closePanel();
    else return;
    event.preventDefault();
  });
  document.querySelector("#bugs tbody").addEventListener("click", (event) => {
    const tr = event.target.closest("tr");
    if (!tr) return;
    select(tr);
    detail.open(Number(tr.dataset.id));
  });
}
