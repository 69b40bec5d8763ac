//! `microprocess status --env ENV [--watch]`: every active run and the latest finished ones,
//! with counts, children in flight, rate, ETA and each microprocess's dead letters.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;

use microprocess_shared::ledger_keys::RunState;

use super::operate::{self, Session};
use super::{Exit, Output};
use crate::config::Project;
use crate::runs::progress::{self, RateMeter, RunBars, RunProgress};
use crate::runs::redrive;
use crate::runs::RunsError;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub instance: super::InstanceArgs,
    /// Only this microprocess.
    #[arg(long, value_name = "NAME")]
    pub microprocess: Option<String>,
    /// Finished runs to show per microprocess, newest first.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub last: i32,
    /// Keep looking, with a progress bar per run on a terminal, until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    /// With `--watch`: seconds between looks.
    #[arg(long, value_name = "SECONDS", default_value_t = 2)]
    pub interval: u64,
    /// With `--watch`: stop once no run is active.
    #[arg(long)]
    pub until_idle: bool,
}

/// What one look found.
struct Snapshot {
    runs: Vec<RunProgress>,
    dead_letters: Vec<(String, u64)>,
    /// A line per paused or throttled microprocess (`microprocess pause`, `throttle`).
    controls: Vec<String>,
    /// A line per active run that will miss its expected duration.
    late: Vec<String>,
    /// Alarm e-mail subscriptions not confirmed yet (their addresses).
    unconfirmed: Vec<String>,
}

/// `--output json`: one look (`docs/json-output.md`, "status").
#[derive(Debug, serde::Serialize)]
struct Report {
    command: &'static str,
    environment: String,
    at: String,
    runs: Vec<crate::runs::progress::RunReport>,
    /// Microprocess → messages in its dead-letter queue (all runs).
    dead_letters: std::collections::BTreeMap<String, u64>,
    /// A line per paused or throttled microprocess.
    controls: Vec<String>,
    /// A line per active run that will miss its expected duration.
    late: Vec<String>,
    /// Alarm e-mail addresses whose subscription is not confirmed.
    unconfirmed_alarm_subscriptions: Vec<String>,
}

impl Snapshot {
    fn report(&self, env: &str) -> Report {
        Report {
            command: "status",
            environment: env.to_string(),
            at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            runs: self.runs.iter().map(RunProgress::report).collect(),
            dead_letters: self.dead_letters.iter().cloned().collect(),
            controls: self.controls.clone(),
            late: self.late.clone(),
            unconfirmed_alarm_subscriptions: self.unconfirmed.clone(),
        }
    }
}

impl Snapshot {
    fn active(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| !r.record.state.is_terminal())
            .count()
    }

    fn dead_letters_line(&self) -> String {
        let parts: Vec<String> = self
            .dead_letters
            .iter()
            .map(|(m, n)| format!("{m} {n}"))
            .collect();
        format!("dead letters: {}", parts.join(" · "))
    }
}

pub fn run(
    project: &Project,
    args: &StatusArgs,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    operate::in_session(project, &args.instance, err, async |session, _| {
        if args.watch {
            watch(session, args, output, out).await?;
        } else {
            once(session, args, output, out).await?;
        }
        Ok(Exit::Ok)
    })
}

async fn once(
    session: &Session,
    args: &StatusArgs,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), RunsError> {
    let snapshot = look(session, args, &mut RateMeter::default()).await?;
    match output {
        Output::Text => print(session, &snapshot, out),
        Output::Json => super::print_json(out, &snapshot.report(&session.env.name)),
    }
    Ok(())
}

/// `--watch`: a look every `--interval` seconds until Ctrl-C (or, with `--until-idle`, until
/// no run is active). Text shows bars on a terminal and a block per look elsewhere; JSON
/// writes each look as one compact document on a line (JSON lines).
async fn watch(
    session: &Session,
    args: &StatusArgs,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), RunsError> {
    let terminal = output == Output::Text && std::io::stderr().is_terminal();
    let mut bars = RunBars::new(terminal);
    let mut meter = RateMeter::default();
    let interval = Duration::from_secs(args.interval.max(1));
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let started = Instant::now();
        let snapshot = look(session, args, &mut meter).await?;
        match output {
            Output::Json => {
                let line =
                    serde_json::to_string(&snapshot.report(&session.env.name)).map_err(|e| {
                        RunsError::Other(format!("cannot write the report as JSON: {e}"))
                    })?;
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            Output::Text if terminal => {
                for run in &snapshot.runs {
                    bars.show(run);
                }
            }
            Output::Text => {
                let _ = writeln!(out, "-- {}", Utc::now().format("%H:%M:%S"));
                print(session, &snapshot, out);
            }
        }
        if args.until_idle && snapshot.active() == 0 {
            // Ended idle on a terminal: the last look below the cleared bars.
            if terminal {
                bars.clear();
                print(session, &snapshot, out);
            }
            return Ok(());
        }
        tokio::select! {
            _ = &mut stop => {
                // Ctrl-C ends a text watch with the last look, bars or not.
                if output == Output::Text {
                    bars.clear();
                    print(session, &snapshot, out);
                }
                return Ok(());
            }
            _ = tokio::time::sleep(interval.saturating_sub(started.elapsed())) => {}
        }
    }
}

