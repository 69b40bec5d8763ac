//! Key layout of the ledger table, and the states of runs and children.
//!
//! The table has a string partition key attribute `pk` and a string sort key attribute
//! `sk`. A run's record and counters live on one key; its children are counted in blocks
//! of [`BLOCK_SEQS`] consecutive seqs, spread over the run's `partitions` child keys so
//! that no key takes more than a share of one DynamoDB partition's throughput:
//!
//! | record | `pk` | `sk` |
//! |---|---|---|
//! | the run | `RUN#<microprocess>#<run>` | `RUN` |
//! | counter shard `k` (only with more than one shard) | `RUN#<microprocess>#<run>` | `SHARD#<k, 3 digits>` |
//! | block `b` (seqs `100 b` to `100 b + 99`) | `RUN#<microprocess>#<run>#<b % partitions>` | `BLOCK#<b, 10 digits>` |
//! | details of children of block `b` | same as the block | `BLOCK#<b, 10 digits>#D#<writer's nonce>` |
//!
//! for example `RUN#credit-scores#2026-11-01T02-00-00Z#3` / `BLOCK#0000000041`. The
//! reduce call's `results.partition_keys` lists the child keys: a service reads its
//! children with one `Query` per key on `begins_with(sk, "BLOCK#")`, each key in block
//! order thanks to the padding (`docs/ledger.md`). Neither a microprocess name nor a run id
//! may contain `#`, so a key splits back into its parts without ambiguity.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::run_id::RunId;

/// Name of the partition key attribute.
pub const PARTITION_KEY_ATTRIBUTE: &str = "pk";
/// Name of the sort key attribute.
pub const SORT_KEY_ATTRIBUTE: &str = "sk";
/// Sort key of the run record.
pub const RUN_SORT_KEY: &str = "RUN";
/// Prefix of every counter shard's sort key.
pub const SHARD_SORT_KEY_PREFIX: &str = "SHARD#";
/// The most counter shards a run can have: shard numbers keep 3 digits.
pub const MAX_COUNTER_SHARDS: u32 = 999;
/// Prefix of every child's sort key.
pub const CHILD_SORT_KEY_PREFIX: &str = "CHILD#";
/// The largest `seq` whose sort key keeps 12 digits, and so its place in `seq` order.
pub const MAX_SEQ: u64 = 999_999_999_999;

/// Consecutive seqs counted on one block item.
pub const BLOCK_SEQS: u64 = 100;
/// Prefix of every block's (and its details') sort key.
pub const BLOCK_SORT_KEY_PREFIX: &str = "BLOCK#";
/// What follows a block's sort key in the sort keys of its details.
pub const DETAIL_SORT_KEY_INFIX: &str = "#D#";
/// The most child partition keys a run can have.
pub const MAX_PARTITIONS: u32 = 1000;

/// A `seq` too large for the 12-digit sort key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("child seq {seq} is past the last one the ledger can order ({MAX_SEQ}); split the work into several microprocesses")]
pub struct SeqOutOfRange {
    pub seq: u64,
}

/// `RUN#<microprocess>#<run>`: the partition of a run and all its children.
pub fn run_partition_key(microprocess: &str, run: &RunId) -> String {
    format!("RUN#{microprocess}#{run}")
}

/// `RUN#<microprocess>#<run>#<partition>`: child partition key `partition` of a run.
pub fn child_partition_key(microprocess: &str, run: &RunId, partition: u32) -> String {
    format!("RUN#{microprocess}#{run}#{partition}")
}

/// Every child partition key of a run with `partitions` of them, in order.
pub fn child_partition_keys(microprocess: &str, run: &RunId, partitions: u32) -> Vec<String> {
    (0..partitions.max(1))
        .map(|p| child_partition_key(microprocess, run, p))
        .collect()
}

/// The block of `seq`.
pub fn block_of(seq: u64) -> u64 {
    seq / BLOCK_SEQS
}

/// The child partition of block `block` in a run with `partitions` of them.
pub fn partition_of(block: u64, partitions: u32) -> u32 {
    // The remainder is below `partitions`, a u32.
    u32::try_from(block % u64::from(partitions.max(1))).unwrap_or(0)
}

/// `BLOCK#<block zero-padded to 10 digits>` (the blocks of every 12-digit seq).
pub fn block_sort_key(block: u64) -> String {
    format!("{BLOCK_SORT_KEY_PREFIX}{block:010}")
}

