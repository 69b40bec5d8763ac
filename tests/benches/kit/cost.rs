//! What the kit costs in AWS per child, measured and modelled.
//!
//! A local run of `credit-scores` as `environments/microprocesses.toml` configures it
//! (pages of 1,000, batches of 10, 5 attempts, results in the ledger, one counter) over
//! `COST_BENCH_ITEMS` items (10,000 unless set; 100 at smoke size): the splitter pages the
//! demo service onto the queue, four forwarders drain it as the event source mapping
//! would, on the kit's emulator, and every AWS request is counted at the SDK level
//! (`kit_tests::counter`). Lambda invocations are the splitter's invocations plus the
//! forwarder batches. Write units follow DynamoDB's pricing rules from the items each
//! successful write wrote (`Ledger::estimated_write_units`: moto reports no consumed
//! capacity for transactions); every read is one consistent read of the run under 4 KB.
//!
//! The per-child figures are held against the cost model of `microprocess estimate`
//! (`microprocess_kit::estimate`), and priced at 50 ms and 500 ms of service latency:
//! the measured requests and units, and the model's Lambda duration (a batch calls its
//! children at once, so it lasts about one latency plus three AWS calls; the emulator's
//! times say nothing about AWS's).

mod measure;

use microprocess_kit::estimate::{estimate, prices, Cost, Estimate, Inputs, Storage, Usage};

use crate::table::Table;
use crate::Size;
use measure::Measured;

/// The targets: the kit's AWS cost per million children at 50 ms with results in the
/// ledger (Cloud Tasks' price for a push, with exactly-once fan-in on top), and with
/// results discarded; write units per child in each case.
const TARGET_PER_MILLION: f64 = 0.80;
const TARGET_PER_MILLION_DISCARDED: f64 = 0.40;
const TARGET_UNITS: f64 = 1.0;
const TARGET_UNITS_DISCARDED: f64 = 0.35;
/// How far a measured per-child figure may be from the model's.
const TOLERANCE: f64 = 0.10;

