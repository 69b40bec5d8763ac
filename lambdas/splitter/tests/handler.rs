//! The splitter handler, called directly with `Context::default()` and JSON fixtures.

use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use microprocess_shared::settings::SplitterSettings;
use serde_json::{json, Value};
use splitter::{start_run, EventError, SplitterError, StartRequest};

fn settings() -> SplitterSettings {
    SplitterSettings::from_lookup(|name| {
        let value = match name {
            "MICROPROCESS_NAME" => "credit-scores",
            "LEDGER_TABLE" => "microprocesses-test-ledger",
            "QUEUE_URL" => "http://127.0.0.1:5000/123456789012/credit-scores",
            "QUEUE_BASE_URL" => "http://127.0.0.1:8081",
            "SPLIT_PATH" => "/jobs/credit-scores/split",
            "SPLIT_PAGE_SIZE" => "1000",
            "SPLIT_MAX_ATTEMPTS" => "5",
            "SIGNING_SECRET_ARN" => "arn:aws:secretsmanager:eu-west-1:123456789012:secret:signing",
            _ => return None,
        };
        Some(value.to_owned())
    })
    .expect("test settings are complete")
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
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("fixtures are JSON")
}

async fn invoke(payload: Value) -> SplitterError {
    let event = LambdaEvent::new(payload, Context::default());
    match start_run(&settings(), event).await {
        Ok(()) => panic!("this release must not report a started run"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn scheduled_event_names_the_run_after_its_time_and_is_not_dispatched() {
    let error = invoke(fixture("scheduled_event")).await;
    match &error {
        SplitterError::NotDispatching { microprocess, run } => {
            assert_eq!(microprocess, "credit-scores");
            assert_eq!(run.as_str(), "2026-11-01T02-00-00Z");
        }
        other => panic!("{other:?}"),
    }
    let diagnostic = Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "Splitter.NotDispatching");
    assert_eq!(
        diagnostic.error_message,
        "run `2026-11-01T02-00-00Z` of microprocess `credit-scores` was not started: this \
         release packages the splitter but does not dispatch yet (no split call, no ledger \
         record, no queue message); deploy a release with dispatch to run it"
    );
}

#[tokio::test]
async fn the_kits_scheduler_input_names_the_run_after_its_time() {
    match invoke(fixture("scheduler_event")).await {
        SplitterError::NotDispatching { run, .. } => {
            assert_eq!(run.as_str(), "2026-11-01T02-00-00Z")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_schedule_for_another_microprocess_is_rejected() {
    let mut event = fixture("scheduler_event");
    event["detail"]["microprocess"] = json!("invoices");
    let error = invoke(event).await;
    assert_eq!(
        error.to_string(),
        "no run started: the scheduled event is for microprocess `invoices` but this splitter \
         serves `credit-scores`; check the schedule's target"
    );
    let mut event = fixture("scheduler_event");
    event["detail"]["microprocess"] = json!(7);
    assert!(matches!(
        invoke(event).await,
        SplitterError::BadEvent(EventError::BadDetailMicroprocess(_))
    ));
}

#[tokio::test]
async fn a_repeated_schedule_delivery_names_the_same_run() {
    let first = StartRequest::from_event(fixture("scheduled_event")).unwrap();
    let mut again = fixture("scheduled_event");
    again["id"] = json!("another-delivery-id");
    let second = StartRequest::from_event(again).unwrap();
    assert_eq!(first.run(), second.run());
    assert_eq!(first.trigger(), "schedule");
}

#[tokio::test]
async fn manual_start_uses_the_given_run_id() {
    match invoke(fixture("manual_start")).await {
        SplitterError::NotDispatching { run, .. } => assert_eq!(run.as_str(), "rerun-2026-11-01"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        StartRequest::from_event(fixture("manual_start"))
            .unwrap()
            .trigger(),
        "manual"
    );
}

#[tokio::test]
async fn manual_start_with_a_bad_run_id_says_what_is_allowed() {
    let error = invoke(fixture("manual_start_bad_run")).await;
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
    let error = invoke(fixture("manual_start_extra_field")).await;
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
    let error = invoke(fixture("other_eventbridge_event")).await;
    assert!(
        matches!(&error, SplitterError::BadEvent(EventError::NotScheduled(t)) if t == "EC2 Instance State-change Notification"),
        "{error:?}"
    );
}

#[tokio::test]
async fn scheduled_event_needs_a_valid_time() {
    let error = invoke(fixture("scheduled_event_without_time")).await;
    assert!(
        matches!(error, SplitterError::BadEvent(EventError::MissingTime)),
        "{error:?}"
    );
    let error = invoke(fixture("scheduled_event_bad_time")).await;
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
        json!({"detail-type": 7}),
        json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-01T02:00:00Z", "detail": {}, "extra": true}),
        json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "+10000-01-01T00:00:00Z", "detail": {}}),
    ] {
        let error = invoke(payload.clone()).await;
        let message = error.to_string();
        assert!(!message.is_empty(), "{payload}");
        match error {
            SplitterError::BadEvent(_) => {}
            // Unknown keys of an EventBridge event are ignored, as AWS may add some.
            SplitterError::NotDispatching { run, .. } => {
                assert_eq!(run.as_str(), "2026-11-01T02-00-00Z", "{payload}")
            }
        }
    }
}

#[test]
fn unrecognised_payloads_name_both_accepted_shapes() {
    let error = StartRequest::from_event(json!({})).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the event is not a start request; expected an EventBridge scheduled event (`\"detail-type\": \"Scheduled \
         Event\"` with a `time`) or a manual start request like `{\"run\": \"rerun-2026-11-01\"}`"
    );
}
