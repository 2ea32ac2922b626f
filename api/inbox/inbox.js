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
  const refetch = async () => {
    waiting = waiting || [];
    try {
      rows.replaceAll((await api.teamBugs(team, filters.query(active))).items);
    } finally {
      const queued = waiting;
      waiting = null;
      for (const apply of queued) apply();
    }
  };
  // A change can take a report out of the filtered list, or into it.
  const changed = async (id, changes) => {
    rows.update(id, changes);
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
  filters.bind(active, (next) => {
    active = next;
    refetch();
  });
  waiting = [];
  follow(team, {
    state: setState,
    refetch,
    created: live((bug) => filters.matches(bug, active) && rows.add(bug)),
    updated: live((event) => changed(event.bug_id, event.changes)),
    deleted: live((event) => rows.remove(event.bug_id)),
    commented: (event) => detail.refreshComments(event.bug_id),
    expired: () => notice("Your session ended: sign in again."),
  });
  await refetch();
  keys.install();
}

start();
