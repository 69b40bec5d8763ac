//! Long tasks (contract 1.1, section 2b) over real HTTP: a process call with a callback
//! is answered 202 and reported later, signed, to a receiver on loopback; the report
//! chaos knobs; and a call without a callback as before.

mod common;

use std::time::{Duration, Instant};

use common::receiver::{summary, Receiver};
use common::{get, send_unsigned, start, Call, MP, RUN, SECRET};
use demo_service::{Chaos, Config, ReportCounts, HEADER_REPLAYED};
use microprocess_shared::contract::{ReportOutcome, HEADER_CALLBACK};
use serde_json::{json, Value};

use ReportOutcome::{Failed, Heartbeat, Succeeded};

const LONG_TASK: Duration = Duration::from_millis(300);
const HEARTBEAT: Duration = Duration::from_millis(100);

fn config(chaos: Chaos) -> Config {
    Config::new(SECRET)
        .with_items(100)
        .with_long_task(LONG_TASK, HEARTBEAT)
        .with_chaos(chaos)
}

/// Long tasks that report at once, without heartbeats.
fn quick(chaos: Chaos) -> Config {
    config(chaos).with_long_task(Duration::from_millis(20), Duration::from_secs(60))
}

async fn wait_until_idle(service: &demo_service::RunningService) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while service.stats().long_tasks_running > 0 {
        assert!(Instant::now() < deadline, "long tasks still running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_call_with_a_callback_is_accepted_then_reported_signed_after_heartbeats() {
    let receiver = Receiver::start().await;
    let service = start(config(Chaos::default())).await;
    let base = service.queue_url();

    let asked = Instant::now();
    let reply = Call::process(MP, RUN, 41, 1)
        .with_callback(&receiver.url())
        .answer(&base)
        .await;
    assert_eq!(
        reply.status,
        202,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["accepted"], true);
    assert!(asked.elapsed() < LONG_TASK, "the 202 comes at once");
    let stats = service.stats();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.long_tasks_running, 1);
    let child = stats.run(MP, RUN).unwrap().child(41).unwrap().clone();
    assert_eq!(child.last_status, Some(202));
    assert!(!child.succeeded, "a 202 is not done");

    let received = receiver.wait_for_finals(1).await;
    assert!(asked.elapsed() >= LONG_TASK);
    let (last, beats) = received.split_last().unwrap();
    assert!(last.is(Succeeded, 1), "{:?}", summary(&received));
    // At 100 and 200 ms; a busy machine may skip one, never add one.
    assert!((1..=2).contains(&beats.len()), "{:?}", summary(&received));
    assert!(beats.iter().all(|r| r.is(Heartbeat, 1)));
    assert!(beats.iter().all(|r| r.report.result.is_none()));
    for report in &received {
        assert!(report.signed, "{report:?}");
        assert_eq!(report.status, 200);
        assert_eq!(report.content_type.as_deref(), Some("application/json"));
        assert_eq!(report.report.run.as_str(), RUN);
        assert_eq!(report.report.seq, 41);
    }
    let result = last.report.result.clone().unwrap();
    assert_eq!(result["item"], "ACN-000000042");
    assert_eq!(result["report"], "annual report of ACN-000000042");
    assert_eq!(result["attempt"], 1);
    assert!(result["score"].is_u64());

    wait_until_idle(&service).await;
    let stats = service.stats();
    assert_eq!(
        stats.reports_sent,
        ReportCounts {
            succeeded: 1,
            failed: 0,
            heartbeat: beats.len() as u64
        }
    );
    assert_eq!(stats.report_status(200), received.len() as u64);
    assert_eq!(stats.report_errors, 0);
    let run = stats.run(MP, RUN).unwrap();
    assert_eq!(run.succeeded, 1);
    assert!(run.child(41).unwrap().succeeded);

    // The reported result is kept: a later delivery of the seq is a replay, done now.
    let again = Call::process(MP, RUN, 41, 2)
        .with_callback(&receiver.url())
        .answer(&base)
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header(HEADER_REPLAYED), Some("true"));
    assert_eq!(again.json(), result);
    assert_eq!(service.stats().accepted, 1);
    service.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_call_without_a_callback_is_answered_200_as_before() {
    let receiver = Receiver::start().await;
    let service = start(config(Chaos::default())).await;
    let reply = Call::process(MP, RUN, 3, 1)
        .answer(&service.queue_url())
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["item"], "ACN-000000004");
    assert!(reply.json().get("report").is_none());
    tokio::time::sleep(LONG_TASK).await;
    let stats = service.stats();
    assert_eq!(stats.accepted, 0);
    assert_eq!(stats.long_tasks_running, 0);
    assert_eq!(stats.reports_sent, ReportCounts::default());
    assert!(stats.run(MP, RUN).unwrap().child(3).unwrap().succeeded);
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn the_callback_may_come_in_the_body_or_the_header_and_must_be_a_url() {
    let receiver = Receiver::start().await;
    let service = start(quick(Chaos::default())).await;
    let base = service.queue_url();
    let url = receiver.url();

    let body_only = Call::process(MP, RUN, 0, 1).with_body_callback(&url);
    assert_eq!(body_only.answer(&base).await.status, 202);
    let header_only = Call::process(MP, RUN, 1, 1).header(HEADER_CALLBACK, &url);
    assert_eq!(header_only.answer(&base).await.status, 202);
    let received = receiver.wait_for_finals(2).await;
    let mut seqs: Vec<u64> = received.iter().map(|r| r.report.seq).collect();
    seqs.sort();
    assert_eq!(seqs, [0, 1]);

    let disagree = Call::process(MP, RUN, 2, 1)
        .with_body_callback(&url)
        .header(HEADER_CALLBACK, "http://127.0.0.1:1/elsewhere")
        .answer(&base)
        .await;
    assert_eq!(disagree.status, 400);
    assert_eq!(disagree.error(), "inconsistent_request");
    for bad in ["not a url", "/relative/path", "ftp://127.0.0.1/x"] {
        let reply = Call::process(MP, RUN, 3, 1)
            .with_body_callback(bad)
            .answer(&base)
            .await;
        assert_eq!(reply.status, 400, "{bad}");
        assert_eq!(reply.error(), "bad_callback", "{bad}");
    }
    let stats = service.stats();
    assert_eq!(stats.rejected("bad_callback"), 3);
    assert_eq!(stats.accepted, 2);
}

