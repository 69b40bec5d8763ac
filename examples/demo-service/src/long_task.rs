//! Long tasks (contract 1.1, section 2b: accept now, report later).
//!
//! A process call that carries a callback (`X-Microprocess-Callback`, or `"callback"` in
//! the body; when both are there they must agree) goes through every check, the
//! idempotency record and every chaos knob that fails a call, and is then answered
//! `202 Accepted` and worked on here, in the background. The task works for
//! [`crate::Config::long_task`], sends a `heartbeat` report every
//! [`crate::Config::heartbeat`] meanwhile, then reports `succeeded` with its result: the
//! score a process call answers, plus `"report": "annual report of <item>"` and
//! `"attempt"` (and `--large-result-seqs`' detail). Reports go out through
//! [`crate::callback`].
//!
//! - When the task reports `succeeded`, its result is kept for the `Idempotency-Key` as a
//!   200 is, so a later call of the seq is a replay (200, done now). A `202` is not kept: a
//!   call for an attempt whose task is still running is answered `202` again and starts
//!   nothing, and a call for another attempt starts a task of its own.
//! - The `*_report_seqs` chaos knobs spoil the reports ([`Plan`]). A lost attempt wins
//!   over a late one.
//! - Tasks end with [`crate::RunningService::shutdown`] or the drop of the running
//!   service: they are aborted, their reports unsent, and a process call with a callback
//!   that arrives meanwhile is answered 503 (`shutting_down`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use microprocess_shared::contract::{
    CallbackReport, ProcessRequest, ReportOutcome, CONTENT_TYPE_JSON,
};
use microprocess_shared::run_id::RunId;
use reqwest::Url;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

use crate::callback::{self, Signing};
use crate::chaos::Chaos;
use crate::score::Score;
use crate::state::{Answer, Shared};

/// The reason of the `failed` report that `--duplicate-report-seqs` sends last.
pub const CHANGED_MY_MIND: &str = "changed my mind";

/// The long tasks of one service: which are running, and whether new ones may start.
pub(crate) struct LongTasks {
    registry: Mutex<Registry>,
    /// Bumped when a process call arrives and when a task ends, so that a task waiting
    /// on either looks again.
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct Registry {
    /// Shut down: no task starts.
    closed: bool,
    next_id: u64,
    running: HashMap<TaskKey, Entry>,
}

struct Entry {
    id: u64,
    /// Holds attempt 1's late report (`--late-report-seqs`).
    late: bool,
    /// `None` for the moment between the registration and the spawn.
    handle: Option<JoinHandle<()>>,
}

/// One attempt of one child.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TaskKey {
    microprocess: String,
    run: String,
    seq: u64,
    attempt: u32,
}

/// What [`accept`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// A task started for the attempt.
    Started,
    /// A task for the attempt was running already; nothing started.
    AlreadyRunning,
    /// The service is shutting down; nothing started.
    Closed,
}

