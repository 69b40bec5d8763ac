//! Splitter (issue item 3): `SendMessageBatch` calls per item, items enqueued per second
//! and CPU per item, for one split of `BENCH_SPLITTER_ITEMS` items (100,000 unless set;
//! 1,000 at smoke size) against the kit's emulator (`tools/emulator.py`).
//!
//! The demo service serves the split in pages of 1,000 (the shipped `credit-scores`
//! page size); the splitter's handler runs in process as Lambda would run it, with the
//! production tuning, its hand-offs followed, and its SQS and DynamoDB clients counting
//! every request that goes on the wire (retries included). The fewest calls a split can
//! make is one per 10 items of each page (`SendMessageBatch` takes 10 entries); calls
//! beyond that are retries of failed calls or entries.
//!
//! CPU per item is this process's CPU time (`/proc/self/stat`) over the split, divided by
//! the items: the splitter and the demo service serving its pages, both in this process.
//! The emulator is a separate process and its CPU is not in that figure; its own CPU over
//! the split is reported beside it. Items a second are the emulator's pace on this
//! machine, not SQS's.

mod cpu;

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_sqs::config::Builder as SqsConfig;
use kit_tests::counter::RequestCounter;
use kit_tests::mapping::depth;
use kit_tests::moto::MotoServer;
use kit_tests::pipeline::{follow, later, scheduled_tick, sealed, Pipeline, Setup, SECRET};
use microprocess_shared::ledger::Ledger;
use splitter::enqueue::MAX_BATCH_ENTRIES;
use splitter::{RecordingHandoff, Splitter, SqsQueue, Tuning};

use crate::table::{grouped, Table};
use crate::Size;

const AREA: &str = "splitter";

/// Items a split page holds: the shipped `credit-scores` page size.
const PAGE_SIZE: u64 = 1000;

/// The target: full batches of 10.
const TARGET_CALLS_PER_ITEM: f64 = 0.1;

pub async fn run(size: Size, table: &mut Table) {
    let items = items(size);
    // The kit's emulator: plain moto counts every message of the queue on each send,
    // which slows a split to about 26 items a second by 2,000 queued messages.
    let moto = MotoServer::start();
    let moto_pid = moto.pid();
    let pipeline = Pipeline::on(
        moto,
        Setup {
            items,
            ..Setup::default()
        },
    )
    .await;

    let sqs_requests = RequestCounter::default();
    let ledger_requests = RequestCounter::default();
    let (splitter, handoff) = counted_splitter(&pipeline, &sqs_requests, &ledger_requests);

    let own_before = cpu::own();
    let moto_before = cpu::of_pid(moto_pid);
    let started = Instant::now();
    let outcomes = follow(&splitter, &handoff, scheduled_tick(), later).await;
    let wall = started.elapsed();
    let own_cpu = cpu::own().saturating_sub(own_before);
    let moto_cpu = match (moto_before, cpu::of_pid(moto_pid)) {
        (Ok(before), Ok(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };

    let last = outcomes.last().expect("at least one invocation");
    let (total, pages, _) = sealed(last);
    assert_eq!(total, items, "the split sealed with every item");
    let (visible, in_flight) = depth(&pipeline.sqs, &pipeline.queue_url).await;
    assert_eq!(
        (visible, in_flight),
        (items, 0),
        "the queue holds one message per item"
    );

    let requests = sqs_requests.snapshot();
    let calls = requests.get("SQS.SendMessageBatch").copied().unwrap_or(0);
    let fewest = fewest_calls(items, PAGE_SIZE);
    let per_item = calls as f64 / items as f64;
    let why = if calls > fewest {
        format!(
            "; {} beyond the fewest: retried calls or entries",
            grouped(calls - fewest)
        )
    } else {
        String::new()
    };
    table.target(
        AREA,
        format!("SendMessageBatch calls per item, {} items", grouped(items)),
        format!(
            "{per_item:.4} ({} calls; the fewest is {}{why})",
            grouped(calls),
            grouped(fewest)
        ),
        format!("≤ {TARGET_CALLS_PER_ITEM}"),
        per_item <= TARGET_CALLS_PER_ITEM + f64::EPSILON,
    );

    let seconds = wall.as_secs_f64();
    table.info(
        AREA,
        format!(
            "items enqueued per second (emulator), {} items",
            grouped(items)
        ),
        format!(
            "{:.0} items/s ({seconds:.1} s, {pages} pages of {PAGE_SIZE}, {} invocation{})",
            items as f64 / seconds,
            outcomes.len(),
            if outcomes.len() == 1 { "" } else { "s" }
        ),
    );

    let micros = |d: std::time::Duration| d.as_secs_f64() * 1e6 / items as f64;
    table.info(
        AREA,
        format!("CPU per item, {} items", grouped(items)),
        format!(
            "{:.1} µs splitter + demo service (process); emulator {}",
            micros(own_cpu),
            moto_cpu.map_or("not readable".to_string(), |c| format!(
                "{:.1} µs",
                micros(c)
            ))
        ),
    );

    let ledger = ledger_requests.total();
    table.info(
        AREA,
        format!("ledger requests per page, {} items", grouped(items)),
        format!(
            "{:.2} ({} DynamoDB requests for {pages} pages)",
            ledger as f64 / pages.max(1) as f64,
            grouped(ledger)
        ),
    );
}

/// Items to split, from `BENCH_SPLITTER_ITEMS` or the size.
fn items(size: Size) -> u64 {
    const VAR: &str = "BENCH_SPLITTER_ITEMS";
    match std::env::var(VAR) {
        Ok(text) => text
            .trim()
            .replace(['_', ','], "")
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("{VAR}: `{text}` is not a positive count")),
        Err(_) => match size {
            Size::Smoke => 1_000,
            Size::Full => 100_000,
        },
    }
}

/// The splitter as Lambda runs it, over the pipeline's emulator and demo service, with
/// its queue's and ledger's requests counted and its hand-offs recorded.
fn counted_splitter(
    pipeline: &Pipeline,
    sqs_requests: &RequestCounter,
    ledger_requests: &RequestCounter,
) -> (Splitter, Arc<RecordingHandoff>) {
    let page_size = PAGE_SIZE.to_string();
    let settings = pipeline.settings(&[("SPLIT_PAGE_SIZE", page_size.as_str())]);
    let mut splitter = Splitter::new(settings, &pipeline.config, SECRET.to_string(), "splitter")
        .unwrap_or_else(|e| panic!("the splitter: {e}"));
    let sqs = aws_sdk_sqs::Client::from_conf(
        SqsConfig::from(&pipeline.config)
            .interceptor(sqs_requests.clone())
            .build(),
    );
    splitter.queue = Arc::new(SqsQueue::new(sqs, &pipeline.queue_url));
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&pipeline.config)
            .interceptor(ledger_requests.clone())
            .build(),
    );
    splitter.ledger = Arc::new(Ledger::new(dynamodb, &pipeline.table));
    let handoff = Arc::new(RecordingHandoff::default());
    splitter.handoff = handoff.clone();
    splitter.tuning = Tuning::default();
    (splitter, handoff)
}

/// One call per 10 items of each page: pages of `page` items, the last one shorter.
fn fewest_calls(items: u64, page: u64) -> u64 {
    let batch = MAX_BATCH_ENTRIES as u64;
    (items / page) * page.div_ceil(batch) + (items % page).div_ceil(batch)
}
