//! Run-level calls: start, checkpoint, seal, the state transitions, and the reads.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use aws_sdk_dynamodb::Error;
use chrono::{DateTime, Utc};

use super::attrs::{b, expires_at, key, n, names, s, time_text, Item, Reader};
use super::capacity;
use super::error::{Context, LedgerError, Step};
use super::records::{attr, state_pk, Overlap, RunRecord, StartRun};
use super::retry::{retrying, CallError};
use super::{Layout, Ledger, RunParams, RUNS_BY_STATE_INDEX};
use crate::ledger_keys::{
    run_partition_key, RunState, MAX_COUNTER_SHARDS, MAX_PARTITIONS, PARTITION_KEY_ATTRIBUTE,
    RUN_SORT_KEY, SHARD_SORT_KEY_PREFIX, SORT_KEY_ATTRIBUTE,
};
use crate::run_id::RunId;

/// A conditional update of one item: the run record, or a block (`blocks::Change`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunUpdate {
    pub update: String,
    pub condition: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl RunUpdate {
    /// An update naming `attributes` through `#name` placeholders.
    pub fn new(
        update: impl Into<String>,
        condition: impl Into<String>,
        attributes: &[&str],
    ) -> Self {
        RunUpdate {
            update: update.into(),
            condition: condition.into(),
            names: names(attributes),
            values: HashMap::new(),
        }
    }

    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }
}

/// The update that moves a run to `to` (keeping `state_pk` in step) and refreshes its TTL;
/// `reason` and `finished_at` are set when given.
pub(crate) fn transition(
    microprocess: &str,
    from: RunState,
    to: RunState,
    now: DateTime<Utc>,
    expires: i64,
    finished: bool,
    reason: Option<&str>,
) -> RunUpdate {
    let mut sets = vec![
        "#state = :to",
        "#state_pk = :state_pk",
        "#expires_at = :expires_at",
    ];
    let mut attributes = vec![attr::STATE, attr::STATE_PK, attr::EXPIRES_AT];
    if finished {
        sets.push("#finished_at = :now");
        attributes.push(attr::FINISHED_AT);
    }
    if reason.is_some() {
        sets.push("#reason = :reason");
        attributes.push(attr::REASON);
    }
    let mut update = RunUpdate::new(
        format!("SET {}", sets.join(", ")),
        "#state = :from",
        &attributes,
    )
    .value(":from", s(from.as_str()))
    .value(":to", s(to.as_str()))
    .value(":state_pk", s(state_pk(microprocess, to)))
    .value(":expires_at", n(expires));
    if finished {
        update = update.value(":now", s(time_text(now)));
    }
    if let Some(reason) = reason {
        update = update.value(":reason", s(super::records::cut(reason)));
    }
    update
}

