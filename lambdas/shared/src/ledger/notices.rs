//! Notices about a run sent to the environment's alarm topic, each at most once: that the
//! run will miss its expected duration, and that it ended other than `COMPLETED`. The
//! sweep claims a notice on the run record (`noted_late_at`, `noted_end_at`, condition
//! `attribute_not_exists`) before it publishes, and gives the claim back when the publish
//! fails, so the next sweep tries again and two sweeps never both send it.

use chrono::{DateTime, Utc};

use super::attrs::{s, time_text};
use super::error::{LedgerError, Step};
use super::runs::RunUpdate;
use super::Ledger;
use crate::ledger_keys::PARTITION_KEY_ATTRIBUTE;
use crate::run_id::RunId;

/// A notice about a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The run will miss (or has passed) its expected duration.
    Late,
    /// The run ended `SPLIT_FAILED`, `REDUCE_FAILED` or `CANCELLED`.
    Ended,
}

impl Notice {
    fn attribute(self) -> &'static str {
        match self {
            Notice::Late => "noted_late_at",
            Notice::Ended => "noted_end_at",
        }
    }
}

impl Ledger {
    /// Claims `notice` for the run: `true` for the one caller that may send it.
    pub async fn claim_notice(
        &self,
        microprocess: &str,
        run: &RunId,
        notice: Notice,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let context = self.context(Step::Notice, microprocess, Some(run));
        let change = RunUpdate::new(
            format!("SET #{} = :now", notice.attribute()),
            format!(
                "attribute_exists(#{PARTITION_KEY_ATTRIBUTE}) AND attribute_not_exists(#{})",
                notice.attribute()
            ),
            &[PARTITION_KEY_ATTRIBUTE, notice.attribute()],
        )
        .value(":now", s(time_text(now)));
        Ok(self
            .update_run(&context, microprocess, run, change)
            .await?
            .is_some())
    }

    /// Gives a claimed notice back (its publish failed), so the next sweep sends it.
    pub async fn release_notice(
        &self,
        microprocess: &str,
        run: &RunId,
        notice: Notice,
    ) -> Result<(), LedgerError> {
        let context = self.context(Step::Notice, microprocess, Some(run));
        let change = RunUpdate::new(
            format!("REMOVE #{}", notice.attribute()),
            format!("attribute_exists(#{PARTITION_KEY_ATTRIBUTE})"),
            &[PARTITION_KEY_ATTRIBUTE, notice.attribute()],
        );
        self.update_run(&context, microprocess, run, change).await?;
        Ok(())
    }
}
