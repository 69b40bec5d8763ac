//! The invocation payloads the splitter accepts, parsed and validated.
//!
//! | payload | from | becomes |
//! |---|---|---|
//! | an EventBridge scheduled event (`"detail-type": "Scheduled Event"` with a `time`) | the microprocess's schedule | [`StartRequest::Scheduled`], run id from `time` |
//! | `{"run": "<id>"}` | an operator | [`StartRequest::Manual`] |
//! | `{"run": "<id>", "resume": true}` | the splitter's own hand-off | [`StartRequest::Resume`] |
//! | `{"sweep": true}` | the sweep schedule | [`Invocation::Sweep`] |
//!
//! A hand-off may also carry `"failed_attempts": <n>`: the failed attempts at the page it
//! resumes on, so the run still ends `SPLIT_FAILED` after `SPLIT_MAX_ATTEMPTS` however
//! often the wait for a retry crosses an invocation's deadline; and `"lease": "<token>"`,
//! the split's lease it hands on (see `Ledger::take_split_lease`), so the new invocation
//! splits on without waiting for the old one's lease to run out.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use microprocess_shared::run_id::{RunId, RunIdError};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

/// The `detail-type` of the events that EventBridge sends on a schedule.
pub const SCHEDULED_EVENT_DETAIL_TYPE: &str = "Scheduled Event";

const EXPECTED_SHAPES: &str =
    "an EventBridge scheduled event (`\"detail-type\": \"Scheduled Event\"` \
     with a `time`), a manual start request like `{\"run\": \"rerun-2026-11-01\"}`, \
     a hand-off like `{\"run\": \"rerun-2026-11-01\", \"resume\": true}` or a sweep \
     request `{\"sweep\": true}`";

/// What one invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Start, or resume, the split of one run.
    Run(StartRequest),
    /// Claim the reduce of finished runs that missed it; report stuck splits.
    Sweep,
}

/// A validated request about one run.
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
    /// The rest of a split handed over by an invocation that reached its deadline. It
    /// never creates a run.
    Resume {
        run: RunId,
        failed_attempts: u32,
        lease: Option<String>,
    },
}

/// The body of a manual start or a hand-off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    run: String,
    #[serde(default)]
    resume: bool,
    #[serde(default)]
    failed_attempts: Option<u32>,
    #[serde(default)]
    lease: Option<String>,
}

/// The body of a sweep request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepBody {
    sweep: bool,
}

/// Why an invocation's payload is not a request the splitter serves.
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
    #[error(
        "the manual start request is malformed ({0}); expected `{{\"run\": \"<run id>\"}}` \
         or, for a hand-off, `{{\"run\": \"<run id>\", \"resume\": true}}`"
    )]
    MalformedManualStart(serde_json::Error),
    #[error("`failed_attempts` and `lease` belong to a hand-off; add `\"resume\": true` or leave them out")]
    AttemptsWithoutResume,
    #[error("the sweep request is malformed ({0}); expected `{{\"sweep\": true}}`")]
    MalformedSweep(serde_json::Error),
    #[error("the sweep request says `\"sweep\": false`; send `{{\"sweep\": true}}` to sweep")]
    SweepFalse,
    #[error(transparent)]
    RunId(#[from] RunIdError),
}

impl Invocation {
    /// Parses and validates an invocation payload: an object with `sweep` is a sweep,
    /// anything else must be a [`StartRequest`].
    pub fn from_event(payload: Value) -> Result<Invocation, EventError> {
        if payload
            .as_object()
            .is_some_and(|object| object.contains_key("sweep"))
        {
            let body: SweepBody =
                serde_json::from_value(payload).map_err(EventError::MalformedSweep)?;
            return if body.sweep {
                Ok(Invocation::Sweep)
            } else {
                Err(EventError::SweepFalse)
            };
        }
        StartRequest::from_event(payload).map(Invocation::Run)
    }

    /// `schedule`, `manual`, `resume` or `sweep`, for logs.
    pub fn trigger(&self) -> &'static str {
        match self {
            Invocation::Run(request) => request.trigger(),
            Invocation::Sweep => "sweep",
        }
    }
}

impl StartRequest {
    /// Parses and validates a payload about one run. An object with `run` is a manual
    /// start or a hand-off; one with `detail-type` is an EventBridge event.
    pub fn from_event(payload: Value) -> Result<StartRequest, EventError> {
        let Some(object) = payload.as_object() else {
            return Err(EventError::Unrecognised);
        };
        if object.contains_key("run") {
            let body: RunBody =
                serde_json::from_value(payload).map_err(EventError::MalformedManualStart)?;
            let run = RunId::parse(&body.run)?;
            return match (body.resume, body.failed_attempts, body.lease) {
                (true, attempts, lease) => Ok(StartRequest::Resume {
                    run,
                    failed_attempts: attempts.unwrap_or(0),
                    lease: lease.filter(|l| !l.is_empty()),
                }),
                (false, Some(_), _) | (false, _, Some(_)) => Err(EventError::AttemptsWithoutResume),
                (false, None, None) => Ok(StartRequest::Manual { run }),
            };
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
            StartRequest::Scheduled { run, .. }
            | StartRequest::Manual { run }
            | StartRequest::Resume { run, .. } => run,
        }
    }

