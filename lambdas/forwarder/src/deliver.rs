//! The process calls of one run: each with its timeout, paced by the rate cap, then judged
//! and recorded together.

use std::time::{Duration, Instant};

use futures::future::join_all;
use microprocess_shared::contract::{Outcome, ProcessRequest};
use microprocess_shared::ledger::ChildOutcome;
use microprocess_shared::ledger_keys::ChildState;
use microprocess_shared::run_id::RunId;
use microprocess_shared::service_client::Delivery;

use crate::judge::Judged;
use crate::leases;
use crate::{Forwarder, ProcessWork, Verdict, DEADLINE_MARGIN};

/// What became of one call of the batch.
enum Called {
    Answered(Delivery),
    /// Not made: no time left before the deadline.
    NoTime,
    /// Not made: the child's lease could not be opened; it comes back later.
    Again,
    /// Not made: a report for the child was claimed already.
    Reported(ChildOutcome),
}

impl Forwarder {
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
        let (work, mut screened) = self.screen(&run, work).await;
        if work.is_empty() {
            return screened;
        }
        let lease = self.settings.lease;
        let (work, settled) = match lease {
            Some(lease) => {
                let (work, settled, verdicts) = self.check_leases(&run, work, lease).await;
                screened.extend(verdicts);
                (work, settled)
            }
            None => (work, Vec::new()),
        };

        let timeout = self.settings.process_timeout;
        let latest_start = deadline.checked_sub(timeout + DEADLINE_MARGIN);
        let limiter = self.limits.limiter();
        let limiter = &limiter;
        let calls = work.iter().map(|(received, seq, item, payload)| {
            let request = ProcessRequest {
                microprocess: self.name().to_string(),
                run: run.clone(),
                seq: *seq,
                item: item.clone(),
                payload: payload.clone(),
                attempt: received.attempt,
                callback: self.settings.callback_url.clone(),
            };
            let exhausted = self.exhausted(received.attempt);
            let run = &run;
            async move {
                if let Some(delivery) = exhausted {
                    return Called::Answered(delivery);
                }
                let Some(latest) = latest_start.map(tokio::time::Instant::from_std) else {
                    return Called::NoTime;
                };
                if !limiter.acquire_by(Some(latest)).await {
                    return Called::NoTime;
                }
                if let Some(lease) = lease {
                    match self
                        .open_lease(run, request.seq, &request.item, request.attempt, lease)
                        .await
                    {
                        Ok(()) => {}
                        Err(Some(outcome)) => return Called::Reported(outcome),
                        Err(None) => return Called::Again,
                    }
                }
                Called::Answered(
                    self.service
                        .process(&self.settings.process_path, &request, timeout)
                        .await,
                )
            }
        });
        let deliveries = join_all(calls).await;

        let mut outcomes = Vec::new();
        let mut pending: Vec<(&'a str, u64, u32, Verdict)> = Vec::new();
        for s in settled {
            pending.push((s.id, s.outcome.seq, s.attempt, s.verdict));
            outcomes.push(s.outcome);
        }
        for ((received, seq, item, _), called) in work.iter().zip(deliveries) {
            let delivery = match called {
                Called::Answered(delivery) => delivery,
                Called::NoTime => {
                    tracing::info!(%run, seq, "no time left for this call before the deadline; back to the queue with no attempt spent");
                    pending.push((
                        received.id,
                        *seq,
                        received.attempt,
                        Verdict::Requeue {
                            attempts_made: received.attempt.saturating_sub(1),
                            delay: Duration::ZERO,
                        },
                    ));
                    continue;
                }
                Called::Again => {
                    pending.push((
                        received.id,
                        *seq,
                        received.attempt,
                        self.retry(received.attempt, None),
                    ));
                    continue;
                }
                Called::Reported(outcome) => {
                    pending.push((
                        received.id,
                        *seq,
                        received.attempt,
                        leases::verdict_of(&outcome),
                    ));
                    outcomes.push(outcome);
                    continue;
                }
            };
            if let (Some(lease), Some(202)) = (lease, delivery.status) {
                match self.accepted(&run, *seq, received.attempt, lease).await {
                    Ok(verdict) => pending.push((received.id, *seq, received.attempt, verdict)),
                    Err(outcome) => {
                        pending.push((
                            received.id,
                            *seq,
                            received.attempt,
                            leases::verdict_of(&outcome),
                        ));
                        outcomes.push(outcome);
                    }
                }
                continue;
            }
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
                    pending.push((received.id, *seq, received.attempt, verdict));
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
            pending.push((received.id, *seq, received.attempt, verdict));
        }

        if !outcomes.is_empty() {
            match self.record(&run, &outcomes, deadline).await {
                Ok(recorded) => {
                    if lease.is_some() {
                        let counted: Vec<u64> = outcomes.iter().map(|o| o.seq).collect();
                        self.close_leases(&run, &counted).await;
                    }
                    if !recorded.duplicates.is_empty() {
                        tracing::info!(%run, duplicates = ?recorded.duplicates, "already counted; nothing changed");
                        self.spare_successes(&run, &outcomes, &recorded.duplicates, &mut pending)
                            .await;
                    }
                    if self.check_tolerance(&recorded.run).await {
                        screened.extend(pending.into_iter().map(|(id, _, _, v)| (id, v)));
                        return screened;
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
                    screened.extend(pending.into_iter().map(|(id, seq, attempt, verdict)| {
                        if terminal.contains(&seq) {
                            (id, self.retry(attempt, None))
                        } else {
                            (id, verdict)
                        }
                    }));
                    return screened;
                }
            }
        }
        screened.extend(pending.into_iter().map(|(id, _, _, v)| (id, v)));
        screened
    }

    /// A failed answer to a duplicate of a child that has succeeded (the service has
    /// changed its mind, or a redelivery met a transient refusal) changes nothing in the
    /// ledger; its message is deleted, not dead-lettered: a dead letter would raise the
    /// alarm for a child that is done. A duplicate of a `FAILED` child keeps its dead
    /// letter, which is what a redrive sends again.
    async fn spare_successes(
        &self,
        run: &RunId,
        outcomes: &[ChildOutcome],
        duplicates: &[u64],
        pending: &mut [(&str, u64, u32, Verdict)],
    ) {
        for outcome in outcomes {
            if outcome.state != ChildState::Failed || !duplicates.contains(&outcome.seq) {
                continue;
            }
            match self.ledger.child_state(self.name(), run, outcome.seq).await {
                Ok(ChildState::Succeeded) => {
                    tracing::info!(%run, seq = outcome.seq, "a duplicate failed, but the child has succeeded; its message is deleted");
                    for entry in pending.iter_mut().filter(|e| e.1 == outcome.seq) {
                        entry.3 = Verdict::Delete;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%run, seq = outcome.seq, %error, "cannot read the child; its message is dead-lettered");
                }
            }
        }
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
