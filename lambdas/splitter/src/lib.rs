//! The splitter Lambda: starts one run of a microprocess.
//!
//! It is invoked by the microprocess's schedule (an EventBridge scheduled event, whose
//! `time` names the run, so a repeated delivery of one tick names the same run) or by
//! hand with `{"run": "<run id>"}`. In the full kit it pages the service's split endpoint
//! and puts one queue message per item; this release parses and validates the start
//! request, derives the run id and logs it, then answers with an error saying that it
//! does not dispatch yet, so no caller mistakes an invocation for a started run.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use lambda_runtime::{Diagnostic, LambdaEvent};
use microprocess_shared::run_id::{RunId, RunIdError};
use microprocess_shared::settings::SplitterSettings;
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

/// The `detail-type` of the events that EventBridge sends on a schedule.
pub const SCHEDULED_EVENT_DETAIL_TYPE: &str = "Scheduled Event";

const EXPECTED_SHAPES: &str =
    "an EventBridge scheduled event (`\"detail-type\": \"Scheduled Event\"` \
     with a `time`) or a manual start request like `{\"run\": \"rerun-2026-11-01\"}`";

/// A validated request to start a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRequest {
    /// A schedule tick; `run` is derived from `time`. `microprocess` is the
    /// `detail.microprocess` that the kit's schedules send, when present.
    Scheduled {
        run: RunId,
        time: DateTime<Utc>,
        event_id: Option<String>,
        microprocess: Option<String>,
    },
    /// A run started by hand under the given id.
    Manual { run: RunId },
}

/// The body of a manual start.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualStart {
    run: String,
}

/// Why an invocation's payload is not a start request.
#[derive(Debug, Error)]
pub enum EventError {
    #[error("the event is not a start request; expected {EXPECTED_SHAPES}")]
    Unrecognised,
    #[error("the scheduled event is malformed ({0}); expected {EXPECTED_SHAPES}")]
    MalformedScheduledEvent(serde_json::Error),
    #[error(
        "the event's `detail-type` is `{0}`; the splitter starts runs only from \
         `Scheduled Event`, check the rule or schedule that targets it"
    )]
    NotScheduled(String),
    #[error("the scheduled event has no `time`, so no run id can be derived from it")]
    MissingTime,
    #[error("the scheduled event's `detail.microprocess` is `{0}`; expected the microprocess name as a string")]
    BadDetailMicroprocess(Value),
    #[error(
        "the scheduled event is for microprocess `{event}` but this splitter serves \
         `{function}`; check the schedule's target"
    )]
    OtherMicroprocess { event: String, function: String },
    #[error("the manual start request is malformed ({0}); expected `{{\"run\": \"<run id>\"}}`")]
    MalformedManualStart(serde_json::Error),
    #[error(transparent)]
    RunId(#[from] RunIdError),
}

impl StartRequest {
    /// Parses and validates an invocation payload. An object with `run` is a manual
    /// start; one with `detail-type` is an EventBridge event.
    pub fn from_event(payload: Value) -> Result<StartRequest, EventError> {
        let Some(object) = payload.as_object() else {
            return Err(EventError::Unrecognised);
        };
        if object.contains_key("run") {
            let manual: ManualStart =
                serde_json::from_value(payload).map_err(EventError::MalformedManualStart)?;
            return Ok(StartRequest::Manual {
                run: RunId::parse(&manual.run)?,
            });
        }
        if !object.contains_key("detail-type") {
            return Err(EventError::Unrecognised);
        }
        let event: EventBridgeEvent<Value> =
            serde_json::from_value(payload).map_err(EventError::MalformedScheduledEvent)?;
        if event.detail_type != SCHEDULED_EVENT_DETAIL_TYPE {
            return Err(EventError::NotScheduled(event.detail_type));
        }
        let time = event.time.ok_or(EventError::MissingTime)?;
        let microprocess = match event.detail.get("microprocess") {
            None => None,
            Some(Value::String(name)) => Some(name.clone()),
            Some(other) => return Err(EventError::BadDetailMicroprocess(other.clone())),
        };
        Ok(StartRequest::Scheduled {
            run: RunId::from_schedule_time(time)?,
            time,
            event_id: event.id,
            microprocess,
        })
    }

    pub fn run(&self) -> &RunId {
        match self {
            StartRequest::Scheduled { run, .. } | StartRequest::Manual { run } => run,
        }
    }

    /// `schedule` or `manual`, for logs.
    pub fn trigger(&self) -> &'static str {
        match self {
            StartRequest::Scheduled { .. } => "schedule",
            StartRequest::Manual { .. } => "manual",
        }
    }
}

/// What an invocation answers when it starts no run.
#[derive(Debug, Error)]
pub enum SplitterError {
    #[error("no run started: {0}")]
    BadEvent(#[from] EventError),
    #[error(
        "run `{run}` of microprocess `{microprocess}` was not started: this release packages \
         the splitter but does not dispatch yet (no split call, no ledger record, no queue \
         message); deploy a release with dispatch to run it"
    )]
    NotDispatching { microprocess: String, run: RunId },
}

impl From<SplitterError> for Diagnostic {
    fn from(error: SplitterError) -> Diagnostic {
        let error_type = match error {
            SplitterError::BadEvent(_) => "Splitter.BadEvent",
            SplitterError::NotDispatching { .. } => "Splitter.NotDispatching",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// Handles one invocation: validates the start request, derives the run id and logs
/// it. Until dispatch lands, it always ends in a [`SplitterError`].
pub async fn start_run(
    settings: &SplitterSettings,
    event: LambdaEvent<Value>,
) -> Result<(), SplitterError> {
    let (payload, context) = event.into_parts();
    let microprocess = &settings.common.microprocess_name;
    let request = StartRequest::from_event(payload)
        .and_then(|request| match &request {
            StartRequest::Scheduled {
                microprocess: Some(event),
                ..
            } if event != microprocess => Err(EventError::OtherMicroprocess {
                event: event.clone(),
                function: microprocess.clone(),
            }),
            _ => Ok(request),
        })
        .inspect_err(|error| {
            tracing::error!(
                request_id = %context.request_id,
                %microprocess,
                %error,
                "rejected start request"
            );
        })?;
    let schedule_time = match &request {
        StartRequest::Scheduled { time, .. } => Some(time.to_rfc3339()),
        StartRequest::Manual { .. } => None,
    };
    let error = SplitterError::NotDispatching {
        microprocess: microprocess.clone(),
        run: request.run().clone(),
    };
    tracing::warn!(
        request_id = %context.request_id,
        %microprocess,
        run = %request.run(),
        trigger = request.trigger(),
        schedule_time,
        split_url = %settings.common.queue_host_url(&settings.split_path),
        ledger_table = %settings.common.ledger_table,
        %error,
        "start request accepted but not dispatched"
    );
    Err(error)
}
