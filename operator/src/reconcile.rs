//! The reconciler: a Honeycomb in, its database rows, API-key Secret, status and Events out.
//!
//! Writes happen only when something differs (the Secret, the status), so a reconciliation of
//! an up-to-date Honeycomb costs one GET and one database transaction, and causes no watch
//! event that would trigger another.

use crate::desired::{self, FINALIZER, MANAGER, Notice, Outcome, SecretOwnership};
use crate::metrics::Metrics;
use crate::{Error, Result};
use bichito_core::clock::Clock;
use bichito_core::provision::provision;
use bichito_core::spec::Honeycomb;
use bichito_core::store::Store;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What every reconciliation shares.
pub struct Context {
    pub client: Client,
    pub store: Arc<dyn Store>,
    /// Who publishes the Events (see [`publish`]).
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Requeue after a successful reconciliation, to heal drift.
    pub resync_interval: Duration,
    /// Requeue while a foreign Secret holds the name: its deletion is not watched.
    pub conflict_retry_interval: Duration,
    /// The installation served: Honeycombs of others are never touched.
    pub installation: String,
    /// Most reconciliations at once.
    pub max_concurrent_reconciles: u16,
    /// Consecutive failures per Honeycomb (`namespace/name`), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        identity: &str,
    ) -> Self {
        let reporter = Reporter {
            controller: MANAGER.to_owned(),
            instance: Some(identity.to_owned()),
        };
        Self {
            reporter,
            client,
            store,
            metrics,
            clock,
            resync_interval: Duration::from_secs(600),
            conflict_retry_interval: Duration::from_secs(60),
            installation: bichito_core::spec::DEFAULT_INSTALLATION.to_owned(),
            max_concurrent_reconciles: 8,
            failures: Mutex::default(),
        }
    }

    fn record_failure(&self, key: String) -> u32 {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = failures.entry(key).or_default();
        *count = count.saturating_add(1);
        *count
    }

    fn forget_failures(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
    }
}

fn object_key(honeycomb: &Honeycomb) -> String {
    format!(
        "{}/{}",
        honeycomb.namespace().unwrap_or_default(),
        honeycomb.name_any()
    )
}

/// Reconciles one Honeycomb: the finalizer first, then apply or clean up.
pub async fn reconcile(honeycomb: Arc<Honeycomb>, ctx: Arc<Context>) -> Result<Action> {
    // The watch drops other installations' Honeycombs already; this keeps any other caller to it.
    if honeycomb.spec.installation() != ctx.installation {
        return Ok(Action::await_change());
    }
    let _timer = ctx.metrics.reconcile_started();
    let namespace = honeycomb
        .namespace()
        .ok_or(Error::IncompleteObject("namespace"))?;
    let key = object_key(&honeycomb);
    let honeycombs: Api<Honeycomb> = Api::namespaced(ctx.client.clone(), &namespace);
    let action = finalizer(&honeycombs, FINALIZER, honeycomb, |event| async {
        match event {
            Finalize::Apply(honeycomb) => apply(&honeycomb, &ctx, &namespace).await,
            Finalize::Cleanup(honeycomb) => cleanup(&honeycomb, &ctx, &namespace).await,
        }
    })
    .await
    .map_err(|err| Error::Finalizer(Box::new(err)))?;
    ctx.forget_failures(&key);
    Ok(action)
}

/// Counts the failure and retries with exponential backoff per Honeycomb.
pub fn error_policy(honeycomb: Arc<Honeycomb>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error.metric_label());
    let failures = ctx.record_failure(object_key(&honeycomb));
    let delay = backoff(failures);
    tracing::warn!(
        honeycomb = %object_key(&honeycomb),
        error = %error,
        failures,
        retry_in = ?delay,
        "reconciliation failed"
    );
    Action::requeue(delay)
}

/// 1 s after the first failure, doubling, at most 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(Duration::from_secs(300))
}

