//! bichito-core: the model and the storage shared by the `bichito` binary and the operator.
//!
//! # Architecture
//! - [`spec`]: the `Honeycomb` spec as written in YAML (and, later, as a Kubernetes custom
//!   resource), with its validation.
//! - [`provision`]: applies a spec to the store: honeycomb row, quotas, blocklist, origins and
//!   API keys (created, kept or rotated with a grace period).
//! - [`keys`]: API key generation, hashing and constant-time verification.
//! - [`model`]: the canonical bichito payload and the runtime honeycomb configuration.
//! - [`attachment`]: image attachments: types, signatures, and the states of an upload.
//! - [`events`]: team events and their payloads, written to the outbox with each change.
//! - [`session`]: dashboard sessions and one-time sign-ins, named by secrets kept hashed.
//! - [`blocklist`]: the pure matcher for a honeycomb's blocklist rules.
//! - [`store`]: one [`store::Store`] trait implemented once in SQL for two sqlx backends,
//!   Postgres (production) and SQLite (the embedded default), chosen by the URL scheme; every
//!   operation bounded in time by the decorator `connect` puts around either.
//! - [`clock`]: time as a dependency, so tests can move it.
//! - [`shutdown`]: waiting for SIGTERM or Ctrl-C, for every long-running process.
//! - [`telemetry`]: logging and the metrics exposition, alike in every process.

pub mod attachment;
pub mod blocklist;
pub mod clock;
pub mod error;
pub mod events;
pub mod keys;
pub mod model;
pub mod provision;
pub mod session;
pub mod shutdown;
pub mod spec;
pub mod store;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{Error, Result};
