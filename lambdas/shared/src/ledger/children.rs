//! Child-level calls: counting terminal outcomes in blocks, exactly once per seq, and
//! reading children back. `blocks` holds the expressions; this module makes the calls.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    CancellationReason, ReturnConsumedCapacity, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Error;
use chrono::{DateTime, Utc};
use futures::future::try_join_all;

use super::attrs::{expires_at, key, s, Item};
use super::blocks::{self, Block, BlockItems, Change, MAX_SEQS_PER_UPDATE};
use super::capacity;
use super::error::{Context, LedgerError, Step};
use super::plan::{counter_update, dedupe, Delta, Target};
use super::records::{cut, ChildOutcome, ChildRecord, InvalidItem, Recorded};
use super::retry::{retrying, CallError};
use super::{Ledger, RunParams};
use crate::ledger_keys::{
    block_of, block_sort_key, child_partition_key, child_sort_key, partition_of, ChildState,
    BLOCK_SEQS, PARTITION_KEY_ATTRIBUTE, SORT_KEY_ATTRIBUTE,
};
use crate::run_id::RunId;

const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailed";

/// Rounds of "the block changed under me" before a write gives up: each round is a
/// concurrent writer of the same block finishing first, so a few suffice.
const MAX_ROUNDS: usize = 8;

/// What a conditional update of a block did.
enum Updated {
    /// Written; the block after it.
    Written(Block),
    /// The condition failed; the block as it was.
    Refused(Block),
}

/// What recording one block's children did.
#[derive(Default)]
struct BlockCounted {
    new: Vec<u64>,
    moved: Vec<u64>,
    duplicates: Vec<u64>,
}

/// Where one run's children are written, with what.
struct Place<'a> {
    context: &'a Context,
    microprocess: &'a str,
    run: &'a RunId,
    params: RunParams,
    now: DateTime<Utc>,
    expires_at: i64,
}

impl<'a> Place<'a> {
    fn new(
        context: &'a Context,
        microprocess: &'a str,
        run: &'a RunId,
        params: RunParams,
        now: DateTime<Utc>,
    ) -> Place<'a> {
        Place {
            context,
            microprocess,
            run,
            params,
            now,
            expires_at: expires_at(now, params.retention_days),
        }
    }

    fn partition_key(&self, block: u64) -> String {
        child_partition_key(
            self.microprocess,
            self.run,
            partition_of(block, self.params.partitions),
        )
    }

    fn run_key(&self) -> String {
        crate::ledger_keys::run_partition_key(self.microprocess, self.run)
    }
}

/// A unique, time-ordered name for one writer's details item.
fn nonce(now: DateTime<Utc>) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_i64(now.timestamp_nanos_opt().unwrap_or_default());
    format!(
        "{:013x}{:08x}",
        now.timestamp_micros().max(0),
        hasher.finish() as u32
    )
}

impl Ledger {
    /// Records terminal outcomes (`SUCCEEDED` or `FAILED`) of children of a run, each
    /// counted once whatever the deliveries; see `docs/ledger.md`. Per block of the
    /// outcomes: the details item is written, then one conditional update counts every
    /// child not counted yet (a refused update returns the block, whose `counted` says
    /// which are duplicates), a `FAILED` child now `SUCCEEDED` moves, and a block this
    /// completes adds its counts to the run's counters.
    pub async fn record_children(
        &self,
        microprocess: &str,
        run: &RunId,
        outcomes: &[ChildOutcome],
        now: DateTime<Utc>,
    ) -> Result<Recorded, LedgerError> {
        let context = self.context(Step::RecordChildren, microprocess, Some(run));
        for outcome in outcomes {
            if outcome.state == ChildState::Pending {
                return Err(LedgerError::InvalidInput {
                    context,
                    why: format!(
                        "child {} is PENDING; record SUCCEEDED or FAILED",
                        outcome.seq
                    ),
                });
            }
            if let Err(source) = child_sort_key(outcome.seq) {
                return Err(LedgerError::Seq { context, source });
            }
        }
        let (kept, mut duplicates) = dedupe(outcomes);
        let params = self.params(&context, microprocess, run).await?;
        let place = Place::new(&context, microprocess, run, params, now);
        let mut by_block: BTreeMap<u64, Vec<&ChildOutcome>> = BTreeMap::new();
        for outcome in kept {
            by_block
                .entry(block_of(outcome.seq))
                .or_default()
                .push(outcome);
        }
        let counted = try_join_all(
            by_block
                .iter()
                .map(|(block, outcomes)| self.record_block(&place, *block, outcomes)),
        )
        .await?;
        let mut newly_counted = Vec::new();
        let mut moved_to_succeeded = Vec::new();
        for block in counted {
            newly_counted.extend(block.new);
            moved_to_succeeded.extend(block.moved);
            duplicates.extend(block.duplicates);
        }
        newly_counted.sort_unstable();
        moved_to_succeeded.sort_unstable();
        duplicates.sort_unstable();
        let run_record = self.require_run(&context, microprocess, run).await?;
        Ok(Recorded {
            newly_counted,
            moved_to_succeeded,
            duplicates,
            complete: run_record.all_children_done(),
            run: run_record,
        })
    }