async fn apply(honeycomb: &Honeycomb, ctx: &Context, namespace: &str) -> Result<Action> {
    let name = honeycomb.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret_name = honeycomb.spec.api_key.secret_name.as_str();
    let existing = secrets.get_opt(secret_name).await?;
    let ownership = desired::secret_ownership(existing.as_ref(), honeycomb);
    if ownership == SecretOwnership::Foreign {
        tracing::warn!(honeycomb = %object_key(honeycomb), secret = secret_name, "the Secret is not ours; left untouched");
        finish(honeycomb, ctx, namespace, &Outcome::SecretConflict).await?;
        return Ok(Action::requeue(ctx.conflict_retry_interval));
    }
    let (current_key, renamed_from) = match ownership {
        SecretOwnership::Managed { api_key } => (api_key, None),
        _ => match left_by_rename(&secrets, honeycomb).await? {
            Some((previous, api_key)) => (api_key, Some(previous)),
            None => (None, None),
        },
    };

    let provisioned = match provision(
        &*ctx.store,
        namespace,
        &name,
        &honeycomb.spec,
        current_key.as_deref(),
        ctx.clock.now(),
    )
    .await
    {
        Ok(provisioned) => provisioned,
        Err(bichito_core::Error::InvalidSpec(problems)) => {
            finish(honeycomb, ctx, namespace, &Outcome::InvalidSpec(problems)).await?;
            return Ok(Action::await_change());
        }
        Err(err) => {
            let outcome = Outcome::DatabaseUnavailable(err.to_string());
            if let Err(status_err) = finish(honeycomb, ctx, namespace, &outcome).await {
                tracing::warn!(error = %status_err, "could not report the database failure in the status");
            }
            return Err(err.into());
        }
    };

    let secret = desired::api_key_secret(honeycomb, &provisioned.api_key)
        .ok_or(Error::IncompleteObject("uid"))?;
    match &existing {
        None => {
            // Create, never apply: should someone create the name meanwhile, this fails with a
            // conflict instead of taking their Secret over.
            let params = PostParams {
                field_manager: Some(MANAGER.to_owned()),
                ..PostParams::default()
            };
            secrets.create(&params, &secret).await?;
        }
        Some(existing) if desired::secret_differs(existing, &secret) => {
            let params = PatchParams::apply(MANAGER).force();
            secrets
                .patch(secret_name, &params, &Patch::Apply(&secret))
                .await?;
        }
        Some(_) => {}
    }
    if let Some(previous) = renamed_from {
        match secrets.delete(&previous, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(err) => return Err(err.into()),
        }
    }

    let outcome = Outcome::Provisioned {
        honeycomb_id: provisioned.honeycomb_id,
        key_prefix: provisioned.key_prefix,
        key_action: provisioned.key_action,
    };
    finish(honeycomb, ctx, namespace, &outcome).await?;
    Ok(Action::requeue(ctx.resync_interval))
}

/// After a rename of `spec.apiKey.secretName`, the Secret the status still names, when it is
/// ours, with the key it holds: that key moves to the new Secret unchanged.
async fn left_by_rename(
    secrets: &Api<Secret>,
    honeycomb: &Honeycomb,
) -> Result<Option<(String, Option<String>)>> {
    let Some(previous) = desired::previous_secret_name(honeycomb) else {
        return Ok(None);
    };
    let secret = secrets.get_opt(previous).await?;
    Ok(
        match desired::secret_ownership(secret.as_ref(), honeycomb) {
            SecretOwnership::Managed { api_key } => Some((previous.to_owned(), api_key)),
            _ => None,
        },
    )
}

/// Writes the status when it changed, then publishes the Event the outcome deserves.
async fn finish(
    honeycomb: &Honeycomb,
    ctx: &Context,
    namespace: &str,
    outcome: &Outcome,
) -> Result<()> {
    let status = desired::status(honeycomb, outcome, ctx.clock.now());
    if honeycomb.status.as_ref() != Some(&status) {
        let honeycombs: Api<Honeycomb> = Api::namespaced(ctx.client.clone(), namespace);
        honeycombs
            .patch_status(
                &honeycomb.name_any(),
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(desired::status_patch(&status)),
            )
            .await?;
    }
    if let Some(notice) = desired::notice(honeycomb, outcome) {
        publish(honeycomb, ctx, notice).await;
    }
    Ok(())
}

async fn cleanup(honeycomb: &Honeycomb, ctx: &Context, namespace: &str) -> Result<Action> {
    let policy = honeycomb.spec.deletion_policy;
    let retired = ctx
        .store
        .retire_honeycomb(namespace, &honeycomb.name_any(), policy, ctx.clock.now())
        .await?;
    if let Some(retired) = retired {
        let fate = match policy {
            bichito_core::spec::DeletionPolicy::Retain => {
                "its bichitos are kept (deletionPolicy Retain)".to_owned()
            }
            bichito_core::spec::DeletionPolicy::Delete => format!(
                "{} bichitos deleted (deletionPolicy Delete)",
                retired.deleted_bichitos
            ),
        };
        tracing::info!(honeycomb = %object_key(honeycomb), revoked_keys = retired.revoked_keys, deleted_bichitos = retired.deleted_bichitos, team_removed = retired.team_removed, "honeycomb retired");
        let notice = Notice {
            warning: false,
            reason: "Retired",
            note: format!("{} API keys revoked; {fate}", retired.revoked_keys),
        };
        publish(honeycomb, ctx, notice).await;
    }
    // The Secret goes with its owner, by garbage collection.
    Ok(Action::await_change())
}

/// Events are information, not state: a failure to publish one is logged, not retried.
async fn publish(honeycomb: &Honeycomb, ctx: &Context, notice: Notice) {
    let event = Event {
        type_: if notice.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: notice.reason.to_owned(),
        note: Some(notice.note),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    // A recorder per Event: kube's Recorder keeps every Event it published for six minutes, to
    // count repeats into a series, which after a restart over 50,000 Honeycombs was a third of
    // the operator's memory. Repeats are already left out (`desired::notice`).
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    if let Err(err) = recorder.publish(&event, &honeycomb.object_ref(&())).await {
        tracing::warn!(honeycomb = %object_key(honeycomb), error = %err, "could not publish an Event");
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_from_one_second_up_to_five_minutes() {
        let delays: Vec<u64> = [1, 2, 3, 4, 9, 10, 40, u32::MAX]
            .into_iter()
            .map(|failures| backoff(failures).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 256, 300, 300, 300]);
        assert_eq!(backoff(0), Duration::from_secs(1));
    }
}
