//! The kit's own message on a microprocess queue (not part of the HTTP contract).
//!
//! The splitter sends one `process` message per child; the one writer that moves a run
//! to `REDUCING` sends one `reduce` message; the forwarder turns each into the HTTP call
//! of the contract. The attempt number is not in the body: it is the message's SQS
//! receive count, so a redelivery needs no rewrite, plus the attempts a copy says were
//! made before it ([`ATTEMPTS_MADE_ATTRIBUTE`]: a forwarder that had no time left for a
//! call sends the message back as a copy, whose receive count starts again).
//!
//! ```json
//! {"kind": "process", "run": "2026-11-01T02-00-00Z", "seq": 41, "item": "ACN-000000042", "payload": {"any": "json"}}
//! {"kind": "reduce", "run": "2026-11-01T02-00-00Z"}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::run_id::RunId;

/// A `Number` message attribute: the attempts made before this copy of a message was sent.
pub const ATTEMPTS_MADE_ATTRIBUTE: &str = "microprocess-attempts-made";

/// A message on a microprocess queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum QueueMessage {
    /// Call the process endpoint for child `seq` of `run`.
    Process {
        run: RunId,
        seq: u64,
        item: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<Value>,
    },
    /// Call the reduce endpoint of `run`.
    Reduce { run: RunId },
}

/// A message body that is not a [`QueueMessage`].
#[derive(Debug, Error)]
#[error("message body is not a microprocess queue message ({source}); expected JSON like {{\"kind\": \"process\", \"run\": \"...\", \"seq\": 0, \"item\": \"...\"}} or {{\"kind\": \"reduce\", \"run\": \"...\"}}")]
pub struct BadQueueMessage {
    #[source]
    pub source: serde_json::Error,
}

impl QueueMessage {
    /// Parses a message body.
    pub fn parse(body: &str) -> Result<QueueMessage, BadQueueMessage> {
        serde_json::from_str(body).map_err(|source| BadQueueMessage { source })
    }

    /// The message body.
    pub fn to_body(&self) -> String {
        // Serializing this enum cannot fail: every key is a string.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn run(&self) -> &RunId {
        match self {
            QueueMessage::Process { run, .. } | QueueMessage::Reduce { run } => run,
        }
    }

    /// `process` or `reduce`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            QueueMessage::Process { .. } => "process",
            QueueMessage::Reduce { .. } => "reduce",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips() {
        let run = RunId::parse("2026-11-01T02-00-00Z").unwrap();
        for message in [
            QueueMessage::Process {
                run: run.clone(),
                seq: 41,
                item: "ACN-000000042".into(),
                payload: Some(json!({"any": "json"})),
            },
            QueueMessage::Process {
                run: run.clone(),
                seq: 0,
                item: "ACN-1".into(),
                payload: None,
            },
            QueueMessage::Reduce { run: run.clone() },
        ] {
            assert_eq!(QueueMessage::parse(&message.to_body()).unwrap(), message);
        }
        assert_eq!(
            QueueMessage::Reduce { run }.to_body(),
            r#"{"kind":"reduce","run":"2026-11-01T02-00-00Z"}"#
        );
    }

    #[test]
    fn rejects_what_is_not_a_message() {
        for body in [
            "",
            "not json",
            "{}",
            r#"{"kind": "explode", "run": "r"}"#,
            r#"{"kind": "reduce", "run": "a b"}"#,
            r#"{"kind": "reduce", "run": "r", "extra": 1}"#,
            r#"{"kind": "process", "run": "r", "seq": -1, "item": "x"}"#,
        ] {
            let error = QueueMessage::parse(body).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("message body is not a microprocess queue message"),
                "{body}: {error}"
            );
        }
    }
}
