//! The forwarder against the emulator's real SQS, DynamoDB and S3 and the demo service
//! (a real HTTP service implementing the contract): the handler function is driven
//! directly with batches received from the queue, as the event source mapping would.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::Utc;
use demo_service::{Chaos, SeqSelector};
use forwarder::Forwarder;
use kit_tests::mapping::{depth, receive, settle};
use kit_tests::pipeline::{context, ForwarderOptions, Pipeline, Setup, NAME};
use lambda_runtime::LambdaEvent;
use microprocess_kit::runs::deployed::DeployedMicroprocess;
use microprocess_kit::runs::redrive;
use microprocess_shared::ledger::ChildResult;
use microprocess_shared::ledger_keys;
use microprocess_shared::ledger_keys::{ChildState, RunState};
use microprocess_shared::queue_message::{QueueMessage, ATTEMPTS_MADE_ATTRIBUTE};
use microprocess_shared::run_id::RunId;
use microprocess_shared::signing_secret::SigningKeys;

async fn bench(chaos: Chaos, options: ForwarderOptions) -> Pipeline {
    Pipeline::start(Setup {
        chaos,
        forwarder: options,
        ..Setup::default()
    })
    .await
}

#[tokio::test]
async fn a_run_completes_with_one_reduce_and_duplicates_change_nothing() {
    let b = bench(Chaos::default(), ForwarderOptions::default()).await;
    let run = b.run_with_children("r-happy", 25).await;
    b.drain(Duration::from_secs(60)).await;

    let record = b.record(&run).await;
    assert_eq!(record.state, RunState::Completed);
    assert_eq!(
        (record.succeeded, record.failed, record.total),
        (25, 0, Some(25))
    );
    let children = b.ledger.children(NAME, &run).await.unwrap();
    assert_eq!(children.len(), 25);
    assert!(children
        .iter()
        .all(|c| c.state == ChildState::Succeeded && c.result.is_some()));
    let stats = b.service.stats();
    assert_eq!(stats.run(NAME, run.as_str()).unwrap().reduce.calls, 1);

    // What the forwarder cost per child (the reduce included), counted at the SDK level.
    // moto reports no consumed capacity, so write units follow from the requests: per
    // batch a details PutItem and a count UpdateItem under 1 KB, one unit each; the block's
    // report, a TransactWriteItems of two items at 2 units each.
    let per_child = |n: u64| n as f64 / 25.0;
    let forwarder = b.forwarder_requests.snapshot();
    let count = |prefix: &str| -> u64 {
        forwarder
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    };
    let transactions = count("DynamoDB.TransactWriteItems");
    let write_units = 4 * transactions + count("DynamoDB.UpdateItem") + count("DynamoDB.PutItem");
    println!(
        "per child (25 children, batches of 10, reduce included): forwarder SQS requests {:.2}, DynamoDB requests {:.2}, DynamoDB write units {:.2}; event source mapping SQS requests {:.2}; by operation: forwarder {forwarder:?}, mapping {:?}",
        per_child(count("SQS.")),
        per_child(count("DynamoDB.")),
        per_child(write_units),
        per_child(b.mapping_requests.total()),
        b.mapping_requests.snapshot(),
    );
    assert_eq!(
        count("DynamoDB.PutItem"),
        3,
        "one details item per batch (its children are in one block)"
    );
    // The run's one block (25 seqs, sized by the seal) is reported once, by the forwarder
    // that completes it.
    assert_eq!(transactions, 1, "one report of the block");
    assert!(per_child(write_units) < 1.0, "{write_units} write units");

    // Duplicate delivery and redelivery after success: the same seqs again, twice.
    for seq in [3, 3, 17] {
        b.send_process(&run, seq).await;
    }
    b.drain(Duration::from_secs(30)).await;
    let again = b.record(&run).await;
    assert_eq!(
        (again.succeeded, again.failed, again.done, again.state),
        (25, 0, 25, RunState::Completed)
    );
    assert_eq!(b.reduce_calls(&run), 1);
    assert!(b.dead_letters().await.is_empty());
}

