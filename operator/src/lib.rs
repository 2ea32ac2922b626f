//! bichito-operator: reconciles `Honeycomb` resources (`bichito.dev/v1alpha1`) into the
//! database rows, API keys and quotas that the api pods enforce.
//!
//! # Architecture
//! - [`desired`]: pure functions from a Honeycomb (and what exists) to what should exist: the
//!   API-key Secret, whether an existing Secret is ours, the status and its conditions.
//! - [`reconcile`]: the reconciler. It reads the Secret, provisions the database through
//!   `bichito_core::provision`, writes the Secret and the status only when they differ, and
//!   publishes Kubernetes Events. A finalizer guards the database state alone: on deletion the
//!   keys are revoked and `deletionPolicy` decides the bichitos' fate; the Secret goes with its
//!   owner through garbage collection.
//! - [`controller`]: the kube-runtime Controller (generation and finalizer predicate on
//!   Honeycombs, owned Secrets), leader election on a Lease, graceful shutdown.
//! - [`metrics`]: Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` listener.
//! - [`config`]: command-line flags and their environment variables.

pub mod config;
pub mod controller;
pub mod desired;
pub mod metrics;
pub mod reconcile;

/// Everything a reconciliation can fail with; each variant is a metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("database: {0}")]
    Store(#[from] bichito_core::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the Honeycomb has no {0}")]
    IncompleteObject(&'static str),
    #[error("leader election: {0}")]
    LeaderElection(#[from] kube_lease_manager::LeaseManagerError),
    /// Another replica holds the Lease now; this one stops rather than reconcile beside it.
    #[error("lost the leader Lease; restarting as a standby")]
    LostLeadership,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The `reason` label of `bichito_operator_reconcile_failures_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) if status.code == 409 => "kube_conflict",
            Error::Kube(_) => "kube_api",
            Error::Store(_) => "database",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(err)
                | kube::runtime::finalizer::Error::CleanupFailed(err) => err.metric_label(),
                _ => "finalizer",
            },
            Error::IncompleteObject(_) => "incomplete_object",
            Error::LeaderElection(_) | Error::LostLeadership => "leader_election",
            Error::Io(_) => "io",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
