//! What the run commands (`start`, `status`, `runs`, `redrive`, `results`, `cancel`) share:
//! load the environment, connect as it requires, and find its deployed parts.

use std::io::Write;

use microprocess_shared::ledger::Ledger;

use super::Exit;
use crate::aws::{self, Aws, AwsError, Settings};
use crate::config::{Environment, Project};
use crate::runs::deployed::Deployed;
use crate::runs::RunsError;

/// A connected, deployed environment.
pub(super) struct Session {
    pub project_root: std::path::PathBuf,
    pub env: Environment,
    pub aws: Aws,
    pub deployed: Deployed,
    pub ledger: Ledger,
    pub sqs: aws_sdk_sqs::Client,
}

impl Session {
    /// Whether this is the `local` environment, whose functions run in the local runner.
    pub fn is_local(&self) -> bool {
        aws::is_local(&self.env.name)
    }
}

/// A runtime for one command; the run commands make few calls at a time.
pub(super) fn runtime(err: &mut dyn Write) -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            let _ = writeln!(err, "error: cannot start the async runtime: {e}");
            Exit::Failed
        })
}

/// Loads the environment (or its sandbox), connects (account pin and loopback rules as for deploy) and reads the
/// deployed stacks' outputs. Errors are printed; the exit code is returned.
pub(super) async fn open(
    project: &Project,
    instance: &super::InstanceArgs,
    err: &mut dyn Write,
) -> Result<Session, Exit> {
    let env = instance.load(project, err)?;
    let mut notes = Vec::new();
    let connected = aws::connect(
        &env.name,
        &env.region,
        env.account_id.as_deref(),
        &Settings::from_process(),
        &mut notes,
    )
    .await;
    for n in notes {
        let _ = writeln!(err, "note: {n}");
    }
    let aws = connected.map_err(|e| {
        let _ = writeln!(err, "error: {e}");
        match e {
            AwsError::Identity { .. } => Exit::Failed,
            _ => Exit::Refused,
        }
    })?;
    let deployed = Deployed::discover(&aws.config, &env)
        .await
        .map_err(|e| failed(err, &e))?;
    let ledger = Ledger::from_config(&aws.config, deployed.ledger_table.clone());
    let sqs = aws_sdk_sqs::Client::new(&aws.config);
    Ok(Session {
        project_root: project.root.clone(),
        env,
        aws,
        deployed,
        ledger,
        sqs,
    })
}

/// Runs `body` in a session of `instance`, on a runtime of its own. Errors opening the
/// session, and a [`RunsError`] of `body`, are printed and named as exit codes.
pub(super) fn in_session(
    project: &Project,
    instance: &super::InstanceArgs,
    err: &mut dyn Write,
    body: impl AsyncFnOnce(&Session, &mut dyn Write) -> Result<Exit, RunsError>,
) -> Exit {
    let runtime = match runtime(err) {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let session = match open(project, instance, err).await {
            Ok(s) => s,
            Err(code) => return code,
        };
        match body(&session, err).await {
            Ok(code) => code,
            Err(e) if is_gone(&e) => {
                let _ = writeln!(
                    err,
                    "error: environment `{}` is gone: what it reads no longer exists, so it was torn down while this ran ({e})\n  hint: deploy it again with `microprocess deploy --env {}`",
                    session.env.name, session.env.name
                );
                Exit::NotFound
            }
            Err(e) => failed(err, &e),
        }
    })
}

/// Whether `e` says a queue or table of the environment no longer exists (AWS's codes for
/// a deleted queue and a deleted table).
fn is_gone(e: &RunsError) -> bool {
    let text = e.to_string();
    matches!(e, RunsError::Aws { .. } | RunsError::Ledger(_))
        && [
            "QueueDoesNotExist",
            "NonExistentQueue",
            "ResourceNotFoundException",
        ]
        .iter()
        .any(|code| text.contains(code))
}

/// Prints `e` and names its exit code.
pub(super) fn failed(err: &mut dyn Write, e: &RunsError) -> Exit {
    let _ = writeln!(err, "error: {e}");
    match e {
        RunsError::UnknownMicroprocess { .. } | RunsError::BadRunId { .. } => Exit::Usage,
        RunsError::NotDeployed { .. } | RunsError::UnknownRun { .. } => Exit::NotFound,
        _ => Exit::Failed,
    }
}

/// Finds which microprocess `run` belongs to (or checks the one given).
pub(super) async fn locate_run(
    session: &Session,
    run: &str,
    microprocess: Option<&str>,
) -> Result<(String, microprocess_shared::ledger::RunRecord), RunsError> {
    let id = microprocess_shared::run_id::RunId::parse(run).map_err(|e| RunsError::BadRunId {
        run: run.to_string(),
        why: e.to_string(),
    })?;
    let candidates = session.deployed.selected(microprocess)?;
    for mp in &candidates {
        if let Some(record) = session.ledger.run(&mp.name, &id).await? {
            return Ok((mp.name.clone(), record));
        }
    }
    Err(RunsError::UnknownRun {
        run: run.to_string(),
        env: session.env.name.clone(),
        among: match microprocess {
            Some(m) => format!(" for `{m}`"),
            None => String::new(),
        },
    })
}