    /// `schedule`, `manual` or `resume`, for logs.
    pub fn trigger(&self) -> &'static str {
        match self {
            StartRequest::Scheduled { .. } => "schedule",
            StartRequest::Manual { .. } => "manual",
            StartRequest::Resume { .. } => "resume",
        }
    }

    /// Rejects a scheduled event that names another microprocess than `served`.
    pub fn check_microprocess(self, served: &str) -> Result<StartRequest, EventError> {
        match &self {
            StartRequest::Scheduled {
                microprocess: Some(event),
                ..
            } if event != served => Err(EventError::OtherMicroprocess {
                event: event.clone(),
                function: served.to_owned(),
            }),
            _ => Ok(self),
        }
    }
}

/// The payload of a hand-off: `{"run": "<id>", "resume": true}`, plus
/// `"failed_attempts"` when the page it resumes on has failed before.
pub fn resume_payload(run: &RunId, failed_attempts: u32, lease: Option<&str>) -> Value {
    let mut payload = serde_json::json!({"run": run.as_str(), "resume": true});
    if failed_attempts > 0 {
        payload["failed_attempts"] = Value::from(failed_attempts);
    }
    if let Some(lease) = lease {
        payload["lease"] = Value::from(lease);
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(id: &str) -> RunId {
        RunId::parse(id).unwrap()
    }

    #[test]
    fn a_hand_off_resumes_its_run() {
        assert_eq!(
            Invocation::from_event(json!({"run": "r-1", "resume": true})).unwrap(),
            Invocation::Run(StartRequest::Resume {
                run: run("r-1"),
                failed_attempts: 0,
                lease: None
            })
        );
        assert_eq!(
            Invocation::from_event(json!({"run": "r-1", "resume": true, "failed_attempts": 3}))
                .unwrap(),
            Invocation::Run(StartRequest::Resume {
                run: run("r-1"),
                failed_attempts: 3,
                lease: None
            })
        );
        assert_eq!(
            Invocation::from_event(json!({"run": "r-1", "resume": false})).unwrap(),
            Invocation::Run(StartRequest::Manual { run: run("r-1") })
        );
        assert_eq!(
            Invocation::from_event(json!({"run": "r-1", "resume": true}))
                .unwrap()
                .trigger(),
            "resume"
        );
    }

    #[test]
    fn resume_payloads_parse_back() {
        for (attempts, lease) in [(0, None), (2, Some("0123abcd"))] {
            let payload = resume_payload(&run("r-1"), attempts, lease);
            assert_eq!(
                StartRequest::from_event(payload).unwrap(),
                StartRequest::Resume {
                    run: run("r-1"),
                    failed_attempts: attempts,
                    lease: lease.map(str::to_string)
                }
            );
        }
        assert_eq!(
            resume_payload(&run("r-1"), 0, None),
            json!({"run": "r-1", "resume": true})
        );
    }

    #[test]
    fn bad_hand_offs_are_rejected() {
        for payload in [
            json!({"run": "r-1", "resume": "yes"}),
            json!({"run": "r-1", "resume": true, "failed_attempts": -1}),
            json!({"run": "r-1", "resume": true, "extra": 1}),
        ] {
            assert!(
                matches!(
                    Invocation::from_event(payload.clone()),
                    Err(EventError::MalformedManualStart(_))
                ),
                "{payload}"
            );
        }
        assert!(matches!(
            Invocation::from_event(json!({"run": "r-1", "failed_attempts": 2})),
            Err(EventError::AttemptsWithoutResume)
        ));
        assert!(matches!(
            Invocation::from_event(json!({"run": "a b", "resume": true})),
            Err(EventError::RunId(_))
        ));
    }

    #[test]
    fn a_sweep_request_sweeps() {
        assert_eq!(
            Invocation::from_event(json!({"sweep": true})).unwrap(),
            Invocation::Sweep
        );
        assert_eq!(Invocation::Sweep.trigger(), "sweep");
        assert!(matches!(
            Invocation::from_event(json!({"sweep": false})),
            Err(EventError::SweepFalse)
        ));
        for payload in [
            json!({"sweep": "true"}),
            json!({"sweep": true, "run": "r-1"}),
            json!({"sweep": null}),
        ] {
            assert!(
                matches!(
                    Invocation::from_event(payload.clone()),
                    Err(EventError::MalformedSweep(_))
                ),
                "{payload}"
            );
        }
    }

    #[test]
    fn the_unrecognised_message_names_every_shape() {
        let message = Invocation::from_event(json!({})).unwrap_err().to_string();
        for shape in [
            "Scheduled Event",
            "{\"run\":",
            "\"resume\": true",
            "{\"sweep\": true}",
        ] {
            assert!(message.contains(shape), "{message}");
        }
    }
}
