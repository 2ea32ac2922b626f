// The team stream by cookie, with its connection state shown. EventSource reconnects by
// itself (sending Last-Event-ID). When it gives up for good (a proxy's 502 while every stream
// server is down), the stream is opened anew from the last id seen, backing off; the server
// replays what was missed, or says `stream.reset` / `stream.gap` and the list is read again.

const RETRY_FIRST = 1000;
const RETRY_MOST = 8000;

/** Follows `team`'s stream; `handlers.refetch` is called once the stream is open the first
 * time (so no event falls between the list and the stream), and whenever events were lost. */
export function follow(team, handlers) {
  let source;
  let lastId = null;
  let retry = RETRY_FIRST;
  let listed = false;
  const open = () => {
    const from = lastId ? `?last_event_id=${encodeURIComponent(lastId)}` : "";
    source = new EventSource(`/api/v1/teams/${encodeURIComponent(team)}/stream${from}`);
    source.onopen = () => {
      handlers.state("live");
      retry = RETRY_FIRST;
      if (!listed) {
        listed = true;
        handlers.refetch();
      }
    };
    source.onerror = () => {
      if (source.readyState !== EventSource.CLOSED) {
        handlers.state("reconnecting");
        return;
      }
      handlers.state("offline");
      // Without an id to resume from, only a fresh list can say what was missed.
      if (!lastId) listed = false;
      setTimeout(open, retry);
      retry = Math.min(retry * 2, RETRY_MOST);
    };
    const on = (type, handle) =>
      source.addEventListener(type, (event) => {
        if (event.lastEventId) lastId = event.lastEventId;
        handle(JSON.parse(event.data));
      });
    on("hello", () => {});
    on("bug.created", handlers.created);
    on("bug.updated", handlers.updated);
    on("bug.deleted", handlers.deleted);
    on("bug.commented", handlers.commented);
    on("stream.gap", () => handlers.refetch());
    on("stream.reset", () => handlers.refetch());
    on("stream.expired", () => {
      source.close();
      handlers.state("offline");
      handlers.expired();
    });
  };
  open();
  return () => source.close();
}
