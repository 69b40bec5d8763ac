//! Handing the rest of a split to a fresh invocation.
//!
//! In Lambda, [`LambdaHandoff`] invokes the splitter itself asynchronously
//! (`InvocationType::Event`) with `{"run": "<id>", "resume": true}`; the new invocation
//! resumes from the checkpoint. Tests use [`RecordingHandoff`], which keeps the payloads
//! so the test can run the next invocation itself.

use std::sync::Mutex;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::enqueue::error_chain;

/// Where the rest of a split goes.
pub trait Handoff: Send + Sync {
    /// Starts a new invocation with `payload`; `Err` says why it could not.
    fn hand_off<'a>(&'a self, payload: &'a Value) -> BoxFuture<'a, Result<(), String>>;
}

/// An asynchronous invocation of a Lambda function (the splitter itself).
#[derive(Debug, Clone)]
pub struct LambdaHandoff {
    client: aws_sdk_lambda::Client,
    function_name: String,
}

impl LambdaHandoff {
    pub fn new(client: aws_sdk_lambda::Client, function_name: impl Into<String>) -> Self {
        LambdaHandoff {
            client,
            function_name: function_name.into(),
        }
    }
}

impl Handoff for LambdaHandoff {
    fn hand_off<'a>(&'a self, payload: &'a Value) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
            let output = self
                .client
                .invoke()
                .function_name(&self.function_name)
                .invocation_type(InvocationType::Event)
                .payload(Blob::new(body))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot invoke `{}` asynchronously: {}",
                        self.function_name,
                        error_chain(&e)
                    )
                })?;
            // An asynchronous invocation that Lambda queued answers 202.
            match output.status_code() {
                200..=299 => Ok(()),
                status => Err(format!(
                    "asynchronous invocation of `{}` answered status {status}",
                    self.function_name
                )),
            }
        })
    }
}

/// Keeps every hand-off payload instead of invoking anything (tests).
#[derive(Debug, Default)]
pub struct RecordingHandoff {
    payloads: Mutex<Vec<Value>>,
}

impl RecordingHandoff {
    /// The payloads handed off so far, oldest first.
    pub fn payloads(&self) -> Vec<Value> {
        self.payloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Removes and returns the oldest payload not taken yet.
    pub fn take_next(&self) -> Option<Value> {
        let mut payloads = self.payloads.lock().unwrap_or_else(|p| p.into_inner());
        (!payloads.is_empty()).then(|| payloads.remove(0))
    }
}

impl Handoff for RecordingHandoff {
    fn hand_off<'a>(&'a self, payload: &'a Value) -> BoxFuture<'a, Result<(), String>> {
        self.payloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(payload.clone());
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn the_recording_hand_off_keeps_payloads_in_order() {
        let handoff = RecordingHandoff::default();
        handoff.hand_off(&json!({"run": "a"})).await.unwrap();
        handoff.hand_off(&json!({"run": "b"})).await.unwrap();
        assert_eq!(handoff.payloads().len(), 2);
        assert_eq!(handoff.take_next(), Some(json!({"run": "a"})));
        assert_eq!(handoff.take_next(), Some(json!({"run": "b"})));
        assert_eq!(handoff.take_next(), None);
    }
}
