//! bichito: bug reports ("bichitos") in from widgets, servers and CI; live team streams out.
//!
//! # Architecture
//! - [`config`]: the command line and its env vars; [`commands`] runs each subcommand.
//! - [`server`]: `serve(listener, state, http, shutdown)` (and `serve_role`, `serve_streams`
//!   for the api and sse processes): every connection read within its timeouts, graceful on
//!   SIGTERM / Ctrl-C within the shutdown timeout.
//! - [`http`]: `app(state) -> Router`, one module per resource: `ingest` (API key: reports and
//!   widget info), `bugs` (JWT or session: the dashboard API), `session` (sign-in, sign-out,
//!   stream tickets), `cors`, `health` (`/healthz`, `/readyz`,
//!   `/metrics`).
//! - [`stream`]: the team SSE stream: the per-team hub of subscribers, the SSE format, the
//!   handler, and the lean path that writes streams without hyper.
//! - [`report`]: validation of a report body against seed 002's limits; [`edits`]: of
//!   dashboard edits, comments and list filters.
//! - [`attachments`]: image attachments: storage (S3-compatible or a local folder), the
//!   checks an upload must pass before it is stamped, and the sweeper.
//! - [`auth`]: who calls: dashboard JWTs (HS256 secret, RS/PS/ES/EdDSA public key, or a
//!   provider's JWKS), session cookies, API keys; [`login`]: sign-in with OpenID Connect;
//!   [`grants`]: sessions and single-use stream tickets as every streaming process sees them.
//! - [`bus`]: the event bus (in-process, or NATS JetStream); [`outbox`]: the relay from the
//!   outbox table to the bus.
//! - [`rate_limit`]: reports per minute per key, exact across processes: grants taken from a
//!   window in the database.
//! - [`state`]: shared state; [`settings`]: the honeycomb settings cache, keyed by the
//!   store's settings version.
//! - [`error`]: the one error type and its HTTP mapping; [`metrics`]: Prometheus.
//!
//! Storage, the Honeycomb spec and provisioning live in `bichito-core`, shared with the operator.

pub mod attachments;
pub mod auth;
pub mod bus;
pub mod commands;
pub mod config;
pub mod edits;
pub mod error;
pub mod grants;
pub mod http;
pub mod login;
pub mod metrics;
pub mod outbox;
pub mod rate_limit;
pub mod report;
pub mod sentry;
pub mod server;
pub mod settings;
pub mod state;
pub mod stream;
pub mod telemetry;
