//! Leases of children with callback completion (contract 1.1, section 2b): a child whose
//! process call is answered `202 Accepted` is `IN_PROGRESS` under a lease until the
//! service reports its outcome to the callback. See `docs/ledger.md`, "Lease record".
//!
//! The lease item sits beside the child's block (same partition key, sort key
//! `LEASE#<seq>`), so it costs no new key and the reduce's `BLOCK#` query never sees it.
//! The first terminal report is claimed on the lease item (`SET reported`, condition
//! `attribute_not_exists(reported)`) before it is counted: of two reports, one wins, and
//! a reporter that stops between its claim and its count leaves the claimed outcome for
//! the next one (another report, or the forwarder's lease check) to count.

use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue, Select};
use chrono::{DateTime, Utc};
use futures::future::try_join_all;

use super::attrs::{expires_at, key, n, names, s, time_text, Item, Reader};
use super::blocks::detail_entry;
use super::error::{Context, LedgerError, Step};
use super::records::{attr, ChildOutcome, ChildResult};
use super::retry::retrying;
use super::runs::RunUpdate;
use super::{Ledger, RunParams};
use crate::ledger_keys::{
    block_of, child_partition_key, child_partition_keys, lease_sort_key, partition_of, ChildState,
    LEASE_SORT_KEY_PREFIX, PARTITION_KEY_ATTRIBUTE, SORT_KEY_ATTRIBUTE,
};
use crate::run_id::RunId;

mod lease_attr {
    pub const SEQ: &str = "seq";
    pub const ITEM: &str = "item";
    pub const ATTEMPT: &str = "attempt";
    pub const ACCEPTED: &str = "accepted";
    pub const LEASE_UNTIL: &str = "lease_until";
    pub const OPENED_AT: &str = "opened_at";
    pub const REPORTED: &str = "reported";
    pub const EXPIRES_AT: &str = "expires_at";
}

/// A child's lease as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub seq: u64,
    pub item: String,
    /// The latest attempt called.
    pub attempt: u32,
    /// The attempt answered `202`, once one is (`None` while a call is out or after one
    /// that was not accepted).
    pub accepted: Option<u32>,
    /// When the lease runs out unless a heartbeat renews it.
    pub until: DateTime<Utc>,
    /// The first terminal report, claimed but perhaps not yet counted.
    pub reported: Option<ChildOutcome>,
}

impl Lease {
    /// Whether an accepted attempt's lease still holds at `now`.
    pub fn holds(&self, now: DateTime<Utc>) -> bool {
        self.accepted.is_some() && self.until > now
    }
}

/// What opening a lease before a call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The lease is this attempt's.
    Opened,
    /// A report was claimed already: the child is done, no call is needed.
    Reported(ChildOutcome),
}

/// What claiming a terminal report found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This report is the first: the caller counts it.
    Claimed,
    /// An earlier report was claimed: it, not this one, is what counts (the caller counts
    /// it again, which changes nothing once it is counted).
    AlreadyReported(ChildOutcome),
    /// The child has no lease: it was never accepted, or its lease was closed once its
    /// outcome was counted.
    NoLease,
}

impl Ledger {
    fn lease_key(
        &self,
        microprocess: &str,
        run: &RunId,
        params: RunParams,
        seq: u64,
        context: &Context,
    ) -> Result<Item, LedgerError> {
        let sk = lease_sort_key(seq).map_err(|source| LedgerError::Seq {
            context: context.clone(),
            source,
        })?;
        let pk = child_partition_key(
            microprocess,
            run,
            partition_of(block_of(seq), params.partitions),
        );
        Ok(key(&pk, &sk))
    }