    /// Records split items that break the contract's limits as `FAILED` children (no
    /// attempt made) with their reason, counted like any other child.
    pub async fn record_invalid_items(
        &self,
        microprocess: &str,
        run: &RunId,
        items: &[InvalidItem],
        now: DateTime<Utc>,
    ) -> Result<Recorded, LedgerError> {
        let outcomes: Vec<ChildOutcome> = items
            .iter()
            .map(|invalid| ChildOutcome {
                seq: invalid.seq,
                item: cut(&invalid.item).to_owned(),
                state: ChildState::Failed,
                attempts: 0,
                result: None,
                reason: Some(invalid.reason.clone()),
            })
            .collect();
        self.record_children(microprocess, run, &outcomes, now)
            .await
    }

    async fn record_block(
        &self,
        place: &Place<'_>,
        block: u64,
        outcomes: &[&ChildOutcome],
    ) -> Result<BlockCounted, LedgerError> {
        let pk = place.partition_key(block);
        // Details first: a counted child always has them.
        let details = blocks::details_items(
            &pk,
            block,
            outcomes,
            &nonce(place.now),
            place.now,
            place.expires_at,
        );
        for item in details {
            self.put_details(place.context, item).await?;
        }
        let mut result = BlockCounted::default();
        let mut image: Option<Block> = None;
        let mut moves = Vec::new();
        for chunk in outcomes.chunks(MAX_SEQS_PER_UPDATE) {
            let mut remaining: Vec<(u64, ChildState)> =
                chunk.iter().map(|o| (o.seq, o.state)).collect();
            for _ in 0..=BLOCK_SEQS {
                if remaining.is_empty() {
                    break;
                }
                let change = blocks::count(&remaining, place.expires_at);
                match self.update_block(place.context, &pk, block, change).await? {
                    Updated::Written(after) => {
                        result.new.extend(remaining.iter().map(|(seq, _)| *seq));
                        remaining.clear();
                        image = Some(after);
                    }
                    Updated::Refused(before) => {
                        // Some are counted already: duplicates, or failures to move.
                        let left = remaining.len();
                        remaining.retain(|(seq, state)| match before.state_of(*seq) {
                            ChildState::Pending => true,
                            ChildState::Failed if *state == ChildState::Succeeded => {
                                moves.push(*seq);
                                false
                            }
                            _ => {
                                result.duplicates.push(*seq);
                                false
                            }
                        });
                        if remaining.len() == left {
                            // Refused, yet none of them counted: nothing to learn by retrying.
                            return Err(LedgerError::Refused {
                                context: place.context.clone(),
                                why: format!(
                                    "the count of block {block} was refused, but the block \
                                     returned counts none of its children"
                                ),
                            });
                        }
                        image = Some(before);
                    }
                }
            }
        }
        let mut image = image.unwrap_or_else(|| Block::empty(block));
        for seq in moves {
            if self.move_child(place, &pk, seq, &mut image).await? {
                result.moved.push(seq);
            } else {
                result.duplicates.push(seq);
            }
        }
        if image.needs_report() {
            self.report_block(place, &pk, image).await?;
        }
        Ok(result)
    }

