// The list of bug reports: one table row per bichito, newest first, patched in place. Live
// reports are inserted at most four times a second, and the row under the keyboard cursor (or
// the first one in view, once scrolled) stays where it is: what arrives above the viewport is
// counted in the "N new" bar instead.

const listed = new Map(); // id → { bug, tr }
let pending = [];
let flushing = false; // a frame is asked for
let lastFlush = -Infinity;
const FLUSH_EVERY_MS = 250;
let unseen = new Set();

const body = () => document.querySelector("#bugs tbody");

function cell(className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  return td;
}

function render(bug) {
  const tr = document.createElement("tr");
  tr.dataset.id = bug.id;
  const pick = document.createElement("input");
  pick.type = "checkbox";
  pick.className = "pick";
  pick.setAttribute("aria-label", `Select #${bug.id}`);
  const pickCell = cell("pick");
  pickCell.append(pick);
  tr.append(pickCell, cell("id"), cell("title"), cell("severity"), cell("status"),
    cell("assignee wide"), cell("comments"), cell("reported wide"));
  tr.querySelector(".id").textContent = String(bug.id);
  const reported = tr.querySelector(".reported");
  reported.textContent = when(new Date(bug.created_at));
  reported.title = new Date(bug.created_at).toLocaleString();
  fill(tr, bug);
  return tr;
}

const today = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
const earlier = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

/** A report's time, short: the hour today, the day before. */
function when(date) {
  return (date.toDateString() === new Date().toDateString() ? today : earlier).format(date);
}

/** Writes the fields that change into a row's cells. */
function fill(tr, bug) {
  const title = tr.querySelector(".title");
  title.textContent = bug.title;
  for (const label of bug.labels || []) {
    const chip = document.createElement("span");
    chip.className = "label";
    chip.textContent = label;
    title.append(" ", chip);
  }
  const severity = tr.querySelector(".severity");
  severity.textContent = bug.severity;
  severity.dataset.value = bug.severity;
  tr.querySelector(".status").textContent = bug.status;
  tr.querySelector(".assignee").textContent = bug.assignee || "";
  tr.querySelector(".comments").textContent = bug.comment_count ? String(bug.comment_count) : "";
}

function showEmpty() {
  document.getElementById("empty").hidden = listed.size > 0;
}

/** Replaces the list with `bugs` (newest first). */
export function replaceAll(bugs) {
  listed.clear();
  keep = KEEP;
  pending = [];
  unseen = new Set();
  showNewBar();
  const fragment = document.createDocumentFragment();
  for (const bug of bugs) fragment.append(remember(bug));
  body().replaceChildren(fragment);
  // Counts the lists fetched (the stream may be live before the first one is there).
  const table = document.getElementById("bugs");
  table.dataset.loaded = String(Number(table.dataset.loaded || 0) + 1);
  changedSelection();
  showEmpty();
}

/** Adds an older page below the rows listed. */
export function append(bugs) {
  const fragment = document.createDocumentFragment();
  for (const bug of bugs) if (!listed.has(bug.id)) fragment.append(remember(bug));
  body().append(fragment);
  showEmpty();
}

function remember(bug) {
  const tr = render(bug);
  listed.set(bug.id, { bug: { ...bug }, tr });
  return tr;
}

/** A report not listed yet goes in its place (newest first) at the next frame (at most four
 * times a second); one already listed is not listed twice. */
export function add(bug) {
  if (listed.has(bug.id) || pending.some((queued) => queued.id === bug.id)) return;
  pending.push(bug);
  if (!flushing) {
    flushing = true;
    // A quiet list shows a report at the next frame; a flood is drawn a few times a second
    // (every frame that moves the rows paints them all).
    const wait = Math.max(0, lastFlush + FLUSH_EVERY_MS - performance.now());
    setTimeout(() => requestAnimationFrame(flush), wait);
  }
}

/** The row whose place on screen must not move: the selected one when it is in view, else
 * the first one in view once the page is scrolled; none at the top of the page. */
function anchor(atTop) {
  const chosen = document.querySelector('#bugs tbody tr[aria-selected="true"]');
  if (chosen) {
    const box = chosen.getBoundingClientRect();
    if (box.bottom > 0 && box.top < innerHeight) return chosen;
  }
  if (atTop) return null;
  for (const tr of body().children) {
    if (tr.getBoundingClientRect().bottom > 0) return tr;
  }
  return null;
}

/** Rows drawn at most while reports pour in at the top of the page: every row drawn costs
 * each frame that adds one (the table is laid out again). More only once asked for (Older). */
const KEEP = 200;
let keep = KEEP;

/** Keeps at least `count` rows drawn (the user paged down to them). */
export function keepAtLeast(count) {
  keep = Math.max(keep, count);
}

/** The oldest rows beyond `keep` go (a cursor brings them back); never the selected one. */
function trim() {
  let trimmed = false;
  while (listed.size > keep) {
    const last = body().lastElementChild;
    if (!last || last.getAttribute("aria-selected") === "true") break;
    last.remove();
    listed.delete(Number(last.dataset.id));
    trimmed = true;
  }
  if (trimmed) document.dispatchEvent(new CustomEvent("rows-trimmed"));
}

