//! Putting messages on the microprocess queue with `SendMessageBatch`.
//!
//! Messages go in groups of at most 10 entries and 256 KiB of bodies (the SQS batch
//! limits; 256 KiB is the older total, kept so an emulator or a region with the old
//! limit takes the same groups), several groups in flight at once. Entries a call
//! reports as failed are sent again with capped exponential backoff and jitter, and so
//! is a group whose whole call failed; an entry that SQS rejects as the sender's fault
//! fails at once. When a group still fails, [`enqueue`] fails, and the caller does not
//! checkpoint: the page is read and sent again by whoever resumes the split.

use std::time::Duration;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use thiserror::Error;

/// Most entries in one `SendMessageBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Most bytes of message bodies in one `SendMessageBatch`.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// One message to send; `id` is unique within a call (the child's seq, or `reduce`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub body: String,
}

/// An entry a `SendMessageBatch` call did not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub id: String,
    /// SQS says the entry itself is wrong: sending it again cannot help.
    pub sender_fault: bool,
    pub reason: String,
}

/// Where messages go: the microprocess queue, or a test double.
pub trait Queue: Send + Sync {
    /// Sends one batch of at most [`MAX_BATCH_ENTRIES`] entries; `Ok` lists the entries
    /// that were not sent, `Err` says why the whole call failed.
    fn send_batch<'a>(
        &'a self,
        entries: &'a [Entry],
    ) -> BoxFuture<'a, Result<Vec<FailedEntry>, String>>;
}

/// The microprocess's SQS queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> SqsQueue {
        SqsQueue {
            client,
            url: url.into(),
        }
    }
}

impl Queue for SqsQueue {
    fn send_batch<'a>(
        &'a self,
        entries: &'a [Entry],
    ) -> BoxFuture<'a, Result<Vec<FailedEntry>, String>> {
        Box::pin(async move {
            let request: Vec<SendMessageBatchRequestEntry> = entries
                .iter()
                .map(|e| {
                    SendMessageBatchRequestEntry::builder()
                        .id(&e.id)
                        .message_body(&e.body)
                        .build()
                        .map_err(|error| format!("cannot build entry `{}`: {error}", e.id))
                })
                .collect::<Result<_, _>>()?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(request))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "SendMessageBatch to `{}` failed: {}",
                        self.url,
                        error_chain(&e)
                    )
                })?;
            Ok(output
                .failed()
                .iter()
                .map(|f| FailedEntry {
                    id: f.id().to_owned(),
                    sender_fault: f.sender_fault(),
                    reason: format!("{}: {}", f.code(), f.message().unwrap_or("no message")),
                })
                .collect())
        })
    }
}

/// How [`enqueue`] sends and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueuePolicy {
    /// Calls in flight at once.
    pub in_flight: usize,
    /// Calls per group before giving up (the first one included).
    pub attempts: u32,
    /// Delay before the second call; it doubles, up to `backoff_cap`, with jitter.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for EnqueuePolicy {
    fn default() -> EnqueuePolicy {
        EnqueuePolicy {
            in_flight: 8,
            attempts: 5,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(5),
        }
    }
}

/// Why messages could not all be sent.
#[derive(Debug, Error)]
pub enum EnqueueError {
    #[error("SQS rejected message `{id}` as malformed ({reason}); it cannot be sent as is")]
    Rejected { id: String, reason: String },
    #[error(
        "{unsent} message(s) (ids {first} to {last}) still not sent after {attempts} \
         attempts: {reason}"
    )]
    Exhausted {
        unsent: usize,
        first: String,
        last: String,
        attempts: u32,
        reason: String,
    },
}

