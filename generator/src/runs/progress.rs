//! A run's progress as the ledger shows it: counts, children in flight, rate and ETA, and
//! how `status`, `runs show` and `start --wait` print it (tables and progress bars).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use microprocess_shared::ledger::RunRecord;
use microprocess_shared::ledger_keys::RunState;

/// One run with what is derived from its record.
#[derive(Debug, Clone)]
pub struct RunProgress {
    pub microprocess: String,
    pub record: RunRecord,
    /// Children queued but not yet terminal.
    pub in_flight: u64,
    /// Callback completion: children accepted (`202`) and awaiting their report, of the
    /// ones in flight.
    pub in_progress: Option<u64>,
    /// Children finished per second: measured between two looks when watching, else the
    /// average since the run started.
    pub rate: Option<f64>,
    /// Time left at `rate`, once the split is sealed.
    pub eta: Option<Duration>,
}

impl RunProgress {
    pub fn new(
        microprocess: &str,
        record: RunRecord,
        now: DateTime<Utc>,
        measured_rate: Option<f64>,
    ) -> Self {
        let in_flight = record.enqueued.saturating_sub(record.done);
        let end = record.finished_at.unwrap_or(now);
        let elapsed = (end - record.started_at).num_milliseconds().max(1) as f64 / 1000.0;
        let average = (record.done > 0).then(|| record.done as f64 / elapsed);
        let rate = if record.state.is_terminal() {
            average
        } else {
            measured_rate.or(average)
        };
        let eta = match (record.state, record.total, rate) {
            // `try_`: a rate near zero gives no ETA rather than an overflow.
            (RunState::Processing, Some(total), Some(r)) if r > 0.0 => {
                Duration::try_from_secs_f64(total.saturating_sub(record.done) as f64 / r).ok()
            }
            _ => None,
        };
        RunProgress {
            microprocess: microprocess.to_string(),
            record,
            in_flight,
            in_progress: None,
            rate,
            eta,
        }
    }

    /// With the children in progress under a lease (callback completion).
    pub fn with_in_progress(mut self, in_progress: u64) -> Self {
        self.in_progress = Some(in_progress);
        self
    }

    fn in_flight_text(&self) -> String {
        match self.in_progress {
            Some(n) => format!("{} ({n} in progress)", self.in_flight),
            None => self.in_flight.to_string(),
        }
    }

    /// The total, or the children queued so far followed by `+` while the split runs.
    pub fn total_text(&self) -> String {
        match self.record.total {
            Some(t) => t.to_string(),
            None => format!("{}+", self.record.enqueued),
        }
    }

