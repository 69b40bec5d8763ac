//! The records of the ledger as Rust values, and their conversion from and to items.

use chrono::{DateTime, Utc};

use super::attrs::{b, n, s, time_text, Item, Reader};
use crate::ledger_keys::{run_partition_key, ChildState, RunState};
use crate::run_id::RunId;

/// Attribute names of the ledger's records (docs/ledger.md).
pub(crate) mod attr {
    pub const MICROPROCESS: &str = "microprocess";
    pub const RUN: &str = "run";
    pub const STATE: &str = "state";
    pub const STATE_PK: &str = "state_pk";
    pub const STATE_SK: &str = "state_sk";
    pub const STARTED_AT: &str = "started_at";
    pub const SPLIT_DONE_AT: &str = "split_done_at";
    pub const FINISHED_AT: &str = "finished_at";
    pub const CURSOR: &str = "cursor";
    pub const ENQUEUED: &str = "enqueued";
    pub const PAGES: &str = "pages";
    pub const SPLIT_DONE: &str = "split_done";
    pub const TOTAL: &str = "total";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const DONE: &str = "done";
    pub const REASON: &str = "reason";
    pub const REDUCE_CLAIMED_AT: &str = "reduce_claimed_at";
    pub const REDUCE_QUEUED_AT: &str = "reduce_queued_at";
    pub const COUNTER_SHARDS: &str = "counter_shards";
    pub const PARTITIONS: &str = "partitions";
    pub const RETENTION_DAYS: &str = "retention_days";
    pub const EXPIRES_AT: &str = "expires_at";
    pub const SPLIT_LEASE: &str = "split_lease";
    pub const SPLIT_LEASE_UNTIL: &str = "split_lease_until";
    pub const ITEM: &str = "item";
    pub const ATTEMPTS: &str = "attempts";
    pub const RESULT: &str = "result";
    pub const RESULT_S3: &str = "result_s3";
}

/// Whether a new run may start while another run of the same microprocess is active
/// (`SPLITTING`, `PROCESSING` or `REDUCING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Do not start; report the active run.
    Skip,
    /// Start anyway.
    Allow,
}

/// A run record, with its counters summed over its shards when it has more than one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub microprocess: String,
    pub run: RunId,
    pub state: RunState,
    pub started_at: DateTime<Utc>,
    pub split_done_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The split checkpoint: cursor of the next page to read (`None`: the first page).
    pub cursor: Option<String>,
    /// Children sent to the queue so far (the seq of the next child).
    pub enqueued: u64,
    /// Split pages read so far.
    pub pages: u64,
    pub split_done: bool,
    /// Number of children, set when the split is sealed.
    pub total: Option<u64>,
    pub succeeded: u64,
    pub failed: u64,
    /// `succeeded + failed`.
    pub done: u64,
    pub reason: Option<String>,
    /// When the reduce was claimed (`PROCESSING → REDUCING`, or retried by hand).
    pub reduce_claimed_at: Option<DateTime<Utc>>,
    /// When the claimer's reduce message was on the queue. A `REDUCING` run claimed long
    /// ago without it lost its reduce message: the sweep queues it again.
    pub reduce_queued_at: Option<DateTime<Utc>>,
    /// Counter shards of the run (1: the counters are on the run record itself).
    pub counter_shards: u32,
    /// Child partition keys the run's blocks are spread over.
    pub partitions: u32,
    pub retention_days: u32,
    /// TTL, epoch seconds.
    pub expires_at: i64,
    /// The split's lease: the token of the invocation that may split the run, and until
    /// when (epoch seconds). Only the holder checkpoints; an expired lease is taken over.
    pub split_lease: Option<String>,
    pub split_lease_until: Option<i64>,
}

impl RunRecord {
    /// The partition of the run record and its counters.
    pub fn partition_key(&self) -> String {
        run_partition_key(&self.microprocess, &self.run)
    }

    /// The partition keys of the run's children: the reduce's `results.partition_keys`.
    pub fn child_partition_keys(&self) -> Vec<String> {
        crate::ledger_keys::child_partition_keys(&self.microprocess, &self.run, self.partitions)
    }

    /// The split is sealed and every child is accounted for.
    pub fn all_children_done(&self) -> bool {
        self.split_done && self.total == Some(self.done)
    }