/// Splits `entries` into batches of at most `max_entries` entries and `max_bytes` bytes
/// of bodies, in order. An entry larger than `max_bytes` gets a batch of its own (SQS then
/// judges it).
pub fn batches(entries: Vec<Entry>, max_entries: usize, max_bytes: usize) -> Vec<Vec<Entry>> {
    let max_entries = max_entries.max(1);
    let mut groups: Vec<Vec<Entry>> = Vec::new();
    let mut current: Vec<Entry> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let size = entry.body.len();
        if !current.is_empty() && (current.len() == max_entries || bytes + size > max_bytes) {
            groups.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(entry);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// Sends every entry; see the module documentation.
pub async fn enqueue(
    queue: &dyn Queue,
    entries: Vec<Entry>,
    policy: &EnqueuePolicy,
) -> Result<(), EnqueueError> {
    futures::stream::iter(batches(entries, MAX_BATCH_ENTRIES, MAX_BATCH_BYTES))
        .map(|group| send_group(queue, group, policy))
        .buffer_unordered(policy.in_flight.max(1))
        .try_collect::<Vec<()>>()
        .await
        .map(|_| ())
}

async fn send_group(
    queue: &dyn Queue,
    mut pending: Vec<Entry>,
    policy: &EnqueuePolicy,
) -> Result<(), EnqueueError> {
    let attempts = policy.attempts.max(1);
    let mut reason = String::new();
    for attempt in 1..=attempts {
        match queue.send_batch(&pending).await {
            Ok(failed) if failed.is_empty() => return Ok(()),
            Ok(failed) => {
                if let Some(bad) = failed.iter().find(|f| f.sender_fault) {
                    return Err(EnqueueError::Rejected {
                        id: bad.id.clone(),
                        reason: bad.reason.clone(),
                    });
                }
                reason = failed
                    .first()
                    .map(|f| format!("entry `{}`: {}", f.id, f.reason))
                    .unwrap_or_default();
                let unsent: Vec<&str> = failed.iter().map(|f| f.id.as_str()).collect();
                pending.retain(|e| unsent.contains(&e.id.as_str()));
                if pending.is_empty() {
                    // SQS named entries that were not in the call: nothing left to send.
                    return Ok(());
                }
            }
            Err(error) => reason = error,
        }
        if attempt < attempts {
            tracing::warn!(
                attempt,
                unsent = pending.len(),
                %reason,
                "SendMessageBatch incomplete; retrying"
            );
            tokio::time::sleep(backoff(policy, attempt)).await;
        }
    }
    Err(EnqueueError::Exhausted {
        unsent: pending.len(),
        first: pending.first().map(|e| e.id.clone()).unwrap_or_default(),
        last: pending.last().map(|e| e.id.clone()).unwrap_or_default(),
        attempts,
        reason,
    })
}

/// Delay after failed attempt `attempt` (1-based): half the capped exponential, plus a
/// random part up to the other half.
fn backoff(policy: &EnqueuePolicy, attempt: u32) -> Duration {
    let exponential = policy
        .backoff_base
        .saturating_mul(1u32 << (attempt - 1).min(20))
        .min(policy.backoff_cap);
    let half = exponential / 2;
    half + half.mul_f64(fastrand::f64())
}

/// An error and its causes, one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    parts.dedup();
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn entry(id: u64, bytes: usize) -> Entry {
        Entry {
            id: id.to_string(),
            body: "x".repeat(bytes),
        }
    }

    fn ids(groups: &[Vec<Entry>]) -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| g.iter().map(|e| e.id.clone()).collect())
            .collect()
    }

    #[test]
    fn batches_hold_at_most_ten_entries_in_order() {
        let entries: Vec<Entry> = (0..25).map(|i| entry(i, 10)).collect();
        let groups = batches(entries, MAX_BATCH_ENTRIES, MAX_BATCH_BYTES);
        assert_eq!(
            groups.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![10, 10, 5]
        );
        let flat: Vec<String> = ids(&groups).concat();
        assert_eq!(flat, (0..25).map(|i| i.to_string()).collect::<Vec<_>>());
        assert!(batches(Vec::new(), 10, 100).is_empty());
        assert_eq!(
            batches((0..10).map(|i| entry(i, 1)).collect(), 10, 100).len(),
            1
        );
    }

    #[test]
    fn batches_stay_under_the_byte_limit() {
        let entries: Vec<Entry> = (0..6).map(|i| entry(i, 40)).collect();
        assert_eq!(
            ids(&batches(entries, 10, 100)),
            vec![vec!["0", "1"], vec!["2", "3"], vec!["4", "5"]]
        );
        // An oversized entry travels alone.
        let entries = vec![entry(0, 10), entry(1, 500), entry(2, 10)];
        assert_eq!(
            ids(&batches(entries, 10, 100)),
            vec![vec!["0"], vec!["1"], vec!["2"]]
        );
        // 64 KiB payloads: four fit the 256 KiB total.
        let entries: Vec<Entry> = (0..10).map(|i| entry(i, 64 * 1024 + 200)).collect();
        let groups = batches(entries, MAX_BATCH_ENTRIES, MAX_BATCH_BYTES);
        assert!(groups
            .iter()
            .all(|g| g.iter().map(|e| e.body.len()).sum::<usize>() <= MAX_BATCH_BYTES));
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 10);
    }

    /// Fails the listed ids on the first `fail_rounds` calls that carry them.
    #[derive(Default)]
    struct Flaky {
        calls: Mutex<Vec<Vec<String>>>,
        fail_ids: Vec<String>,
        fail_rounds: usize,
        sender_fault: bool,
        whole_call_fails: usize,
    }

    impl Queue for Flaky {
        fn send_batch<'a>(
            &'a self,
            entries: &'a [Entry],
        ) -> BoxFuture<'a, Result<Vec<FailedEntry>, String>> {
            Box::pin(async move {
                let mut calls = self.calls.lock().unwrap();
                calls.push(entries.iter().map(|e| e.id.clone()).collect());
                if calls.len() <= self.whole_call_fails {
                    return Err("throttled".to_owned());
                }
                let round = calls
                    .iter()
                    .filter(|c| c.iter().any(|id| self.fail_ids.contains(id)))
                    .count();
                Ok(entries
                    .iter()
                    .filter(|e| self.fail_ids.contains(&e.id) && round <= self.fail_rounds)
                    .map(|e| FailedEntry {
                        id: e.id.clone(),
                        sender_fault: self.sender_fault,
                        reason: "InternalError: try again".into(),
                    })
                    .collect())
            })
        }
    }

    fn quick() -> EnqueuePolicy {
        EnqueuePolicy {
            in_flight: 1,
            attempts: 3,
            backoff_base: Duration::from_millis(1),
            backoff_cap: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn failed_entries_alone_are_sent_again() {
        let queue = Flaky {
            fail_ids: vec!["3".into(), "4".into()],
            fail_rounds: 2,
            ..Flaky::default()
        };
        let entries: Vec<Entry> = (0..12).map(|i| entry(i, 5)).collect();
        enqueue(&queue, entries, &quick()).await.unwrap();
        let calls = queue.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 4, "{calls:?}");
        assert_eq!(calls[0].len(), 10);
        assert_eq!(calls[1], vec!["3", "4"]);
        assert_eq!(calls[2], vec!["3", "4"]);
        assert_eq!(calls[3], vec!["10", "11"]);
    }

    #[tokio::test]
    async fn a_group_that_keeps_failing_fails_the_enqueue() {
        let queue = Flaky {
            fail_ids: vec!["7".into()],
            fail_rounds: 99,
            ..Flaky::default()
        };
        let entries: Vec<Entry> = (0..10).map(|i| entry(i, 5)).collect();
        let error = enqueue(&queue, entries, &quick()).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "1 message(s) (ids 7 to 7) still not sent after 3 attempts: entry `7`: \
             InternalError: try again"
        );
    }

    #[tokio::test]
    async fn whole_call_failures_are_retried() {
        let queue = Flaky {
            whole_call_fails: 2,
            ..Flaky::default()
        };
        let entries: Vec<Entry> = (0..3).map(|i| entry(i, 5)).collect();
        enqueue(&queue, entries, &quick()).await.unwrap();
        assert_eq!(queue.calls.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_sender_fault_fails_at_once() {
        let queue = Flaky {
            fail_ids: vec!["1".into()],
            fail_rounds: 99,
            sender_fault: true,
            ..Flaky::default()
        };
        let error = enqueue(&queue, vec![entry(0, 1), entry(1, 1)], &quick())
            .await
            .unwrap_err();
        assert!(matches!(error, EnqueueError::Rejected { ref id, .. } if id == "1"));
        assert_eq!(queue.calls.lock().unwrap().len(), 1);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = EnqueuePolicy::default();
        for attempt in 1..30 {
            let delay = backoff(&policy, attempt);
            assert!(delay <= policy.backoff_cap, "{attempt}: {delay:?}");
        }
        assert!(backoff(&policy, 1) <= Duration::from_millis(200));
        assert!(backoff(&policy, 1) >= Duration::from_millis(100));
    }
}
