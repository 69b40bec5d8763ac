//! The pure part of recording children: which counter item each child counts on, the
//! summed counter deltas, the update expression that applies them, and the grouping of
//! children into transactions of at most 100 items.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use aws_sdk_dynamodb::types::AttributeValue;

use super::attrs::n;
use super::records::{attr, ChildOutcome};
use crate::ledger_keys::{shard_sort_key, ChildState, RUN_SORT_KEY};

/// `TransactWriteItems` takes at most 100 distinct items.
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// Consecutive seqs that count on the same shard. A forwarder batch holds seqs that were
/// queued close together, so with blocks its transaction updates one counter item (two
/// at a block's edge) however many shards the run has; with `seq % shards` it updated up
/// to a batch's worth of them, at 2 write units each. Writers spread over the shards
/// because the messages in flight at once span many blocks.
pub const SHARD_BLOCK: u64 = 100;

/// The item a child's counters live on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Target {
    /// The run record (one shard).
    Run,
    /// Counter shard `k` (`(seq / SHARD_BLOCK) % shards`).
    Shard(u32),
}

impl Target {
    /// Fixed per seq, so a redriven child moves its counts on the shard that has them.
    pub fn of(seq: u64, shards: u32) -> Target {
        if shards <= 1 {
            Target::Run
        } else {
            // The remainder is below `shards`, a u32.
            let block = seq / SHARD_BLOCK;
            Target::Shard(u32::try_from(block % u64::from(shards)).unwrap_or(0))
        }
    }

    pub fn sort_key(self) -> String {
        match self {
            Target::Run => RUN_SORT_KEY.to_owned(),
            Target::Shard(k) => shard_sort_key(k),
        }
    }
}

/// How a child's record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// First terminal write: `Put` with `attribute_not_exists(pk)`.
    New,
    /// A `FAILED` child now `SUCCEEDED`: `Put` with `state = FAILED`.
    MoveToSucceeded,
}

/// A change of a counter item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    pub succeeded: i64,
    pub failed: i64,
    pub done: i64,
}

impl Delta {
    pub fn of(write: Write, state: ChildState) -> Delta {
        match (write, state) {
            (Write::New, ChildState::Succeeded) => Delta {
                succeeded: 1,
                failed: 0,
                done: 1,
            },
            (Write::New, _) => Delta {
                succeeded: 0,
                failed: 1,
                done: 1,
            },
            (Write::MoveToSucceeded, _) => Delta {
                succeeded: 1,
                failed: -1,
                done: 0,
            },
        }
    }

    pub fn plus(self, other: Delta) -> Delta {
        Delta {
            succeeded: self.succeeded + other.succeeded,
            failed: self.failed + other.failed,
            done: self.done + other.done,
        }
    }

    pub fn is_zero(self) -> bool {
        self == Delta::default()
    }
}

/// The summed deltas per counter item of the given child writes; items whose delta sums
/// to zero are left out.
pub(crate) fn summed_deltas(
    writes: impl IntoIterator<Item = (u64, Write, ChildState)>,
    shards: u32,
) -> BTreeMap<Target, Delta> {
    let mut sums: BTreeMap<Target, Delta> = BTreeMap::new();
    for (seq, write, state) in writes {
        let entry = sums.entry(Target::of(seq, shards)).or_default();
        *entry = entry.plus(Delta::of(write, state));
    }
    sums.retain(|_, delta| !delta.is_zero());
    sums
}

/// An update expression with its placeholders.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expression {
    pub update: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

