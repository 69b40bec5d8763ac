//! The forwarder's handler driven by SQS events from JSON fixtures
//! (`tests/fixtures/forwarder/`) with `Context::default()`, as the Lambda runtime's own
//! examples test handlers: what it answers for each shape of batch. The ledger, the queues
//! and the service are the emulator's and the demo service's, as everywhere.

use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use chrono::Utc;
use demo_service::Chaos;
use forwarder::ForwarderError;
use kit_tests::pipeline::{ForwarderOptions, Pipeline, Setup, NAME};
use lambda_runtime::{Context, LambdaEvent};
use microprocess_shared::ledger::{Layout, Overlap};
use microprocess_shared::ledger_keys::RunState;
use microprocess_shared::run_id::RunId;

fn fixture(name: &str) -> SqsEvent {
    let path = format!(
        "{}/fixtures/forwarder/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn bench() -> Pipeline {
    Pipeline::start(Setup {
        chaos: Chaos::default(),
        forwarder: ForwarderOptions::default(),
        ..Setup::default()
    })
    .await
}

#[tokio::test]
async fn unreadable_messages_are_dead_lettered_with_the_reason_and_deleted() {
    let b = bench().await;
    let response = b
        .forwarder
        .handle(LambdaEvent::new(
            fixture("unreadable-messages"),
            Context::default(),
        ))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let letters = b.dead_letters().await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    for (_, reason) in &letters {
        assert!(
            reason.starts_with("message body is not a microprocess queue message"),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn a_batch_with_a_message_without_id_is_left_on_the_queue_whole() {
    let b = bench().await;
    let error = b
        .forwarder
        .handle(LambdaEvent::new(
            fixture("message-without-id"),
            Context::default(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        ForwarderError::MessagesWithoutId { count: 1 }
    ));
    assert!(b.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_message_of_a_run_not_in_the_ledger_is_dead_lettered() {
    let b = bench().await;
    let response = b
        .forwarder
        .handle(LambdaEvent::new(fixture("unknown-run"), Context::default()))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let letters = b.dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].1,
        "run `never-started` of `credit-scores` is not in the ledger"
    );
}

/// `Context::default()` has no time left: no call fits before its deadline, so none is
/// made, and both messages go back as copies that say how many attempts were made. The
/// copies then run as attempts 1 and 3 (the second was on its second receive of a copy
/// that said one attempt was made before it).
#[tokio::test]
async fn with_no_time_left_no_call_is_made_and_no_attempt_is_spent() {
    let b = bench().await;
    // A sealed run of two children; the fixture's two messages are theirs.
    let run = RunId::parse("fixture-run").unwrap();
    b.ledger
        .start_run(
            NAME,
            &run,
            Overlap::Allow,
            30,
            Layout::new(1, 2),
            Utc::now(),
        )
        .await
        .unwrap();
    b.ledger.seal(NAME, &run, 2, Utc::now()).await.unwrap();
    let response = b
        .forwarder
        .handle(LambdaEvent::new(
            fixture("process-batch"),
            Context::default(),
        ))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert!(
        b.service.stats().run(NAME, run.as_str()).is_none(),
        "no call"
    );
    b.drain(Duration::from_secs(30)).await;
    let stats = b.service.stats();
    let calls = stats.run(NAME, run.as_str()).unwrap();
    assert_eq!(calls.child(0).unwrap().attempts, [1]);
    assert_eq!(calls.child(1).unwrap().attempts, [3]);
    assert_eq!(b.record(&run).await.state, RunState::Completed);
}
