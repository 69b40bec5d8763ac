//! `microprocess redrive RUN --env ENV`: sends one run's dead-lettered children back to its
//! queue, and retries its reduce when that is what failed.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use chrono::Utc;
use clap::Args;

use microprocess_shared::ledger_keys::RunState;

use super::operate::{self, Session};
use super::Exit;
use crate::config::Project;
use crate::runs::progress::{RunBars, RunProgress};
use crate::runs::redrive;
use crate::runs::start::{self as starting, Follow};
use crate::runs::RunsError;

#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// The run id.
    #[arg(value_name = "RUN")]
    pub run: String,
    #[command(flatten)]
    pub instance: super::InstanceArgs,
    /// The microprocess, when run ids repeat across microprocesses.
    #[arg(long, value_name = "NAME")]
    pub microprocess: Option<String>,
    /// Follow the run until its resent children are in (and a retried reduce is done);
    /// exit 9 unless it ends `COMPLETED`.
    #[arg(long)]
    pub wait: bool,
    /// For a run stuck `REDUCING` whose reduce message was lost: queue another one.
    #[arg(long)]
    pub resend_reduce: bool,
    /// Longest wait, in seconds, for resent children before a failed reduce is retried.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub settle_timeout: u64,
}

pub fn run(
    project: &Project,
    args: &RedriveArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    operate::in_session(project, &args.instance, err, async |session, err| {
        redrive_run(session, args, out, err).await
    })
}

async fn redrive_run(
    session: &Session,
    args: &RedriveArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, RunsError> {
    let (name, before) =
        operate::locate_run(session, &args.run, args.microprocess.as_deref()).await?;
    let mp = session.deployed.microprocess(&name)?;
    let run = before.run.clone();
    let moved = redrive::move_back(&session.ledger, &session.sqs, mp, &run).await?;
    let resent = moved.children.len() as u64;
    let _ = writeln!(
        out,
        "sent {resent} dead-lettered child(ren) of run `{run}` back to the queue of `{name}`{}",
        if moved.left > 0 {
            format!(
                " ({} message(s) of other runs stay in the dead-letter queue)",
                moved.left
            )
        } else {
            String::new()
        }
    );
    if !moved.superseded.is_empty() || moved.repeats > 0 {
        let _ = writeln!(
            out,
            "deleted {} letter(s) of children that succeeded since (a duplicate of their message did) and {} second letter(s) of a resent child, without sending them",
            moved.superseded.len(),
            moved.repeats
        );
    }
    if !moved.unaccounted.is_empty() {
        let _ = writeln!(
            err,
            "warning: {} letter(s) stay in the dead-letter queue: the ledger no longer holds their children (seqs {:?}), though the run counts every child; their records expired (`results.retention_days`), and sending them again would count them twice",
            moved.unaccounted.len(),
            moved.unaccounted
        );
    }
    if before.failed > resent {
        let _ = writeln!(
            err,
            "note: the ledger counts {} failed children but only {resent} had a message in the dead-letter queue; the others cannot be sent again (the queue keeps messages 14 days)",
            before.failed
        );
    }
    let mut follow_run = false;
    match before.state {
        RunState::ReduceFailed => {
            if resent > 0 {
                let _ = writeln!(out, "waiting for them before the failed reduce is retried");
                let failed = redrive::settle(
                    &session.ledger,
                    &session.sqs,
                    mp,
                    &run,
                    before.failed,
                    resent,
                    Duration::from_secs(args.settle_timeout),
                )
                .await?;
                let _ = writeln!(out, "{failed} child(ren) still failed");
            }
            if redrive::retry_reduce(&session.ledger, &session.sqs, mp, &run).await? {
                let _ = writeln!(out, "reduce of run `{run}` queued again");
                follow_run = true;
            } else {
                let _ = writeln!(
                    out,
                    "the run is no longer REDUCE_FAILED; its reduce was not queued again"
                );
            }
        }
        RunState::Reducing if args.resend_reduce => {
            redrive::resend_reduce(&session.ledger, &session.sqs, mp, &run).await?;
            let _ = writeln!(out, "another reduce message of run `{run}` queued");
            follow_run = true;
        }
        RunState::Completed if resent > 0 => {
            let _ = writeln!(
                err,
                "note: run `{run}` is COMPLETED and its reduce ran with {} failed; resent children that succeed move to succeeded in the ledger and their results appear, but the reduce runs once per run and is not repeated",
                before.failed
            );
        }
        state if !state.is_terminal() => {
            follow_run = true;
        }
        _ => {}
    }
    if !args.wait {
        return Ok(Exit::Ok);
    }
    let ended = if follow_run {
        let mut bars = RunBars::new(std::io::stderr().is_terminal());
        let follow = Follow {
            interval: Duration::from_millis(500),
            appear_within: Duration::from_secs(60),
            timeout: None,
            local_runner: session
                .is_local()
                .then(|| crate::local::work_dir(&session.project_root, &session.env.name)),
        };
        let ended = starting::follow(&session.ledger, &name, &run, follow, &mut bars).await;
        bars.clear();
        ended?
    } else {
        if resent > 0 {
            redrive::settle(
                &session.ledger,
                &session.sqs,
                mp,
                &run,
                before.failed,
                resent,
                Duration::from_secs(args.settle_timeout),
            )
            .await?;
        }
        let record = session
            .ledger
            .run(&name, &run)
            .await?
            .ok_or_else(|| RunsError::Other(format!("run `{run}` left the ledger")))?;
        RunProgress::new(&name, record, Utc::now(), None)
    };
    let _ = writeln!(out, "{}", ended.summary());
    Ok(match ended.record.state {
        RunState::Completed => Exit::Ok,
        _ => Exit::RunFailed,
    })
}