#[tokio::test]
async fn chaos_that_fails_a_call_comes_before_the_202() {
    let receiver = Receiver::start().await;
    let service = start(quick(Chaos {
        fail_seqs_4xx: "3".parse().unwrap(),
        hostile_error_seqs: "4".parse().unwrap(),
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    let url = receiver.url();
    let reply = Call::process(MP, RUN, 3, 1)
        .with_callback(&url)
        .answer(&base)
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.error(), "injected_permanent_failure");
    let reply = Call::process(MP, RUN, 4, 1)
        .with_callback(&url)
        .answer(&base)
        .await;
    assert_eq!(reply.status, 422);
    // A bad signature is refused before anything starts.
    let reply = Call::process(MP, RUN, 5, 1)
        .with_callback(&url)
        .signed_with(&["not-the-secret"])
        .answer(&base)
        .await;
    assert_eq!(reply.status, 401);

    service
        .service
        .set_chaos(Chaos {
            fail_rate_5xx: 1.0,
            ..Chaos::default()
        })
        .unwrap();
    let reply = Call::process(MP, RUN, 6, 1)
        .with_callback(&url)
        .answer(&base)
        .await;
    assert!(reply.status >= 500, "{}", reply.status);

    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = service.stats();
    assert_eq!(stats.accepted, 0);
    assert_eq!(stats.reports_sent, ReportCounts::default());
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn a_call_for_an_attempt_already_running_starts_nothing_new() {
    let receiver = Receiver::start().await;
    let service = start(config(Chaos::default())).await;
    let base = service.queue_url();
    for _ in 0..2 {
        let reply = Call::process(MP, RUN, 7, 1)
            .with_callback(&receiver.url())
            .answer(&base)
            .await;
        assert_eq!(reply.status, 202);
    }
    let stats = service.stats();
    assert_eq!(stats.accepted, 2);
    assert_eq!(stats.long_tasks_running, 1);
    receiver.wait_for_finals(1).await;
    wait_until_idle(&service).await;
    assert_eq!(service.stats().reports_sent.succeeded, 1);
}

#[tokio::test]
async fn a_report_answered_5xx_is_sent_again_and_a_4xx_is_not() {
    let receiver = Receiver::start().await;
    let service = start(quick(Chaos::default())).await;
    let base = service.queue_url();

    receiver.script(&[503, 502]);
    let reply = Call::process(MP, RUN, 0, 1)
        .with_callback(&receiver.url())
        .answer(&base)
        .await;
    assert_eq!(reply.status, 202);
    let received = receiver
        .wait_for(Duration::from_secs(5), |r| {
            r.iter().any(|r| r.status == 200)
        })
        .await;
    assert_eq!(
        received.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 502, 200]
    );
    assert!(received.iter().all(|r| r.is(Succeeded, 1)));
    wait_until_idle(&service).await;
    let stats = service.stats();
    assert_eq!(stats.reports_sent.succeeded, 1, "one report, three tries");
    assert_eq!(
        (
            stats.report_status(503),
            stats.report_status(502),
            stats.report_status(200)
        ),
        (1, 1, 1)
    );

    for (seq, status) in [(10, 404), (11, 400), (12, 401)] {
        receiver.answer_with(status);
        let before = receiver.received().len();
        let reply = Call::process(MP, RUN, seq, 1)
            .with_callback(&receiver.url())
            .answer(&base)
            .await;
        assert_eq!(reply.status, 202);
        receiver
            .wait_for(Duration::from_secs(5), |r| r.len() > before)
            .await;
        // The task ends after its last try.
        wait_until_idle(&service).await;
        assert_eq!(receiver.received().len(), before + 1, "{status}: one try");
        assert_eq!(service.stats().report_status(status), 1);
    }
}

#[tokio::test]
async fn a_report_that_gets_no_answer_is_tried_five_times() {
    // A port that was free a moment ago: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let service = start(quick(Chaos::default())).await;
    let reply = Call::process(MP, RUN, 0, 1)
        .with_callback(&format!("http://{closed}/kit/callbacks/x"))
        .answer(&service.queue_url())
        .await;
    assert_eq!(reply.status, 202);
    wait_until_idle(&service).await;
    let stats = service.stats();
    assert_eq!(stats.report_errors, 5);
    assert_eq!(stats.reports_sent.succeeded, 1);
    assert!(stats.report_statuses.is_empty());
}

#[tokio::test]
async fn rotation_signs_reports_with_every_secret() {
    let receiver = Receiver::with_secrets(&["old-secret"]).await;
    let mut config = quick(Chaos::default());
    config.secrets = vec![SECRET.to_owned(), "old-secret".to_owned()];
    let service = start(config).await;
    let reply = Call::process(MP, RUN, 0, 1)
        .with_callback(&receiver.url())
        .answer(&service.queue_url())
        .await;
    assert_eq!(reply.status, 202);
    let received = receiver.wait_for_finals(1).await;
    assert!(received[0].signed);
    assert_eq!(received[0].signature.matches(",v1=").count(), 2);
}

// ---- report chaos -------------------------------------------------------------------

#[tokio::test]
async fn lost_report_seqs_send_nothing_on_attempt_1_then_report_normally() {
    let receiver = Receiver::start().await;
    let service = start(config(Chaos {
        lost_report_seqs: "5".parse().unwrap(),
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    let first = Call::process(MP, RUN, 5, 1)
        .with_callback(&receiver.url())
        .answer(&base)
        .await;
    assert_eq!(first.status, 202);
    tokio::time::sleep(LONG_TASK + HEARTBEAT).await;
    wait_until_idle(&service).await;
    assert!(receiver.received().is_empty(), "not even a heartbeat");
    assert!(
        !service
            .stats()
            .run(MP, RUN)
            .unwrap()
            .child(5)
            .unwrap()
            .succeeded
    );

    // The kit's lease ran out; it calls again. The work was lost: a new task, no replay.
    let second = Call::process(MP, RUN, 5, 2)
        .with_callback(&receiver.url())
        .answer(&base)
        .await;
    assert_eq!(second.status, 202);
    let received = receiver.wait_for_finals(1).await;
    assert!(received.iter().all(|r| r.report.attempt == 2));
    assert!(received.last().unwrap().is(Succeeded, 2));
    assert!(received.iter().any(|r| r.is(Heartbeat, 2)));
    assert_eq!(
        received.last().unwrap().report.result.as_ref().unwrap()["attempt"],
        2
    );
}

#[tokio::test]
async fn duplicate_report_seqs_report_twice_then_change_their_mind() {
    let receiver = Receiver::start().await;
    let service = start(quick(Chaos::default())).await;
    let base = service.queue_url();
    // Set through the runtime switch, as the chaos suite does.
    let set = send_unsigned(
        "PUT",
        &format!("{base}/_demo/chaos"),
        r#"{"duplicate_report_seqs": {"seqs": [8]}}"#,
    )
    .await;
    assert_eq!(set.status, 200);
    assert_eq!(set.json()["duplicate_report_seqs"], json!({"seqs": [8]}));

    let reply = Call::process(MP, RUN, 8, 1)
        .with_callback(&receiver.url())
        .answer(&base)
        .await;
    assert_eq!(reply.status, 202);
    let received = receiver.wait_for_finals(3).await;
    assert_eq!(
        summary(&received),
        [
            (Succeeded, 1, true, 200),
            (Succeeded, 1, true, 200),
            (Failed, 1, true, 200)
        ]
    );
    assert_eq!(received[0].report.result, received[1].report.result);
    assert_eq!(
        received[2].report.reason.as_deref(),
        Some("changed my mind")
    );
    assert_eq!(received[2].report.result, None);
    wait_until_idle(&service).await;
    let stats = service.stats();
    assert_eq!(
        stats.reports_sent,
        ReportCounts {
            succeeded: 2,
            failed: 1,
            heartbeat: 0
        }
    );
    // The service itself counts the seq done once.
    assert_eq!(stats.run(MP, RUN).unwrap().succeeded, 1);
}

#[tokio::test]
async fn late_report_seqs_hold_attempt_1_until_a_later_attempt_arrives() {
    let receiver = Receiver::start().await;
    let service = start(config(Chaos {
        late_report_seqs: "9".parse().unwrap(),
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    let first = Call::process(MP, RUN, 9, 1)
        .with_callback(&receiver.url())
        .answer(&base)
        .await;
    assert_eq!(first.status, 202);
    tokio::time::sleep(LONG_TASK * 2).await;
    assert!(
        receiver.received().is_empty(),
        "no heartbeat, no report yet"
    );
    assert_eq!(service.stats().long_tasks_running, 1, "held");

    let second = Call::process(MP, RUN, 9, 2)
        .with_callback(&receiver.url())
        .answer(&base)
        .await;
    assert_eq!(second.status, 202, "attempt 1's report is not out yet");
    let received = receiver.wait_for_finals(2).await;
    let finals: Vec<_> = received
        .iter()
        .filter(|r| r.report.outcome != Heartbeat)
        .collect();
    assert!(finals[0].is(Succeeded, 1), "{:?}", summary(&received));
    assert_eq!(finals[0].report.result.as_ref().unwrap()["attempt"], 1);
    assert!(finals[1].is(Succeeded, 2), "{:?}", summary(&received));
    assert_eq!(finals[1].report.result.as_ref().unwrap()["attempt"], 2);
    assert!(!received.iter().any(|r| r.is(Heartbeat, 1)));
    assert!(received.iter().any(|r| r.is(Heartbeat, 2)));
    assert!(received.iter().all(|r| r.signed));
}

#[tokio::test]
async fn a_late_report_goes_out_before_a_quicker_later_attempt_s() {
    let receiver = Receiver::start().await;
    let service = start(quick(Chaos {
        late_report_seqs: "9".parse().unwrap(),
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    // The receiver is slow to take attempt 1's report: attempt 2 waits for it.
    receiver.script(&[503]);
    for attempt in [1, 2] {
        if attempt == 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reply = Call::process(MP, RUN, 9, attempt)
            .with_callback(&receiver.url())
            .answer(&base)
            .await;
        assert_eq!(reply.status, 202);
    }
    let received = receiver.wait_for_finals(3).await;
    assert_eq!(
        summary(&received),
        [
            (Succeeded, 1, true, 503),
            (Succeeded, 1, true, 200),
            (Succeeded, 2, true, 200)
        ]
    );
}

#[tokio::test]
async fn bad_signature_report_seqs_sign_the_first_final_report_wrong_then_right() {
    let receiver = Receiver::start().await;
    let service = start(config(Chaos {
        bad_signature_report_seqs: "10".parse().unwrap(),
        ..Chaos::default()
    }))
    .await;
    let reply = Call::process(MP, RUN, 10, 1)
        .with_callback(&receiver.url())
        .answer(&service.queue_url())
        .await;
    assert_eq!(reply.status, 202);
    let received = receiver.wait_for_finals(1).await;
    let finals: Vec<_> = received
        .iter()
        .filter(|r| r.report.outcome != Heartbeat)
        .collect();
    assert_eq!(finals.len(), 2, "{:?}", summary(&received));
    assert!(!finals[0].signed && finals[0].status == 401);
    assert!(finals[1].signed && finals[1].status == 200);
    assert_eq!(finals[0].report, finals[1].report);
    assert!(received
        .iter()
        .filter(|r| r.report.outcome == Heartbeat)
        .all(|r| r.signed));
    wait_until_idle(&service).await;
    let stats = service.stats();
    assert_eq!(stats.report_status(401), 1);
    assert_eq!(stats.reports_sent.succeeded, 2);
}

// ---- shutdown and stats -------------------------------------------------------------

#[tokio::test]
async fn shutdown_aborts_the_long_tasks() {
    let receiver = Receiver::start().await;
    let service = start(
        config(Chaos::default()).with_long_task(Duration::from_secs(30), Duration::from_millis(50)),
    )
    .await;
    let reply = Call::process(MP, RUN, 0, 1)
        .with_callback(&receiver.url())
        .answer(&service.queue_url())
        .await;
    assert_eq!(reply.status, 202);
    receiver
        .wait_for(Duration::from_secs(5), |r| !r.is_empty())
        .await;
    let handle = service.service.clone();
    assert_eq!(handle.stats().long_tasks_running, 1);
    let stopping = Instant::now();
    service.shutdown().await.unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(2));
    assert_eq!(handle.stats().long_tasks_running, 0);
    let seen = receiver.received().len();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        receiver.received().len(),
        seen,
        "no report after the shutdown"
    );
}

#[tokio::test]
async fn the_stats_route_shows_long_tasks_and_reports() {
    let receiver = Receiver::start().await;
    let service = start(quick(Chaos::default())).await;
    let base = service.queue_url();
    let reply = Call::process(MP, RUN, 0, 1)
        .with_callback(&receiver.url())
        .answer(&base)
        .await;
    assert_eq!(reply.status, 202);
    receiver.wait_for_finals(1).await;
    wait_until_idle(&service).await;
    let stats: Value = get(&format!("{base}/_demo/stats")).await.json();
    assert_eq!(stats["accepted"], 1);
    assert_eq!(stats["long_tasks_running"], 0);
    assert_eq!(
        stats["reports_sent"],
        json!({"succeeded": 1, "failed": 0, "heartbeat": 0})
    );
    assert_eq!(stats["report_statuses"], json!({"200": 1}));
    assert_eq!(stats["report_errors"], 0);
    assert_eq!(
        stats["microprocesses"][MP][RUN]["children"]["0"]["history"][0]["status"],
        202
    );
    assert_eq!(receiver.malformed(), 0);
}
