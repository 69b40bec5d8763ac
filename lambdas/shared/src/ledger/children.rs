//! Child-level calls: recording terminal outcomes with their counters, exactly once per
//! seq, and reading children back.

use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::types::{
    CancellationReason, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Error;
use chrono::{DateTime, Utc};

use super::attrs::{expires_at, key, s, Item, Reader};
use super::capacity;
use super::error::{Context, LedgerError, Step};
use super::plan::{batches, counter_update, dedupe, summed_deltas, Target, Write};
use super::records::{attr, child_item, cut, ChildOutcome, ChildRecord, InvalidItem, Recorded};
use super::retry::{retrying, CallError};
use super::Ledger;
use crate::ledger_keys::{
    child_sort_key, run_partition_key, ChildState, CHILD_SORT_KEY_PREFIX, PARTITION_KEY_ATTRIBUTE,
    SORT_KEY_ATTRIBUTE,
};
use crate::run_id::RunId;

/// Why a transaction did not go through.
enum TransactError {
    /// Cancelled; one reason per item, in the order written (children first).
    Cancelled(Vec<CancellationReason>),
    Call(CallError),
    /// The request could not be built.
    Build(String),
}

impl TransactError {
    fn into_ledger(self, context: &Context) -> LedgerError {
        match self {
            TransactError::Cancelled(reasons) => LedgerError::Cancelled {
                context: context.clone(),
                reasons: describe(&reasons),
            },
            TransactError::Call(error) => error.into_ledger(context.clone()),
            TransactError::Build(why) => LedgerError::InvalidInput {
                context: context.clone(),
                why,
            },
        }
    }
}

/// What one child's write did.
enum Counted {
    New,
    Moved,
    Duplicate,
}

/// What the ledger knows of a child that was not written in its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// Its condition held: no record at the time.
    Absent,
    /// Its condition failed and DynamoDB returned the record in this state.
    Exists(ChildState),
    /// Its condition failed and no record came back.
    ExistsUnknown,
    /// Nothing is known (its item was fine but another one failed).
    Unknown,
}

const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailed";

/// Reason codes a cancelled child write can carry and still be sorted out child by child:
/// the item was fine, its condition failed, or it was busy or throttled.
const EXPECTED_REASONS: [&str; 5] = [
    "None",
    CONDITIONAL_CHECK_FAILED,
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
];

