//! What becomes of each message of a batch: deleted, delayed for its next attempt, moved
//! to the dead-letter queue, or sent back unharmed; and the partial batch response that says so to Lambda.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};
use aws_sdk_sqs::types::MessageAttributeValue;
use futures::future::join_all;
use microprocess_shared::errors::error_chain;
use microprocess_shared::queue_message::ATTEMPTS_MADE_ATTRIBUTE;

use crate::{backoff, Forwarder};

/// SQS's longest `DelaySeconds`.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// What happens to one message once the batch is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Done (or a harmless duplicate): SQS deletes it.
    Delete,
    /// Comes back after this wait.
    Retry(Duration),
    /// Moves to the dead-letter queue with this reason.
    DeadLetter(String),
    /// Goes back to the queue with no attempt spent: its call was never made (or was
    /// accepted, and the copy is the check of its lease). A copy is sent that carries the
    /// attempts made so far (the receive count of the copy starts again), delayed by
    /// `delay` (at most SQS's 15 minutes), and the original is deleted.
    Requeue { attempts_made: u32, delay: Duration },
}

impl Forwarder {
    pub(crate) fn retry(&self, attempt: u32, retry_after: Option<Duration>) -> Verdict {
        Verdict::Retry(backoff::delay(
            self.settings.backoff_base,
            attempt,
            retry_after,
            self.settings.max_retry_after,
            fastrand::u64(..),
        ))
    }

    /// Carries out the verdicts and builds the batch response: only messages that must
    /// come back are reported, each id once.
    pub(crate) async fn apply(
        &self,
        records: &[SqsMessage],
        verdicts: BTreeMap<&str, Verdict>,
        held_since: std::time::Instant,
    ) -> SqsBatchResponse {
        let by_id: BTreeMap<&str, &SqsMessage> = records
            .iter()
            .filter_map(|m| m.message_id.as_deref().map(|id| (id, m)))
            .collect();
        let actions = verdicts.iter().map(|(id, verdict)| {
            let message = by_id.get(id).copied();
            async move {
                let keep = match (verdict, message) {
                    (Verdict::Delete, _) => false,
                    (Verdict::Retry(wait), Some(m)) => {
                        self.delay_message(m, *wait, held_since.elapsed()).await;
                        true
                    }
                    (Verdict::DeadLetter(reason), Some(m)) => !self.dead_letter(m, reason).await,
                    (
                        Verdict::Requeue {
                            attempts_made,
                            delay,
                        },
                        Some(m),
                    ) => !self.requeue(m, *attempts_made, *delay).await,
                    (_, None) => true,
                };
                keep.then(|| id.to_string())
            }
        });
        let keep: Vec<String> = join_all(actions).await.into_iter().flatten().collect();
        batch_response(records, keep.iter().map(String::as_str))
    }

    /// Sends a copy of `message` that says `attempts_made`; `true` when it is on the
    /// queue, so the original may be deleted. When the copy cannot be sent the original
    /// comes back after its visibility timeout, at the cost of one attempt.
    async fn requeue(&self, message: &SqsMessage, attempts_made: u32, delay: Duration) -> bool {
        let attribute = MessageAttributeValue::builder()
            .data_type("Number")
            .string_value(attempts_made.to_string())
            .build();
        let mut send = self
            .sqs
            .send_message()
            .queue_url(&self.settings.common.queue_url)
            .message_body(message.body.clone().unwrap_or_default())
            .delay_seconds(i32::try_from(delay.min(MAX_DELAY).as_secs()).unwrap_or(0));
        if let Ok(a) = attribute {
            send = send.message_attributes(ATTEMPTS_MADE_ATTRIBUTE, a);
        }
        match send.send().await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "cannot requeue the message; it comes back after its visibility timeout");
                false
            }
        }
    }

    pub(crate) async fn delay_message(&self, message: &SqsMessage, wait: Duration, held: Duration) {
        let Some(receipt) = message.receipt_handle.as_deref() else {
            return;
        };
        let result = self
            .sqs
            .change_message_visibility()
            .queue_url(&self.settings.common.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(backoff::visibility_seconds(wait, held))
            .send()
            .await;
        if let Err(e) = result {
            // The message still comes back, after the queue's own visibility timeout.
            tracing::warn!(error = %error_chain(&e), "cannot delay the message's next attempt");
        }
    }
}

/// The partial batch response reporting `keep`: only ids of the batch, never an empty
/// one, each once, in batch order. (An empty or unknown `itemIdentifier` would make
/// Lambda retry the whole batch.)
pub fn batch_response<'a>(
    batch: &[SqsMessage],
    keep: impl IntoIterator<Item = &'a str>,
) -> SqsBatchResponse {
    let keep: std::collections::BTreeSet<&str> = keep.into_iter().collect();
    let mut response = SqsBatchResponse::default();
    let mut reported = std::collections::BTreeSet::new();
    for id in batch.iter().filter_map(|m| m.message_id.as_deref()) {
        if !id.is_empty() && keep.contains(id) && reported.insert(id) {
            response.add_failure(id);
        }
    }
    response
}
