// The dashboard API, same origin: the session cookie goes along by itself.

/** GET `path` as JSON; throws an Error carrying the API's message and status. */
export function getJson(path) {
  return send("GET", path);
}

/** `method` `path` with a JSON `body`, answered with JSON (or nothing); throws an Error
 * carrying the API's message and status. */
export async function send(method, path, body) {
  const init = { method, headers: { accept: "application/json" } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const fields = (answer.fields || []).map((field) => `${field.field} ${field.message}`);
    const error = new Error(fields.length ? fields.join("; ") : answer.error || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return answer;
}

export const session = () => getJson("/api/v1/session");

/** One page of a team's reports, newest first: `{items, next_cursor}`. */
export const teamBugs = (team, query = "", cursor = null) =>
  getJson(`/api/v1/teams/${encodeURIComponent(team)}/bugs?limit=${PAGE}`
    + (query ? `&${query}` : "") + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""));

export const PAGE = 100;

export const bug = (id) => getJson(`/api/v1/bugs/${id}`);

export const patchBug = (id, changes) => send("PATCH", `/api/v1/bugs/${id}`, changes);

export const deleteBug = (id) => send("DELETE", `/api/v1/bugs/${id}`);
