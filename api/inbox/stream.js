// The team stream by cookie, with its connection state shown. EventSource reconnects by
// itself (sending Last-Event-ID); when it gives up, or the server says the page missed
// events, the list is fetched again and the stream reopened.

export function follow(team, handlers) {
  let source;
  const open = () => {
    source = new EventSource(`/api/v1/teams/${encodeURIComponent(team)}/stream`);
    source.onopen = () => handlers.state("live");
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // Given up for good (a proxy's 502, say): open anew, then refetch what was missed;
        // events that arrive meanwhile wait for the list (see inbox.js).
        handlers.state("offline");
        setTimeout(() => {
          open();
          handlers.refetch();
        }, 3000);
      } else {
        handlers.state("reconnecting");
      }
    };
    const on = (type, handle) =>
      source.addEventListener(type, (event) => handle(JSON.parse(event.data)));
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
