//! `microprocess start NAME --env ENV [--run ID] [--wait]`: starts a run by hand.

use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use clap::Args;

use microprocess_shared::ledger_keys::RunState;
use microprocess_shared::run_id::RunId;

use super::operate::{self, Session};
use super::Exit;
use crate::config::Project;
use crate::runs::progress::RunBars;
use crate::runs::start::{self as starting, Follow, Invoker};
use crate::runs::RunsError;

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The microprocess to run.
    #[arg(value_name = "NAME")]
    pub microprocess: String,
    #[command(flatten)]
    pub instance: super::InstanceArgs,
    /// The run's id (letters, digits, `.`, `_`, `-`); `manual-<UTC time>` when left out.
    /// Starting an id that exists resumes or ignores it, never runs it twice.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Follow the run with a progress bar until it ends; exit 9 unless it completes.
    #[arg(long)]
    pub wait: bool,
    /// With `--wait`: stop waiting after this many seconds (the run goes on).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// With `--wait`: exit 9 also when the run completed with more than N failed children
    /// (`--max-failed 0` for a pipeline that must see every child succeed).
    #[arg(long, value_name = "N", requires = "wait")]
    pub max_failed: Option<u64>,
}

pub fn run(project: &Project, args: &StartArgs, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    let run = match &args.run {
        Some(id) => match RunId::parse(id) {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                return Exit::Usage;
            }
        },
        None => starting::manual_run_id(Utc::now()),
    };
    operate::in_session(project, &args.instance, err, async |session, err| {
        start(session, args, &run, out, err).await
    })
}

async fn start(
    session: &Session,
    args: &StartArgs,
    run: &RunId,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, RunsError> {
    let mp = session.deployed.microprocess(&args.microprocess)?;
    let invoker = if session.is_local() {
        let work_dir = crate::local::work_dir(&session.project_root, &session.env.name);
        let endpoint = crate::local::client::lambda_endpoint(&work_dir)
            .map_err(|e| RunsError::Other(e.to_string()))?;
        Invoker::LocalRunner {
            endpoint,
            region: session.env.region.clone(),
        }
    } else {
        Invoker::lambda(&session.aws.config)
    };
    invoker.start(&mp.splitter, run).await?;
    let _ = writeln!(
        out,
        "started run `{run}` of `{}` in `{}`",
        mp.name, session.env.name
    );
    if !args.wait {
        let _ = writeln!(
            err,
            "follow it with `microprocess status --env {} --watch`",
            session.env.name
        );
        return Ok(Exit::Ok);
    }
    let mut bars = RunBars::new(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let follow = Follow {
        interval: if session.is_local() {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(3)
        },
        appear_within: Duration::from_secs(120),
        timeout: args.timeout.map(Duration::from_secs),
        local_runner: session
            .is_local()
            .then(|| crate::local::work_dir(&session.project_root, &session.env.name)),
    };
    let ended = starting::follow(&session.ledger, &mp.name, run, follow, &mut bars).await;
    bars.clear();
    let ended = ended?;
    let _ = writeln!(out, "{}", ended.summary());
    if ended.record.failed > 0 {
        let _ = writeln!(
            err,
            "{} children failed: `microprocess results {run} --env {} --failed` lists them, `microprocess redrive {run} --env {}` sends them again",
            ended.record.failed, session.env.name, session.env.name
        );
    }
    let code = exit_for(ended.record.state, ended.record.failed, args.max_failed);
    if let (RunState::Completed, Exit::RunFailed, Some(max)) =
        (ended.record.state, code, args.max_failed)
    {
        let _ = writeln!(
            err,
            "error: run `{run}` completed with {} failed children, more than `--max-failed {max}`",
            ended.record.failed
        );
    }
    Ok(code)
}

/// `0` for a run that completed (with at most `max_failed` failed children, when given),
/// `9` for any other end.
fn exit_for(state: RunState, failed: u64, max_failed: Option<u64>) -> Exit {
    match (state, max_failed) {
        (RunState::Completed, Some(max)) if failed > max => Exit::RunFailed,
        (RunState::Completed, _) => Exit::Ok,
        _ => Exit::RunFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_can_fail_on_failed_children_of_a_completed_run() {
        assert_eq!(exit_for(RunState::Completed, 3, None), Exit::Ok);
        assert_eq!(exit_for(RunState::Completed, 3, Some(3)), Exit::Ok);
        assert_eq!(exit_for(RunState::Completed, 3, Some(0)), Exit::RunFailed);
        assert_eq!(exit_for(RunState::Completed, 0, Some(0)), Exit::Ok);
        assert_eq!(exit_for(RunState::ReduceFailed, 0, None), Exit::RunFailed);
    }
}
