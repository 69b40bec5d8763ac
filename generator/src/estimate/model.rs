//! The cost and duration model of one run: AWS requests and capacity units per child,
//! derived from the microprocess's configuration and from what the splitter, the
//! forwarder and the ledger do per page, per batch and per child; then prices, duration,
//! the idle cost of a queue, and Step Functions' Distributed Map for the same children.
//!
//! What it counts, and where that comes from in the code:
//!
//! - **splitter**, per page of `page_size` items: one `SendMessageBatch` per 10 messages
//!   (8 in flight), one checkpoint `UpdateItem` of the run record;
//! - **event source mapping**, per batch: one `ReceiveMessage` and one
//!   `DeleteMessageBatch`;
//! - **forwarder**, per batch: a consistent `Query` of the run (run record and its counter
//!   shards), the process calls at once (after waiting for the rate cap's share of the
//!   instance, a token bucket of one batch, when the instance would call faster),
//!   the results put in S3 one after another when they go there, per block the batch
//!   touches (one, two at a block's edge) a `PutItem` of the children's details and one
//!   conditional `UpdateItem` that counts them, per 100 children the block's report (a
//!   `TransactWriteItems` of the block and its counter item), and a consistent `Query` to
//!   see whether the run is complete; per retry one `ChangeMessageVisibility`, per child
//!   failed for good one `SendMessage` to the dead-letter queue;
//! - **per run**: the run's start, seal, reduce claim, reduce-queued note and completion
//!   (`PutItem`, `UpdateItem`), the reduce message through the queue, the splitter's
//!   hand-offs.
//!
//! Write units follow DynamoDB's rules (one per started KB, two in a transaction); item
//! sizes are computed as `lambdas/shared/src/ledger/capacity.rs` does, from the records'
//! attribute names and typical values. Times of AWS calls inside the region are a model
//! assumption ([`AWS_CALL_SECONDS`]); the service's latency is the caller's.

use super::prices;

/// One DynamoDB or SQS call from a Lambda function in the same region, in seconds.
pub const AWS_CALL_SECONDS: f64 = 0.010;
/// One S3 `PutObject` of a small result, in seconds.
pub const S3_PUT_SECONDS: f64 = 0.030;
/// The forwarder's own work per batch (parsing, signing, classifying), in seconds.
pub const FORWARDER_WORK_SECONDS: f64 = 0.005;
/// Messages per `SendMessageBatch` (the SQS maximum).
pub const SEND_BATCH_ENTRIES: u64 = 10;
/// `SendMessageBatch` calls the splitter keeps in flight (`EnqueuePolicy::in_flight`).
pub const ENQUEUE_IN_FLIGHT: u64 = 8;
/// The splitter hands over to a fresh invocation this long before its deadline
/// (`HandoffRule::min_margin`).
pub const SPLITTER_HANDOFF_MARGIN_SECONDS: f64 = 60.0;
/// Concurrent batches an event source mapping starts with, and how many it adds a minute
/// (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html: "five batches
/// at a time", "up to 300 more instances per minute").
pub const MAPPING_START_BATCHES: f64 = 5.0;
pub const MAPPING_ADDED_PER_MINUTE: f64 = 300.0;
/// Pollers of an idle queue: five, and not fewer when `MaximumConcurrency` is set, as the
/// kit sets it (same page: the optimization to two "is not available when you enable the
/// maximum concurrency setting").
pub const IDLE_POLLERS: f64 = 5.0;
/// Long poll of an idle queue, in seconds: the SQS maximum wait
/// (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/best-practices-setting-up-long-polling.html).
pub const LONG_POLL_SECONDS: f64 = 20.0;
/// The sweep runs every five minutes per microprocess (`rate(5 minutes)`).
pub const SWEEPS_PER_HOUR: f64 = 12.0;
/// Time of one sweep invocation that finds nothing, in seconds.
pub const SWEEP_SECONDS: f64 = 0.020;
/// State transitions per child of a Distributed Map with Standard children: the child
/// execution the map starts, and at least one task state in it.
pub const SFN_STANDARD_TRANSITIONS_PER_CHILD: f64 = 2.0;

