//! The team stream against nginx with nchan.
//!
//! bichito's side is `bichito sse` fed by a NATS JetStream server of its own; nats-server's
//! memory and CPU count with bichito's. nchan's side is one nginx process (`master_process
//! off`, one worker) with the nchan module: an EventSource subscriber location, a 64-message
//! buffer, a 30 s ping, and an HTTP publisher location. Clients are raw TCP connections (a
//! process may hold at most 20,000 files here), each an SSE request for one of `--teams` teams.
//!
//! - [`idle`]: idle connections held and resident memory per connection.
//! - [`latency`]: publish-to-receipt latency at rising publish rates, and the most deliveries
//!   per second before p99 passes 1 s or an event is lost.

pub mod idle;
pub mod latency;
mod sides;
mod subscriber;
