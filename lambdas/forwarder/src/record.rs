//! Terminal outcomes into the ledger.

use std::time::Instant;

use chrono::Utc;
use microprocess_shared::ledger::{ChildOutcome, LedgerError, Recorded};
use microprocess_shared::run_id::RunId;

use crate::{Forwarder, DEADLINE_MARGIN};

impl Forwarder {
    /// Records the outcomes, again while the ledger is only overloaded and the invocation
    /// has time for another round of the ledger's retries: a batch sent back would cost
    /// each of its children an attempt and a second call of the service. Recording again
    /// is safe: each child is counted once however often it is written.
    pub(crate) async fn record(
        &self,
        run: &RunId,
        outcomes: &[ChildOutcome],
        deadline: Instant,
    ) -> Result<Recorded, LedgerError> {
        let round = self.ledger.retry_policy().worst_case() + DEADLINE_MARGIN;
        loop {
            match self
                .ledger
                .record_children(self.name(), run, outcomes, Utc::now())
                .await
            {
                Err(error @ LedgerError::RetriesExhausted { .. })
                    if Instant::now() + round < deadline =>
                {
                    tracing::warn!(%run, %error, "the ledger is overloaded; recording again before the deadline");
                }
                other => return other,
            }
        }
    }
}