fn print(session: &Session, snapshot: &Snapshot, out: &mut dyn Write) {
    if let Some(line) = crate::alarm_subscriptions::warning(&snapshot.unconfirmed) {
        let _ = writeln!(out, "{line}");
    }
    for line in &snapshot.controls {
        let _ = writeln!(out, "{line}");
    }
    if snapshot.runs.is_empty() {
        let _ = writeln!(
            out,
            "no runs in `{}` yet; start one with `microprocess start NAME --env {}`",
            session.env.name, session.env.name
        );
    } else {
        let _ = write!(out, "{}", progress::table(&snapshot.runs));
    }
    for line in &snapshot.late {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "{}", snapshot.dead_letters_line());
}

/// Reads the active runs, the latest finished ones and the dead-letter depths.
async fn look(
    session: &Session,
    args: &StatusArgs,
    meter: &mut RateMeter,
) -> Result<Snapshot, RunsError> {
    let mut runs = Vec::new();
    let mut dead_letters = Vec::new();
    let now = Utc::now();
    let at = Instant::now();
    for mp in session.deployed.selected(args.microprocess.as_deref())? {
        let mut records = Vec::new();
        for state in [
            RunState::Splitting,
            RunState::Processing,
            RunState::Reducing,
        ] {
            records.extend(session.ledger.runs_in_state(&mp.name, state).await?);
        }
        let mut finished = Vec::new();
        for state in [
            RunState::Completed,
            RunState::SplitFailed,
            RunState::ReduceFailed,
            RunState::Cancelled,
        ] {
            finished.extend(
                session
                    .ledger
                    .latest_runs_in_state(&mp.name, state, args.last)
                    .await?,
            );
        }
        finished.sort_by_key(|r| std::cmp::Reverse(r.started_at));
        finished.truncate(args.last.max(0) as usize);
        // The index is eventually consistent: a run moving between states can show twice.
        records.extend(finished);
        records.sort_by_key(|r| std::cmp::Reverse(r.started_at));
        records.dedup_by(|a, b| a.run == b.run);
        for record in records {
            let rate = meter.observe(&format!("{}/{}", mp.name, record.run), record.done, at);
            let in_progress = match (&mp.callback_url, record.state.is_terminal()) {
                (Some(_), false) => Some(session.ledger.lease_count(&mp.name, &record.run).await?),
                _ => None,
            };
            let progress = RunProgress::new(&mp.name, record, now, rate);
            runs.push(match in_progress {
                Some(n) => progress.with_in_progress(n),
                None => progress,
            });
        }
        dead_letters.push((
            mp.name.clone(),
            redrive::dead_letters(&session.sqs, &mp.dead_letter_queue_url).await?,
        ));
    }
    let mut controls = Vec::new();
    for mp in session.deployed.selected(args.microprocess.as_deref())? {
        let set = session.ledger.controls(&mp.name).await?;
        let Some(config) = session
            .env
            .microprocesses
            .iter()
            .find(|m| m.name == mp.name)
        else {
            continue;
        };
        if let Some(line) = crate::runs::controls::describe(
            &mp.name,
            &set,
            config.delivery.max_concurrency,
            config.delivery.rate_limit_per_second,
        ) {
            controls.push(line);
        }
    }
    let now = Utc::now();
    let late = runs
        .iter()
        .filter(|r| !r.record.state.is_terminal())
        .filter_map(|r| {
            let minutes = session
                .env
                .microprocesses
                .iter()
                .find(|m| m.name == r.microprocess)?
                .expected_duration_minutes?;
            let expected = Duration::from_secs(60 * u64::from(minutes));
            let why = microprocess_shared::run_deadline::lateness(&r.record, expected, now)?;
            Some(format!(
                "late: run `{}` of `{}` {why}",
                r.record.run, r.microprocess
            ))
        })
        .collect();
    let pending = crate::alarm_subscriptions::unconfirmed(
        &session.aws.config,
        &session.deployed.alarm_topic_arn,
    )
    .await
    .map_err(|detail| RunsError::Aws {
        action: "ListSubscriptionsByTopic".into(),
        detail,
    })?;
    Ok(Snapshot {
        runs,
        dead_letters,
        controls,
        late,
        unconfirmed: pending,
    })
}
