//! How fast one run's children can be counted, and what the ledger's block layout costs.
//!
//! - The write-unit arithmetic (`microprocess_kit::estimate::fan_in`) for 1, 4 and 8 child
//!   partition keys under batches of 10: units per child, the children a second the child
//!   keys and the run's key hold before one reaches 1,000 write units a second.
//! - Measured: a run of `FAN_IN_BENCH_ITEMS` children (400 unless set; 40 at smoke size)
//!   per layout, drained by four forwarders at once on the kit's emulator with its
//!   partition ceiling on; the write units per child by DynamoDB's pricing rules against
//!   the arithmetic, the counters against the children with exactly one reduce, and the
//!   writes the emulator throttled.
//! - The old layout's writes (each child its own item, put in a transaction with the run's
//!   counter on one key, 2.2 units a child) replayed for `FAN_IN_OLD_LAYOUT_ITEMS` children
//!   (10,000 unless set) at `local`'s cap of 200 a second, the pace the `pipeline` section
//!   runs the block layout at, with the emulator's throttles.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use kit_tests::drive::{drain_counted, laid_out_run};
use kit_tests::moto::MotoServer;
use kit_tests::pipeline::{ForwarderOptions, Pipeline, Setup, NAME};
use microprocess_kit::estimate::fan_in::{fan_in, FanIn};
use microprocess_kit::estimate::{Inputs, Storage};
use microprocess_shared::ledger::{ChildResult, Layout};
use microprocess_shared::ledger_keys::RunState;

use crate::table::{grouped, Table};
use crate::Size;

/// (counter shards, child partition keys).
const LAYOUTS: [(u32, u32); 3] = [(1, 1), (1, 4), (8, 4)];
const FORWARDERS: usize = 4;
/// How far measured write units per child may be from the arithmetic.
const TOLERANCE: f64 = 0.15;

