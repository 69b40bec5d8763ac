//! `microprocess cancel RUN --env ENV`: ends a run `CANCELLED`. Its splitter stops at its
//! next checkpoint, the forwarders drop its queued messages without calling the service,
//! and no reduce is sent (a reduce message already queued is dropped too).

use std::io::Write;

use chrono::Utc;
use clap::Args;

use super::operate::{self, Session};
use super::Exit;
use crate::config::Project;
use crate::runs::RunsError;

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run id.
    #[arg(value_name = "RUN")]
    pub run: String,
    #[command(flatten)]
    pub instance: super::InstanceArgs,
    /// The microprocess, when run ids repeat across microprocesses.
    #[arg(long, value_name = "NAME")]
    pub microprocess: Option<String>,
    /// Why, recorded as the run's reason.
    #[arg(long, value_name = "TEXT", default_value = "cancelled by hand")]
    pub reason: String,
}

pub fn run(project: &Project, args: &CancelArgs, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    operate::in_session(project, &args.instance, err, async |session, err| {
        cancel_run(session, args, out, err).await
    })
}

async fn cancel_run(
    session: &Session,
    args: &CancelArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, RunsError> {
    let (name, before) =
        operate::locate_run(session, &args.run, args.microprocess.as_deref()).await?;
    let run = before.run.clone();
    match session
        .ledger
        .cancel(&name, &run, &args.reason, Utc::now())
        .await?
    {
        None => {
            let done = match before.total {
                Some(total) => format!("{} of {total} children done", before.done),
                None => format!("{} children queued so far", before.enqueued),
            };
            let _ = writeln!(
                out,
                "cancelled run `{run}` of `{name}` (it was {}, {done}): its queued messages are dropped without a call, and no reduce is sent",
                before.state
            );
            Ok(Exit::Ok)
        }
        Some(state) => {
            let _ = writeln!(
                err,
                "error: run `{run}` of `{name}` has ended {state}; only a SPLITTING, PROCESSING or REDUCING run can be cancelled"
            );
            Ok(Exit::Refused)
        }
    }
}