#[tokio::test]
async fn responses_are_classified_as_the_contract_says() {
    let chaos = Chaos {
        // 4xx: failed at once; 429 with Retry-After and timeouts: retried.
        fail_seqs_4xx: SeqSelector::Seqs([1].into()),
        retry_after: 1,
        retry_after_seqs: SeqSelector::Seqs([2].into()),
        slow_seqs: SeqSelector::Seqs([3, 4].into()),
        slow_ms: 3_000,
        slow_attempts: Some(1),
        ..Chaos::default()
    };
    let b = bench(
        chaos,
        ForwarderOptions {
            max_attempts: 3,
            process_timeout_seconds: 1,
            ..ForwarderOptions::default()
        },
    )
    .await;
    let run = b.run_with_children("r-classify", 6).await;
    b.drain(Duration::from_secs(90)).await;

    let children: BTreeMap<u64, _> = b
        .ledger
        .children(NAME, &run)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.seq, c))
        .collect();
    assert_eq!(children.len(), 6);
    let one = &children[&1];
    assert_eq!(one.state, ChildState::Failed);
    assert_eq!(one.attempts, 1, "a 4xx is not retried");
    assert!(
        one.reason.as_deref().unwrap().contains("422"),
        "{:?}",
        one.reason
    );
    for seq in [2, 3, 4] {
        assert_eq!(
            children[&seq].state,
            ChildState::Succeeded,
            "seq {seq} retried to success"
        );
        assert!(children[&seq].attempts >= 2, "seq {seq} took a retry");
    }
    let stats = b.service.stats();
    let run_stats = stats.run(NAME, run.as_str()).unwrap();
    assert_eq!(run_stats.child(2).unwrap().attempts.first(), Some(&1));
    let record = b.record(&run).await;
    assert_eq!(
        (record.succeeded, record.failed, record.state),
        (5, 1, RunState::Completed)
    );
    let dead = b.dead_letters().await;
    assert_eq!(
        dead.len(),
        1,
        "only the 4xx child is dead-lettered: {dead:?}"
    );
    assert!(dead[0].1.contains("422"));
}

#[tokio::test]
async fn a_child_failing_every_attempt_is_recorded_then_dead_lettered_and_redrive_moves_it() {
    let chaos = Chaos {
        fail_seqs_4xx: SeqSelector::None,
        slow_seqs: SeqSelector::Seqs([0].into()),
        slow_ms: 3_000,
        ..Chaos::default()
    };
    let b = bench(
        chaos,
        ForwarderOptions {
            max_attempts: 2,
            process_timeout_seconds: 1,
            ..ForwarderOptions::default()
        },
    )
    .await;
    let run = b.run_with_children("r-redrive", 3).await;
    b.drain(Duration::from_secs(60)).await;
    let record = b.record(&run).await;
    assert_eq!(
        (record.succeeded, record.failed, record.state),
        (2, 1, RunState::Completed)
    );
    let child = b
        .ledger
        .children(NAME, &run)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.seq == 0)
        .unwrap();
    assert_eq!((child.state, child.attempts), (ChildState::Failed, 2));
    assert!(
        child.reason.as_deref().unwrap().contains("attempt 2 of 2"),
        "{:?}",
        child.reason
    );
    assert_eq!(b.dead_letters().await.len(), 1);

    // The fix ships; the dead letter goes back to the queue and succeeds.
    b.service.service.set_chaos(Chaos::default()).unwrap();
    assert_eq!(b.redrive().await, 1);
    b.drain(Duration::from_secs(30)).await;
    let after = b.record(&run).await;
    assert_eq!((after.succeeded, after.failed, after.done), (3, 0, 3));
    let child = b
        .ledger
        .children(NAME, &run)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.seq == 0)
        .unwrap();
    assert_eq!(child.state, ChildState::Succeeded);
}

#[tokio::test]
async fn two_forwarders_finishing_the_last_children_claim_one_reduce() {
    let b = bench(Chaos::default(), ForwarderOptions::default()).await;
    for round in 0..5 {
        let run = b.run_with_children(&format!("r-race-{round}"), 2).await;
        let first = receive(&b.mapping_sqs, &b.queue_url, 1, 1).await;
        let second = receive(&b.mapping_sqs, &b.queue_url, 1, 1).await;
        assert_eq!((first.records.len(), second.records.len()), (1, 1));
        let (r1, r2) = tokio::join!(
            b.forwarder
                .handle(LambdaEvent::new(first.clone(), context())),
            b.forwarder
                .handle(LambdaEvent::new(second.clone(), context())),
        );
        settle(&b.mapping_sqs, &b.queue_url, &first, &r1.unwrap()).await;
        settle(&b.mapping_sqs, &b.queue_url, &second, &r2.unwrap()).await;
        let record = b.record(&run).await;
        assert_eq!(record.state, RunState::Reducing, "round {round}");
        let (visible, in_flight) = depth(&b.sqs, &b.queue_url).await;
        assert_eq!(
            visible + in_flight,
            1,
            "round {round}: exactly one reduce message"
        );
        b.drain(Duration::from_secs(30)).await;
        assert_eq!(b.reduce_calls(&run), 1);
    }
}

