//! The pure part of counting children in blocks: a block item as a value, the update and
//! condition expressions that count a batch, move a redriven child and report a complete
//! block, and the details items written beside it.
//!
//! Block `b` counts seqs `100 b` to `100 b + 99` (their offsets 0 to 99 in the block) in
//! one item. A batch of children of one block is counted by one conditional update of
//! that item, 1 write unit while the item is under 1 KB (it is: at most 100 two-byte
//! offsets): `ADD` the offsets to `counted`, under the condition that none of them is in
//! it yet. The dedup and the count are one single-item write, atomic without a transaction
//! (which would cost twice). A complete block adds its counts to the run's counters once,
//! in a transaction guarded by `attribute_not_exists(reported)` and by the counts the
//! writer saw: one transaction per block, not per child.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::attrs::{b, key, n, s, time_text, Item, Reader};
use super::records::{attr, cut, ChildOutcome, ChildRecord, ChildResult};
use crate::ledger_keys::{
    block_sort_key, detail_sort_key, parse_block_sort_key, ChildState, BLOCK_SEQS,
    SORT_KEY_ATTRIBUTE,
};

/// Offsets one count update checks at most: keeps the condition expression (at most
/// 4 KB) well under DynamoDB's limit.
pub(crate) const MAX_SEQS_PER_UPDATE: usize = 50;

/// A details item holds at most this many bytes of children (an item holds 400 KB).
pub(crate) const MAX_DETAIL_BYTES: usize = 300 * 1024;

/// Attribute names of block and details items.
pub(crate) mod block_attr {
    /// NS: offsets of the counted children.
    pub const COUNTED: &str = "counted";
    /// NS: offsets of the counted children that are `FAILED`.
    pub const FAILED_OFFSETS: &str = "failed_offsets";
    /// N: `|counted|`.
    pub const DONE: &str = "done";
    /// N: `|failed_offsets|`.
    pub const FAILED: &str = "failed";
    /// N: seqs of the block when fewer than 100 (the last block, set by the seal).
    pub const SIZE: &str = "size";
    /// BOOL: the block's counts are on the run's counters.
    pub const REPORTED: &str = "reported";
    /// N: the block number.
    pub const BLOCK: &str = "block";
    /// M: seq (as text) → the child's details.
    pub const CHILDREN: &str = "children";
}

/// A block item as read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Block {
    pub block: u64,
    /// Offsets counted.
    pub counted: BTreeSet<u64>,
    /// Offsets counted `FAILED`.
    pub failed: BTreeSet<u64>,
    pub done: u64,
    pub failed_count: u64,
    pub size: Option<u64>,
    pub reported: bool,
}

impl Block {
    pub fn empty(block: u64) -> Block {
        Block {
            block,
            ..Block::default()
        }
    }

    /// The block of an item (`None`: an absent item, the empty block).
    pub fn from_item(block: u64, item: Option<&Item>) -> Result<Block, (String, String)> {
        let Some(item) = item.filter(|i| !i.is_empty()) else {
            return Ok(Block::empty(block));
        };
        let r = Reader::new(item);
        let fail = |why: String| (r.key_text(), why);
        Ok(Block {
            block,
            counted: offsets(item, block_attr::COUNTED).map_err(fail)?,
            failed: offsets(item, block_attr::FAILED_OFFSETS).map_err(fail)?,
            done: r.count(block_attr::DONE).map_err(fail)?,
            failed_count: r.count(block_attr::FAILED).map_err(fail)?,
            size: r.opt_u64(block_attr::SIZE).map_err(fail)?,
            reported: r.bool(block_attr::REPORTED).unwrap_or(false),
        })
    }

    /// How many seqs the block has: 100, or what the seal set for the last block.
    pub fn expected(&self) -> u64 {
        self.size.unwrap_or(BLOCK_SEQS)
    }

    /// Every seq of the block is counted.
    pub fn is_complete(&self) -> bool {
        self.done > 0 && self.done == self.expected()
    }

    /// Complete and not yet on the run's counters.
    pub fn needs_report(&self) -> bool {
        self.is_complete() && !self.reported
    }