pub async fn run(size: Size, table: &mut Table) {
    let items = match size {
        Size::Smoke => 40,
        Size::Full => std::env::var("FAN_IN_BENCH_ITEMS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(400),
    };
    for (shards, partitions) in LAYOUTS {
        let f = fan_in(&inputs(shards, partitions, 100));
        table.info(
            "fan-in",
            format!(
                "{partitions} key(s), {shards} counter shard(s), batches of 10: the arithmetic"
            ),
            arithmetic(&f),
        );
    }
    for (shards, partitions) in LAYOUTS {
        measure(table, Layout::new(shards, partitions), items).await;
    }
    let old_items = match size {
        Size::Smoke => 200,
        Size::Full => std::env::var("FAN_IN_OLD_LAYOUT_ITEMS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000),
    };
    let p = Pipeline::on(MotoServer::start(), Setup::default()).await;
    let started = Instant::now();
    let throttled = old_layout_throttles(&p, old_items, LOCAL_CAP).await;
    table.info(
        "fan-in",
        format!(
            "the old layout replayed: {} children at `local`'s cap of {LOCAL_CAP:.0}/s under the partition ceiling (scale {}), throttled requests (the pipeline section's run on the block layout, at the same pace: its throttled count)",
            grouped(old_items),
            p.moto.stats()["limits"]["partition_scale"]
        ),
        format!(
            "{} in {:.1} s",
            grouped(throttled),
            started.elapsed().as_secs_f64()
        ),
    );
}

/// Children a second `local` delivers at most: the pace at which the emulator's scaled
/// ceiling meets a run at production's ratio.
const LOCAL_CAP: f64 = 200.0;

fn arithmetic(f: &FanIn) -> String {
    format!(
        "{:.2} write units a child ({:.2} on the child keys); ≤ {} children/s by the child keys, ≤ {} by the run's key",
        f.units_per_child,
        f.child_key_units_per_child,
        grouped(f.children_per_second_by_partitions.max(0.0).round() as u64),
        grouped(f.children_per_second_by_run_key.max(0.0).round() as u64),
    )
}

/// The `credit-scores` configuration with this layout.
fn inputs(shards: u32, partitions: u32, result_bytes: u64) -> Inputs {
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
        partitions,
        storage: Storage::Ledger,
        forwarder_memory_mb: 128,
        splitter_memory_mb: 256,
        splitter_timeout_seconds: 900,
        arm64: true,
    }
}

async fn measure(table: &mut Table, layout: Layout, items: u64) {
    let name = format!(
        "{} key(s), {} shard(s)",
        layout.partitions, layout.counter_shards
    );
    let p = Pipeline::on(
        MotoServer::start(),
        Setup {
            items,
            max_receive_count: Some(6),
            ..Setup::default()
        },
    )
    .await;
    let run = laid_out_run(
        &p,
        &format!("fan-in-{}-{}", layout.partitions, layout.counter_shards),
        items,
        layout,
    )
    .await;
    let forwarders: Vec<_> = (0..FORWARDERS)
        .map(|_| p.build_forwarder(&ForwarderOptions::default()))
        .collect();
    let before = p.moto.stats()["throttled"].as_u64().unwrap_or(0);
    let started = Instant::now();
    drain_counted(&p, &forwarders, Duration::from_secs(60 + items)).await;
    let seconds = started.elapsed().as_secs_f64();
    let throttled = p.moto.stats()["throttled"].as_u64().unwrap_or(0) - before;
    let units: u64 = forwarders
        .iter()
        .map(|f| f.ledger.estimated_write_units())
        .sum();
    let record = p.record(&run).await;
    let children = p.ledger.children(NAME, &run).await.unwrap();
    let succeeded = children.iter().filter(|c| c.result.is_some()).count() as u64;
    let exact = record.state == RunState::Completed
        && record.partitions == layout.partitions
        && children.len() as u64 == items
        && (record.succeeded, record.failed, record.done) == (succeeded, 0, items)
        && p.reduce_calls(&run) == 1;
    table.target(
        "fan-in",
        format!("{name}: counters vs children, reduces"),
        format!(
            "{} + {} of {} vs {} children, {} reduce(s)",
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
    let predicted = fan_in(&inputs(
        layout.counter_shards,
        layout.partitions,
        result_bytes,
    ))
    .units_per_child;
    let measured = units as f64 / items as f64;
    table.target(
        "fan-in",
        format!("{name}: write units per child, arithmetic vs measured ({FORWARDERS} forwarders)"),
        format!("{predicted:.2} vs {measured:.2}"),
        format!("within {:.0}%", TOLERANCE * 100.0),
        ((measured - predicted) / predicted).abs() <= TOLERANCE,
    );
    table.target(
        "fan-in",
        format!(
            "{name}: throttled ledger writes under the partition ceiling (scale {}) at {:.0} children/s",
            p.moto.stats()["limits"]["partition_scale"],
            items as f64 / seconds.max(0.001)
        ),
        throttled.to_string(),
        "0",
        throttled == 0,
    );
}

/// The old layout's writes for `items` children (a transaction of ten child items and the
/// run's counter, all on one key, 22 write units) sent at `pace` children a second; how
/// many the emulator throttled.
async fn old_layout_throttles(p: &Pipeline, items: u64, pace: f64) -> u64 {
    let client = aws_sdk_dynamodb::Client::new(&p.config);
    let pk = AttributeValue::S(format!("RUN#{NAME}#old-layout"));
    let before = p.moto.stats()["throttled"].as_u64().unwrap_or(0);
    let started = Instant::now();
    let transactions = items.div_ceil(10);
    let mut sent = Vec::new();
    for t in 0..transactions {
        // Ten children a transaction, at `pace` children a second.
        let due = Duration::from_secs_f64(t as f64 * 10.0 / pace.max(1.0));
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let mut writes: Vec<TransactWriteItem> = (0..10)
            .map(|i| {
                let put = Put::builder()
                    .table_name(&p.table)
                    .item("pk", pk.clone())
                    .item("sk", AttributeValue::S(format!("CHILD#{:012}", t * 10 + i)))
                    .item("item", AttributeValue::S(format!("ACN-{:09}", t * 10 + i)))
                    .item("state", AttributeValue::S("SUCCEEDED".into()))
                    .build()
                    .unwrap();
                TransactWriteItem::builder().put(put).build()
            })
            .collect();
        let update = Update::builder()
            .table_name(&p.table)
            .key("pk", pk.clone())
            .key("sk", AttributeValue::S("RUN".into()))
            .update_expression("ADD #done :ten")
            .expression_attribute_names("#done", "done")
            .expression_attribute_values(":ten", AttributeValue::N("10".into()))
            .build()
            .unwrap();
        writes.push(TransactWriteItem::builder().update(update).build());
        let client = client.clone();
        sent.push(tokio::spawn(async move {
            let _ = client
                .transact_write_items()
                .set_transact_items(Some(writes))
                .send()
                .await;
        }));
    }
    for task in sent {
        let _ = task.await;
    }
    p.moto.stats()["throttled"].as_u64().unwrap_or(0) - before
}
