//! Counters per function, served at `GET /local/status` and read by tests.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::runtime_api::{Failure, InvokeResult, Outcome};

#[derive(Debug, Default)]
pub struct FunctionStats {
    pub invocations: AtomicU64,
    /// Answered with `.../response`.
    pub responses: AtomicU64,
    /// Answered with `.../error`.
    pub function_errors: AtomicU64,
    pub timeouts: AtomicU64,
    /// Processes that ended in the middle of an invocation, or never took it.
    pub crashes: AtomicU64,
    /// Batches whose process a chaos kill ended.
    pub chaos_kills: AtomicU64,
    /// Invocations whose process passed the function's memory size and was killed.
    pub out_of_memory: AtomicU64,
    /// Queue messages deleted after their batch.
    pub messages_deleted: AtomicU64,
    /// Queue messages left to come back (reported failures, failed batches).
    pub messages_kept: AtomicU64,
    /// Asynchronous invocations retried.
    pub async_retries: AtomicU64,
    /// Asynchronous invocations sent to the function's dead-letter queue.
    pub dead_lettered: AtomicU64,
}

impl FunctionStats {
    /// Counts the outcome of an invocation.
    pub fn record(&self, result: &InvokeResult) {
        let counter = match result {
            Ok(Outcome::Response(_)) => &self.responses,
            Ok(Outcome::Error { .. }) => &self.function_errors,
            Err(Failure::TimedOut { .. }) => &self.timeouts,
            Err(Failure::Exited { .. } | Failure::NotStarted { .. }) => &self.crashes,
            Err(Failure::OutOfMemory { .. }) => &self.out_of_memory,
            Err(Failure::Shutdown) => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            invocations: get(&self.invocations),
            responses: get(&self.responses),
            function_errors: get(&self.function_errors),
            timeouts: get(&self.timeouts),
            crashes: get(&self.crashes),
            chaos_kills: get(&self.chaos_kills),
            out_of_memory: get(&self.out_of_memory),
            messages_deleted: get(&self.messages_deleted),
            messages_kept: get(&self.messages_kept),
            async_retries: get(&self.async_retries),
            dead_lettered: get(&self.dead_lettered),
        }
    }
}

/// [`FunctionStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub invocations: u64,
    pub responses: u64,
    pub function_errors: u64,
    pub timeouts: u64,
    pub crashes: u64,
    pub chaos_kills: u64,
    pub out_of_memory: u64,
    pub messages_deleted: u64,
    pub messages_kept: u64,
    pub async_retries: u64,
    pub dead_lettered: u64,
}
