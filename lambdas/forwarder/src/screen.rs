//! Which messages of a run are worth a call, read from the run's record before any call:
//! none of a run that is not in the ledger (dead-lettered), has ended without a reduce
//! (`SPLIT_FAILED`, `CANCELLED`: dropped), or whose records have expired (dead-lettered:
//! a child counted again after its record expired would be counted twice). Of a run whose
//! every child is counted, a message is a duplicate or a redrive: one of a `SUCCEEDED`
//! child is deleted without a call, one of a `FAILED` child is called, and one of a child
//! the ledger no longer holds is dead-lettered, since it cannot be accounted for.

use chrono::Utc;
use microprocess_shared::ledger::RunRecord;
use microprocess_shared::ledger_keys::{ChildState, RunState};
use microprocess_shared::run_id::RunId;

use crate::{Forwarder, ProcessWork, Verdict};

impl Forwarder {
    /// Splits `work` into the messages to call and the verdicts of the others.
    pub(crate) async fn screen<'a>(
        &self,
        run: &RunId,
        work: Vec<ProcessWork<'a>>,
    ) -> (Vec<ProcessWork<'a>>, Vec<(&'a str, Verdict)>) {
        let all = |work: Vec<ProcessWork<'a>>, verdict: &dyn Fn(u32) -> Verdict| {
            let verdicts = work
                .into_iter()
                .map(|(r, ..)| (r.id, verdict(r.attempt)))
                .collect();
            (Vec::new(), verdicts)
        };
        let record = match self.ledger.run(self.name(), run).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                let reason = format!("run `{run}` of `{}` is not in the ledger", self.name());
                tracing::error!(%run, "{reason}; dead-lettering its messages");
                return all(work, &|_| Verdict::DeadLetter(reason.clone()));
            }
            Err(error) => {
                tracing::error!(%run, error = %error, "cannot read the run; the batch comes back later");
                return all(work, &|attempt| self.retry(attempt, None));
            }
        };
        if matches!(record.state, RunState::SplitFailed | RunState::Cancelled) {
            // The run has ended: no reduce will come, so no call is worth making.
            tracing::info!(%run, state = %record.state, messages = work.len(), "the run has ended; its messages are dropped without a call");
            return all(work, &|_| Verdict::Delete);
        }
        if let Some(reason) = expired(&record) {
            tracing::error!(%run, "{reason}; dead-lettering its messages");
            return all(work, &|_| Verdict::DeadLetter(reason.clone()));
        }
        if record.total.is_none_or(|total| record.done < total) {
            return (work, Vec::new());
        }
        let mut call = Vec::new();
        let mut verdicts = Vec::new();
        let (mut duplicates, mut redelivered) = (false, false);
        for entry in work {
            let seq = entry.1;
            match self.ledger.child_state(self.name(), run, seq).await {
                Ok(ChildState::Failed) => call.push(entry),
                Ok(ChildState::Succeeded) => {
                    tracing::info!(%run, seq, "a duplicate of a child that has succeeded; deleted without a call");
                    duplicates = true;
                    redelivered |= entry.0.attempt > 1;
                    verdicts.push((entry.0.id, Verdict::Delete));
                }
                Ok(ChildState::Pending) => {
                    let reason = format!(
                        "seq {seq} of run `{run}` is not in the ledger, though every child of \
                         the run is counted: its record has expired (`results.retention_days`), \
                         and counting it now would count it twice"
                    );
                    tracing::error!(%run, seq, "{reason}");
                    verdicts.push((entry.0.id, Verdict::DeadLetter(reason)));
                }
                Err(error) => {
                    tracing::error!(%run, seq, error = %error, "cannot read the child; it comes back later");
                    verdicts.push((entry.0.id, self.retry(entry.0.attempt, None)));
                }
            }
        }
        // As after a write that found the run complete: a run whose last writer stopped
        // before its claim is claimed here, and the batch of a claimer that stopped
        // between its claim and its reduce message (it comes back with every child
        // counted) queues the reduce.
        if duplicates {
            self.claim_and_send_reduce(&record, redelivered).await;
        }
        (call, verdicts)
    }
}

/// Why a run's records can no longer account for its children: their time to live has
/// passed (DynamoDB deletes expired items within days, so an expired record may still be
/// read).
fn expired(record: &RunRecord) -> Option<String> {
    let now = Utc::now().timestamp();
    (record.expires_at > 0 && record.expires_at <= now).then(|| {
        format!(
            "the ledger records of run `{}` expired at {} (`results.retention_days` = {}); a \
             child counted now could be counted twice",
            record.run,
            chrono::DateTime::from_timestamp(record.expires_at, 0)
                .map_or_else(|| record.expires_at.to_string(), |t| t.to_rfc3339()),
            record.retention_days
        )
    })
}
