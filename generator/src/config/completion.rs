//! `process.completion` and `process.lease_seconds`: callback completion (contract 1.1,
//! section 2b) and its timing chain.
//!
//! An accepted child waits under its lease, which a heartbeat renews; each lease that
//! runs out costs an attempt. While it waits its message is a fresh copy every at most 15
//! minutes (SQS's longest delay), so the queue's retention never runs out under it; what
//! must outlast the child is its run's ledger records: `max_attempts` leases, each after
//! a call of `timeout_seconds`, fit in `results.retention_days`.

use microprocess_shared::settings::{MAX_LEASE_SECONDS, MIN_LEASE_SECONDS};

use super::checks::Checker;
use super::microprocess::Layers;
use super::model::{Completion, Process};

/// The lease when the config sets none: 15 minutes, renewed by heartbeats.
pub const DEFAULT_LEASE_SECONDS: u32 = 900;

/// How the children of microprocess `name` complete.
pub(super) fn completion(c: &mut Checker, name: &str, l: &Layers<'_>) -> Completion {
    let key = |k: &str| format!("{name}.{k}");
    let mode = l.get(|m| m.process.as_ref()?.completion.as_ref());
    let lease = l.get(|m| m.process.as_ref()?.lease_seconds.as_ref());
    let callback = match &mode {
        None => false,
        Some(v) => {
            c.choice(v, &key("process.completion"), &["response", "callback"]) == Some("callback")
        }
    };
    if !callback {
        if let Some(lease) = lease {
            c.error(
                &lease.place,
                format!("`{}` applies only to callback completion", key("process.lease_seconds")),
                format!("set `{} = \"callback\"` for long tasks reported to the callback, or remove the lease", key("process.completion")),
            );
        }
        return Completion::Response;
    }
    let lease_seconds = c.int(
        lease,
        &key("process.lease_seconds"),
        DEFAULT_LEASE_SECONDS,
        MIN_LEASE_SECONDS as u32,
        MAX_LEASE_SECONDS as u32,
        "how long an accepted child may go without a report or heartbeat before its attempt counts as lost",
    );
    Completion::Callback { lease_seconds }
}

/// The longest a child with callback completion can take before it is `FAILED`, in
/// seconds: every attempt's call and lease running out.
pub fn longest_child_seconds(process: &Process) -> Option<u64> {
    let lease = process.completion.lease_seconds()?;
    Some(u64::from(process.max_attempts) * (u64::from(process.timeout_seconds) + u64::from(lease)))
}

/// The child's longest life must fit in its run's records.
pub(super) fn check_chain(
    c: &mut Checker,
    name: &str,
    l: &Layers<'_>,
    process: &Process,
    retention_days: u32,
) {
    let Some(longest) = longest_child_seconds(process) else {
        return;
    };
    let retention = u64::from(retention_days) * 86_400;
    if longest <= retention {
        return;
    }
    let key = |k: &str| format!("{name}.{k}");
    let lease_v = l.get(|m| m.process.as_ref()?.lease_seconds.as_ref());
    let attempts_v = l.get(|m| m.process.as_ref()?.max_attempts.as_ref());
    let retention_v = l.get(|m| m.results.as_ref()?.retention_days.as_ref());
    let mode_v = l.get(|m| m.process.as_ref()?.completion.as_ref());
    let Some(place) = l
        .blame(
            lease_v.as_ref().map(|v| &v.place),
            attempts_v.as_ref().map(|v| &v.place),
        )
        .or(retention_v.as_ref().map(|v| &v.place))
        .or(mode_v.as_ref().map(|v| &v.place))
    else {
        return;
    };
    c.error(
        place,
        format!(
            "`{}` ({}) leases of {} s after calls of up to {} s can keep a child in progress {:.1} days, past its run's records (`{}` = {retention_days})",
            key("process.max_attempts"),
            process.max_attempts,
            process.completion.lease_seconds().unwrap_or_default(),
            process.timeout_seconds,
            longest as f64 / 86_400.0,
            key("results.retention_days"),
        ),
        "a report after the records expire would count the child again: lower the lease or the attempts, or keep records longer",
    );
}
