//! The attachment sweeper: settles pending attachments whose upload URL has expired, and
//! deletes storage objects whose deletion is due (those of deleted bichitos, refused or
//! replaced uploads, and upload objects once their verified copy exists). Deletions are rows
//! written with the change that orphans the object, so a storage outage only delays them.
//! Every api process sweeps; each step is conditional, so two sweeping at once is harmless.

use super::{AttachmentError, Settling};
use bichito_core::clock::truncate_to_millis;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SWEEP_EVERY: Duration = Duration::from_secs(30);
const BATCH: i64 = 100;

pub async fn run(settling: Settling, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = settling.attachments.woken() => {}
            _ = every.tick() => {}
        }
        if let Err(err) = sweep(&settling).await {
            tracing::warn!(error = %err, "attachment sweep failed; retrying on the next one");
        }
    }
}

/// One round: returns how many objects were deleted.
pub async fn sweep(settling: &Settling) -> Result<usize, AttachmentError> {
    let storage = settling.attachments.storage()?;
    let now = truncate_to_millis(settling.clock.now());
    for record in settling.store.expired_uploads(now, BATCH).await? {
        settling.settle(&record).await?;
    }
    let due = settling.store.due_object_deletions(now, BATCH).await?;
    let mut done = Vec::with_capacity(due.len());
    let mut failure = None;
    for deletion in due {
        match storage.delete(&deletion.object).await {
            Ok(()) => done.push(deletion.id),
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    settling.store.forget_object_deletions(&done).await?;
    settling.metrics.objects_deleted(done.len());
    match failure {
        Some(err) => Err(err.into()),
        None => Ok(done.len()),
    }
}