impl Ledger {
    /// Starts run `run` of `microprocess`, `SPLITTING`, unless it exists or (with
    /// [`Overlap::Skip`]) another run of the microprocess is active. The `layout` and
    /// `retention_days` (at least 1) are fixed for the run's life.
    pub async fn start_run(
        &self,
        microprocess: &str,
        run: &RunId,
        overlap: Overlap,
        retention_days: u32,
        layout: Layout,
        now: DateTime<Utc>,
    ) -> Result<StartRun, LedgerError> {
        let shards = layout.counter_shards;
        let context = self.context(Step::StartRun, microprocess, Some(run));
        if microprocess.is_empty() || microprocess.contains('#') {
            return Err(LedgerError::InvalidInput {
                context,
                why: format!(
                    "microprocess name `{microprocess}` must be non-empty and without `#`"
                ),
            });
        }
        if !(1..MAX_COUNTER_SHARDS).contains(&shards) {
            return Err(LedgerError::InvalidInput {
                context,
                why: format!(
                    "counter shards must be 1 to {}, not {shards}",
                    MAX_COUNTER_SHARDS - 1
                ),
            });
        }
        if !(1..=MAX_PARTITIONS).contains(&layout.partitions) {
            return Err(LedgerError::InvalidInput {
                context,
                why: format!(
                    "child partitions must be 1 to {MAX_PARTITIONS}, not {}",
                    layout.partitions
                ),
            });
        }
        if retention_days == 0 {
            return Err(LedgerError::InvalidInput {
                context,
                why: "retention must be at least 1 day".into(),
            });
        }
        if let Some(existing) = self.read_run(&context, microprocess, run).await? {
            return Ok(StartRun::Existing(existing));
        }
        if overlap == Overlap::Skip {
            if let Some(running) = self.find_active(&context, microprocess, run).await? {
                return Ok(StartRun::Skipped { running });
            }
        }
        let record = RunRecord {
            microprocess: microprocess.to_owned(),
            run: run.clone(),
            state: RunState::Splitting,
            started_at: DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now),
            split_done_at: None,
            finished_at: None,
            cursor: None,
            enqueued: 0,
            pages: 0,
            split_done: false,
            total: None,
            succeeded: 0,
            failed: 0,
            done: 0,
            reason: None,
            reduce_claimed_at: None,
            reduce_queued_at: None,
            counter_shards: shards,
            partitions: layout.partitions,
            retention_days,
            expires_at: expires_at(now, retention_days),
            split_lease: None,
            split_lease_until: None,
        };
        let item = record.to_item();
        let put = retrying(&self.retry, || {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PARTITION_KEY_ATTRIBUTE)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await;
        match put {
            Ok(output) => {
                self.count_writes(output.consumed_capacity());
                self.estimate_writes(capacity::units(capacity::item_size(&item)));
                self.remember(&record);
                Ok(StartRun::Started(record))
            }
            Err(CallError::Service(error))
                if matches!(*error, Error::ConditionalCheckFailedException(_)) =>
            {
                // Another tick started it between the read and the put.
                match self.read_run(&context, microprocess, run).await? {
                    Some(existing) => Ok(StartRun::Existing(existing)),
                    None => Err(LedgerError::Refused {
                        context,
                        why: "the run record existed for the write but not for the read back"
                            .into(),
                    }),
                }
            }
            Err(error) => Err(error.into_ledger(context)),
        }
    }

    /// The run, strongly consistent, with its counters summed over its shards; `None` when
    /// it does not exist.
    pub async fn run(
        &self,
        microprocess: &str,
        run: &RunId,
    ) -> Result<Option<RunRecord>, LedgerError> {
        let context = self.context(Step::ReadRun, microprocess, Some(run));
        self.read_run(&context, microprocess, run).await
    }

