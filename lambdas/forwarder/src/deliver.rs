//! The process calls of one run: each with its timeout, paced by the rate cap, then judged
//! and recorded together.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use lambda_runtime::Context;
use microprocess_shared::contract::{Outcome, ProcessRequest};
use microprocess_shared::ledger::ChildOutcome;
use microprocess_shared::ledger_keys::RunState;
use microprocess_shared::run_id::RunId;
use microprocess_shared::service_client::Delivery;

use crate::judge::Judged;
use crate::{Forwarder, ProcessWork, Verdict, DEADLINE_MARGIN};

impl Forwarder {
    /// The per-call timeout: the configured one, but never past the function's deadline.
    pub(crate) fn call_timeout(&self, context: &Context) -> Duration {
        let deadline_ms = context.deadline;
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        let remaining = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        let budget = remaining
            .saturating_sub(DEADLINE_MARGIN)
            .max(Duration::from_secs(1));
        self.settings.process_timeout.min(budget)
    }

    /// The process calls of one run, then their grouped ledger write.
    ///
    /// A call starts only if its whole timeout and the ledger write fit before the
    /// function's deadline, counted after the rate cap's wait; the messages whose calls
    /// would not fit go back to the queue with no attempt spent (see `Verdict::Requeue`).
    pub(crate) async fn process_run<'a>(
        &self,
        run: RunId,
        work: Vec<ProcessWork<'a>>,
        deadline: Instant,
    ) -> Vec<(&'a str, Verdict)> {
        match self.ledger.run(self.name(), &run).await {
            Ok(Some(record))
                if matches!(record.state, RunState::SplitFailed | RunState::Cancelled) =>
            {
                // The run has ended: no reduce will come, so no call is worth making.
                tracing::info!(%run, state = %record.state, messages = work.len(), "the run has ended; its messages are dropped without a call");
                return work
                    .into_iter()
                    .map(|(r, ..)| (r.id, Verdict::Delete))
                    .collect();
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                let reason = format!("run `{run}` of `{}` is not in the ledger", self.name());
                tracing::error!(%run, "{reason}; dead-lettering its messages");
                return work
                    .into_iter()
                    .map(|(r, ..)| (r.id, Verdict::DeadLetter(reason.clone())))
                    .collect();
            }
            Err(error) => {
                tracing::error!(%run, error = %error, "cannot read the run; the batch comes back later");
                return work
                    .into_iter()
                    .map(|(r, ..)| (r.id, self.retry(r.attempt, None)))
                    .collect();
            }
        };

        let timeout = self.settings.process_timeout;
        let latest_start = deadline.checked_sub(timeout + DEADLINE_MARGIN);
        let calls = work.iter().map(|(received, seq, item, payload)| {
            let request = ProcessRequest {
                microprocess: self.name().to_string(),
                run: run.clone(),
                seq: *seq,
                item: item.clone(),
                payload: payload.clone(),
                attempt: received.attempt,
            };
            let exhausted = self.exhausted(received.attempt);
            async move {
                if let Some(delivery) = exhausted {
                    return Some(delivery);
                }
                let latest = latest_start.map(tokio::time::Instant::from_std)?;
                if !self.limiter.acquire_by(Some(latest)).await {
                    return None;
                }
                Some(
                    self.service
                        .process(&self.settings.process_path, &request, timeout)
                        .await,
                )
            }
        });
        let deliveries = join_all(calls).await;

        let mut outcomes = Vec::new();
        let mut pending: Vec<(&'a str, u32, Verdict)> = Vec::new();
        for ((received, seq, item, _), delivery) in work.iter().zip(deliveries) {
            let Some(delivery) = delivery else {
                tracing::info!(%run, seq, "no time left for this call before the deadline; back to the queue with no attempt spent");
                pending.push((
                    received.id,
                    received.attempt,
                    Verdict::Requeue {
                        attempts_made: received.attempt.saturating_sub(1),
                    },
                ));
                continue;
            };
            let (state, result, reason, verdict) = match self
                .judge(&run, *seq, received.attempt, &delivery)
                .await
            {
                Judged::Terminal {
                    state,
                    result,
                    reason,
                    verdict,
                } => (state, result, reason, verdict),
                Judged::Again(verdict) => {
                    tracing::warn!(%run, seq, attempt = received.attempt, reason = %delivery.reason, "retrying later");
                    pending.push((received.id, received.attempt, verdict));
                    continue;
                }
            };
            outcomes.push(ChildOutcome {
                seq: *seq,
                item: item.clone(),
                state,
                attempts: received.attempt,
                result,
                reason,
            });
            pending.push((received.id, received.attempt, verdict));
        }

        if !outcomes.is_empty() {
            match self.record(&run, &outcomes, deadline).await {
                Ok(recorded) => {
                    if !recorded.duplicates.is_empty() {
                        tracing::info!(%run, duplicates = ?recorded.duplicates, "already counted; nothing changed");
                    }
                    if recorded.complete {
                        // A claimer stopped before its reduce message leaves its batch to
                        // come back with every child already counted.
                        let redelivered = work.iter().any(|(r, ..)| r.attempt > 1)
                            && recorded.newly_counted.is_empty()
                            && recorded.moved_to_succeeded.is_empty();
                        self.claim_and_send_reduce(&recorded.run, redelivered).await;
                    }
                }
                Err(error) => {
                    // Nothing was counted: every terminal message comes back and is judged again.
                    tracing::error!(%run, error = %error, "cannot record outcomes; they come back later");
                    let terminal: Vec<u64> = outcomes.iter().map(|o| o.seq).collect();
                    return work
                        .iter()
                        .zip(pending)
                        .map(|((received, seq, ..), (id, attempt, verdict))| {
                            if terminal.contains(seq) {
                                (id, self.retry(received.attempt.max(attempt), None))
                            } else {
                                (id, verdict)
                            }
                        })
                        .collect();
                }
            }
        }
        pending.into_iter().map(|(id, _, v)| (id, v)).collect()
    }

    /// The delivery of a message received after its last allowed attempt, which is not
    /// made: the queue's `maxReceiveCount` is `max_attempts + 1`, so a message whose last
    /// attempt ended with no verdict (the forwarder stopped, or timed out, mid-batch)
    /// comes back once more and is recorded `FAILED` here instead of being dead-lettered
    /// by SQS with nothing in the ledger, which would leave its run unfinished.
    pub(crate) fn exhausted(&self, attempt: u32) -> Option<Delivery> {
        (attempt > self.settings.max_attempts).then(|| Delivery {
            outcome: Outcome::Retry,
            status: None,
            body: Vec::new(),
            retry_after: None,
            reason: format!(
                "no answer recorded for attempt {} (the forwarder stopped mid-call)",
                self.settings.max_attempts
            ),
        })
    }
}