/// Largest result kept inline in a child's details (`results::MAX_INLINE_BYTES`).
pub const MAX_INLINE_RESULT_BYTES: u64 = 64 * 1024;
/// A typical run id (`manual-20261124t020000z`, a schedule's `2026-11-01T02-00-00Z`).
const RUN_ID_BYTES: u64 = 24;
/// The run record (state, times, cursor, counters, index keys), a little under 1 KB.
pub const RUN_RECORD_BYTES: u64 = 700;
/// One counter shard item (key, three counters, TTL).
pub const SHARD_RECORD_BYTES: u64 = 110;

/// Where results go (`results.storage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// In the child record up to 64 KiB, larger in S3.
    Ledger,
    /// Always in S3.
    Bucket,
    /// Not kept.
    Discard,
}

/// What a run's cost depends on: the configuration and the workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    pub items: u64,
    /// The service's time per process call (and per split page), in seconds.
    pub latency_seconds: f64,
    /// Fraction of process calls answered "retry later" (5xx, 429, timeouts).
    pub retry_rate: f64,
    /// Bytes of a process answer's JSON.
    pub result_bytes: u64,
    /// Bytes of an item id.
    pub item_bytes: u64,
    /// Bytes of the microprocess's name (part of every ledger key).
    pub name_bytes: u64,
    pub batch_size: u32,
    pub max_concurrency: u32,
    pub rate_limit_per_second: Option<u32>,
    pub max_attempts: u32,
    pub page_size: u32,
    pub counter_shards: u32,
    /// Child partition keys of a run (`results.partitions`).
    pub partitions: u32,
    pub storage: Storage,
    pub forwarder_memory_mb: u32,
    pub splitter_memory_mb: u32,
    pub splitter_timeout_seconds: u32,
    pub arm64: bool,
}

/// Requests and units, per child or per run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub sqs_send_batch: f64,
    pub sqs_send: f64,
    pub sqs_receive: f64,
    pub sqs_delete: f64,
    pub sqs_change_visibility: f64,
    pub dynamodb_transactions: f64,
    pub dynamodb_writes: f64,
    pub dynamodb_queries: f64,
    pub dynamodb_write_units: f64,
    pub dynamodb_read_units: f64,
    pub s3_put: f64,
    pub lambda_invocations: f64,
    /// Forwarder and splitter duration × memory.
    pub lambda_gb_seconds: f64,
}

impl Usage {
    pub fn sqs_requests(&self) -> f64 {
        self.sqs_send_batch
            + self.sqs_send
            + self.sqs_receive
            + self.sqs_delete
            + self.sqs_change_visibility
    }

    pub fn dynamodb_requests(&self) -> f64 {
        self.dynamodb_transactions + self.dynamodb_writes + self.dynamodb_queries
    }

    /// `self × k + other`.
    pub fn scaled_plus(&self, k: f64, other: &Usage) -> Usage {
        let f = |a: f64, b: f64| a * k + b;
        Usage {
            sqs_send_batch: f(self.sqs_send_batch, other.sqs_send_batch),
            sqs_send: f(self.sqs_send, other.sqs_send),
            sqs_receive: f(self.sqs_receive, other.sqs_receive),
            sqs_delete: f(self.sqs_delete, other.sqs_delete),
            sqs_change_visibility: f(self.sqs_change_visibility, other.sqs_change_visibility),
            dynamodb_transactions: f(self.dynamodb_transactions, other.dynamodb_transactions),
            dynamodb_writes: f(self.dynamodb_writes, other.dynamodb_writes),
            dynamodb_queries: f(self.dynamodb_queries, other.dynamodb_queries),
            dynamodb_write_units: f(self.dynamodb_write_units, other.dynamodb_write_units),
            dynamodb_read_units: f(self.dynamodb_read_units, other.dynamodb_read_units),
            s3_put: f(self.s3_put, other.s3_put),
            lambda_invocations: f(self.lambda_invocations, other.lambda_invocations),
            lambda_gb_seconds: f(self.lambda_gb_seconds, other.lambda_gb_seconds),
        }
    }

