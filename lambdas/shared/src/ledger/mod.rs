//! The ledger: exactly-once accounting of a run's children on an at-least-once queue,
//! over DynamoDB. `docs/ledger.md` is the specification (records, attributes, transitions
//! and their conditions, sharded counters); this module implements it.
//!
//! # API
//!
//! One [`Ledger`] per table ([`Ledger::new`] or [`Ledger::from_config`]); every call names
//! the microprocess and the run.
//!
//! | call | write | when the condition fails |
//! |---|---|---|
//! | [`Ledger::start_run`] | `Put` run `SPLITTING` if absent | [`StartRun::Existing`]; with [`Overlap::Skip`] and another run `SPLITTING`, `PROCESSING` or `REDUCING` (found on the `runs-by-state` index): [`StartRun::Skipped`], nothing written |
//! | [`Ledger::checkpoint`] | `cursor`, `enqueued`, `pages` | [`LedgerError::Refused`]: the run is not `SPLITTING`, or the checkpoint moves back |
//! | [`Ledger::seal`] | the last block's `size`, then `split_done`, `total`, `PROCESSING` | a sealed run is returned unchanged (the first `total` stays) |
//! | [`Ledger::split_failed`] | `SPLIT_FAILED` + `reason` | `Ok` if already `SPLIT_FAILED`, else refused |
//! | [`Ledger::record_children`] | per block: a details item, one count update per ≤ 50 children, the block's report once complete | per child: duplicates change nothing, `FAILED → SUCCEEDED` moves one count |
//! | [`Ledger::settle_block`] | a complete block's report, if it has none | `false`: the block is not complete |
//! | [`Ledger::record_invalid_items`] | split items breaking the contract's limits, as `FAILED` children | as above |
//! | [`Ledger::try_claim_reduce`] | `PROCESSING → REDUCING` once all children are done | `false`: not done yet, or another writer won |
//! | [`Ledger::open_lease`] | a child's lease before its call (callback completion) | [`Opened::Reported`]: a report was claimed, no call is needed |
//! | [`Ledger::accept_lease`] | the `202`'s attempt and its `lease_until` | [`Opened::Reported`]: a report raced the answer |
//! | [`Ledger::renew_lease`] | a heartbeat's `lease_until` | `false`: no open lease |
//! | [`Ledger::claim_report`] | the first terminal report, on the lease | [`Claim::AlreadyReported`] (the first counts) or [`Claim::NoLease`] |
//! | [`Ledger::complete`], [`Ledger::reduce_failed`] | `REDUCING →` `COMPLETED` / `REDUCE_FAILED` | `Ok` if already there, else refused |
//!
//! Reads: [`Ledger::run`] (strongly consistent, counters summed over shards),
//! [`Ledger::runs_in_state`] (the `runs-by-state` index, eventually consistent; what the
//! sweep and `status` use), [`Ledger::children_page`] and [`Ledger::children`] (the
//! counted children in `seq` order, a page of blocks at a time over every child key),
//! [`Ledger::child`] (one child's record), [`Ledger::child_state`] (one read of its block).
//!
//! # Recording children
//!
//! Children are counted in blocks of 100 seqs spread over the run's child partition keys
//! (`blocks`, `docs/ledger.md`). Per block of its outcomes, [`Ledger::record_children`]
//! puts a details item (what each child was), then counts the children with one
//! conditional `UpdateItem` of the block item (`NOT contains(counted, :offset)` for each,
//! at most 50 to an update): the dedup and the count are one single-item write. A refused
//! update returns the block as it was (`ReturnValuesOnConditionCheckFailure = ALL_OLD`):
//! its children already counted are duplicates, or, when they are `FAILED` and now
//! `SUCCEEDED`, moves (guarded by `contains(failed_offsets, :offset)`; in one transaction
//! with the run's counters once the block is reported); the rest are counted by another
//! update. A block this completes (100 seqs, or the `size` the seal set on the last)
//! adds its counts to the run record, or shard `block % shards`, in a transaction guarded
//! by `attribute_not_exists(reported)` and the counts the writer saw. Throttled and
//! conflicting calls are retried with capped exponential backoff and full jitter
//! ([`RetryPolicy`]), then fail with [`LedgerError::RetriesExhausted`]. The result
//! reports which seqs counted, moved or were duplicates, and whether the run is complete
//! (`split_done` and `done == total`, read back consistently after the writes): the
//! caller then calls [`Ledger::try_claim_reduce`], whose condition has exactly one
//! winner. The splitter calls it too after [`Ledger::seal`], for runs whose children all
//! finished before the seal.
//!
//! # Run parameters
//!
//! A run's layout (counter shards, child partition keys) and retention are fixed when it
//! starts and stored on its record; later calls read them from there once per run and keep them in memory, so
//! changing the configuration never changes where a running run counts.
//!
//! # Expiry and capacity
//!
//! Every write sets `expires_at` to now plus the run's retention days (the checkpoint,
//! which has no clock, leaves it). Writes and reads ask for `ReturnConsumedCapacity =
//! TOTAL`; the units DynamoDB reports for successful calls add up in
//! [`Ledger::consumed_write_units`] and [`Ledger::consumed_read_units`] (a cancelled
//! transaction or a failed condition reports none, though AWS bills it). Emulators report
//! little or nothing (moto: no units for transactions, a fixed 0.5 per update), so
//! [`Ledger::estimated_write_units`] also applies DynamoDB's pricing rules to the items
//! each successful write wrote (one unit per started KB, two in a transaction).

