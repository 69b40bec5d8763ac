//! Moving a message to the dead-letter queue with the reason it failed.

use aws_lambda_events::sqs::SqsMessage;
use aws_sdk_sqs::types::MessageAttributeValue;
use microprocess_shared::errors::error_chain;
use microprocess_shared::printable::printable;

use crate::Forwarder;

impl Forwarder {
    /// Sends a copy with the reason to the dead-letter queue; `true` when it is there, so
    /// the original may be deleted.
    pub(crate) async fn dead_letter(&self, message: &SqsMessage, reason: &str) -> bool {
        let attribute = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .ok()
        };
        let mut send = self
            .sqs
            .send_message()
            .queue_url(&self.settings.dead_letter_queue_url)
            .message_body(message.body.clone().unwrap_or_default());
        // Whatever produced the reason, an attribute SQS refuses would keep the message
        // from its dead-letter queue for good.
        let reason_text: String = printable(reason).chars().take(1024).collect();
        if let Some(a) = attribute(&reason_text) {
            send = send.message_attributes("microprocess-failure-reason", a);
        }
        if let Some(a) = message.message_id.as_deref().and_then(attribute) {
            send = send.message_attributes("microprocess-source-message-id", a);
        }
        match send.send().await {
            Ok(_) => {
                tracing::warn!(message_id = ?message.message_id, reason, "moved to the dead-letter queue");
                true
            }
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "cannot reach the dead-letter queue; the message comes back");
                false
            }
        }
    }
}