/// A forwarder killed between winning the reduce claim and queueing the reduce message:
/// the run's 3 children are counted and the run is `REDUCING`, with no "queued" note.
/// `redelivered`: the killed forwarder had received the batch, which is visible again,
/// as after the visibility timeout; otherwise the messages were never received.
async fn claimed_but_never_queued(
    b: &Pipeline,
    name: &str,
    claimed_ago: chrono::Duration,
    redelivered: bool,
) -> RunId {
    let run = b.run_with_children(name, 3).await;
    if redelivered {
        let killed = receive(&b.mapping_sqs, &b.queue_url, 10, 0).await;
        assert_eq!(killed.records.len(), 3);
        for message in &killed.records {
            b.sqs
                .change_message_visibility()
                .queue_url(&b.queue_url)
                .receipt_handle(message.receipt_handle.clone().unwrap())
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        }
    }
    assert!(b.count_succeeded(&run, 3).await.complete);
    let claimed_at = Utc::now() - claimed_ago;
    assert!(b
        .ledger
        .try_claim_reduce(NAME, &run, claimed_at)
        .await
        .unwrap());
    run
}

#[tokio::test]
async fn a_claimer_stopped_before_queueing_the_reduce_is_covered_by_its_redelivered_batch() {
    let b = bench(Chaos::default(), ForwarderOptions::default()).await;

    // An old claim: the redelivered batch queues the reduce at once.
    let run =
        claimed_but_never_queued(&b, "r-orphan-old", chrono::Duration::seconds(30), true).await;
    b.step(10).await.unwrap();
    let record = b.record(&run).await;
    assert_eq!(record.state, RunState::Reducing);
    assert!(record.reduce_queued_at.is_some(), "{record:?}");
    assert_eq!(
        depth(&b.sqs, &b.queue_url).await,
        (1, 0),
        "one reduce message"
    );
    b.drain(Duration::from_secs(30)).await;
    assert_eq!(b.record(&run).await.state, RunState::Completed);
    assert_eq!(b.reduce_calls(&run), 1);

    // A claim made just now: its claimer may still be sending, so the batch waits out the
    // grace, then queues the reduce because no note appeared.
    let run = claimed_but_never_queued(&b, "r-orphan-young", chrono::Duration::zero(), true).await;
    b.step(10).await.unwrap();
    let record = b.record(&run).await;
    let (claimed, queued) = (record.reduce_claimed_at.unwrap(), record.reduce_queued_at);
    // The ledger keeps whole seconds: the note is at least the grace after the claim.
    assert!(
        queued.is_some_and(|at| at - claimed >= chrono::Duration::seconds(2)),
        "{record:?}"
    );
    b.drain(Duration::from_secs(30)).await;
    assert_eq!(b.record(&run).await.state, RunState::Completed);
    assert_eq!(b.reduce_calls(&run), 1);

    // A batch received for the first time is not a stopped claimer's: a forwarder that
    // finished its children just as the claimer won the claim queues nothing.
    let run =
        claimed_but_never_queued(&b, "r-orphan-first", chrono::Duration::seconds(30), false).await;
    b.step(10).await.unwrap();
    assert_eq!(
        depth(&b.sqs, &b.queue_url).await,
        (0, 0),
        "no reduce message"
    );
    assert!(b.record(&run).await.reduce_queued_at.is_none());

    // A claim whose reduce was queued and noted: a redelivered batch queues nothing more.
    let run =
        claimed_but_never_queued(&b, "r-orphan-noted", chrono::Duration::seconds(30), true).await;
    b.ledger
        .mark_reduce_queued(NAME, &run, Utc::now())
        .await
        .unwrap();
    b.step(10).await.unwrap();
    assert_eq!(
        depth(&b.sqs, &b.queue_url).await,
        (0, 0),
        "no reduce message"
    );
    assert_eq!(b.record(&run).await.state, RunState::Reducing);
    assert!(b.dead_letters().await.is_empty());
}

#[tokio::test]
async fn the_rate_cap_holds_over_a_run() {
    // 40 calls a second over MAX_CONCURRENCY 2: this forwarder's share is 20 a second,
    // saved up to one batch of 10, from an empty bucket (the exact pacing is `rate.rs`'s
    // unit tests).
    let b = bench(
        Chaos::default(),
        ForwarderOptions {
            rate_limit_per_second: 40,
            ..ForwarderOptions::default()
        },
    )
    .await;
    let run = b.run_with_children("r-capped", 50).await;
    let started = std::time::Instant::now();
    b.drain(Duration::from_secs(60)).await;
    // 50 calls at 20 a second, the first batch saved up while the first tokens come.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(b.record(&run).await.state, RunState::Completed);
    assert_eq!(
        b.service.stats().run(NAME, run.as_str()).unwrap().succeeded,
        50
    );
}

