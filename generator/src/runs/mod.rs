//! Operating the runs of a deployed environment: where its parts are (read from the stack
//! outputs), starting a run, reading progress from the ledger, sending a run's dead-lettered
//! children back, and reading its results. The `start`, `status`, `runs`, `redrive` and
//! `results` commands are thin shells over this module.

pub mod controls;
pub mod deployed;
pub mod progress;
pub mod redrive;
pub mod results;
pub mod start;

use thiserror::Error;

use microprocess_shared::ledger::LedgerError;

/// Why an operation on runs failed; each names what to do next.
#[derive(Debug, Error)]
pub enum RunsError {
    #[error("stack `{stack}` is not deployed\n  hint: `microprocess deploy --env {env}` first")]
    NotDeployed { stack: String, env: String },
    #[error("stack `{stack}` has no output `{output}` (status {status})\n  hint: the stack was deployed by another version of the kit or is still being created; deploy it again with `microprocess deploy --env {env}`")]
    MissingOutput {
        stack: String,
        output: String,
        status: String,
        env: String,
    },
    #[error("environment `{env}` has no microprocess `{name}`\n  hint: {hint}")]
    UnknownMicroprocess {
        env: String,
        name: String,
        hint: String,
    },
    #[error("no run `{run}` in the ledger of `{env}`{among}\n  hint: `microprocess status --env {env}` lists the runs")]
    UnknownRun {
        run: String,
        env: String,
        among: String,
    },
    #[error("`{run}` is not a run id: {why}")]
    BadRunId { run: String, why: String },
    #[error("{0}")]
    Ledger(#[from] LedgerError),
    #[error("{action} failed: {detail}")]
    Aws { action: String, detail: String },
    #[error("{0}")]
    Other(String),
}

impl RunsError {
    pub(crate) fn aws(action: impl Into<String>, error: &dyn std::error::Error) -> RunsError {
        RunsError::Aws {
            action: action.into(),
            detail: microprocess_shared::errors::error_chain(error),
        }
    }
}
