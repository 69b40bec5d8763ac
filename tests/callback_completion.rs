//! Callback completion (contract 1.1, section 2b) on the emulator: the forwarder's calls
//! carry the callback URL, the demo service answers `202` and reports to the callback
//! (the kit's handler behind the local runner's function URL translation), and the
//! ledger counts each child once whatever happens to the reports.

use std::time::Duration;

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use demo_service::Chaos;
use kit_tests::pipeline::{Pipeline, Setup, NAME, SECRET};
use microprocess_kit::local::function_url;
use microprocess_shared::contract::{CallbackReport, ReportOutcome};
use microprocess_shared::ledger_keys::{ChildState, RunState};
use microprocess_shared::run_id::RunId;
use microprocess_shared::signing::{sign, signature_header};

const LEASE: Duration = Duration::from_secs(2);

async fn pipeline(items: u64, chaos: Chaos) -> Pipeline {
    Pipeline::start(Setup {
        items,
        chaos,
        visibility_timeout: 3,
        callback_lease: Some(LEASE),
        long_task: Some((Duration::from_millis(300), Duration::from_millis(100))),
        ..Setup::default()
    })
    .await
}

fn seqs(list: &str) -> demo_service::SeqSelector {
    list.parse().unwrap()
}

/// Runs children `0..total` of a fresh run through the forwarder until the queue is empty
/// (delayed lease checks included) and the run has ended.
async fn run(p: &Pipeline, total: u64) -> RunId {
    let run = p.run_with_children("2026-07-01T03-00-00Z", total).await;
    settle(p, &run).await;
    run
}

