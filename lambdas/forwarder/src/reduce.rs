//! The run's one reduce: claimed by the writer that sees the run complete, queued as a
//! message, and delivered as the reduce call.

use std::time::Duration;

use chrono::Utc;
use lambda_runtime::Context;
use microprocess_shared::contract::{Outcome, ReduceRequest, ResultsLocator};
use microprocess_shared::errors::error_chain;
use microprocess_shared::ledger::RunRecord;
use microprocess_shared::ledger_keys::RunState;
use microprocess_shared::queue_message::QueueMessage;
use microprocess_shared::run_id::RunId;
use microprocess_shared::settings::ResultStorage;

use crate::{Forwarder, Received, Verdict, DEADLINE_MARGIN};

/// How old a reduce claim without its "queued" note must be before a redelivered batch
/// queues the reduce itself: far longer than a live claimer takes to send and note it.
const ORPHAN_GRACE: Duration = Duration::from_secs(2);

impl Forwarder {
    /// The reduce call's timeout: the configured one, but never past the function's
    /// deadline.
    pub(crate) fn reduce_timeout(&self, context: &Context) -> Duration {
        let deadline_ms = context.deadline;
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        let remaining = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        let budget = remaining
            .saturating_sub(DEADLINE_MARGIN)
            .max(Duration::from_secs(1));
        self.settings.process_timeout.min(budget)
    }

    /// Claims the reduce of a complete run; the one winner sends the reduce message. A
    /// `redelivered` batch that counted nothing new may be the batch of a claimer that
    /// stopped (killed, timed out) between its claim and its reduce message: when the run
    /// is `REDUCING` without the "queued" note, it queues the reduce.
    pub async fn claim_and_send_reduce(&self, run: &RunRecord, redelivered: bool) {
        if run.state == RunState::Processing {
            match self
                .ledger
                .try_claim_reduce(self.name(), &run.run, Utc::now())
                .await
            {
                Ok(true) => {
                    self.send_reduce(&run.run, "run complete; reduce claimed and queued")
                        .await;
                    return;
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(run = %run.run, error = %error, "cannot claim the reduce; the sweep will");
                    return;
                }
            }
        } else if run.state != RunState::Reducing || run.reduce_queued_at.is_some() {
            return;
        }
        if redelivered {
            self.queue_orphaned_reduce(&run.run).await;
        }
    }

