//! One local run of `credit-scores`, whole, with every AWS request counted at the SDK
//! level: the splitter pages the demo service into the queue, then forwarders drain it
//! as the event source mapping would, to the reduce.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kit_tests::counter::RequestCounter;
use kit_tests::drive::{counted_splitter, drain_counted};
use kit_tests::moto::MotoServer;
use kit_tests::pipeline::{follow, later, ForwarderOptions, Pipeline, Setup, NAME};
use microprocess_kit::estimate::Usage;
use microprocess_shared::ledger::ChildResult;
use microprocess_shared::ledger_keys::RunState;
use microprocess_shared::run_id::RunId;
use serde_json::json;

/// The configuration measured: `credit-scores` in `environments/microprocesses.toml`.
pub const PAGE_SIZE: u32 = 1000;
pub const MAX_ATTEMPTS: u32 = 5;
/// Forwarders draining at once (the mapping's concurrency).
pub const FORWARDERS: usize = 4;

/// What a run sent, in total.
pub struct Measured {
    pub items: u64,
    /// Requests and units; no Lambda duration (the emulator's times are not AWS's).
    pub usage: Usage,
    /// `Service.Operation` → requests, of the splitter, the mapping and the forwarders.
    pub by_operation: BTreeMap<String, u64>,
    /// Receives that found the queue empty (the mapping's polling; not per child).
    pub empty_receives: u64,
    pub splitter_invocations: u64,
    pub batches: u64,
    /// Mean bytes of a child's result and item id, for the model's record size.
    pub result_bytes: u64,
    pub item_bytes: u64,
    pub seconds: f64,
}

pub async fn local_run(items: u64) -> Measured {
    // The kit's emulator: plain moto slows down as the queue grows (tools/emulator.py).
    let p = Pipeline::on(
        MotoServer::start(),
        Setup {
            items,
            max_receive_count: Some(MAX_ATTEMPTS + 1),
            ..Setup::default()
        },
    )
    .await;
    let started = Instant::now();
    let splitter_requests = RequestCounter::default();
    let (splitter, handoff) = counted_splitter(&p, PAGE_SIZE, 1, &splitter_requests);
    let run = "cost-bench";
    let outcomes = follow(&splitter, &handoff, json!({"run": run}), later).await;
    let options = ForwarderOptions {
        max_attempts: MAX_ATTEMPTS,
        ..ForwarderOptions::default()
    };
    let forwarders: Vec<_> = (0..FORWARDERS)
        .map(|_| p.build_forwarder(&options))
        .collect();
    let limit = Duration::from_secs(60 + items / 5);
    let batches = drain_counted(&p, &forwarders, limit).await;
    let seconds = started.elapsed().as_secs_f64();

    let run = RunId::parse(run).unwrap();
    let record = p.record(&run).await;
    assert_eq!(record.state, RunState::Completed, "{record:?}");
    assert_eq!((record.succeeded, record.total), (items, Some(items)));
    assert_eq!(p.reduce_calls(&run), 1);

    let mut by_operation = splitter_requests.snapshot();
    for counter in [&p.mapping_requests, &p.forwarder_requests] {
        for (op, n) in counter.snapshot() {
            *by_operation.entry(op).or_default() += n;
        }
    }
    let op = |name: &str| by_operation.get(name).copied().unwrap_or(0) as f64;
    let write_units: u64 = forwarders
        .iter()
        .map(|f| f.ledger.estimated_write_units())
        .sum::<u64>()
        + splitter.ledger.estimated_write_units();
    let queries = op("DynamoDB.Query") + op("DynamoDB.GetItem");
    let receives = op("SQS.ReceiveMessage");
    let usage = Usage {
        sqs_send_batch: op("SQS.SendMessageBatch"),
        sqs_send: op("SQS.SendMessage"),
        sqs_receive: batches as f64,
        sqs_delete: op("SQS.DeleteMessageBatch") + op("SQS.DeleteMessage"),
        sqs_change_visibility: op("SQS.ChangeMessageVisibility"),
        dynamodb_transactions: op("DynamoDB.TransactWriteItems"),
        dynamodb_writes: op("DynamoDB.UpdateItem") + op("DynamoDB.PutItem"),
        dynamodb_queries: queries,
        dynamodb_write_units: write_units as f64,
        // Every read of the run is a consistent read of under 4 KB: one unit (moto
        // reports no consumed capacity to add up instead).
        dynamodb_read_units: queries,
        s3_put: op("S3.PutObject"),
        lambda_invocations: (outcomes.len() as u64 + batches) as f64,
        lambda_gb_seconds: 0.0,
    };
    let (page, _) = p.ledger.children_page(NAME, &run, None).await.unwrap();
    let mean = |sizes: Vec<usize>| (sizes.iter().sum::<usize>() / sizes.len().max(1)) as u64;
    let result_bytes = mean(
        page.iter()
            .map(|c| match &c.result {
                Some(ChildResult::Inline(text)) => text.len(),
                _ => 0,
            })
            .collect(),
    );
    let item_bytes = mean(page.iter().map(|c| c.item.len()).collect());
    Measured {
        items,
        usage,
        empty_receives: (receives as u64).saturating_sub(batches),
        by_operation,
        splitter_invocations: outcomes.len() as u64,
        batches,
        result_bytes,
        item_bytes,
        seconds,
    }
}