#[tokio::test]
async fn malformed_messages_are_dead_lettered_with_the_reason() {
    let b = bench(Chaos::default(), ForwarderOptions::default()).await;
    let unknown = QueueMessage::Process {
        run: RunId::parse("never-started").unwrap(),
        seq: 0,
        item: "x".into(),
        payload: None,
    }
    .to_body();
    for body in ["not json", r#"{"kind":"process"}"#, unknown.as_str()] {
        b.sqs
            .send_message()
            .queue_url(&b.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    b.drain(Duration::from_secs(30)).await;
    let dead = b.dead_letters().await;
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert!(dead
        .iter()
        .any(|(_, r)| r.contains("not a microprocess queue message")));
    assert!(dead.iter().any(|(_, r)| r.contains("is not in the ledger")));
}

#[tokio::test]
async fn a_reduce_failing_every_attempt_leaves_reduce_failed() {
    let chaos = Chaos {
        reduce_failures: 100,
        ..Chaos::default()
    };
    let b = bench(
        chaos,
        ForwarderOptions {
            max_attempts: 2,
            ..ForwarderOptions::default()
        },
    )
    .await;
    let run = b.run_with_children("r-reduce-failed", 2).await;
    b.drain(Duration::from_secs(60)).await;
    let record = b.record(&run).await;
    assert_eq!(record.state, RunState::ReduceFailed);
    assert!(
        record.reason.as_deref().unwrap().contains("503"),
        "{:?}",
        record.reason
    );
    assert_eq!(b.reduce_calls(&run), 2);
    assert_eq!(
        b.dead_letters().await.len(),
        1,
        "the reduce message is dead-lettered"
    );
}

#[tokio::test]
async fn reduce_failures_are_retried_until_it_succeeds() {
    let chaos = Chaos {
        reduce_failures: 2,
        ..Chaos::default()
    };
    let b = bench(
        chaos,
        ForwarderOptions {
            max_attempts: 4,
            ..ForwarderOptions::default()
        },
    )
    .await;
    let run = b.run_with_children("r-reduce", 3).await;
    b.drain(Duration::from_secs(60)).await;
    let record = b.record(&run).await;
    assert_eq!(record.state, RunState::Completed);
    assert_eq!(b.reduce_calls(&run), 3);
}

#[tokio::test]
async fn a_result_over_64_kib_is_stored_in_the_bucket_by_reference() {
    let chaos = Chaos {
        large_result_seqs: SeqSelector::Seqs([1].into()),
        ..Chaos::default()
    };
    let b = bench(chaos, ForwarderOptions::default()).await;
    let run = b.run_with_children("r-large", 3).await;
    b.drain(Duration::from_secs(60)).await;
    let children: BTreeMap<u64, _> = b
        .ledger
        .children(NAME, &run)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.seq, c))
        .collect();
    assert!(matches!(children[&0].result, Some(ChildResult::Inline(_))));
    let Some(ChildResult::Stored { s3_uri }) = &children[&1].result else {
        panic!("seq 1: {:?}", children[&1].result);
    };
    assert_eq!(s3_uri, "s3://results/results/credit-scores/r-large/1.json");
    let s3 = aws_sdk_s3::Client::new(&b.config);
    let object = s3
        .get_object()
        .bucket("results")
        .key("results/credit-scores/r-large/1.json")
        .send()
        .await
        .unwrap();
    let body = object.body.collect().await.unwrap().into_bytes();
    assert!(body.len() > 100 * 1024);
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(value["score"].is_number());
    let tags = s3
        .get_object_tagging()
        .bucket("results")
        .key("results/credit-scores/r-large/1.json")
        .send()
        .await
        .unwrap();
    assert!(tags
        .tag_set()
        .iter()
        .any(|t| t.key() == "microprocess:expire-after-days" && t.value() == "30"));
}

