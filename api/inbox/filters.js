// The list's filters: the form, the URL (so a filtered view can be shared and reloaded) and
// the test a live event's report must pass to be shown.

export const FIELDS = ["q", "status", "severity", "assignee", "label", "project_id"];

/** The filters the URL names. */
export function fromUrl() {
  const params = new URLSearchParams(location.search);
  const filters = {};
  for (const field of FIELDS) {
    const value = params.get(field);
    if (value) filters[field] = value;
  }
  return filters;
}

/** Shows `filters` in the form, and calls `changed` with the new ones on every change (the
 * title search also while typing, once a pause shows the word is there). */
export function bind(filters, changed) {
  const form = document.getElementById("filters");
  for (const field of FIELDS) form.elements[field].value = filters[field] || "";
  let last = query(filters);
  const apply = () => {
    const next = {};
    for (const field of FIELDS) {
      const value = form.elements[field].value.trim();
      if (value) next[field] = value;
    }
    if (query(next) === last) return;
    last = query(next);
    const params = new URLSearchParams(location.search);
    for (const field of FIELDS) {
      if (next[field]) params.set(field, next[field]);
      else params.delete(field);
    }
    const search = params.toString();
    history.replaceState(null, "", `${location.pathname}${search ? `?${search}` : ""}`);
    changed(next);
  };
  let typing;
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("change", apply);
  form.elements.q.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(apply, 250);
  });
}

/** The API query of `filters`. */
export function query(filters) {
  return new URLSearchParams(filters).toString();
}

/** Whether a report (the canonical payload) passes `filters`. */
export function matches(bug, filters) {
  return FIELDS.every((field) => {
    const wanted = filters[field];
    if (!wanted) return true;
    if (field === "label") return (bug.labels || []).includes(wanted);
    if (field === "q") return bug.title.toLowerCase().includes(wanted.toLowerCase());
    if (field === "project_id") return String(bug.project_id) === wanted;
    return bug[field] === wanted;
  });
}
