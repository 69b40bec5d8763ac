//! The service's bookkeeping, for tests and the demo: every split, process and reduce
//! call it saw, per microprocess and run, and the rejected requests.
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
}

/// One run of one microprocess.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunStats {
    pub split_calls: u64,
    /// Every process call, replays and failures included.
    pub process_calls: u64,
    /// Distinct seqs answered 2xx: each counted once however often it was delivered.
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
    /// Answered 2xx at least once: the seq is done, and later calls are replays.
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