/// A ledger overloaded for longer than one round of the ledger's retries (more throttled
/// requests in a row than the retry policy makes) but shorter than the invocation: the
/// forwarder keeps recording until its deadline instead of sending the batch back, so no
/// child loses an attempt to the ledger and the service is called once per child.
#[tokio::test]
async fn a_ledger_throttled_past_one_round_of_retries_costs_no_attempt() {
    use kit_tests::faults::{dynamodb, throttling, Fault, FaultyHttp};
    use microprocess_shared::ledger::RetryPolicy;
    use std::sync::atomic::{AtomicU64, Ordering};

    let retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    // The first 10 counts of a block are throttled: two and a half rounds of 4 attempts.
    let throttled = AtomicU64::new(0);
    let faulty = FaultyHttp::by_body(move |operation, body| {
        if operation == dynamodb("UpdateItem")
            && body.contains("counted")
            && throttled.fetch_add(1, Ordering::SeqCst) < 10
        {
            throttling()
        } else {
            Fault::Pass
        }
    });
    let b = bench(
        Chaos::default(),
        ForwarderOptions {
            http: Some(faulty.shared()),
            ledger_retry: Some(retry),
            ..ForwarderOptions::default()
        },
    )
    .await;
    let run = b.run_with_children("r-overloaded", 10).await;
    b.drain(Duration::from_secs(60)).await;

    let record = b.record(&run).await;
    assert_eq!(record.state, RunState::Completed, "{record:?}");
    assert_eq!(record.succeeded, 10);
    let stats = b.service.stats();
    let seen = stats.run(NAME, run.as_str()).unwrap();
    let calls: Vec<u64> = (0..10).map(|seq| seen.child(seq).unwrap().calls).collect();
    assert_eq!(
        calls,
        vec![1; 10],
        "a child was called again after the ledger failed"
    );
    assert_eq!(
        faulty.injected().get(&dynamodb("UpdateItem")).copied(),
        Some(10)
    );
}

/// Before the fix the forwarder read any answer whole: a 300 KB body was stored and the
/// child counted `SUCCEEDED`, and a hostile one could outgrow the function's memory.
#[tokio::test]
async fn an_answer_over_the_result_limit_fails_its_child_at_once_naming_the_limit() {
    let b = bench(
        Chaos {
            large_result_seqs: SeqSelector::Seqs([2].into()),
            large_result_bytes: 300 * 1024,
            ..Chaos::default()
        },
        ForwarderOptions {
            result_limit: 128 * 1024,
            ..ForwarderOptions::default()
        },
    )
    .await;
    let run = b.run_with_children("r-limit", 5).await;
    b.drain(Duration::from_secs(60)).await;
    let record = b.record(&run).await;
    assert_eq!((record.succeeded, record.failed), (4, 1));
    let child = b.ledger.child(NAME, &run, 2).await.unwrap().unwrap();
    assert_eq!((child.state, child.attempts), (ChildState::Failed, 1));
    let reason = child.reason.unwrap();
    assert!(
        reason.contains("over 131072 bytes, the result limit (`delivery.result_limit_kib`)"),
        "{reason}"
    );
    let stats = b.service.stats();
    assert_eq!(
        stats
            .run(NAME, run.as_str())
            .unwrap()
            .child(2)
            .unwrap()
            .calls,
        1
    );
}

/// Before the fix every call of the batch was made whatever the rate cap's wait: with a
/// low cap the batch ran past the function's deadline (Lambda would stop it and every
/// message would lose an attempt). Now a call starts only if its timeout and the ledger
/// write fit before the deadline; the others go back with no attempt spent.
#[tokio::test]
async fn a_call_that_cannot_finish_before_the_deadline_is_not_started_and_costs_no_attempt() {
    // 2 calls a second over 2 forwarders: this one's share is one call a second.
    let b = bench(
        Chaos::default(),
        ForwarderOptions {
            rate_limit_per_second: 2,
            process_timeout_seconds: 1,
            ..ForwarderOptions::default()
        },
    )
    .await;
    let run = b.run_with_children("r-deadline", 10).await;
    let event = receive(&b.mapping_sqs, &b.queue_url, 10, 0).await;
    assert_eq!(event.records.len(), 10);
    // Six seconds left: calls may start up to 6 - 1 (timeout) - 2 (recording) = 3 s in.
    let mut context = context();
    context.deadline = (Utc::now().timestamp_millis() + 6_000) as u64;
    let started = std::time::Instant::now();
    let response = b
        .forwarder
        .handle(LambdaEvent::new(event.clone(), context))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    settle(&b.mapping_sqs, &b.queue_url, &event, &response).await;
    let called = b
        .service
        .stats()
        .run(NAME, run.as_str())
        .unwrap()
        .process_calls;
    assert!((1..=3).contains(&called), "{called} calls");

    // The rest come back as first attempts and finish.
    b.drain(Duration::from_secs(60)).await;
    let record = b.record(&run).await;
    assert_eq!((record.succeeded, record.state), (10, RunState::Completed));
    let stats = b.service.stats();
    let run_stats = stats.run(NAME, run.as_str()).unwrap();
    for seq in 0..10 {
        assert_eq!(run_stats.child(seq).unwrap().attempts, [1], "seq {seq}");
    }
}

