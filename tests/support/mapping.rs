//! A small stand-in for the Lambda event source mapping, over the emulator's real SQS:
//! receive a batch, hand it to a handler as the typed SQS event Lambda would, then delete
//! what the handler did not report as a batch item failure. It keeps the mapping's
//! semantics that matter to the kit: at-least-once, receive counts, partial batch
//! failures; the queue's own visibility timeout and redrive policy stay with SQS.

use std::collections::HashMap;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use aws_sdk_sqs::Client;

/// Receives up to `max` (1 to 10) messages, waiting at most `wait_seconds` for the first.
pub async fn receive(sqs: &Client, queue_url: &str, max: i32, wait_seconds: i32) -> SqsEvent {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(max)
        .wait_time_seconds(wait_seconds)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        // The event source mapping hands the function every message attribute.
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive from the emulator's queue");
    let records = out
        .messages()
        .iter()
        .map(|m| {
            let mut message = SqsMessage::default();
            message.message_id = m.message_id().map(str::to_string);
            message.receipt_handle = m.receipt_handle().map(str::to_string);
            message.body = m.body().map(str::to_string);
            message.attributes = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                        .collect()
                })
                .unwrap_or_else(HashMap::new);
            message.message_attributes = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| {
                            let mut attribute = SqsMessageAttribute::default();
                            attribute.string_value = v.string_value().map(str::to_string);
                            attribute.data_type = Some(v.data_type().to_string());
                            (k.clone(), attribute)
                        })
                        .collect()
                })
                .unwrap_or_else(HashMap::new);
            message
        })
        .collect();
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

/// Deletes every message of `event` that `response` does not report as failed, in
/// batches of ten, as the event source mapping does after a partial batch response.
pub async fn settle(sqs: &Client, queue_url: &str, event: &SqsEvent, response: &SqsBatchResponse) {
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let done: Vec<DeleteMessageBatchRequestEntry> = event
        .records
        .iter()
        .enumerate()
        .filter(|(_, m)| !failed.contains(&m.message_id.as_deref().unwrap_or_default()))
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle.clone()?)
                .build()
                .ok()
        })
        .collect();
    for chunk in done.chunks(10) {
        let out = sqs
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(chunk.to_vec()))
            .send()
            .await
            .expect("delete handled messages");
        // A batch that outlived its visibility timeout (a loaded machine) holds stale
        // receipt handles: its messages were received again, or moved to the dead-letter
        // queue. The real mapping carries on too; the message comes back or is gone, and
        // the audit at the end shows whether anything was lost or counted twice.
        let (stale, other): (Vec<_>, Vec<_>) = out
            .failed()
            .iter()
            .partition(|f| f.code() == "ReceiptHandleIsInvalid");
        if !stale.is_empty() {
            eprintln!(
                "mapping: {} delete(s) with a stale receipt handle",
                stale.len()
            );
        }
        assert!(other.is_empty(), "deletes failed: {other:?}");
    }
}

/// Messages currently on a queue (visible + in flight), from its attributes.
pub async fn depth(sqs: &Client, queue_url: &str) -> (u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    let get = |a: A| {
        out.attributes()
            .and_then(|m| m.get(&a))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        get(A::ApproximateNumberOfMessages),
        get(A::ApproximateNumberOfMessagesNotVisible),
    )
}