/// `BLOCK#<block>#D#<nonce>`: a details item of block `block`, written once by one writer.
pub fn detail_sort_key(block: u64, nonce: &str) -> String {
    format!("{}{DETAIL_SORT_KEY_INFIX}{nonce}", block_sort_key(block))
}

/// The block of a block or details sort key, and whether it is the block item itself;
/// `None` when `sort_key` is neither.
pub fn parse_block_sort_key(sort_key: &str) -> Option<(u64, bool)> {
    let rest = sort_key.strip_prefix(BLOCK_SORT_KEY_PREFIX)?;
    let (digits, tail) = rest.split_at_checked(10)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let block = digits.parse().ok()?;
    match tail {
        "" => Some((block, true)),
        t if t.starts_with(DETAIL_SORT_KEY_INFIX) => Some((block, false)),
        _ => None,
    }
}

/// `CHILD#<seq zero-padded to 12 digits>`.
pub fn child_sort_key(seq: u64) -> Result<String, SeqOutOfRange> {
    if seq > MAX_SEQ {
        return Err(SeqOutOfRange { seq });
    }
    Ok(format!("{CHILD_SORT_KEY_PREFIX}{seq:012}"))
}

/// Sort key prefix of a child's lease (callback completion), on its block's child key.
pub const LEASE_SORT_KEY_PREFIX: &str = "LEASE#";

/// `LEASE#<seq zero-padded to 12 digits>`: the lease of a child whose process call was
/// (or is being) accepted with `202`, on the same key as its block.
pub fn lease_sort_key(seq: u64) -> Result<String, SeqOutOfRange> {
    if seq > MAX_SEQ {
        return Err(SeqOutOfRange { seq });
    }
    Ok(format!("{LEASE_SORT_KEY_PREFIX}{seq:012}"))
}

/// `SHARD#<k zero-padded to 3 digits>`, the sort key of counter shard `k`
/// (`0 <= k < MAX_COUNTER_SHARDS`).
pub fn shard_sort_key(shard: u32) -> String {
    format!("{SHARD_SORT_KEY_PREFIX}{shard:03}")
}

/// The `seq` of a child sort key, or `None` when `sort_key` is not one.
pub fn parse_child_sort_key(sort_key: &str) -> Option<u64> {
    let digits = sort_key.strip_prefix(CHILD_SORT_KEY_PREFIX)?;
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// An unknown state name read back from the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {kind} state `{value}`; expected one of {expected}")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// State of a run. `SPLITTING` → `PROCESSING` → `REDUCING` → `COMPLETED`; the other
/// ends are `SPLIT_FAILED`, `REDUCE_FAILED` and `CANCELLED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    Splitting,
    Processing,
    Reducing,
    Completed,
    SplitFailed,
    ReduceFailed,
    Cancelled,
}

impl RunState {
    pub const ALL: [RunState; 7] = [
        RunState::Splitting,
        RunState::Processing,
        RunState::Reducing,
        RunState::Completed,
        RunState::SplitFailed,
        RunState::ReduceFailed,
        RunState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Splitting => "SPLITTING",
            RunState::Processing => "PROCESSING",
            RunState::Reducing => "REDUCING",
            RunState::Completed => "COMPLETED",
            RunState::SplitFailed => "SPLIT_FAILED",
            RunState::ReduceFailed => "REDUCE_FAILED",
            RunState::Cancelled => "CANCELLED",
        }
    }

    /// Whether the run has ended (a `REDUCE_FAILED` run can still be retried by hand).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Completed
                | RunState::SplitFailed
                | RunState::ReduceFailed
                | RunState::Cancelled
        )
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = UnknownState;

    fn from_str(value: &str) -> Result<RunState, UnknownState> {
        RunState::ALL
            .into_iter()
            .find(|state| state.as_str() == value)
            .ok_or_else(|| UnknownState {
                kind: "run",
                value: value.to_owned(),
                expected: "SPLITTING, PROCESSING, REDUCING, COMPLETED, SPLIT_FAILED, \
                           REDUCE_FAILED, CANCELLED",
            })
    }
}

/// State of a child: `PENDING` until its first terminal write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildState {
    Pending,
    Succeeded,
    Failed,
}

impl ChildState {
    pub const ALL: [ChildState; 3] = [
        ChildState::Pending,
        ChildState::Succeeded,
        ChildState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChildState::Pending => "PENDING",
            ChildState::Succeeded => "SUCCEEDED",
            ChildState::Failed => "FAILED",
        }
    }
}

impl fmt::Display for ChildState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChildState {
    type Err = UnknownState;

