//! The failure tolerance of a microprocess (`process.tolerated_failure_percent`): a run
//! whose failed children pass that share of its total is cancelled with the reason, as
//! Step Functions fails a Map Run. It is judged on the run's counters once the split is
//! sealed (the total is known), so it acts at the pace the counters move: a block of 100
//! children at a time.

use chrono::Utc;
use microprocess_shared::ledger::RunRecord;
use microprocess_shared::ledger_keys::RunState;

use crate::Forwarder;

/// Whether `failed` of `total` passes `percent`.
pub fn past(failed: u64, total: u64, percent: u32) -> bool {
    u128::from(failed) * 100 > u128::from(total) * u128::from(percent)
}

impl Forwarder {
    /// Cancels `run` when its failures pass the tolerance; `true` when this call did.
    pub(crate) async fn check_tolerance(&self, run: &RunRecord) -> bool {
        let (Some(percent), Some(total)) = (self.settings.tolerated_failure_percent, run.total)
        else {
            return false;
        };
        if !matches!(run.state, RunState::Processing) || !past(run.failed, total, percent) {
            return false;
        }
        let reason = format!(
            "{} of {total} children failed, more than the tolerated {percent}% (`process.tolerated_failure_percent`)",
            run.failed
        );
        match self
            .ledger
            .cancel(self.name(), &run.run, &reason, Utc::now())
            .await
        {
            Ok(None) => {
                tracing::warn!(run = %run.run, %reason, "run cancelled: too many failures");
                true
            }
            Ok(Some(state)) => {
                tracing::info!(run = %run.run, %state, "the run ended before the tolerance was passed");
                false
            }
            Err(error) => {
                tracing::error!(run = %run.run, %error, "cannot cancel the run past its tolerance; the next write tries again");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::past;

    #[test]
    fn the_tolerance_is_passed_only_above_the_percentage() {
        assert!(!past(10, 100, 10));
        assert!(past(11, 100, 10));
        assert!(past(1, 100, 0));
        assert!(!past(0, 100, 0));
        assert!(!past(190_000, 19_000_000, 1));
        assert!(past(190_001, 19_000_000, 1));
    }
}
