//! The contract's classification of one process answer, and where its result is stored.

use microprocess_shared::contract::Outcome;
use microprocess_shared::errors::error_chain;
use microprocess_shared::ledger::ChildResult;
use microprocess_shared::ledger_keys::ChildState;
use microprocess_shared::run_id::RunId;
use microprocess_shared::service_client::Delivery;

use crate::results::{self, Placement};
use crate::{Forwarder, Verdict};

impl Forwarder {
    /// The contract's classification of one process answer, with what to record.
    pub(crate) async fn judge(&self, run: &RunId, seq: u64, attempt: u32, d: &Delivery) -> Judged {
        match d.outcome {
            Outcome::Succeeded => match self.store_result(run, seq, &d.body).await {
                Ok(result) => Judged::Terminal {
                    state: ChildState::Succeeded,
                    result,
                    reason: None,
                    verdict: Verdict::Delete,
                },
                Err(reason) => {
                    tracing::error!(%run, seq, %reason, "cannot store the result; the child comes back");
                    Judged::Again(self.retry(attempt, None))
                }
            },
            Outcome::Retry if attempt < self.settings.max_attempts => {
                Judged::Again(self.retry(attempt, d.retry_after))
            }
            Outcome::Retry => {
                let reason = format!(
                    "{} (attempt {} of {})",
                    d.reason,
                    attempt.min(self.settings.max_attempts),
                    self.settings.max_attempts
                );
                Judged::Terminal {
                    state: ChildState::Failed,
                    result: None,
                    reason: Some(reason.clone()),
                    verdict: Verdict::DeadLetter(reason),
                }
            }
            Outcome::Failed => Judged::Terminal {
                state: ChildState::Failed,
                result: None,
                reason: Some(d.reason.clone()),
                verdict: Verdict::DeadLetter(d.reason.clone()),
            },
        }
    }

    pub(crate) async fn store_result(
        &self,
        run: &RunId,
        seq: u64,
        body: &[u8],
    ) -> Result<Option<ChildResult>, String> {
        match results::place(self.settings.result_storage, self.name(), run, seq, body) {
            Placement::Nowhere => Ok(None),
            Placement::Inline(text) => Ok(Some(ChildResult::Inline(text))),
            Placement::Bucket { key, text } => {
                let bucket =
                    self.settings.results_bucket.as_deref().ok_or(
                        "the result needs the results bucket, but RESULTS_BUCKET is not set",
                    )?;
                self.s3
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .content_type("application/json")
                    .tagging(results::expiry_tagging(self.settings.results_expiry_days))
                    .body(text.into_bytes().into())
                    .send()
                    .await
                    .map_err(|e| format!("cannot put s3://{bucket}/{key}: {}", error_chain(&e)))?;
                Ok(Some(results::stored(bucket, &key)))
            }
        }
    }
}

pub(crate) enum Judged {
    Terminal {
        state: ChildState,
        result: Option<ChildResult>,
        reason: Option<String>,
        verdict: Verdict,
    },
    Again(Verdict),
}