    fn cells(&self) -> [String; 10] {
        let r = &self.record;
        [
            self.microprocess.clone(),
            r.run.to_string(),
            r.state.to_string(),
            self.total_text(),
            r.succeeded.to_string(),
            r.failed.to_string(),
            if r.state.is_terminal() {
                "-".into()
            } else {
                self.in_flight_text()
            },
            self.rate
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "-".into()),
            self.eta.map(duration_text).unwrap_or_else(|| "-".into()),
            r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        ]
    }

    /// The one-line summary `start --wait` and `redrive --wait` end with.
    pub fn summary(&self) -> String {
        let r = &self.record;
        let took = r
            .finished_at
            .map(|f| format!(" in {}", duration_text(to_std(f - r.started_at))))
            .unwrap_or_default();
        let rate = self
            .rate
            .map(|v| format!(", {v:.1} children/s"))
            .unwrap_or_default();
        let reason = r
            .reason
            .as_deref()
            .map(|why| format!("\n  reason: {why}"))
            .unwrap_or_default();
        format!(
            "run `{}` of `{}`: {}{took}: {} children, {} succeeded, {} failed{rate}{reason}",
            r.run,
            self.microprocess,
            r.state,
            self.total_text(),
            r.succeeded,
            r.failed
        )
    }

    /// Every field, one per line, for `runs show`.
    pub fn details(&self) -> String {
        let r = &self.record;
        let mut out = String::new();
        let time = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(out, "run           {}", r.run);
        let _ = writeln!(out, "microprocess  {}", self.microprocess);
        let _ = writeln!(out, "state         {}", r.state);
        if let Some(reason) = &r.reason {
            let _ = writeln!(out, "reason        {reason}");
        }
        let _ = writeln!(out, "started       {}", time(Some(r.started_at)));
        let _ = writeln!(out, "split done    {}", time(r.split_done_at));
        let _ = writeln!(out, "finished      {}", time(r.finished_at));
        let _ = writeln!(
            out,
            "split         {} pages, {} children queued{}",
            r.pages,
            r.enqueued,
            split_note(r)
        );
        let _ = writeln!(out, "total         {}", self.total_text());
        let _ = writeln!(out, "succeeded     {}", r.succeeded);
        let _ = writeln!(out, "failed        {}", r.failed);
        if !r.state.is_terminal() {
            let _ = writeln!(out, "in flight     {}", self.in_flight);
            if let Some(n) = self.in_progress {
                let _ = writeln!(
                    out,
                    "in progress   {n} accepted, awaiting their report (callback completion)"
                );
            }
        }
        if let Some(rate) = self.rate {
            let _ = writeln!(out, "rate          {rate:.1} children/s");
        }
        if let Some(eta) = self.eta {
            let _ = writeln!(out, "eta           {}", duration_text(eta));
        }
        let _ = writeln!(out, "counter shards {}", r.counter_shards);
        let keys = r.child_partition_keys();
        match keys.as_slice() {
            [only] => {
                let _ = writeln!(out, "results key   {only}");
            }
            [first, .., last] => {
                let _ = writeln!(out, "results keys  {first} to {last} ({} keys)", keys.len());
            }
            [] => {}
        }
        if !r.state.is_terminal() {
            // The run's counters move when a block of 100 children is complete.
            let _ = writeln!(out, "counted       by blocks of 100 children");
        }
        out
    }
}

const HEADER: [&str; 10] = [
    "MICROPROCESS",
    "RUN",
    "STATE",
    "TOTAL",
    "SUCCEEDED",
    "FAILED",
    "IN FLIGHT",
    "RATE/S",
    "ETA",
    "STARTED (UTC)",
];

/// The runs as an aligned table, header first.
pub fn table(runs: &[RunProgress]) -> String {
    let rows: Vec<[String; 10]> = std::iter::once(HEADER.map(String::from))
        .chain(runs.iter().map(RunProgress::cells))
        .collect();
    let mut widths = [0usize; 10];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// `1h02m`, `3m05s`, `42s`.
pub fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn to_std(d: chrono::TimeDelta) -> Duration {
    d.to_std().unwrap_or_default()
}

/// Children per second between consecutive looks at each run, smoothed so one slow poll
/// does not swing the ETA.
#[derive(Debug, Default)]
pub struct RateMeter {
    last: HashMap<String, (u64, std::time::Instant, Option<f64>)>,
}

impl RateMeter {
    /// Records `done` for `key` now; the smoothed rate once there are two looks.
    pub fn observe(&mut self, key: &str, done: u64, at: std::time::Instant) -> Option<f64> {
        let (rate, entry) = match self.last.get(key) {
            Some(&(before, then, smoothed)) => {
                let secs = at.duration_since(then).as_secs_f64();
                if secs < 0.2 {
                    return smoothed;
                }
                let now_rate = done.saturating_sub(before) as f64 / secs;
                let rate = match smoothed {
                    Some(old) => 0.4 * now_rate + 0.6 * old,
                    None => now_rate,
                };
                (Some(rate), (done, at, Some(rate)))
            }
            None => (None, (done, at, None)),
        };
        self.last.insert(key.to_string(), entry);
        rate
    }
}

/// Progress bars, one per run, for a terminal; drawn nowhere otherwise.
pub struct RunBars {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
}

impl RunBars {
    pub fn new(terminal: bool) -> RunBars {
        let target = if terminal {
            ProgressDrawTarget::stderr_with_hz(4)
        } else {
            ProgressDrawTarget::hidden()
        };
        RunBars {
            multi: MultiProgress::with_draw_target(target),
            bars: HashMap::new(),
        }
    }

    /// Draws `run` (adding its bar the first time).
    pub fn show(&mut self, run: &RunProgress) {
        let key = format!("{}/{}", run.microprocess, run.record.run);
        let bar = self.bars.entry(key.clone()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(key);
            bar
        });
        let r = &run.record;
        bar.set_length(r.total.unwrap_or(r.enqueued).max(r.done));
        bar.set_position(r.done);
        let mut msg = format!("{} · {} failed", r.state, r.failed);
        if let Some(rate) = run.rate {
            let _ = write!(msg, " · {rate:.0}/s");
        }
        if let Some(eta) = run.eta {
            let _ = write!(msg, " · ETA {}", duration_text(eta));
        }
        bar.set_message(msg);
        if r.state.is_terminal() && !bar.is_finished() {
            bar.finish();
        }
    }

    /// Prints a line above the bars (or plainly without a terminal).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    pub fn clear(&self) {
        let _ = self.multi.clear();
    }
}

