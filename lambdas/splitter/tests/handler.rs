//! The splitter's invocation payloads, from JSON fixtures: what each shape becomes, and
//! how the handler rejects what it does not serve, before it touches any AWS service.
//! The runtime itself (ledger, queue, split endpoint) is tested against moto and the demo
//! service in `tests/splitter.rs` of the workspace.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use lambda_runtime::Diagnostic;
use microprocess_shared::settings::SplitterSettings;
use serde_json::{json, Value};
use splitter::{handle, Deadline, EventError, Invocation, Splitter, SplitterError, StartRequest};
use std::time::Duration;

fn settings() -> SplitterSettings {
    SplitterSettings::from_lookup(|name| {
        let value = match name {
            "MICROPROCESS_NAME" => "credit-scores",
            "LEDGER_TABLE" => "microprocesses-test-ledger",
            "QUEUE_URL" => "http://127.0.0.1:5000/123456789012/credit-scores",
            "QUEUE_BASE_URL" => "http://127.0.0.1:8081",
            "SPLIT_PATH" => "/jobs/credit-scores/split",
            "DEAD_LETTER_QUEUE_URL" => "http://127.0.0.1:5000/123456789012/credit-scores-dlq",
            "SPLIT_PAGE_SIZE" => "1000",
            "SPLIT_MAX_ATTEMPTS" => "5",
            "OVERLAP" => "skip",
            "RETENTION_DAYS" => "90",
            "COUNTER_SHARDS" => "1",
            "LEDGER_PARTITIONS" => "1",
            "SIGNING_SECRET_ARN" => "arn:aws:secretsmanager:eu-west-1:123456789012:secret:signing",
            _ => return None,
        };
        Some(value.to_owned())
    })
    .expect("test settings are complete")
}

