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
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, reflector, watcher};
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Runs until SIGTERM or Ctrl-C (exit 0), or until leadership is lost (an error, so that the
/// pod restarts as a standby instead of reconciling beside the new leader).
pub async fn run(args: RunArgs) -> Result<()> {
    let settings = bichito_core::store::PoolSettings {
        max_connections: args.database_max_connections,
        timeout: args.database_timeout,
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

    let (honeycombs, secrets): (Api<Honeycomb>, Api<Secret>) = match &args.watch_namespace {
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
    let ctx = Arc::new(ctx);

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
    (honeycombs, secrets): (Api<Honeycomb>, Api<Secret>),
    ctx: Arc<Context>,
    shutdown: &CancellationToken,
) -> Result<()> {
    let manager = LeaseManagerBuilder::new(client, &args.leader.lease_name)
        .with_namespace(&args.leader.lease_namespace)
        .with_identity(&args.leader.identity)
        .with_duration(args.leader.lease_duration_seconds)
        .with_grace(args.leader.lease_renew_grace_seconds)
        .build()
        .await?;
    let (mut leading, lease_task) = manager.watch().await;
    tracing::info!(lease = %args.leader.lease_name, identity = %args.leader.identity, "waiting for the leader Lease");
    while !*leading.borrow_and_update() {
        tokio::select! {
            changed = leading.changed() => {
                if changed.is_err() {
                    return lease_outcome(lease_task.await);
                }
            }
            () = shutdown.cancelled() => {
                drop(leading);
                return lease_outcome(lease_task.await);
            }
        }
    }
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
async fn run_controller(
    honeycombs: Api<Honeycomb>,
    secrets: Api<Secret>,
    ctx: Arc<Context>,
    stop: CancellationToken,
) {
    let (reader, writer) = reflector::store();
    // Status writes change neither generation nor finalizers: they do not come back as work.
    let trigger = watcher(honeycombs, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::finalizers),
            Default::default(),
        );
    let owned_secrets = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    Controller::for_stream(trigger, reader)
        .owns(secrets, owned_secrets)
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

async fn cancel_on_signal(token: CancellationToken) {
    bichito_core::shutdown::signal().await;
    tracing::info!("shutting down: finishing reconciliations in flight");
    token.cancel();
}
