//! The running operator: the database, the probe listener, leader election on a Lease, and the
//! kube-runtime Controller over Honeycombs and the Secrets they own.

use crate::config::RunArgs;
use crate::desired::{MANAGED_BY_LABEL, MANAGER};
use crate::metrics::{self, Metrics};
use crate::reconcile::{self, Context};
use crate::{Error, Result};
use bichito_core::clock::SystemClock;
use bichito_core::spec::Honeycomb;
use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// How often a standby looks whether the Lease was released.
const LEASE_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs until SIGTERM or Ctrl-C (exit 0), or until leadership is lost (an error, so that the
/// pod restarts as a standby instead of reconciling beside the new leader).
pub async fn run(args: RunArgs) -> Result<()> {
    let settings = bichito_core::store::PoolSettings {
        max_connections: args.database_max_connections,
        timeout: args.database_timeout,
        ..bichito_core::store::PoolSettings::default()
    };
    let store = bichito_core::store::connect(&args.database_url, settings).await?;
    store.migrate().await?;
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::new());
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));

    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %args.listen, "serving /metrics, /healthz and /readyz");
    let probes = metrics::router(metrics.clone(), store.clone());
    let probes_shutdown = shutdown.clone();
    let probes_task = tokio::spawn(async move {
        axum::serve(listener, probes)
            .with_graceful_shutdown(probes_shutdown.cancelled_owned())
            .await
    });

    // Owned Secrets are watched by their metadata: a change triggers their owner's reconcile.
    let (honeycombs, secrets): (Api<Honeycomb>, Api<PartialObjectMeta<Secret>>) =
        match &args.watch_namespace {
            Some(namespace) => (
                Api::namespaced(client.clone(), namespace),
                Api::namespaced(client.clone(), namespace),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
    if let Err(err) = honeycombs.list(&ListParams::default().limit(1)).await {
        tracing::error!(error = %err, "cannot list Honeycombs: is the CRD installed (crds/honeycomb.yaml) and may this service account list them?");
        return Err(err.into());
    }

    let mut ctx = Context::new(
        client.clone(),
        store,
        metrics.clone(),
        Arc::new(SystemClock),
        &args.leader.identity,
    );
    ctx.resync_interval = args.resync_interval;
    ctx.conflict_retry_interval = args.conflict_retry_interval;
    ctx.installation = args.installation.clone();
    ctx.max_concurrent_reconciles = args.max_concurrent_reconciles;
    let ctx = Arc::new(ctx);
    tracing::info!(installation = %ctx.installation, "managing the Honeycombs of this installation");

    let outcome = if args.leader.leader_election {
        run_as_leader(&args, client, (honeycombs, secrets), ctx, &shutdown).await
    } else {
        metrics.set_leader(true);
        run_controller(honeycombs, secrets, ctx, shutdown.clone()).await;
        Ok(())
    };
    metrics.set_leader(false);
    shutdown.cancel();
    if let Ok(Err(err)) = probes_task.await {
        tracing::warn!(error = %err, "probe listener failed");
    }
    outcome
}

async fn run_as_leader(
    args: &RunArgs,
    client: Client,
    (honeycombs, secrets): (Api<Honeycomb>, Api<PartialObjectMeta<Secret>>),
    ctx: Arc<Context>,
    shutdown: &CancellationToken,
) -> Result<()> {
    tracing::info!(lease = %args.leader.lease_name, identity = %args.leader.identity, "waiting for the leader Lease");
    let Some((leading, lease_task)) = acquire_lease(args, &client, shutdown).await? else {
        return Ok(());
    };
    tracing::info!("leading: reconciling Honeycombs");
    ctx.metrics.set_leader(true);

    // Stops on shutdown (the parent) or when the Lease is lost.
    let stop = shutdown.child_token();
    let mut leadership = leading.clone();
    let on_loss = stop.clone();
    let watch_leadership = tokio::spawn(async move {
        while leadership.changed().await.is_ok() {
            if !*leadership.borrow_and_update() {
                break;
            }
        }
        on_loss.cancel();
    });
    run_controller(honeycombs, secrets, ctx, stop).await;
    watch_leadership.abort();
    let lost_leadership = !shutdown.is_cancelled();
    // Dropping the last receiver makes the manager release the Lease for a standby.
    drop(leading);
    lease_outcome(lease_task.await)?;
    if lost_leadership {
        return Err(Error::LostLeadership);
    }
    Ok(())
}

/// The manager's handle on the Lease: whether we lead, and its task.
type LeaseHandle = (
    tokio::sync::watch::Receiver<bool>,
    tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
);

/// Waits until this replica holds the Lease (`None` on shutdown first).
///
/// The Lease manager, while another replica holds the Lease, sleeps until it would expire;
/// that bound stays for a leader that died. A leader that stops cleanly releases the Lease,
/// so the standby also looks at it every [`LEASE_POLL`]: once it is free (or expired), a new
/// manager takes it at once, instead of the old one sleeping out the Lease's duration.
async fn acquire_lease(
    args: &RunArgs,
    client: &Client,
    shutdown: &CancellationToken,
) -> Result<Option<LeaseHandle>> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &args.leader.lease_namespace);
    loop {
        let manager = LeaseManagerBuilder::new(client.clone(), &args.leader.lease_name)
            .with_namespace(&args.leader.lease_namespace)
            .with_identity(&args.leader.identity)
            .with_duration(args.leader.lease_duration_seconds)
            .with_grace(args.leader.lease_renew_grace_seconds)
            .build()
            .await?;
        let (mut leading, lease_task) = manager.watch().await;
        let mut poll = tokio::time::interval(LEASE_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        loop {
            if *leading.borrow_and_update() {
                return Ok(Some((leading, lease_task)));
            }
            tokio::select! {
                changed = leading.changed() => {
                    if changed.is_err() {
                        lease_outcome(lease_task.await)?;
                        return Ok(None);
                    }
                }
                () = shutdown.cancelled() => {
                    drop(leading);
                    lease_outcome(lease_task.await)?;
                    return Ok(None);
                }
                _ = poll.tick() => {
                    if lease_is_free(&leases, &args.leader.lease_name).await {
                        // Not the holder: dropping the manager releases nothing.
                        drop(leading);
                        lease_outcome(lease_task.await)?;
                        break;
                    }
                }
            }
        }
    }
}

