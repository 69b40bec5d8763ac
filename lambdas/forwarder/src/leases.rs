//! The forwarder's side of callback completion (contract 1.1, section 2b).
//!
//! A child answered `202 Accepted` stays on the queue as its own lease timer: its message
//! goes back as a copy delayed by the rest of the lease (at most SQS's 15 minutes a hop,
//! so no table is scanned for expired leases and the queue's retention never runs out
//! under a long task), carrying the attempts made. When a copy comes back, one read of
//! the child's lease says what it is for:
//!
//! | lease | the message |
//! |---|---|
//! | a report was claimed | its outcome is counted (again: harmless) and the message deleted, or dead-lettered when `FAILED` |
//! | accepted and still held (a heartbeat renewed it) | waits again, no attempt spent |
//! | accepted and run out | the attempt is lost: called again as the next attempt, or `FAILED` after the last |
//! | a call is out, or it was not accepted | called (a retry after a `5xx`, or a forwarder that stopped mid-call) |
//! | none, after an earlier attempt | the report was counted and the lease closed: deleted, or dead-lettered when `FAILED`; still pending: called |
//! | none, first attempt | called (a new child, or one sent back by `redrive`) |

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use microprocess_shared::ledger::{ChildOutcome, Lease, Opened};
use microprocess_shared::ledger_keys::ChildState;
use microprocess_shared::run_id::RunId;

use crate::verdicts::MAX_DELAY;
use crate::{Forwarder, ProcessWork, Verdict};

/// An outcome known without a call: counted with the batch's answers.
pub(crate) struct Settled<'a> {
    pub id: &'a str,
    pub attempt: u32,
    pub outcome: ChildOutcome,
    pub verdict: Verdict,
}