    pub(crate) fn from_item(item: &Item) -> Result<RunRecord, (String, String)> {
        let r = Reader::new(item);
        let fail = |why: String| (r.key_text(), why);
        let run = r.str(attr::RUN).map_err(fail)?;
        let state = r.str(attr::STATE).map_err(fail)?;
        Ok(RunRecord {
            microprocess: r.str(attr::MICROPROCESS).map_err(fail)?.to_owned(),
            run: RunId::parse(run).map_err(|e| fail(e.to_string()))?,
            state: state
                .parse()
                .map_err(|e: crate::ledger_keys::UnknownState| fail(e.to_string()))?,
            started_at: r.time(attr::STARTED_AT).map_err(fail)?,
            split_done_at: r.opt_time(attr::SPLIT_DONE_AT).map_err(fail)?,
            finished_at: r.opt_time(attr::FINISHED_AT).map_err(fail)?,
            cursor: r.opt_str(attr::CURSOR).map_err(fail)?.map(str::to_owned),
            enqueued: r.count(attr::ENQUEUED).map_err(fail)?,
            pages: r.count(attr::PAGES).map_err(fail)?,
            split_done: r.bool(attr::SPLIT_DONE).map_err(fail)?,
            total: r.opt_u64(attr::TOTAL).map_err(fail)?,
            succeeded: r.count(attr::SUCCEEDED).map_err(fail)?,
            failed: r.count(attr::FAILED).map_err(fail)?,
            done: r.count(attr::DONE).map_err(fail)?,
            reason: r.opt_str(attr::REASON).map_err(fail)?.map(str::to_owned),
            reduce_claimed_at: r.opt_time(attr::REDUCE_CLAIMED_AT).map_err(fail)?,
            reduce_queued_at: r.opt_time(attr::REDUCE_QUEUED_AT).map_err(fail)?,
            counter_shards: r.u32_or(attr::COUNTER_SHARDS, 1).map_err(fail)?.max(1),
            partitions: r.u32_or(attr::PARTITIONS, 1).map_err(fail)?.max(1),
            retention_days: r.u32_or(attr::RETENTION_DAYS, 0).map_err(fail)?,
            expires_at: r.opt_i64(attr::EXPIRES_AT).map_err(fail)?.unwrap_or(0),
            split_lease: r
                .opt_str(attr::SPLIT_LEASE)
                .map_err(fail)?
                .map(str::to_owned),
            split_lease_until: r.opt_i64(attr::SPLIT_LEASE_UNTIL).map_err(fail)?,
        })
    }

    /// The full item of a new run.
    pub(crate) fn to_item(&self) -> Item {
        let mut item =
            crate::ledger::attrs::key(&self.partition_key(), crate::ledger_keys::RUN_SORT_KEY);
        let mut put = |name: &str, value| {
            item.insert(name.to_owned(), value);
        };
        put(attr::MICROPROCESS, s(&self.microprocess));
        put(attr::RUN, s(self.run.as_str()));
        put(attr::STATE, s(self.state.as_str()));
        put(attr::STATE_PK, s(state_pk(&self.microprocess, self.state)));
        put(attr::STATE_SK, s(state_sk(self.started_at, &self.run)));
        put(attr::STARTED_AT, s(time_text(self.started_at)));
        if let Some(cursor) = &self.cursor {
            put(attr::CURSOR, s(cursor));
        }
        put(attr::ENQUEUED, n(self.enqueued));
        put(attr::PAGES, n(self.pages));
        put(attr::SPLIT_DONE, b(self.split_done));
        if let Some(total) = self.total {
            put(attr::TOTAL, n(total));
        }
        put(attr::SUCCEEDED, n(self.succeeded));
        put(attr::FAILED, n(self.failed));
        put(attr::DONE, n(self.done));
        put(attr::COUNTER_SHARDS, n(self.counter_shards));
        put(attr::PARTITIONS, n(self.partitions));
        put(attr::RETENTION_DAYS, n(self.retention_days));
        put(attr::EXPIRES_AT, n(self.expires_at));
        if let Some(lease) = &self.split_lease {
            put(attr::SPLIT_LEASE, s(lease));
        }
        if let Some(until) = self.split_lease_until {
            put(attr::SPLIT_LEASE_UNTIL, n(until));
        }
        item
    }
}

/// `<microprocess>#<state>`: partition key of the `runs-by-state` index.
pub fn state_pk(microprocess: &str, state: RunState) -> String {
    format!("{microprocess}#{state}")
}

/// `<started_at>#<run>`: sort key of the `runs-by-state` index (oldest run first).
pub fn state_sk(started_at: DateTime<Utc>, run: &RunId) -> String {
    format!("{}#{run}", time_text(started_at))
}

/// What [`crate::ledger::Ledger::start_run`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRun {
    /// The run was created, `SPLITTING`.
    Started(RunRecord),
    /// A run with this id already exists (a repeated schedule tick): resume its split if it
    /// is still `SPLITTING`, else there is nothing to do.
    Existing(RunRecord),
    /// `Overlap::Skip` and another run of the microprocess is active; nothing was written.
    Skipped { running: RunRecord },
}