/// A run as `--output json` reports it (`docs/json-output.md`, "run").
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub microprocess: String,
    pub run: String,
    /// `SPLITTING`, `PROCESSING`, `REDUCING`, `COMPLETED`, `SPLIT_FAILED`,
    /// `REDUCE_FAILED`, `CANCELLED`.
    pub state: String,
    pub reason: Option<String>,
    pub started_at: String,
    pub split_done_at: Option<String>,
    pub finished_at: Option<String>,
    pub pages: u64,
    pub split_done: bool,
    /// Null until the split is sealed.
    pub total: Option<u64>,
    pub enqueued: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub in_flight: u64,
    /// Callback completion: accepted and awaiting a report; null otherwise.
    pub in_progress: Option<u64>,
    pub rate_per_second: Option<f64>,
    pub eta_seconds: Option<u64>,
}

impl RunProgress {
    pub fn report(&self) -> RunReport {
        let r = &self.record;
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        RunReport {
            microprocess: self.microprocess.clone(),
            run: r.run.to_string(),
            state: r.state.to_string(),
            reason: r.reason.clone(),
            started_at: time(r.started_at),
            split_done_at: r.split_done_at.map(time),
            finished_at: r.finished_at.map(time),
            pages: r.pages,
            split_done: r.split_done,
            total: r.total,
            enqueued: r.enqueued,
            succeeded: r.succeeded,
            failed: r.failed,
            in_flight: if r.state.is_terminal() {
                0
            } else {
                self.in_flight
            },
            in_progress: self.in_progress,
            rate_per_second: self.rate.map(|x| (x * 10.0).round() / 10.0),
            eta_seconds: self.eta.map(|d| d.as_secs()),
        }
    }
}

