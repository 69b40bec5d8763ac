//! The forwarder Lambda: delivers microprocess queue messages to the service's queue host
//! and accounts for every child exactly once.
//!
//! It receives SQS batches (event source mapping with `ReportBatchItemFailures`) and
//! answers with an [`SqsBatchResponse`]. For each batch:
//!
//! 1. every message is parsed; one that is not a kit message, or names an unknown run,
//!    is logged with the reason and moved to the dead-letter queue (never a panic);
//! 2. the process calls of the batch go out concurrently, signed, each with a timeout
//!    below the function's remaining time, paced by the optional rate cap;
//! 3. each answer is classified as the contract says: success, retry later (with
//!    `ChangeMessageVisibility`, exponential with jitter, or `Retry-After`), or failed;
//! 4. terminal outcomes are written to the ledger in one grouped transaction per run,
//!    guarded by the child's state, so duplicates change nothing; a child that failed
//!    for good is recorded `FAILED` before its message goes to the dead-letter queue;
//! 5. the writer that sees its run complete claims the reduce and sends the reduce
//!    message through the same queue; a reduce message becomes the reduce call.

pub mod backoff;
pub mod callback;
mod controls;
mod dead_letters;
mod deliver;
mod judge;
mod leases;
pub mod rate;
mod record;
mod reduce;
pub mod results;
mod screen;
mod tolerance;
mod verdicts;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::Utc;
use futures::future::join_all;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use microprocess_shared::ledger::Ledger;
use microprocess_shared::queue_message::{QueueMessage, ATTEMPTS_MADE_ATTRIBUTE};
use microprocess_shared::run_id::RunId;
use microprocess_shared::service_client::ServiceClient;
use microprocess_shared::settings::ForwarderSettings;
use microprocess_shared::signing_secret::SigningKeys;
use thiserror::Error;

pub use verdicts::{batch_response, Verdict};

/// The function's deadline as an instant of this process's clock.
fn deadline_of(context: &Context) -> Instant {
    let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    Instant::now() + Duration::from_millis(context.deadline.saturating_sub(now_ms))
}

/// Time kept back from the function's deadline to record outcomes after the last call.
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

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

/// A process message of the batch: the message, its seq, item and payload.
type ProcessWork<'a> = (Received<'a>, u64, String, Option<serde_json::Value>);

/// A message of the batch, read.
struct Received<'a> {
    id: &'a str,
    attempt: u32,
}

/// Everything a forwarder invocation needs, built once per process in `main`.
pub struct Forwarder {
    pub settings: ForwarderSettings,
    pub ledger: Ledger,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub service: ServiceClient,
    /// The rate cap in force: the config's, or an operator's (`controls`).
    pub limits: controls::Limits,
}

impl Forwarder {
    pub fn new(
        settings: ForwarderSettings,
        config: &aws_config::SdkConfig,
        signing_keys: impl Into<SigningKeys>,
    ) -> Result<Self, microprocess_shared::service_client::ClientError> {
        let service = ServiceClient::new(
            &settings.common.queue_base_url,
            &settings.common.microprocess_name,
            signing_keys,
        )?
        .with_result_limit(settings.result_limit);
        Ok(Forwarder {
            ledger: Ledger::from_config(config, settings.common.ledger_table.clone()),
            sqs: aws_sdk_sqs::Client::new(config),
            s3: aws_sdk_s3::Client::new(config),
            limits: controls::Limits::new(
                Ledger::from_config(config, settings.common.ledger_table.clone()),
                settings.rate_limit_per_second,
                settings.max_concurrency,
                settings.batch_size,
            ),
            service,
            settings,
        })
    }

    fn name(&self) -> &str {
        &self.settings.common.microprocess_name
    }

    /// Handles one SQS batch; see the crate documentation.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, ForwarderError> {
        // The batch's 12 hours of visibility are counted from about now (see `backoff`).
        let held_since = std::time::Instant::now();
        let (batch, context) = event.into_parts();
        let without_id = batch
            .records
            .iter()
            .filter(|m| m.message_id.as_deref().is_none_or(str::is_empty))
            .count();
        if without_id > 0 {
            tracing::error!(
                without_id,
                "messages without messageId; the whole batch stays on the queue"
            );
            return Err(ForwarderError::MessagesWithoutId { count: without_id });
        }

        let mut verdicts: BTreeMap<&str, Verdict> = BTreeMap::new();
        let mut process: BTreeMap<RunId, Vec<ProcessWork<'_>>> = BTreeMap::new();
        let mut reduce: Vec<(Received<'_>, RunId)> = Vec::new();
        for message in &batch.records {
            let id = message.message_id.as_deref().unwrap_or_default();
            if verdicts.contains_key(id) {
                continue; // the same message twice in one batch: handled once
            }
            let received = Received {
                id,
                attempt: attempt_of(message),
            };
            match QueueMessage::parse(message.body.as_deref().unwrap_or_default()) {
                Ok(QueueMessage::Process {
                    run,
                    seq,
                    item,
                    payload,
                }) => {
                    verdicts.insert(id, Verdict::Delete);
                    process
                        .entry(run)
                        .or_default()
                        .push((received, seq, item, payload));
                }
                Ok(QueueMessage::Reduce { run }) => {
                    verdicts.insert(id, Verdict::Delete);
                    reduce.push((received, run));
                }
                Err(error) => {
                    tracing::error!(message_id = id, %error, "unreadable message");
                    verdicts.insert(id, Verdict::DeadLetter(error.to_string()));
                }
            }
        }

        self.apply_controls().await;
        let timeout = self.reduce_timeout(&context);
        let deadline = deadline_of(&context);
        let runs = process
            .into_iter()
            .map(|(run, work)| self.process_run(run, work, deadline));
        let reduces = reduce
            .into_iter()
            .map(|(received, run)| self.reduce(received, run, timeout));
        let (runs, reduces) = futures::join!(join_all(runs), join_all(reduces));
        for (id, verdict) in runs.into_iter().flatten().chain(reduces) {
            verdicts.insert(id, verdict);
        }
        Ok(self.apply(&batch.records, verdicts, held_since).await)
    }
}

/// The 1-based attempt number of this delivery: the SQS receive count, plus the attempts
/// made before this copy of the message was sent (`ATTEMPTS_MADE_ATTRIBUTE`).
pub fn attempt_of(message: &SqsMessage) -> u32 {
    let made = message
        .message_attributes
        .get(ATTEMPTS_MADE_ATTRIBUTE)
        .and_then(|a| a.string_value.as_deref())
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    receive_count(message).saturating_add(made)
}

/// The SQS receive count.
pub fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}