    /// The dollars of this usage per service, at `gb_second` for Lambda duration.
    pub fn cost(&self, gb_second: f64) -> Cost {
        Cost {
            lambda: self.lambda_invocations * prices::LAMBDA_REQUEST
                + self.lambda_gb_seconds * gb_second,
            sqs: self.sqs_requests() * prices::SQS_REQUEST,
            dynamodb: self.dynamodb_write_units * prices::DYNAMODB_WRITE_UNIT
                + self.dynamodb_read_units * prices::DYNAMODB_READ_UNIT,
            s3: self.s3_put * prices::S3_PUT,
        }
    }
}

/// Dollars per service.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub lambda: f64,
    pub sqs: f64,
    pub dynamodb: f64,
    pub s3: f64,
}

impl Cost {
    pub fn total(&self) -> f64 {
        self.lambda + self.sqs + self.dynamodb + self.s3
    }

    pub fn times(&self, k: f64) -> Cost {
        Cost {
            lambda: self.lambda * k,
            sqs: self.sqs * k,
            dynamodb: self.dynamodb * k,
            s3: self.s3 * k,
        }
    }
}

/// How long the run takes, and what bounds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// One forwarder invocation, in seconds.
    pub batch_seconds: f64,
    /// The part of it spent waiting for the instance's share of the rate cap.
    pub cap_wait_seconds: f64,
    /// With a rate cap: the fewest forwarders that reach it without waiting for it.
    pub forwarders_for_cap: Option<u32>,
    /// Process calls a second once the mapping has scaled up.
    pub children_per_second: f64,
    /// What sets that pace.
    pub bound: Bound,
    /// The split alone, in seconds.
    pub split_seconds: f64,
    /// The whole run, split to reduce, in seconds.
    pub run_seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `max_concurrency` batches at a time, each as long as the service's latency and the
    /// forwarder's calls.
    Concurrency,
    /// `rate_limit_per_second`.
    RateCap,
    /// The split enqueues slower than the forwarders work.
    Split,
}

/// Step Functions' Distributed Map for the same children, per million.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepFunctions {
    /// Standard child workflows: state transitions.
    pub standard_children: f64,
    /// Express child workflows of one item each: the map's transition per child, the
    /// request and the duration.
    pub express_children: f64,
    /// Express child workflows of `batch_size` items each (`ItemBatcher`).
    pub express_batched_children: f64,
}

/// The whole estimate of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub inputs: Inputs,
    /// Per child, at steady state.
    pub per_child: Usage,
    /// Once per run, whatever its size.
    pub per_run: Usage,
    pub total: Usage,
    pub cost: Cost,
    /// Cost per million children.
    pub per_million: Cost,
    pub timing: Timing,
    /// Expected process calls per child (retries included).
    pub attempts_per_child: f64,
    /// Fraction of children failed for good.
    pub failed_fraction: f64,
    /// Bytes of one batch's details item.
    pub details_item_bytes: u64,
    pub step_functions: StepFunctions,
    /// Empty receives of one idle queue in a month, and their cost.
    pub idle_queue_requests_per_month: f64,
    pub idle_queue_cost_per_month: f64,
    /// The five-minute sweep of one microprocess in a month.
    pub sweep_cost_per_month: f64,
}