/// How the split stands: a run that ended before its split did is not "still splitting".
fn split_note(r: &microprocess_shared::ledger::RunRecord) -> &'static str {
    use microprocess_shared::ledger_keys::RunState;
    match (r.split_done, r.state) {
        (true, _) => ", sealed",
        (false, RunState::SplitFailed) => ", the split failed (see reason)",
        (false, state) if state.is_terminal() => ", the split stopped when the run ended",
        (false, _) => ", still splitting",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use microprocess_shared::run_id::RunId;

    fn record(state: RunState, total: Option<u64>, done: u64, enqueued: u64) -> RunRecord {
        let started = Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 0).unwrap();
        RunRecord {
            microprocess: "credit-scores".into(),
            run: RunId::parse("r1").unwrap(),
            state,
            started_at: started,
            split_done_at: None,
            finished_at: None,
            cursor: None,
            enqueued,
            pages: 1,
            split_done: total.is_some(),
            total,
            succeeded: done,
            failed: 0,
            done,
            reason: None,
            reduce_claimed_at: None,
            reduce_queued_at: None,
            counter_shards: 1,
            partitions: 1,
            retention_days: 30,
            expires_at: 0,
            split_lease: None,
            split_lease_until: None,
        }
    }

    #[test]
    fn a_run_that_ended_before_its_split_is_not_still_splitting() {
        assert_eq!(
            split_note(&record(RunState::Splitting, None, 0, 5)),
            ", still splitting"
        );
        assert_eq!(
            split_note(&record(RunState::SplitFailed, None, 0, 5)),
            ", the split failed (see reason)"
        );
        assert_eq!(
            split_note(&record(RunState::Cancelled, None, 0, 5)),
            ", the split stopped when the run ended"
        );
        assert_eq!(
            split_note(&record(RunState::Processing, Some(5), 0, 5)),
            ", sealed"
        );
    }

    #[test]
    fn rate_and_eta_come_from_the_counts() {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 10).unwrap();
        let p = RunProgress::new(
            "credit-scores",
            record(RunState::Processing, Some(1000), 500, 700),
            now,
            None,
        );
        assert_eq!(p.in_flight, 200);
        assert_eq!(p.rate, Some(50.0));
        assert_eq!(p.eta, Some(Duration::from_secs(10)));
        let measured = RunProgress::new(
            "credit-scores",
            record(RunState::Processing, Some(1000), 500, 700),
            now,
            Some(100.0),
        );
        assert_eq!(measured.eta, Some(Duration::from_secs(5)));
    }

    #[test]
    fn a_rate_near_zero_gives_no_eta() {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 10).unwrap();
        let r = record(RunState::Processing, Some(1000), 1, 700);
        assert_eq!(
            RunProgress::new("m", r.clone(), now, Some(1e-300)).eta,
            None
        );
        assert_eq!(
            RunProgress::new("m", r, now, Some(f64::MIN_POSITIVE)).eta,
            None
        );
    }

    #[test]
    fn a_splitting_run_shows_what_is_queued_so_far() {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 10).unwrap();
        let p = RunProgress::new(
            "credit-scores",
            record(RunState::Splitting, None, 0, 300),
            now,
            None,
        );
        assert_eq!(p.total_text(), "300+");
        assert_eq!(p.eta, None);
        let t = table(&[p]);
        assert!(t.starts_with("MICROPROCESS   RUN  STATE"), "{t}");
        assert!(t.contains("SPLITTING  300+"), "{t}");
    }

    #[test]
    fn children_in_progress_under_a_lease_show_in_flight() {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 10).unwrap();
        let p = RunProgress::new(
            "annual-report",
            record(RunState::Processing, Some(12), 0, 12),
            now,
            None,
        )
        .with_in_progress(10);
        let t = table(std::slice::from_ref(&p));
        assert!(t.contains("12 (10 in progress)"), "{t}");
        assert!(
            p.details()
                .contains("in progress   10 accepted, awaiting their report"),
            "{}",
            p.details()
        );
    }

    #[test]
    fn the_rate_meter_smooths_between_looks() {
        let mut m = RateMeter::default();
        let t0 = std::time::Instant::now();
        assert_eq!(m.observe("a", 0, t0), None);
        assert_eq!(
            m.observe("a", 100, t0 + Duration::from_secs(1)),
            Some(100.0)
        );
        let r = m.observe("a", 100, t0 + Duration::from_secs(2)).unwrap();
        assert!((r - 60.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration_text(Duration::from_secs(42)), "42s");
        assert_eq!(duration_text(Duration::from_secs(185)), "3m05s");
        assert_eq!(duration_text(Duration::from_secs(3720)), "1h02m");
    }
}
