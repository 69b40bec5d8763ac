//! Claiming a finished run's reduce and queueing the reduce message.

use chrono::Utc;
use microprocess_shared::queue_message::QueueMessage;
use microprocess_shared::run_id::RunId;

use crate::enqueue::{enqueue, Entry};
use crate::{Splitter, SplitterError};

/// Tries to move `run` from `PROCESSING` to `REDUCING`; the one caller that wins queues
/// the reduce message (retried like any message) and gets `true`. `false`: the run is
/// not finished, or another writer claimed it first.
pub(crate) async fn claim_and_send(
    splitter: &Splitter,
    run: &RunId,
) -> Result<bool, SplitterError> {
    let microprocess = splitter.name();
    if !splitter
        .ledger
        .try_claim_reduce(microprocess, run, Utc::now())
        .await?
    {
        tracing::debug!(%microprocess, %run, "reduce not claimed: not complete, or claimed already");
        return Ok(false);
    }
    send(splitter, run).await?;
    Ok(true)
}

/// Queues the reduce message of a claimed run (retried like any message) and notes it
/// in the ledger. Without the note the sweep queues a second reduce message once the
/// claim has aged, which the contract allows: the reduce is delivered at least once,
/// with one `Idempotency-Key`.
pub(crate) async fn send(splitter: &Splitter, run: &RunId) -> Result<(), SplitterError> {
    let microprocess = splitter.name();
    let entry = Entry {
        id: "reduce".to_owned(),
        body: QueueMessage::Reduce { run: run.clone() }.to_body(),
    };
    enqueue(&*splitter.queue, vec![entry], &splitter.tuning.enqueue)
        .await
        .map_err(|source| SplitterError::ReduceNotQueued {
            run: run.clone(),
            source,
        })?;
    tracing::info!(%microprocess, %run, "reduce queued");
    if let Err(error) = splitter
        .ledger
        .mark_reduce_queued(microprocess, run, Utc::now())
        .await
    {
        tracing::warn!(%microprocess, %run, %error, "reduce queued, but not noted; the sweep may queue it again");
    }
    Ok(())
}
