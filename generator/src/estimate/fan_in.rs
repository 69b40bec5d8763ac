//! How fast one run's children can be counted: the write-unit arithmetic of the ledger's
//! completion transactions against DynamoDB's per-partition limit.
//!
//! Every record of a run shares one partition key. A partition, and so any single item,
//! takes at most 1,000 write units a second
//! (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput-scenarios.html
//! says each partition is limited to 1,000 write units a second; adaptive
//! capacity can move a busy sort-key range, down to one item, to a partition of its own
//! (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/burst-adaptive-capacity.html),
//! but never past that limit). Each completion transaction puts a batch's children and
//! updates the counter items they count on, two units per item under 1 KB: so the
//! busiest counter item sets the ceiling once DynamoDB has split the partition, and the
//! whole transaction does while it has not.

use super::model::{counters_touched, write_units, Inputs};

/// Write units one partition (one item at most) takes a second.
pub const PARTITION_WRITE_UNITS_PER_SECOND: f64 = 1000.0;

/// The ceilings of one run's fan-in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FanIn {
    pub counter_shards: u32,
    pub batch_size: u32,
    /// Counter items one transaction updates.
    pub counters_per_transaction: f64,
    /// Write units of one transaction: children and counters.
    pub units_per_transaction: f64,
    /// Write units per child counted.
    pub units_per_child: f64,
    /// Children a second before the busiest counter item reaches the partition limit
    /// (the run's partition split so each counter item has its own).
    pub children_per_second_by_counters: f64,
    /// Children a second while every record of the run is on one partition.
    pub children_per_second_one_partition: f64,
}

/// The fan-in ceilings of `inputs` (batch size, shards, child record size).
pub fn fan_in(inputs: &Inputs) -> FanIn {
    let b = f64::from(inputs.batch_size.max(1));
    let shards = f64::from(inputs.counter_shards.max(1));
    let touched = counters_touched(inputs);
    let child_units = 2.0 * write_units(super::model::child_record_bytes(inputs));
    let units_per_transaction = b * child_units + 2.0 * touched;
    // Each transaction lands on `touched` of the `shards` counter items, 2 units each.
    let units_per_counter_per_transaction = 2.0 * touched / shards;
    let transactions_by_counters =
        PARTITION_WRITE_UNITS_PER_SECOND / units_per_counter_per_transaction;
    FanIn {
        counter_shards: inputs.counter_shards.max(1),
        batch_size: inputs.batch_size.max(1),
        counters_per_transaction: touched,
        units_per_transaction,
        units_per_child: units_per_transaction / b,
        children_per_second_by_counters: transactions_by_counters * b,
        children_per_second_one_partition: PARTITION_WRITE_UNITS_PER_SECOND
            / (units_per_transaction / b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::model::Storage;

    fn inputs(shards: u32) -> Inputs {
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
            counter_shards: shards,
            storage: Storage::Ledger,
            forwarder_memory_mb: 128,
            splitter_memory_mb: 256,
            splitter_timeout_seconds: 900,
            arm64: true,
        }
    }

    #[test]
    fn one_counter_takes_500_transactions_a_second() {
        let f = fan_in(&inputs(1));
        // 10 children × 2 + the run record × 2.
        assert_eq!(f.units_per_transaction, 22.0);
        assert_eq!(f.children_per_second_by_counters, 5_000.0);
        assert!((f.children_per_second_one_partition - 1000.0 / 2.2).abs() < 1e-9);
    }

    #[test]
    fn shards_multiply_the_ceiling_at_the_cost_of_block_edges() {
        // A batch of 10 updates one shard, two when it straddles a block (9 in 100).
        let eight = fan_in(&inputs(8));
        assert!((eight.counters_per_transaction - 1.09).abs() < 1e-9);
        assert!((eight.units_per_transaction - 22.18).abs() < 1e-9);
        let per_counter = 2.0 * 1.09 / 8.0;
        assert!((eight.children_per_second_by_counters - 1000.0 / per_counter * 10.0).abs() < 1e-6);
        let many = fan_in(&inputs(64));
        assert!((many.units_per_transaction - 22.18).abs() < 1e-9);
        assert!(many.children_per_second_by_counters > 250_000.0);
    }
}