pub async fn run(size: Size, table: &mut Table) {
    let items = match size {
        Size::Smoke => 100,
        Size::Full => std::env::var("COST_BENCH_ITEMS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000),
    };
    let m = measure::local_run(items).await;
    table.info(
        "cost",
        format!("local run of {items} items: splitter invocations, forwarder batches, wall time"),
        format!(
            "{}, {}, {:.1} s ({:.0} children/s on the emulator)",
            m.splitter_invocations,
            m.batches,
            m.seconds,
            items as f64 / m.seconds
        ),
    );
    table.info(
        "cost",
        "AWS requests of the run, by operation",
        m.by_operation
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    table.info(
        "cost",
        "empty receives while draining (the mapping's polling, not per child)",
        m.empty_receives.to_string(),
    );

    let model = estimate(&inputs(&m, 0.050));
    compare(table, &m, &model);
    let units = m.usage.dynamodb_write_units / m.items.max(1) as f64;
    table.target(
        "cost",
        "ledger write units per child, results in the ledger, counted at the SDK level",
        format!(
            "{units:.3} (model {:.3})",
            model.per_child.dynamodb_write_units
        ),
        format!("≤ {TARGET_UNITS}"),
        units <= TARGET_UNITS,
    );
    let discarded = estimate(&Inputs {
        storage: Storage::Discard,
        ..inputs(&m, 0.050)
    });
    table.target(
        "cost",
        "results discarded, by the model held to this run: write units per child, cost per million at 50 ms",
        format!(
            "{:.3}, {}",
            discarded.per_child.dynamodb_write_units,
            dollars(discarded.per_million.total())
        ),
        format!("≤ {TARGET_UNITS_DISCARDED}, ≤ {}", dollars(TARGET_PER_MILLION_DISCARDED)),
        discarded.per_child.dynamodb_write_units <= TARGET_UNITS_DISCARDED
            && discarded.per_million.total() <= TARGET_PER_MILLION_DISCARDED,
    );
    for latency_ms in [50, 500] {
        price(
            table,
            &m,
            &estimate(&inputs(&m, latency_ms as f64 / 1000.0)),
            latency_ms,
        );
    }

    let sf = model.step_functions;
    let kit = priced(&m, &model).total();
    table.target(
        "cost",
        "Step Functions Distributed Map, Standard children (2 transitions), per million",
        dollars(sf.standard_children),
        format!("kit ({}) under a tenth", dollars(kit)),
        kit * 10.0 <= sf.standard_children,
    );
    table.target(
        "cost",
        "Step Functions Distributed Map, Express children of one item, per million",
        dollars(sf.express_children),
        format!("kit ({}) at most", dollars(kit)),
        kit <= sf.express_children,
    );
    table.info(
        "cost",
        "Step Functions Distributed Map, Express children of 10 items (at-least-once), per million",
        dollars(sf.express_batched_children),
    );
    table.info(
        "cost",
        "idle cost of one queue a month (5 pollers long-polling 20 s)",
        format!(
            "{} ({} thousand empty receives); the sweep {} a microprocess",
            dollars(model.idle_queue_cost_per_month),
            (model.idle_queue_requests_per_month / 1000.0).round(),
            dollars(model.sweep_cost_per_month)
        ),
    );
}

/// The model's inputs for the run measured, at `latency_seconds`.
fn inputs(m: &Measured, latency_seconds: f64) -> Inputs {
    Inputs {
        items: m.items,
        latency_seconds,
        retry_rate: 0.0,
        result_bytes: m.result_bytes,
        item_bytes: m.item_bytes,
        name_bytes: kit_tests::pipeline::NAME.len() as u64,
        batch_size: kit_tests::pipeline::BATCH_SIZE as u32,
        max_concurrency: measure::FORWARDERS as u32,
        rate_limit_per_second: None,
        max_attempts: measure::MAX_ATTEMPTS,
        page_size: measure::PAGE_SIZE,
        counter_shards: 1,
        partitions: 2,
        storage: Storage::Ledger,
        forwarder_memory_mb: 128,
        splitter_memory_mb: 256,
        splitter_timeout_seconds: 900,
        arm64: true,
    }
}

/// One figure of a [`Usage`].
type Figure = fn(&Usage) -> f64;

/// Model against measurement, per child (the run's fixed requests spread over its items).
fn compare(table: &mut Table, m: &Measured, model: &Estimate) {
    let per_child = |total: f64| total / m.items as f64;
    let rows: [(&str, Figure); 6] = [
        ("SQS requests", Usage::sqs_requests),
        ("DynamoDB requests", Usage::dynamodb_requests),
        ("DynamoDB write units", |u| u.dynamodb_write_units),
        ("DynamoDB read units", |u| u.dynamodb_read_units),
        ("Lambda invocations", |u| u.lambda_invocations),
        ("S3 puts", |u| u.s3_put),
    ];
    for (what, of) in rows {
        let (predicted, measured) = (per_child(of(&model.total)), per_child(of(&m.usage)));
        let met = if predicted == 0.0 {
            measured == 0.0
        } else {
            ((measured - predicted) / predicted).abs() <= TOLERANCE
        };
        table.target(
            "cost",
            format!("{what} per child, model vs measured"),
            format!("{predicted:.4} vs {measured:.4}"),
            format!("within {:.0}%", TOLERANCE * 100.0),
            met,
        );
    }
}

/// The measured requests and units, with the model's Lambda duration, in dollars.
fn priced(m: &Measured, model: &Estimate) -> Cost {
    let usage = Usage {
        lambda_gb_seconds: model.total.lambda_gb_seconds,
        ..m.usage
    };
    usage
        .cost(prices::LAMBDA_GB_SECOND_ARM64)
        .times(1e6 / m.items as f64)
}

fn price(table: &mut Table, m: &Measured, model: &Estimate, latency_ms: u64) {
    let cost = priced(m, model);
    let value = format!(
        "{} (Lambda {}, SQS {}, DynamoDB {}, S3 {}; model {})",
        dollars(cost.total()),
        dollars(cost.lambda),
        dollars(cost.sqs),
        dollars(cost.dynamodb),
        dollars(cost.s3),
        dollars(model.per_million.total()),
    );
    let measure = format!(
        "AWS cost per million children at {latency_ms} ms (arm64 128 MB, {} on-demand)",
        prices::PRICES_REGION
    );
    if latency_ms == 50 {
        table.target(
            "cost",
            measure,
            value,
            format!("≤ {}", dollars(TARGET_PER_MILLION)),
            cost.total() <= TARGET_PER_MILLION,
        );
    } else {
        table.info("cost", measure, value);
    }
}

fn dollars(v: f64) -> String {
    if v >= 0.1 || v == 0.0 {
        format!("${v:.2}")
    } else {
        format!("${v:.4}")
    }
}