/// `ADD` the non-zero counters of `delta`, and `SET` the TTL to `expires_at`. `ADD`
/// creates a missing counter (and a missing shard item) at zero first.
pub(crate) fn counter_update(delta: Delta, expires_at: i64) -> Expression {
    let mut adds = Vec::new();
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    for (attribute, value) in [
        (attr::SUCCEEDED, delta.succeeded),
        (attr::FAILED, delta.failed),
        (attr::DONE, delta.done),
    ] {
        if value != 0 {
            adds.push(format!("#{attribute} :{attribute}"));
            names.insert(format!("#{attribute}"), attribute.to_owned());
            values.insert(format!(":{attribute}"), n(value));
        }
    }
    names.insert(
        format!("#{}", attr::EXPIRES_AT),
        attr::EXPIRES_AT.to_owned(),
    );
    values.insert(format!(":{}", attr::EXPIRES_AT), n(expires_at));
    let set = format!("SET #{0} = :{0}", attr::EXPIRES_AT);
    let update = if adds.is_empty() {
        set
    } else {
        format!("ADD {} {set}", adds.join(", "))
    };
    Expression {
        update,
        names,
        values,
    }
}

/// Groups children (given by seq, in order) into consecutive ranges such that each range's
/// children plus the distinct counter items they count on make at most
/// [`MAX_TRANSACTION_ITEMS`] items.
pub(crate) fn batches(seqs: &[u64], shards: u32) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut targets: Vec<Target> = Vec::new();
    for (index, seq) in seqs.iter().enumerate() {
        let target = Target::of(*seq, shards);
        let new_target = !targets.contains(&target);
        let items = (index - start) + 1 + targets.len() + usize::from(new_target);
        if items > MAX_TRANSACTION_ITEMS {
            ranges.push(start..index);
            start = index;
            targets.clear();
        }
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    if start < seqs.len() {
        ranges.push(start..seqs.len());
    }
    ranges
}

