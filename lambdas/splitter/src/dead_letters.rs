//! What the sweep reads of the queues to find children dead-lettered with no outcome.
//!
//! SQS moves a message to the dead-letter queue on its own once `maxReceiveCount`
//! receives are used up. The forwarder records a child `FAILED` on the last receive
//! before that, without a call; but a forwarder that stops on that receive too (killed,
//! timed out, a bug that fails every time) leaves a letter whose child the ledger never
//! counts, and its run would wait for it for good. The sweep finds such letters and
//! records their children `FAILED`. It only reads: every letter is made visible again at
//! once, for `redrive`.

use std::time::Duration;

use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use microprocess_shared::errors::error_chain;

/// How long the letters the sweep reads stay hidden, should their release fail.
const HOLD: Duration = Duration::from_secs(60);

/// The microprocess's dead-letter queue, as the sweep reads it.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    client: aws_sdk_sqs::Client,
    dead_letter_queue_url: String,
}

/// One letter read from the dead-letter queue.
#[derive(Debug, Clone)]
pub struct Letter {
    pub body: String,
    receipt_handle: Option<String>,
}

impl DeadLetters {
    pub fn new(
        client: aws_sdk_sqs::Client,
        dead_letter_queue_url: impl Into<String>,
    ) -> DeadLetters {
        DeadLetters {
            client,
            dead_letter_queue_url: dead_letter_queue_url.into(),
        }
    }

    /// Reads up to `limit` letters, each hidden for a minute; three empty receives in a
    /// row end it (a short poll samples some of the servers). Release them with
    /// [`DeadLetters::release`].
    pub async fn read(&self, limit: usize) -> Result<Vec<Letter>, String> {
        let mut letters = Vec::new();
        let mut empty = 0;
        while empty < 3 && letters.len() < limit {
            let out = self
                .client
                .receive_message()
                .queue_url(&self.dead_letter_queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(HOLD.as_secs() as i32)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| format!("cannot read the dead-letter queue: {}", error_chain(&e)))?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                empty += 1;
                continue;
            }
            empty = 0;
            letters.extend(messages.into_iter().map(|m| Letter {
                body: m.body.unwrap_or_default(),
                receipt_handle: m.receipt_handle,
            }));
        }
        Ok(letters)
    }

    /// Makes the letters visible again; a failure only hides them for [`HOLD`].
    pub async fn release(&self, letters: &[Letter]) {
        for chunk in letters.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, letter)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .set_receipt_handle(letter.receipt_handle.clone())
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            if let Err(e) = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.dead_letter_queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                tracing::warn!(error = %error_chain(&e), "cannot release dead letters; they are visible again within a minute");
            }
        }
    }
}