/** How many rows are listed. */
export function count() {
  return listed.size;
}

/** The smallest id listed: where older reports start. */
export function oldest() {
  const last = body().lastElementChild;
  return last ? Number(last.dataset.id) : null;
}

function flush() {
  flushing = false;
  lastFlush = performance.now();
  const batch = pending;
  pending = [];
  // Read while the layout is still clean (reading it later lays out the whole table again).
  const atTop = scrollY <= 0;
  const kept = anchor(atTop);
  const before = kept && kept.getBoundingClientRect().top;
  const rowsNow = Array.from(body().children);
  let added = 0;
  let newest = null;
  for (const bug of batch.sort((a, b) => b.id - a.id)) {
    if (listed.has(bug.id)) continue;
    added += 1;
    newest = newest || bug.title;
    const tr = remember(bug);
    tr.classList.add("new");
    const older = rowsNow.find((row) => Number(row.dataset.id) < bug.id);
    body().insertBefore(tr, older || null);
    unseen.add(tr);
  }
  // At the top, the bottom rows are far out of view: they can go.
  if (atTop) trim();
  if (kept) scrollBy(0, kept.getBoundingClientRect().top - before);
  showNewBar(atTop);
  showEmpty();
  announce(added, newest);
}

// Screen readers hear of new reports at most every few seconds, counted together, with the
// newest one's title (so that two announcements in a row differ).
const ANNOUNCE_EVERY_MS = 5000;
let toAnnounce = 0;
let newestTitle = "";
let lastAnnounced = -Infinity;
let announcing = null;

function announce(added, newest) {
  toAnnounce += added;
  if (newest) newestTitle = newest;
  if (toAnnounce === 0 || announcing) return;
  const wait = Math.max(0, lastAnnounced + ANNOUNCE_EVERY_MS - performance.now());
  announcing = setTimeout(() => {
    document.getElementById("announce").textContent = toAnnounce === 1
      ? `New report: ${newestTitle}`
      : `${toAnnounce} new reports, the newest: ${newestTitle}`;
    toAnnounce = 0;
    announcing = null;
    lastAnnounced = performance.now();
  }, wait);
}

/** Counts the new rows still above the viewport; the bar goes once they are all seen. At the
 * top of the page (`atTop`, read by the caller when known) every new row is in view. */
export function showNewBar(atTop = scrollY <= 0) {
  if (atTop) unseen.clear();
  for (const tr of unseen) {
    if (!tr.isConnected || tr.getBoundingClientRect().bottom > 0) unseen.delete(tr);
  }
  const bar = document.getElementById("new-bar");
  bar.hidden = unseen.size === 0;
  bar.textContent = `↑ ${unseen.size} new ${unseen.size === 1 ? "report" : "reports"}`;
}

export function has(id) {
  return listed.has(id) || pending.some((bug) => bug.id === id);
}

/** A copy of the report as the row shows it, or null. */
export function values(id) {
  const entry = listed.get(id);
  return entry ? { ...entry.bug } : null;
}

/** The listed reports, newest first, as shown. */
export function all() {
  return Array.from(listed.values(), (entry) => entry.bug).sort((a, b) => b.id - a.id);
}

/** Applies a `bug.updated` change set (or a comment count) to the row it names. */
export function update(id, changes) {
  // Not on screen yet (a background tab has no frames): the row is drawn with the change.
  const queued = pending.find((bug) => bug.id === id);
  if (queued) Object.assign(queued, changes);
  const entry = listed.get(id);
  if (!entry) return;
  Object.assign(entry.bug, changes);
  fill(entry.tr, entry.bug);
}

export function remove(id) {
  pending = pending.filter((bug) => bug.id !== id);
  const entry = listed.get(id);
  if (!entry) return;
  entry.tr.remove();
  listed.delete(id);
  unseen.delete(entry.tr);
  changedSelection();
  showEmpty();
}

/** The ids whose checkbox is ticked, newest first. */
export function picked() {
  return Array.from(listed.values())
    .filter((entry) => entry.tr.querySelector("input.pick").checked)
    .map((entry) => entry.bug.id);
}

/** Ticks or clears row `id`'s checkbox. */
export function pick(id, on) {
  const entry = listed.get(id);
  if (!entry) return;
  entry.tr.querySelector("input.pick").checked = on;
  changedSelection();
}

/** Ticks or clears every listed row. */
export function pickAll(on) {
  for (const { tr } of listed.values()) tr.querySelector("input.pick").checked = on;
  changedSelection();
}

/** Shows the bulk bar while some rows are ticked. */
export function changedSelection() {
  const count = picked().length;
  document.getElementById("bulk").hidden = count === 0;
  document.getElementById("bulk-count").textContent = `${count} selected`;
  const all = document.getElementById("pick-all");
  all.checked = count > 0 && count === listed.size;
  all.indeterminate = count > 0 && count < listed.size;
}