/// Estimates one run.
pub fn estimate(inputs: &Inputs) -> Estimate {
    let b = f64::from(inputs.batch_size.max(1));
    let p = inputs.retry_rate.clamp(0.0, 0.999);
    let m = inputs.max_attempts.max(1);
    let failed = p.powi(i32::try_from(m).unwrap_or(i32::MAX));
    // Attempts of one child: 1 + p + p² + … + p^(m-1).
    let attempts = if p == 0.0 {
        1.0
    } else {
        (1.0 - failed) / (1.0 - p)
    };
    let page = f64::from(inputs.page_size.max(1));
    let child_bytes = details_item_bytes(inputs);
    let to_s3 = match inputs.storage {
        Storage::Bucket => true,
        Storage::Ledger => inputs.result_bytes > MAX_INLINE_RESULT_BYTES,
        Storage::Discard => false,
    };
    let timing = timing(inputs, attempts);
    let gb = |mb: u32| f64::from(mb) / 1024.0;

    let batches = attempts / b;
    let per_child = Usage {
        sqs_send_batch: (inputs.page_size.max(1) as u64).div_ceil(SEND_BATCH_ENTRIES) as f64 / page,
        sqs_send: failed,
        sqs_receive: batches,
        sqs_delete: batches,
        sqs_change_visibility: attempts - 1.0,
        // A block's report, once per 100 children.
        dynamodb_transactions: 1.0 / BLOCK,
        // Per block a batch touches: its details and its count; the splitter's
        // checkpoint, once a page.
        dynamodb_writes: 2.0 * blocks_touched(inputs) / b + 1.0 / page,
        // The run read at the start of each batch, and again after its writes.
        dynamodb_queries: batches + 1.0 / b,
        dynamodb_write_units: ledger_write_units_per_child(inputs) + 1.0 / page,
        dynamodb_read_units: (batches + 1.0 / b) * run_read_units(inputs),
        s3_put: if to_s3 { 1.0 - failed } else { 0.0 },
        lambda_invocations: batches,
        lambda_gb_seconds: batches * timing.batch_seconds * gb(inputs.forwarder_memory_mb),
    };

    let usable =
        (f64::from(inputs.splitter_timeout_seconds) - SPLITTER_HANDOFF_MARGIN_SECONDS).max(30.0);
    let splitter_invocations = (timing.split_seconds / usable).ceil().max(1.0);
    let reduce_seconds = inputs.latency_seconds + FORWARDER_WORK_SECONDS + 2.0 * AWS_CALL_SECONDS;
    let per_run = Usage {
        // The reduce message, sent by the claim's winner.
        sqs_send: 1.0,
        sqs_receive: 1.0,
        sqs_delete: 1.0,
        // Start, seal, reduce claim, the note that its message is queued, completion.
        dynamodb_writes: 5.0,
        dynamodb_write_units: 5.0,
        // The splitter's looks at the run and at active runs, the seal's, the reduce's.
        dynamodb_queries: 5.0,
        dynamodb_read_units: 5.0,
        lambda_invocations: splitter_invocations + 1.0,
        lambda_gb_seconds: timing.split_seconds * gb(inputs.splitter_memory_mb)
            + reduce_seconds * gb(inputs.forwarder_memory_mb),
        ..Usage::default()
    };

    let items = inputs.items as f64;
    let total = per_child.scaled_plus(items, &per_run);
    let gb_second = if inputs.arm64 {
        prices::LAMBDA_GB_SECOND_ARM64
    } else {
        prices::LAMBDA_GB_SECOND_X86_64
    };
    let cost = total.cost(gb_second);
    let per_million = if inputs.items == 0 {
        Cost::default()
    } else {
        cost.times(1e6 / items)
    };
    let idle_requests = IDLE_POLLERS * (3600.0 / LONG_POLL_SECONDS) * prices::HOURS_PER_MONTH;
    let sweeps = SWEEPS_PER_HOUR * prices::HOURS_PER_MONTH;
    Estimate {
        per_child,
        per_run,
        total,
        cost,
        per_million,
        timing,
        attempts_per_child: attempts,
        failed_fraction: failed,
        details_item_bytes: child_bytes,
        step_functions: step_functions(inputs),
        idle_queue_requests_per_month: idle_requests,
        idle_queue_cost_per_month: idle_requests * prices::SQS_REQUEST,
        sweep_cost_per_month: sweeps
            * (prices::LAMBDA_REQUEST
                + SWEEP_SECONDS * gb(inputs.splitter_memory_mb) * gb_second
                + 0.5 * prices::DYNAMODB_READ_UNIT),
        inputs: inputs.clone(),
    }
}

/// Write units of one standard write of `bytes`: one per started KB.
pub fn write_units(bytes: u64) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// Seqs of one block of the ledger.
const BLOCK: f64 = microprocess_shared::ledger_keys::BLOCK_SEQS as f64;

/// Blocks one batch's children fall in: one (a batch's seqs were queued close together),
/// plus a second when the batch straddles a block's edge, which `batch - 1` of every 100
/// starting seqs do. Each is a details item and a count update; with counter shards, each
/// block reports to its own shard.
pub fn blocks_touched(inputs: &Inputs) -> f64 {
    let straddle = f64::from(inputs.batch_size.max(1) - 1) / BLOCK;
    1.0 + straddle.min(1.0)
}