    /// Queues the reduce of a `REDUCING` run that has no "queued" note once its claim is
    /// [`ORPHAN_GRACE`] old, waiting out the rest of the grace first: a live claimer notes
    /// its message within milliseconds, and only a stopped one leaves the note missing.
    /// A second reduce message is within the contract (at least once, one key), and the
    /// grace makes one rare.
    pub(crate) async fn queue_orphaned_reduce(&self, run: &RunId) {
        let mut waited = false;
        loop {
            let record = match self.ledger.run(self.name(), run).await {
                Ok(Some(record)) => record,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%run, error = %error, "cannot read the run to check its reduce; the sweep will");
                    return;
                }
            };
            if record.state != RunState::Reducing || record.reduce_queued_at.is_some() {
                tracing::debug!(%run, state = %record.state, "reduce already claimed and queued, or run not complete");
                return;
            }
            let age = record
                .reduce_claimed_at
                .map(|at| (Utc::now() - at).to_std().unwrap_or_default())
                .unwrap_or(ORPHAN_GRACE);
            if age >= ORPHAN_GRACE || waited {
                tracing::warn!(%run, claimed_at = ?record.reduce_claimed_at, "the reduce was claimed but never queued: its claimer stopped in between; queueing it");
                self.send_reduce(run, "orphaned reduce queued").await;
                return;
            }
            waited = true;
            tokio::time::sleep(ORPHAN_GRACE - age).await;
        }
    }

    /// Sends the reduce message of a claimed run and notes it in the ledger.
    pub(crate) async fn send_reduce(&self, run: &RunId, done: &str) {
        let body = QueueMessage::Reduce { run: run.clone() }.to_body();
        let sent = self
            .sqs
            .send_message()
            .queue_url(&self.settings.common.queue_url)
            .message_body(body)
            .send()
            .await;
        match sent {
            Ok(_) => {
                tracing::info!(%run, "{done}");
                self.mark_reduce_queued(run).await;
            }
            // The SDK has already retried. The claim is in the ledger without its "queued"
            // note, so a redelivered batch or the sweep queues the reduce later.
            Err(e) => {
                tracing::error!(%run, error = %error_chain(&e), "reduce claimed but not queued; the sweep will queue it")
            }
        }
    }

    /// Notes the queued reduce in the ledger. Without the note the sweep queues a second
    /// reduce message later, which the contract allows: the reduce is delivered at least
    /// once, with one `Idempotency-Key`.
    pub(crate) async fn mark_reduce_queued(&self, run: &RunId) {
        if let Err(error) = self
            .ledger
            .mark_reduce_queued(self.name(), run, Utc::now())
            .await
        {
            tracing::warn!(%run, error = %error, "reduce queued, but not noted; the sweep may queue it again");
        }
    }

    /// The reduce call of a run whose reduce was claimed.
    pub(crate) async fn reduce<'a>(
        &self,
        received: Received<'a>,
        run: RunId,
        timeout: Duration,
    ) -> (&'a str, Verdict) {
        let record = match self.ledger.run(self.name(), &run).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return (
                    received.id,
                    Verdict::DeadLetter(format!("run `{run}` is not in the ledger")),
                )
            }
            Err(error) => {
                tracing::error!(%run, error = %error, "cannot read the run for its reduce");
                return (received.id, self.retry(received.attempt, None));
            }
        };
        if record.state != RunState::Reducing {
            tracing::info!(%run, state = %record.state, "reduce message for a run not REDUCING; nothing to do");
            return (received.id, Verdict::Delete);
        }
        let request = ReduceRequest {
            microprocess: self.name().to_string(),
            run: run.clone(),
            total: record.total.unwrap_or(record.done),
            succeeded: record.succeeded,
            failed: record.failed,
            started_at: record.started_at,
            split_done_at: record.split_done_at.unwrap_or(record.started_at),
            results: ResultsLocator::new(
                self.settings.common.ledger_table.clone(),
                record.child_partition_keys(),
                match self.settings.result_storage {
                    ResultStorage::Discard => None,
                    _ => self.settings.results_bucket.clone(),
                },
            ),
        };
        let attempt = received.attempt;
        let d = match self.exhausted(attempt) {
            Some(delivery) => delivery,
            None => {
                self.service
                    .reduce(&self.settings.reduce_path, &request, timeout)
                    .await
            }
        };
        let verdict = match d.outcome {
            Outcome::Succeeded => match self.ledger.complete(self.name(), &run, Utc::now()).await {
                Ok(()) => {
                    tracing::info!(%run, total = request.total, failed = request.failed, "run completed");
                    Verdict::Delete
                }
                Err(error) => {
                    tracing::error!(%run, error = %error, "reduce succeeded but the run could not be completed");
                    self.retry(attempt, None)
                }
            },
            Outcome::Retry if attempt < self.settings.max_attempts => {
                self.retry(attempt, d.retry_after)
            }
            _ => {
                let reason = format!(
                    "reduce: {} (attempt {} of {})",
                    d.reason,
                    attempt.min(self.settings.max_attempts),
                    self.settings.max_attempts
                );
                match self
                    .ledger
                    .reduce_failed(self.name(), &run, &reason, Utc::now())
                    .await
                {
                    Ok(()) => Verdict::DeadLetter(reason),
                    Err(error) => {
                        tracing::error!(%run, error = %error, "cannot record REDUCE_FAILED");
                        self.retry(attempt, None)
                    }
                }
            }
        };
        (received.id, verdict)
    }
}
