//! Errors of the ledger, each naming the run and the step it happened in.

use std::fmt;

use thiserror::Error;

use crate::ledger_keys::SeqOutOfRange;

/// The ledger operation an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    StartRun,
    ReadRun,
    Checkpoint,
    SplitLease,
    Seal,
    SplitFailed,
    RecordChildren,
    ClaimReduce,
    Complete,
    ReduceFailed,
    RetryReduce,
    Cancel,
    MarkReduceQueued,
    RunsInState,
    Children,
    Lease,
    Controls,
    Notice,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::StartRun => "start run",
            Step::ReadRun => "read run",
            Step::Checkpoint => "checkpoint",
            Step::SplitLease => "take the split's lease",
            Step::Seal => "seal split",
            Step::SplitFailed => "mark split failed",
            Step::RecordChildren => "record children",
            Step::ClaimReduce => "claim reduce",
            Step::Complete => "complete run",
            Step::ReduceFailed => "mark reduce failed",
            Step::RetryReduce => "retry reduce",
            Step::Cancel => "cancel run",
            Step::MarkReduceQueued => "mark reduce queued",
            Step::RunsInState => "list runs in state",
            Step::Children => "list children",
            Step::Lease => "child lease",
            Step::Controls => "run controls",
            Step::Notice => "run notice",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an error happened: the step, and the run it was about (`<microprocess>/<run>`,
/// or only the microprocess for a listing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub step: Step,
    pub microprocess: String,
    pub run: Option<String>,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.run {
            Some(run) => write!(f, "{} of run `{}/{run}`", self.step, self.microprocess),
            None => write!(f, "{} of microprocess `{}`", self.step, self.microprocess),
        }
    }
}

/// Why a ledger call failed. Every variant carries its [`Context`].
#[derive(Debug, Error)]
pub enum LedgerError {
    /// The run record does not exist (never started, or expired).
    #[error("{context}: the run does not exist in the ledger (never started, or expired)")]
    RunNotFound { context: Context },

    /// The write's condition did not hold: the run is not in a state that allows it.
    #[error("{context}: refused, {why}")]
    Refused { context: Context, why: String },

    /// The arguments cannot be written (an out-of-range number, a pending child, ...).
    #[error("{context}: {why}")]
    InvalidInput { context: Context, why: String },

    /// A child `seq` past the 12-digit key range.
    #[error("{context}: {source}")]
    Seq {
        context: Context,
        #[source]
        source: SeqOutOfRange,
    },

    /// A record read back from the table lacks an attribute or has a bad one.
    #[error("{context}: malformed ledger record `{key}`: {why}")]
    Malformed {
        context: Context,
        key: String,
        why: String,
    },

    /// DynamoDB cancelled a transaction for another reason than a failed condition or a
    /// conflict (a validation error, an item over 400 KB, ...).
    #[error("{context}: DynamoDB cancelled the transaction: {reasons}")]
    Cancelled { context: Context, reasons: String },

    /// Throttling or transaction conflicts outlasted the bounded retries.
    #[error(
        "{context}: still throttled or conflicting after {attempts} attempts ({last}); \
         the table is overloaded, retry later or raise its capacity"
    )]
    RetriesExhausted {
        context: Context,
        attempts: u32,
        last: String,
    },

    /// Any other DynamoDB error; `detail` is its full text, causes included.
    #[error("{context}: DynamoDB call failed: {detail}")]
    Dynamo {
        context: Context,
        detail: String,
        #[source]
        source: Box<aws_sdk_dynamodb::Error>,
    },
}

impl LedgerError {
    /// The context of the error.
    pub fn context(&self) -> &Context {
        match self {
            LedgerError::RunNotFound { context }
            | LedgerError::Refused { context, .. }
            | LedgerError::InvalidInput { context, .. }
            | LedgerError::Seq { context, .. }
            | LedgerError::Malformed { context, .. }
            | LedgerError::Cancelled { context, .. }
            | LedgerError::RetriesExhausted { context, .. }
            | LedgerError::Dynamo { context, .. } => context,
        }
    }
}
