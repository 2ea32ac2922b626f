// The dashboard API, same origin: the session cookie goes along by itself.

/** GET `path` as JSON; throws an Error carrying the API's message and status. */
export async function getJson(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.error || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

export const session = () => getJson("/api/v1/session");

export const teamBugs = (team, query = "") =>
  getJson(`/api/v1/teams/${encodeURIComponent(team)}/bugs?limit=100${query ? `&${query}` : ""}`);

export const bug = (id) => getJson(`/api/v1/bugs/${id}`);