/// Drains the queue until `run` has ended and no lease check waits on the queue.
async fn settle(p: &Pipeline, run: &RunId) {
    let started = std::time::Instant::now();
    loop {
        p.drain(Duration::from_secs(60)).await;
        let record = p.record(run).await;
        if record.state.is_terminal() && p.delayed().await == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run did not end: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn child(p: &Pipeline, run: &RunId, seq: u64) -> microprocess_shared::ledger::ChildRecord {
    p.ledger
        .child(NAME, run, seq)
        .await
        .unwrap()
        .expect("the child is counted")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_task_completes_by_its_report_after_a_202() {
    let p = pipeline(3, Chaos::default()).await;
    let run = run(&p, 3).await;
    let record = p.record(&run).await;
    assert_eq!(record.state, RunState::Completed);
    assert_eq!((record.succeeded, record.failed), (3, 0));
    let stats = p.service.stats();
    assert_eq!(stats.accepted, 3, "every call was answered 202");
    assert!(
        stats.reports_sent.heartbeat > 0,
        "heartbeats came before the report"
    );
    for seq in 0..3 {
        let c = child(&p, &run, seq).await;
        assert_eq!((c.state, c.attempts), (ChildState::Succeeded, 1));
        let result = format!("{:?}", c.result);
        assert!(result.contains("annual report of"), "{result}");
        let calls = stats
            .run(NAME, run.as_str())
            .unwrap()
            .child(seq)
            .unwrap()
            .calls;
        assert_eq!(calls, 1, "seq {seq}: the lease check made no second call");
    }
    assert_eq!(p.reduce_calls(&run), 1);
    assert!(
        p.ledger.leases(NAME, &run).await.unwrap().is_empty(),
        "the leases are closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_report_is_a_lost_attempt_called_again_when_the_lease_runs_out() {
    let p = pipeline(
        3,
        Chaos {
            lost_report_seqs: seqs("1"),
            ..Chaos::default()
        },
    )
    .await;
    let run = run(&p, 3).await;
    let record = p.record(&run).await;
    assert_eq!(
        (record.state, record.succeeded, record.failed),
        (RunState::Completed, 3, 0)
    );
    let lost = child(&p, &run, 1).await;
    assert_eq!((lost.state, lost.attempts), (ChildState::Succeeded, 2));
    let stats = p.service.stats();
    let attempts = &stats
        .run(NAME, run.as_str())
        .unwrap()
        .child(1)
        .unwrap()
        .attempts;
    assert_eq!(
        attempts,
        &[1, 2],
        "called again as attempt 2 once the lease ran out"
    );
    assert_eq!(child(&p, &run, 0).await.attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_lease_running_out_fails_the_child_with_the_reason() {
    let p = Pipeline::start(Setup {
        items: 2,
        chaos: Chaos {
            lost_report_seqs: seqs("0"),
            ..Chaos::default()
        },
        visibility_timeout: 3,
        callback_lease: Some(LEASE),
        long_task: Some((Duration::from_millis(300), Duration::from_millis(100))),
        forwarder: kit_tests::pipeline::ForwarderOptions {
            max_attempts: 1,
            ..Default::default()
        },
        ..Setup::default()
    })
    .await;
    let run = run(&p, 2).await;
    let record = p.record(&run).await;
    assert_eq!(
        (record.state, record.succeeded, record.failed),
        (RunState::Completed, 1, 1)
    );
    let failed = child(&p, &run, 0).await;
    assert_eq!(failed.state, ChildState::Failed);
    let reason = failed.reason.unwrap_or_default();
    assert!(
        reason.contains("no report within the lease (2 s) of attempt 1 of 1"),
        "{reason}"
    );
    let letters = p.dead_letters().await;
    assert_eq!(
        letters.len(),
        1,
        "the failed child's message is dead-lettered for redrive: {letters:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_report_counts_once_and_a_later_failed_changes_nothing() {
    let p = pipeline(
        2,
        Chaos {
            duplicate_report_seqs: seqs("0"),
            ..Chaos::default()
        },
    )
    .await;
    let run = run(&p, 2).await;
    let record = p.record(&run).await;
    assert_eq!(
        (record.state, record.succeeded, record.failed),
        (RunState::Completed, 2, 0)
    );
    assert_eq!(child(&p, &run, 0).await.state, ChildState::Succeeded);
    let stats = p.service.stats();
    assert_eq!(
        stats.reports_sent.failed, 1,
        "the service changed its mind once"
    );
    assert!(
        stats.report_statuses.get(&200).copied().unwrap_or(0) >= 4,
        "{:?}",
        stats.report_statuses
    );
    assert!(p.dead_letters().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_for_an_earlier_attempt_still_counts() {
    let p = pipeline(
        2,
        Chaos {
            late_report_seqs: seqs("0"),
            ..Chaos::default()
        },
    )
    .await;
    let run = run(&p, 2).await;
    let record = p.record(&run).await;
    assert_eq!(
        (record.state, record.succeeded, record.failed),
        (RunState::Completed, 2, 0)
    );
    let late = child(&p, &run, 0).await;
    assert_eq!(late.state, ChildState::Succeeded);
    assert_eq!(
        late.attempts, 2,
        "attempt 2 was called before attempt 1's report came"
    );
    let result = format!("{:?}", late.result);
    assert!(
        result.contains("\\\"attempt\\\":1"),
        "attempt 1's report is the one counted: {result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_with_a_bad_signature_is_refused_and_the_signed_one_counts() {
    let p = pipeline(
        2,
        Chaos {
            bad_signature_report_seqs: seqs("1"),
            ..Chaos::default()
        },
    )
    .await;
    let run = run(&p, 2).await;
    let record = p.record(&run).await;
    assert_eq!((record.state, record.succeeded), (RunState::Completed, 2));
    let stats = p.service.stats();
    assert_eq!(
        stats.report_statuses.get(&401),
        Some(&1),
        "{:?}",
        stats.report_statuses
    );
    assert_eq!(child(&p, &run, 1).await.attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarder_killed_right_after_the_202_loses_and_repeats_nothing() {
    let p = pipeline(3, Chaos::default()).await;
    let run = p.run_with_children("2026-07-01T03-00-00Z", 3).await;
    // The batch is taken and called, and the forwarder stops once the service has
    // accepted every call, before the batch is settled.
    let event = kit_tests::mapping::receive(&p.mapping_sqs, &p.queue_url, 10, 0).await;
    assert_eq!(event.records.len(), 3);
    let handle = {
        let forwarder = p.build_forwarder(&kit_tests::pipeline::ForwarderOptions {
            lease: Some(LEASE),
            callback_url: p.callback_url.clone(),
            ..Default::default()
        });
        let event = event.clone();
        tokio::spawn(async move {
            forwarder
                .handle(lambda_runtime::LambdaEvent::new(
                    event,
                    kit_tests::pipeline::context(),
                ))
                .await
        })
    };
    let started = std::time::Instant::now();
    while p.service.stats().accepted < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the calls were not accepted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handle.abort();
    // The messages come back after their visibility timeout (3 s); the reports came first.
    settle(&p, &run).await;
    let record = p.record(&run).await;
    assert_eq!(
        (record.state, record.succeeded, record.failed),
        (RunState::Completed, 3, 0)
    );
    let stats = p.service.stats();
    for seq in 0..3 {
        let calls = stats
            .run(NAME, run.as_str())
            .unwrap()
            .child(seq)
            .unwrap()
            .calls;
        assert_eq!(
            calls, 1,
            "seq {seq}: its redelivered message made no second call"
        );
    }
    assert_eq!(p.reduce_calls(&run), 1);
}

/// A report as a service signs it, through the callback's URL.
async fn post_report(url: &str, body: &str, secret: &str, t: i64) -> (u16, String) {
    let path = "/report";
    assert!(url.ends_with(path));
    let signature = signature_header(t, &[sign(secret, t, "POST", path, body.as_bytes())]);
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-microprocess-signature", signature)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_answers_as_the_contract_says() {
    let p = pipeline(
        1,
        Chaos {
            lost_report_seqs: seqs("0"),
            ..Chaos::default()
        },
    )
    .await;
    let run = p.run_with_children("2026-07-01T03-00-00Z", 1).await;
    p.step(10).await.expect("the call went out");
    assert_eq!(
        p.ledger.lease_count(NAME, &run).await.unwrap(),
        1,
        "one child in progress"
    );
    let url = p.callback_url.clone().unwrap();
    let now = chrono::Utc::now().timestamp();
    let report = |outcome: ReportOutcome, seq: u64, attempt: u32| {
        serde_json::to_string(&CallbackReport {
            run: run.clone(),
            seq,
            attempt,
            outcome,
            result: Some(serde_json::json!({"by": "hand"})),
            reason: None,
        })
        .unwrap()
    };
    let succeeded = report(ReportOutcome::Succeeded, 0, 1);
    // 401: a wrong key, a stale time, a tampered body.
    assert_eq!(post_report(&url, &succeeded, "wrong-key", now).await.0, 401);
    assert_eq!(
        post_report(&url, &succeeded, SECRET, now - 3600).await.0,
        401
    );
    let tampered = succeeded.replace("hand", "HAND");
    let path = "/report";
    let signature = signature_header(
        now,
        &[sign(SECRET, now, "POST", path, succeeded.as_bytes())],
    );
    let status = reqwest::Client::new()
        .post(&url)
        .header("x-microprocess-signature", signature)
        .body(tampered)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 401);
    // 400: not a report; an attempt never made.
    assert_eq!(post_report(&url, "{\"run\": 1}", SECRET, now).await.0, 400);
    assert_eq!(
        post_report(&url, &report(ReportOutcome::Succeeded, 0, 9), SECRET, now)
            .await
            .0,
        400
    );
    // 404: a seq never accepted, an unknown run.
    assert_eq!(
        post_report(&url, &report(ReportOutcome::Succeeded, 5, 1), SECRET, now)
            .await
            .0,
        404
    );
    let other = succeeded.replace("2026-07-01T03-00-00Z", "2026-07-02T03-00-00Z");
    assert_eq!(post_report(&url, &other, SECRET, now).await.0, 404);
    // A heartbeat renews; the report is recorded once; a repeat is 200 and changes nothing.
    assert_eq!(
        post_report(&url, &report(ReportOutcome::Heartbeat, 0, 1), SECRET, now)
            .await
            .0,
        200
    );
    let (status, body) = post_report(&url, &succeeded, SECRET, now).await;
    assert_eq!(status, 200, "{body}");
    let failed = report(ReportOutcome::Failed, 0, 1);
    assert_eq!(post_report(&url, &failed, SECRET, now).await.0, 200);
    let c = child(&p, &run, 0).await;
    assert_eq!(
        c.state,
        ChildState::Succeeded,
        "the first terminal report counts"
    );
    assert_eq!(
        p.ledger.lease_count(NAME, &run).await.unwrap(),
        0,
        "its lease is closed"
    );
    assert_eq!(
        p.record(&run).await.state,
        RunState::Reducing,
        "the report completed the run"
    );
}

#[tokio::test]
async fn a_function_url_event_round_trips_through_the_callback_types() {
    // The runner's translation gives the event shape the callback function parses.
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("http://127.0.0.1:9/report?x=1")
        .header("content-type", "application/json")
        .header("x-microprocess-signature", "t=1,v1=ab")
        .body(())
        .unwrap();
    let (parts, ()) = request.into_parts();
    let event = function_url::event(
        &parts,
        b"{\"a\":1}",
        "arn:aws:lambda:us-east-1:123456789012:function:f",
    );
    let parsed: LambdaFunctionUrlRequest = serde_json::from_value(event).unwrap();
    assert_eq!(parsed.raw_path.as_deref(), Some("/report"));
    assert_eq!(parsed.raw_query_string.as_deref(), Some("x=1"));
    assert_eq!(parsed.body.as_deref(), Some("{\"a\":1}"));
    assert!(!parsed.is_base64_encoded);
    assert_eq!(parsed.request_context.http.method.as_deref(), Some("POST"));
    assert_eq!(
        parsed.headers.get("x-microprocess-signature").unwrap(),
        "t=1,v1=ab"
    );
    let binary = function_url::event(
        &parts_of("application/octet-stream"),
        &[0xff, 0x00],
        "arn:aws:lambda:us-east-1:1:function:f",
    );
    let parsed: LambdaFunctionUrlRequest = serde_json::from_value(binary).unwrap();
    assert!(
        parsed.is_base64_encoded,
        "a binary body is base64-encoded, as Lambda does"
    );
}

fn parts_of(content_type: &str) -> axum::http::request::Parts {
    axum::http::Request::builder()
        .method("POST")
        .uri("/report")
        .header("content-type", content_type)
        .body(())
        .unwrap()
        .into_parts()
        .0
}