/// Whether the Lease has no holder, or one whose time ran out (a read error says no: the
/// manager's own wait still applies).
async fn lease_is_free(leases: &Api<Lease>, name: &str) -> bool {
    let Ok(Some(lease)) = leases.get_opt(name).await else {
        return false;
    };
    let Some(spec) = lease.spec else {
        return true;
    };
    if spec.holder_identity.as_deref().is_none_or(str::is_empty) {
        return true;
    }
    match (spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(seconds)) => {
            let expires =
                renewed.0 + std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
            expires < k8s_openapi::jiff::Timestamp::now()
        }
        _ => false,
    }
}

fn lease_outcome(
    joined: std::result::Result<
        kube_lease_manager::Result<kube_lease_manager::LeaseManager>,
        tokio::task::JoinError,
    >,
) -> Result<()> {
    match joined {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err.into()),
        Err(err) => Err(Error::Io(std::io::Error::other(err))),
    }
}

/// The Controller, until `stop` is cancelled; reconciliations in flight are finished first.
///
/// Kept lean for clusters with many Honeycombs: other installations' Honeycombs are dropped
/// before they reach the cache, cached ones lose their managed fields and last-applied
/// annotation, owned Secrets are watched by their metadata only, and at most
/// `max_concurrent_reconciles` reconciliations run at once.
async fn run_controller(
    honeycombs: Api<Honeycomb>,
    secrets: Api<PartialObjectMeta<Secret>>,
    ctx: Arc<Context>,
    stop: CancellationToken,
) {
    let (reader, writer) = reflector::store();
    let installation = ctx.installation.clone();
    // Status writes change neither generation nor finalizers: they do not come back as work.
    let trigger = watcher(honeycombs, watcher::Config::default().any_semantic())
        .default_backoff()
        .filter(move |event| std::future::ready(of_installation(event, &installation)))
        .modify(slim)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::finalizers),
            Default::default(),
        );
    let owned_secrets = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    let secret_changes = watcher(secrets, owned_secrets)
        .default_backoff()
        .touched_objects();
    let config = ControllerConfig::default().concurrency(ctx.max_concurrent_reconciles);
    Controller::for_stream(trigger, reader)
        .with_config(config)
        .owns_stream(secret_changes)
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(honeycomb = %object, "reconciled"),
                Err(err) => tracing::debug!(error = %err, "reconcile loop"),
            }
        })
        .await;
    tracing::info!("controller stopped");
}

/// False for a watch event about another installation's Honeycomb (errors and markers pass).
pub fn of_installation(
    event: &Result<watcher::Event<Honeycomb>, watcher::Error>,
    installation: &str,
) -> bool {
    match event {
        Ok(
            watcher::Event::Apply(honeycomb)
            | watcher::Event::InitApply(honeycomb)
            | watcher::Event::Delete(honeycomb),
        ) => honeycomb.spec.installation() == installation,
        _ => true,
    }
}

/// What the cache need not keep of a Honeycomb: server-side apply's bookkeeping and kubectl's
/// copy of the whole object (often most of its size).
pub fn slim(honeycomb: &mut Honeycomb) {
    honeycomb.managed_fields_mut().clear();
    honeycomb
        .annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

async fn cancel_on_signal(token: CancellationToken) {
    bichito_core::shutdown::signal().await;
    tracing::info!("shutting down: finishing reconciliations in flight");
    token.cancel();
}
