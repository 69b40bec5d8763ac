//! How fast one run's children can be counted: the write-unit arithmetic of the ledger's
//! block layout against DynamoDB's per-partition limit.
//!
//! A partition key takes at most 1,000 write units a second
//! (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput-scenarios.html;
//! adaptive capacity can isolate a busy item
//! (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/burst-adaptive-capacity.html),
//! but one key never passes the limit, and a key whose sort key grows in order is not
//! split). A run's children are counted in blocks of 100 spread over `partitions` child
//! keys; the run's key takes the counter half of each block's report, spread over its
//! counter shards.

use super::model::REPORT_WRITE_UNITS;
use super::model::{child_key_write_units_per_child, ledger_write_units_per_child, Inputs};

/// Write units one partition key takes a second.
pub const PARTITION_WRITE_UNITS_PER_SECOND: f64 = 1000.0;

/// The ceilings of one run's fan-in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FanIn {
    pub partitions: u32,
    pub counter_shards: u32,
    pub batch_size: u32,
    /// Write units per child counted, all keys.
    pub units_per_child: f64,
    /// Of which on the child keys.
    pub child_key_units_per_child: f64,
    /// Children a second the child keys hold before each reaches the partition limit.
    pub children_per_second_by_partitions: f64,
    /// Children a second the run's key holds (its counter items take the reports).
    pub children_per_second_by_run_key: f64,
    /// The lower of the two: what the layout holds.
    pub children_per_second: f64,
}

/// The fan-in ceilings of `inputs` (batch size, partitions, shards, details size).
pub fn fan_in(inputs: &Inputs) -> FanIn {
    let partitions = f64::from(inputs.partitions.max(1));
    let shards = f64::from(inputs.counter_shards.max(1));
    let on_child_keys = child_key_write_units_per_child(inputs);
    let by_partitions = partitions * PARTITION_WRITE_UNITS_PER_SECOND / on_child_keys;
    // The counter half of a report, per 100 children; shards are items of the one run key,
    // which adaptive capacity can give a partition each.
    let on_run_key = REPORT_WRITE_UNITS / 2.0 / 100.0;
    let by_run_key = shards * PARTITION_WRITE_UNITS_PER_SECOND / on_run_key;
    FanIn {
        partitions: inputs.partitions.max(1),
        counter_shards: inputs.counter_shards.max(1),
        batch_size: inputs.batch_size.max(1),
        units_per_child: ledger_write_units_per_child(inputs),
        child_key_units_per_child: on_child_keys,
        children_per_second_by_partitions: by_partitions,
        children_per_second_by_run_key: by_run_key,
        children_per_second: by_partitions.min(by_run_key),
    }
}

/// The busiest key's write units a second at `children_per_second`.
pub fn peak_units_per_key(f: &FanIn, children_per_second: f64) -> f64 {
    children_per_second * f.child_key_units_per_child / f64::from(f.partitions.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::model::Storage;

    fn inputs(partitions: u32, storage: Storage) -> Inputs {
        Inputs {
            items: 1_000_000,
            latency_seconds: 0.05,
            retry_rate: 0.0,
            result_bytes: 100,
            item_bytes: 16,
            name_bytes: 13,
            batch_size: 10,
            max_concurrency: 1000,
            rate_limit_per_second: None,
            max_attempts: 5,
            page_size: 1000,
            counter_shards: 1,
            partitions,
            storage,
            forwarder_memory_mb: 128,
            splitter_memory_mb: 256,
            splitter_timeout_seconds: 900,
            arm64: true,
        }
    }

    #[test]
    fn units_per_child_meet_the_targets() {
        let ledger = fan_in(&inputs(1, Storage::Ledger));
        assert!(ledger.units_per_child <= 1.0, "{ledger:?}");
        let discard = fan_in(&inputs(1, Storage::Discard));
        assert!(discard.units_per_child <= 0.35, "{discard:?}");
    }

    #[test]
    fn partitions_multiply_what_the_child_keys_hold() {
        let one = fan_in(&inputs(1, Storage::Ledger));
        let eight = fan_in(&inputs(8, Storage::Ledger));
        assert!(
            (eight.children_per_second_by_partitions - 8.0 * one.children_per_second_by_partitions)
                .abs()
                < 1e-6
        );
        // The run key takes 2 units per 100 children: 50,000 a second.
        assert!((one.children_per_second_by_run_key - 50_000.0).abs() < 1e-6);
        assert!(eight.children_per_second >= 10_000.0);
        let peak = peak_units_per_key(&eight, 2000.0);
        assert!(peak <= 500.0, "{peak}");
    }
}
