// The inbox: who is signed in, the team's bug reports, live.
import * as api from "./api.js";
import * as rows from "./rows.js";
import { follow } from "./stream.js";
import * as keys from "./keys.js";
import * as filters from "./filters.js";
import * as detail from "./detail.js";

const connection = document.getElementById("connection");
const setState = (state) => {
  connection.dataset.state = state;
  connection.textContent = state;
};

function notice(text) {
  const element = document.getElementById("notice");
  element.textContent = text;
  element.hidden = false;
}

async function start() {
  let me;
  try {
    me = await api.session();
  } catch (error) {
    setState("offline");
    notice(error.status === 401
      ? "You are not signed in. Open the sign-in link `bichito dev` printed, or go to /login."
      : `The inbox cannot load: ${error.message}`);
    return;
  }
  document.getElementById("who").textContent = me.sub;
  const select = document.getElementById("team");
  const params = new URLSearchParams(location.search);
  const team = me.teams.includes(params.get("team")) ? params.get("team") : me.teams[0];
  for (const name of me.teams) select.append(new Option(name, name, false, name === team));
  select.addEventListener("change", () => {
    params.set("team", select.value);
    location.search = params.toString();
  });
  if (!team) {
    notice("Your session names no team.");
    return;
  }
  // While the list is fetched, live events wait, then apply on top of it: nothing is lost,
  // and a report already listed is not listed twice.
  let waiting = null;
  const live = (apply) => (event) => (waiting ? waiting.push(() => apply(event)) : apply(event));
  let active = filters.fromUrl();
  let unstreamed = null;
  // Older pages start below the oldest row listed: the API's cursor is a report id.
  const older = document.getElementById("older");
  const showOlder = (page) => {
    older.hidden = !page.next_cursor;
  };
  document.addEventListener("rows-trimmed", () => {
    older.hidden = false;
  });
  const refetch = async () => {
    clearTimeout(unstreamed);
    waiting = waiting || [];
    try {
      const page = await api.teamBugs(team, filters.query(active));
      rows.replaceAll(page.items);
      showOlder(page);
    } catch (error) {
      notice(`The list cannot load: ${error.message}`);
    } finally {
      const queued = waiting;
      waiting = null;
      for (const apply of queued) apply();
    }
  };
  older.addEventListener("click", async () => {
    older.disabled = true;
    try {
      const page = await api.teamBugs(team, filters.query(active), rows.oldest());
      rows.append(page.items);
      rows.keepAtLeast(rows.count());
      showOlder(page);
    } catch (error) {
      notice(`Older reports cannot load: ${error.message}`);
    } finally {
      older.disabled = false;
    }
  });
  // A change can take a report out of the filtered list, or into it.
  const changed = async (id, changes) => {
    rows.update(id, changes);
    detail.changed(id, changes);
    const touched = filters.FIELDS.some((field) => field in changes || (field === "label" && "labels" in changes));
    if (!touched || Object.keys(active).length === 0) return;
    try {
      const bug = await api.bug(id);
      if (!filters.matches(bug, active)) rows.remove(id);
      else if (!rows.has(id)) rows.add(bug);
    } catch (error) {
      if (error.status === 404) rows.remove(id);
    }
  };
  // A comment moves the report's count (read again, so an event seen twice counts once).
  const commented = async (id) => {
    detail.refreshComments(id);
    if (!rows.has(id)) return;
    try {
      rows.update(id, { comment_count: (await api.bug(id)).comment_count });
    } catch (error) {
      if (error.status === 404) rows.remove(id);
    }
  };
  const deleted = (id) => {
    rows.remove(id);
    if (detail.shown() === id) detail.closePanel();
  };
  document.addEventListener("bug-changed", (event) => detail.changed(event.detail.id, event.detail.changes));
  document.addEventListener("bug-deleted", (event) => deleted(event.detail.id));
  filters.bind(active, (next) => {
    active = next;
    refetch();
  });
  // The list is read once the stream is open (see stream.js), or after 3 s without it.
  waiting = [];
  unstreamed = setTimeout(refetch, 3000);
  follow(team, {
    state: setState,
    refetch,
    created: live((bug) => filters.matches(bug, active) && rows.add(bug)),
    updated: live((event) => changed(event.bug_id, event.changes)),
    deleted: live((event) => deleted(event.bug_id)),
    commented: live((event) => commented(event.bug_id)),
    expired: () => notice("Your session ended: sign in again."),
  });
  keys.install();
}

start();
