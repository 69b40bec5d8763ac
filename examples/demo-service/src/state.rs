//! State shared by every request: config, current chaos, bookkeeping and the idempotency
//! record. One mutex guards it all; nothing holds it across an `await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::chaos::Chaos;
use crate::config::Config;
use crate::stats::{CallRecord, RunStats, Stats};

pub(crate) struct Shared {
    pub config: Config,
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
        self.lock().stats.clone()
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
            if (200..300).contains(&status) && !child.succeeded {
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
