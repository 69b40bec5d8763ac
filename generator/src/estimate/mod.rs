//! What a run costs in AWS and how long it takes, predicted from a microprocess's
//! configuration: the model behind `microprocess estimate`, and the one the `cost` and
//! `fan-in` sections of the benchmark hold against what a local run sends.
//!
//! [`model`] counts requests and capacity units per child and per run and prices them
//! ([`prices`]: public on-demand prices of `us-east-1`); [`fan_in`] is the write-unit
//! arithmetic of how fast one run's children can be counted.

pub mod fan_in;
pub mod model;
pub mod prices;

pub use model::{estimate, Bound, Cost, Estimate, Inputs, Storage, Usage};

use crate::config::model::{Environment, Microprocess, ResultStorage};

/// The part of an estimate the configuration does not say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    pub items: u64,
    /// The service's time per call, in seconds.
    pub latency_seconds: f64,
    /// Fraction of process calls answered "retry later".
    pub retry_rate: f64,
    /// Bytes of a process answer.
    pub result_bytes: u64,
    /// Bytes of an item id.
    pub item_bytes: u64,
}

impl Workload {
    /// Defaults for what the configuration does not say: a small JSON answer, a short id.
    pub fn new(items: u64, latency_seconds: f64) -> Workload {
        Workload {
            items,
            latency_seconds,
            retry_rate: 0.0,
            result_bytes: 100,
            item_bytes: 16,
        }
    }
}

impl Inputs {
    /// The model's inputs for `mp` as `env` configures it.
    pub fn from_config(env: &Environment, mp: &Microprocess, workload: Workload) -> Inputs {
        Inputs {
            items: workload.items,
            latency_seconds: workload.latency_seconds,
            retry_rate: workload.retry_rate,
            result_bytes: workload.result_bytes,
            item_bytes: workload.item_bytes,
            name_bytes: mp.name.len() as u64,
            batch_size: mp.delivery.batch_size,
            max_concurrency: mp.delivery.max_concurrency,
            rate_limit_per_second: mp.delivery.rate_limit_per_second,
            max_attempts: mp.process.max_attempts,
            page_size: mp.split.page_size,
            counter_shards: mp.results.counter_shards,
            partitions: mp.results.partitions,
            storage: match mp.results.storage {
                ResultStorage::Ledger => Storage::Ledger,
                ResultStorage::Bucket => Storage::Bucket,
                ResultStorage::Discard => Storage::Discard,
            },
            forwarder_memory_mb: mp.delivery.forwarder_memory_mb,
            splitter_memory_mb: mp.split.memory_mb,
            splitter_timeout_seconds: mp.split.timeout_seconds,
            arm64: env.architecture == "arm64",
        }
    }
}