/// Write units of a block's report: a transaction of the block item and its counter item,
/// both under 1 KB, two units each.
pub const REPORT_WRITE_UNITS: f64 = 4.0;

/// Write units a child costs the ledger, by DynamoDB's rules: per block a batch touches,
/// the details item (its children's share of the batch) and the count update (1 unit: the
/// block item stays under 1 KB), and a report per 100 children.
pub fn ledger_write_units_per_child(inputs: &Inputs) -> f64 {
    let b = f64::from(inputs.batch_size.max(1));
    let touched = blocks_touched(inputs);
    let details = write_units(details_item_bytes(inputs)) * touched / b;
    let count = touched / b;
    details + count + REPORT_WRITE_UNITS / BLOCK
}

/// Write units a child costs on the run's child partition keys (everything but the
/// counter half of the report, which is on the run's key).
pub fn child_key_write_units_per_child(inputs: &Inputs) -> f64 {
    ledger_write_units_per_child(inputs) - REPORT_WRITE_UNITS / 2.0 / BLOCK
}

/// Read units of one consistent `Query` of the run record and its shards: one per started
/// 4 KB.
pub fn run_read_units(inputs: &Inputs) -> f64 {
    let shards = if inputs.counter_shards > 1 {
        u64::from(inputs.counter_shards) * SHARD_RECORD_BYTES
    } else {
        0
    };
    (RUN_RECORD_BYTES + shards).div_ceil(4096).max(1) as f64
}

/// Bytes of one child's entry in a details item by DynamoDB's rules: its key in the map
/// and its attribute names plus values.
pub fn detail_entry_bytes(inputs: &Inputs) -> u64 {
    let result = match inputs.storage {
        Storage::Discard => 0,
        Storage::Ledger if inputs.result_bytes <= MAX_INLINE_RESULT_BYTES => {
            1 + "result".len() as u64 + inputs.result_bytes
        }
        // `s3://<bucket>/results/<microprocess>/<run>/<seq>.json`, a bucket name of ~50.
        _ => 1 + "result_s3".len() as u64 + 5 + 50 + 9 + inputs.name_bytes + RUN_ID_BYTES + 14,
    };
    let fields = [
        ("item".len() as u64, inputs.item_bytes),
        ("state".len() as u64, "SUCCEEDED".len() as u64),
        ("attempts".len() as u64, 2),
    ];
    // The seq as the map key, the map's own 3 bytes, a byte per element.
    let seq_key = 1 + 6 + 3;
    seq_key
        + fields
            .iter()
            .map(|(name, value)| 1 + name + value)
            .sum::<u64>()
        + result
}

/// Bytes of one batch's details item: its key, block, times and the batch's entries (a
/// batch that straddles two blocks writes two items of about half as many).
pub fn details_item_bytes(inputs: &Inputs) -> u64 {
    let pk = "RUN#".len() as u64 + inputs.name_bytes + 1 + RUN_ID_BYTES + 2;
    let fields = [
        ("pk".len() as u64, pk),
        ("sk".len() as u64, "BLOCK#0000000000#D#".len() as u64 + 23),
        ("block".len() as u64, 4),
        ("children".len() as u64, 3),
        (
            "finished_at".len() as u64,
            "2026-11-01T02:00:00Z".len() as u64,
        ),
        ("expires_at".len() as u64, 6),
    ];
    fields.iter().map(|(name, value)| name + value).sum::<u64>()
        + u64::from(inputs.batch_size.max(1)) * detail_entry_bytes(inputs)
}

