// The list of bug reports: one table row per bichito, newest first, patched in place.

const rows = new Map();

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function render(bug) {
  const tr = document.createElement("tr");
  tr.dataset.id = bug.id;
  tr.append(
    cell(String(bug.id)),
    cell(bug.title, "title"),
    cell(bug.severity, "severity"),
    cell(bug.status, "status"),
    cell(new Date(bug.created_at).toLocaleString()),
  );
  return tr;
}

function body() {
  return document.querySelector("#bugs tbody");
}

function showEmpty() {
  document.getElementById("empty").hidden = rows.size > 0;
}

/** Replaces the list with `bugs` (newest first). */
export function replaceAll(bugs) {
  rows.clear();
  const fragment = document.createDocumentFragment();
  for (const bug of bugs) {
    const tr = render(bug);
    rows.set(bug.id, tr);
    fragment.append(tr);
  }
  body().replaceChildren(fragment);
  // Counts the lists fetched (the stream may be live before the first one is there).
  const table = document.getElementById("bugs");
  table.dataset.loaded = String(Number(table.dataset.loaded || 0) + 1);
  showEmpty();
}

/** A report not listed yet, in its place (newest first); one already listed is not listed
 * twice. */
export function add(bug) {
  if (rows.has(bug.id)) return;
  const tr = render(bug);
  tr.classList.add("new");
  rows.set(bug.id, tr);
  const older = Array.from(body().children).find((row) => Number(row.dataset.id) < bug.id);
  body().insertBefore(tr, older || null);
  showEmpty();
}

export function has(id) {
  return rows.has(id);
}

/** The status and severity a row shows. */
export function values(id) {
  const tr = rows.get(id);
  if (!tr) return null;
  return {
    status: tr.querySelector(".status").textContent,
    severity: tr.querySelector(".severity").textContent,
  };
}

/** Applies a `bug.updated` change set to the row it names. */
export function update(id, changes) {
  const tr = rows.get(id);
  if (!tr) return;
  for (const field of ["severity", "status"]) {
    if (field in changes) tr.querySelector(`.${field}`).textContent = changes[field];
  }
}

export function remove(id) {
  const tr = rows.get(id);
  if (!tr) return;
  tr.remove();
  rows.delete(id);
  showEmpty();
}