/// A splitter whose clients point nowhere: these tests never get past the payload.
fn splitter() -> Splitter {
    let config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .build();
    Splitter::new(
        settings(),
        &config,
        "secret".to_string(),
        "credit-scores-splitter",
    )
    .expect("the test settings make a client")
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "scheduled_event" => include_str!("fixtures/scheduled_event.json"),
        "scheduler_event" => include_str!("fixtures/scheduler_event.json"),
        "scheduled_event_without_time" => {
            include_str!("fixtures/scheduled_event_without_time.json")
        }
        "scheduled_event_bad_time" => include_str!("fixtures/scheduled_event_bad_time.json"),
        "other_eventbridge_event" => include_str!("fixtures/other_eventbridge_event.json"),
        "manual_start" => include_str!("fixtures/manual_start.json"),
        "manual_start_bad_run" => include_str!("fixtures/manual_start_bad_run.json"),
        "manual_start_extra_field" => include_str!("fixtures/manual_start_extra_field.json"),
        "handoff" => include_str!("fixtures/handoff.json"),
        "sweep" => include_str!("fixtures/sweep.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("fixtures are JSON")
}

/// Runs the handler on a payload it must reject.
async fn rejected(payload: Value) -> SplitterError {
    match handle(
        &splitter(),
        payload.clone(),
        Deadline::after(Duration::from_secs(60)),
    )
    .await
    {
        Ok(outcome) => panic!("{payload} was accepted: {outcome:?}"),
        Err(error) => error,
    }
}

fn request(name: &str) -> StartRequest {
    match Invocation::from_event(fixture(name)) {
        Ok(Invocation::Run(request)) => request,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn scheduled_event_names_the_run_after_its_time() {
    let request = request("scheduled_event");
    assert_eq!(request.run().as_str(), "2026-11-01T02-00-00Z");
    assert_eq!(request.trigger(), "schedule");
    match request {
        StartRequest::Scheduled {
            event_id,
            microprocess,
            ..
        } => {
            assert_eq!(
                event_id.as_deref(),
                Some("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa")
            );
            assert_eq!(microprocess, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_kits_scheduler_input_names_the_run_after_its_time() {
    let request = request("scheduler_event");
    assert_eq!(request.run().as_str(), "2026-11-01T02-00-00Z");
    assert!(matches!(
        request,
        StartRequest::Scheduled { microprocess: Some(ref m), .. } if m == "credit-scores"
    ));
}

#[tokio::test]
async fn a_schedule_for_another_microprocess_is_rejected() {
    let mut event = fixture("scheduler_event");
    event["detail"]["microprocess"] = json!("invoices");
    let error = rejected(event).await;
    assert_eq!(
        error.to_string(),
        "no run started: the scheduled event is for microprocess `invoices` but this splitter \
         serves `credit-scores`; check the schedule's target"
    );
    let mut event = fixture("scheduler_event");
    event["detail"]["microprocess"] = json!(7);
    assert!(matches!(
        rejected(event).await,
        SplitterError::BadEvent(EventError::BadDetailMicroprocess(_))
    ));
}

#[test]
fn a_repeated_schedule_delivery_names_the_same_run() {
    let first = StartRequest::from_event(fixture("scheduled_event")).unwrap();
    let mut again = fixture("scheduled_event");
    again["id"] = json!("another-delivery-id");
    let second = StartRequest::from_event(again).unwrap();
    assert_eq!(first.run(), second.run());
}

#[test]
fn manual_start_uses_the_given_run_id() {
    let request = request("manual_start");
    assert_eq!(request.run().as_str(), "rerun-2026-11-01");
    assert_eq!(request.trigger(), "manual");
}

#[test]
fn a_hand_off_resumes_the_run_it_names() {
    let request = request("handoff");
    assert_eq!(
        request,
        StartRequest::Resume {
            run: "2026-11-01T02-00-00Z".parse().unwrap(),
            failed_attempts: 0,
            lease: None
        }
    );
    assert_eq!(request.trigger(), "resume");
}

#[test]
fn the_sweep_schedule_sweeps() {
    let invocation = Invocation::from_event(fixture("sweep")).unwrap();
    assert_eq!(invocation, Invocation::Sweep);
    assert_eq!(invocation.trigger(), "sweep");
}

#[tokio::test]
async fn manual_start_with_a_bad_run_id_says_what_is_allowed() {
    let error = rejected(fixture("manual_start_bad_run")).await;
    assert!(
        matches!(error, SplitterError::BadEvent(EventError::RunId(_))),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "no run started: run id `rerun 2026/11/01` contains ' ' at position 5; \
         use only letters, digits, `.`, `_` or `-`"
    );
    assert_eq!(Diagnostic::from(error).error_type, "Splitter.BadEvent");
}

#[tokio::test]
async fn manual_start_with_unknown_fields_is_rejected() {
    let error = rejected(fixture("manual_start_extra_field")).await;
    assert!(
        matches!(
            error,
            SplitterError::BadEvent(EventError::MalformedManualStart(_))
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("unknown field `microprocess`"),
        "{error}"
    );
}

#[tokio::test]
async fn other_eventbridge_events_do_not_start_runs() {
    let error = rejected(fixture("other_eventbridge_event")).await;
    assert!(
        matches!(&error, SplitterError::BadEvent(EventError::NotScheduled(t)) if t == "EC2 Instance State-change Notification"),
        "{error:?}"
    );
}

#[tokio::test]
async fn scheduled_event_needs_a_valid_time() {
    let error = rejected(fixture("scheduled_event_without_time")).await;
    assert!(
        matches!(error, SplitterError::BadEvent(EventError::MissingTime)),
        "{error:?}"
    );
    let error = rejected(fixture("scheduled_event_bad_time")).await;
    assert!(
        matches!(
            error,
            SplitterError::BadEvent(EventError::MalformedScheduledEvent(_))
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn anything_else_is_rejected_without_panicking() {
    for payload in [
        json!(null),
        json!("run"),
        json!(42),
        json!([{"run": "a"}]),
        json!({}),
        json!({"time": "2026-11-01T02:00:00Z"}),
        json!({"run": 7}),
        json!({"run": null}),
        json!({"run": "a", "resume": 1}),
        json!({"run": "a", "failed_attempts": 1}),
        json!({"sweep": 1}),
        json!({"sweep": false}),
        json!({"sweep": true, "run": "a"}),
        json!({"detail-type": 7}),
        json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "+10000-01-01T00:00:00Z", "detail": {}}),
    ] {
        let error = rejected(payload.clone()).await;
        assert!(!error.to_string().is_empty(), "{payload}");
        assert!(
            matches!(error, SplitterError::BadEvent(_)),
            "{payload}: {error:?}"
        );
        assert_eq!(Diagnostic::from(error).error_type, "Splitter.BadEvent");
    }
}

#[test]
fn unknown_keys_of_an_eventbridge_event_are_ignored() {
    // AWS may add keys to its events.
    let payload = json!({"detail-type": "Scheduled Event", "source": "aws.events",
                         "time": "2026-11-01T02:00:00Z", "detail": {}, "extra": true});
    match Invocation::from_event(payload).unwrap() {
        Invocation::Run(request) => assert_eq!(request.run().as_str(), "2026-11-01T02-00-00Z"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unrecognised_payloads_name_every_accepted_shape() {
    let error = Invocation::from_event(json!({})).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the event is not a start request; expected an EventBridge scheduled event \
         (`\"detail-type\": \"Scheduled Event\"` with a `time`), a manual start request like \
         `{\"run\": \"rerun-2026-11-01\"}`, a hand-off like `{\"run\": \"rerun-2026-11-01\", \
         \"resume\": true}` or a sweep request `{\"sweep\": true}`"
    );
}
