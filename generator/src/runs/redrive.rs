//! Sending one run's dead-lettered children back to its queue.
//!
//! SQS `StartMessageMoveTask` moves a whole dead-letter queue, every run's messages at
//! once (and moto does not implement it), so redrive receives the DLQ's messages, resends
//! those of the run to the microprocess's queue, deletes them from the DLQ only once
//! resent, and makes every other message visible again at once. A resent child may be
//! delivered twice if a delete fails after its send; the ledger counts it once.
//!
//! A letter is not resent when its child is `SUCCEEDED` in the ledger (a duplicate of its
//! message succeeded after it was dead-lettered: *superseded*), nor a second letter of a
//! seq already resent in this pass: both would only call the service again for nothing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use chrono::Utc;

use microprocess_shared::ledger::Ledger;
use microprocess_shared::ledger_keys::ChildState;
use microprocess_shared::queue_message::QueueMessage;
use microprocess_shared::run_id::RunId;

use super::deployed::DeployedMicroprocess;
use super::RunsError;

/// How long the messages redrive looks at stay hidden from the forwarder's own DLQ readers
/// (none by default) and from a second redrive: longer than one redrive's pass.
const HOLD_SECONDS: i32 = 300;

/// What one pass over the dead-letter queue did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The run's children sent back to the queue, by seq.
    pub children: BTreeSet<u64>,
    /// Letters of children that succeeded after all (a duplicate of the message did),
    /// deleted without a resend.
    pub superseded: BTreeSet<u64>,
    /// Second letters of a seq resent in this pass, deleted.
    pub repeats: usize,
    /// The run's dead-lettered reduce messages, deleted: a reduce is retried with a fresh
    /// message once the children are in, never from an old copy.
    pub reduce_messages: usize,
    /// Messages of other runs, or unreadable ones, left in the DLQ.
    pub left: usize,
    /// Children whose record is gone though the run counts every child (expired): their
    /// letters are left in the DLQ.
    pub unaccounted: BTreeSet<u64>,
}

/// Moves the dead-lettered messages of `run` from `mp`'s DLQ back to its queue.
pub async fn move_back(
    ledger: &Ledger,
    sqs: &aws_sdk_sqs::Client,
    mp: &DeployedMicroprocess,
    run: &RunId,
) -> Result<Moved, RunsError> {
    let record = ledger
        .run(&mp.name, run)
        .await?
        .ok_or_else(|| RunsError::Other(format!(
            "run `{run}` of `{}` is not in the ledger: its records have expired (`results.retention_days`), and its children cannot be counted again without counting them twice; its letters stay in the dead-letter queue",
            mp.name
        )))?;
    if record.expires_at > 0 && record.expires_at <= Utc::now().timestamp() {
        return Err(RunsError::Other(format!(
            "the ledger records of run `{run}` have expired (`results.retention_days` = {}); its children cannot be counted again without counting them twice, so its letters stay in the dead-letter queue",
            record.retention_days
        )));
    }
    let fully_counted = record.total.is_some_and(|total| record.done >= total);
    let mut moved = Moved::default();
    let mut seen = BTreeSet::new();
    let mut release = Vec::new();
    let mut empty_receives = 0;
    // An empty short-poll receive can miss messages on a lightly filled queue (it samples
    // a subset of the servers); three in a row mean it is drained for us.
    while empty_receives < 3 {
        let out = sqs
            .receive_message()
            .queue_url(&mp.dead_letter_queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(HOLD_SECONDS)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| RunsError::aws("SQS ReceiveMessage from the dead-letter queue", &e))?;
        let messages: Vec<Message> = out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.message_id().is_some_and(|id| seen.insert(id.to_string())))
            .collect();
        if messages.is_empty() {
            empty_receives += 1;
            continue;
        }
        empty_receives = 0;
        let mut resend = Vec::new();
        let mut delete = Vec::new();
        for m in messages {
            let body = m.body().unwrap_or_default();
            match QueueMessage::parse(body) {
                Ok(QueueMessage::Process { run: r, seq, .. }) if &r == run => {
                    if moved.children.contains(&seq) {
                        moved.repeats += 1;
                        delete.push(m);
                        continue;
                    }
                    match ledger.child_state(&mp.name, run, seq).await? {
                        ChildState::Succeeded => {
                            moved.superseded.insert(seq);
                            delete.push(m);
                        }
                        ChildState::Pending if fully_counted => {
                            moved.unaccounted.insert(seq);
                            release.push(m);
                        }
                        _ => {
                            moved.children.insert(seq);
                            resend.push(m);
                        }
                    }
                }
                Ok(QueueMessage::Reduce { run: r }) if &r == run => {
                    moved.reduce_messages += 1;
                    delete.push(m);
                }
                _ => {
                    moved.left += 1;
                    release.push(m);
                }
            }
        }
        send_batch(sqs, &mp.queue_url, &resend).await?;
        delete.extend(resend);
        delete_batch(sqs, &mp.dead_letter_queue_url, &delete).await?;
    }
    release_batch(sqs, &mp.dead_letter_queue_url, &release).await;
    Ok(moved)
}