    /// Moves counted `FAILED` child `seq` to `SUCCEEDED`; `false` when it is not `FAILED`
    /// (a duplicate). `image` is the block as last seen, and is kept up to date.
    async fn move_child(
        &self,
        place: &Place<'_>,
        pk: &str,
        seq: u64,
        image: &mut Block,
    ) -> Result<bool, LedgerError> {
        for _ in 0..MAX_ROUNDS {
            if image.state_of(seq) != ChildState::Failed {
                return Ok(false);
            }
            if !image.reported {
                let change = blocks::move_to_succeeded(seq, false, place.expires_at);
                match self
                    .update_block(place.context, pk, image.block, change)
                    .await?
                {
                    Updated::Written(after) => {
                        *image = after;
                        return Ok(true);
                    }
                    Updated::Refused(before) => *image = before,
                }
                continue;
            }
            // Reported: the run's counters move in the same transaction.
            let change = blocks::move_to_succeeded(seq, true, place.expires_at);
            let delta = Delta {
                succeeded: 1,
                failed: -1,
                done: 0,
            };
            match self
                .transact_block(place, pk, image.block, change, delta)
                .await?
            {
                true => {
                    image.failed.remove(&(seq % BLOCK_SEQS));
                    image.failed_count = image.failed_count.saturating_sub(1);
                    return Ok(true);
                }
                false => *image = self.read_block(place.context, pk, image.block).await?,
            }
        }
        Err(self.busy(place.context, image.block))
    }

    /// Adds a complete block's counts to the run's counters, once.
    async fn report_block(
        &self,
        place: &Place<'_>,
        pk: &str,
        mut seen: Block,
    ) -> Result<(), LedgerError> {
        for _ in 0..MAX_ROUNDS {
            if !seen.needs_report() {
                return Ok(());
            }
            let delta = Delta {
                succeeded: i64::try_from(seen.done - seen.failed_count).unwrap_or(i64::MAX),
                failed: i64::try_from(seen.failed_count).unwrap_or(i64::MAX),
                done: i64::try_from(seen.done).unwrap_or(i64::MAX),
            };
            if self
                .transact_block(place, pk, seen.block, blocks::report(&seen), delta)
                .await?
            {
                return Ok(());
            }
            // Reported by another writer, or a child moved since: look again.
            seen = self.read_block(place.context, pk, seen.block).await?;
        }
        Err(self.busy(place.context, seen.block))
    }

    fn busy(&self, context: &Context, block: u64) -> LedgerError {
        LedgerError::Refused {
            context: context.clone(),
            why: format!(
                "block {block} kept changing under {MAX_ROUNDS} writes in a row; \
                 the batch comes back"
            ),
        }
    }

