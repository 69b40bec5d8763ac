//! The splitter Lambda: starts and splits the runs of one microprocess, and sweeps.
//!
//! One invocation handles one payload ([`event`] lists the shapes):
//!
//! - a **schedule tick** or a **manual start** creates the run in the ledger
//!   ([`Ledger::start_run`], with the `OVERLAP` policy): skipped when another run is
//!   active and overlap is `skip`, nothing to do when the run exists and has left
//!   `SPLITTING`, else the split starts or resumes from its checkpoint;
//! - a **hand-off** (`"resume": true`) resumes a `SPLITTING` run, never creates one;
//! - a **sweep** claims the reduce of finished runs that missed it, and records the
//!   children SQS dead-lettered with no outcome ([`sweep`], [`dead_letters`]).
//!
//! The split ([`split`]) pages the service's split endpoint from the checkpoint, puts one
//! `process` message per item on the queue ([`enqueue`]), records items that break the
//! contract's limits as failed children, checkpoints after each page, hands the rest to a
//! fresh invocation before the deadline ([`deadline`], [`handoff`]), and seals the run
//! on the last page; a sealed run that is already complete gets its reduce at once.
//!
//! The handler is [`handle`], a plain async function over a [`Splitter`] (the clients
//! and settings, built once per process) so tests call it directly, with doubles for the
//! page source, the queue and the hand-off where they need them.

pub mod dead_letters;
pub mod deadline;
pub mod enqueue;
pub mod event;
pub mod handoff;
pub mod lease;
pub mod notices;
pub mod pages;
mod reduce;
pub mod split;
pub mod sweep;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lambda_runtime::Diagnostic;
use microprocess_shared::ledger::{Layout, Ledger, LedgerError, StartRun};
use microprocess_shared::ledger_keys::RunState;
use microprocess_shared::run_id::RunId;
use microprocess_shared::service_client::{ClientError, ServiceClient};
use microprocess_shared::settings::SplitterSettings;
use microprocess_shared::signing_secret::SigningKeys;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

pub use dead_letters::DeadLetters;
pub use deadline::{Deadline, HandoffRule};
pub use enqueue::{EnqueueError, EnqueuePolicy, Queue, SqsQueue};
pub use event::{EventError, Invocation, StartRequest, SCHEDULED_EVENT_DETAIL_TYPE};
pub use handoff::{Handoff, LambdaHandoff, RecordingHandoff};
pub use pages::{PageSource, ServiceSplit};

/// Everything an invocation needs, built once per process.
#[derive(Clone)]
pub struct Splitter {
    pub settings: SplitterSettings,
    pub ledger: Arc<Ledger>,
    pub pages: Arc<dyn PageSource>,
    pub queue: Arc<dyn Queue>,
    pub handoff: Arc<dyn Handoff>,
    /// The queues as the sweep reads them.
    pub dead_letters: DeadLetters,
    /// Where the sweep announces late and badly ended runs (`ALARM_TOPIC_ARN`).
    pub notices: Option<notices::Notices>,
    pub tuning: Tuning,
}

impl Splitter {
    /// The splitter as it runs in Lambda: the ledger, the queue and the hand-off over
    /// `config`, the split endpoint signed with `signing_keys`, the hand-off to
    /// `function_name` (the function itself).
    pub fn new(
        settings: SplitterSettings,
        config: &aws_config::SdkConfig,
        signing_keys: impl Into<SigningKeys>,
        function_name: &str,
    ) -> Result<Splitter, ClientError> {
        let client = ServiceClient::new(
            &settings.common.queue_base_url,
            &settings.common.microprocess_name,
            signing_keys,
        )?
        .with_page_limit(settings.split_page_max_bytes);
        let sqs = aws_sdk_sqs::Client::new(config);
        Ok(Splitter {
            ledger: Arc::new(Ledger::from_config(config, &settings.common.ledger_table)),
            pages: Arc::new(ServiceSplit::new(client, &settings.split_path)),
            queue: Arc::new(SqsQueue::new(sqs.clone(), &settings.common.queue_url)),
            dead_letters: DeadLetters::new(sqs, &settings.dead_letter_queue_url),
            notices: settings
                .alarm_topic_arn
                .clone()
                .map(|topic_arn| notices::Notices {
                    sns: aws_sdk_sns::Client::new(config),
                    topic_arn,
                }),
            handoff: Arc::new(LambdaHandoff::new(
                aws_sdk_lambda::Client::new(config),
                function_name,
            )),
            tuning: Tuning::default(),
            settings,
        })
    }

    /// The microprocess this splitter serves.
    pub fn name(&self) -> &str {
        &self.settings.common.microprocess_name
    }
}

