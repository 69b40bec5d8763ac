//! The sweep, every few minutes on its own schedule (`{"sweep": true}`).
//!
//! A crash between a child's counter update and the reduce claim leaves a finished run
//! in `PROCESSING`. The sweep lists the microprocess's `PROCESSING` runs (the
//! `runs-by-state` index), and for each whose children are all done claims the reduce;
//! the claim's condition has one winner, who queues the reduce message. A crash between
//! a claim and its reduce message leaves a run `REDUCING` with nothing on the queue: the
//! sweep queues the reduce of every `REDUCING` run whose claim is older than
//! `Tuning::reduce_requeue_after` and has no "queued" note.
//!
//! A forwarder that stops on a message's last two receives leaves SQS to dead-letter it
//! with no outcome in the ledger, and its run would wait for that child for good. When a
//! sealed `PROCESSING` run still misses children, the sweep reads
//! the dead-letter queue ([`crate::dead_letters`]), records each of that run's letters
//! whose child has no record as `FAILED` (counted like any failure, so the run completes
//! and `redrive` can send it again), and claims the reduce of the runs that completes.
//! It also resumes the runs still `SPLITTING` whose splitter stopped: Lambda gave up
//! retrying an invocation that failed, or a hand-off never arrived, so the split's lease
//! ran out with nobody to extend it (`crate::lease`). The sweep takes the lease under a
//! token of its own and hands the split to a fresh invocation with it; a run with no
//! lease at all (its start stopped before taking one) is resumed once it is older than
//! any invocation can last.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use microprocess_shared::ledger::{ChildOutcome, RunRecord};
use microprocess_shared::ledger_keys::{block_of, ChildState, RunState};
use microprocess_shared::queue_message::QueueMessage;
use microprocess_shared::run_id::RunId;

use crate::event::resume_payload;
use crate::{lease, reduce, Outcome, Splitter, SplitterError};

/// Runs named one by one in the log; the rest are counted.
const LOGGED_RUNS: usize = 20;

/// Dead letters one sweep reads at most; the next sweep reads on.
const MAX_LETTERS: usize = 5_000;

/// Why a child recorded from a dead letter failed.
const NO_OUTCOME: &str = "dead-lettered by SQS with no outcome recorded: the forwarder \
     stopped on the message's last receives (`microprocess redrive` sends it again)";

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
    let failed_from_dead_letters =
        record_unanswered_dead_letters(splitter, &processing, &mut failures).await;
    // The runs those letters completed are claimed below with the rest.
    let processing = if failed_from_dead_letters > 0 {
        splitter
            .ledger
            .runs_in_state(microprocess, RunState::Processing)
            .await?
    } else {
        processing
    };
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
    let resumed = resume_stopped_splits(splitter, &splitting, &mut failures).await;
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
    let announced = splitter.announce().await;
    tracing::info!(
        %microprocess,
        announced = announced.len(),
        processing = processing.len(),
        failed_from_dead_letters,
        claimed = claimed.len(),
        requeued = requeued.len(),
        splitting = splitting.len(),
        resumed = resumed.len(),
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
        failed_from_dead_letters,
        claimed,
        requeued,
        splitting: splitting.into_iter().map(|r| r.run).collect(),
        resumed,
        announced,
    })
}

/// How old a `SPLITTING` run without any lease must be before the sweep resumes it:
/// longer than a Lambda invocation lasts, plus the lease's grace.
const UNLEASED_AGE: chrono::Duration = chrono::Duration::minutes(20);

/// How long the sweep's lease lasts before the invocation it hands off to takes it on.
const HANDOFF_LEASE: chrono::Duration = chrono::Duration::minutes(5);

/// Resumes each `SPLITTING` run whose lease has run out; the runs it handed off.
async fn resume_stopped_splits(
    splitter: &Splitter,
    splitting: &[RunRecord],
    failures: &mut Vec<String>,
) -> Vec<RunId> {
    let microprocess = splitter.name();
    let now = Utc::now();
    let stopped = splitting.iter().filter(|r| match r.split_lease_until {
        Some(until) => until < now.timestamp(),
        None => now - r.started_at >= UNLEASED_AGE,
    });
    let mut resumed = Vec::new();
    for record in stopped {
        let token = lease::new_token();
        let until = (now + HANDOFF_LEASE).timestamp();
        match splitter
            .ledger
            .take_split_lease(microprocess, &record.run, &token, until, now)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => continue, // taken, or finished, since the listing
            Err(error) => {
                failures.push(error.to_string());
                continue;
            }
        }
        let payload = resume_payload(&record.run, 0, Some(&token));
        match splitter.handoff.hand_off(&payload).await {
            Ok(()) => {
                tracing::warn!(
                    %microprocess,
                    run = %record.run,
                    pages = record.pages,
                    enqueued = record.enqueued,
                    lease_until = ?record.split_lease_until,
                    "the split had stopped (its lease ran out); the sweep resumed it"
                );
                resumed.push(record.run.clone());
            }
            Err(reason) => {
                tracing::error!(%microprocess, run = %record.run, %reason, "cannot resume the split; the next sweep tries again");
                failures.push(format!("resume `{}`: {reason}", record.run));
            }
        }
    }
    resumed
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

