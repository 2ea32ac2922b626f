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
    const error = new Error(answer.error || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return answer;
}

export const session = () => getJson("/api/v1/session");

export const teamBugs = (team, query = "") =>
  getJson(`/api/v1/teams/${encodeURIComponent(team)}/bugs?limit=100${query ? `&${query}` : ""}`);

export const bug = (id) => getJson(`/api/v1/bugs/${id}`);

export const patchBug = (id, changes) => send("PATCH", `/api/v1/bugs/${id}`, changes);
