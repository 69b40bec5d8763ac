//! Steering a microprocess while its runs go on: pause and resume its deliveries, change
//! its concurrency and rate cap, all without a redeploy.
//!
//! Pause and concurrency act on the forwarder's event source mapping
//! (`UpdateEventSourceMapping`): a disabled mapping takes nothing off the queue, so every
//! message waits with its attempts untouched. The rate cap lives in the ledger's control
//! item, which the forwarders read. The control item also records pause and concurrency,
//! for `status` and for `deploy`, which sets them again after its change sets.

use aws_sdk_lambda::types::ScalingConfig;
use chrono::{DateTime, Duration as TimeDelta, Utc};

use microprocess_shared::ledger::{Controls, Ledger, RunRecord};
use microprocess_shared::ledger_keys::RunState;

use super::RunsError;

/// The forwarder's event source mapping as Lambda reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub uuid: String,
    pub enabled: bool,
    pub max_concurrency: Option<u32>,
}

/// The SQS mapping of `forwarder`.
pub async fn mapping(
    lambda: &aws_sdk_lambda::Client,
    forwarder: &str,
) -> Result<Mapping, RunsError> {
    let listed = lambda
        .list_event_source_mappings()
        .function_name(forwarder)
        .send()
        .await
        .map_err(|e| {
            RunsError::aws(
                format!("Lambda ListEventSourceMappings of `{forwarder}`"),
                &e,
            )
        })?;
    let found = listed
        .event_source_mappings()
        .iter()
        .find(|m| {
            m.event_source_arn()
                .is_some_and(|arn| arn.contains(":sqs:"))
        })
        .ok_or_else(|| {
            RunsError::Other(format!(
                "`{forwarder}` has no SQS event source mapping; is the microprocess deployed?"
            ))
        })?;
    let state = found.state().unwrap_or_default();
    Ok(Mapping {
        uuid: found.uuid().unwrap_or_default().to_string(),
        enabled: !matches!(state, "Disabled" | "Disabling"),
        max_concurrency: found
            .scaling_config()
            .and_then(|s| s.maximum_concurrency())
            .and_then(|c| u32::try_from(c).ok()),
    })
}

/// One change to the mapping: deliveries on or off, or its `MaximumConcurrency`.
enum Change {
    Enabled(bool),
    Concurrency(u32),
}

async fn update(
    lambda: &aws_sdk_lambda::Client,
    mapping: &Mapping,
    change: Change,
) -> Result<(), RunsError> {
    let request = lambda.update_event_source_mapping().uuid(&mapping.uuid);
    let request = match change {
        Change::Enabled(enabled) => request.enabled(enabled),
        Change::Concurrency(n) => request.scaling_config(
            ScalingConfig::builder()
                .maximum_concurrency(i32::try_from(n).unwrap_or(i32::MAX))
                .build(),
        ),
    };
    request.send().await.map_err(|e| {
        RunsError::aws(
            format!("Lambda UpdateEventSourceMapping `{}`", mapping.uuid),
            &e,
        )
    })?;
    Ok(())
}

/// Turns the mapping's deliveries on or off.
pub async fn set_enabled(
    lambda: &aws_sdk_lambda::Client,
    mapping: &Mapping,
    enabled: bool,
) -> Result<(), RunsError> {
    update(lambda, mapping, Change::Enabled(enabled)).await
}

/// Sets the mapping's `MaximumConcurrency`.
pub async fn set_concurrency(
    lambda: &aws_sdk_lambda::Client,
    mapping: &Mapping,
    concurrency: u32,
) -> Result<(), RunsError> {
    update(lambda, mapping, Change::Concurrency(concurrency)).await
}

/// The oldest run of `microprocess` still in progress.
pub async fn oldest_active_run(
    ledger: &Ledger,
    microprocess: &str,
) -> Result<Option<RunRecord>, RunsError> {
    let mut oldest: Option<RunRecord> = None;
    for state in [
        RunState::Splitting,
        RunState::Processing,
        RunState::Reducing,
    ] {
        for record in ledger.runs_in_state(microprocess, state).await? {
            if oldest
                .as_ref()
                .is_none_or(|o| record.started_at < o.started_at)
            {
                oldest = Some(record);
            }
        }
    }
    Ok(oldest)
}

/// When the first messages of a run started at `started_at` can expire on a queue that
/// keeps messages `retention_days`: its split queued them from then on.
pub fn first_expiry(started_at: DateTime<Utc>, retention_days: u32) -> DateTime<Utc> {
    started_at + TimeDelta::days(i64::from(retention_days))
}

/// One line on the controls in force, for `status`; `None` when there are none.
pub fn describe(
    name: &str,
    controls: &Controls,
    config_concurrency: u32,
    config_rate: Option<u32>,
) -> Option<String> {
    if controls.is_default() {
        return None;
    }
    let mut parts = Vec::new();
    if let Some(at) = controls.paused_at {
        let reason = controls
            .paused_reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        parts.push(format!(
            "paused since {}{reason}",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    if let Some(c) = controls.max_concurrency {
        parts.push(format!("max concurrency {c} (config {config_concurrency})"));
    }
    if let Some(r) = controls.rate_limit_per_second {
        let config = config_rate.map_or_else(|| "none".to_string(), |r| format!("{r}/s"));
        let now = if r == 0 {
            "no cap".to_string()
        } else {
            format!("{r}/s")
        };
        parts.push(format!("rate {now} (config {config})"));
    }
    if let (Some(at), true) = (controls.throttled_at, controls.throttled()) {
        parts.push(format!(
            "throttled since {}",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    Some(format!("`{name}`: {}", parts.join(", ")))
}

/// After a deploy: sets the pause and concurrency each microprocess's control item holds
/// on its mapping again (CloudFormation puts the template's `Enabled` and
/// `MaximumConcurrency` back whenever it updates the mapping), and says what it kept.
pub async fn reapply(
    ledger: &Ledger,
    lambda: &aws_sdk_lambda::Client,
    deployed: &super::deployed::Deployed,
) -> Result<Vec<String>, RunsError> {
    let mut kept = Vec::new();
    for mp in &deployed.microprocesses {
        let controls = ledger.controls(&mp.name).await?;
        if controls.paused_at.is_none() && controls.max_concurrency.is_none() {
            if controls.rate_limit_per_second.is_some() {
                kept.push(format!(
                    "`{}` keeps its rate override (`microprocess throttle {} --clear` ends it)",
                    mp.name, mp.name
                ));
            }
            continue;
        }
        let found = mapping(lambda, &mp.forwarder).await?;
        if controls.paused_at.is_some() {
            set_enabled(lambda, &found, false).await?;
            kept.push(format!(
                "`{}` stays paused (`microprocess resume {}` ends it)",
                mp.name, mp.name
            ));
        }
        if let Some(n) = controls.max_concurrency {
            set_concurrency(lambda, &found, n).await?;
            kept.push(format!("`{}` stays throttled to {n} forwarder(s) at once (`microprocess throttle {} --clear` ends it)", mp.name, mp.name));
        }
    }
    Ok(kept)
}
