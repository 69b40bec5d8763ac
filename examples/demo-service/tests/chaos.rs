//! Each chaos knob, seen from the caller's side of real HTTP.

mod common;

use std::time::{Duration, Instant};

use common::{get, send_unsigned, start, Call, MP, RUN, SECRET};
use demo_service::{Chaos, Config, SeqSelector};

fn with(chaos: Chaos) -> Config {
    Config::new(SECRET).with_items(100).with_chaos(chaos)
}

#[tokio::test]
async fn fail_rate_5xx_answers_5xx_and_replays_with_the_seed() {
    let service = start(with(Chaos {
        fail_rate_5xx: 1.0,
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    for seq in 0..8 {
        let reply = Call::process(MP, RUN, seq, 1).answer(&base).await;
        assert!(
            [500, 502, 503, 504].contains(&reply.status),
            "{}",
            reply.status
        );
        assert_eq!(reply.error(), "injected_server_error");
    }
    let run = service.stats().run(MP, RUN).unwrap().clone();
    assert_eq!(run.succeeded, 0);
    assert!(run
        .children
        .values()
        .all(|c| c.last_status.is_some_and(|s| s >= 500)));

    // Half the attempts, the same half for the same seed, on any service.
    let half = Chaos {
        fail_rate_5xx: 0.5,
        seed: 11,
        ..Chaos::default()
    };
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let service = start(with(half.clone())).await;
        let mut statuses = Vec::new();
        for seq in 0..40 {
            statuses.push(
                Call::process(MP, RUN, seq, 1)
                    .answer(&service.queue_url())
                    .await
                    .status,
            );
        }
        outcomes.push(statuses);
    }
    assert_eq!(outcomes[0], outcomes[1]);
    let failed = outcomes[0].iter().filter(|s| **s >= 500).count();
    assert!((8..=32).contains(&failed), "{failed} of 40");
}

#[tokio::test]
async fn fail_seqs_4xx_are_422_until_fixed_at_runtime() {
    let service = start(with(Chaos {
        fail_seqs_4xx: "3,5".parse().unwrap(),
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    for attempt in 1..=3 {
        let reply = Call::process(MP, RUN, 3, attempt).answer(&base).await;
        assert_eq!(reply.status, 422);
        assert_eq!(reply.error(), "injected_permanent_failure");
    }
    assert_eq!(Call::process(MP, RUN, 4, 1).answer(&base).await.status, 200);

    // A redrive after the fix succeeds.
    let fixed = send_unsigned("POST", &format!("{base}/_demo/fix"), "").await;
    assert_eq!(fixed.json(), serde_json::json!({"fixed": true}));
    assert_eq!(Call::process(MP, RUN, 3, 4).answer(&base).await.status, 200);
    let stats = service.stats();
    assert!(stats.fixed);
    let child = stats.run(MP, RUN).unwrap().child(3).unwrap().clone();
    assert_eq!(child.attempts, [1, 2, 3, 4]);
    assert_eq!(child.last_status, Some(200));

    // Broken again: seq 5 fails, seq 3 keeps its recorded success.
    send_unsigned("POST", &format!("{base}/_demo/fix"), r#"{"fixed": false}"#).await;
    assert_eq!(Call::process(MP, RUN, 5, 1).answer(&base).await.status, 422);
    assert_eq!(Call::process(MP, RUN, 3, 5).answer(&base).await.status, 200);
    // The library switch does the same.
    service.service.set_fixed(true);
    assert_eq!(Call::process(MP, RUN, 5, 2).answer(&base).await.status, 200);
}

#[tokio::test]
async fn fail_seqs_4xx_as_a_fraction_picks_the_same_seqs_in_every_run() {
    let service = start(with(Chaos {
        fail_seqs_4xx: SeqSelector::Fraction(0.3),
        seed: 5,
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    let mut per_run = Vec::new();
    for run in ["run-a", "run-b"] {
        let mut failing = Vec::new();
        for seq in 0..50 {
            if Call::process(MP, run, seq, 1).answer(&base).await.status == 422 {
                failing.push(seq);
            }
        }
        per_run.push(failing);
    }
    assert_eq!(per_run[0], per_run[1]);
    assert!((5..=25).contains(&per_run[0].len()), "{:?}", per_run[0]);
}

#[tokio::test]
async fn retry_after_holds_the_first_seconds_of_a_run() {
    let service = start(with(Chaos {
        retry_after: 1,
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    let reply = Call::process(MP, RUN, 0, 1).answer(&base).await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.error(), "injected_retry_after");
    assert_eq!(Call::process(MP, RUN, 1, 1).answer(&base).await.status, 429);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(Call::process(MP, RUN, 0, 2).answer(&base).await.status, 200);
    // A new run starts its own window.
    assert_eq!(
        Call::process(MP, "run-2", 0, 1).answer(&base).await.status,
        429
    );
}

#[tokio::test]
async fn retry_after_for_listed_seqs_counts_from_their_first_call() {
    let service = start(with(Chaos {
        retry_after: 1,
        retry_after_seqs: "2".parse().unwrap(),
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    assert_eq!(Call::process(MP, RUN, 1, 1).answer(&base).await.status, 200);
    let reply = Call::process(MP, RUN, 2, 1).answer(&base).await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("1"));
    // Too early: still refused.
    assert_eq!(Call::process(MP, RUN, 2, 2).answer(&base).await.status, 429);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(Call::process(MP, RUN, 2, 3).answer(&base).await.status, 200);
    let child = service
        .stats()
        .run(MP, RUN)
        .unwrap()
        .child(2)
        .unwrap()
        .clone();
    let times: Vec<u64> = child.history.iter().map(|c| c.at_ms).collect();
    assert!(times[2] - times[0] >= 1000, "{times:?}");
    assert_eq!(
        child.history.iter().map(|c| c.status).collect::<Vec<_>>(),
        [Some(429), Some(429), Some(200)]
    );
}

#[tokio::test]
async fn delay_ms_delays_every_answer() {
    let service = start(with(Chaos {
        delay_ms: 300,
        ..Chaos::default()
    }))
    .await;
    let started = Instant::now();
    let reply = Call::process(MP, RUN, 0, 1)
        .answer(&service.queue_url())
        .await;
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn slow_seqs_outlast_the_callers_timeout_then_a_retry_succeeds() {
    let service = start(with(Chaos {
        slow_seqs: "4".parse().unwrap(),
        slow_ms: 10_000,
        slow_attempts: Some(1),
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    let timeout = Duration::from_millis(1000);
    let error = Call::process(MP, RUN, 4, 1)
        .timeout(timeout)
        .send(&base)
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    // Other seqs, and the next attempt of this one, are quick.
    let reply = Call::process(MP, RUN, 5, 1)
        .timeout(timeout)
        .answer(&base)
        .await;
    assert_eq!(reply.status, 200);
    let reply = Call::process(MP, RUN, 4, 2)
        .timeout(timeout)
        .answer(&base)
        .await;
    assert_eq!(reply.status, 200);
    let child = service
        .stats()
        .run(MP, RUN)
        .unwrap()
        .child(4)
        .unwrap()
        .clone();
    assert_eq!(child.attempts, [1, 2]);
    assert_eq!(child.history[1].status, Some(200));
}

#[tokio::test]
async fn late_answers_do_the_work_before_the_caller_gives_up_and_replay_it() {
    let service = start(with(Chaos {
        slow_seqs: "4".parse().unwrap(),
        slow_ms: 10_000,
        slow_attempts: Some(1),
        late_answers: true,
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    let timeout = Duration::from_millis(1000);
    let error = Call::process(MP, RUN, 4, 1)
        .timeout(timeout)
        .send(&base)
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    // The work was done and counted although the caller never saw the answer.
    let run = service.stats().run(MP, RUN).unwrap().clone();
    assert_eq!(run.succeeded, 1);
    assert_eq!(run.child(4).unwrap().history[0].status, Some(200));
    // The retry gets the kept answer, and the seq stays counted once.
    let reply = Call::process(MP, RUN, 4, 2)
        .timeout(timeout)
        .answer(&base)
        .await;
    assert_eq!(reply.status, 200);
    let run = service.stats().run(MP, RUN).unwrap().clone();
    let child = run.child(4).unwrap();
    assert_eq!(child.attempts, [1, 2]);
    assert!(child.history[1].replay);
    assert_eq!((child.replays, run.succeeded), (1, 1));
}

#[tokio::test]
async fn reduce_failures_fail_the_first_reduce_calls_of_each_run() {
    let service = start(with(Chaos {
        reduce_failures: 2,
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    for _ in 0..2 {
        let reply = Call::reduce(MP, RUN, 0, 0, 0).answer(&base).await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.error(), "injected_reduce_failure");
    }
    assert_eq!(
        Call::reduce(MP, RUN, 0, 0, 0).answer(&base).await.status,
        200
    );
    assert_eq!(
        Call::reduce(MP, "run-2", 0, 0, 0)
            .answer(&base)
            .await
            .status,
        503
    );
    let reduce = service.stats().run(MP, RUN).unwrap().reduce.clone();
    assert_eq!(reduce.statuses, [Some(503), Some(503), Some(200)]);
    assert_eq!(reduce.last_status(), Some(200));
    assert!(reduce.completed);
}

#[tokio::test]
async fn split_failures_fail_the_first_split_calls_of_each_run() {
    let service = start(with(Chaos {
        split_failures: 2,
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    for _ in 0..2 {
        let reply = Call::split(MP, RUN, "limit=10").answer(&base).await;
        assert_eq!(reply.status, 500);
        assert_eq!(reply.error(), "injected_split_failure");
    }
    let reply = Call::split(MP, RUN, "limit=10").answer(&base).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["items"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn garbage_rate_answers_2xx_that_is_not_json() {
    let service = start(with(Chaos {
        garbage_rate: 1.0,
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    let reply = Call::process(MP, RUN, 0, 1).answer(&base).await;
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(serde_json::from_slice::<serde_json::Value>(&reply.body).is_err());
    // A replay gives the same garbage, even once the knob is off.
    service.service.set_chaos(Chaos::default()).unwrap();
    let again = Call::process(MP, RUN, 0, 2).answer(&base).await;
    assert_eq!(again.body, reply.body);
    let reduce = Call::reduce(MP, RUN, 1, 1, 0).answer(&base).await;
    assert_eq!(reduce.json()["report"]["service"]["not_json"], 1);
    let child = service
        .stats()
        .run(MP, RUN)
        .unwrap()
        .child(0)
        .unwrap()
        .clone();
    assert!(child.succeeded);
    assert_eq!(child.score, None);
}

#[tokio::test]
async fn max_in_flight_is_the_most_concurrent_process_calls() {
    let service = start(with(Chaos {
        // Long enough for all six to overlap on a busy machine.
        delay_ms: 1500,
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    let calls: Vec<_> = (0..6)
        .map(|seq| tokio::spawn(Call::process(MP, RUN, seq, 1).answer_owned(base.clone())))
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().status, 200);
    }
    Call::process(MP, RUN, 6, 1).answer(&base).await;
    let stats = service.stats();
    assert_eq!(stats.max_in_flight, 6);
    assert_eq!(stats.in_flight, 0);
    let run = stats.run(MP, RUN).unwrap();
    assert_eq!(run.max_in_flight, 6);
    assert_eq!(run.in_flight, 0);
}

#[tokio::test]
async fn chaos_can_be_read_and_replaced_over_http() {
    let service = start(with(Chaos::default())).await;
    let base = service.queue_url();
    let chaos = get(&format!("{base}/_demo/chaos")).await.json();
    assert_eq!(chaos["fail_rate_5xx"], 0.0);
    assert_eq!(chaos["slow_ms"], 30000);
    let reply = send_unsigned(
        "PUT",
        &format!("{base}/_demo/chaos"),
        r#"{"fail_seqs_4xx": {"seqs": [0]}}"#,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(Call::process(MP, RUN, 0, 1).answer(&base).await.status, 422);
    assert_eq!(service.service.chaos().fail_seqs_4xx, "0".parse().unwrap());
    let reply = send_unsigned(
        "PUT",
        &format!("{base}/_demo/chaos"),
        r#"{"garbage_rate": 2}"#,
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error(), "bad_chaos");
    let reply = send_unsigned("PUT", &format!("{base}/_demo/chaos"), r#"{"typo": 1}"#).await;
    assert_eq!(reply.status, 400);
}

#[tokio::test]
async fn a_call_the_caller_gave_up_on_is_dropped_not_kept() {
    // Otherwise the abandoned first attempt would finish later, keep its 200 under the
    // key, and the next attempt would be a replay instead of slow again.
    let service = start(with(Chaos {
        slow_seqs: "4".parse().unwrap(),
        slow_ms: 1500,
        ..Chaos::default()
    }))
    .await;
    let base = service.queue_url();
    let gave_up = Call::process(MP, RUN, 4, 1)
        .timeout(Duration::from_millis(300))
        .send(&base)
        .await;
    assert!(gave_up.is_err());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let stats = service.stats();
    let child = stats.run(MP, RUN).unwrap().child(4).unwrap();
    assert_eq!(child.history[0].status, None);
    assert_eq!(child.last_status, None);
    assert!(!child.succeeded);
    assert_eq!(stats.in_flight, 0);
    let again = Call::process(MP, RUN, 4, 2)
        .timeout(Duration::from_millis(300))
        .send(&base)
        .await;
    assert!(again.is_err(), "still slow: nothing was kept");
}
