//! The pure part of counting on the run: which counter item a block counts on, the
//! counter deltas and the update expression that applies them, and the dedup of a
//! batch's outcomes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::attrs::n;
use super::records::{attr, ChildOutcome};
use crate::ledger_keys::{shard_sort_key, ChildState, RUN_SORT_KEY};

/// Consecutive seqs that count on the same shard: one block of the ledger, so each
/// block's report updates one counter item.
pub const SHARD_BLOCK: u64 = crate::ledger_keys::BLOCK_SEQS;

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

/// A change of a counter item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    pub succeeded: i64,
    pub failed: i64,
    pub done: i64,
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
    fn blocks_count_on_the_run_or_their_shard() {
        assert_eq!(Target::of(41, 1), Target::Run);
        assert_eq!(Target::of(141, 4), Target::Shard(1));
        assert_eq!(Target::of(SHARD_BLOCK - 1, 8), Target::Shard(0));
        assert_eq!(Target::of(8 * SHARD_BLOCK + 5, 8), Target::Shard(0));
        assert_eq!(Target::Run.sort_key(), "RUN");
        assert_eq!(Target::Shard(7).sort_key(), "SHARD#007");
    }

    #[test]
    fn counter_updates_add_what_is_not_zero() {
        let expression = counter_update(
            Delta {
                succeeded: 1,
                failed: -1,
                done: 0,
            },
            77,
        );
        assert_eq!(
            expression.update,
            "ADD #succeeded :succeeded, #failed :failed SET #expires_at = :expires_at"
        );
        assert_eq!(expression.values[":failed"], AttributeValue::N("-1".into()));
        assert!(!expression.values.contains_key(":done"));
        let nothing = counter_update(Delta::default(), 5);
        assert_eq!(nothing.update, "SET #expires_at = :expires_at");
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