mod attrs;
mod blocks;
mod capacity;
mod children;
mod controls;
mod error;
mod leases;
mod notices;
mod plan;
mod records;
mod retry;
mod runs;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use aws_sdk_dynamodb::types::ConsumedCapacity;
use aws_sdk_dynamodb::Client;

pub use controls::Controls;
pub use error::{Context, LedgerError, Step};
pub use leases::{Claim, Lease, Opened};
pub use notices::Notice;
pub use plan::SHARD_BLOCK;
pub use records::{
    state_pk, state_sk, ChildOutcome, ChildRecord, ChildResult, InvalidItem, Overlap, Recorded,
    RunRecord, StartRun, MAX_STORED_TEXT,
};
pub use retry::RetryPolicy;

use crate::run_id::RunId;

/// Name of the sparse index of runs by state (`templates/core.yaml`).
pub const RUNS_BY_STATE_INDEX: &str = "runs-by-state";

/// Capacity is kept in thousandths of a unit so fractional read units add up exactly.
const MILLI: f64 = 1000.0;

/// A run's fixed parameters, cached per run partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunParams {
    shards: u32,
    partitions: u32,
    retention_days: u32,
}

/// How a run's counting is laid out, fixed when it starts: counter shards on the run's
/// key, and child partition keys its blocks spread over (`docs/ledger.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// 1 to 999: the counters on the run record (1) or on that many shard items.
    pub counter_shards: u32,
    /// 1 to [`crate::ledger_keys::MAX_PARTITIONS`].
    pub partitions: u32,
}

impl Layout {
    /// One counter item and one child partition key: a small run.
    pub const SINGLE: Layout = Layout {
        counter_shards: 1,
        partitions: 1,
    };

    pub fn new(counter_shards: u32, partitions: u32) -> Layout {
        Layout {
            counter_shards,
            partitions,
        }
    }
}

/// Entries kept before the cache starts over (a Lambda container sees a few runs).
const MAX_CACHED_RUNS: usize = 10_000;

/// The ledger of one table.
#[derive(Debug)]
pub struct Ledger {
    client: Client,
    table: String,
    retry: RetryPolicy,
    write_milli_units: AtomicU64,
    read_milli_units: AtomicU64,
    estimated_write_units: AtomicU64,
    params: Mutex<HashMap<String, RunParams>>,
}

impl Ledger {
    pub fn new(client: Client, table: impl Into<String>) -> Ledger {
        Ledger {
            client,
            table: table.into(),
            retry: RetryPolicy::default(),
            write_milli_units: AtomicU64::new(0),
            read_milli_units: AtomicU64::new(0),
            estimated_write_units: AtomicU64::new(0),
            params: Mutex::new(HashMap::new()),
        }
    }

    /// A ledger over a client built from `config` (see [`crate::aws::config`]).
    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Ledger {
        Ledger::new(Client::new(config), table)
    }

    /// The same ledger with another retry policy for throttled and conflicting writes.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Ledger {
        self.retry = retry;
        self
    }

    /// The retry policy of throttled and conflicting calls.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Write capacity units DynamoDB reported for this ledger's successful writes so far.
    pub fn consumed_write_units(&self) -> f64 {
        self.write_milli_units.load(Ordering::Relaxed) as f64 / MILLI
    }

    /// Read capacity units DynamoDB reported for this ledger's reads so far.
    pub fn consumed_read_units(&self) -> f64 {
        self.read_milli_units.load(Ordering::Relaxed) as f64 / MILLI
    }

    /// Write units of this ledger's successful writes so far by DynamoDB's pricing rules,
    /// computed from the items written: a stand-in for [`Ledger::consumed_write_units`]
    /// where the endpoint reports none (an emulator).
    pub fn estimated_write_units(&self) -> u64 {
        self.estimated_write_units.load(Ordering::Relaxed)
    }

    fn estimate_writes(&self, units: u64) {
        self.estimated_write_units
            .fetch_add(units, Ordering::Relaxed);
    }

    fn count_writes<'a>(&self, consumed: impl IntoIterator<Item = &'a ConsumedCapacity>) {
        add_units(&self.write_milli_units, consumed, |c| {
            c.write_capacity_units().or(c.capacity_units())
        });
    }

    fn count_reads<'a>(&self, consumed: impl IntoIterator<Item = &'a ConsumedCapacity>) {
        add_units(&self.read_milli_units, consumed, |c| {
            c.read_capacity_units().or(c.capacity_units())
        });
    }

    fn context(&self, step: Step, microprocess: &str, run: Option<&RunId>) -> Context {
        Context {
            step,
            microprocess: microprocess.to_owned(),
            run: run.map(|r| r.as_str().to_owned()),
        }
    }

    fn cached_params(&self, pk: &str) -> Option<RunParams> {
        let cache = self.params.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(pk).copied()
    }

    fn remember(&self, record: &RunRecord) {
        let mut cache = self.params.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_RUNS {
            cache.clear();
        }
        cache.insert(
            record.partition_key(),
            RunParams {
                shards: record.counter_shards,
                partitions: record.partitions,
                retention_days: record.retention_days,
            },
        );
    }
}

fn add_units<'a>(
    total: &AtomicU64,
    consumed: impl IntoIterator<Item = &'a ConsumedCapacity>,
    units: impl Fn(&ConsumedCapacity) -> Option<f64>,
) {
    let sum: f64 = consumed.into_iter().filter_map(units).sum();
    if sum > 0.0 {
        // Rounded to a thousandth; capacity units are never negative.
        total.fetch_add((sum * MILLI).round() as u64, Ordering::Relaxed);
    }
}