/// Timing and retry knobs; the defaults are what runs in Lambda, tests shorten them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    pub handoff: HandoffRule,
    /// Longest wait for one split page.
    pub page_timeout: Duration,
    /// Wait after the first failed attempt at a page; it doubles, with jitter, up to
    /// `page_backoff_cap`.
    pub page_backoff_base: Duration,
    pub page_backoff_cap: Duration,
    /// Longest `Retry-After` honoured as such (a longer one waits this long).
    pub max_retry_after: Duration,
    pub enqueue: EnqueuePolicy,
    /// Age of a reduce claim with no queued reduce message after which the sweep queues
    /// it: far above the moment between a claim and its message (the SDK's retries).
    pub reduce_requeue_after: Duration,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            handoff: HandoffRule::default(),
            page_timeout: Duration::from_secs(30),
            page_backoff_base: Duration::from_secs(1),
            page_backoff_cap: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            enqueue: EnqueuePolicy::default(),
            reduce_requeue_after: Duration::from_secs(120),
        }
    }
}

/// What an invocation did; also its response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Another run is active and `OVERLAP` is `skip`: nothing was written.
    Skipped { run: RunId, running: RunId },
    /// The run exists and is past its split (or the hand-off found it so).
    NothingToDo { run: RunId, state: String },
    /// The split is over and sealed with `total` children.
    Sealed {
        run: RunId,
        total: u64,
        pages: u64,
        /// The run was complete at the seal (no children, or all invalid or already
        /// done) and this invocation queued its reduce.
        reduce_queued: bool,
    },
    /// The rest of the split went to a fresh invocation.
    HandedOff {
        run: RunId,
        enqueued: u64,
        pages: u64,
        failed_attempts: u32,
    },
    /// A page kept failing: the run is `SPLIT_FAILED`.
    SplitFailed { run: RunId, reason: String },
    /// Another invocation got ahead of this one, or ended the run: this one stopped.
    Stopped { run: RunId, why: String },
    /// A sweep: runs found `PROCESSING`, children recorded `FAILED` from dead letters SQS
    /// moved with no outcome, reduces claimed, reduces queued again (claimed long ago,
    /// never queued), runs still `SPLITTING`.
    Swept {
        processing: usize,
        failed_from_dead_letters: usize,
        claimed: Vec<RunId>,
        requeued: Vec<RunId>,
        splitting: Vec<RunId>,
        /// `SPLITTING` runs whose splitter stopped (its lease ran out): resumed under a
        /// lease of the sweep's, by a hand-off.
        resumed: Vec<RunId>,
        /// Runs announced on the alarm topic now: late, or ended other than `COMPLETED`.
        announced: Vec<RunId>,
    },
}

/// Why an invocation failed. Lambda retries a failed asynchronous invocation, and a
/// retry resumes from the checkpoint, so every error leaves the run resumable.
#[derive(Debug, Error)]
pub enum SplitterError {
    #[error("no run started: {0}")]
    BadEvent(#[from] EventError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(
        "run `{run}`: page {page} (seqs {first_seq} to {next_seq} exclusive) was not fully \
         queued: {source}; the page is read and queued again when the split resumes"
    )]
    Enqueue {
        run: RunId,
        page: u64,
        first_seq: u64,
        next_seq: u64,
        #[source]
        source: EnqueueError,
    },
    #[error(
        "run `{run}`: the reduce was claimed but its message could not be queued: {source}; \
         the run stays REDUCING without a reduce message"
    )]
    ReduceNotQueued {
        run: RunId,
        #[source]
        source: EnqueueError,
    },
    #[error(
        "run `{run}`: cannot hand the rest of the split to a new invocation ({reason}); \
         the retry of this invocation resumes from the checkpoint"
    )]
    Handoff { run: RunId, reason: String },
    #[error(
        "run `{run}` of `{microprocess}` is not in the ledger, so there is no split to \
         resume; start it with `{{\"run\": \"{run}\"}}`"
    )]
    RunNotFound { microprocess: String, run: RunId },
    #[error("the sweep could not finish {count} run(s): {details}")]
    Sweep { count: usize, details: String },
}

impl SplitterError {
    /// The Lambda error type, such as `Splitter.BadEvent`.
    pub fn error_type(&self) -> &'static str {
        match self {
            SplitterError::BadEvent(_) => "Splitter.BadEvent",
            SplitterError::Ledger(_) => "Splitter.Ledger",
            SplitterError::Enqueue { .. } => "Splitter.Queue",
            SplitterError::ReduceNotQueued { .. } => "Splitter.ReduceNotQueued",
            SplitterError::Handoff { .. } => "Splitter.Handoff",
            SplitterError::RunNotFound { .. } => "Splitter.RunNotFound",
            SplitterError::Sweep { .. } => "Splitter.Sweep",
        }
    }
}