/// Whether every reason is one [`EXPECTED_REASONS`] lists.
fn expected(reasons: &[CancellationReason]) -> bool {
    reasons
        .iter()
        .all(|r| EXPECTED_REASONS.contains(&r.code().unwrap_or("None")))
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

fn known(reason: Option<&CancellationReason>) -> Known {
    let Some(reason) = reason else {
        return Known::Unknown;
    };
    match reason.code() {
        Some(CONDITIONAL_CHECK_FAILED) => match reason.item().map(child_state) {
            Some(Some(state)) => Known::Exists(state),
            _ => Known::ExistsUnknown,
        },
        None | Some("None") => Known::Absent,
        Some(_) => Known::Unknown,
    }
}

fn child_state(item: &Item) -> Option<ChildState> {
    Reader::new(item).str(attr::STATE).ok()?.parse().ok()
}

/// The first write to try for `outcome` given what is known; `None`: a duplicate.
fn first_write(outcome: &ChildOutcome, known: Known) -> Option<Write> {
    match known {
        Known::Absent | Known::Unknown => Some(Write::New),
        Known::Exists(ChildState::Failed) | Known::ExistsUnknown
            if outcome.state == ChildState::Succeeded =>
        {
            Some(Write::MoveToSucceeded)
        }
        Known::Exists(_) | Known::ExistsUnknown => None,
    }
}

/// The write to try after `write` failed its condition; `None`: a duplicate.
fn next_write(outcome: &ChildOutcome, write: Write, known: Known) -> Option<Write> {
    match write {
        Write::New => first_write(outcome, known).filter(|w| *w == Write::MoveToSucceeded),
        // `state = FAILED` did not hold: the child is SUCCEEDED (never downgraded).
        Write::MoveToSucceeded => None,
    }
}

impl Ledger {
    /// Records terminal outcomes (`SUCCEEDED` or `FAILED`) of children of a run, each
    /// counted once whatever the deliveries; see the module documentation.
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
        let pk = run_partition_key(microprocess, run);
        let batch = Batch {
            context: &context,
            pk: &pk,
            shards: params.shards,
            now,
            expires_at: expires_at(now, params.retention_days),
        };
        let seqs: Vec<u64> = kept.iter().map(|o| o.seq).collect();
        let mut newly_counted = Vec::new();
        let mut moved_to_succeeded = Vec::new();
        for range in batches(&seqs, params.shards) {
            let children = &kept[range];
            let writes: Vec<(&ChildOutcome, Write)> =
                children.iter().map(|o| (*o, Write::New)).collect();
            let reasons = match self.transact(&batch, &writes).await {
                Ok(()) => {
                    newly_counted.extend(children.iter().map(|o| o.seq));
                    continue;
                }
                Err(TransactError::Cancelled(reasons)) if expected(&reasons) => reasons,
                Err(error) => return Err(error.into_ledger(&context)),
            };
            if counter_refused(&reasons, children.len()) {
                return Err(LedgerError::RunNotFound { context });
            }
            // A child already exists: write the batch child by child.
            for (index, outcome) in children.iter().enumerate() {
                let first = first_write(outcome, known(reasons.get(index)));
                match self.record_one(&batch, outcome, first).await? {
                    Counted::New => newly_counted.push(outcome.seq),
                    Counted::Moved => moved_to_succeeded.push(outcome.seq),
                    Counted::Duplicate => duplicates.push(outcome.seq),
                }
            }
        }
        let run_record = self.require_run(&context, microprocess, run).await?;
        duplicates.sort_unstable();
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

    /// Every child record of the run, in seq order (strongly consistent, every page).
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

    /// One page of the run's child records in seq order (strongly consistent), starting
    /// after child `after`; with the seq to pass next, `None` after the last page. Lets a
    /// reader stream millions of children without holding them.
    pub async fn children_page(
        &self,
        microprocess: &str,
        run: &RunId,
        after: Option<u64>,
    ) -> Result<(Vec<ChildRecord>, Option<u64>), LedgerError> {
        let context = self.context(Step::Children, microprocess, Some(run));
        let pk = s(run_partition_key(microprocess, run));
        let start = match after {
            Some(seq) => {
                let sk = child_sort_key(seq).map_err(|source| LedgerError::Seq {
                    context: context.clone(),
                    source,
                })?;
                let mut key = Item::new();
                key.insert(PARTITION_KEY_ATTRIBUTE.to_owned(), pk.clone());
                key.insert(SORT_KEY_ATTRIBUTE.to_owned(), s(sk));
                Some(key)
            }
            None => None,
        };
        let page = retrying(&self.retry, || {
            self.client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :child)")
                .expression_attribute_names("#pk", PARTITION_KEY_ATTRIBUTE)
                .expression_attribute_names("#sk", SORT_KEY_ATTRIBUTE)
                .expression_attribute_values(":pk", pk.clone())
                .expression_attribute_values(":child", s(CHILD_SORT_KEY_PREFIX))
                .set_exclusive_start_key(start.clone())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await
        .map_err(|e| e.into_ledger(context.clone()))?;
        self.count_reads(page.consumed_capacity());
        let mut children = Vec::new();
        for item in page.items.unwrap_or_default() {
            children.push(ChildRecord::from_item(&item).map_err(|(key, why)| {
                LedgerError::Malformed {
                    context: context.clone(),
                    key,
                    why,
                }
            })?);
        }
        let more = page.last_evaluated_key.is_some_and(|k| !k.is_empty());
        let next = if more {
            children.last().map(|c| c.seq)
        } else {
            None
        };
        Ok((children, next))
    }

    /// The record of child `seq` (strongly consistent); `None` before it is counted.
    pub async fn child(
        &self,
        microprocess: &str,
        run: &RunId,
        seq: u64,
    ) -> Result<Option<ChildRecord>, LedgerError> {
        let context = self.context(Step::Children, microprocess, Some(run));
        let sk = child_sort_key(seq).map_err(|source| LedgerError::Seq {
            context: context.clone(),
            source,
        })?;
        let pk = s(run_partition_key(microprocess, run));
        let got = retrying(&self.retry, || {
            self.client
                .get_item()
                .table_name(&self.table)
                .consistent_read(true)
                .key(PARTITION_KEY_ATTRIBUTE, pk.clone())
                .key(SORT_KEY_ATTRIBUTE, s(sk.clone()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await
        .map_err(|e| e.into_ledger(context.clone()))?;
        self.count_reads(got.consumed_capacity());
        got.item
            .map(|item| {
                ChildRecord::from_item(&item).map_err(|(key, why)| LedgerError::Malformed {
                    context,
                    key,
                    why,
                })
            })
            .transpose()
    }

    /// One child in its own transaction: a new record, or a move to `SUCCEEDED`, or
    /// nothing for a duplicate.
    async fn record_one(
        &self,
        batch: &Batch<'_>,
        outcome: &ChildOutcome,
        first: Option<Write>,
    ) -> Result<Counted, LedgerError> {
        let mut next = first;
        // At most a new write then a move: the loop ends in two rounds.
        while let Some(write) = next {
            match self.transact(batch, &[(outcome, write)]).await {
                Ok(()) => {
                    return Ok(match write {
                        Write::New => Counted::New,
                        Write::MoveToSucceeded => Counted::Moved,
                    })
                }
                Err(TransactError::Cancelled(reasons)) if expected(&reasons) => {
                    if counter_refused(&reasons, 1) {
                        return Err(LedgerError::RunNotFound {
                            context: batch.context.clone(),
                        });
                    }
                    next = next_write(outcome, write, known(reasons.first()));
                }
                Err(error) => return Err(error.into_ledger(batch.context)),
            }
        }
        Ok(Counted::Duplicate)
    }

    /// One `TransactWriteItems`: the children's records, then their counter items.
    async fn transact(
        &self,
        batch: &Batch<'_>,
        writes: &[(&ChildOutcome, Write)],
    ) -> Result<(), TransactError> {
        let (items, estimate) = self
            .transaction_items(batch, writes)
            .map_err(|e| TransactError::Build(format!("cannot build the transaction: {e}")))?;
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
                self.estimate_writes(estimate);
                Ok(())
            }
            Err(CallError::Service(error)) => match *error {
                Error::TransactionCanceledException(cancelled) => Err(TransactError::Cancelled(
                    cancelled.cancellation_reasons().to_vec(),
                )),
                other => Err(TransactError::Call(CallError::Service(Box::new(other)))),
            },
            Err(exhausted) => Err(TransactError::Call(exhausted)),
        }
    }

    fn transaction_items(
        &self,
        batch: &Batch<'_>,
        writes: &[(&ChildOutcome, Write)],
    ) -> Result<(Vec<TransactWriteItem>, u64), BuildError> {
        let mut items = Vec::with_capacity(writes.len() + 1);
        // Transactional writes cost two units per started KB; counter items stay under one.
        let mut estimate = 0;
        for (outcome, write) in writes {
            // Checked before: every seq has a key.
            let sk = child_sort_key(outcome.seq).unwrap_or_default();
            let record = child_item(batch.pk, &sk, outcome, batch.now, batch.expires_at);
            estimate += 2 * capacity::units(capacity::item_size(&record));
            let put = match write {
                Write::New => Put::builder()
                    .condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", PARTITION_KEY_ATTRIBUTE),
                Write::MoveToSucceeded => Put::builder()
                    .condition_expression("#state = :failed")
                    .expression_attribute_names("#state", attr::STATE)
                    .expression_attribute_values(":failed", s(ChildState::Failed.as_str())),
            }
            .table_name(&self.table)
            .set_item(Some(record))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let deltas = summed_deltas(
            writes.iter().map(|(o, w)| (o.seq, *w, o.state)),
            batch.shards,
        );
        for (target, delta) in deltas {
            let expression = counter_update(delta, batch.expires_at);
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(batch.pk, &target.sort_key())))
                .update_expression(expression.update)
                .set_expression_attribute_names(Some(expression.names))
                .set_expression_attribute_values(Some(expression.values));
            if target == Target::Run {
                // Never create a run record from a stray child.
                update = update
                    .condition_expression("attribute_exists(#pk)")
                    .expression_attribute_names("#pk", PARTITION_KEY_ATTRIBUTE);
            }
            items.push(TransactWriteItem::builder().update(update.build()?).build());
            estimate += 2;
        }
        Ok((items, estimate))
    }
}

/// Everything one `record_children` call writes with.
struct Batch<'a> {
    context: &'a Context,
    pk: &'a str,
    shards: u32,
    now: DateTime<Utc>,
    expires_at: i64,
}

/// Whether a cancellation came from the run record's `attribute_exists` condition (the
/// counter items follow the `children` child items).
fn counter_refused(reasons: &[CancellationReason], children: usize) -> bool {
    reasons
        .iter()
        .skip(children)
        .any(|r| r.code() == Some(CONDITIONAL_CHECK_FAILED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn outcome(state: ChildState) -> ChildOutcome {
        ChildOutcome {
            seq: 3,
            item: "x".into(),
            state,
            attempts: 1,
            result: None,
            reason: None,
        }
    }

    fn reason(code: &str, state: Option<&str>) -> CancellationReason {
        let mut builder = CancellationReason::builder().code(code);
        if let Some(state) = state {
            builder = builder.set_item(Some(HashMap::from([("state".to_owned(), s(state))])));
        }
        builder.build()
    }

    #[test]
    fn cancellation_reasons_tell_what_exists() {
        assert_eq!(known(None), Known::Unknown);
        assert_eq!(known(Some(&reason("None", None))), Known::Absent);
        assert_eq!(
            known(Some(&reason("ConditionalCheckFailed", Some("FAILED")))),
            Known::Exists(ChildState::Failed)
        );
        assert_eq!(
            known(Some(&reason("ConditionalCheckFailed", None))),
            Known::ExistsUnknown
        );
        assert_eq!(
            known(Some(&reason("TransactionConflict", None))),
            Known::Unknown
        );
    }

    #[test]
    fn a_succeeded_child_is_never_downgraded() {
        let failed = outcome(ChildState::Failed);
        let succeeded = outcome(ChildState::Succeeded);
        // A late FAILED delivery of a SUCCEEDED (or FAILED) child: nothing to write.
        assert_eq!(
            first_write(&failed, Known::Exists(ChildState::Succeeded)),
            None
        );
        assert_eq!(
            first_write(&failed, Known::Exists(ChildState::Failed)),
            None
        );
        assert_eq!(first_write(&failed, Known::ExistsUnknown), None);
        assert_eq!(
            first_write(&succeeded, Known::Exists(ChildState::Succeeded)),
            None
        );
        // A redriven child that now succeeds moves.
        assert_eq!(
            first_write(&succeeded, Known::Exists(ChildState::Failed)),
            Some(Write::MoveToSucceeded)
        );
        assert_eq!(
            first_write(&succeeded, Known::ExistsUnknown),
            Some(Write::MoveToSucceeded)
        );
        assert_eq!(first_write(&failed, Known::Absent), Some(Write::New));
        assert_eq!(first_write(&succeeded, Known::Unknown), Some(Write::New));
    }

    #[test]
    fn a_failed_write_leads_at_most_to_one_move() {
        let succeeded = outcome(ChildState::Succeeded);
        let failed = outcome(ChildState::Failed);
        assert_eq!(
            next_write(&succeeded, Write::New, Known::ExistsUnknown),
            Some(Write::MoveToSucceeded)
        );
        assert_eq!(next_write(&failed, Write::New, Known::ExistsUnknown), None);
        assert_eq!(
            next_write(&succeeded, Write::New, Known::Exists(ChildState::Succeeded)),
            None
        );
        // A new write that failed never becomes a new write again.
        assert_eq!(next_write(&succeeded, Write::New, Known::Unknown), None);
        assert_eq!(
            next_write(&succeeded, Write::MoveToSucceeded, Known::ExistsUnknown),
            None
        );
    }

    #[test]
    fn validation_errors_are_not_sorted_out_child_by_child() {
        assert!(expected(&[
            reason("ConditionalCheckFailed", None),
            reason("TransactionConflict", None),
            reason("None", None),
        ]));
        let reasons = [reason("None", None), reason("ValidationError", None)];
        assert!(!expected(&reasons));
        assert_eq!(describe(&reasons), "item 1: ValidationError (no message)");
    }

    #[test]
    fn only_a_counter_item_failure_means_the_run_is_missing() {
        let reasons = [
            reason("ConditionalCheckFailed", None),
            reason("None", None),
            reason("None", None),
        ];
        assert!(!counter_refused(&reasons, 2));
        let reasons = [reason("None", None), reason("ConditionalCheckFailed", None)];
        assert!(counter_refused(&reasons, 1));
    }
}
