//! How many child partition keys a run's blocks spread over (`results.partitions`).
//!
//! DynamoDB gives one partition key at most 1,000 write units a second. A run's children
//! are counted in blocks spread over `partitions` keys (`docs/ledger.md`), at about
//! [`write_units_per_child`] units each. The default holds five times the rate cap (so at
//! the cap each key takes a fifth of its ceiling); a set value must keep each key at or
//! under half of the ceiling at the cap.

use super::model::{Delivery, ResultStorage};

/// What DynamoDB gives one partition key, write units a second.
pub const PARTITION_WRITE_UNITS: f64 = 1000.0;

/// Share of a partition's ceiling one key may take at the rate cap, at the most.
pub const MAX_SHARE_AT_CAP: f64 = 0.5;

/// The rate the default layout holds, as a multiple of the rate cap.
pub const HEADROOM: f64 = 5.0;

/// Calls a second one forwarder slot makes when no rate cap is set: 20 (50 ms a call).
const CALLS_PER_SLOT: f64 = 20.0;

/// Write units a child costs on its child partition, by the ledger's rules: the block's
/// count update (1 unit per batch of up to 10 children, twice at a block's edge), the
/// details item (1 unit per KB: about 60 bytes a child, plus the result when kept), and
/// the block's report once per 100 children (a 2-item transaction, 4 units). Results of
/// 1 KB or more are held to the bucket's reference when `bucket`.
pub fn write_units_per_child(storage: ResultStorage, batch_size: u32, result_bytes: u64) -> f64 {
    let batch = f64::from(batch_size.max(1));
    let count = 1.1 / batch;
    let kept = match storage {
        ResultStorage::Ledger => result_bytes.min(64 * 1024),
        ResultStorage::Bucket => 90,
        ResultStorage::Discard => 0,
    };
    let detail_bytes = (60 + kept) as f64 * batch;
    let details = (detail_bytes / 1024.0).ceil() / batch;
    let report = 4.0 / 100.0;
    count + details + report
}

/// Result size the layout is derived for when the config says nothing: 300 bytes.
pub const ASSUMED_RESULT_BYTES: u64 = 300;

/// Children a second the microprocess may deliver at the most: its rate cap, or its
/// concurrency times the batch at 20 calls a second per slot.
pub fn peak_children_per_second(delivery: &Delivery) -> f64 {
    match delivery.rate_limit_per_second {
        Some(rate) => f64::from(rate),
        None => f64::from(delivery.max_concurrency) * CALLS_PER_SLOT,
    }
}

/// The fewest keys that keep each at or under [`MAX_SHARE_AT_CAP`] of its ceiling at
/// `peak` children a second.
pub fn minimum_partitions(peak: f64, units_per_child: f64) -> u32 {
    keys_for(peak * units_per_child / (PARTITION_WRITE_UNITS * MAX_SHARE_AT_CAP))
}

/// The default: enough keys to hold [`HEADROOM`] times `peak` at the full ceiling.
pub fn default_partitions(peak: f64, units_per_child: f64) -> u32 {
    keys_for(HEADROOM * peak * units_per_child / PARTITION_WRITE_UNITS)
        .max(minimum_partitions(peak, units_per_child))
}

/// Children a second a layout of `partitions` keys holds before DynamoDB throttles.
pub fn children_per_second_held(partitions: u32, units_per_child: f64) -> f64 {
    f64::from(partitions) * PARTITION_WRITE_UNITS / units_per_child
}

fn keys_for(keys: f64) -> u32 {
    // At most MAX_PARTITIONS; the cast is of a small positive number.
    (keys.ceil().max(1.0) as u32).min(microprocess_shared::ledger_keys::MAX_PARTITIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_per_child_stay_under_the_targets() {
        // Batches of 10, item ids of 13 characters.
        let discard = write_units_per_child(ResultStorage::Discard, 10, 0);
        assert!(discard <= 0.35, "{discard}");
        let ledger = write_units_per_child(ResultStorage::Ledger, 10, ASSUMED_RESULT_BYTES);
        assert!(ledger <= 1.0, "{ledger}");
    }

    #[test]
    fn prod_holds_five_times_its_cap() {
        let units = write_units_per_child(ResultStorage::Ledger, 10, ASSUMED_RESULT_BYTES);
        let keys = default_partitions(2000.0, units);
        assert!(children_per_second_held(keys, units) >= 10_000.0);
        assert!(keys >= minimum_partitions(2000.0, units));
        assert_eq!(minimum_partitions(0.0, units), 1);
    }
}