    /// Takes the split's lease for `owner` until `until` (epoch seconds): granted, with
    /// the run as it is now, when the run is `SPLITTING` and the lease is free, expired or
    /// already `owner`'s (a hand-off keeps its token); `None` when another invocation
    /// holds it or the run is past its split. Two invocations of one run (a tick
    /// delivered twice, a resume by the sweep while a slow invocation still splits) never
    /// both split: only the holder's checkpoints are accepted.
    pub async fn take_split_lease(
        &self,
        microprocess: &str,
        run: &RunId,
        owner: &str,
        until: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<RunRecord>, LedgerError> {
        let context = self.context(Step::SplitLease, microprocess, Some(run));
        let change = RunUpdate::new(
            "SET #split_lease = :owner, #split_lease_until = :until",
            "#state = :splitting AND (attribute_not_exists(#split_lease_until) \
             OR #split_lease_until < :now OR #split_lease = :owner)",
            &[attr::STATE, attr::SPLIT_LEASE, attr::SPLIT_LEASE_UNTIL],
        )
        .value(":splitting", s(RunState::Splitting.as_str()))
        .value(":owner", s(owner))
        .value(":until", n(until))
        .value(":now", n(now.timestamp()));
        match self.update_run(&context, microprocess, run, change).await? {
            Some(_) => Ok(Some(self.require_run(&context, microprocess, run).await?)),
            None => Ok(None),
        }
    }

    /// Gives up the split's lease of `owner` (an invocation that failed and will be retried
    /// by Lambda), so the retry takes it at once instead of waiting for it to run out.
    /// `false` when `owner` did not hold it.
    pub async fn release_split_lease(
        &self,
        microprocess: &str,
        run: &RunId,
        owner: &str,
    ) -> Result<bool, LedgerError> {
        let context = self.context(Step::SplitLease, microprocess, Some(run));
        let change = RunUpdate::new(
            "SET #split_lease_until = :zero",
            "#split_lease = :owner",
            &[attr::SPLIT_LEASE, attr::SPLIT_LEASE_UNTIL],
        )
        .value(":owner", s(owner))
        .value(":zero", n(0));
        Ok(self
            .update_run(&context, microprocess, run, change)
            .await?
            .is_some())
    }

    /// Records the split's progress: the cursor of the next page (`None`: the first page
    /// again, or no more pages), children enqueued and pages read so far, and extends the
    /// split's lease of `owner` to `lease_until`. Refused when the run is not `SPLITTING`,
    /// when `owner` no longer holds the lease, or when `enqueued` or `pages` would move
    /// back.
    #[allow(clippy::too_many_arguments)]
    pub async fn checkpoint(
        &self,
        microprocess: &str,
        run: &RunId,
        owner: &str,
        lease_until: i64,
        next_cursor: Option<&str>,
        enqueued: u64,
        pages: u64,
    ) -> Result<(), LedgerError> {
        let context = self.context(Step::Checkpoint, microprocess, Some(run));
        let (set_cursor, update) = match next_cursor {
            Some(_) => (
                true,
                "SET #enqueued = :enqueued, #pages = :pages, #cursor = :cursor, \
                 #split_lease_until = :until",
            ),
            None => (
                false,
                "SET #enqueued = :enqueued, #pages = :pages, #split_lease_until = :until \
                 REMOVE #cursor",
            ),
        };
        let mut change = RunUpdate::new(
            update,
            "#state = :splitting AND #split_lease = :owner AND #enqueued <= :enqueued \
             AND #pages <= :pages",
            &[
                attr::STATE,
                attr::ENQUEUED,
                attr::PAGES,
                attr::CURSOR,
                attr::SPLIT_LEASE,
                attr::SPLIT_LEASE_UNTIL,
            ],
        )
        .value(":splitting", s(RunState::Splitting.as_str()))
        .value(":owner", s(owner))
        .value(":until", n(lease_until))
        .value(":enqueued", n(enqueued))
        .value(":pages", n(pages));
        if set_cursor {
            change = change.value(":cursor", s(next_cursor.unwrap_or_default()));
        }
        if self
            .update_run(&context, microprocess, run, change)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let current = self.require_run(&context, microprocess, run).await?;
        let why = if current.state != RunState::Splitting {
            format!("the run is {}, not SPLITTING", current.state)
        } else if current.split_lease.as_deref() != Some(owner) {
            format!(
                "another invocation has taken the split's lease ({}): it splits the run now",
                current.split_lease.as_deref().unwrap_or("none")
            )
        } else {
            format!(
                "the checkpoint would move back: enqueued {enqueued} and pages {pages}, \
                 the ledger has enqueued {} and pages {}",
                current.enqueued, current.pages
            )
        };
        Err(LedgerError::Refused { context, why })
    }

    /// Seals the split: `total` children, `split_done`, `PROCESSING`. Once: a second call
    /// returns the sealed record unchanged (its `total` is the first one). Refused when the
    /// run is not `SPLITTING`.
    pub async fn seal(
        &self,
        microprocess: &str,
        run: &RunId,
        total: u64,
        now: DateTime<Utc>,
    ) -> Result<RunRecord, LedgerError> {
        let context = self.context(Step::Seal, microprocess, Some(run));
        let params = self.params(&context, microprocess, run).await?;
        let current = self.require_run(&context, microprocess, run).await?;
        // The last block's size first: it cannot complete the run before the seal, and a
        // repeated seal sizes it again with the total that stays.
        let total = if current.split_done {
            current.total.unwrap_or(total)
        } else {
            total
        };
        self.size_last_block(&context, microprocess, run, total, now)
            .await?;
        let change = RunUpdate::new(
            "SET #split_done = :true, #total = :total, #split_done_at = :now, \
             #state = :processing, #state_pk = :state_pk, #expires_at = :expires_at",
            "#state = :splitting AND #split_done = :false",
            &[
                attr::SPLIT_DONE,
                attr::TOTAL,
                attr::SPLIT_DONE_AT,
                attr::STATE,
                attr::STATE_PK,
                attr::EXPIRES_AT,
            ],
        )
        .value(":true", b(true))
        .value(":false", b(false))
        .value(":total", n(total))
        .value(":now", s(time_text(now)))
        .value(":splitting", s(RunState::Splitting.as_str()))
        .value(":processing", s(RunState::Processing.as_str()))
        .value(":state_pk", s(state_pk(microprocess, RunState::Processing)))
        .value(":expires_at", n(expires_at(now, params.retention_days)));
        if let Some(item) = self.update_run(&context, microprocess, run, change).await? {
            if params.shards > 1 {
                return self.require_run(&context, microprocess, run).await;
            }
            return parse_run(&context, &item);
        }
        let current = self.require_run(&context, microprocess, run).await?;
        if current.split_done {
            if current.total != Some(total) {
                tracing::warn!(
                    microprocess,
                    run = %run,
                    sealed_total = ?current.total,
                    total,
                    "run already sealed with another total; keeping the first"
                );
            }
            return Ok(current);
        }
        Err(LedgerError::Refused {
            context,
            why: format!("the run is {}, not SPLITTING", current.state),
        })
    }

    /// Ends the run `SPLIT_FAILED` with `reason`: by the holder of the split's lease
    /// `owner`, or by anyone with `None` (an operator). `Ok` when it already is; refused
    /// when the run is not `SPLITTING` or `owner` no longer holds the lease (another
    /// invocation splits the run now, and its pages may well succeed).
    pub async fn split_failed(
        &self,
        microprocess: &str,
        run: &RunId,
        owner: Option<&str>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let context = self.context(Step::SplitFailed, microprocess, Some(run));
        let Some(owner) = owner else {
            return self
                .end(
                    &context,
                    microprocess,
                    run,
                    RunState::Splitting,
                    RunState::SplitFailed,
                    Some(reason),
                    now,
                )
                .await;
        };
        let params = self.params(&context, microprocess, run).await?;
        let mut change = transition(
            microprocess,
            RunState::Splitting,
            RunState::SplitFailed,
            now,
            expires_at(now, params.retention_days),
            true,
            Some(reason),
        )
        .value(":owner", s(owner));
        change.condition.push_str(" AND #split_lease = :owner");
        change.names.extend(names(&[attr::SPLIT_LEASE]));
        if self
            .update_run(&context, microprocess, run, change)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let current = self.require_run(&context, microprocess, run).await?;
        if current.state == RunState::SplitFailed {
            return Ok(());
        }
        let why = if current.state != RunState::Splitting {
            format!("the run is {}, not SPLITTING", current.state)
        } else {
            "another invocation has taken the split's lease: it splits the run now".to_owned()
        };
        Err(LedgerError::Refused { context, why })
    }

    /// Ends an active run `CANCELLED` with `reason` (`SPLITTING`, `PROCESSING` or
    /// `REDUCING`): its splitter's next checkpoint is refused, its queued messages are
    /// dropped without a call, its reduce is never claimed, and a reduce message already
    /// queued is dropped too. `None` when this call cancelled it or it already was; the
    /// state it ended in otherwise (nothing changed).
    pub async fn cancel(
        &self,
        microprocess: &str,
        run: &RunId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<RunState>, LedgerError> {
        let context = self.context(Step::Cancel, microprocess, Some(run));
        let params = self.params(&context, microprocess, run).await?;
        let mut change = transition(
            microprocess,
            RunState::Splitting,
            RunState::Cancelled,
            now,
            expires_at(now, params.retention_days),
            true,
            Some(reason),
        )
        .value(":processing", s(RunState::Processing.as_str()))
        .value(":reducing", s(RunState::Reducing.as_str()));
        change.condition = "#state IN (:from, :processing, :reducing)".to_owned();
        if self
            .update_run(&context, microprocess, run, change)
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let current = self.require_run(&context, microprocess, run).await?;
        Ok((current.state != RunState::Cancelled).then_some(current.state))
    }

    /// Moves the run from `PROCESSING` to `REDUCING` when its split is sealed and every
    /// child is done. `true` for the one caller that made the move, who then sends the
    /// reduce message; `false` when the run is not finished yet, is not `PROCESSING`, or
    /// another caller won.
    pub async fn try_claim_reduce(
        &self,
        microprocess: &str,
        run: &RunId,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let context = self.context(Step::ClaimReduce, microprocess, Some(run));
        let params = self.params(&context, microprocess, run).await?;
        let condition = if params.shards > 1 {
            // The shards are summed first; counters only grow, so a sum that reached the
            // total stays there, and the state condition leaves one winner.
            let current = self.require_run(&context, microprocess, run).await?;
            if current.state != RunState::Processing || !current.all_children_done() {
                return Ok(false);
            }
            "#state = :from AND #split_done = :true"
        } else {
            "#state = :from AND #split_done = :true AND #done = #total"
        };
        let mut change = transition(
            microprocess,
            RunState::Processing,
            RunState::Reducing,
            now,
            expires_at(now, params.retention_days),
            false,
            None,
        )
        .value(":true", b(true))
        .value(":claimed", s(time_text(now)));
        change.update.push_str(", #reduce_claimed_at = :claimed");
        change.names.extend(names(&[attr::REDUCE_CLAIMED_AT]));
        change.condition = condition.to_owned();
        // DynamoDB rejects a placeholder that no expression uses.
        let used: &[&str] = if params.shards > 1 {
            &[attr::SPLIT_DONE]
        } else {
            &[attr::SPLIT_DONE, attr::DONE, attr::TOTAL]
        };
        change.names.extend(names(used));
        Ok(self
            .update_run(&context, microprocess, run, change)
            .await?
            .is_some())
    }

    /// `REDUCING → COMPLETED`, after the reduce was answered 2xx; also from
    /// `REDUCE_FAILED`, which a failed copy of the same reduce message may have recorded
    /// in the meantime. `Ok` when already `COMPLETED`; refused otherwise.
    pub async fn complete(
        &self,
        microprocess: &str,
        run: &RunId,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let context = self.context(Step::Complete, microprocess, Some(run));
        match self
            .end(
                &context,
                microprocess,
                run,
                RunState::Reducing,
                RunState::Completed,
                None,
                now,
            )
            .await
        {
            Err(LedgerError::Refused { .. }) => {}
            done => return done,
        }
        // The reduce is delivered at least once: another copy of its message may have
        // failed for good and ended the run `REDUCE_FAILED` while this one was being
        // answered. The service has taken the reduce on, so the 2xx wins.
        let current = self.require_run(&context, microprocess, run).await?;
        let reason = format!(
            "the reduce was answered 2xx after another copy of its message had failed ({})",
            current.reason.as_deref().unwrap_or("no reason recorded")
        );
        self.end(
            &context,
            microprocess,
            run,
            RunState::ReduceFailed,
            RunState::Completed,
            Some(&reason),
            now,
        )
        .await
    }

    /// `REDUCING → REDUCE_FAILED` with `reason`. `Ok` when already `REDUCE_FAILED`;
    /// refused otherwise.
    pub async fn reduce_failed(
        &self,
        microprocess: &str,
        run: &RunId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let context = self.context(Step::ReduceFailed, microprocess, Some(run));
        self.end(
            &context,
            microprocess,
            run,
            RunState::Reducing,
            RunState::ReduceFailed,
            Some(reason),
            now,
        )
        .await
    }

    /// `REDUCE_FAILED → REDUCING`, for a reduce retried by hand (`microprocess redrive`).
    /// `true` for the caller that made the move, who then sends the reduce message;
    /// `false` when the run is not `REDUCE_FAILED` (someone else retried it, or it never
    /// failed).
    pub async fn retry_reduce(
        &self,
        microprocess: &str,
        run: &RunId,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let context = self.context(Step::RetryReduce, microprocess, Some(run));
        let params = self.params(&context, microprocess, run).await?;
        let mut change = transition(
            microprocess,
            RunState::ReduceFailed,
            RunState::Reducing,
            now,
            expires_at(now, params.retention_days),
            false,
            None,
        );
        // A new claim: the sweep ages it until the new reduce message is queued. The
        // reason of the failure no longer holds once the reduce runs again.
        change = change.value(":claimed", s(time_text(now)));
        change
            .update
            .push_str(", #reduce_claimed_at = :claimed REMOVE #reason, #reduce_queued_at");
        change.names.extend(names(&[
            attr::REASON,
            attr::REDUCE_CLAIMED_AT,
            attr::REDUCE_QUEUED_AT,
        ]));
        Ok(self
            .update_run(&context, microprocess, run, change)
            .await?
            .is_some())
    }

    /// Notes that the reduce message of a `REDUCING` run is on the queue, so the sweep
    /// leaves the run alone. `false` when the run is no longer `REDUCING` (its reduce
    /// already ran).
    pub async fn mark_reduce_queued(
        &self,
        microprocess: &str,
        run: &RunId,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let context = self.context(Step::MarkReduceQueued, microprocess, Some(run));
        let change = RunUpdate::new(
            "SET #reduce_queued_at = :now".to_owned(),
            "#state = :reducing",
            &[attr::REDUCE_QUEUED_AT, attr::STATE],
        )
        .value(":now", s(time_text(now)))
        .value(":reducing", s(RunState::Reducing.as_str()));
        Ok(self
            .update_run(&context, microprocess, run, change)
            .await?
            .is_some())
    }

    /// At most `limit` runs of `microprocess` in `state`, newest first (one index page;
    /// eventually consistent). For listings such as `status`, where the oldest of
    /// thousands of completed runs do not matter.
    pub async fn latest_runs_in_state(
        &self,
        microprocess: &str,
        state: RunState,
        limit: i32,
    ) -> Result<Vec<RunRecord>, LedgerError> {
        let context = self.context(Step::RunsInState, microprocess, None);
        let partition = s(state_pk(microprocess, state));
        let page = retrying(&self.retry, || {
            self.client
                .query()
                .table_name(&self.table)
                .index_name(RUNS_BY_STATE_INDEX)
                .key_condition_expression("#state_pk = :state_pk")
                .expression_attribute_names("#state_pk", attr::STATE_PK)
                .expression_attribute_values(":state_pk", partition.clone())
                .scan_index_forward(false)
                .limit(limit.max(1))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await
        .map_err(|e| e.into_ledger(context.clone()))?;
        self.count_reads(page.consumed_capacity());
        self.records_of(&context, microprocess, page.items.unwrap_or_default())
            .await
    }

    /// The runs of `microprocess` in `state`, oldest first, from the `runs-by-state` index
    /// (eventually consistent), every page; counters of sharded runs summed with one
    /// consistent read each.
    pub async fn runs_in_state(
        &self,
        microprocess: &str,
        state: RunState,
    ) -> Result<Vec<RunRecord>, LedgerError> {
        let context = self.context(Step::RunsInState, microprocess, None);
        let items = self.query_state(&context, microprocess, state).await?;
        self.records_of(&context, microprocess, items).await
    }

    /// The run records of index items; a sharded run is read again with its shards,
    /// consistently, so its counters are summed.
    async fn records_of(
        &self,
        context: &Context,
        microprocess: &str,
        items: Vec<Item>,
    ) -> Result<Vec<RunRecord>, LedgerError> {
        let mut runs = Vec::new();
        for item in items {
            let record = parse_run(context, &item)?;
            if record.counter_shards > 1 {
                if let Some(summed) = self.read_run(context, microprocess, &record.run).await? {
                    runs.push(summed);
                }
            } else {
                runs.push(record);
            }
        }
        Ok(runs)
    }

    /// Another active run of `microprocess` than `run`, from the index.
    async fn find_active(
        &self,
        context: &Context,
        microprocess: &str,
        run: &RunId,
    ) -> Result<Option<RunRecord>, LedgerError> {
        for state in [
            RunState::Splitting,
            RunState::Processing,
            RunState::Reducing,
        ] {
            for item in self.query_state(context, microprocess, state).await? {
                let record = parse_run(context, &item)?;
                if record.run != *run {
                    return Ok(Some(record));
                }
            }
        }
        Ok(None)
    }

    /// Every item of the index partition `<microprocess>#<state>`.
    async fn query_state(
        &self,
        context: &Context,
        microprocess: &str,
        state: RunState,
    ) -> Result<Vec<Item>, LedgerError> {
        let partition = s(state_pk(microprocess, state));
        self.query_all(context, |start| {
            self.client
                .query()
                .table_name(&self.table)
                .index_name(RUNS_BY_STATE_INDEX)
                .key_condition_expression("#state_pk = :state_pk")
                .expression_attribute_names("#state_pk", attr::STATE_PK)
                .expression_attribute_values(":state_pk", partition.clone())
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await
    }

    /// Every item of a paginated `Query`, its read units counted: `query` sends the query
    /// from the given start key.
    pub(crate) async fn query_all<F, Fut, E>(
        &self,
        context: &Context,
        query: F,
    ) -> Result<Vec<Item>, LedgerError>
    where
        F: Fn(Option<Item>) -> Fut,
        Fut: std::future::Future<Output = Result<QueryOutput, E>>,
        E: Into<Error>,
    {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = retrying(&self.retry, || query(start.clone()))
                .await
                .map_err(|e| e.into_ledger(context.clone()))?;
            self.count_reads(page.consumed_capacity());
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    pub(crate) async fn read_run(
        &self,
        context: &Context,
        microprocess: &str,
        run: &RunId,
    ) -> Result<Option<RunRecord>, LedgerError> {
        let pk = s(run_partition_key(microprocess, run));
        let mut record: Option<RunRecord> = None;
        let mut shards: Vec<Item> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = retrying(&self.retry, || {
                self.client
                    .query()
                    .table_name(&self.table)
                    .consistent_read(true)
                    .key_condition_expression("#pk = :pk AND #sk >= :run")
                    .expression_attribute_names("#pk", PARTITION_KEY_ATTRIBUTE)
                    .expression_attribute_names("#sk", SORT_KEY_ATTRIBUTE)
                    .expression_attribute_values(":pk", pk.clone())
                    .expression_attribute_values(":run", s(RUN_SORT_KEY))
                    .set_exclusive_start_key(start.clone())
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
            })
            .await
            .map_err(|e| e.into_ledger(context.clone()))?;
            self.count_reads(page.consumed_capacity());
            for item in page.items.unwrap_or_default() {
                match Reader::new(&item).str(SORT_KEY_ATTRIBUTE) {
                    Ok(RUN_SORT_KEY) => record = Some(parse_run(context, &item)?),
                    Ok(sk) if sk.starts_with(SHARD_SORT_KEY_PREFIX) => shards.push(item),
                    _ => {}
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        let Some(mut record) = record else {
            return Ok(None);
        };
        for shard in &shards {
            let r = Reader::new(shard);
            let malformed = |why| LedgerError::Malformed {
                context: context.clone(),
                key: r.key_text(),
                why,
            };
            record.succeeded += r.count(attr::SUCCEEDED).map_err(malformed)?;
            record.failed += r.count(attr::FAILED).map_err(malformed)?;
            record.done += r.count(attr::DONE).map_err(malformed)?;
        }
        self.remember(&record);
        Ok(Some(record))
    }

    pub(crate) async fn require_run(
        &self,
        context: &Context,
        microprocess: &str,
        run: &RunId,
    ) -> Result<RunRecord, LedgerError> {
        self.read_run(context, microprocess, run)
            .await?
            .ok_or_else(|| LedgerError::RunNotFound {
                context: context.clone(),
            })
    }

    /// The run's fixed parameters, from memory or its record.
    pub(crate) async fn params(
        &self,
        context: &Context,
        microprocess: &str,
        run: &RunId,
    ) -> Result<RunParams, LedgerError> {
        if let Some(params) = self.cached_params(&run_partition_key(microprocess, run)) {
            return Ok(params);
        }
        let record = self.require_run(context, microprocess, run).await?;
        Ok(RunParams {
            shards: record.counter_shards,
            partitions: record.partitions,
            retention_days: record.retention_days,
        })
    }

    /// A conditional update of the run record: `Some(new item)` when it was written, `None`
    /// when its condition failed.
    pub(crate) async fn update_run(
        &self,
        context: &Context,
        microprocess: &str,
        run: &RunId,
        change: RunUpdate,
    ) -> Result<Option<Item>, LedgerError> {
        let key = key(&run_partition_key(microprocess, run), RUN_SORT_KEY);
        Ok(self.conditional_update(context, key, &change).await?.ok())
    }

    /// One conditional `UpdateItem` of the item at `key`: `Ok(the item after it)`, or
    /// `Err(the item before it)` when its condition failed (empty when there was none).
    pub(crate) async fn conditional_update(
        &self,
        context: &Context,
        key: Item,
        change: &RunUpdate,
    ) -> Result<Result<Item, Item>, LedgerError> {
        let result = retrying(&self.retry, || {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression(&change.update)
                .condition_expression(&change.condition)
                .set_expression_attribute_names(Some(change.names.clone()))
                .set_expression_attribute_values(
                    (!change.values.is_empty()).then(|| change.values.clone()),
                )
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await;
        match result {
            Ok(output) => {
                self.count_writes(output.consumed_capacity());
                let item = output.attributes.unwrap_or_default();
                self.estimate_writes(capacity::units(capacity::item_size(&item)));
                Ok(Ok(item))
            }
            Err(CallError::Service(error)) => match *error {
                Error::ConditionalCheckFailedException(failed) => {
                    Ok(Err(failed.item.unwrap_or_default()))
                }
                other => Err(CallError::Service(Box::new(other)).into_ledger(context.clone())),
            },
            Err(error) => Err(error.into_ledger(context.clone())),
        }
    }

    /// `from → to`, ending the run; `Ok` when it is already `to`.
    #[allow(clippy::too_many_arguments)]
    async fn end(
        &self,
        context: &Context,
        microprocess: &str,
        run: &RunId,
        from: RunState,
        to: RunState,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let params = self.params(context, microprocess, run).await?;
        let change = transition(
            microprocess,
            from,
            to,
            now,
            expires_at(now, params.retention_days),
            true,
            reason,
        );
        if self
            .update_run(context, microprocess, run, change)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let current = self.require_run(context, microprocess, run).await?;
        if current.state == to {
            return Ok(());
        }
        Err(LedgerError::Refused {
            context: context.clone(),
            why: format!("the run is {}, not {from}", current.state),
        })
    }
}

fn parse_run(context: &Context, item: &Item) -> Result<RunRecord, LedgerError> {
    RunRecord::from_item(item).map_err(|(key, why)| LedgerError::Malformed {
        context: context.clone(),
        key,
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::MAX_STORED_TEXT as MAX_REASON;
    use chrono::TimeZone;

    #[test]
    fn transitions_keep_the_index_key_in_step() {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 3, 0, 0).unwrap();
        let change = transition(
            "credit-scores",
            RunState::Reducing,
            RunState::ReduceFailed,
            now,
            42,
            true,
            Some("service answered 500"),
        );
        assert_eq!(
            change.update,
            "SET #state = :to, #state_pk = :state_pk, #expires_at = :expires_at, \
             #finished_at = :now, #reason = :reason"
        );
        assert_eq!(change.condition, "#state = :from");
        assert_eq!(change.values[":from"], s("REDUCING"));
        assert_eq!(change.values[":to"], s("REDUCE_FAILED"));
        assert_eq!(change.values[":state_pk"], s("credit-scores#REDUCE_FAILED"));
        assert_eq!(change.values[":now"], s("2026-11-01T03:00:00Z"));
        assert_eq!(change.values[":expires_at"], n(42));
        for placeholder in change.names.keys() {
            assert!(
                change.update.contains(placeholder.as_str())
                    || change.condition.contains(placeholder.as_str()),
                "{placeholder} unused"
            );
        }
    }

    #[test]
    fn a_claim_transition_sets_no_end_time() {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 3, 0, 0).unwrap();
        let change = transition(
            "m",
            RunState::Processing,
            RunState::Reducing,
            now,
            1,
            false,
            None,
        );
        assert!(!change.update.contains("finished_at"));
        assert!(!change.values.contains_key(":now"));
        assert!(!change.names.contains_key("#reason"));
    }

    #[test]
    fn reasons_are_cut() {
        let long = "x".repeat(MAX_REASON * 2);
        let change = transition(
            "m",
            RunState::Splitting,
            RunState::SplitFailed,
            Utc::now(),
            1,
            true,
            Some(&long),
        );
        match &change.values[":reason"] {
            AttributeValue::S(text) => assert_eq!(text.len(), MAX_REASON),
            other => panic!("{other:?}"),
        }
    }
}