    pub fn state_of(&self, seq: u64) -> ChildState {
        let offset = seq % BLOCK_SEQS;
        if self.failed.contains(&offset) {
            ChildState::Failed
        } else if self.counted.contains(&offset) {
            ChildState::Succeeded
        } else {
            ChildState::Pending
        }
    }
}

fn offsets(item: &Item, name: &str) -> Result<BTreeSet<u64>, String> {
    match item.get(name) {
        None => Ok(BTreeSet::new()),
        Some(AttributeValue::Ns(numbers)) => numbers
            .iter()
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("`{name}` holds `{v}`, not a block offset"))
            })
            .collect(),
        Some(other) => Err(format!("`{name}` is {other:?}, not a number set")),
    }
}

/// An update with its condition and placeholders, of the same kind as the run record's.
pub(crate) type Change = super::runs::RunUpdate;

fn named(attributes: &[&str]) -> HashMap<String, String> {
    super::attrs::names(attributes)
}

fn offset_set(offsets: &[u64]) -> AttributeValue {
    AttributeValue::Ns(offsets.iter().map(u64::to_string).collect())
}

/// Counts `children` (seq, state; seqs of one block, at most
/// [`MAX_SEQS_PER_UPDATE`]) if none of them is counted yet.
pub(crate) fn count(children: &[(u64, ChildState)], expires_at: i64) -> Change {
    let offsets: Vec<u64> = children.iter().map(|(seq, _)| seq % BLOCK_SEQS).collect();
    let failed: Vec<u64> = children
        .iter()
        .filter(|(_, state)| *state == ChildState::Failed)
        .map(|(seq, _)| seq % BLOCK_SEQS)
        .collect();
    let mut values = HashMap::from([
        (":counted".to_owned(), offset_set(&offsets)),
        (":done".to_owned(), n(offsets.len())),
        (":failed".to_owned(), n(failed.len())),
        (":expires_at".to_owned(), n(expires_at)),
    ]);
    let mut update = "ADD #counted :counted, #done :done, #failed :failed".to_owned();
    let mut attributes = vec![
        block_attr::COUNTED,
        block_attr::DONE,
        block_attr::FAILED,
        attr::EXPIRES_AT,
    ];
    if !failed.is_empty() {
        update.push_str(", #failed_offsets :failed_offsets");
        values.insert(":failed_offsets".to_owned(), offset_set(&failed));
        attributes.push(block_attr::FAILED_OFFSETS);
    }
    update.push_str(" SET #expires_at = :expires_at");
    let condition = offsets
        .iter()
        .enumerate()
        .map(|(i, offset)| {
            values.insert(format!(":o{i}"), n(offset));
            format!("NOT contains(#counted, :o{i})")
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    Change {
        update,
        condition,
        names: named(&attributes),
        values,
    }
}

/// Moves a counted `FAILED` child to `SUCCEEDED`: out of `failed_offsets`, one failure
/// less. `reported`: the block's counts are already on the run's counters (the caller
/// then moves them in the same transaction); else the block must not be reported yet.
pub(crate) fn move_to_succeeded(seq: u64, reported: bool, expires_at: i64) -> Change {
    let offset = seq % BLOCK_SEQS;
    let guard = if reported {
        "#reported = :true"
    } else {
        "attribute_not_exists(#reported)"
    };
    let mut values = HashMap::from([
        (":moved".to_owned(), offset_set(&[offset])),
        (":offset".to_owned(), n(offset)),
        (":minus".to_owned(), n(-1)),
        (":expires_at".to_owned(), n(expires_at)),
    ]);
    if reported {
        values.insert(":true".to_owned(), b(true));
    }
    Change {
        update: "DELETE #failed_offsets :moved ADD #failed :minus SET #expires_at = :expires_at"
            .to_owned(),
        condition: format!("contains(#failed_offsets, :offset) AND {guard}"),
        names: named(&[
            block_attr::FAILED_OFFSETS,
            block_attr::FAILED,
            block_attr::REPORTED,
            attr::EXPIRES_AT,
        ]),
        values,
    }
}

/// Marks a complete block reported, if it is still as `seen`.
pub(crate) fn report(seen: &Block) -> Change {
    Change {
        update: "SET #reported = :true".to_owned(),
        condition: "attribute_not_exists(#reported) AND #done = :done AND #failed = :failed"
            .to_owned(),
        names: named(&[block_attr::REPORTED, block_attr::DONE, block_attr::FAILED]),
        values: HashMap::from([
            (":true".to_owned(), b(true)),
            (":done".to_owned(), n(seen.done)),
            (":failed".to_owned(), n(seen.failed_count)),
        ]),
    }
}

/// Sets the size of the last block of a sealed run (`size` seqs, 1 to 99).
pub(crate) fn set_size(size: u64, expires_at: i64) -> Change {
    Change {
        update: "SET #size = :size, #expires_at = :expires_at".to_owned(),
        condition: "attribute_not_exists(#size) OR #size = :size".to_owned(),
        names: named(&[block_attr::SIZE, attr::EXPIRES_AT]),
        values: HashMap::from([
            (":size".to_owned(), n(size)),
            (":expires_at".to_owned(), n(expires_at)),
        ]),
    }
}

/// The details items of `outcomes` (children of block `block`), each at most
/// [`MAX_DETAIL_BYTES`] of children, keyed `BLOCK#<block>#D#<nonce>-<i>`.
pub(crate) fn details_items(
    pk: &str,
    block: u64,
    outcomes: &[&ChildOutcome],
    nonce: &str,
    finished_at: DateTime<Utc>,
    expires_at: i64,
) -> Vec<Item> {
    let mut items = Vec::new();
    let mut children: HashMap<String, AttributeValue> = HashMap::new();
    let mut bytes = 0;
    let mut flush = |children: &mut HashMap<String, AttributeValue>| {
        if children.is_empty() {
            return;
        }
        let mut item = key(
            pk,
            &detail_sort_key(block, &format!("{nonce}-{}", items.len())),
        );
        item.insert(block_attr::BLOCK.to_owned(), n(block));
        item.insert(
            block_attr::CHILDREN.to_owned(),
            AttributeValue::M(std::mem::take(children)),
        );
        item.insert(attr::FINISHED_AT.to_owned(), s(time_text(finished_at)));
        item.insert(attr::EXPIRES_AT.to_owned(), n(expires_at));
        items.push(item);
    };
    for outcome in outcomes {
        let entry = detail_entry(outcome);
        let size = super::capacity::item_size(&entry) + 16;
        if bytes + size > MAX_DETAIL_BYTES {
            flush(&mut children);
            bytes = 0;
        }
        bytes += size;
        children.insert(outcome.seq.to_string(), AttributeValue::M(entry));
    }
    flush(&mut children);
    items
}

pub(crate) fn detail_entry(outcome: &ChildOutcome) -> Item {
    let mut entry = HashMap::from([
        (attr::ITEM.to_owned(), s(cut(&outcome.item))),
        (attr::STATE.to_owned(), s(outcome.state.as_str())),
        (attr::ATTEMPTS.to_owned(), n(outcome.attempts)),
    ]);
    match &outcome.result {
        Some(ChildResult::Inline(json)) => {
            entry.insert(attr::RESULT.to_owned(), s(json));
        }
        Some(ChildResult::Stored { s3_uri }) => {
            entry.insert(attr::RESULT_S3.to_owned(), s(s3_uri));
        }
        None => {}
    }
    if let Some(reason) = &outcome.reason {
        entry.insert(attr::REASON.to_owned(), s(cut(reason)));
    }
    entry
}

/// A child's details as written by one writer.
#[derive(Debug, Clone)]
struct Detail {
    item: String,
    state: ChildState,
    attempts: u32,
    result: Option<ChildResult>,
    reason: Option<String>,
    finished_at: DateTime<Utc>,
    expires_at: i64,
}

/// The items of one block read back: the block item and its details items, in sort key
/// order (as a `Query` returns them).
#[derive(Debug, Default)]
pub(crate) struct BlockItems {
    pub block: Option<Item>,
    pub details: Vec<Item>,
}

/// Sorts the items of a `Query` over block sort keys into blocks, in block order.
pub(crate) fn group(items: Vec<Item>) -> Result<BTreeMap<u64, BlockItems>, (String, String)> {
    let mut blocks: BTreeMap<u64, BlockItems> = BTreeMap::new();
    for item in items {
        let r = Reader::new(&item);
        let sk = r
            .str(SORT_KEY_ATTRIBUTE)
            .map_err(|why| (r.key_text(), why))?;
        let Some((block, is_block)) = parse_block_sort_key(sk) else {
            continue;
        };
        let entry = blocks.entry(block).or_default();
        if is_block {
            entry.block = Some(item);
        } else {
            entry.details.push(item);
        }
    }
    Ok(blocks)
}

/// The records of a block's counted children, in seq order: the state is the block's,
/// the details those of the first details item (in sort key order, which is time order)
/// that holds the child in that state, so a later duplicate changes nothing. A details item of a duplicate delivery that lost (another state) is
/// ignored. A counted child always has details: they are written before the count.
pub(crate) fn records(
    block: u64,
    items: &BlockItems,
) -> Result<Vec<ChildRecord>, (String, String)> {
    let counted = Block::from_item(block, items.block.as_ref())?;
    let mut details: HashMap<u64, Vec<Detail>> = HashMap::new();
    for item in &items.details {
        let r = Reader::new(item);
        let fail = |why: String| (r.key_text(), why);
        let finished_at = r.time(attr::FINISHED_AT).map_err(fail)?;
        let expires_at = r.opt_i64(attr::EXPIRES_AT).map_err(fail)?.unwrap_or(0);
        let Some(AttributeValue::M(children)) = item.get(block_attr::CHILDREN) else {
            return Err(fail(format!("`{}` is not a map", block_attr::CHILDREN)));
        };
        for (seq, entry) in children {
            let seq: u64 = seq
                .parse()
                .map_err(|_| fail(format!("child key `{seq}` is not a seq")))?;
            let AttributeValue::M(entry) = entry else {
                return Err(fail(format!("child {seq} is not a map")));
            };
            let e = Reader::new(entry);
            let efail = |why: String| fail(format!("child {seq}: {why}"));
            let result = match (
                e.opt_str(attr::RESULT).map_err(efail)?,
                e.opt_str(attr::RESULT_S3).map_err(efail)?,
            ) {
                (_, Some(uri)) => Some(ChildResult::Stored {
                    s3_uri: uri.to_owned(),
                }),
                (Some(json), None) => Some(ChildResult::Inline(json.to_owned())),
                (None, None) => None,
            };
            details.entry(seq).or_default().push(Detail {
                item: e.str(attr::ITEM).map_err(efail)?.to_owned(),
                state: e
                    .str(attr::STATE)
                    .map_err(efail)?
                    .parse()
                    .map_err(|err: crate::ledger_keys::UnknownState| efail(err.to_string()))?,
                attempts: e.u32_or(attr::ATTEMPTS, 0).map_err(efail)?,
                result,
                reason: e.opt_str(attr::REASON).map_err(efail)?.map(str::to_owned),
                finished_at,
                expires_at,
            });
        }
    }
    let mut records = Vec::with_capacity(counted.counted.len());
    for offset in &counted.counted {
        let seq = block * BLOCK_SEQS + offset;
        let state = counted.state_of(seq);
        let detail = details
            .get(&seq)
            .and_then(|d| d.iter().find(|d| d.state == state));
        records.push(match detail {
            Some(d) => ChildRecord {
                seq,
                item: d.item.clone(),
                state,
                attempts: d.attempts,
                result: d.result.clone(),
                reason: d.reason.clone(),
                finished_at: d.finished_at,
                expires_at: d.expires_at,
            },
            None => {
                return Err((
                    format!("{}/seq {seq}", block_sort_key(block)),
                    format!("child {seq} is counted {state} but no details item holds it so"),
                ))
            }
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn outcome(seq: u64, state: ChildState) -> ChildOutcome {
        ChildOutcome {
            seq,
            item: format!("item-{seq}"),
            state,
            attempts: 1,
            result: (state == ChildState::Succeeded)
                .then(|| ChildResult::Inline(format!("{{\"seq\":{seq}}}"))),
            reason: (state == ChildState::Failed).then(|| "boom".to_owned()),
        }
    }

    #[test]
    fn a_count_adds_offsets_under_the_condition_that_none_is_counted() {
        let change = count(
            &[(4_101, ChildState::Succeeded), (4_102, ChildState::Failed)],
            9,
        );
        assert_eq!(
            change.update,
            "ADD #counted :counted, #done :done, #failed :failed, \
             #failed_offsets :failed_offsets SET #expires_at = :expires_at"
        );
        assert_eq!(
            change.condition,
            "NOT contains(#counted, :o0) AND NOT contains(#counted, :o1)"
        );
        assert_eq!(
            change.values[":counted"],
            AttributeValue::Ns(vec!["1".into(), "2".into()])
        );
        assert_eq!(change.values[":failed"], AttributeValue::N("1".into()));
        let only_successes = count(&[(7, ChildState::Succeeded)], 9);
        assert!(!only_successes.update.contains("failed_offsets"));
        assert!(!only_successes.names.contains_key("#failed_offsets"));
    }

    #[test]
    fn blocks_complete_at_100_or_at_the_sealed_size() {
        let mut block = Block::empty(3);
        assert!(!block.is_complete());
        block.done = 100;
        assert!(block.needs_report());
        block.reported = true;
        assert!(block.is_complete() && !block.needs_report());
        let mut last = Block::empty(4);
        last.done = 7;
        assert!(!last.is_complete());
        last.size = Some(7);
        assert!(last.is_complete());
        last.failed.insert(2);
        last.counted.extend([1, 2]);
        assert_eq!(last.state_of(402), ChildState::Failed);
        assert_eq!(last.state_of(401), ChildState::Succeeded);
        assert_eq!(last.state_of(403), ChildState::Pending);
    }

    #[test]
    fn records_take_the_details_that_match_the_counted_state() {
        let at = Utc.with_ymd_and_hms(2026, 11, 1, 3, 0, 0).unwrap();
        let failed = outcome(101, ChildState::Failed);
        let succeeded = outcome(101, ChildState::Succeeded);
        let other = outcome(102, ChildState::Succeeded);
        let mut items = BlockItems::default();
        items
            .details
            .extend(details_items("pk", 1, &[&failed, &other], "a", at, 5));
        items
            .details
            .extend(details_items("pk", 1, &[&succeeded], "b", at, 5));
        let mut block = key("pk", &block_sort_key(1));
        block.insert(
            "counted".into(),
            AttributeValue::Ns(vec!["1".into(), "2".into()]),
        );
        block.insert("done".into(), n(2));
        block.insert("failed".into(), n(1));
        block.insert(
            "failed_offsets".into(),
            AttributeValue::Ns(vec!["1".into()]),
        );
        items.block = Some(block.clone());
        let got = records(1, &items).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].state, ChildState::Failed);
        assert_eq!(got[0].reason.as_deref(), Some("boom"));
        assert_eq!(got[1].item, "item-102");
        // Redriven: now SUCCEEDED, the later details say so.
        block.remove("failed_offsets");
        block.insert("failed".into(), n(0));
        items.block = Some(block);
        let got = records(1, &items).unwrap();
        assert_eq!(got[0].state, ChildState::Succeeded);
        assert_eq!(
            got[0].result,
            Some(ChildResult::Inline("{\"seq\":101}".into()))
        );
    }

    #[test]
    fn large_details_split_into_several_items() {
        let at = Utc.with_ymd_and_hms(2026, 11, 1, 3, 0, 0).unwrap();
        let big: Vec<ChildOutcome> = (0..10)
            .map(|seq| ChildOutcome {
                result: Some(ChildResult::Inline("x".repeat(60 * 1024))),
                ..outcome(seq, ChildState::Succeeded)
            })
            .collect();
        let refs: Vec<&ChildOutcome> = big.iter().collect();
        let items = details_items("pk", 0, &refs, "n", at, 1);
        assert!(items.len() >= 2, "{}", items.len());
        for item in &items {
            assert!(super::super::capacity::item_size(item) < 400 * 1024);
        }
        let grouped = group(items).unwrap();
        assert_eq!(grouped[&0].details.len(), 2.max(grouped[&0].details.len()));
    }
}