fn timing(inputs: &Inputs, attempts: f64) -> Timing {
    let b = f64::from(inputs.batch_size.max(1));
    let c = f64::from(inputs.max_concurrency.max(1));
    let to_s3 = match inputs.storage {
        Storage::Bucket => true,
        Storage::Ledger => inputs.result_bytes > MAX_INLINE_RESULT_BYTES,
        Storage::Discard => false,
    };
    // Results go to S3 one after another (`judge` per child).
    let s3 = if to_s3 { b * S3_PUT_SECONDS } else { 0.0 };
    let unpaced = FORWARDER_WORK_SECONDS + 3.0 * AWS_CALL_SECONDS + inputs.latency_seconds + s3;
    // The mapping receives the next batch while nothing runs on the instance.
    let free_cycle = unpaced + AWS_CALL_SECONDS;
    let by_concurrency = c * b / free_cycle;
    let cap = inputs
        .rate_limit_per_second
        .filter(|r| *r > 0)
        .map_or(f64::INFINITY, f64::from);
    // Each instance's share of the cap is a token bucket of one batch (forwarder
    // `rate.rs`): an instance that would call faster than its share waits for the tokens
    // inside its invocation, so its batches come one share period apart.
    let cycle = free_cycle.max(c * b / cap);
    let batch_seconds = cycle - AWS_CALL_SECONDS;
    let forwarders_for_cap = inputs
        .rate_limit_per_second
        .filter(|r| *r > 0)
        .map(|r| ((f64::from(r) * free_cycle / b).ceil() as u32).max(2));
    let calls_per_second = by_concurrency.min(cap);
    let children_per_second = calls_per_second / attempts;

    let pages = (inputs.items.div_ceil(u64::from(inputs.page_size.max(1)))) as f64;
    let sends = u64::from(inputs.page_size.max(1))
        .div_ceil(SEND_BATCH_ENTRIES)
        .div_ceil(ENQUEUE_IN_FLIGHT) as f64;
    let page_seconds = inputs.latency_seconds + (sends + 1.0) * AWS_CALL_SECONDS;
    let split_seconds = pages * page_seconds;

    let items = inputs.items as f64;
    // The mapping starts with a few batches and adds 300 a minute: the time lost while
    // it scales up to the concurrency the pace needs.
    let needed = (calls_per_second * cycle / b).max(1.0);
    let start = MAPPING_START_BATCHES.min(needed);
    let ramp = (needed - start) / (MAPPING_ADDED_PER_MINUTE / 60.0);
    let lost = ramp * (needed - start) / (2.0 * needed);
    let processing = if items == 0.0 {
        0.0
    } else {
        items / children_per_second + lost
    };
    let split_bound = split_seconds + cycle > processing;
    let bound = if split_bound {
        Bound::Split
    } else if by_concurrency > cap {
        Bound::RateCap
    } else {
        Bound::Concurrency
    };
    let reduce = cycle + inputs.latency_seconds + 2.0 * AWS_CALL_SECONDS;
    Timing {
        batch_seconds,
        cap_wait_seconds: batch_seconds - unpaced,
        forwarders_for_cap,
        children_per_second,
        bound,
        split_seconds,
        run_seconds: processing.max(split_seconds + cycle) + reduce,
    }
}

