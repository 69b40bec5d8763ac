//! State shared by every request: config, current chaos, bookkeeping and the idempotency
//! record. One mutex guards it all; nothing holds it across an `await`. The long tasks
//! keep their own registry ([`LongTasks`]), and the reports their HTTP client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use microprocess_shared::contract::ReportOutcome;

use crate::callback::Reporter;
use crate::chaos::Chaos;
use crate::config::Config;
use crate::long_task::LongTasks;
use crate::stats::{CallRecord, RunStats, Stats};

pub(crate) struct Shared {
    pub config: Config,
    pub long_tasks: LongTasks,
    pub reporter: Reporter,
    inner: Mutex<Inner>,
}

struct Inner {
    chaos: Arc<Chaos>,
    stats: Stats,
    /// When the service first saw each (microprocess, run).
    run_started: HashMap<(String, String), Instant>,
    /// (microprocess, `Idempotency-Key`) → the 2xx answer given.
    answers: HashMap<(String, String), Answer>,
}

/// A 2xx answer kept for replays of its `Idempotency-Key`.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Shared {
    pub fn new(config: Config) -> Shared {
        let chaos = Arc::new(config.chaos.clone());
        Shared {
            config,
            long_tasks: LongTasks::new(),
            reporter: Reporter::default(),
            inner: Mutex::new(Inner {
                chaos,
                stats: Stats::default(),
                run_started: HashMap::new(),
                answers: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere leaves the bookkeeping readable; the demo keeps serving.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn stats(&self) -> Stats {
        let mut stats = self.lock().stats.clone();
        stats.long_tasks_running = self.long_tasks.running();
        stats
    }

    /// Counts a `202 Accepted`.
    pub fn count_accepted(&self) {
        self.lock().stats.accepted += 1;
    }

    /// Counts a report about to be sent to a callback.
    pub fn count_report(&self, outcome: ReportOutcome) {
        let mut inner = self.lock();
        let counts = &mut inner.stats.reports_sent;
        match outcome {
            ReportOutcome::Succeeded => counts.succeeded += 1,
            ReportOutcome::Failed => counts.failed += 1,
            ReportOutcome::Heartbeat => counts.heartbeat += 1,
        }
    }

    /// Counts the answer to one try of a report: its status, or `None` for no answer.
    pub fn count_report_answer(&self, status: Option<u16>) {
        let mut inner = self.lock();
        match status {
            Some(status) => *inner.stats.report_statuses.entry(status).or_default() += 1,
            None => inner.stats.report_errors += 1,
        }
    }

    /// The highest attempt of `seq` that has arrived (0: none).
    pub fn latest_attempt(&self, microprocess: &str, run: &str, seq: u64) -> u32 {
        let inner = self.lock();
        inner
            .stats
            .run(microprocess, run)
            .and_then(|run| run.child(seq))
            .and_then(|child| child.attempts.iter().max().copied())
            .unwrap_or(0)
    }

    /// Records that a long task of `seq` reported `succeeded`: the seq is done.
    pub fn long_task_succeeded(&self, microprocess: &str, run: &str, seq: u64, score: u16) {
        self.with_run(microprocess, run, |run| {
            let child = run.children.entry(seq).or_default();
            if !child.succeeded {
                child.succeeded = true;
                child.score = Some(score);
                run.succeeded += 1;
            }
        });
    }

    pub fn chaos(&self) -> Arc<Chaos> {
        self.lock().chaos.clone()
    }

    pub fn set_chaos(&self, chaos: Chaos) {
        self.lock().chaos = Arc::new(chaos);
    }

    pub fn fixed(&self) -> bool {
        self.lock().stats.fixed
    }

    pub fn set_fixed(&self, fixed: bool) {
        self.lock().stats.fixed = fixed;
    }

    pub fn reject(&self, code: &str) {
        *self
            .lock()
            .stats
            .rejections
            .entry(code.to_owned())
            .or_default() += 1;
    }

    /// Time since the service first saw the run; the first call starts the clock.
    pub fn run_age(&self, microprocess: &str, run: &str) -> Duration {
        let mut inner = self.lock();
        let started = *inner
            .run_started
            .entry((microprocess.to_owned(), run.to_owned()))
            .or_insert_with(Instant::now);
        started.elapsed()
    }

    /// Applies `change` to the run's stats, creating them on first use.
    pub fn with_run<T>(
        &self,
        microprocess: &str,
        run: &str,
        change: impl FnOnce(&mut RunStats) -> T,
    ) -> T {
        let mut inner = self.lock();
        let run_stats = inner
            .stats
            .microprocesses
            .entry(microprocess.to_owned())
            .or_default()
            .entry(run.to_owned())
            .or_default();
        change(run_stats)
    }

    pub fn answer(&self, microprocess: &str, key: &str) -> Option<Answer> {
        self.lock()
            .answers
            .get(&(microprocess.to_owned(), key.to_owned()))
            .cloned()
    }

    /// Keeps `answer` for `key` unless one is kept already, and returns the kept one, so
    /// two concurrent first calls of one key still answer alike.
    pub fn keep_answer(&self, microprocess: &str, key: &str, answer: Answer) -> Answer {
        self.lock()
            .answers
            .entry((microprocess.to_owned(), key.to_owned()))
            .or_insert(answer)
            .clone()
    }

    /// Records the arrival of a process call and counts it in flight until the returned
    /// guard is finished or dropped.
    pub fn begin_process(
        self: &Arc<Shared>,
        microprocess: &str,
        run: &str,
        seq: u64,
        item: &str,
        attempt: u32,
    ) -> ProcessCall {
        let at_ms = self.run_age(microprocess, run).as_millis() as u64;
        let mut inner = self.lock();
        let Inner { stats, .. } = &mut *inner;
        stats.in_flight += 1;
        stats.max_in_flight = stats.max_in_flight.max(stats.in_flight);
        let run_stats = stats
            .microprocesses
            .entry(microprocess.to_owned())
            .or_default()
            .entry(run.to_owned())
            .or_default();
        run_stats.process_calls += 1;
        run_stats.in_flight += 1;
        run_stats.max_in_flight = run_stats.max_in_flight.max(run_stats.in_flight);
        let child = run_stats.children.entry(seq).or_default();
        if child.item.is_empty() {
            child.item = item.to_owned();
        }
        child.calls += 1;
        child.attempts.push(attempt);
        child.history.push(CallRecord {
            attempt,
            at_ms,
            status: None,
            replay: false,
        });
        ProcessCall {
            shared: self.clone(),
            microprocess: microprocess.to_owned(),
            run: run.to_owned(),
            seq,
            index: child.history.len() - 1,
        }
    }
}

/// A process call in flight; dropping it without [`ProcessCall::finish`] records a call
/// the caller gave up on.
pub(crate) struct ProcessCall {
    shared: Arc<Shared>,
    microprocess: String,
    run: String,
    seq: u64,
    index: usize,
}

impl ProcessCall {
    /// Time since this seq's first call.
    pub fn since_first_call(&self) -> Duration {
        let first_ms = self
            .shared
            .with_run(&self.microprocess, &self.run, |run| {
                run.children
                    .get(&self.seq)
                    .and_then(|child| child.history.first())
                    .map(|call| call.at_ms)
            })
            .unwrap_or(0);
        let now_ms = self
            .shared
            .run_age(&self.microprocess, &self.run)
            .as_millis() as u64;
        Duration::from_millis(now_ms.saturating_sub(first_ms))
    }

    /// Records the answer: its status, whether it was a replay, and the score of a 2xx.
    pub fn finish(self, status: u16, replay: bool, score: Option<u16>) {
        self.record(status, replay, (200..300).contains(&status), score);
    }

    /// Records a `202 Accepted`: answered, but not done until its long task reports.
    pub fn accepted(self) {
        self.record(202, false, false, None);
    }

    fn record(&self, status: u16, replay: bool, done: bool, score: Option<u16>) {
        self.shared.with_run(&self.microprocess, &self.run, |run| {
            let Some(child) = run.children.get_mut(&self.seq) else {
                return;
            };
            if let Some(call) = child.history.get_mut(self.index) {
                call.status = Some(status);
                call.replay = replay;
            }
            child.last_status = Some(status);
            if replay {
                child.replays += 1;
            }
            if done && !child.succeeded {
                child.succeeded = true;
                child.score = score;
                run.succeeded += 1;
            }
        });
    }
}

impl Drop for ProcessCall {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.stats.in_flight = inner.stats.in_flight.saturating_sub(1);
        if let Some(run) = inner
            .stats
            .microprocesses
            .get_mut(&self.microprocess)
            .and_then(|runs| runs.get_mut(&self.run))
        {
            run.in_flight = run.in_flight.saturating_sub(1);
        }
    }
}