/// Records `FAILED` the children of sealed, unfinished runs whose messages SQS
/// dead-lettered with no outcome in the ledger, once the queue is empty; how many.
/// Failures are added to `failures`.
async fn record_unanswered_dead_letters(
    splitter: &Splitter,
    processing: &[RunRecord],
    failures: &mut Vec<String>,
) -> usize {
    let microprocess = splitter.name();
    let waiting: BTreeSet<&RunId> = processing
        .iter()
        .filter(|r| r.split_done && !r.all_children_done())
        .map(|r| &r.run)
        .collect();
    if waiting.is_empty() {
        return 0;
    }
    // The last block of a sealed run is complete only once the seal sized it: a seal that
    // stopped between sizing it and reporting it leaves it to the sweep.
    for record in processing
        .iter()
        .filter(|r| r.split_done && !r.all_children_done())
    {
        if let Some(last) = record.total.and_then(|t| t.checked_sub(1)) {
            if let Err(error) = splitter
                .ledger
                .settle_block(microprocess, &record.run, block_of(last), Utc::now())
                .await
            {
                failures.push(error.to_string());
            }
        }
    }
    // A letter is evidence enough, whatever else the queue holds (back-to-back runs
    // never leave it empty): its message used up its receives. A duplicate of it still on
    // its way that succeeds moves its child from failed to succeeded.
    let letters = match splitter.dead_letters.read(MAX_LETTERS).await {
        Ok(letters) => letters,
        Err(error) => {
            failures.push(error);
            return 0;
        }
    };
    let mut candidates: BTreeMap<RunId, BTreeMap<u64, String>> = BTreeMap::new();
    for letter in &letters {
        if let Ok(QueueMessage::Process { run, seq, item, .. }) = QueueMessage::parse(&letter.body)
        {
            if waiting.contains(&run) {
                candidates.entry(run).or_default().insert(seq, item);
            }
        }
    }
    let mut recorded = 0;
    for (run, children) in candidates {
        match record_unanswered(splitter, &run, children).await {
            Ok(n) if n > 0 => {
                tracing::warn!(%microprocess, %run, children = n, "children dead-lettered with no outcome; the sweep recorded them FAILED");
                recorded += n;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%microprocess, %run, %error, "sweep could not record dead-lettered children");
                failures.push(error.to_string());
            }
        }
    }
    splitter.dead_letters.release(&letters).await;
    recorded
}

/// Records `FAILED` those of `children` (seq → item) the ledger has no record of.
async fn record_unanswered(
    splitter: &Splitter,
    run: &RunId,
    children: BTreeMap<u64, String>,
) -> Result<usize, SplitterError> {
    let mut outcomes = Vec::new();
    let blocks: BTreeSet<u64> = children.keys().map(|seq| block_of(*seq)).collect();
    for (seq, item) in children {
        if splitter
            .ledger
            .child_state(splitter.name(), run, seq)
            .await?
            == ChildState::Pending
        {
            outcomes.push(ChildOutcome {
                seq,
                item,
                state: ChildState::Failed,
                attempts: 0,
                result: None,
                reason: Some(NO_OUTCOME.to_owned()),
            });
        }
    }
    let recorded = if outcomes.is_empty() {
        0
    } else {
        splitter
            .ledger
            .record_children(splitter.name(), run, &outcomes, Utc::now())
            .await?
            .newly_counted
            .len()
    };
    // A letter's child may be counted in a block its writer completed but stopped
    // before reporting (its batch came back until SQS dead-lettered it).
    for block in blocks {
        splitter
            .ledger
            .settle_block(splitter.name(), run, block, Utc::now())
            .await?;
    }
    Ok(recorded)
}
