//! Driving a [`Pipeline`] the way the benchmarks and fan-in tests need: a splitter whose
//! AWS requests are counted, runs with a chosen number of counter shards, and several
//! forwarders draining the queue at once with their batches counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::Utc;
use forwarder::Forwarder;
use microprocess_shared::ledger::{Layout, Ledger, Overlap};
use microprocess_shared::queue_message::QueueMessage;
use microprocess_shared::run_id::RunId;
use splitter::{RecordingHandoff, Splitter, SqsQueue};

use crate::counter::RequestCounter;
use crate::mapping::depth;
use crate::pipeline::{join_all, quick, Pipeline, BATCH_SIZE, NAME};

/// A splitter over `pipeline` splitting pages of `page_size` items into `shards` counter
/// shards, every request it sends to SQS and DynamoDB counted by `counter`.
pub fn counted_splitter(
    pipeline: &Pipeline,
    page_size: u32,
    shards: u32,
    counter: &RequestCounter,
) -> (Splitter, Arc<RecordingHandoff>) {
    let settings = pipeline.settings(&[
        ("SPLIT_PAGE_SIZE", &page_size.to_string()),
        ("COUNTER_SHARDS", &shards.to_string()),
    ]);
    let (mut splitter, handoff) = pipeline.splitter(settings, quick());
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&pipeline.config)
            .interceptor(counter.clone())
            .build(),
    );
    splitter.queue = Arc::new(SqsQueue::new(sqs, pipeline.queue_url.clone()));
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&pipeline.config)
            .interceptor(counter.clone())
            .build(),
    );
    splitter.ledger = Arc::new(Ledger::new(dynamodb, pipeline.table.clone()));
    (splitter, handoff)
}

/// A sealed run of `total` children counted on `shards` counter shards (over three child
/// partition keys), their messages on the queue in seq order, ten to a request (what a
/// split does, without the service).
pub async fn sharded_run(pipeline: &Pipeline, run: &str, total: u64, shards: u32) -> RunId {
    laid_out_run(pipeline, run, total, Layout::new(shards, 3)).await
}

/// A sealed run of `total` children laid out as `layout`, its messages on the queue.
pub async fn laid_out_run(pipeline: &Pipeline, run: &str, total: u64, layout: Layout) -> RunId {
    let run = RunId::parse(run).unwrap();
    pipeline
        .ledger
        .start_run(NAME, &run, Overlap::Allow, 30, layout, Utc::now())
        .await
        .unwrap();
    let seqs: Vec<u64> = (0..total).collect();
    for chunk in seqs.chunks(10) {
        let entries: Vec<SendMessageBatchRequestEntry> = chunk
            .iter()
            .map(|seq| {
                let body = QueueMessage::Process {
                    run: run.clone(),
                    seq: *seq,
                    item: demo_service::paging::item_id(*seq),
                    payload: None,
                }
                .to_body();
                SendMessageBatchRequestEntry::builder()
                    .id(seq.to_string())
                    .message_body(body)
                    .build()
                    .unwrap()
            })
            .collect();
        let sent = pipeline
            .sqs
            .send_message_batch()
            .queue_url(&pipeline.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
        assert!(sent.failed().is_empty(), "{:?}", sent.failed());
    }
    pipeline
        .ledger
        .seal(NAME, &run, total, Utc::now())
        .await
        .unwrap();
    run
}

/// Each forwarder takes batches until nothing is left on the queue, visible or in flight,
/// all at once (the mapping's concurrency); returns the batches handled. Panics after
/// `limit`.
pub async fn drain_counted(pipeline: &Pipeline, forwarders: &[Forwarder], limit: Duration) -> u64 {
    let started = Instant::now();
    let batches = join_all(forwarders.iter().map(|forwarder| async move {
        let mut batches = 0;
        loop {
            if pipeline.step_with(forwarder, BATCH_SIZE).await.is_some() {
                batches += 1;
                continue;
            }
            let left = depth(&pipeline.sqs, &pipeline.queue_url).await;
            if left == (0, 0) {
                return batches;
            }
            assert!(
                started.elapsed() < limit,
                "the queue did not drain within {limit:?}: {left:?} (visible, in flight) left"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }))
    .await;
    batches.iter().sum()
}
