//! What the sweep announces on the environment's alarm topic, each once per run (the
//! ledger's notice claims, `Ledger::claim_notice`): a run that will miss its expected
//! duration (`expected_duration_minutes`), while there is still time to act, and a run
//! that ended other than `COMPLETED`.
//!
//! A run is late when it is past its deadline (its start plus the expected duration), or
//! when its ETA at the rate so far (children done since the start; the total once the
//! split is sealed) lands past it. Ended runs are announced for a day after they end: a
//! first deploy of this feature does not announce every failed run of the ledger's
//! retention.

use chrono::Utc;
use microprocess_shared::errors::error_chain;
use microprocess_shared::ledger::Notice;
use microprocess_shared::ledger_keys::RunState;
use microprocess_shared::run_deadline::lateness;
use microprocess_shared::run_id::RunId;

use crate::Splitter;

/// How long after it ended a failed run is still announced.
const ANNOUNCE_ENDED_WITHIN: chrono::Duration = chrono::Duration::hours(24);
/// Ended runs of each state looked at per sweep (the latest first).
const ENDED_LOOKED_AT: i32 = 10;

/// Where the sweep publishes.
#[derive(Clone)]
pub struct Notices {
    pub sns: aws_sdk_sns::Client,
    pub topic_arn: String,
}

impl Splitter {
    /// Announces the late and the badly ended runs; returns the runs announced now.
    pub(crate) async fn announce(&self) -> Vec<RunId> {
        let Some(notices) = &self.notices else {
            return Vec::new();
        };
        let microprocess = self.name();
        let now = Utc::now();
        let mut announced = Vec::new();
        if let Some(expected) = self.settings.expected_duration {
            for state in [
                RunState::Splitting,
                RunState::Processing,
                RunState::Reducing,
            ] {
                let runs = match self.ledger.runs_in_state(microprocess, state).await {
                    Ok(runs) => runs,
                    Err(error) => {
                        tracing::warn!(%error, "cannot list runs to check their deadlines");
                        continue;
                    }
                };
                for run in runs {
                    if let Some(why) = lateness(&run, expected, now) {
                        let message = format!("Run `{}` of `{microprocess}` {why}.", run.run);
                        if self.send(notices, &run.run, Notice::Late, &message).await {
                            announced.push(run.run.clone());
                        }
                    }
                }
            }
        }
        for state in [
            RunState::SplitFailed,
            RunState::ReduceFailed,
            RunState::Cancelled,
        ] {
            let runs = match self
                .ledger
                .latest_runs_in_state(microprocess, state, ENDED_LOOKED_AT)
                .await
            {
                Ok(runs) => runs,
                Err(error) => {
                    tracing::warn!(%error, "cannot list ended runs to announce them");
                    continue;
                }
            };
            for run in runs.into_iter().filter(|r| {
                r.finished_at
                    .is_some_and(|f| now - f <= ANNOUNCE_ENDED_WITHIN)
            }) {
                let reason = run
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                let message = format!(
                    "Run `{}` of `{microprocess}` ended {state}{reason} ({} of {} children succeeded, {} failed).",
                    run.run,
                    run.succeeded,
                    run.total.map_or_else(|| format!("{}+", run.enqueued), |t| t.to_string()),
                    run.failed
                );
                if self.send(notices, &run.run, Notice::Ended, &message).await {
                    announced.push(run.run.clone());
                }
            }
        }
        announced
    }

    /// Claims `notice` for `run` and publishes `message`; the claim is given back when the
    /// publish fails. `true` when it was published now.
    async fn send(&self, notices: &Notices, run: &RunId, notice: Notice, message: &str) -> bool {
        match self
            .ledger
            .claim_notice(self.name(), run, notice, Utc::now())
            .await
        {
            Ok(true) => {}
            Ok(false) => return false,
            Err(error) => {
                tracing::warn!(%run, %error, "cannot claim the run's notice");
                return false;
            }
        }
        let subject = match notice {
            Notice::Late => format!(
                "Microprocess {}: a run will miss its expected duration",
                self.name()
            ),
            Notice::Ended => format!(
                "Microprocess {}: a run ended without completing",
                self.name()
            ),
        };
        let published = notices
            .sns
            .publish()
            .topic_arn(&notices.topic_arn)
            .subject(subject.chars().take(100).collect::<String>())
            .message(message)
            .send()
            .await;
        match published {
            Ok(_) => {
                tracing::warn!(%run, message, "announced on the alarm topic");
                true
            }
            Err(error) => {
                tracing::error!(%run, error = %error_chain(&error), "cannot publish the run's notice; the next sweep tries again");
                if let Err(error) = self.ledger.release_notice(self.name(), run, notice).await {
                    tracing::warn!(%run, %error, "cannot give the notice's claim back");
                }
                false
            }
        }
    }
}
