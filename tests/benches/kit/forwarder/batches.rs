//! The steady state: one warm forwarder process, started and fed as `microprocess local
//! run` does (the runner's [`Instance`]: `bootstrap` as a child with its own Runtime API;
//! batches of up to ten received from the emulator's queue, handed over as Lambda's SQS
//! event and settled by Lambda's rules), until every child is handled.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use microprocess_kit::local::code::Code;
use microprocess_kit::local::instance::{Instance, InstanceConfig};
use microprocess_kit::local::logs::LogSink;
use microprocess_kit::local::poller::{settle, sqs_event, Settlement};
use microprocess_shared::queue_message::QueueMessage;
use tokio::sync::watch;

use super::fixture::{Fixture, FUNCTION, REGION, TIMEOUT_SECONDS};
use super::proc_stats::{self, Usage};

/// The event source mapping's batch size (the config's default and maximum).
const BATCH_SIZE: i32 = 10;
/// How long the queue may stay empty before the run counts as stuck.
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// What one process did with the children.
#[derive(Debug)]
pub struct Fed {
    /// Usage after the first batch (the process's start, its first connections).
    pub after_first_batch: Usage,
    pub first_batch_messages: u64,
    pub at_end: Usage,
    pub messages: u64,
    pub batches: u64,
    /// Each message's seq and the duration of the invocation that carried it (the
    /// Runtime API's hand-out to the function's answer).
    pub per_message: Vec<(u64, Duration)>,
    pub elapsed: Duration,
}

/// Starts the function and feeds it until `items` messages are handled; its output goes
/// to `log`.
pub async fn feed(
    fixture: &Fixture,
    code: &Code,
    environment: Vec<(String, String)>,
    items: u64,
    log: &Path,
) -> Fed {
    let (stop, shutdown) = watch::channel(false);
    let instance = Instance::start(
        InstanceConfig {
            label: "credit-scores-forwarder#1".into(),
            function_arn: format!("arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION}"),
            bootstrap: code.bootstrap.clone(),
            code_dir: code.dir.clone(),
            environment,
            init_limit: Duration::from_secs(10),
            // The forwarder's MemorySize, as the runner holds it.
            memory_limit_mb: Some(128),
        },
        LogSink::only_file(log).unwrap_or_else(|e| panic!("cannot open `{}`: {e}", log.display())),
        shutdown,
    )
    .await
    .unwrap_or_else(|e| panic!("cannot open the function's Runtime API: {e}"));
    let timeout = Duration::from_secs(TIMEOUT_SECONDS);
    let started = Instant::now();
    let mut pid = None;
    let mut first: Option<(Usage, u64)> = None;
    let mut per_message = Vec::with_capacity(usize::try_from(items).unwrap_or(0));
    let mut batches = 0;
    let mut last_progress = Instant::now();
    while (per_message.len() as u64) < items {
        let messages = receive(fixture).await;
        if messages.is_empty() {
            assert!(
                last_progress.elapsed() < STUCK_AFTER,
                "the queue stayed empty for {} s with {} of {items} children handled",
                STUCK_AFTER.as_secs(),
                per_message.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let ids: Vec<String> = messages
            .iter()
            .map(|m| m.message_id().unwrap_or_default().to_string())
            .collect();
        let event = sqs_event(&messages, &fixture.queue_arn, REGION);
        let payload = serde_json::to_vec(&event).expect("an SQS event serializes");
        let handed = Instant::now();
        let result = instance.invoke(payload.into(), timeout, None).await;
        let took = handed.elapsed();
        let settlement = settle(&ids, &result, true);
        assert_eq!(
            settlement,
            Settlement::DeleteAll,
            "the forwarder did not handle a whole batch ({result:?}); its log ends with:\n{}",
            tail(log)
        );
        delete(fixture, &messages).await;
        batches += 1;
        last_progress = Instant::now();
        for message in &messages {
            if let Ok(QueueMessage::Process { seq, .. }) =
                QueueMessage::parse(message.body().unwrap_or_default())
            {
                per_message.push((seq, took));
            }
        }
        let pid = *pid.get_or_insert_with(|| {
            proc_stats::child_running(&code.bootstrap)
                .expect("the forwarder's process runs after answering a batch")
        });
        if first.is_none() {
            let usage = proc_stats::usage(pid).unwrap_or_else(|e| panic!("{e}"));
            first = Some((usage, messages.len() as u64));
        }
    }
    let elapsed = started.elapsed();
    let pid = pid.expect("at least one batch ran");
    let at_end = proc_stats::usage(pid).unwrap_or_else(|e| panic!("{e}"));
    let _ = stop.send(true);
    instance.stopped().await;
    let (after_first_batch, first_batch_messages) = first.expect("at least one batch ran");
    Fed {
        after_first_batch,
        first_batch_messages,
        at_end,
        messages: per_message.len() as u64,
        batches,
        per_message,
        elapsed,
    }
}

/// A batch as the event source mapping receives it.
async fn receive(fixture: &Fixture) -> Vec<Message> {
    fixture
        .sqs
        .receive_message()
        .queue_url(&fixture.queue_url)
        .max_number_of_messages(BATCH_SIZE)
        .wait_time_seconds(0)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot receive from the queue: {e:?}"))
        .messages()
        .to_vec()
}

async fn delete(fixture: &Fixture, messages: &[Message]) {
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
                .expect("id and receipt handle are set")
        })
        .collect();
    let out = fixture
        .sqs
        .delete_message_batch()
        .queue_url(&fixture.queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot delete a handled batch: {e:?}"));
    assert!(
        out.failed().is_empty(),
        "deletes failed: {:?}",
        out.failed()
    );
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
