//! The forwarder Lambda: delivers microprocess queue messages to the service.
//!
//! It receives SQS batches from the microprocess's queue (event source mapping with
//! `ReportBatchItemFailures`). In the full kit each message becomes a signed process or
//! reduce call on the service's queue host and a ledger write; this release parses and
//! logs each message and reports every one of them as a batch item failure, so SQS keeps
//! them all (and, after `maxReceiveCount`, moves them to the dead-letter queue) instead
//! of deleting work that was never delivered.

use std::collections::HashSet;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Diagnostic, LambdaEvent};
use microprocess_shared::queue_message::QueueMessage;
use microprocess_shared::settings::ForwarderSettings;
use thiserror::Error;

/// Why a whole batch goes back to the queue.
#[derive(Debug, Error)]
pub enum ForwarderError {
    #[error(
        "{count} message(s) of the batch have no `messageId`, so they cannot be reported \
         one by one; the whole batch is left on the queue"
    )]
    MessagesWithoutId { count: usize },
}

impl From<ForwarderError> for Diagnostic {
    fn from(error: ForwarderError) -> Diagnostic {
        Diagnostic {
            error_type: "Forwarder.MessagesWithoutId".to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// Handles one SQS batch. Every message with a `messageId` is reported as a batch item
/// failure, each id once, in batch order. A message without one cannot be reported (an
/// empty or unknown `itemIdentifier` fails the batch anyway), and leaving it out would
/// let SQS delete it, so such a batch is answered with an error, which keeps every
/// message of it on the queue.
pub async fn forward_batch(
    settings: &ForwarderSettings,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, ForwarderError> {
    let (batch, context) = event.into_parts();
    let mut response = SqsBatchResponse::default();
    let mut reported = HashSet::new();
    let mut without_id = 0;
    for message in &batch.records {
        let message_id = message.message_id.as_deref().filter(|id| !id.is_empty());
        let span = tracing::info_span!(
            "message",
            request_id = %context.request_id,
            microprocess = %settings.common.microprocess_name,
            message_id = message_id.unwrap_or_default(),
            receive_count = message
                .attributes
                .get("ApproximateReceiveCount")
                .map(String::as_str)
                .unwrap_or_default(),
        );
        span.in_scope(|| log_message(message));
        match message_id {
            Some(id) => {
                if reported.insert(id) {
                    response.add_failure(id);
                }
            }
            None => {
                without_id += 1;
                span.in_scope(|| {
                    tracing::error!("message has no messageId; the whole batch stays on the queue")
                });
            }
        }
    }
    if without_id > 0 {
        return Err(ForwarderError::MessagesWithoutId { count: without_id });
    }
    Ok(response)
}

/// One log line per message: what it asks for, and that it stays on the queue.
fn log_message(message: &SqsMessage) {
    let body = message.body.as_deref().unwrap_or_default();
    match QueueMessage::parse(body) {
        Ok(QueueMessage::Process { run, seq, item, .. }) => tracing::warn!(
            kind = "process",
            %run,
            seq,
            item,
            "not forwarded: this release does not dispatch yet; the message stays on the queue"
        ),
        Ok(QueueMessage::Reduce { run }) => tracing::warn!(
            kind = "reduce",
            %run,
            "not forwarded: this release does not dispatch yet; the message stays on the queue"
        ),
        Err(error) => tracing::error!(
            %error,
            body_bytes = body.len(),
            "unreadable message; it stays on the queue until it moves to the dead-letter queue"
        ),
    }
}
