//! The forwarder handler, called directly with `Context::default()` and JSON fixtures.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use forwarder::{forward_batch, ForwarderError};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use microprocess_shared::settings::ForwarderSettings;
use serde_json::json;

fn settings() -> ForwarderSettings {
    ForwarderSettings::from_lookup(|name| {
        let value = match name {
            "MICROPROCESS_NAME" => "credit-scores",
            "LEDGER_TABLE" => "microprocesses-test-ledger",
            "QUEUE_URL" => "http://127.0.0.1:5000/123456789012/credit-scores",
            "QUEUE_BASE_URL" => "http://127.0.0.1:8081",
            "PROCESS_PATH" => "/jobs/credit-scores/process",
            "REDUCE_PATH" => "/jobs/credit-scores/reduce",
            "PROCESS_TIMEOUT_SECONDS" => "30",
            "MAX_ATTEMPTS" => "5",
            "SIGNING_SECRET_ARN" => "arn:aws:secretsmanager:eu-west-1:123456789012:secret:signing",
            _ => return None,
        };
        Some(value.to_owned())
    })
    .expect("test settings are complete")
}

fn batch(json: &str) -> SqsEvent {
    serde_json::from_str(json).expect("fixtures are SQS events")
}

async fn invoke(event: SqsEvent) -> Result<SqsBatchResponse, ForwarderError> {
    forward_batch(&settings(), LambdaEvent::new(event, Context::default())).await
}

fn identifiers(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.as_str())
        .collect()
}

#[tokio::test]
async fn every_message_is_kept_on_the_queue() {
    let response = invoke(batch(include_str!("fixtures/sqs_batch.json")))
        .await
        .unwrap();
    assert_eq!(
        identifiers(&response),
        [
            "059f36b4-87a3-44ab-83d2-661975830a7d",
            "2e1424d4-f796-459a-8184-9c92662be6da",
            "c80e8021-a70a-42c7-a470-796e1186f753",
        ]
    );
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": [
            {"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d"},
            {"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da"},
            {"itemIdentifier": "c80e8021-a70a-42c7-a470-796e1186f753"},
        ]})
    );
}

#[tokio::test]
async fn a_message_without_id_keeps_the_whole_batch() {
    let error = invoke(batch(include_str!(
        "fixtures/sqs_batch_with_message_without_id.json"
    )))
    .await
    .unwrap_err();
    assert!(matches!(
        error,
        ForwarderError::MessagesWithoutId { count: 2 }
    ));
    let diagnostic = Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "Forwarder.MessagesWithoutId");
    assert_eq!(
        diagnostic.error_message,
        "2 message(s) of the batch have no `messageId`, so they cannot be reported one by \
         one; the whole batch is left on the queue"
    );
}

#[tokio::test]
async fn a_repeated_id_is_reported_once() {
    let response = invoke(batch(include_str!(
        "fixtures/sqs_batch_with_duplicate_id.json"
    )))
    .await
    .unwrap();
    assert_eq!(
        identifiers(&response),
        ["059f36b4-87a3-44ab-83d2-661975830a7d"]
    );
}

#[tokio::test]
async fn an_empty_batch_reports_nothing() {
    let response = invoke(batch(r#"{"Records": []}"#)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
}

#[tokio::test]
async fn odd_bodies_are_kept_without_panicking() {
    let bodies = [
        json!(null),
        json!(""),
        json!("{\"kind\":\"process\",\"run\":\"../etc\",\"seq\":1,\"item\":\"x\"}"),
        json!("{\"kind\":\"process\",\"run\":\"r\",\"seq\":18446744073709551616,\"item\":\"x\"}"),
        json!("\u{0}\u{ffff}"),
        json!("[".repeat(10_000)),
    ];
    let records: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| json!({"messageId": format!("m-{i}"), "body": body}))
        .collect();
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
    let response = invoke(event).await.unwrap();
    assert_eq!(
        identifiers(&response),
        ["m-0", "m-1", "m-2", "m-3", "m-4", "m-5"]
    );
}
