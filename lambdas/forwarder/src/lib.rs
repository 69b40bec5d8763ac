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
pub mod rate;
pub mod results;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::Utc;
use futures::future::join_all;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use microprocess_shared::contract::{Outcome, ProcessRequest, ReduceRequest, ResultsLocator};
use microprocess_shared::errors::error_chain;
use microprocess_shared::ledger::{
    ChildOutcome, ChildResult, Ledger, LedgerError, Recorded, RunRecord,
};
use microprocess_shared::ledger_keys::{ChildState, RunState};
use microprocess_shared::queue_message::QueueMessage;
use microprocess_shared::run_id::RunId;
use microprocess_shared::service_client::{Delivery, ServiceClient};
use microprocess_shared::settings::{ForwarderSettings, ResultStorage};
use thiserror::Error;

use rate::RateLimiter;
use results::Placement;

/// The function's deadline as an instant of this process's clock.
fn deadline_of(context: &Context) -> Instant {
    let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    Instant::now() + Duration::from_millis(context.deadline.saturating_sub(now_ms))
}

/// Time kept back from the function's deadline to record outcomes after the last call.
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// How old a reduce claim without its "queued" note must be before a redelivered batch
/// queues the reduce itself: far longer than a live claimer takes to send and note it.
const ORPHAN_GRACE: Duration = Duration::from_secs(2);

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

/// What happens to one message once the batch is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Done (or a harmless duplicate): SQS deletes it.
    Delete,
    /// Comes back after this wait.
    Retry(Duration),
    /// Moves to the dead-letter queue with this reason.
    DeadLetter(String),
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
    pub limiter: RateLimiter,
}