    /// Opens (or takes over) the lease of child `seq` for `attempt`, before its call, so a
    /// report that races the `202` finds it; the lease is not accepted until
    /// [`Ledger::accept_lease`]. Refused only when a report was claimed: the child needs
    /// no call, and the claimed outcome is returned to be counted.
    #[allow(clippy::too_many_arguments)]
    pub async fn open_lease(
        &self,
        microprocess: &str,
        run: &RunId,
        seq: u64,
        item: &str,
        attempt: u32,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Opened, LedgerError> {
        let context = self.context(Step::Lease, microprocess, Some(run));
        let params = self.params(&context, microprocess, run).await?;
        let key = self.lease_key(microprocess, run, params, seq, &context)?;
        let change = RunUpdate::new(
            "SET #seq = :seq, #item = :item, #attempt = :attempt, #lease_until = :until, \
             #opened_at = :now, #expires_at = :expires REMOVE #accepted",
            "attribute_not_exists(#reported)",
            &[
                lease_attr::ACCEPTED,
                lease_attr::SEQ,
                lease_attr::ITEM,
                lease_attr::ATTEMPT,
                lease_attr::LEASE_UNTIL,
                lease_attr::OPENED_AT,
                lease_attr::EXPIRES_AT,
                lease_attr::REPORTED,
            ],
        )
        .value(":seq", n(seq))
        .value(":item", s(super::records::cut(item)))
        .value(":attempt", n(attempt))
        .value(":until", n(until.timestamp()))
        .value(":now", s(time_text(now)))
        .value(":expires", n(expires_at(now, params.retention_days)));
        // The condition only fails on a claimed report.
        let refused = format!("the lease of seq {seq} could not be opened");
        self.update_open_lease(context, key, change, refused).await
    }

    /// A conditional update of a lease that a claimed report refuses: [`Opened::Reported`]
    /// with that report, or `refused` when the lease is gone.
    async fn update_open_lease(
        &self,
        context: Context,
        key: Item,
        change: RunUpdate,
        refused: String,
    ) -> Result<Opened, LedgerError> {
        match self.conditional_update(&context, key, &change).await? {
            Ok(_) => Ok(Opened::Opened),
            Err(before) => {
                match lease_of(&before).map_err(|why| malformed(&context, &before, why))? {
                    Some(Lease {
                        reported: Some(outcome),
                        ..
                    }) => Ok(Opened::Reported(outcome)),
                    _ => Err(LedgerError::Refused {
                        context,
                        why: refused,
                    }),
                }
            }
        }
    }

    /// Attempt `attempt` of child `seq` was answered `202`: its lease runs until `until`.
    /// A report claimed meanwhile (it raced the answer) is returned to be counted.
    pub async fn accept_lease(
        &self,
        microprocess: &str,
        run: &RunId,
        seq: u64,
        attempt: u32,
        until: DateTime<Utc>,
    ) -> Result<Opened, LedgerError> {
        let context = self.context(Step::Lease, microprocess, Some(run));
        let params = self.params(&context, microprocess, run).await?;
        let key = self.lease_key(microprocess, run, params, seq, &context)?;
        let change = RunUpdate::new(
            "SET #accepted = :attempt, #lease_until = :until",
            "attribute_exists(#pk) AND attribute_not_exists(#reported)",
            &[
                PARTITION_KEY_ATTRIBUTE,
                lease_attr::ACCEPTED,
                lease_attr::LEASE_UNTIL,
                lease_attr::REPORTED,
            ],
        )
        .value(":attempt", n(attempt))
        .value(":until", n(until.timestamp()));
        let refused = format!("seq {seq} has no lease to accept (it was closed)");
        self.update_open_lease(context, key, change, refused).await
    }

    /// The lease of child `seq`, strongly consistent; `None` when it has none.
    pub async fn lease(
        &self,
        microprocess: &str,
        run: &RunId,
        seq: u64,
    ) -> Result<Option<Lease>, LedgerError> {
        let context = self.context(Step::Lease, microprocess, Some(run));
        let params = self.params(&context, microprocess, run).await?;
        let key = self.lease_key(microprocess, run, params, seq, &context)?;
        let got = retrying(&self.retry, || {
            self.client
                .get_item()
                .table_name(&self.table)
                .consistent_read(true)
                .set_key(Some(key.clone()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await
        .map_err(|e| e.into_ledger(context.clone()))?;
        self.count_reads(got.consumed_capacity());
        match got.item {
            None => Ok(None),
            Some(item) => lease_of(&item).map_err(|why| malformed(&context, &item, why)),
        }
    }

    /// A heartbeat: the lease of `seq` now runs until `until` (never shortened). `false`
    /// when the child has no open lease (none, or a report was claimed).
    pub async fn renew_lease(
        &self,
        microprocess: &str,
        run: &RunId,
        seq: u64,
        until: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let context = self.context(Step::Lease, microprocess, Some(run));
        let params = self.params(&context, microprocess, run).await?;
        let key = self.lease_key(microprocess, run, params, seq, &context)?;
        let change = RunUpdate::new(
            "SET #lease_until = :until",
            "attribute_exists(#pk) AND attribute_not_exists(#reported) AND #lease_until < :until",
            &[
                PARTITION_KEY_ATTRIBUTE,
                lease_attr::LEASE_UNTIL,
                lease_attr::REPORTED,
            ],
        )
        .value(":until", n(until.timestamp()));
        match self.conditional_update(&context, key, &change).await? {
            Ok(_) => Ok(true),
            Err(before) => Ok(
                match lease_of(&before).map_err(|why| malformed(&context, &before, why))? {
                    // Already renewed this far: a repeated heartbeat.
                    Some(lease) => lease.reported.is_none(),
                    None => false,
                },
            ),
        }
    }

    /// Claims `outcome` as the child's first terminal report (see the module docs).
    pub async fn claim_report(
        &self,
        microprocess: &str,
        run: &RunId,
        outcome: &ChildOutcome,
    ) -> Result<Claim, LedgerError> {
        let context = self.context(Step::Lease, microprocess, Some(run));
        if outcome.state == ChildState::Pending {
            return Err(LedgerError::InvalidInput {
                context,
                why: "a report must be `SUCCEEDED` or `FAILED`".into(),
            });
        }
        let params = self.params(&context, microprocess, run).await?;
        let key = self.lease_key(microprocess, run, params, outcome.seq, &context)?;
        let change = RunUpdate::new(
            "SET #reported = :reported",
            "attribute_exists(#pk) AND attribute_not_exists(#reported)",
            &[PARTITION_KEY_ATTRIBUTE, lease_attr::REPORTED],
        )
        .value(":reported", AttributeValue::M(detail_entry(outcome)));
        match self.conditional_update(&context, key, &change).await? {
            Ok(_) => Ok(Claim::Claimed),
            Err(before) => Ok(
                match lease_of(&before).map_err(|why| malformed(&context, &before, why))? {
                    Some(Lease {
                        reported: Some(first),
                        ..
                    }) => Claim::AlreadyReported(first),
                    _ => Claim::NoLease,
                },
            ),
        }
    }

    /// Deletes the leases of `seqs` once their outcomes are counted.
    pub async fn close_leases(
        &self,
        microprocess: &str,
        run: &RunId,
        seqs: &[u64],
    ) -> Result<(), LedgerError> {
        let context = self.context(Step::Lease, microprocess, Some(run));
        let params = self.params(&context, microprocess, run).await?;
        let deletes = seqs.iter().map(|seq| {
            let context = context.clone();
            async move {
                let key = self.lease_key(microprocess, run, params, *seq, &context)?;
                let output = retrying(&self.retry, || {
                    self.client
                        .delete_item()
                        .table_name(&self.table)
                        .set_key(Some(key.clone()))
                        .return_values(ReturnValue::None)
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
                        .send()
                })
                .await
                .map_err(|e| e.into_ledger(context.clone()))?;
                self.count_writes(output.consumed_capacity());
                Ok::<(), LedgerError>(())
            }
        });
        try_join_all(deletes).await.map(|_| ())
    }

    /// How many leases the run holds (children in progress), counted by the table
    /// (`Select = COUNT`), so a look at a run with many in progress reads no items back.
    pub async fn lease_count(&self, microprocess: &str, run: &RunId) -> Result<u64, LedgerError> {
        let mut count = 0;
        self.each_lease_page(microprocess, run, Some(Select::Count), |page, _| {
            count += u64::try_from(page.count()).unwrap_or(0);
            Ok(())
        })
        .await?;
        Ok(count)
    }

    /// The leases of the run, over every child key: the children in progress (with
    /// callback completion; a lease whose report is claimed but not yet counted is in it).
    pub async fn leases(&self, microprocess: &str, run: &RunId) -> Result<Vec<Lease>, LedgerError> {
        let mut leases = Vec::new();
        self.each_lease_page(microprocess, run, None, |page, context| {
            for item in page.items() {
                if let Some(lease) = lease_of(item).map_err(|why| malformed(context, item, why))? {
                    leases.push(lease);
                }
            }
            Ok(())
        })
        .await?;
        leases.sort_by_key(|l| l.seq);
        Ok(leases)
    }

    /// Every page of the run's lease items (`begins_with(sk, "LEASE#")` on each child
    /// key), with `select` (items, or only their count).
    async fn each_lease_page(
        &self,
        microprocess: &str,
        run: &RunId,
        select: Option<Select>,
        mut on_page: impl FnMut(&QueryOutput, &Context) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let context = self.context(Step::Lease, microprocess, Some(run));
        let params = self.params(&context, microprocess, run).await?;
        for pk in child_partition_keys(microprocess, run, params.partitions) {
            let mut start: Option<Item> = None;
            loop {
                let page = retrying(&self.retry, || {
                    self.client
                        .query()
                        .table_name(&self.table)
                        .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                        .set_expression_attribute_names(Some(names(&[
                            PARTITION_KEY_ATTRIBUTE,
                            SORT_KEY_ATTRIBUTE,
                        ])))
                        .expression_attribute_values(":pk", s(&pk))
                        .expression_attribute_values(":prefix", s(LEASE_SORT_KEY_PREFIX))
                        .set_select(select.clone())
                        .set_exclusive_start_key(start.clone())
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
                        .send()
                })
                .await
                .map_err(|e| e.into_ledger(context.clone()))?;
                self.count_reads(page.consumed_capacity());
                on_page(&page, &context)?;
                match page.last_evaluated_key {
                    Some(next) if !next.is_empty() => start = Some(next),
                    _ => break,
                }
            }
        }
        Ok(())
    }
}

fn malformed(context: &Context, item: &Item, why: String) -> LedgerError {
    LedgerError::Malformed {
        context: context.clone(),
        key: Reader::new(item).key_text(),
        why,
    }
}

/// The lease an item holds; `None` for an empty item (a condition that found nothing).
fn lease_of(item: &Item) -> Result<Option<Lease>, String> {
    if item.is_empty() {
        return Ok(None);
    }
    let r = Reader::new(item);
    let seq = r.count(lease_attr::SEQ)?;
    let until = r.opt_i64(lease_attr::LEASE_UNTIL)?.unwrap_or(0);
    let reported = match item.get(lease_attr::REPORTED) {
        None => None,
        Some(AttributeValue::M(entry)) => Some(reported_of(seq, entry)?),
        Some(other) => return Err(format!("`reported` is {other:?}, expected a map")),
    };
    Ok(Some(Lease {
        seq,
        item: r.str(lease_attr::ITEM)?.to_owned(),
        attempt: r.u32_or(lease_attr::ATTEMPT, 1)?,
        accepted: r
            .opt_u64(lease_attr::ACCEPTED)?
            .map(|a| u32::try_from(a).unwrap_or(u32::MAX)),
        until: DateTime::from_timestamp(until, 0).ok_or("`lease_until` is out of range")?,
        reported,
    }))
}

fn reported_of(seq: u64, entry: &Item) -> Result<ChildOutcome, String> {
    let e = Reader::new(entry);
    let fail = |why: String| format!("`reported`: {why}");
    let result = match (
        e.opt_str(attr::RESULT).map_err(fail)?,
        e.opt_str(attr::RESULT_S3).map_err(fail)?,
    ) {
        (_, Some(uri)) => Some(ChildResult::Stored {
            s3_uri: uri.to_owned(),
        }),
        (Some(json), None) => Some(ChildResult::Inline(json.to_owned())),
        (None, None) => None,
    };
    Ok(ChildOutcome {
        seq,
        item: e.str(attr::ITEM).map_err(fail)?.to_owned(),
        state: e
            .str(attr::STATE)
            .map_err(fail)?
            .parse()
            .map_err(|err: crate::ledger_keys::UnknownState| fail(err.to_string()))?,
        attempts: e.u32_or(attr::ATTEMPTS, 1).map_err(fail)?,
        result,
        reason: e.opt_str(attr::REASON).map_err(fail)?.map(str::to_owned),
    })
}