/// Before the fix the forwarder called the service for every child of a run that had
/// ended `SPLIT_FAILED`, for nothing: no reduce ever comes.
#[tokio::test]
async fn children_of_a_run_that_ended_are_dropped_without_a_call() {
    let b = bench(Chaos::default(), ForwarderOptions::default()).await;
    let run = RunId::parse("r-ended").unwrap();
    b.ledger
        .start_run(
            NAME,
            &run,
            microprocess_shared::ledger::Overlap::Allow,
            30,
            microprocess_shared::ledger::Layout::new(1, 2),
            Utc::now(),
        )
        .await
        .unwrap();
    for seq in 0..5 {
        b.send_process(&run, seq).await;
    }
    b.ledger
        .split_failed(
            NAME,
            &run,
            None,
            "the split endpoint kept failing",
            Utc::now(),
        )
        .await
        .unwrap();
    b.drain(Duration::from_secs(30)).await;
    assert!(b.service.stats().run(NAME, run.as_str()).is_none());
    assert!(b.dead_letters().await.is_empty());
    assert_eq!(b.record(&run).await.state, RunState::SplitFailed);
}

/// During a rotation the secret holds the new key and the old one. Before the fix the kit
/// signed with the new key alone, and a service that had not rolled yet answered 401 to
/// every call: every child failed.
#[tokio::test]
async fn during_a_rotation_a_service_holding_only_the_old_key_accepts_the_calls() {
    let b = Pipeline::start(Setup {
        service_secrets: Some(vec!["old-key".into()]),
        forwarder: ForwarderOptions {
            secret: r#"{"current": "new-key", "previous": "old-key"}"#.into(),
            ..ForwarderOptions::default()
        },
        ..Setup::default()
    })
    .await;
    let run = b.run_with_children("r-rotation", 5).await;
    b.drain(Duration::from_secs(60)).await;
    let record = b.record(&run).await;
    assert_eq!((record.succeeded, record.failed), (5, 0));
}

/// A child's record expired (DynamoDB deleted it after `results.retention_days`) while
/// its letter was still in the dead-letter queue. Before the fix a redriven copy counted
/// as new: the run's counters went past its total. Now the forwarder refuses a seq it
/// cannot account for and dead-letters it with the reason.
#[tokio::test]
async fn a_child_whose_record_expired_is_refused_not_counted_twice() {
    let b = bench(Chaos::default(), ForwarderOptions::default()).await;
    let run = b.run_with_children("r-expired", 5).await;
    b.drain(Duration::from_secs(60)).await;
    assert_eq!(b.record(&run).await.succeeded, 5);

    // TTL deletes the one block of the run's five children (its details with it).
    expire_block(&b, &run, 0).await;

    b.send_process(&run, 2).await;
    b.drain(Duration::from_secs(30)).await;
    let record = b.record(&run).await;
    assert_eq!((record.succeeded, record.failed, record.done), (5, 0, 5));
    let letters = b.dead_letters().await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0]
            .1
            .contains("seq 2 of run `r-expired` is not in the ledger"),
        "{letters:?}"
    );
}

/// A duplicate of a child that has succeeded fails: it arrives after the last allowed
/// attempt (a copy that says three attempts were made, of three), so it is recorded
/// `FAILED` without a call. Before the fix its message was dead-lettered, raising the
/// dead-letter alarm for a child that is done; now it is deleted, the ledger unchanged.
#[tokio::test]
async fn a_failing_duplicate_of_a_child_that_succeeded_is_not_dead_lettered() {
    let b = bench(Chaos::default(), ForwarderOptions::default()).await;
    let run = b.run_with_children("r-dup-fail", 15).await;
    while b.ledger.child_state(NAME, &run, 3).await.unwrap() != ChildState::Succeeded {
        b.step(10).await.unwrap();
    }
    let body = QueueMessage::Process {
        run: run.clone(),
        seq: 3,
        item: demo_service::paging::item_id(3),
        payload: None,
    }
    .to_body();
    b.sqs
        .send_message()
        .queue_url(&b.queue_url)
        .message_body(body)
        .message_attributes(
            ATTEMPTS_MADE_ATTRIBUTE,
            MessageAttributeValue::builder()
                .data_type("Number")
                .string_value("3")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    b.drain(Duration::from_secs(60)).await;
    let record = b.record(&run).await;
    assert_eq!((record.succeeded, record.failed), (15, 0));
    assert!(b.dead_letters().await.is_empty());
}

/// A service answers a refusal with a body of control bytes and terminal escapes. Before
/// the fix they went into the dead letter's reason attribute, which SQS refuses: the
/// message could never reach its dead-letter queue and came back for good. Now the reason
/// is stripped to what can be shown and carried.
#[tokio::test]
async fn a_hostile_error_body_is_stripped_before_it_reaches_an_attribute() {
    let b = bench(
        Chaos {
            hostile_error_seqs: SeqSelector::Seqs([1].into()),
            ..Chaos::default()
        },
        ForwarderOptions::default(),
    )
    .await;
    let run = b.run_with_children("r-hostile", 3).await;
    b.drain(Duration::from_secs(60)).await;
    let record = b.record(&run).await;
    assert_eq!(
        (record.succeeded, record.failed, record.state),
        (2, 1, RunState::Completed)
    );
    let letters = b.dead_letters().await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        letters[0].1,
        "HTTP 422 Unprocessable Entity: refused for good"
    );
    let child = b.ledger.child(NAME, &run, 1).await.unwrap().unwrap();
    assert_eq!(
        child.reason.as_deref(),
        Some("HTTP 422 Unprocessable Entity: refused for good")
    );
}