impl Forwarder {
    pub fn new(
        settings: ForwarderSettings,
        config: &aws_config::SdkConfig,
        signing_secret: String,
    ) -> Result<Self, microprocess_shared::service_client::ClientError> {
        let service = ServiceClient::new(
            &settings.common.queue_base_url,
            &settings.common.microprocess_name,
            signing_secret,
        )?;
        Ok(Forwarder {
            ledger: Ledger::from_config(config, settings.common.ledger_table.clone()),
            sqs: aws_sdk_sqs::Client::new(config),
            s3: aws_sdk_s3::Client::new(config),
            limiter: RateLimiter::new(
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
                attempt: receive_count(message),
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

        let timeout = self.call_timeout(&context);
        let deadline = deadline_of(&context);
        let runs = process
            .into_iter()
            .map(|(run, work)| self.process_run(run, work, timeout, deadline));
        let reduces = reduce
            .into_iter()
            .map(|(received, run)| self.reduce(received, run, timeout));
        let (runs, reduces) = futures::join!(join_all(runs), join_all(reduces));
        for (id, verdict) in runs.into_iter().flatten().chain(reduces) {
            verdicts.insert(id, verdict);
        }
        Ok(self.apply(&batch.records, verdicts, held_since).await)
    }

    /// The per-call timeout: the configured one, but never past the function's deadline.
    fn call_timeout(&self, context: &Context) -> Duration {
        let deadline_ms = context.deadline;
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        let remaining = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        let budget = remaining
            .saturating_sub(DEADLINE_MARGIN)
            .max(Duration::from_secs(1));
        self.settings.process_timeout.min(budget)
    }

    /// The process calls of one run, then their grouped ledger write.
    async fn process_run<'a>(
        &self,
        run: RunId,
        work: Vec<ProcessWork<'a>>,
        timeout: Duration,
        deadline: Instant,
    ) -> Vec<(&'a str, Verdict)> {
        match self.ledger.run(self.name(), &run).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                let reason = format!("run `{run}` of `{}` is not in the ledger", self.name());
                tracing::error!(%run, "{reason}; dead-lettering its messages");
                return work
                    .into_iter()
                    .map(|(r, ..)| (r.id, Verdict::DeadLetter(reason.clone())))
                    .collect();
            }
            Err(error) => {
                tracing::error!(%run, error = %error, "cannot read the run; the batch comes back later");
                return work
                    .into_iter()
                    .map(|(r, ..)| (r.id, self.retry(r.attempt, None)))
                    .collect();
            }
        };

        let calls = work.iter().map(|(received, seq, item, payload)| {
            let request = ProcessRequest {
                microprocess: self.name().to_string(),
                run: run.clone(),
                seq: *seq,
                item: item.clone(),
                payload: payload.clone(),
                attempt: received.attempt,
            };
            let exhausted = self.exhausted(received.attempt);
            async move {
                if let Some(delivery) = exhausted {
                    return delivery;
                }
                self.limiter.acquire().await;
                self.service
                    .process(&self.settings.process_path, &request, timeout)
                    .await
            }
        });
        let deliveries = join_all(calls).await;

        let mut outcomes = Vec::new();
        let mut pending: Vec<(&'a str, u32, Verdict)> = Vec::new();
        for ((received, seq, item, _), delivery) in work.iter().zip(deliveries) {
            let (state, result, reason, verdict) = match self
                .judge(&run, *seq, received.attempt, &delivery)
                .await
            {
                Judged::Terminal {
                    state,
                    result,
                    reason,
                    verdict,
                } => (state, result, reason, verdict),
                Judged::Again(verdict) => {
                    tracing::warn!(%run, seq, attempt = received.attempt, reason = %delivery.reason, "retrying later");
                    pending.push((received.id, received.attempt, verdict));
                    continue;
                }
            };
            outcomes.push(ChildOutcome {
                seq: *seq,
                item: item.clone(),
                state,
                attempts: received.attempt,
                result,
                reason,
            });
            pending.push((received.id, received.attempt, verdict));
        }

        if !outcomes.is_empty() {
            match self.record(&run, &outcomes, deadline).await {
                Ok(recorded) => {
                    if !recorded.duplicates.is_empty() {
                        tracing::info!(%run, duplicates = ?recorded.duplicates, "already counted; nothing changed");
                    }
                    if recorded.complete {
                        // A claimer stopped before its reduce message leaves its batch to
                        // come back with every child already counted.
                        let redelivered = work.iter().any(|(r, ..)| r.attempt > 1)
                            && recorded.newly_counted.is_empty()
                            && recorded.moved_to_succeeded.is_empty();
                        self.claim_and_send_reduce(&recorded.run, redelivered).await;
                    }
                }
                Err(error) => {
                    // Nothing was counted: every terminal message comes back and is judged again.
                    tracing::error!(%run, error = %error, "cannot record outcomes; they come back later");
                    let terminal: Vec<u64> = outcomes.iter().map(|o| o.seq).collect();
                    return work
                        .iter()
                        .zip(pending)
                        .map(|((received, seq, ..), (id, attempt, verdict))| {
                            if terminal.contains(seq) {
                                (id, self.retry(received.attempt.max(attempt), None))
                            } else {
                                (id, verdict)
                            }
                        })
                        .collect();
                }
            }
        }
        pending.into_iter().map(|(id, _, v)| (id, v)).collect()
    }

    /// Records the outcomes, again while the ledger is only overloaded and the invocation
    /// has time for another round of the ledger's retries: a batch sent back would cost
    /// each of its children an attempt and a second call of the service. Recording again
    /// is safe: each child is counted once however often it is written.
    async fn record(
        &self,
        run: &RunId,
        outcomes: &[ChildOutcome],
        deadline: Instant,
    ) -> Result<Recorded, LedgerError> {
        let round = self.ledger.retry_policy().worst_case() + DEADLINE_MARGIN;
        loop {
            match self
                .ledger
                .record_children(self.name(), run, outcomes, Utc::now())
                .await
            {
                Err(error @ LedgerError::RetriesExhausted { .. })
                    if Instant::now() + round < deadline =>
                {
                    tracing::warn!(%run, %error, "the ledger is overloaded; recording again before the deadline");
                }
                other => return other,
            }
        }
    }

    /// The contract's classification of one process answer, with what to record.
    async fn judge(&self, run: &RunId, seq: u64, attempt: u32, d: &Delivery) -> Judged {
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

    async fn store_result(
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

    /// Claims the reduce of a complete run; the one winner sends the reduce message. A
    /// `redelivered` batch that counted nothing new may be the batch of a claimer that
    /// stopped (killed, timed out) between its claim and its reduce message: when the run
    /// is `REDUCING` without the "queued" note, it queues the reduce.
    pub async fn claim_and_send_reduce(&self, run: &RunRecord, redelivered: bool) {
        if run.state == RunState::Processing {
            match self
                .ledger
                .try_claim_reduce(self.name(), &run.run, Utc::now())
                .await
            {
                Ok(true) => {
                    self.send_reduce(&run.run, "run complete; reduce claimed and queued")
                        .await;
                    return;
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(run = %run.run, error = %error, "cannot claim the reduce; the sweep will");
                    return;
                }
            }
        } else if run.state != RunState::Reducing || run.reduce_queued_at.is_some() {
            return;
        }
        if redelivered {
            self.queue_orphaned_reduce(&run.run).await;
        }
    }

    /// Queues the reduce of a `REDUCING` run that has no "queued" note once its claim is
    /// [`ORPHAN_GRACE`] old, waiting out the rest of the grace first: a live claimer notes
    /// its message within milliseconds, and only a stopped one leaves the note missing.
    /// A second reduce message is within the contract (at least once, one key), and the
    /// grace makes one rare.
    async fn queue_orphaned_reduce(&self, run: &RunId) {
        let mut waited = false;
        loop {
            let record = match self.ledger.run(self.name(), run).await {
                Ok(Some(record)) => record,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%run, error = %error, "cannot read the run to check its reduce; the sweep will");
                    return;
                }
            };
            if record.state != RunState::Reducing || record.reduce_queued_at.is_some() {
                tracing::debug!(%run, state = %record.state, "reduce already claimed and queued, or run not complete");
                return;
            }
            let age = record
                .reduce_claimed_at
                .map(|at| (Utc::now() - at).to_std().unwrap_or_default())
                .unwrap_or(ORPHAN_GRACE);
            if age >= ORPHAN_GRACE || waited {
                tracing::warn!(%run, claimed_at = ?record.reduce_claimed_at, "the reduce was claimed but never queued: its claimer stopped in between; queueing it");
                self.send_reduce(run, "orphaned reduce queued").await;
                return;
            }
            waited = true;
            tokio::time::sleep(ORPHAN_GRACE - age).await;
        }
    }

    /// Sends the reduce message of a claimed run and notes it in the ledger.
    async fn send_reduce(&self, run: &RunId, done: &str) {
        let body = QueueMessage::Reduce { run: run.clone() }.to_body();
        let sent = self
            .sqs
            .send_message()
            .queue_url(&self.settings.common.queue_url)
            .message_body(body)
            .send()
            .await;
        match sent {
            Ok(_) => {
                tracing::info!(%run, "{done}");
                self.mark_reduce_queued(run).await;
            }
            // The SDK has already retried. The claim is in the ledger without its "queued"
            // note, so a redelivered batch or the sweep queues the reduce later.
            Err(e) => {
                tracing::error!(%run, error = %error_chain(&e), "reduce claimed but not queued; the sweep will queue it")
            }
        }
    }

    /// Notes the queued reduce in the ledger. Without the note the sweep queues a second
    /// reduce message later, which the contract allows: the reduce is delivered at least
    /// once, with one `Idempotency-Key`.
    async fn mark_reduce_queued(&self, run: &RunId) {
        if let Err(error) = self
            .ledger
            .mark_reduce_queued(self.name(), run, Utc::now())
            .await
        {
            tracing::warn!(%run, error = %error, "reduce queued, but not noted; the sweep may queue it again");
        }
    }

    /// The reduce call of a run whose reduce was claimed.
    async fn reduce<'a>(
        &self,
        received: Received<'a>,
        run: RunId,
        timeout: Duration,
    ) -> (&'a str, Verdict) {
        let record = match self.ledger.run(self.name(), &run).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return (
                    received.id,
                    Verdict::DeadLetter(format!("run `{run}` is not in the ledger")),
                )
            }
            Err(error) => {
                tracing::error!(%run, error = %error, "cannot read the run for its reduce");
                return (received.id, self.retry(received.attempt, None));
            }
        };
        if record.state != RunState::Reducing {
            tracing::info!(%run, state = %record.state, "reduce message for a run not REDUCING; nothing to do");
            return (received.id, Verdict::Delete);
        }
        let request = ReduceRequest {
            microprocess: self.name().to_string(),
            run: run.clone(),
            total: record.total.unwrap_or(record.done),
            succeeded: record.succeeded,
            failed: record.failed,
            started_at: record.started_at,
            split_done_at: record.split_done_at.unwrap_or(record.started_at),
            results: ResultsLocator::new(
                self.settings.common.ledger_table.clone(),
                record.child_partition_keys(),
                match self.settings.result_storage {
                    ResultStorage::Discard => None,
                    _ => self.settings.results_bucket.clone(),
                },
            ),
        };
        let attempt = received.attempt;
        let d = match self.exhausted(attempt) {
            Some(delivery) => delivery,
            None => {
                self.service
                    .reduce(&self.settings.reduce_path, &request, timeout)
                    .await
            }
        };
        let verdict = match d.outcome {
            Outcome::Succeeded => match self.ledger.complete(self.name(), &run, Utc::now()).await {
                Ok(()) => {
                    tracing::info!(%run, total = request.total, failed = request.failed, "run completed");
                    Verdict::Delete
                }
                Err(error) => {
                    tracing::error!(%run, error = %error, "reduce succeeded but the run could not be completed");
                    self.retry(attempt, None)
                }
            },
            Outcome::Retry if attempt < self.settings.max_attempts => {
                self.retry(attempt, d.retry_after)
            }
            _ => {
                let reason = format!(
                    "reduce: {} (attempt {} of {})",
                    d.reason,
                    attempt.min(self.settings.max_attempts),
                    self.settings.max_attempts
                );
                match self
                    .ledger
                    .reduce_failed(self.name(), &run, &reason, Utc::now())
                    .await
                {
                    Ok(()) => Verdict::DeadLetter(reason),
                    Err(error) => {
                        tracing::error!(%run, error = %error, "cannot record REDUCE_FAILED");
                        self.retry(attempt, None)
                    }
                }
            }
        };
        (received.id, verdict)
    }

    /// The delivery of a message received after its last allowed attempt, which is not
    /// made: the queue's `maxReceiveCount` is `max_attempts + 1`, so a message whose last
    /// attempt ended with no verdict (the forwarder stopped, or timed out, mid-batch)
    /// comes back once more and is recorded `FAILED` here instead of being dead-lettered
    /// by SQS with nothing in the ledger, which would leave its run unfinished.
    fn exhausted(&self, attempt: u32) -> Option<Delivery> {
        (attempt > self.settings.max_attempts).then(|| Delivery {
            outcome: Outcome::Retry,
            status: None,
            body: Vec::new(),
            retry_after: None,
            reason: format!(
                "no answer recorded for attempt {} (the forwarder stopped mid-call)",
                self.settings.max_attempts
            ),
        })
    }

    fn retry(&self, attempt: u32, retry_after: Option<Duration>) -> Verdict {
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
    async fn apply(
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
                    (_, None) => true,
                };
                keep.then(|| id.to_string())
            }
        });
        let keep: Vec<String> = join_all(actions).await.into_iter().flatten().collect();
        batch_response(records, keep.iter().map(String::as_str))
    }

    async fn delay_message(&self, message: &SqsMessage, wait: Duration, held: Duration) {
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

    /// Sends a copy with the reason to the dead-letter queue; `true` when it is there, so
    /// the original may be deleted.
    async fn dead_letter(&self, message: &SqsMessage, reason: &str) -> bool {
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
        let reason_text: String = reason.chars().take(1024).collect();
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

enum Judged {
    Terminal {
        state: ChildState,
        result: Option<ChildResult>,
        reason: Option<String>,
        verdict: Verdict,
    },
    Again(Verdict),
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

/// The SQS receive count: the 1-based attempt number of this delivery.
pub fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}