/// Sorts outcomes by seq and keeps one per seq: a `SUCCEEDED` one over a `FAILED` one,
/// else the first given. Returns the kept outcomes and the seqs of the dropped ones.
pub(crate) fn dedupe(outcomes: &[ChildOutcome]) -> (Vec<&ChildOutcome>, Vec<u64>) {
    let mut sorted: Vec<&ChildOutcome> = outcomes.iter().collect();
    // Stable: among equal seqs, the first given stays first.
    sorted.sort_by_key(|o| o.seq);
    let mut kept: Vec<&ChildOutcome> = Vec::with_capacity(sorted.len());
    let mut dropped = Vec::new();
    for outcome in sorted {
        match kept.last_mut() {
            Some(last) if last.seq == outcome.seq => {
                dropped.push(outcome.seq);
                if last.state != ChildState::Succeeded && outcome.state == ChildState::Succeeded {
                    *last = outcome;
                }
            }
            _ => kept.push(outcome),
        }
    }
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn outcome(seq: u64, state: ChildState) -> ChildOutcome {
        ChildOutcome {
            seq,
            item: format!("item-{seq}"),
            state,
            attempts: 1,
            result: None,
            reason: None,
        }
    }

    #[test]
    fn children_count_on_the_run_or_their_shard() {
        assert_eq!(Target::of(41, 1), Target::Run);
        assert_eq!(Target::of(141, 4), Target::Shard(1));
        assert_eq!(Target::Run.sort_key(), "RUN");
        assert_eq!(Target::Shard(7).sort_key(), "SHARD#007");
    }

    #[test]
    fn deltas_sum_per_item() {
        let writes = [
            (0, Write::New, ChildState::Succeeded),
            (101, Write::New, ChildState::Failed),
            (2, Write::MoveToSucceeded, ChildState::Succeeded),
            (204, Write::New, ChildState::Succeeded),
        ];
        let one = summed_deltas(writes, 1);
        assert_eq!(
            one,
            BTreeMap::from([(
                Target::Run,
                Delta {
                    succeeded: 3,
                    failed: 0,
                    done: 3
                }
            )])
        );
        let two = summed_deltas(writes, 2);
        assert_eq!(
            two[&Target::Shard(0)],
            Delta {
                succeeded: 3,
                failed: -1,
                done: 2
            }
        );
        assert_eq!(
            two[&Target::Shard(1)],
            Delta {
                succeeded: 0,
                failed: 1,
                done: 1
            }
        );
    }

    #[test]
    fn zero_deltas_write_nothing() {
        // A move and a new failure on one item: failed nets to zero.
        let writes = [
            (0, Write::MoveToSucceeded, ChildState::Succeeded),
            (1, Write::New, ChildState::Failed),
        ];
        let sums = summed_deltas(writes, 1);
        let expression = counter_update(sums[&Target::Run], 77);
        assert_eq!(
            expression.update,
            "ADD #succeeded :succeeded, #done :done SET #expires_at = :expires_at"
        );
        assert!(!expression.values.contains_key(":failed"));
        assert_eq!(
            expression.values[":expires_at"],
            AttributeValue::N("77".into())
        );
        assert_eq!(expression.names["#done"], "done");
        assert!(summed_deltas([], 1).is_empty());
    }

    #[test]
    fn a_move_to_succeeded_keeps_done() {
        let expression =
            counter_update(Delta::of(Write::MoveToSucceeded, ChildState::Succeeded), 1);
        assert_eq!(
            expression.update,
            "ADD #succeeded :succeeded, #failed :failed SET #expires_at = :expires_at"
        );
        assert_eq!(expression.values[":failed"], AttributeValue::N("-1".into()));
    }

    #[test]
    fn batches_hold_99_children_and_the_run() {
        let seqs: Vec<u64> = (0..250).collect();
        assert_eq!(batches(&seqs, 1), vec![0..99, 99..198, 198..250]);
        assert_eq!(batches(&seqs[..99], 1), vec![0..99]);
        assert_eq!(batches(&seqs[..100], 1), vec![0..99, 99..100]);
        assert!(batches(&[], 1).is_empty());
    }

    #[test]
    fn a_block_of_seqs_counts_on_one_shard() {
        assert_eq!(Target::of(0, 8), Target::Shard(0));
        assert_eq!(Target::of(SHARD_BLOCK - 1, 8), Target::Shard(0));
        assert_eq!(Target::of(SHARD_BLOCK, 8), Target::Shard(1));
        assert_eq!(Target::of(8 * SHARD_BLOCK + 5, 8), Target::Shard(0));
        assert_eq!(Target::of(12_345, 1), Target::Run);
    }

    #[test]
    fn batches_leave_room_for_every_shard_they_touch() {
        let seqs: Vec<u64> = (0..200).collect();
        // Blocks of 100 on 4 shards: 99 children + shard 0, then shards 0 and 1.
        assert_eq!(batches(&seqs, 4), vec![0..99, 99..197, 197..200]);
        // Seqs a block apart each touch a new shard item: 50 children + 50 shards.
        let spread: Vec<u64> = (0..200).map(|i| i * SHARD_BLOCK).collect();
        assert_eq!(batches(&spread, 64)[0], 0..50);
    }

    proptest! {
        #[test]
        fn batches_cover_every_child_once_within_the_limit(
            seqs in proptest::collection::vec(0u64..10_000, 0..400),
            shards in 1u32..100,
        ) {
            let ranges = batches(&seqs, shards);
            let mut next = 0;
            for range in &ranges {
                prop_assert_eq!(range.start, next);
                prop_assert!(range.end > range.start);
                next = range.end;
                let mut targets: Vec<Target> = seqs[range.clone()].iter().map(|s| Target::of(*s, shards)).collect();
                targets.sort();
                targets.dedup();
                prop_assert!(range.len() + targets.len() <= MAX_TRANSACTION_ITEMS);
            }
            prop_assert_eq!(next, seqs.len());
        }
    }

    #[test]
    fn dedupe_keeps_one_outcome_per_seq_preferring_success() {
        let outcomes = [
            outcome(5, ChildState::Failed),
            outcome(1, ChildState::Succeeded),
            outcome(5, ChildState::Succeeded),
            outcome(1, ChildState::Failed),
            outcome(3, ChildState::Failed),
        ];
        let (kept, dropped) = dedupe(&outcomes);
        let kept: Vec<(u64, ChildState)> = kept.iter().map(|o| (o.seq, o.state)).collect();
        assert_eq!(
            kept,
            vec![
                (1, ChildState::Succeeded),
                (3, ChildState::Failed),
                (5, ChildState::Succeeded)
            ]
        );
        assert_eq!(dropped, vec![1, 5]);
    }
}