    /// The block's change and the run's counters in one transaction; `false` when the
    /// block's condition failed.
    async fn transact_block(
        &self,
        place: &Place<'_>,
        pk: &str,
        block: u64,
        change: Change,
        delta: Delta,
    ) -> Result<bool, LedgerError> {
        let build = |e: aws_sdk_dynamodb::error::BuildError| LedgerError::InvalidInput {
            context: place.context.clone(),
            why: format!("cannot build the transaction: {e}"),
        };
        let block_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, &block_sort_key(block))))
            .update_expression(change.update)
            .condition_expression(change.condition)
            .set_expression_attribute_names(Some(change.names))
            .set_expression_attribute_values(Some(change.values))
            .build()
            .map_err(build)?;
        let target = Target::of(block * BLOCK_SEQS, place.params.shards);
        let counters = counter_update(delta, place.expires_at);
        let mut counter = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(&place.run_key(), &target.sort_key())))
            .update_expression(counters.update)
            .set_expression_attribute_names(Some(counters.names))
            .set_expression_attribute_values(Some(counters.values));
        if target == Target::Run {
            // Never create a run record from a stray block.
            counter = counter
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", PARTITION_KEY_ATTRIBUTE);
        }
        let items = vec![
            TransactWriteItem::builder().update(block_update).build(),
            TransactWriteItem::builder()
                .update(counter.build().map_err(build)?)
                .build(),
        ];
        let result = retrying(&self.retry, || {
            self.client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await;
        match result {
            Ok(output) => {
                self.count_writes(output.consumed_capacity());
                // Two units per started KB in a transaction; both items are under one.
                self.estimate_writes(4);
                Ok(true)
            }
            Err(CallError::Service(error)) => match *error {
                Error::TransactionCanceledException(cancelled) => {
                    let reasons = cancelled.cancellation_reasons();
                    if refused(reasons, 1) {
                        return Err(LedgerError::RunNotFound {
                            context: place.context.clone(),
                        });
                    }
                    if refused(reasons, 0) {
                        return Ok(false);
                    }
                    Err(LedgerError::Cancelled {
                        context: place.context.clone(),
                        reasons: describe(reasons),
                    })
                }
                other => {
                    Err(CallError::Service(Box::new(other)).into_ledger(place.context.clone()))
                }
            },
            Err(exhausted) => Err(exhausted.into_ledger(place.context.clone())),
        }
    }

    /// One conditional update of a block, returning the block after it (or before it,
    /// when the condition failed).
    async fn update_block(
        &self,
        context: &Context,
        pk: &str,
        block: u64,
        change: Change,
    ) -> Result<Updated, LedgerError> {
        let written = self
            .conditional_update(context, key(pk, &block_sort_key(block)), &change)
            .await?;
        let malformed = |(key, why)| LedgerError::Malformed {
            context: context.clone(),
            key,
            why,
        };
        Ok(match written {
            Ok(after) => {
                Updated::Written(Block::from_item(block, Some(&after)).map_err(malformed)?)
            }
            Err(before) => {
                Updated::Refused(Block::from_item(block, Some(&before)).map_err(malformed)?)
            }
        })
    }

    async fn put_details(&self, context: &Context, item: Item) -> Result<(), LedgerError> {
        let units = capacity::units(capacity::item_size(&item));
        let output = retrying(&self.retry, || {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await
        .map_err(|e| e.into_ledger(context.clone()))?;
        self.count_writes(output.consumed_capacity());
        self.estimate_writes(units);
        Ok(())
    }

    /// Block `block`, strongly consistent (the empty block when it has no item yet).
    async fn read_block(
        &self,
        context: &Context,
        pk: &str,
        block: u64,
    ) -> Result<Block, LedgerError> {
        let got = retrying(&self.retry, || {
            self.client
                .get_item()
                .table_name(&self.table)
                .consistent_read(true)
                .set_key(Some(key(pk, &block_sort_key(block))))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await
        .map_err(|e| e.into_ledger(context.clone()))?;
        self.count_reads(got.consumed_capacity());
        Block::from_item(block, got.item.as_ref()).map_err(|(key, why)| LedgerError::Malformed {
            context: context.clone(),
            key,
            why,
        })
    }

    /// The state of child `seq` with one read of its block: `PENDING` until counted.
    pub async fn child_state(
        &self,
        microprocess: &str,
        run: &RunId,
        seq: u64,
    ) -> Result<ChildState, LedgerError> {
        let context = self.context(Step::Children, microprocess, Some(run));
        let params = self.params(&context, microprocess, run).await?;
        let block = block_of(seq);
        let pk = child_partition_key(microprocess, run, partition_of(block, params.partitions));
        Ok(self.read_block(&context, &pk, block).await?.state_of(seq))
    }

    /// Reports block `block` of the run if it is complete and not yet on the run's
    /// counters: the last block of a sealed run (its size is known only then), or a block
    /// whose completing writer stopped before reporting it. `true` when it is (now) on
    /// the counters.
    pub async fn settle_block(
        &self,
        microprocess: &str,
        run: &RunId,
        block: u64,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let context = self.context(Step::RecordChildren, microprocess, Some(run));
        let params = self.params(&context, microprocess, run).await?;
        let place = Place::new(&context, microprocess, run, params, now);
        let pk = place.partition_key(block);
        let seen = self.read_block(&context, &pk, block).await?;
        if !seen.is_complete() {
            return Ok(false);
        }
        self.report_block(&place, &pk, seen).await?;
        Ok(true)
    }

    /// Sets the size of the last block of a run sealed with `total` children (when it has
    /// fewer than 100) and reports it if that completes it.
    pub(crate) async fn size_last_block(
        &self,
        context: &Context,
        microprocess: &str,
        run: &RunId,
        total: u64,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let size = total % BLOCK_SEQS;
        if size == 0 {
            return Ok(());
        }
        let params = self.params(context, microprocess, run).await?;
        let place = Place::new(context, microprocess, run, params, now);
        let block = block_of(total);
        let pk = place.partition_key(block);
        let after = match self
            .update_block(
                context,
                &pk,
                block,
                blocks::set_size(size, place.expires_at),
            )
            .await?
        {
            Updated::Written(after) => after,
            Updated::Refused(before) => {
                return Err(LedgerError::Refused {
                    context: context.clone(),
                    why: format!(
                        "the last block {block} has size {:?}, not {size}",
                        before.size
                    ),
                })
            }
        };
        if after.needs_report() {
            self.report_block(&place, &pk, after).await?;
        }
        Ok(())
    }

    /// Every counted child of the run, in seq order (strongly consistent, every page).
    pub async fn children(
        &self,
        microprocess: &str,
        run: &RunId,
    ) -> Result<Vec<ChildRecord>, LedgerError> {
        let mut children = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = self.children_page(microprocess, run, after).await?;
            children.extend(page);
            match next {
                Some(seq) => after = Some(seq),
                None => return Ok(children),
            }
        }
    }

    /// One page of the run's counted children in seq order (strongly consistent), starting
    /// after child `after`; with the seq to pass next, `None` after the last page. A page
    /// covers a few blocks of every child partition (one `Query` each, at once), so a
    /// reader streams millions of children without holding them; a page may be empty
    /// while more follow.
    pub async fn children_page(
        &self,
        microprocess: &str,
        run: &RunId,
        after: Option<u64>,
    ) -> Result<(Vec<ChildRecord>, Option<u64>), LedgerError> {
        let context = self.context(Step::Children, microprocess, Some(run));
        let Some(record) = self.read_run(&context, microprocess, run).await? else {
            return Ok((Vec::new(), None));
        };
        let partitions = record.partitions.max(1);
        // A sealed run ends at its total; an unsealed one at the first empty page past its
        // checkpoint (children of the page being split are counted before it).
        let sealed = record.split_done && record.total.is_some();
        let end_block = record.total.unwrap_or(record.enqueued).div_ceil(BLOCK_SEQS);
        let first_block = match after {
            Some(seq) => block_of(seq.saturating_add(1)),
            None => 0,
        };
        if sealed && first_block >= end_block {
            return Ok((Vec::new(), None));
        }
        let page_blocks = u64::from(partitions).max(10);
        let last_block = if sealed {
            (first_block + page_blocks).min(end_block) - 1
        } else {
            first_block + page_blocks - 1
        };
        let queries = (0..partitions).filter_map(|p| {
            // The first and last block of partition p in the page.
            let offset = (u64::from(p) + u64::from(partitions)
                - first_block % u64::from(partitions))
                % u64::from(partitions);
            let first = first_block + offset;
            if first > last_block {
                return None;
            }
            let last = first + (last_block - first) / u64::from(partitions) * u64::from(partitions);
            Some(self.query_blocks(
                &context,
                child_partition_key(microprocess, run, p),
                first,
                last,
            ))
        });
        let mut grouped: BTreeMap<u64, BlockItems> = BTreeMap::new();
        for items in try_join_all(queries).await? {
            grouped.extend(
                blocks::group(items).map_err(|(key, why)| LedgerError::Malformed {
                    context: context.clone(),
                    key,
                    why,
                })?,
            );
        }
        let mut children = Vec::new();
        for (block, items) in &grouped {
            let records =
                blocks::records(*block, items).map_err(|(key, why)| LedgerError::Malformed {
                    context: context.clone(),
                    key,
                    why,
                })?;
            children.extend(
                records
                    .into_iter()
                    .filter(|r| after.is_none_or(|a| r.seq > a)),
            );
        }
        let more = last_block + 1 < end_block || (!sealed && !grouped.is_empty());
        let next = more.then(|| (last_block + 1) * BLOCK_SEQS - 1);
        Ok((children, next))
    }

    /// Every item of blocks `first..=last` of one child partition (block and details).
    async fn query_blocks(
        &self,
        context: &Context,
        pk: String,
        first: u64,
        last: u64,
    ) -> Result<Vec<Item>, LedgerError> {
        let pk = s(pk);
        let from = s(block_sort_key(first));
        // `~` sorts after `#`: the last block's details are in the range.
        let to = s(format!("{}~", block_sort_key(last)));
        self.query_all(context, |start| {
            self.client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                .expression_attribute_names("#pk", PARTITION_KEY_ATTRIBUTE)
                .expression_attribute_names("#sk", SORT_KEY_ATTRIBUTE)
                .expression_attribute_values(":pk", pk.clone())
                .expression_attribute_values(":from", from.clone())
                .expression_attribute_values(":to", to.clone())
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await
    }

    /// The record of child `seq` (strongly consistent); `None` before it is counted.
    pub async fn child(
        &self,
        microprocess: &str,
        run: &RunId,
        seq: u64,
    ) -> Result<Option<ChildRecord>, LedgerError> {
        let context = self.context(Step::Children, microprocess, Some(run));
        child_sort_key(seq).map_err(|source| LedgerError::Seq {
            context: context.clone(),
            source,
        })?;
        let params = self.params(&context, microprocess, run).await?;
        let block = block_of(seq);
        let pk = child_partition_key(microprocess, run, partition_of(block, params.partitions));
        let items = self.query_blocks(&context, pk, block, block).await?;
        let malformed = |(key, why)| LedgerError::Malformed {
            context: context.clone(),
            key,
            why,
        };
        let grouped = blocks::group(items).map_err(malformed)?;
        let Some(items) = grouped.get(&block) else {
            return Ok(None);
        };
        Ok(blocks::records(block, items)
            .map_err(malformed)?
            .into_iter()
            .find(|r| r.seq == seq))
    }
}

/// Whether item `index`'s condition failed in a cancelled transaction.
fn refused(reasons: &[CancellationReason], index: usize) -> bool {
    reasons
        .get(index)
        .is_some_and(|r| r.code() == Some(CONDITIONAL_CHECK_FAILED))
}

/// `index: code (message)` of each item that was not fine.
fn describe(reasons: &[CancellationReason]) -> String {
    let described: Vec<String> = reasons
        .iter()
        .enumerate()
        .filter(|(_, r)| r.code().is_some_and(|c| c != "None"))
        .map(|(i, r)| {
            format!(
                "item {i}: {} ({})",
                r.code().unwrap_or_default(),
                r.message().unwrap_or("no message")
            )
        })
        .collect();
    if described.is_empty() {
        "no reason given".into()
    } else {
        described.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn only_a_failed_condition_is_a_refusal() {
        let reasons = [reason("None"), reason("ConditionalCheckFailed")];
        assert!(!refused(&reasons, 0));
        assert!(refused(&reasons, 1));
        assert!(!refused(&reasons, 2));
        assert_eq!(
            describe(&[reason("None"), reason("ValidationError")]),
            "item 1: ValidationError (no message)"
        );
    }

    #[test]
    fn nonces_sort_in_time_order() {
        let early = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let late = DateTime::from_timestamp(1_800_000_001, 0).unwrap();
        assert!(nonce(early) < nonce(late));
        assert_eq!(nonce(early).len(), 21);
    }
}
