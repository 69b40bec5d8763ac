//! The sweep, every few minutes on its own schedule (`{"sweep": true}`).
//!
//! A crash between a child's counter update and the reduce claim leaves a finished run
//! in `PROCESSING`. The sweep lists the microprocess's `PROCESSING` runs (the
//! `runs-by-state` index), and for each whose children are all done claims the reduce;
//! the claim's condition has one winner, who queues the reduce message. A crash between
//! a claim and its reduce message leaves a run `REDUCING` with nothing on the queue: the
//! sweep queues the reduce of every `REDUCING` run whose claim is older than
//! `Tuning::reduce_requeue_after` and has no "queued" note. It also reports
//! the runs still `SPLITTING`, oldest first, so a split that stopped for good is seen
//! (it is resumed by hand with `{"run": "<id>", "resume": true}`).

use chrono::Utc;
use microprocess_shared::ledger_keys::RunState;
use microprocess_shared::run_id::RunId;

use crate::{reduce, Outcome, Splitter, SplitterError};

/// Runs named one by one in the log; the rest are counted.
const LOGGED_RUNS: usize = 20;

/// Sweeps the microprocess's runs; see the module documentation. Fails, after trying
/// every run, when a claim or a reduce message failed.
pub async fn sweep(splitter: &Splitter) -> Result<Outcome, SplitterError> {
    let microprocess = splitter.name();
    let processing = splitter
        .ledger
        .runs_in_state(microprocess, RunState::Processing)
        .await?;
    let mut claimed = Vec::new();
    let mut failures = Vec::new();
    for record in processing.iter().filter(|r| r.all_children_done()) {
        match reduce::claim_and_send(splitter, &record.run).await {
            Ok(true) => {
                tracing::warn!(
                    %microprocess,
                    run = %record.run,
                    total = ?record.total,
                    "finished run had missed its reduce; the sweep claimed it"
                );
                claimed.push(record.run.clone());
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%microprocess, run = %record.run, %error, "sweep could not claim the reduce");
                failures.push(error.to_string());
            }
        }
    }
    let requeued = requeue_lost_reduces(splitter, &mut failures).await?;
    let splitting = splitter
        .ledger
        .runs_in_state(microprocess, RunState::Splitting)
        .await?;
    for record in splitting.iter().take(LOGGED_RUNS) {
        tracing::info!(
            %microprocess,
            run = %record.run,
            started_at = %record.started_at.to_rfc3339(),
            pages = record.pages,
            enqueued = record.enqueued,
            "run still SPLITTING"
        );
    }
    tracing::info!(
        %microprocess,
        processing = processing.len(),
        claimed = claimed.len(),
        requeued = requeued.len(),
        splitting = splitting.len(),
        "sweep done"
    );
    if !failures.is_empty() {
        return Err(SplitterError::Sweep {
            count: failures.len(),
            details: failures.join("; "),
        });
    }
    Ok(Outcome::Swept {
        processing: processing.len(),
        claimed,
        requeued,
        splitting: splitting.into_iter().map(|r| r.run).collect(),
    })
}

/// Queues the reduce of each `REDUCING` run claimed before the requeue age with no
/// queued note; the runs it queued. Failures are added to `failures`.
async fn requeue_lost_reduces(
    splitter: &Splitter,
    failures: &mut Vec<String>,
) -> Result<Vec<RunId>, SplitterError> {
    let microprocess = splitter.name();
    let age = chrono::Duration::from_std(splitter.tuning.reduce_requeue_after)
        .unwrap_or(chrono::Duration::MAX);
    let now = Utc::now();
    let reducing = splitter
        .ledger
        .runs_in_state(microprocess, RunState::Reducing)
        .await?;
    let mut requeued = Vec::new();
    // A run claimed before the claim was timestamped counts as old.
    let lost = reducing.iter().filter(|r| {
        r.reduce_queued_at.is_none() && r.reduce_claimed_at.is_none_or(|at| now - at >= age)
    });
    for record in lost {
        match reduce::send(splitter, &record.run).await {
            Ok(()) => {
                tracing::warn!(
                    %microprocess,
                    run = %record.run,
                    claimed_at = ?record.reduce_claimed_at,
                    "run REDUCING with no reduce message; the sweep queued it"
                );
                requeued.push(record.run.clone());
            }
            Err(error) => {
                tracing::error!(%microprocess, run = %record.run, %error, "sweep could not queue the reduce");
                failures.push(error.to_string());
            }
        }
    }
    Ok(requeued)
}