impl LongTasks {
    pub fn new() -> LongTasks {
        LongTasks {
            registry: Mutex::default(),
            changes: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tasks not yet ended.
    pub fn running(&self) -> u64 {
        self.lock().running.len() as u64
    }

    /// A process call arrived: a task holding a late report may go on.
    pub fn arrived(&self) {
        self.changed();
    }

    fn changed(&self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Lets tasks start (again, after [`LongTasks::close`]).
    pub fn open(&self) {
        self.lock().closed = false;
    }

    /// Aborts every task and starts none until [`LongTasks::open`]; returns the aborted
    /// tasks, to wait for their end.
    pub fn close(&self) -> Vec<JoinHandle<()>> {
        let mut registry = self.lock();
        registry.closed = true;
        let handles: Vec<JoinHandle<()>> = registry
            .running
            .drain()
            .filter_map(|(_, entry)| entry.handle)
            .collect();
        drop(registry);
        for handle in &handles {
            handle.abort();
        }
        handles
    }

    fn ended(&self, key: &TaskKey, id: u64) {
        let mut registry = self.lock();
        if registry
            .running
            .get(key)
            .is_some_and(|entry| entry.id == id)
        {
            registry.running.remove(key);
        }
        drop(registry);
        self.changed();
    }

    /// Whether an earlier attempt of `key`'s child is still holding a late report.
    fn late_report_before(&self, key: &TaskKey) -> bool {
        self.lock().running.iter().any(|(other, entry)| {
            entry.late
                && other.attempt < key.attempt
                && other.seq == key.seq
                && other.run == key.run
                && other.microprocess == key.microprocess
        })
    }
}

/// How the chaos spoils one task's reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Plan {
    /// `--lost-report-seqs`, attempt 1: no report at all, and the work is lost.
    lost: bool,
    /// `--late-report-seqs`, attempt 1: no heartbeat, and the `succeeded` report waits
    /// for a later attempt's process call.
    late: bool,
    /// `--duplicate-report-seqs`: `succeeded` twice, then `failed`.
    duplicate: bool,
    /// `--bad-signature-report-seqs`: the first final report is signed with a wrong key.
    bad_signature: bool,
}

impl Plan {
    fn of(chaos: &Chaos, seq: u64, attempt: u32) -> Plan {
        let lost = chaos.lost_report(seq, attempt);
        Plan {
            lost,
            late: !lost && chaos.late_report(seq, attempt),
            duplicate: chaos.duplicate_report(seq),
            bad_signature: chaos.bad_signature_report(seq),
        }
    }
}

/// One accepted attempt to work on.
pub(crate) struct Task {
    microprocess: String,
    run: RunId,
    seq: u64,
    attempt: u32,
    item: String,
    idempotency_key: String,
    callback: Url,
    large_result: Option<usize>,
    plan: Plan,
}

impl Task {
    pub fn new(
        chaos: &Chaos,
        microprocess: &str,
        run: &RunId,
        request: &ProcessRequest,
        idempotency_key: &str,
        callback: Url,
    ) -> Task {
        Task {
            microprocess: microprocess.to_owned(),
            run: run.clone(),
            seq: request.seq,
            attempt: request.attempt,
            item: request.item.clone(),
            idempotency_key: idempotency_key.to_owned(),
            callback,
            large_result: chaos.large_result(request.seq),
            plan: Plan::of(chaos, request.seq, request.attempt),
        }
    }

    fn key(&self) -> TaskKey {
        TaskKey {
            microprocess: self.microprocess.clone(),
            run: self.run.as_str().to_owned(),
            seq: self.seq,
            attempt: self.attempt,
        }
    }

    fn report(&self, outcome: ReportOutcome) -> CallbackReport {
        CallbackReport {
            run: self.run.clone(),
            seq: self.seq,
            attempt: self.attempt,
            outcome,
            result: None,
            reason: None,
        }
    }

    /// The score a process call answers, with the report and the attempt that made it.
    fn result(&self) -> Value {
        let mut result = serde_json::to_value(Score::of(&self.item)).unwrap_or_default();
        if let Some(object) = result.as_object_mut() {
            object.insert(
                "report".into(),
                format!("annual report of {}", self.item).into(),
            );
            object.insert("attempt".into(), self.attempt.into());
            if let Some(bytes) = self.large_result {
                object.insert("detail".into(), "x".repeat(bytes).into());
            }
        }
        result
    }

    async fn send(&self, shared: &Shared, report: &CallbackReport, signing: Signing) {
        callback::send(shared, &self.microprocess, &self.callback, report, signing).await;
    }
}

/// Starts a task for `task`'s attempt unless one is running or the service shuts down.
pub(crate) fn accept(shared: &Arc<Shared>, task: Task) -> Accepted {
    let key = task.key();
    let id = {
        let mut registry = shared.long_tasks.lock();
        if registry.closed {
            return Accepted::Closed;
        }
        if registry.running.contains_key(&key) {
            return Accepted::AlreadyRunning;
        }
        let id = registry.next_id;
        registry.next_id += 1;
        let late = task.plan.late;
        registry.running.insert(
            key.clone(),
            Entry {
                id,
                late,
                handle: None,
            },
        );
        id
    };
    // Spawned without the lock: a task dropped at once (a runtime shutting down) takes it
    // to record its end.
    let ended = Ended {
        shared: shared.clone(),
        key: key.clone(),
        id,
    };
    let handle = tokio::spawn(async move {
        run(&ended.shared, task).await;
        drop(ended);
    });
    let mut registry = shared.long_tasks.lock();
    match registry.running.get_mut(&key) {
        Some(entry) if entry.id == id => entry.handle = Some(handle),
        // Ended already (then this does nothing), or aborted by a shutdown meanwhile.
        _ => handle.abort(),
    }
    Accepted::Started
}

/// Records the end of a task, however it ends (aborted included).
struct Ended {
    shared: Arc<Shared>,
    key: TaskKey,
    id: u64,
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.shared.long_tasks.ended(&self.key, self.id);
    }
}

async fn run(shared: &Shared, task: Task) {
    let started = Instant::now();
    let deadline = started + shared.config.long_task;
    let (name, run, seq, attempt) = (&task.microprocess, &task.run, task.seq, task.attempt);
    if task.plan.lost {
        tracing::info!(microprocess = %name, %run, seq, attempt, "long task: attempt 1 is lost on purpose (--lost-report-seqs); no report");
        sleep_until(deadline).await;
        return;
    }
    if task.plan.late {
        sleep_until(deadline).await;
        tracing::info!(microprocess = %name, %run, seq, attempt, "long task: holding the report until a later attempt arrives (--late-report-seqs)");
        wait_for_later_attempt(shared, &task).await;
    } else {
        work(shared, &task, started, deadline).await;
        wait_for_late_reports_before(shared, &task).await;
    }

    let result = task.result();
    let answer = Answer {
        status: 200,
        content_type: CONTENT_TYPE_JSON,
        body: serde_json::to_vec(&result).unwrap_or_default(),
    };
    shared.keep_answer(name, &task.idempotency_key, answer);
    shared.long_task_succeeded(name, run.as_str(), seq, Score::of(&task.item).score);

    let succeeded = CallbackReport {
        result: Some(result),
        ..task.report(ReportOutcome::Succeeded)
    };
    if task.plan.bad_signature {
        task.send(shared, &succeeded, Signing::WrongKey).await;
    }
    task.send(shared, &succeeded, Signing::Right).await;
    if task.plan.duplicate {
        task.send(shared, &succeeded, Signing::Right).await;
        let failed = CallbackReport {
            reason: Some(CHANGED_MY_MIND.to_owned()),
            ..task.report(ReportOutcome::Failed)
        };
        task.send(shared, &failed, Signing::Right).await;
    }
    tracing::debug!(microprocess = %name, %run, seq, attempt, "long task reported");
}

/// Works until `deadline`, with a heartbeat every interval from `started` (none at the
/// deadline; a beat missed while a report was being sent is skipped).
async fn work(shared: &Shared, task: &Task, started: Instant, deadline: Instant) {
    let interval = shared.config.heartbeat;
    let mut beats = tokio::time::interval_at(started + interval, interval);
    beats.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let heartbeat = task.report(ReportOutcome::Heartbeat);
    loop {
        tokio::select! {
            biased;
            () = sleep_until(deadline) => return,
            _ = beats.tick() => task.send(shared, &heartbeat, Signing::Right).await,
        }
    }
}

/// Until a process call for a later attempt of the task's seq has arrived.
async fn wait_for_later_attempt(shared: &Shared, task: &Task) {
    let mut changes = shared.long_tasks.changes.subscribe();
    while shared.latest_attempt(&task.microprocess, task.run.as_str(), task.seq) <= task.attempt {
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Until no earlier attempt of the task's seq holds a late report, so that the late one
/// goes out first.
async fn wait_for_late_reports_before(shared: &Shared, task: &Task) {
    let key = task.key();
    let mut changes = shared.long_tasks.changes.subscribe();
    while shared.long_tasks.late_report_before(&key) {
        if changes.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_attempt_is_not_late_too() {
        let seqs: crate::chaos::SeqSelector = "3".parse().unwrap();
        let chaos = Chaos {
            lost_report_seqs: seqs.clone(),
            late_report_seqs: seqs,
            ..Chaos::default()
        };
        let plan = Plan::of(&chaos, 3, 1);
        assert!(plan.lost && !plan.late);
        assert_eq!(Plan::of(&chaos, 3, 2), Plan::default());
        assert_eq!(Plan::of(&chaos, 4, 1), Plan::default());
    }
}