/// The secret is rotated while the forwarder runs: it started with the old key, the
/// service has rolled to the new one and answers 401. Before the fix every child failed
/// for good (401 is permanent); now the forwarder reads the secret again on the 401,
/// finds the new key and sends the call again.
#[tokio::test]
async fn a_forwarder_that_started_before_a_rotation_reads_the_secret_again_on_a_401() {
    let b = Pipeline::start(Setup {
        service_secrets: Some(vec!["new-key".into()]),
        ..Setup::default()
    })
    .await;
    let secrets = aws_sdk_secretsmanager::Client::new(&b.config);
    let arn = secrets
        .create_secret()
        .name("signing-rotated")
        .secret_string("old-key")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let keys = SigningKeys::fetch(&b.config, &arn).await.unwrap();
    assert_eq!(keys.current(), ["old-key"]);
    let forwarder = Forwarder::new(b.forwarder.settings.clone(), &b.config, keys).unwrap();
    secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(r#"{"current": "new-key", "previous": "old-key"}"#)
        .send()
        .await
        .unwrap();

    let run = b.run_with_children("r-rotated", 5).await;
    b.drain_with(&forwarder, 1, Duration::from_secs(60)).await;
    let record = b.record(&run).await;
    assert_eq!((record.succeeded, record.failed), (5, 0));
    assert!(b.dead_letters().await.is_empty());
}

/// A run completed long ago; one child's letter is still in the dead-letter queue, but
/// its record has expired. Before the fix redrive sent it back and the forwarder counted
/// it as new (`succeeded + failed` past `total`); now redrive leaves it where it is and
/// says why, and sends the letters it can account for.
#[tokio::test]
async fn redrive_leaves_a_letter_whose_child_record_expired_in_the_dead_letter_queue() {
    let b = Pipeline::start(Setup {
        items: 105,
        chaos: Chaos {
            fail_seqs_4xx: SeqSelector::Seqs([1, 102].into()),
            ..Chaos::default()
        },
        ..Setup::default()
    })
    .await;
    let run = b.run_with_children("r-redrive-expired", 105).await;
    b.drain(Duration::from_secs(60)).await;
    let record = b.record(&run).await;
    let failed: Vec<_> = b
        .ledger
        .children(NAME, &run)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.state == ChildState::Failed)
        .map(|c| (c.seq, c.reason))
        .collect();
    assert_eq!(
        (record.failed, record.state),
        (2, RunState::Completed),
        "{failed:?}"
    );

    // TTL deletes block 0 (seqs 0 to 99, seq 1's failure with them); block 1 stays.
    expire_block(&b, &run, 0).await;

    let mp = DeployedMicroprocess {
        name: NAME.to_string(),
        queue_url: b.queue_url.clone(),
        dead_letter_queue_url: b.dlq_url.clone(),
        splitter: "splitter".into(),
        forwarder: "forwarder".into(),
        callback_url: None,
    };
    b.service.service.set_fixed(true);
    let moved = redrive::move_back(&b.ledger, &b.sqs, &mp, &run)
        .await
        .unwrap();
    assert_eq!(moved.unaccounted, [1].into());
    assert_eq!(moved.children, [102].into());
    b.drain(Duration::from_secs(60)).await;
    let record = b.record(&run).await;
    assert_eq!(
        (record.succeeded + record.failed, record.total),
        (105, Some(105)),
        "nothing counted twice"
    );
}