    fn from_str(value: &str) -> Result<ChildState, UnknownState> {
        ChildState::ALL
            .into_iter()
            .find(|state| state.as_str() == value)
            .ok_or_else(|| UnknownState {
                kind: "child",
                value: value.to_owned(),
                expected: "PENDING, SUCCEEDED, FAILED",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let run = RunId::parse("2026-11-01T02-00-00Z").unwrap();
        assert_eq!(
            run_partition_key("credit-scores", &run),
            "RUN#credit-scores#2026-11-01T02-00-00Z"
        );
        assert_eq!(child_sort_key(41).unwrap(), "CHILD#000000000041");
        assert_eq!(child_sort_key(0).unwrap(), "CHILD#000000000000");
        assert_eq!(child_sort_key(MAX_SEQ).unwrap(), "CHILD#999999999999");
        assert_eq!(
            child_sort_key(MAX_SEQ + 1),
            Err(SeqOutOfRange { seq: MAX_SEQ + 1 })
        );
    }

    #[test]
    fn blocks_spread_over_the_child_partitions() {
        let run = RunId::parse("2026-11-01T02-00-00Z").unwrap();
        assert_eq!(
            child_partition_key("credit-scores", &run, 3),
            "RUN#credit-scores#2026-11-01T02-00-00Z#3"
        );
        assert_eq!(child_partition_keys("m", &run, 0).len(), 1);
        assert_eq!(block_of(99), 0);
        assert_eq!(block_of(4_100), 41);
        assert_eq!(partition_of(41, 8), 1);
        assert_eq!(partition_of(41, 1), 0);
        assert_eq!(block_sort_key(41), "BLOCK#0000000041");
        assert_eq!(block_sort_key(block_of(MAX_SEQ)), "BLOCK#9999999999");
        assert_eq!(detail_sort_key(41, "n1"), "BLOCK#0000000041#D#n1");
        assert_eq!(parse_block_sort_key("BLOCK#0000000041"), Some((41, true)));
        assert_eq!(
            parse_block_sort_key("BLOCK#0000000041#D#x"),
            Some((41, false))
        );
        assert_eq!(parse_block_sort_key("BLOCK#0000000041#X"), None);
        assert_eq!(parse_block_sort_key("BLOCK#41"), None);
        assert_eq!(parse_block_sort_key("RUN"), None);
        // A block's details sort right after it, before the next block.
        assert!(block_sort_key(41) < detail_sort_key(41, "z"));
        assert!(detail_sort_key(41, "z").as_str() < block_sort_key(42).as_str());
    }

    #[test]
    fn shard_keys_sort_after_the_run_and_children_before_it() {
        assert_eq!(shard_sort_key(0), "SHARD#000");
        assert_eq!(shard_sort_key(MAX_COUNTER_SHARDS - 1), "SHARD#998");
        // One `sk >= "RUN"` query reads the run and its shards, and no child.
        assert!(child_sort_key(MAX_SEQ).unwrap().as_str() < RUN_SORT_KEY);
        assert!(RUN_SORT_KEY < shard_sort_key(0).as_str());
    }

    #[test]
    fn child_sort_keys_sort_in_seq_order() {
        let seqs = [0, 9, 10, 99, 100, 19_000_000, MAX_SEQ];
        let keys: Vec<String> = seqs.iter().map(|s| child_sort_key(*s).unwrap()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn child_sort_keys_parse_back() {
        assert_eq!(parse_child_sort_key("CHILD#000000000041"), Some(41));
        assert_eq!(parse_child_sort_key("RUN"), None);
        assert_eq!(parse_child_sort_key("CHILD#41"), None);
        assert_eq!(parse_child_sort_key("CHILD#00000000004x"), None);
        assert_eq!(parse_child_sort_key("CHILD#+00000000041"), None);
    }

    #[test]
    fn states_round_trip_through_text() {
        for state in RunState::ALL {
            assert_eq!(state.to_string().parse::<RunState>(), Ok(state));
        }
        for state in ChildState::ALL {
            assert_eq!(state.to_string().parse::<ChildState>(), Ok(state));
        }
        assert_eq!(RunState::SplitFailed.to_string(), "SPLIT_FAILED");
        assert!(RunState::Cancelled.is_terminal());
        assert!(!RunState::Reducing.is_terminal());
    }

    #[test]
    fn unknown_states_list_the_known_ones() {
        assert_eq!(
            "DONE".parse::<ChildState>().unwrap_err().to_string(),
            "unknown child state `DONE`; expected one of PENDING, SUCCEEDED, FAILED"
        );
        assert!("processing".parse::<RunState>().is_err());
    }
}
