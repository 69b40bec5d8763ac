//! `microprocess runs show RUN --env ENV`: one run in full, with its failed children.

use std::io::Write;

use chrono::Utc;
use clap::{Args, Subcommand};

use microprocess_shared::ledger_keys::ChildState;

use super::operate;
use super::{print_json, Exit, Output};
use crate::config::Project;
use crate::runs::progress::RunProgress;
use crate::runs::redrive;

/// Failed children listed by `runs show`; `results --failed` lists them all.
const FAILED_SHOWN: usize = 20;

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: RunsCommand,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Everything the ledger knows about one run, and its first failed children.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The run id.
    #[arg(value_name = "RUN")]
    pub run: String,
    #[command(flatten)]
    pub instance: super::InstanceArgs,
    /// The microprocess, when run ids repeat across microprocesses.
    #[arg(long, value_name = "NAME")]
    pub microprocess: Option<String>,
}

/// `--output json` of `runs show` (`docs/json-output.md`, "runs show").
#[derive(Debug, serde::Serialize)]
struct ShowReport {
    command: &'static str,
    environment: String,
    run: crate::runs::progress::RunReport,
    /// Messages in the microprocess's dead-letter queue (all runs).
    dead_letters: u64,
    /// The first failed children (at most 20; `results --failed` lists every one).
    failed_children: Vec<FailedChild>,
}

#[derive(Debug, serde::Serialize)]
struct FailedChild {
    seq: u64,
    item: String,
    attempts: u32,
    reason: Option<String>,
}

pub fn run(
    project: &Project,
    args: &RunsArgs,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    match &args.command {
        RunsCommand::Show(show) => run_show(project, show, output, out, err),
    }
}

fn run_show(
    project: &Project,
    args: &ShowArgs,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    operate::in_session(project, &args.instance, err, async |session, _| {
        let (mp, record) =
            operate::locate_run(session, &args.run, args.microprocess.as_deref()).await?;
        let deployed = session.deployed.microprocess(&mp)?;
        let failed = record.failed;
        let run_id = record.run.clone();
        let in_progress = match (&deployed.callback_url, record.state.is_terminal()) {
            (Some(_), false) => Some(session.ledger.lease_count(&mp, &record.run).await?),
            _ => None,
        };
        let progress = RunProgress::new(&mp, record, Utc::now(), None);
        let progress = match in_progress {
            Some(n) => progress.with_in_progress(n),
            None => progress,
        };
        let dlq = redrive::dead_letters(&session.sqs, &deployed.dead_letter_queue_url).await?;
        let mut children = Vec::new();
        if failed > 0 {
            let mut after = None;
            'pages: loop {
                let (page, next) = session.ledger.children_page(&mp, &run_id, after).await?;
                for child in page.into_iter().filter(|c| c.state == ChildState::Failed) {
                    children.push(FailedChild {
                        seq: child.seq,
                        item: child.item,
                        attempts: child.attempts,
                        reason: child.reason,
                    });
                    if children.len() >= FAILED_SHOWN {
                        break 'pages;
                    }
                }
                match next {
                    Some(seq) => after = Some(seq),
                    None => break,
                }
            }
        }
        if output == Output::Json {
            print_json(
                out,
                &ShowReport {
                    command: "runs show",
                    environment: session.env.name.clone(),
                    run: progress.report(),
                    dead_letters: dlq,
                    failed_children: children,
                },
            );
            return Ok(Exit::Ok);
        }
        let _ = write!(out, "{}", progress.details());
        let _ = writeln!(out, "dead letters  {dlq} in the queue of `{mp}` (all runs)");
        if failed > 0 {
            let _ = writeln!(out, "\nfailed children (first {FAILED_SHOWN}):");
            for child in &children {
                let _ = writeln!(
                    out,
                    "  seq {:>6}  {}  {} attempt(s)  {}",
                    child.seq,
                    child.item,
                    child.attempts,
                    child.reason.as_deref().unwrap_or("-")
                );
            }
            let _ = writeln!(
                out,
                "\nall of them: `microprocess results {run_id} --env {env} --failed`; send them again: `microprocess redrive {run_id} --env {env}`",
                env = session.env.name
            );
        }
        Ok(Exit::Ok)
    })
}
