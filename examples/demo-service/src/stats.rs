//! The service's bookkeeping, for tests and the demo: every split, process and reduce
//! call it saw, per microprocess and run, the rejected requests, and the long tasks with
//! the reports they sent to their callbacks.
//!
//! [`crate::DemoService::stats`] returns a snapshot; `GET /_demo/stats` serves the same as
//! JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

/// A snapshot of everything the service has seen since it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Whether `POST /_demo/fix` has cured the 422 seqs.
    pub fixed: bool,
    /// Process calls being answered right now.
    pub in_flight: u64,
    /// The most process calls ever answered at the same time, over all runs.
    pub max_in_flight: u64,
    /// Rejected requests (401, 400, 404) by error code, such as `signature_mismatch`.
    pub rejections: BTreeMap<String, u64>,
    /// Microprocess name → run id → what the run saw.
    pub microprocesses: BTreeMap<String, BTreeMap<String, RunStats>>,
    /// Process calls answered `202 Accepted` (they carried a callback), a call for a long
    /// task already running included.
    pub accepted: u64,
    /// Long tasks not yet done: working, holding a late report, or sending one.
    pub long_tasks_running: u64,
    /// Reports sent to callbacks, by outcome: each report once however many tries it
    /// took (a report first signed with a wrong key and then sent again is two).
    pub reports_sent: ReportCounts,
    /// HTTP status → how many report tries the callback answered with it.
    pub report_statuses: BTreeMap<u16, u64>,
    /// Report tries that got no answer (connection refused or reset, timeout).
    pub report_errors: u64,
}

/// Reports sent, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReportCounts {
    pub succeeded: u64,
    pub failed: u64,
    pub heartbeat: u64,
}

impl Stats {
    /// What `run` of `microprocess` saw, if any request of it got through.
    pub fn run(&self, microprocess: &str, run: &str) -> Option<&RunStats> {
        self.microprocesses.get(microprocess)?.get(run)
    }

    /// How many requests were rejected with `code`.
    pub fn rejected(&self, code: &str) -> u64 {
        self.rejections.get(code).copied().unwrap_or(0)
    }

    /// How many report tries the callback answered with `status`.
    pub fn report_status(&self, status: u16) -> u64 {
        self.report_statuses.get(&status).copied().unwrap_or(0)
    }
}

/// One run of one microprocess.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunStats {
    pub split_calls: u64,
    /// Every process call, replays and failures included.
    pub process_calls: u64,
    /// Distinct seqs done (answered 200, or reported `succeeded` by a long task): each
    /// counted once however often it was delivered.
    pub succeeded: u64,
    pub in_flight: u64,
    pub max_in_flight: u64,
    /// `seq` → its process calls.
    pub children: BTreeMap<u64, ChildStats>,
    pub reduce: ReduceStats,
}

impl RunStats {
    pub fn child(&self, seq: u64) -> Option<&ChildStats> {
        self.children.get(&seq)
    }
}

/// The process calls of one `seq`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChildStats {
    pub item: String,
    /// Calls seen, replays included.
    pub calls: u64,
    /// `X-Microprocess-Attempt` of each call, in arrival order.
    pub attempts: Vec<u32>,
    /// Status of the last call answered; `None` while none has been (or the caller gave
    /// up on it before the answer).
    pub last_status: Option<u16>,
    /// Calls answered from the idempotency record.
    pub replays: u64,
    /// Done: answered 200 at least once, or its long task reported `succeeded` (a `202`
    /// is not done); later calls are replays.
    pub succeeded: bool,
    /// The score returned, when the 2xx carried one (not for a non-JSON body).
    pub score: Option<u16>,
    pub history: Vec<CallRecord>,
}

/// One process call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord {
    pub attempt: u32,
    /// Milliseconds since the service first saw the run.
    pub at_ms: u64,
    /// `None` when the call was never answered (the caller went away first).
    pub status: Option<u16>,
    pub replay: bool,
}

/// The reduce calls of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReduceStats {
    /// Calls seen, failures and replays included.
    pub calls: u64,
    /// Status of each call, in arrival order.
    pub statuses: Vec<Option<u16>>,
    /// The report was written: counted once, however often the reduce is delivered.
    pub completed: bool,
    pub report_path: Option<PathBuf>,
    pub report: Option<Value>,
}

impl ReduceStats {
    pub fn last_status(&self) -> Option<u16> {
        self.statuses.last().copied().flatten()
    }
}