impl From<SplitterError> for Diagnostic {
    fn from(error: SplitterError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// Handles one invocation; see the crate documentation.
pub async fn handle(
    splitter: &Splitter,
    payload: Value,
    deadline: Deadline,
) -> Result<Outcome, SplitterError> {
    let microprocess = splitter.name();
    let invocation = Invocation::from_event(payload)
        .and_then(|invocation| match invocation {
            Invocation::Run(request) => request
                .check_microprocess(microprocess)
                .map(Invocation::Run),
            Invocation::Sweep => Ok(Invocation::Sweep),
        })
        .inspect_err(|error| tracing::error!(%microprocess, %error, "rejected invocation"))?;
    let result = match invocation {
        Invocation::Sweep => sweep::sweep(splitter).await,
        Invocation::Run(request) => run(splitter, request, deadline).await,
    };
    match &result {
        Ok(outcome) => tracing::info!(%microprocess, outcome = ?outcome, "invocation done"),
        Err(error) => tracing::error!(
            %microprocess,
            error_type = error.error_type(),
            %error,
            "invocation failed"
        ),
    }
    result
}

/// Starts or resumes the run `request` names, then splits it if it is `SPLITTING`.
async fn run(
    splitter: &Splitter,
    request: StartRequest,
    deadline: Deadline,
) -> Result<Outcome, SplitterError> {
    let microprocess = splitter.name();
    let settings = &splitter.settings;
    let run = request.run().clone();
    let trigger = request.trigger();
    let schedule_time = match &request {
        StartRequest::Scheduled { time, .. } => Some(time.to_rfc3339()),
        _ => None,
    };
    // A hand-off passes its lease on; any other invocation takes one of its own.
    let owner = match &request {
        StartRequest::Resume {
            lease: Some(lease), ..
        } => lease.clone(),
        _ => lease::new_token(),
    };
    let (record, failed_attempts) = match &request {
        StartRequest::Resume {
            failed_attempts, ..
        } => match splitter.ledger.run(microprocess, &run).await? {
            Some(record) => (record, *failed_attempts),
            None => {
                return Err(SplitterError::RunNotFound {
                    microprocess: microprocess.to_owned(),
                    run,
                })
            }
        },
        StartRequest::Scheduled { .. } | StartRequest::Manual { .. } => {
            let started = splitter
                .ledger
                .start_run(
                    microprocess,
                    &run,
                    settings.overlap,
                    settings.retention_days,
                    Layout::new(settings.counter_shards, settings.ledger_partitions),
                    Utc::now(),
                )
                .await?;
            match started {
                StartRun::Skipped { running } => {
                    tracing::info!(
                        %microprocess,
                        %run,
                        trigger,
                        schedule_time,
                        running = %running.run,
                        running_state = %running.state,
                        "not started: another run is active and OVERLAP is skip"
                    );
                    return Ok(Outcome::Skipped {
                        run,
                        running: running.run,
                    });
                }
                StartRun::Started(record) => {
                    tracing::info!(
                        %microprocess,
                        %run,
                        trigger,
                        schedule_time,
                        "run started"
                    );
                    (record, 0)
                }
                StartRun::Existing(record) => (record, 0),
            }
        }
    };
    if record.state != RunState::Splitting {
        tracing::info!(
            %microprocess,
            %run,
            trigger,
            state = %record.state,
            "the run exists and is past its split; nothing to do"
        );
        return Ok(Outcome::NothingToDo {
            run,
            state: record.state.to_string(),
        });
    }
    let record = match lease::take(splitter, &run, &owner, &deadline).await? {
        Ok(record) => record,
        Err(outcome) => return Ok(outcome),
    };
    tracing::info!(
        %microprocess,
        %run,
        trigger,
        pages = record.pages,
        enqueued = record.enqueued,
        resumed = record.pages > 0,
        lease = %owner,
        "splitting"
    );
    let result = split::split(splitter, record, failed_attempts, &owner, deadline).await;
    if result.is_err() {
        // Lambda retries a failed invocation: let the retry take the lease at once. (A
        // process that is killed releases nothing; its lease runs out, and the sweep
        // resumes the split.)
        if let Err(error) = splitter
            .ledger
            .release_split_lease(microprocess, &run, &owner)
            .await
        {
            tracing::warn!(%microprocess, %run, %error, "cannot release the split's lease; a retry waits for it to run out");
        }
    }
    result
}
