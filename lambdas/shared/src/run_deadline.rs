//! A run's expected duration (`expected_duration_minutes`): when it is due, and whether
//! it will miss it at its rate so far. The sweep announces a late run on the alarm topic;
//! `status` shows it.
//!
//! A run is late when it is past its deadline (its start plus the expected duration), or
//! when its ETA at the rate so far (children done since the start, of the total once the
//! split is sealed) lands past it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ledger::RunRecord;

/// When a run started at `started_at` is expected to end.
pub fn deadline(started_at: DateTime<Utc>, expected: Duration) -> DateTime<Utc> {
    started_at + chrono::Duration::from_std(expected).unwrap_or(chrono::Duration::MAX)
}

/// When `run` ends at its rate so far, if that can be told: sealed, and some children done.
pub fn projected_end(run: &RunRecord, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let total = run.total?;
    if run.done == 0 {
        return None;
    }
    let elapsed = (now - run.started_at).num_milliseconds().max(1) as f64;
    let left = total.saturating_sub(run.done) as f64 * elapsed / run.done as f64;
    Some(now + chrono::Duration::milliseconds(left as i64))
}

/// Why `run` is late at `now`, if it is.
pub fn lateness(run: &RunRecord, expected: Duration, now: DateTime<Utc>) -> Option<String> {
    let due = deadline(run.started_at, expected);
    let minutes = expected.as_secs() / 60;
    if now > due {
        return Some(format!(
            "is past its expected duration of {minutes} min (due {}), {} of {} children done",
            due.format("%Y-%m-%d %H:%M UTC"),
            run.done,
            run.total
                .map_or_else(|| format!("{}+", run.enqueued), |t| t.to_string())
        ));
    }
    let end = projected_end(run, now)?;
    (end > due).then(|| {
        format!(
            "will miss its expected duration of {minutes} min: due {}, at its rate so far it ends about {} ({} of {} children done)",
            due.format("%Y-%m-%d %H:%M UTC"),
            end.format("%Y-%m-%d %H:%M UTC"),
            run.done,
            run.total.unwrap_or_default()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger_keys::RunState;
    use crate::run_id::RunId;

    fn run(
        started_minutes_ago: i64,
        total: Option<u64>,
        done: u64,
        now: DateTime<Utc>,
    ) -> RunRecord {
        RunRecord {
            microprocess: "m".into(),
            run: RunId::parse("r").unwrap(),
            state: RunState::Processing,
            started_at: now - chrono::Duration::minutes(started_minutes_ago),
            split_done_at: None,
            finished_at: None,
            cursor: None,
            enqueued: total.unwrap_or(done),
            pages: 0,
            split_done: total.is_some(),
            total,
            succeeded: done,
            failed: 0,
            done,
            reason: None,
            reduce_claimed_at: None,
            reduce_queued_at: None,
            counter_shards: 1,
            partitions: 1,
            retention_days: 30,
            expires_at: 0,
            split_lease: None,
            split_lease_until: None,
        }
    }

    #[test]
    fn a_run_is_late_past_its_deadline_or_when_its_eta_is() {
        let now = Utc::now();
        let hour = Duration::from_secs(3600);
        // 100 of 1000 in 10 minutes: 90 more minutes, past the hour.
        let why = lateness(&run(10, Some(1000), 100, now), hour, now).unwrap();
        assert!(
            why.starts_with("will miss its expected duration of 60 min"),
            "{why}"
        );
        // 500 of 1000 in 10 minutes: 10 more minutes, on time.
        assert!(lateness(&run(10, Some(1000), 500, now), hour, now).is_none());
        // Still splitting and nothing done: no ETA, and not yet due.
        assert!(lateness(&run(10, None, 0, now), hour, now).is_none());
        // Past the deadline, whatever the ETA.
        let why = lateness(&run(61, None, 0, now), hour, now).unwrap();
        assert!(
            why.starts_with("is past its expected duration of 60 min"),
            "{why}"
        );
    }
}
