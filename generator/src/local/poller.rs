//! The SQS event source mapping, as Lambda runs it: pollers receive batches (up to the
//! mapping's batch size, long polling), hand each to a warm function instance as the
//! SQS event Lambda sends, and settle it from the answer:
//!
//! - an answer without failures deletes the whole batch;
//! - a partial batch response (`ReportBatchItemFailures`) deletes every message except
//!   those it lists; an empty or unknown `itemIdentifier`, or an answer that is not a
//!   batch response, fails the whole batch, as Lambda documents;
//! - an invocation error, a timeout or a crash deletes nothing: the batch comes back
//!   after the queue's visibility timeout, and the queue's own redrive policy moves a
//!   message to its dead-letter queue at `maxReceiveCount` (that stays with SQS).
//!
//! There are `MaximumConcurrency` pollers per mapping, each with its own instance, so at
//! most that many invocations run at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use axum::body::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use super::discover::MappingSpec;
use super::instance::Instance;
use super::logs::LogSink;
use super::runtime_api::{Failure, Outcome};
use super::stats::FunctionStats;

/// A chaos kill comes this soon at most after the batch is handed out.
const CHAOS_WINDOW: Duration = Duration::from_millis(100);

/// How a poller receives.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// `WaitTimeSeconds` of each receive (0–20).
    pub wait_seconds: i32,
    /// Pause after an empty receive (with short polling) or a failed one.
    pub idle_pause: Duration,
    /// Chance (0–1) that a batch's process is killed in the middle of it.
    pub kill_rate: f64,
}

/// What happens to a batch after its invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Delete every message.
    DeleteAll,
    /// Delete every message except these (reported failures).
    KeepOnly(BTreeSet<String>),
    /// Delete nothing, for this reason.
    KeepAll(String),
}

/// The settlement of a batch with message ids `ids` after `result`, by Lambda's rules.
pub fn settle(
    ids: &[String],
    result: &Result<Outcome, Failure>,
    report_batch_item_failures: bool,
) -> Settlement {
    let body = match result {
        Err(failure) => return Settlement::KeepAll(failure.to_string()),
        Ok(Outcome::Error { error_type, body }) => {
            return Settlement::KeepAll(format!(
                "function error {error_type}: {}",
                String::from_utf8_lossy(body)
            ))
        }
        Ok(Outcome::Response(body)) => body,
    };
    if !report_batch_item_failures {
        return Settlement::DeleteAll;
    }
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        return Settlement::DeleteAll;
    }
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return Settlement::KeepAll(format!(
                "the answer is not JSON ({e}): the whole batch fails"
            ))
        }
    };
    let failures = match &value {
        Value::Null => return Settlement::DeleteAll,
        Value::Object(map) => match map.get("batchItemFailures") {
            None | Some(Value::Null) => return Settlement::DeleteAll,
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Settlement::KeepAll(format!(
                    "`batchItemFailures` is `{other}`, not a list: the whole batch fails"
                ))
            }
        },
        other => {
            return Settlement::KeepAll(format!(
                "the answer `{other}` is not a batch response: the whole batch fails"
            ))
        }
    };
    let mut keep = BTreeSet::new();
    for item in failures {
        match item.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if !id.is_empty() && ids.iter().any(|m| m == id) => {
                keep.insert(id.to_string());
            }
            _ => {
                return Settlement::KeepAll(format!(
                "batch item failure `{item}` names no message of the batch: the whole batch fails"
            ))
            }
        }
    }
    if keep.is_empty() {
        Settlement::DeleteAll
    } else {
        Settlement::KeepOnly(keep)
    }
}

