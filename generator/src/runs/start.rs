//! Starting a run by hand, and following it until it ends.
//!
//! A run starts the way an operator would start it in AWS: an asynchronous Lambda `Invoke`
//! of the microprocess's splitter with `{"run": "<id>"}`. For the `local` environment the
//! invoke goes to the local runner's Lambda endpoint, which runs the same splitter binary.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use chrono::{DateTime, Utc};
use serde_json::json;

use microprocess_shared::ledger::{Ledger, RunRecord};
use microprocess_shared::ledger_keys::RunState;
use microprocess_shared::run_id::RunId;

use super::progress::{RateMeter, RunBars, RunProgress};
use super::RunsError;

/// Where a start request goes.
pub enum Invoker {
    /// The Lambda service of the environment's account.
    Lambda(aws_sdk_lambda::Client),
    /// A local runner's Lambda endpoint (`microprocess local run`).
    LocalRunner { endpoint: String, region: String },
}

impl Invoker {
    pub fn lambda(config: &SdkConfig) -> Invoker {
        Invoker::Lambda(aws_sdk_lambda::Client::new(config))
    }

    /// Queues `{"run": "<run>"}` for `splitter`.
    pub async fn start(&self, splitter: &str, run: &RunId) -> Result<(), RunsError> {
        match self {
            Invoker::LocalRunner { endpoint, region } => {
                crate::local::client::start_run(endpoint, region, splitter, run.as_str())
                    .await
                    .map_err(|e| RunsError::Other(e.to_string()))
            }
            Invoker::Lambda(client) => {
                let payload = serde_json::to_vec(&json!({ "run": run.as_str() }))
                    .map_err(|e| RunsError::Other(e.to_string()))?;
                let out = client
                    .invoke()
                    .function_name(splitter)
                    .invocation_type(InvocationType::Event)
                    .payload(Blob::new(payload))
                    .send()
                    .await
                    .map_err(|e| RunsError::aws(format!("Lambda Invoke of `{splitter}`"), &e))?;
                match out.status_code() {
                    200..=299 => Ok(()),
                    status => Err(RunsError::Other(format!(
                        "Lambda Invoke of `{splitter}` answered status {status}"
                    ))),
                }
            }
        }
    }
}

/// The id of a run started by hand at `now`: `manual-20261123t225001z` (a valid run id,
/// sortable, and plainly not a schedule's).
pub fn manual_run_id(now: DateTime<Utc>) -> RunId {
    let text = format!("manual-{}", now.format("%Y%m%dt%H%M%Sz"));
    RunId::parse(&text).unwrap_or_else(|_| unreachable!("`{text}` uses the run id charset"))
}

/// How long after the start request a missing run is checked for having been skipped.
const SKIP_CHECK_AFTER: Duration = Duration::from_secs(5);

/// An active run of `microprocess`, if there is one.
async fn active_run(ledger: &Ledger, microprocess: &str) -> Result<Option<RunRecord>, RunsError> {
    for state in [
        RunState::Splitting,
        RunState::Processing,
        RunState::Reducing,
    ] {
        if let Some(r) = ledger
            .runs_in_state(microprocess, state)
            .await?
            .into_iter()
            .next()
        {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// How [`follow`] looks at a run.
#[derive(Debug, Clone)]
pub struct Follow {
    /// Between two reads of the run record.
    pub interval: Duration,
    /// How long the run may take to appear in the ledger after the start request.
    pub appear_within: Duration,
    /// Give up after this long (`None`: wait until the run ends).
    pub timeout: Option<Duration>,
    /// The local runner's work folder (the `local` environment): the run is over for the
    /// runner too when it stopped because the emulator denied a function a request.
    pub local_runner: Option<std::path::PathBuf>,
}

/// Reads the run until it is terminal, drawing its bar; returns its last progress.
pub async fn follow(
    ledger: &Ledger,
    microprocess: &str,
    run: &RunId,
    follow: Follow,
    bars: &mut RunBars,
) -> Result<RunProgress, RunsError> {
    let started = Instant::now();
    let mut meter = RateMeter::default();
    let mut skip_checked = false;
    loop {
        let record = ledger.run(microprocess, run).await?;
        let now = Instant::now();
        match record {
            Some(record) => {
                let rate = meter.observe(run.as_str(), record.done, now);
                let progress = RunProgress::new(microprocess, record, Utc::now(), rate);
                bars.show(&progress);
                if progress.record.state.is_terminal() {
                    return Ok(progress);
                }
            }
            None if now.duration_since(started) > SKIP_CHECK_AFTER && !skip_checked => {
                // The splitter decides at once; a run still missing while another is
                // active was skipped (`overlap = "skip"`).
                skip_checked = true;
                if let Some(active) = active_run(ledger, microprocess).await? {
                    return Err(RunsError::Other(format!(
                        "run `{run}` of `{microprocess}` was not started: run `{}` is {} and the microprocess's overlap is `skip`\n  \
                         hint: wait for it (`microprocess status --watch`), or set `overlap = \"allow\"` for `{microprocess}`",
                        active.run, active.state
                    )));
                }
            }
            None if now.duration_since(started) > follow.appear_within => {
                return Err(RunsError::Other(format!(
                    "run `{run}` of `{microprocess}` did not appear in the ledger within {}s of its start\n  \
                     hint: the splitter may have skipped it because another run of `{microprocess}` is active \
                     (`microprocess status`), or failed before writing it (its log group)",
                    follow.appear_within.as_secs()
                )));
            }
            None => {}
        }
        if let Some(work_dir) = &follow.local_runner {
            let denied = crate::local::state::read(work_dir).denied;
            if !denied.is_empty() {
                let list: Vec<String> = denied
                    .iter()
                    .map(|d| format!("  {}", d.describe()))
                    .collect();
                return Err(RunsError::Other(format!(
                    "run `{run}` of `{microprocess}` cannot go on: the local runner stopped because the emulator denied {} request(s), as AWS would:\n{}\n  \
                     hint: fix the role in `templates/microprocess.yaml`, then `make deploy ENV=local` and start the runner again",
                    denied.len(),
                    list.join("\n")
                )));
            }
        }
        if let Some(limit) = follow.timeout {
            if now.duration_since(started) > limit {
                return Err(RunsError::Other(format!(
                    "run `{run}` of `{microprocess}` has not ended after {}s; it goes on\n  \
                     hint: `microprocess status --watch` follows it",
                    limit.as_secs()
                )));
            }
        }
        tokio::time::sleep(follow.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn manual_ids_say_when() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 22, 50, 1).unwrap();
        assert_eq!(manual_run_id(now).as_str(), "manual-20261123t225001z");
    }
}