impl<'a> Settled<'a> {
    fn of(id: &'a str, attempt: u32, outcome: ChildOutcome) -> Settled<'a> {
        let verdict = verdict_of(&outcome);
        Settled {
            id,
            attempt,
            outcome,
            verdict,
        }
    }
}

/// A terminal outcome's message: deleted, or dead-lettered when `FAILED` (what `redrive`
/// sends back).
pub(crate) fn verdict_of(outcome: &ChildOutcome) -> Verdict {
    match outcome.state {
        ChildState::Failed => Verdict::DeadLetter(
            outcome
                .reason
                .clone()
                .unwrap_or_else(|| "reported failed".into()),
        ),
        _ => Verdict::Delete,
    }
}

/// What one message of a callback microprocess needs, from its lease.
enum Next<'a> {
    Call(ProcessWork<'a>),
    Settle(Settled<'a>),
    Verdict(&'a str, Verdict),
}

/// The copy that waits out `lease` from `now`: no attempt spent.
fn wait_out(attempt: u32, until: DateTime<Utc>, now: DateTime<Utc>) -> Verdict {
    let left = (until - now).to_std().unwrap_or_default() + Duration::from_secs(1);
    Verdict::Requeue {
        attempts_made: attempt.saturating_sub(1),
        delay: left.min(MAX_DELAY),
    }
}

impl Forwarder {
    /// Sorts the messages of a callback microprocess by their leases (see the module docs)
    /// into the ones to call, the outcomes to count, and the verdicts of the rest.
    pub(crate) async fn check_leases<'a>(
        &self,
        run: &RunId,
        work: Vec<ProcessWork<'a>>,
        lease: Duration,
    ) -> (
        Vec<ProcessWork<'a>>,
        Vec<Settled<'a>>,
        Vec<(&'a str, Verdict)>,
    ) {
        let now = Utc::now();
        let nexts = join_all(
            work.into_iter()
                .map(|entry| self.next_for(run, entry, lease, now)),
        )
        .await;
        let (mut call, mut settled, mut verdicts) = (Vec::new(), Vec::new(), Vec::new());
        for next in nexts {
            match next {
                Next::Call(entry) => call.push(entry),
                Next::Settle(s) => settled.push(s),
                Next::Verdict(id, v) => verdicts.push((id, v)),
            }
        }
        (call, settled, verdicts)
    }

    async fn next_for<'a>(
        &self,
        run: &RunId,
        entry: ProcessWork<'a>,
        lease_time: Duration,
        now: DateTime<Utc>,
    ) -> Next<'a> {
        let (received, seq) = (&entry.0, entry.1);
        let (id, attempt) = (received.id, received.attempt);
        let lease = match self.ledger.lease(self.name(), run, seq).await {
            Ok(lease) => lease,
            Err(error) => {
                tracing::error!(%run, seq, %error, "cannot read the child's lease; it comes back later");
                return Next::Verdict(id, self.retry(attempt, None));
            }
        };
        match lease {
            Some(Lease {
                reported: Some(outcome),
                ..
            }) => Next::Settle(Settled::of(id, attempt, outcome)),
            Some(lease) if lease.holds(now) => {
                tracing::debug!(%run, seq, until = %lease.until, "accepted and in progress; waiting out its lease");
                Next::Verdict(id, wait_out(attempt, lease.until, now))
            }
            Some(lease) if lease.accepted.is_some() && attempt > self.settings.max_attempts => {
                let reason = format!(
                    "no report within the lease ({} s) of attempt {} of {}",
                    lease_time.as_secs(),
                    lease.accepted.unwrap_or(lease.attempt),
                    self.settings.max_attempts
                );
                tracing::warn!(%run, seq, %reason, "the last attempt's lease ran out");
                Next::Settle(Settled::of(
                    id,
                    attempt,
                    ChildOutcome {
                        seq,
                        item: entry.2.clone(),
                        state: ChildState::Failed,
                        attempts: lease.attempt,
                        result: None,
                        reason: Some(reason),
                    },
                ))
            }
            Some(lease) => {
                if let Some(accepted) = lease.accepted {
                    tracing::warn!(%run, seq, accepted, attempt, "the lease ran out with no report; calling again");
                }
                Next::Call(entry)
            }
            None if attempt > 1 => match self.ledger.child_state(self.name(), run, seq).await {
                Ok(ChildState::Succeeded) => Next::Verdict(id, Verdict::Delete),
                Ok(ChildState::Failed) => match self.ledger.child(self.name(), run, seq).await {
                    Ok(Some(child)) => Next::Verdict(
                        id,
                        Verdict::DeadLetter(child.reason.unwrap_or_else(|| "failed".into())),
                    ),
                    Ok(None) => Next::Verdict(id, Verdict::DeadLetter("failed".into())),
                    Err(error) => {
                        tracing::error!(%run, seq, %error, "cannot read the child; it comes back later");
                        Next::Verdict(id, self.retry(attempt, None))
                    }
                },
                Ok(ChildState::Pending) => Next::Call(entry),
                Err(error) => {
                    tracing::error!(%run, seq, %error, "cannot read the child; it comes back later");
                    Next::Verdict(id, self.retry(attempt, None))
                }
            },
            None => Next::Call(entry),
        }
    }

    /// Opens the lease of a call about to go out; `Err` holds what to do instead.
    pub(crate) async fn open_lease(
        &self,
        run: &RunId,
        seq: u64,
        item: &str,
        attempt: u32,
        lease: Duration,
    ) -> Result<(), Option<ChildOutcome>> {
        let now = Utc::now();
        let until = now
            + chrono::Duration::from_std(self.settings.process_timeout + lease).unwrap_or_default();
        match self
            .ledger
            .open_lease(self.name(), run, seq, item, attempt, until, now)
            .await
        {
            Ok(Opened::Opened) => Ok(()),
            Ok(Opened::Reported(outcome)) => Err(Some(outcome)),
            Err(error) => {
                tracing::error!(%run, seq, %error, "cannot open the child's lease; it comes back later");
                Err(None)
            }
        }
    }

    /// A `202`: the lease of `attempt` runs from now, and the message waits it out.
    pub(crate) async fn accepted(
        &self,
        run: &RunId,
        seq: u64,
        attempt: u32,
        lease: Duration,
    ) -> Result<Verdict, ChildOutcome> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or_default();
        match self
            .ledger
            .accept_lease(self.name(), run, seq, attempt, until)
            .await
        {
            Ok(Opened::Opened) => {}
            Ok(Opened::Reported(outcome)) => return Err(outcome),
            Err(error) => {
                // The lease opened before the call still runs out a call's time later.
                tracing::warn!(%run, seq, %error, "cannot note the acceptance; the lease opened before the call holds");
            }
        }
        tracing::info!(%run, seq, attempt, lease_seconds = lease.as_secs(), "accepted; in progress until reported");
        Ok(Verdict::Requeue {
            attempts_made: attempt,
            delay: (lease + Duration::from_secs(1)).min(MAX_DELAY),
        })
    }

    /// Closes the leases of counted children (a lease left behind is harmless: the next
    /// copy of its message finds the child counted, and the record expires).
    pub(crate) async fn close_leases(&self, run: &RunId, seqs: &[u64]) {
        if seqs.is_empty() {
            return;
        }
        if let Err(error) = self.ledger.close_leases(self.name(), run, seqs).await {
            tracing::warn!(%run, %error, "cannot close the leases of counted children");
        }
    }
}