/// Deletes block `block` of `run` and its details, as DynamoDB's TTL does once their
/// `expires_at` has passed.
async fn expire_block(b: &Pipeline, run: &RunId, block: u64) {
    let dynamodb = aws_sdk_dynamodb::Client::new(&b.config);
    let pk = ledger_keys::child_partition_key(NAME, run, ledger_keys::partition_of(block, 2));
    let items = dynamodb
        .query()
        .table_name(&b.table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :block)")
        .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
        .expression_attribute_values(
            ":block",
            AttributeValue::S(ledger_keys::block_sort_key(block)),
        )
        .send()
        .await
        .unwrap();
    assert!(
        !items.items().is_empty(),
        "block {block} of `{run}` is not there"
    );
    for item in items.items() {
        dynamodb
            .delete_item()
            .table_name(&b.table)
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", item["sk"].clone())
            .send()
            .await
            .unwrap();
    }
}

/// `microprocess cancel` mid-run (contract 1.1, Reduce: "a run that is cancelled ends
/// `CANCELLED`: no further process calls, no reduce"): the run's queued messages are
/// dropped without a call, its reduce is never claimed, and a second cancel changes
/// nothing, while a run that has ended cannot be cancelled.
#[tokio::test]
async fn a_cancelled_run_gets_no_further_calls_and_no_reduce() {
    let b = bench(Chaos::default(), ForwarderOptions::default()).await;
    let run = b.run_with_children("r-cancelled", 30).await;
    b.step(10).await.unwrap();
    let called = b
        .service
        .stats()
        .run(NAME, run.as_str())
        .unwrap()
        .process_calls;
    assert!((1..=10).contains(&called), "{called}");

    assert_eq!(
        b.ledger
            .cancel(NAME, &run, "cancelled by hand", Utc::now())
            .await
            .unwrap(),
        None
    );
    b.drain(Duration::from_secs(30)).await;
    let record = b.record(&run).await;
    assert_eq!(record.state, RunState::Cancelled);
    assert_eq!(record.reason.as_deref(), Some("cancelled by hand"));
    let stats = b.service.stats();
    assert_eq!(stats.run(NAME, run.as_str()).unwrap().process_calls, called);
    assert_eq!(b.reduce_calls(&run), 0);
    assert!(b.dead_letters().await.is_empty());
    // Again: nothing changes; an ended run cannot be cancelled.
    assert_eq!(
        b.ledger
            .cancel(NAME, &run, "again", Utc::now())
            .await
            .unwrap(),
        None
    );
    let done = b.run_with_children("r-done", 2).await;
    b.drain(Duration::from_secs(30)).await;
    assert_eq!(
        b.ledger
            .cancel(NAME, &done, "late", Utc::now())
            .await
            .unwrap(),
        Some(RunState::Completed)
    );
}

/// A pipeline of `items` whose `failing` seqs fail for good, tolerating `percent`.
async fn tolerating(percent: u32, items: u64, failing: &str) -> Pipeline {
    Pipeline::start(Setup {
        items,
        chaos: Chaos {
            fail_seqs_4xx: failing.parse().unwrap(),
            ..Chaos::default()
        },
        forwarder: ForwarderOptions {
            tolerated_failure_percent: Some(percent),
            ..ForwarderOptions::default()
        },
        ..Setup::default()
    })
    .await
}

#[tokio::test]
async fn a_run_past_its_failure_tolerance_is_cancelled_with_the_reason() {
    let b = tolerating(5, 300, "0-19,100-119,200-219").await;
    let run = b.run_with_children("r-intolerable", 300).await;
    b.drain(Duration::from_secs(60)).await;
    let record = b.record(&run).await;
    assert_eq!(record.state, RunState::Cancelled, "{record:?}");
    let reason = record.reason.unwrap_or_default();
    assert!(
        reason.contains("20 of 300 children failed, more than the tolerated 5% (`process.tolerated_failure_percent`)"),
        "{reason}"
    );
    assert_eq!(b.reduce_calls(&run), 0, "a cancelled run gets no reduce");
    let calls = b
        .service
        .stats()
        .run(NAME, run.as_str())
        .unwrap()
        .process_calls;
    assert!(
        calls < 300,
        "the run's later messages were dropped without a call: {calls}"
    );

    // Within the tolerance, a run completes with its failures.
    let b = tolerating(5, 100, "0-4").await;
    let run = b.run_with_children("r-tolerable", 100).await;
    b.drain(Duration::from_secs(60)).await;
    let record = b.record(&run).await;
    assert_eq!((record.state, record.failed), (RunState::Completed, 5));
}