fn step_functions(inputs: &Inputs) -> StepFunctions {
    let million = 1e6;
    let billed = (inputs.latency_seconds / prices::SFN_EXPRESS_BILLING_STEP_SECONDS)
        .ceil()
        .max(1.0)
        * prices::SFN_EXPRESS_BILLING_STEP_SECONDS;
    let duration = billed * prices::SFN_EXPRESS_MEMORY_GB * prices::SFN_EXPRESS_GB_SECOND;
    let b = f64::from(inputs.batch_size.max(1));
    StepFunctions {
        standard_children: million
            * SFN_STANDARD_TRANSITIONS_PER_CHILD
            * prices::SFN_STATE_TRANSITION,
        express_children: million
            * (prices::SFN_STATE_TRANSITION + prices::SFN_EXPRESS_REQUEST + duration),
        // A child calls its items at once, so it lasts about one latency.
        express_batched_children: million
            * (prices::SFN_STATE_TRANSITION + prices::SFN_EXPRESS_REQUEST + duration)
            / b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `credit-scores` as `microprocesses.toml` has it, on 10,000 items.
    fn inputs() -> Inputs {
        Inputs {
            items: 10_000,
            latency_seconds: 0.050,
            retry_rate: 0.0,
            result_bytes: 60,
            item_bytes: 13,
            name_bytes: "credit-scores".len() as u64,
            batch_size: 10,
            max_concurrency: 50,
            rate_limit_per_second: None,
            max_attempts: 5,
            page_size: 1000,
            counter_shards: 1,
            partitions: 1,
            storage: Storage::Ledger,
            forwarder_memory_mb: 128,
            splitter_memory_mb: 256,
            splitter_timeout_seconds: 900,
            arm64: true,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn details_are_counted_attribute_by_attribute() {
        // The seq key 10, item 1 + 4 + 13, state 1 + 5 + 9, attempts 1 + 8 + 2, result
        // 1 + 6 + 60.
        assert_eq!(detail_entry_bytes(&inputs()), 121);
        // pk 2 + 44, sk 2 + 42, block 5 + 4, children 8 + 3, finished_at 11 + 20,
        // expires_at 10 + 6, and ten entries.
        assert_eq!(details_item_bytes(&inputs()), 157 + 1210);
        let discard = Inputs {
            storage: Storage::Discard,
            ..inputs()
        };
        assert_eq!(detail_entry_bytes(&discard), 54);
        // Under 1 KB: one unit per batch, and a quarter of a unit a child in all.
        assert!(close(
            ledger_write_units_per_child(&discard),
            0.109 + 0.109 + 0.04
        ));
    }

    #[test]
    fn requests_per_child_by_hand() {
        let e = estimate(&inputs());
        let c = e.per_child;
        // Batches of 10: a receive, a delete, an invocation, a transaction each.
        assert!(close(c.sqs_receive, 0.1));
        assert!(close(c.sqs_delete, 0.1));
        assert!(close(c.sqs_send_batch, 0.1));
        assert!(close(c.lambda_invocations, 0.1));
        // A block's report per 100 children.
        assert!(close(c.dynamodb_transactions, 0.01));
        assert!(close(c.sqs_requests(), 0.3));
        // Two consistent reads of the run per batch.
        assert!(close(c.dynamodb_queries, 0.2));
        assert!(close(c.dynamodb_read_units, 0.2));
        // Per block a batch touches (1.09): a details item of 1,367 bytes (2 units) and a
        // count (1 unit); 4 units per 100 children for the report, 1 per page checkpoint.
        assert!(close(c.dynamodb_write_units, 0.218 + 0.109 + 0.04 + 0.001));
        assert!(close(c.dynamodb_writes, 0.218 + 0.001));
        assert_eq!(c.s3_put, 0.0);
        assert_eq!(c.sqs_change_visibility, 0.0);
    }

    #[test]
    fn cost_per_million_at_50_ms_by_hand() {
        let e = estimate(&inputs());
        // DynamoDB: 0.368 WRU × $0.625 + 0.2 RRU × $0.125 per million children.
        assert!((e.per_million.dynamodb - (0.368 * 0.625 + 0.2 * 0.125)).abs() < 0.001);
        // SQS: 0.3 requests × $0.40 (and the per-run reduce message, 3 of 10,000).
        assert!((e.per_million.sqs - (0.3 + 0.0003) * 0.40).abs() < 0.0001);
        // Lambda: 0.1 invocation × $0.20, and a batch of 5 + 30 + 50 ms at 128 MB arm64.
        let batch = 0.085 * 0.125 * prices::LAMBDA_GB_SECOND_ARM64 * 0.1 * 1e6;
        assert!(close(e.timing.batch_seconds, 0.085));
        assert!(e.per_million.lambda > 0.02 + batch);
        assert!(e.per_million.lambda < 0.02 + batch + 0.001);
        // Cloud Tasks' price, with exactly-once fan-in on top.
        assert!(e.per_million.total() < 0.80, "{:?}", e.per_million);
    }

    #[test]
    fn the_rate_cap_makes_too_many_forwarders_wait_and_bounds_the_pace() {
        let capped = Inputs {
            max_concurrency: 200,
            rate_limit_per_second: Some(2000),
            ..inputs()
        };
        let e = estimate(&capped);
        // Each of 200 instances gets 10 calls a second: a batch of 10 a second, all but
        // its 85 ms of work spent waiting for tokens inside the invocation.
        assert!(close(e.timing.batch_seconds, 0.99));
        assert!(close(e.timing.cap_wait_seconds, 0.99 - 0.085));
        assert!(close(e.timing.children_per_second, 2000.0));
        assert_eq!(e.timing.bound, Bound::RateCap);
        // 2,000 calls a second at 10 per 95 ms cycle: 19 forwarders, none waiting.
        assert_eq!(e.timing.forwarders_for_cap, Some(19));
        let sized = estimate(&Inputs {
            max_concurrency: 19,
            ..capped.clone()
        });
        assert!(close(sized.timing.cap_wait_seconds, 0.0));
        assert!(sized.timing.children_per_second >= 2000.0 - 1e-9);
        assert_eq!(sized.timing.bound, Bound::RateCap);
        assert!(sized.per_million.lambda < e.per_million.lambda / 5.0);
        assert!(sized.per_million.total() < 0.80, "{:?}", sized.per_million);

        let free = estimate(&inputs());
        // 50 instances, 10 children per 95 ms cycle.
        assert!(close(free.timing.children_per_second, 50.0 * 10.0 / 0.095));
        assert_eq!(free.timing.bound, Bound::Concurrency);
        assert_eq!(free.timing.forwarders_for_cap, None);
    }

    #[test]
    fn retries_add_attempts_and_failures_by_max_attempts() {
        let flaky = Inputs {
            retry_rate: 0.1,
            max_attempts: 3,
            ..inputs()
        };
        let e = estimate(&flaky);
        assert!(close(e.attempts_per_child, 1.0 + 0.1 + 0.01));
        assert!(close(e.failed_fraction, 0.001));
        assert!(close(e.per_child.sqs_change_visibility, 0.11));
        assert!(close(e.per_child.sqs_send, 0.001));
        assert!(close(e.per_child.sqs_receive, 0.111));
    }

    #[test]
    fn shards_cost_a_larger_read_and_no_write() {
        let sharded = |shards| Inputs {
            counter_shards: shards,
            ..inputs()
        };
        // Batches of 10: 9 of every 100 starting seqs straddle two blocks.
        assert!(close(blocks_touched(&sharded(8)), 1.09));
        assert_eq!(run_read_units(&sharded(8)), 1.0);
        // 700 + 64 × 110 = 7,740 bytes: two 4 KB units.
        assert_eq!(run_read_units(&sharded(64)), 2.0);
        let e = estimate(&sharded(8));
        assert!(close(
            e.per_child.dynamodb_write_units,
            estimate(&inputs()).per_child.dynamodb_write_units
        ));
    }

    #[test]
    fn results_in_the_bucket_are_put_one_by_one() {
        let bucket = Inputs {
            storage: Storage::Bucket,
            ..inputs()
        };
        let e = estimate(&bucket);
        assert_eq!(e.per_child.s3_put, 1.0);
        assert!(close(e.per_million.s3, 5.0));
        assert!(close(e.timing.batch_seconds, 0.085 + 0.3));
        let large = Inputs {
            result_bytes: 100_000,
            ..inputs()
        };
        assert_eq!(estimate(&large).per_child.s3_put, 1.0);
    }

    #[test]
    fn idle_and_step_functions_by_hand() {
        let e = estimate(&inputs());
        // 5 pollers × 180 polls an hour × 730 hours.
        assert!(close(e.idle_queue_requests_per_month, 657_000.0));
        assert!(close(e.idle_queue_cost_per_month, 0.2628));
        let sf = e.step_functions;
        assert!(close(sf.standard_children, 50.0));
        // 25 + 1 + 0.1 s × 64 MB at $0.00001667.
        assert!(close(sf.express_children, 26.0 + 0.1 * 0.0625 * 16.67));
        assert!(close(
            sf.express_batched_children,
            sf.express_children / 10.0
        ));
    }

    #[test]
    fn a_long_split_hands_over_and_bounds_the_run() {
        let slow_split = Inputs {
            items: 1_000_000,
            latency_seconds: 2.0,
            page_size: 100,
            max_concurrency: 1000,
            ..inputs()
        };
        let e = estimate(&slow_split);
        // 10,000 pages of 2 s + 3 calls: 20,300 s, in invocations of 840 s.
        assert!(close(e.timing.split_seconds, 10_000.0 * 2.03));
        assert!(close(
            e.per_run.lambda_invocations,
            (20_300.0_f64 / 840.0).ceil() + 1.0
        ));
        assert_eq!(e.timing.bound, Bound::Split);
    }
}