async fn send_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[Message],
) -> Result<(), RunsError> {
    if messages.is_empty() {
        return Ok(());
    }
    let entries = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(m.body().unwrap_or_default())
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RunsError::Other(format!("cannot build a resend: {e}")))?;
    let out = sqs
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| RunsError::aws("SQS SendMessageBatch to the queue", &e))?;
    match out.failed().first() {
        // Nothing was deleted yet: the messages stay in the DLQ for the next redrive.
        Some(f) => Err(RunsError::Other(format!(
            "SQS refused to resend {} message(s) ({}: {}); they stay in the dead-letter queue\n  hint: run `microprocess redrive` again",
            out.failed().len(),
            f.code(),
            f.message().unwrap_or_default()
        ))),
        None => Ok(()),
    }
}

async fn delete_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[Message],
) -> Result<(), RunsError> {
    for chunk in messages.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle().map(str::to_string))
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        sqs.delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| RunsError::aws("SQS DeleteMessageBatch from the dead-letter queue", &e))?;
    }
    Ok(())
}

/// Makes the messages visible again; a failure only delays them by [`HOLD_SECONDS`].
async fn release_batch(sqs: &aws_sdk_sqs::Client, queue_url: &str, messages: &[Message]) {
    for chunk in messages.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle().map(str::to_string))
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        let _ = sqs
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
    }
}

/// Messages in a queue: visible, in flight and delayed.
pub async fn depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<u64, RunsError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| RunsError::aws("SQS GetQueueAttributes", &e))?;
    Ok(out
        .attributes()
        .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0))
}

/// Visible messages in a dead-letter queue.
pub async fn dead_letters(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<u64, RunsError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| RunsError::aws("SQS GetQueueAttributes of the dead-letter queue", &e))?;
    Ok(out
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Waits until the resent children are in: the run's `failed` count dropped by all of
/// them, or the queue stayed empty for two looks (those that failed again are back in the
/// DLQ), or `limit` passed. Returns the run's failed count at the end.
pub async fn settle(
    ledger: &Ledger,
    sqs: &aws_sdk_sqs::Client,
    mp: &DeployedMicroprocess,
    run: &RunId,
    failed_before: u64,
    resent: u64,
    limit: Duration,
) -> Result<u64, RunsError> {
    let started = Instant::now();
    let target = failed_before.saturating_sub(resent);
    let mut quiet = 0;
    loop {
        let failed = ledger
            .run(&mp.name, run)
            .await?
            .map(|r| r.failed)
            .unwrap_or(failed_before);
        if failed <= target || started.elapsed() > limit {
            return Ok(failed);
        }
        if depth(sqs, &mp.queue_url).await? == 0 {
            quiet += 1;
            if quiet >= 2 {
                return Ok(failed);
            }
        } else {
            quiet = 0;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Retries a `REDUCE_FAILED` run's reduce: `REDUCE_FAILED → REDUCING`, then a fresh reduce
/// message on the queue. `false` when the run was not `REDUCE_FAILED` any more.
pub async fn retry_reduce(
    ledger: &Ledger,
    sqs: &aws_sdk_sqs::Client,
    mp: &DeployedMicroprocess,
    run: &RunId,
) -> Result<bool, RunsError> {
    if !ledger.retry_reduce(&mp.name, run, Utc::now()).await? {
        return Ok(false);
    }
    resend_reduce(ledger, sqs, mp, run).await.map_err(|e| {
        RunsError::Other(format!(
            "{e}\n  hint: the run is REDUCING without its message: the sweep queues it within minutes, or `microprocess redrive {run} --resend-reduce` once SQS answers"
        ))
    })?;
    Ok(true)
}

/// Queues another reduce message for a run stuck `REDUCING` (its claimed reduce message was
/// never queued, or was lost). The forwarder only acts on it while the run is `REDUCING`,
/// so a second copy at worst repeats the reduce call, which the contract allows.
/// The ledger notes the message as queued so the sweep does not queue another.
pub async fn resend_reduce(
    ledger: &Ledger,
    sqs: &aws_sdk_sqs::Client,
    mp: &DeployedMicroprocess,
    run: &RunId,
) -> Result<(), RunsError> {
    let body = QueueMessage::Reduce { run: run.clone() }.to_body();
    sqs.send_message()
        .queue_url(&mp.queue_url)
        .message_body(body)
        .send()
        .await
        .map_err(|e| RunsError::aws("SQS SendMessage of the reduce", &e))?;
    // Only a REDUCING run is noted; a run that is not (yet) ignores the message anyway.
    ledger.mark_reduce_queued(&mp.name, run, Utc::now()).await?;
    Ok(())
}