/// Where a child's result is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildResult {
    /// The service's JSON body, as JSON text (at most 64 KiB).
    Inline(String),
    /// `s3://<bucket>/results/<microprocess>/<run>/<seq>.json`.
    Stored { s3_uri: String },
}

/// The terminal outcome of one child, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildOutcome {
    pub seq: u64,
    pub item: String,
    /// `Succeeded` or `Failed`; `Pending` is rejected.
    pub state: ChildState,
    /// Process calls made (the SQS receive count of the last one).
    pub attempts: u32,
    pub result: Option<ChildResult>,
    /// Why the child failed.
    pub reason: Option<String>,
}

/// A split item that breaks the contract's limits: recorded as a `FAILED` child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidItem {
    pub seq: u64,
    /// The item id as the service sent it (cut to [`MAX_STORED_TEXT`] bytes).
    pub item: String,
    pub reason: String,
}

/// Longest item id or reason stored for a child, in bytes: an invalid item's id can be
/// arbitrarily long, and a DynamoDB item holds at most 400 KB.
pub const MAX_STORED_TEXT: usize = 2048;

/// What [`crate::ledger::Ledger::record_children`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Children counted for the first time, in seq order.
    pub newly_counted: Vec<u64>,
    /// Children that were `FAILED` and are now `SUCCEEDED` (`failed - 1`, `succeeded + 1`).
    pub moved_to_succeeded: Vec<u64>,
    /// Children already recorded (or given twice in the call): nothing changed for them.
    pub duplicates: Vec<u64>,
    /// After these writes, read back consistently: the split is sealed and
    /// `done == total`. The caller then tries [`crate::ledger::Ledger::try_claim_reduce`];
    /// the conditional claim decides who sends the reduce.
    pub complete: bool,
    /// The run as read back.
    pub run: RunRecord,
}

/// A child record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRecord {
    pub seq: u64,
    pub item: String,
    pub state: ChildState,
    pub attempts: u32,
    pub result: Option<ChildResult>,
    pub reason: Option<String>,
    pub finished_at: DateTime<Utc>,
    pub expires_at: i64,
}

/// `text` cut to at most [`MAX_STORED_TEXT`] bytes, on a character boundary.
pub(crate) fn cut(text: &str) -> &str {
    if text.len() <= MAX_STORED_TEXT {
        return text;
    }
    let mut end = MAX_STORED_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn run() -> RunRecord {
        RunRecord {
            microprocess: "credit-scores".into(),
            run: RunId::parse("2026-11-01T02-00-00Z").unwrap(),
            state: RunState::Splitting,
            started_at: Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 3).unwrap(),
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
            counter_shards: 4,
            partitions: 3,
            retention_days: 90,
            expires_at: 1_800_000_000,
            split_lease: Some("a1b2".into()),
            split_lease_until: Some(1_790_000_000),
        }
    }

    #[test]
    fn a_new_run_round_trips_through_its_item() {
        let record = run();
        let item = record.to_item();
        assert_eq!(RunRecord::from_item(&item), Ok(record.clone()));
        let text = |name: &str| match item.get(name) {
            Some(aws_sdk_dynamodb::types::AttributeValue::S(v)) => v.clone(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(text("pk"), "RUN#credit-scores#2026-11-01T02-00-00Z");
        assert_eq!(text("sk"), "RUN");
        assert_eq!(text("state_pk"), "credit-scores#SPLITTING");
        assert_eq!(
            text("state_sk"),
            "2026-11-01T02:00:03Z#2026-11-01T02-00-00Z"
        );
        assert!(!item.contains_key("total"), "total is set only when sealed");
        assert!(!item.contains_key("cursor"));
    }

    #[test]
    fn a_bad_run_item_names_its_key_and_attribute() {
        let mut item = run().to_item();
        item.insert("state".into(), s("DONE"));
        let (key, why) = RunRecord::from_item(&item).unwrap_err();
        assert_eq!(key, "RUN#credit-scores#2026-11-01T02-00-00Z/RUN");
        assert!(why.starts_with("unknown run state `DONE`"), "{why}");
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_STORED_TEXT);
        let cut = cut(&long);
        assert!(cut.len() <= MAX_STORED_TEXT);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(super::cut("short"), "short");
    }

    #[test]
    fn completion_needs_the_seal() {
        let mut record = run();
        record.total = Some(0);
        assert!(!record.all_children_done());
        record.split_done = true;
        assert!(record.all_children_done());
        record.total = Some(2);
        record.done = 1;
        assert!(!record.all_children_done());
    }
}
