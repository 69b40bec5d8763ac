//! How fast one run's children can be counted, and what sharded counters cost.
//!
//! - The write-unit arithmetic (`microprocess_kit::estimate::fan_in`) for
//!   `results.counter_shards` 1, 8 and 64 under batches of 10: units per completion
//!   transaction, and the children a second at which the busiest counter item, or the
//!   run's one partition before DynamoDB splits it, reaches 1,000 write units a second.
//! - Measured: a run of `FAN_IN_BENCH_ITEMS` children (400 unless set; 40 at smoke size)
//!   per shard count, drained by four forwarders at once on the kit's emulator; the
//!   write units its transactions cost per child by DynamoDB's pricing rules, against the
//!   arithmetic, and the counters against the child records with exactly one reduce.

use std::time::Duration;

use kit_tests::drive::{drain_counted, sharded_run};
use kit_tests::moto::MotoServer;
use kit_tests::pipeline::{ForwarderOptions, Pipeline, Setup, NAME};
use microprocess_kit::estimate::fan_in::{fan_in, FanIn};
use microprocess_kit::estimate::{Inputs, Storage};
use microprocess_shared::ledger::ChildResult;
use microprocess_shared::ledger_keys::RunState;

use crate::table::{grouped, Table};
use crate::Size;

const SHARDS: [u32; 3] = [1, 8, 64];
const FORWARDERS: usize = 4;
/// How far measured write units per child may be from the arithmetic.
const TOLERANCE: f64 = 0.10;

pub async fn run(size: Size, table: &mut Table) {
    let items = match size {
        Size::Smoke => 40,
        Size::Full => std::env::var("FAN_IN_BENCH_ITEMS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(400),
    };
    for shards in SHARDS {
        let f = fan_in(&inputs(shards, 100));
        table.info(
            "fan-in",
            format!("counter_shards = {shards}, batches of 10: the write-unit arithmetic"),
            arithmetic(&f),
        );
    }
    for shards in SHARDS {
        measure(table, shards, items).await;
    }
}

fn arithmetic(f: &FanIn) -> String {
    format!(
        "{:.0} units a transaction of {} children and {:.0} counter item{} ({:.2} a child); ≤ {} children/s by the busiest counter item, ≤ {} children/s on one unsplit partition",
        f.units_per_transaction,
        f.batch_size,
        f.counters_per_transaction,
        if f.counters_per_transaction == 1.0 { "" } else { "s" },
        f.units_per_child,
        grouped(f.children_per_second_by_counters.max(0.0).round() as u64),
        grouped(f.children_per_second_one_partition.max(0.0).round() as u64),
    )
}

/// The `credit-scores` configuration with `shards` counters.
fn inputs(shards: u32, result_bytes: u64) -> Inputs {
    Inputs {
        items: 1_000_000,
        latency_seconds: 0.05,
        retry_rate: 0.0,
        result_bytes,
        item_bytes: 13,
        name_bytes: NAME.len() as u64,
        batch_size: 10,
        max_concurrency: 1000,
        rate_limit_per_second: None,
        max_attempts: 5,
        page_size: 1000,
        counter_shards: shards,
        storage: Storage::Ledger,
        forwarder_memory_mb: 128,
        splitter_memory_mb: 256,
        splitter_timeout_seconds: 900,
        arm64: true,
    }
}

async fn measure(table: &mut Table, shards: u32, items: u64) {
    let p = Pipeline::on(
        MotoServer::start(),
        Setup {
            items,
            max_receive_count: Some(6),
            ..Setup::default()
        },
    )
    .await;
    let run = sharded_run(&p, &format!("fan-in-{shards}"), items, shards).await;
    let forwarders: Vec<_> = (0..FORWARDERS)
        .map(|_| p.build_forwarder(&ForwarderOptions::default()))
        .collect();
    drain_counted(&p, &forwarders, Duration::from_secs(60 + items)).await;
    let units: u64 = forwarders
        .iter()
        .map(|f| f.ledger.estimated_write_units())
        .sum();
    let record = p.record(&run).await;
    let children = p.ledger.children(NAME, &run).await.unwrap();
    let succeeded = children.iter().filter(|c| c.result.is_some()).count() as u64;
    let exact = record.state == RunState::Completed
        && record.counter_shards == shards
        && children.len() as u64 == items
        && (record.succeeded, record.failed, record.done) == (succeeded, 0, items)
        && p.reduce_calls(&run) == 1;
    table.target(
        "fan-in",
        format!(
            "counter_shards = {shards}: counters summed over the shards vs child records, reduces"
        ),
        format!(
            "{} + {} of {} vs {} records, {} reduce(s)",
            record.succeeded,
            record.failed,
            items,
            children.len(),
            p.reduce_calls(&run)
        ),
        "equal, one reduce",
        exact,
    );
    let result_bytes = children
        .iter()
        .map(|c| match &c.result {
            Some(ChildResult::Inline(text)) => text.len() as u64,
            _ => 0,
        })
        .sum::<u64>()
        / items.max(1);
    let predicted = fan_in(&inputs(shards, result_bytes)).units_per_child;
    let measured = units as f64 / items as f64;
    table.target(
        "fan-in",
        format!("counter_shards = {shards}: write units per child, arithmetic vs measured ({FORWARDERS} forwarders)"),
        format!("{predicted:.2} vs {measured:.2}"),
        format!("within {:.0}%", TOLERANCE * 100.0),
        ((measured - predicted) / predicted).abs() <= TOLERANCE,
    );
}