/// The SQS event Lambda hands a function for `messages` of `queue_arn`.
pub fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), Value::String(v.clone())))
                        .collect()
                })
                .unwrap_or_default();
            let message_attributes: Map<String, Value> = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(name, v)| {
                            (
                                name.clone(),
                                json!({
                                    "stringValue": v.string_value(),
                                    "binaryValue": v.binary_value().map(|b| super::code::base64(b.as_ref())),
                                    "stringListValues": v.string_list_values(),
                                    "binaryListValues": v.binary_list_values().iter().map(|b| super::code::base64(b.as_ref())).collect::<Vec<_>>(),
                                    "dataType": v.data_type(),
                                }),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "md5OfMessageAttributes": m.md5_of_message_attributes(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// One poller of a mapping, with its instance, until the runner stops.
/// What `UpdateEventSourceMapping` sets on a mapping the runner polls: whether it
/// delivers, and how many of its pollers do (at most the ones started with it).
#[derive(Debug)]
pub struct MappingControl {
    pub enabled: std::sync::atomic::AtomicBool,
    pub concurrency: std::sync::atomic::AtomicU32,
    /// The pollers the mapping was started with.
    pub pollers: u32,
}

impl MappingControl {
    pub fn new(pollers: u32) -> MappingControl {
        MappingControl {
            enabled: std::sync::atomic::AtomicBool::new(true),
            concurrency: std::sync::atomic::AtomicU32::new(pollers),
            pollers,
        }
    }

    /// Whether poller `index` (0-based) takes messages now.
    pub fn allows(&self, index: u32) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.enabled.load(Relaxed) && index < self.concurrency.load(Relaxed)
    }
}

/// How long an idle poller (paused, or above the concurrency) waits before looking again.
const CONTROL_RECHECK: Duration = Duration::from_millis(200);

pub struct Poller {
    pub mapping: Arc<MappingSpec>,
    /// The mapping's switches, and this poller's place among its pollers.
    pub control: Arc<MappingControl>,
    pub index: u32,
    pub region: String,
    pub timeout: Duration,
    pub instance: Instance,
    pub sqs: aws_sdk_sqs::Client,
    pub settings: PollSettings,
    pub stats: Arc<FunctionStats>,
    pub logs: LogSink,
}

impl Poller {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut receive_failing = false;
        while !*shutdown.borrow() {
            if !self.control.allows(self.index) {
                // As Lambda does with a disabled mapping: nothing is taken off the queue.
                tokio::select! {
                    () = tokio::time::sleep(CONTROL_RECHECK) => {}
                    () = super::stop_requested(&mut shutdown) => break,
                }
                continue;
            }
            let received = tokio::select! {
                received = self.receive() => received,
                () = super::stop_requested(&mut shutdown) => break,
            };
            let messages = match received {
                Ok(messages) => {
                    if receive_failing {
                        self.logs.note(format!(
                            "{}: receiving from `{}` works again",
                            self.instance.label(),
                            self.mapping.queue_arn
                        ));
                        receive_failing = false;
                    }
                    messages
                }
                Err(error) => {
                    if !receive_failing {
                        self.logs.note(format!(
                            "{}: cannot receive from `{}`: {error}; trying again",
                            self.instance.label(),
                            self.mapping.queue_arn
                        ));
                        receive_failing = true;
                    }
                    self.pause(&mut shutdown).await;
                    continue;
                }
            };
            if messages.is_empty() {
                if self.settings.wait_seconds == 0 {
                    self.pause(&mut shutdown).await;
                }
                continue;
            }
            self.deliver(messages).await;
        }
        self.instance.stopped().await;
    }

    async fn pause(&self, shutdown: &mut watch::Receiver<bool>) {
        tokio::select! {
            () = tokio::time::sleep(self.settings.idle_pause) => {}
            () = super::stop_requested(shutdown) => {}
        }
    }

    async fn receive(&self) -> Result<Vec<Message>, String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.mapping.queue_url)
            .max_number_of_messages(
                i32::try_from(self.mapping.batch_size.clamp(1, 10)).unwrap_or(10),
            )
            .wait_time_seconds(self.settings.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| super::error_chain(&e))?;
        Ok(out.messages().to_vec())
    }

    async fn deliver(&self, messages: Vec<Message>) {
        let ids: Vec<String> = messages
            .iter()
            .map(|m| m.message_id().unwrap_or_default().to_string())
            .collect();
        let event = sqs_event(&messages, &self.mapping.queue_arn, &self.region);
        let payload = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
        // A batch takes milliseconds locally: the kill lands early enough to hit it.
        let kill_after = (self.settings.kill_rate > 0.0
            && fastrand::f64() < self.settings.kill_rate)
            .then(|| {
                let window = (self.timeout / 2).min(CHAOS_WINDOW).as_millis().max(1);
                Duration::from_millis(fastrand::u64(0..u64::try_from(window).unwrap_or(1)))
            });
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        let result = self
            .instance
            .invoke(payload, self.timeout, kill_after)
            .await;
        self.stats.record(&result);
        if kill_after.is_some() && matches!(result, Err(Failure::Exited { .. })) {
            self.stats.chaos_kills.fetch_add(1, Ordering::Relaxed);
        }
        let settlement = settle(&ids, &result, self.mapping.report_batch_item_failures);
        let delete: Vec<&Message> = match &settlement {
            Settlement::DeleteAll => messages.iter().collect(),
            Settlement::KeepOnly(keep) => messages
                .iter()
                .filter(|m| !keep.contains(m.message_id().unwrap_or_default()))
                .collect(),
            Settlement::KeepAll(reason) => {
                self.logs.note(format!(
                    "{}: batch of {} left on the queue (back after its visibility timeout): {reason}",
                    self.instance.label(),
                    messages.len()
                ));
                Vec::new()
            }
        };
        self.stats
            .messages_kept
            .fetch_add((messages.len() - delete.len()) as u64, Ordering::Relaxed);
        self.delete(&delete).await;
    }

    async fn delete(&self, messages: &[&Message]) {
        let receipts: HashMap<String, &str> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((i.to_string(), m.receipt_handle()?)))
            .collect();
        let entries: Vec<DeleteMessageBatchRequestEntry> = receipts
            .iter()
            .filter_map(|(id, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(*receipt)
                    .build()
                    .ok()
            })
            .collect();
        for chunk in entries.chunks(10) {
            match self
                .sqs
                .delete_message_batch()
                .queue_url(&self.mapping.queue_url)
                .set_entries(Some(chunk.to_vec()))
                .send()
                .await
            {
                Ok(out) => {
                    let failed = out.failed().len();
                    self.stats
                        .messages_deleted
                        .fetch_add((chunk.len() - failed) as u64, Ordering::Relaxed);
                    if failed > 0 {
                        self.logs.note(format!(
                            "{}: {failed} handled message(s) could not be deleted (they come back): {:?}",
                            self.instance.label(),
                            out.failed()
                        ));
                    }
                }
                Err(e) => self.logs.note(format!(
                    "{}: cannot delete {} handled message(s) (they come back): {}",
                    self.instance.label(),
                    chunk.len(),
                    super::error_chain(&e)
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec!["m1".into(), "m2".into(), "m3".into()]
    }

    fn answer(body: &str) -> Result<Outcome, Failure> {
        Ok(Outcome::Response(Bytes::from(body.to_string())))
    }

    #[test]
    fn successes_and_empty_answers_delete_the_whole_batch() {
        for body in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures": []}"#,
            r#"{"batchItemFailures": null}"#,
        ] {
            assert_eq!(
                settle(&ids(), &answer(body), true),
                Settlement::DeleteAll,
                "{body}"
            );
        }
    }

    #[test]
    fn reported_failures_stay_and_the_rest_is_deleted() {
        let body = r#"{"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]}"#;
        assert_eq!(
            settle(&ids(), &answer(body), true),
            Settlement::KeepOnly(["m2".to_string(), "m3".to_string()].into())
        );
    }

    #[test]
    fn a_malformed_partial_response_fails_the_whole_batch() {
        for body in [
            r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": "m9"}]}"#,
            r#"{"batchItemFailures": [{"id": "m1"}]}"#,
            r#"{"batchItemFailures": "m1"}"#,
            "not json",
            "[]",
        ] {
            assert!(
                matches!(settle(&ids(), &answer(body), true), Settlement::KeepAll(_)),
                "{body}"
            );
        }
    }

    #[test]
    fn without_partial_responses_any_answer_deletes_the_batch() {
        let body = r#"{"batchItemFailures": [{"itemIdentifier": "m2"}]}"#;
        assert_eq!(settle(&ids(), &answer(body), false), Settlement::DeleteAll);
    }

    #[test]
    fn errors_timeouts_and_crashes_keep_the_whole_batch() {
        let error = Ok(Outcome::Error {
            error_type: "Forwarder.MessagesWithoutId".into(),
            body: Bytes::from_static(b"{}"),
        });
        assert!(
            matches!(settle(&ids(), &error, true), Settlement::KeepAll(r) if r.contains("Forwarder.MessagesWithoutId"))
        );
        let timeout = Err(Failure::TimedOut {
            after: Duration::from_secs(3),
        });
        assert!(
            matches!(settle(&ids(), &timeout, true), Settlement::KeepAll(r) if r == "Task timed out after 3.00 seconds")
        );
        let crash = Err(Failure::Exited {
            status: "signal: 9 (SIGKILL)".into(),
        });
        assert!(matches!(
            settle(&ids(), &crash, false),
            Settlement::KeepAll(_)
        ));
    }

    #[test]
    fn the_event_has_lambda_field_names() {
        let message = Message::builder()
            .message_id("m1")
            .receipt_handle("r1")
            .body("{\"v\":1}")
            .md5_of_body("abc")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .build();
        let event = sqs_event(
            &[message],
            "arn:aws:sqs:us-east-1:123456789012:q",
            "us-east-1",
        );
        let record = &event["Records"][0];
        assert_eq!(record["messageId"], "m1");
        assert_eq!(record["receiptHandle"], "r1");
        assert_eq!(record["body"], "{\"v\":1}");
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(
            record["eventSourceARN"],
            "arn:aws:sqs:us-east-1:123456789012:q"
        );
        assert_eq!(record["awsRegion"], "us-east-1");
        // The forwarder reads it as Lambda's typed SQS event.
        let typed: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(event).unwrap();
        assert_eq!(typed.records[0].message_id.as_deref(), Some("m1"));
    }
}
