//! `microprocess results RUN --env ENV`: a run's children and their results as JSON lines.

use std::io::Write;

use clap::Args;

use super::operate;
use super::Exit;
use crate::config::Project;
use crate::runs::results::{self, Select};

#[derive(Debug, Args)]
pub struct ResultsArgs {
    /// The run id.
    #[arg(value_name = "RUN")]
    pub run: String,
    #[command(flatten)]
    pub instance: super::InstanceArgs,
    /// The microprocess, when run ids repeat across microprocesses.
    #[arg(long, value_name = "NAME")]
    pub microprocess: Option<String>,
    /// Only the failed children, with their reasons.
    #[arg(long)]
    pub failed: bool,
    /// Print where a result stored in S3 is (`result_s3`) instead of fetching it.
    #[arg(long)]
    pub no_fetch: bool,
}

pub fn run(
    project: &Project,
    args: &ResultsArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    operate::in_session(project, &args.instance, err, async |session, err| {
        let (mp, record) =
            operate::locate_run(session, &args.run, args.microprocess.as_deref()).await?;
        let s3 = aws_sdk_s3::Client::new(&session.aws.config);
        let select = Select {
            failed_only: args.failed,
            no_fetch: args.no_fetch,
        };
        let w = results::write(&session.ledger, &s3, &mp, &record.run, select, out).await?;
        let _ = writeln!(err, "{} succeeded, {} failed", w.succeeded, w.failed);
        Ok(Exit::Ok)
    })
}
