//! The split's lease: one invocation at a time splits a run.
//!
//! A run can be asked to split twice at once: a schedule tick delivered twice, a retry of
//! an invocation Lambda thought failed, a resume by the sweep while a slow invocation
//! still splits. Each invocation takes the run's lease with a token of its own
//! (`Ledger::take_split_lease`); only the holder's checkpoints are accepted, and each one
//! extends the lease past the invocation's deadline. A hand-off passes the token on, and
//! an invocation that fails gives its lease up, so Lambda's retry takes it at once. A
//! lease that nobody extends (its process was killed, or Lambda gave up retrying it)
//! runs out a minute after that invocation's deadline, and the sweep resumes the run
//! under a lease of its own.

use std::time::Duration;

use chrono::Utc;
use microprocess_shared::ledger::RunRecord;
use microprocess_shared::ledger_keys::RunState;
use microprocess_shared::run_id::RunId;

use crate::deadline::Deadline;
use crate::{Outcome, Splitter, SplitterError};

/// How long a lease outlives its invocation's deadline: what a checkpoint may still take
/// to land after the function stopped counting.
pub const GRACE: Duration = Duration::from_secs(60);

/// A new invocation's token.
pub fn new_token() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// Until when (epoch seconds) an invocation with `deadline` holds the lease.
pub fn until(deadline: &Deadline) -> i64 {
    let held = deadline.remaining() + GRACE;
    Utc::now().timestamp() + i64::try_from(held.as_secs()).unwrap_or(i64::MAX / 2)
}

/// Takes the lease of `run` for `owner`: `Ok` with the run as it is now, or the outcome
/// of an invocation that must not split (another holds the lease, or the split is over).
pub async fn take(
    splitter: &Splitter,
    run: &RunId,
    owner: &str,
    deadline: &Deadline,
) -> Result<Result<RunRecord, Outcome>, SplitterError> {
    let microprocess = splitter.name();
    let now = Utc::now();
    if let Some(record) = splitter
        .ledger
        .take_split_lease(microprocess, run, owner, until(deadline), now)
        .await?
    {
        return Ok(Ok(record));
    }
    let Some(record) = splitter.ledger.run(microprocess, run).await? else {
        return Err(SplitterError::RunNotFound {
            microprocess: microprocess.to_owned(),
            run: run.clone(),
        });
    };
    if record.state != RunState::Splitting {
        tracing::info!(%microprocess, %run, state = %record.state, "another invocation finished the split; nothing to do");
        return Ok(Err(Outcome::NothingToDo {
            run: run.clone(),
            state: record.state.to_string(),
        }));
    }
    let until = record
        .split_lease_until
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(|| "unknown".to_owned(), |t| t.to_rfc3339());
    let why =
        format!("another invocation holds the split's lease until {until} and splits the run");
    tracing::info!(%microprocess, %run, %why, "leaving the split to it");
    Ok(Err(Outcome::Stopped {
        run: run.clone(),
        why,
    }))
}
