//! `microprocess runs show RUN --env ENV`: one run in full, with its failed children.

use std::io::Write;

use chrono::Utc;
use clap::{Args, Subcommand};

use microprocess_shared::ledger_keys::ChildState;

use super::operate;
use super::Exit;
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

pub fn run(project: &Project, args: &RunsArgs, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    match &args.command {
        RunsCommand::Show(show) => run_show(project, show, out, err),
    }
}

fn run_show(project: &Project, args: &ShowArgs, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
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
        let _ = write!(out, "{}", progress.details());
        let dlq = redrive::dead_letters(&session.sqs, &deployed.dead_letter_queue_url).await?;
        let _ = writeln!(out, "dead letters  {dlq} in the queue of `{mp}` (all runs)");
        if failed > 0 {
            let _ = writeln!(out, "\nfailed children (first {FAILED_SHOWN}):");
            let mut listed = 0;
            let mut after = None;
            'pages: loop {
                let (page, next) = session.ledger.children_page(&mp, &run_id, after).await?;
                for child in page.iter().filter(|c| c.state == ChildState::Failed) {
                    let _ = writeln!(
                        out,
                        "  seq {:>6}  {}  {} attempt(s)  {}",
                        child.seq,
                        child.item,
                        child.attempts,
                        child.reason.as_deref().unwrap_or("-")
                    );
                    listed += 1;
                    if listed >= FAILED_SHOWN {
                        break 'pages;
                    }
                }
                match next {
                    Some(seq) => after = Some(seq),
                    None => break,
                }
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
