//! The kit's guarantees under faults (issue 5), at small size on the emulator: every item
//! is accounted for exactly once, a run always finishes, its reduce is claimed once, and
//! failures are visible and redrivable.
//!
//! Each test is one scenario of the matrix: a microprocess whole in one process
//! ([`Pipeline`]: the splitter's handler, then the forwarder's on batches received from
//! the queue and settled as the event source mapping would), the demo service
//! misbehaving as the scenario says, then an [`Audit`] of each run (what was split
//! against the ledger's counters and child records, the service's calls and the
//! dead-letter queue: lost, double-counted and unexpected children, failures against dead
//! letters), which must be clean. Every random choice is seeded. Each test prints its
//! row of the matrix and its wall time (`cargo test --test fault_matrix -- --nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::sqs::SqsEvent;
use chrono::Utc;
use demo_service::{Chaos, SeqSelector};
use forwarder::Forwarder;
use kit_tests::audit::{self, Audit};
use kit_tests::faults::{
    dynamodb, dynamodb_error, throttling, transaction_conflict, Dice, Fault, FaultyHttp, Tripwire,
};
use kit_tests::mapping::{depth, receive, settle};
use kit_tests::moto::MotoServer;
use kit_tests::pipeline::{
    assert_every_seq_once, census, context, follow, join_all, later, quick, scheduled_tick, sealed,
    Boxed, CrashingQueue, ForwarderOptions, Pipeline, Setup, BATCH_SIZE, NAME, SCHEDULED_RUN,
    SECRET,
};
use lambda_runtime::LambdaEvent;
use microprocess_shared::contract::{
    process_idempotency_key, ProcessRequest, CONTRACT_VERSION, HEADER_ATTEMPT, HEADER_CONTRACT,
    HEADER_IDEMPOTENCY_KEY, HEADER_NAME, HEADER_RUN, HEADER_SEQ, HEADER_SIGNATURE,
};
use microprocess_shared::ledger::RetryPolicy;
use microprocess_shared::ledger_keys::{ChildState, RunState};
use microprocess_shared::queue_message::QueueMessage;
use microprocess_shared::run_id::RunId;
use microprocess_shared::signing::{sign, signature_header};
use serde_json::json;
use splitter::enqueue::{Entry, FailedEntry};
use splitter::{handle, Outcome, Queue, SplitterError};

/// Items per split page.
const PAGE: &str = "50";
/// Longest any drain of a scenario may take.
const DRAIN_LIMIT: Duration = Duration::from_secs(90);
/// Concurrent forwarder batches (the mapping's maximum concurrency).
const WORKERS: usize = 2;

/// A scenario's setup: `items` in the split, quick retries (whole-second visibility
/// changes), a 2 s visibility timeout and the template's redrive policy (one receive
/// more than `max_attempts`).
fn setup(items: u64, chaos: Chaos, max_attempts: u32) -> Setup {
    Setup {
        items,
        chaos,
        visibility_timeout: 2,
        max_receive_count: Some(max_attempts + 1),
        forwarder: ForwarderOptions {
            max_attempts,
            backoff_base_millis: 20,
            ..ForwarderOptions::default()
        },
        ..Setup::default()
    }
}

/// Splits `run` (a manual start, pages of [`PAGE`], overlap allowed) to its seal.
async fn split(p: &Pipeline, run: &str, overrides: &[(&str, &str)]) -> RunId {
    let mut vars = vec![("SPLIT_PAGE_SIZE", PAGE), ("OVERLAP", "allow")];
    vars.extend_from_slice(overrides);
    let (splitter, handoff) = p.splitter(p.settings(&vars), quick());
    let outcomes = follow(&splitter, &handoff, json!({"run": run}), later).await;
    sealed(outcomes.last().unwrap());
    RunId::parse(run).unwrap()
}

/// Checks that `run` is `COMPLETED` after exactly one reduce call, answered 200.
async fn assert_completed_with_one_reduce(p: &Pipeline, run: &RunId) {
    let record = p.record(run).await;
    assert_eq!(record.state, RunState::Completed, "{record:?}");
    let stats = p.service.stats();
    let reduce = &stats.run(NAME, run.as_str()).unwrap().reduce;
    assert_eq!(reduce.statuses, [Some(200)], "one reduce call");
    assert!(reduce.completed);
}

/// Prints the scenario's rows of the matrix and its wall time; checks every audit.
fn report(scenario: &str, test: &str, size: &str, started: Instant, audits: &[Audit]) {
    let rows: Vec<String> = audits.iter().map(Audit::to_string).collect();
    println!(
        "\nscenario {scenario} -> {test}: {size}, {:.1} s\n{}\n{}",
        started.elapsed().as_secs_f64(),
        Audit::HEADER,
        rows.join("\n")
    );
    for audit in audits {
        audit.assert_clean();
    }
}

/// Seqs `0..items` a seeded selector picks.
fn picked(selector: &SeqSelector, seed: u64, salt: &str, items: u64) -> BTreeSet<u64> {
    (0..items)
        .filter(|seq| selector.contains(seed, salt, *seq))
        .collect()
}

// ---- 1 ------------------------------------------------------------------------------

#[tokio::test]
async fn s01_5xx_on_a_tenth_of_calls_are_retried_to_success() {
    let started = Instant::now();
    let chaos = Chaos {
        seed: 1,
        fail_rate_5xx: 0.1,
        ..Chaos::default()
    };
    let p = Pipeline::start(setup(200, chaos, 5)).await;
    let run = split(&p, "fail-5xx", &[]).await;
    p.drain_with(&p.forwarder, WORKERS, DRAIN_LIMIT).await;

    assert_completed_with_one_reduce(&p, &run).await;
    let stats = p.service.stats();
    let calls = &stats.run(NAME, run.as_str()).unwrap().children;
    let children = p.ledger.children(NAME, &run).await.unwrap();
    let mut answered_5xx = 0;
    for child in &children {
        assert_eq!(child.state, ChildState::Succeeded, "seq {}", child.seq);
        let history = &calls[&child.seq].history;
        let failures = history
            .iter()
            .filter(|c| c.status.is_some_and(|s| s >= 500))
            .count();
        answered_5xx += failures;
        // Each 5xx cost one attempt, and the next attempt came.
        assert_eq!(
            history.len(),
            failures + 1,
            "seq {}: {history:?}",
            child.seq
        );
        assert_eq!(child.attempts as usize, history.len(), "seq {}", child.seq);
    }
    let all_calls = stats.run(NAME, run.as_str()).unwrap().process_calls;
    assert!(
        (10..=40).contains(&answered_5xx),
        "{answered_5xx} 5xx of {all_calls} calls"
    );
    let audit = p.audit("1: 5xx on 10% of calls", &run, 200).await;
    assert_eq!(audit.failed, 0);
    report(
        "1",
        "s01_5xx_on_a_tenth_of_calls_are_retried_to_success",
        &format!("200 items, {answered_5xx} 5xx answers"),
        started,
        &[audit],
    );
}

// ---- 2 ------------------------------------------------------------------------------

#[tokio::test]
async fn s02_429_with_retry_after_dead_letters_nothing_within_the_concurrency() {
    let started = Instant::now();
    // A minute scaled to 3 s, from the run's first request (the split's).
    let window_ms = 3_000;
    let chaos = Chaos {
        retry_after: window_ms / 1000,
        delay_ms: 150,
        ..Chaos::default()
    };
    let p = Pipeline::start(setup(200, chaos, 3)).await;
    let run = split(&p, "retry-after", &[]).await;
    p.drain_with(&p.forwarder, WORKERS, DRAIN_LIMIT).await;

    assert_completed_with_one_reduce(&p, &run).await;
    assert!(p.parked().await.is_empty(), "nothing dead-lettered");
    let stats = p.service.stats();
    let bound = WORKERS as u64 * BATCH_SIZE as u64;
    assert!(
        stats.max_in_flight <= bound,
        "{} calls at once, more than {WORKERS} batches of {BATCH_SIZE}",
        stats.max_in_flight
    );
    let calls = &stats.run(NAME, run.as_str()).unwrap().children;
    let mut asked_to_wait = 0;
    for (seq, child) in calls {
        let waits: Vec<_> = child
            .history
            .iter()
            .filter(|c| c.status == Some(429))
            .collect();
        // Asked once, and not called again before the window closed.
        assert!(waits.len() <= 1, "seq {seq}: {:?}", child.history);
        for call in &child.history {
            if call.status == Some(429) {
                assert!(call.at_ms < window_ms, "seq {seq}: {:?}", child.history);
            }
        }
        asked_to_wait += waits.len();
    }
    assert!(asked_to_wait > 0, "some calls were inside the window");
    let audit = p.audit("2: 429 + Retry-After 3 s", &run, 200).await;
    assert_eq!(audit.failed, 0);
    report(
        "2",
        "s02_429_with_retry_after_dead_letters_nothing_within_the_concurrency",
        &format!(
            "200 items, {asked_to_wait} answered 429, at most {} calls at once (bound {bound})",
            stats.max_in_flight
        ),
        started,
        &[audit],
    );
}

// ---- 3 ------------------------------------------------------------------------------

#[tokio::test]
async fn s03_answers_after_the_timeout_are_redelivered_and_counted_once() {
    let started = Instant::now();
    let slow = SeqSelector::Fraction(0.08);
    let chaos = Chaos {
        seed: 3,
        slow_seqs: slow.clone(),
        slow_ms: 1_500,
        slow_attempts: Some(1),
        late_answers: true,
        ..Chaos::default()
    };
    let mut setup = setup(100, chaos, 3);
    setup.forwarder.process_timeout_seconds = 1;
    let p = Pipeline::start(setup).await;
    let run = split(&p, "late-answers", &[]).await;
    p.drain_with(&p.forwarder, WORKERS, DRAIN_LIMIT).await;

    assert_completed_with_one_reduce(&p, &run).await;
    let slow = picked(&slow, 3, "slow", 100);
    assert!(!slow.is_empty());
    let stats = p.service.stats();
    let run_stats = stats.run(NAME, run.as_str()).unwrap();
    let children: BTreeMap<u64, _> = p
        .ledger
        .children(NAME, &run)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.seq, c))
        .collect();
    for seq in &slow {
        let history = &run_stats.children[seq].history;
        // The work was done on the first call, whose answer came after the timeout; the
        // redelivery got the kept answer.
        assert_eq!(
            (history[0].attempt, history[0].status, history[0].replay),
            (1, Some(200), false),
            "seq {seq}: {history:?}"
        );
        assert!(
            history[1..]
                .iter()
                .all(|c| c.replay && c.status == Some(200)),
            "seq {seq}: {history:?}"
        );
        assert_eq!(children[seq].state, ChildState::Succeeded);
        assert_eq!(children[seq].attempts, 2, "seq {seq}: timed out once");
    }
    assert_eq!(
        run_stats.succeeded, 100,
        "the service counted each seq once"
    );
    let audit = p.audit("3: answers after the timeout", &run, 100).await;
    report(
        "3",
        "s03_answers_after_the_timeout_are_redelivered_and_counted_once",
        &format!("100 items, {} answered after the 1 s timeout", slow.len()),
        started,
        &[audit],
    );
}

// ---- 4 ------------------------------------------------------------------------------

/// An invocation killed by [`drain_killing`].
struct Killed {
    /// The AWS request (1-based) it was killed before.
    before_request: u32,
    batch: SqsEvent,
    /// It died in the middle of the batch (not after its last request).
    mid_batch: bool,
}

/// A forwarder with `max_attempts` whose AWS requests go through the returned wire: an
/// armed wire kills the invocation before the chosen request.
fn killable_forwarder(p: &Pipeline, max_attempts: u32) -> (Tripwire, Forwarder) {
    let wire = Tripwire::default();
    let faulty = FaultyHttp::new(wire.rule());
    let forwarder = p.build_forwarder(&ForwarderOptions {
        max_attempts,
        backoff_base_millis: 20,
        http: Some(faulty.shared()),
        ..ForwarderOptions::default()
    });
    (wire, forwarder)
}

/// Drains the queue through `forwarder` as the mapping would, killing the invocations
/// `kill` picks by their 1-based number (`Some(n)`: before its `n`-th AWS request, through
/// `wire`). A killed batch is never settled: it comes back after the visibility timeout.
/// Returns the kills and the number of invocations.
async fn drain_killing(
    p: &Pipeline,
    forwarder: &Forwarder,
    wire: &Tripwire,
    mut kill: impl FnMut(u64) -> Option<u32>,
) -> (Vec<Killed>, u64) {
    let mut kills = Vec::new();
    let mut steps = 0;
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        assert!(Instant::now() < deadline, "the queue did not drain");
        let event = receive(&p.mapping_sqs, &p.queue_url, BATCH_SIZE, 0).await;
        if event.records.is_empty() {
            if depth(&p.sqs, &p.queue_url).await == (0, 0) {
                return (kills, steps);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        steps += 1;
        let armed = kill(steps);
        match armed {
            Some(n) => wire.arm(n),
            None => wire.disarm(),
        }
        let handled = tokio::select! {
            response = forwarder.handle(LambdaEvent::new(event.clone(), context())) => Some(response.unwrap()),
            () = wire.wait() => None,
        };
        match (armed, handled) {
            (None, Some(response)) => settle(&p.mapping_sqs, &p.queue_url, &event, &response).await,
            (Some(n), handled) => kills.push(Killed {
                before_request: n,
                mid_batch: handled.is_none(),
                batch: event,
            }),
            (None, None) => unreachable!("killed without being armed"),
        }
    }
}

#[tokio::test]
async fn s04_a_forwarder_killed_mid_batch_loses_nothing() {
    let started = Instant::now();
    let p = Pipeline::start(setup(200, Chaos::default(), 5)).await;
    let run = split(&p, "killed-forwarder", &[]).await;
    // A forwarder whose AWS requests can hang: the invocation is killed at the armed one.
    let (wire, forwarder) = killable_forwarder(&p, 5);
    // About one invocation in ten dies before its 1st to 4th AWS request: before reading
    // the run, before the ledger write (the calls were made), before reading the run
    // back, or before the claim, the dead letters and the visibility changes. An
    // invocation that dies after its last request dies before the mapping deletes the
    // batch. The batch is never settled: it comes back after the visibility timeout.
    let dice = Dice::new(17);
    let (killed, steps) = drain_killing(&p, &forwarder, &wire, |_| {
        dice.chance(0.1).then(|| dice.between(1, 4) as u32)
    })
    .await;
    let kills: Vec<(u32, usize, bool)> = killed
        .iter()
        .map(|k| (k.before_request, k.batch.records.len(), k.mid_batch))
        .collect();
    assert!(!kills.is_empty(), "no invocation was killed");
    println!(
        "killed (before AWS request n, batch size, mid-batch): {kills:?} of {steps} invocations"
    );

    // A killed reduce call comes back too, and is answered from the service's record.
    assert_eq!(p.record(&run).await.state, RunState::Completed);
    let stats = p.service.stats();
    let reduce = &stats.run(NAME, run.as_str()).unwrap().reduce;
    assert!(reduce.completed);
    assert!(
        reduce.statuses.iter().all(|s| *s == Some(200)),
        "{reduce:?}"
    );
    let sent = p.forwarder_requests.snapshot();
    assert_eq!(sent.get("SQS.SendMessage"), Some(&1), "one claim: {sent:?}");
    let audit = p.audit("4: forwarder killed mid-batch", &run, 200).await;
    assert_eq!(audit.failed, 0);
    report(
        "4",
        "s04_a_forwarder_killed_mid_batch_loses_nothing",
        &format!("200 items, {} of {steps} invocations killed", kills.len()),
        started,
        &[audit],
    );
}

#[tokio::test]
async fn s04b_a_forwarder_killed_on_the_last_attempt_still_records_failed() {
    let started = Instant::now();
    // One attempt only: every delivery is a message's last.
    let p = Pipeline::start(setup(60, Chaos::default(), 1)).await;
    let run = split(&p, "killed-last-attempt", &[]).await;
    let (wire, forwarder) = killable_forwarder(&p, 1);
    // The first two batches die after their calls, before the ledger write (the 2nd AWS
    // request). Their messages come back once more (the queue's maxReceiveCount is
    // max_attempts + 1) and are recorded FAILED without another call, then dead-lettered.
    let (kills, _) = drain_killing(&p, &forwarder, &wire, |step| (step <= 2).then_some(2)).await;
    let killed: BTreeSet<u64> = kills
        .iter()
        .flat_map(|k| &k.batch.records)
        .filter_map(
            |m| match QueueMessage::parse(m.body.as_deref().unwrap_or_default()) {
                Ok(QueueMessage::Process { seq, .. }) => Some(seq),
                _ => None,
            },
        )
        .collect();
    assert!(!killed.is_empty(), "no batch was killed");
    let record = p.record(&run).await;
    assert_eq!(record.state, RunState::Completed, "{record:?}");
    assert_eq!(record.failed, killed.len() as u64, "killed seqs {killed:?}");
    let stats = p.service.stats();
    let seen = stats.run(NAME, run.as_str()).unwrap();
    for seq in &killed {
        assert_eq!(
            seen.child(*seq).map(|c| c.calls),
            Some(1),
            "seq {seq}: one call, max_attempts 1"
        );
    }
    let audit = p.audit("4b: killed on the last attempt", &run, 60).await;
    assert_eq!(audit.failed, killed.len() as u64);
    report(
        "4b",
        "s04b_a_forwarder_killed_on_the_last_attempt_still_records_failed",
        &format!(
            "60 items, max_attempts 1, {} seqs killed mid-call",
            killed.len()
        ),
        started,
        &[audit],
    );
}

#[tokio::test]
async fn s04c_a_forwarder_killed_on_both_last_receives_is_recorded_failed_by_the_sweep() {
    let started = Instant::now();
    const ITEMS: u64 = 30;
    let p = Pipeline::start(setup(ITEMS, Chaos::default(), 1)).await;
    let run = split(&p, "killed-twice", &[]).await;
    let (wire, forwarder) = killable_forwarder(&p, 1);
    // Every invocation dies before its ledger write (the 2nd AWS request): after its one
    // call on the first receive, and again on the extra receive that would have recorded
    // the child FAILED. SQS then dead-letters every message with nothing in the ledger.
    let (kills, _) = drain_killing(&p, &forwarder, &wire, |_| Some(2)).await;
    assert!(!kills.is_empty());
    let stuck = p.record(&run).await;
    assert_eq!(
        (stuck.state, stuck.done),
        (RunState::Processing, 0),
        "{stuck:?}"
    );

    // The next run is already on the queue (back-to-back runs with `overlap = "allow"`
    // never leave it empty). Before the fix the sweep waited for an empty queue and the
    // killed run waited with it; now the letters are evidence enough: each of their
    // messages used up its receives, and a duplicate still on its way that succeeds moves
    // its child from failed to succeeded.
    let (sweeper, _) = p.splitter(p.settings(&[("OVERLAP", "allow")]), quick());
    let next = p.run_with_children("next-run", 5).await;
    assert_eq!(depth(&p.sqs, &p.queue_url).await.0, 5);
    let swept = handle(&sweeper, json!({"sweep": true}), later())
        .await
        .unwrap();
    assert_eq!(
        swept,
        Outcome::Swept {
            processing: 2,
            failed_from_dead_letters: ITEMS as usize,
            claimed: vec![run.clone()],
            requeued: vec![],
            splitting: vec![],
            resumed: vec![],
            announced: vec![],
        }
    );
    // Nothing more the next time.
    let again = handle(&sweeper, json!({"sweep": true}), later())
        .await
        .unwrap();
    assert!(
        matches!(
            &again,
            Outcome::Swept {
                failed_from_dead_letters: 0,
                ..
            }
        ),
        "{again:?}"
    );
    p.drain_with(&p.forwarder, WORKERS, DRAIN_LIMIT).await;
    assert_completed_with_one_reduce(&p, &run).await;
    assert_completed_with_one_reduce(&p, &next).await;
    let record = p.record(&run).await;
    assert_eq!((record.succeeded, record.failed), (0, ITEMS));
    let children = p.ledger.children(NAME, &run).await.unwrap();
    assert!(
        children.iter().all(|c| c.state == ChildState::Failed
            && c.reason
                .as_deref()
                .is_some_and(|r| r.contains("no outcome recorded"))),
        "{children:?}"
    );
    // The letters stay in the dead-letter queue for redrive: the audit finds every
    // FAILED child there.
    let audit = p
        .audit("4c: killed on both last receives", &run, ITEMS)
        .await;
    assert_eq!(audit.failed, ITEMS);
    report(
        "4c",
        "s04c_a_forwarder_killed_on_both_last_receives_is_recorded_failed_by_the_sweep",
        &format!("{ITEMS} items, max_attempts 1, every invocation killed before its ledger write"),
        started,
        &[audit],
    );
}

// ---- 5 ------------------------------------------------------------------------------

#[tokio::test]
async fn s05_a_splitter_killed_at_a_random_page_resumes_to_one_run() {
    let started = Instant::now();
    // 20 runs of 40 items, pages of 10, 15 or 20 items (one or two batches of 10 each),
    // each killed at a seeded batch: before a page, or in its middle.
    let items = 40;
    let p = Pipeline::start(setup(items, Chaos::default(), 3)).await;
    let dice = Dice::new(5);
    let mut crashed = BTreeSet::new();
    let mut audits = Vec::new();
    for round in 0..20u64 {
        let page_size = [10, 15, 20][round as usize % 3];
        let pages = page_batches(items, page_size);
        let crash_after = dice.between(0, pages.iter().sum::<u64>() - 1);
        let page = pages
            .iter()
            .scan(0, |batches, n| {
                *batches += n;
                Some(*batches)
            })
            .position(|batches| crash_after < batches)
            .unwrap() as u64;
        crashed.insert((page_size, page));
        let name = format!("crash-{round:02}");
        let payload = json!({"run": name});
        let settings = [
            ("SPLIT_PAGE_SIZE", page_size.to_string()),
            ("OVERLAP", "allow".to_owned()),
        ];
        let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (mut crashing, _) = p.splitter(p.settings(&settings), quick());
        crashing.tuning.enqueue.attempts = 2;
        crashing.queue = p.recorded(Arc::new(CrashingQueue::new(
            p.sqs_queue(),
            crash_after as usize,
        )));
        let error = handle(&crashing, payload.clone(), later())
            .await
            .unwrap_err();
        match &error {
            SplitterError::Enqueue {
                page: failed_page,
                first_seq,
                ..
            } => assert_eq!(
                (*failed_page, *first_seq),
                (page + 1, page * page_size),
                "{name}"
            ),
            other => panic!("{name}: {other:?}"),
        }
        let run = RunId::parse(&name).unwrap();
        let checkpoint = p.record(&run).await;
        assert_eq!(checkpoint.state, RunState::Splitting);
        assert_eq!(
            (checkpoint.pages, checkpoint.enqueued),
            (page, page * page_size)
        );

        // Lambda invokes it again with the same event: it resumes at the checkpoint.
        let (splitter, handoff) = p.splitter(p.settings(&settings), quick());
        let outcomes = follow(&splitter, &handoff, payload, later).await;
        assert_eq!(
            sealed(outcomes.last().unwrap()),
            (items, pages.len() as u64, false),
            "{name}"
        );
        let (seqs, _) = census(&p.queued());
        assert_eq!(seqs.len() as u64, items, "{name}: every seq queued");
        let reread = (page * page_size)..((page + 1) * page_size);
        for (seq, count) in &seqs {
            assert!(
                *count == 1 || (reread.contains(seq) && *count == 2),
                "{name}: seq {seq} queued {count} times"
            );
        }
        p.drain_with(&p.forwarder, WORKERS, DRAIN_LIMIT).await;
        assert_completed_with_one_reduce(&p, &run).await;
        assert_eq!(p.record(&run).await.total, Some(items));
        audits.push(p.audit(&name, &run, items).await);
    }
    assert_eq!(p.all_runs().await.len(), 20, "one run per start");
    assert!(crashed.len() >= 6, "killed at too few places: {crashed:?}");
    for audit in &audits {
        audit.assert_clean();
    }
    report(
        "5",
        "s05_a_splitter_killed_at_a_random_page_resumes_to_one_run",
        &format!("20 runs of 40 items, killed at (page size, page) {crashed:?}"),
        started,
        &[audit::sum("5: splitter killed (20 runs)", &audits)],
    );
}

/// The `SendMessageBatch` calls of each page of a split of `items` in pages of
/// `page_size`.
fn page_batches(items: u64, page_size: u64) -> Vec<u64> {
    (0..items)
        .step_by(page_size as usize)
        .map(|start| (page_size.min(items - start)).div_ceil(10))
        .collect()
}

// ---- 6 ------------------------------------------------------------------------------

#[tokio::test]
async fn s06_a_tick_delivered_three_times_at_once_makes_one_run() {
    let started = Instant::now();
    let p = Pipeline::start(setup(200, Chaos::default(), 3)).await;
    // The deliveries that find the run started find its lease taken.
    let (splitter, _) = p.splitter(p.settings(&[("SPLIT_PAGE_SIZE", PAGE)]), quick());
    let (a, b, c) = tokio::join!(
        handle(&splitter, scheduled_tick(), later()),
        handle(&splitter, scheduled_tick(), later()),
        handle(&splitter, scheduled_tick(), later()),
    );
    let outcomes = [a.unwrap(), b.unwrap(), c.unwrap()];
    let sealed_by = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Sealed { total: 200, .. }))
        .count();
    assert_eq!(sealed_by, 1, "{outcomes:?}");
    let runs = p.all_runs().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let (seqs, _) = census(&p.queued());
    assert_every_seq_once(&seqs, 200);
    p.drain_with(&p.forwarder, WORKERS, DRAIN_LIMIT).await;

    let run = RunId::parse(SCHEDULED_RUN).unwrap();
    assert_completed_with_one_reduce(&p, &run).await;
    assert_eq!(p.split_calls(SCHEDULED_RUN), 4, "each page read once");
    let audit = p.audit("6: tick delivered 3 times", &run, 200).await;
    report(
        "6",
        "s06_a_tick_delivered_three_times_at_once_makes_one_run",
        "200 items, 3 concurrent deliveries",
        started,
        &[audit],
    );
}

// ---- 7 ------------------------------------------------------------------------------

/// A queue that sends a seeded share of the process entries (those named by their seq)
/// twice: SQS's at-least-once.
struct DuplicatingQueue {
    inner: Arc<dyn Queue>,
    seed: u64,
    share: f64,
}

impl Queue for DuplicatingQueue {
    fn send_batch<'a>(
        &'a self,
        entries: &'a [Entry],
    ) -> Boxed<'a, Result<Vec<FailedEntry>, String>> {
        Box::pin(async move {
            let failed = self.inner.send_batch(entries).await?;
            let again: Vec<Entry> = entries
                .iter()
                .filter(|e| {
                    !failed.iter().any(|f| f.id == e.id)
                        && e.id
                            .parse()
                            .is_ok_and(|seq| Dice::pick(self.seed, seq, self.share))
                })
                .cloned()
                .collect();
            if !again.is_empty() {
                self.inner.send_batch(&again).await?;
            }
            Ok(failed)
        })
    }
}

#[tokio::test]
async fn s07_duplicated_messages_count_once_during_after_and_past_a_redrive() {
    let started = Instant::now();
    let items = 200;
    let failing = [7, 77, 150];
    let chaos = Chaos {
        fail_seqs_4xx: SeqSelector::Seqs(failing.into()),
        ..Chaos::default()
    };
    let p = Pipeline::start(setup(items, chaos, 3)).await;
    let (mut splitter, handoff) = p.splitter(
        p.settings(&[("SPLIT_PAGE_SIZE", PAGE), ("OVERLAP", "allow")]),
        quick(),
    );
    // During the run: 5% of the messages queued twice.
    splitter.queue = Arc::new(DuplicatingQueue {
        inner: splitter.queue.clone(),
        seed: 7,
        share: 0.05,
    });
    let outcomes = follow(&splitter, &handoff, json!({"run": "duplicates"}), later).await;
    sealed(outcomes.last().unwrap());
    let run = RunId::parse("duplicates").unwrap();
    let (seqs, _) = census(&p.queued());
    let duplicated = seqs.values().filter(|n| **n == 2).count();
    assert!(duplicated > 0, "some messages were queued twice");
    p.drain_with(&p.forwarder, WORKERS, DRAIN_LIMIT).await;
    assert_completed_with_one_reduce(&p, &run).await;
    let during = p
        .audit("7: 5% duplicated during the run", &run, items)
        .await;
    assert_eq!(
        (during.succeeded, during.failed),
        (items - 3, 3),
        "{during:?}"
    );

    // After the run: 5% of the seqs delivered again.
    let again: Vec<u64> = (0..items)
        .filter(|seq| Dice::pick(70, *seq, 0.05))
        .collect();
    for seq in &again {
        p.send_process(&run, *seq).await;
    }
    p.drain_with(&p.forwarder, WORKERS, DRAIN_LIMIT).await;
    assert_completed_with_one_reduce(&p, &run).await;
    let after = p.audit("7: 5% again after COMPLETED", &run, items).await;
    assert_eq!((after.succeeded, after.failed), (items - 3, 3));

    // The fix, then the redrive, every dead letter sent twice.
    p.service.service.set_fixed(true);
    let parked = p.parked().await;
    assert_eq!(p.redrive().await, parked.len());
    for (body, _) in &parked {
        p.send(body).await;
    }
    p.drain_with(&p.forwarder, WORKERS, DRAIN_LIMIT).await;
    let record = p.record(&run).await;
    assert_eq!(
        (record.succeeded, record.failed, record.done, record.state),
        (items, 0, items, RunState::Completed)
    );
    assert_eq!(p.reduce_calls(&run), 1);
    let redriven = p.audit("7: dead letters redriven twice", &run, items).await;
    report(
        "7",
        "s07_duplicated_messages_count_once_during_after_and_past_a_redrive",
        &format!(
            "200 items, {duplicated} queued twice, {} sent again after COMPLETED, {} dead letters redriven twice",
            again.len(),
            parked.len()
        ),
        started,
        &[during, after, redriven],
    );
}

// ---- 8 ------------------------------------------------------------------------------

#[tokio::test]
async fn s08_permanent_failures_are_failed_dead_lettered_and_redriven() {
    let started = Instant::now();
    let items = 300;
    let selector = SeqSelector::Fraction(0.02);
    let chaos = Chaos {
        seed: 8,
        fail_seqs_4xx: selector.clone(),
        ..Chaos::default()
    };
    let p = Pipeline::start(setup(items, chaos, 3)).await;
    let run = split(&p, "permanent", &[]).await;
    p.drain_with(&p.forwarder, WORKERS, DRAIN_LIMIT).await;

    assert_completed_with_one_reduce(&p, &run).await;
    let expected = picked(&selector, 8, "fail-4xx", items);
    assert!(!expected.is_empty());
    let children = p.ledger.children(NAME, &run).await.unwrap();
    let failed: BTreeSet<u64> = children
        .iter()
        .filter(|c| c.state == ChildState::Failed)
        .map(|c| {
            assert_eq!(c.attempts, 1, "seq {}: a 4xx is not retried", c.seq);
            assert!(c.reason.as_deref().unwrap_or_default().contains("422"));
            c.seq
        })
        .collect();
    assert_eq!(failed, expected);
    let parked = p.parked().await;
    // Dead-lettering is at least once: a batch settled after its visibility timeout (a
    // loaded machine) is handled again and its failures sent to the DLQ again.
    let dead: BTreeSet<u64> = parked
        .iter()
        .filter_map(|(body, _)| match QueueMessage::parse(body) {
            Ok(QueueMessage::Process { seq, .. }) => Some(seq),
            _ => None,
        })
        .collect();
    assert_eq!(
        dead, expected,
        "a dead letter for every failure, and only for them"
    );
    let report_of = |p: &Pipeline| {
        p.service
            .stats()
            .run(NAME, run.as_str())
            .unwrap()
            .reduce
            .report
            .clone()
            .unwrap()
    };
    assert_eq!(report_of(&p)["failed"], json!(expected.len()));
    let before = p.audit("8: 2% fail with 4xx", &run, items).await;
    assert_eq!(before.failed, expected.len() as u64);

    p.service.service.set_fixed(true);
    assert_eq!(p.redrive().await, parked.len());
    p.drain_with(&p.forwarder, WORKERS, DRAIN_LIMIT).await;
    let record = p.record(&run).await;
    assert_eq!(
        (record.succeeded, record.failed, record.done, record.state),
        (items, 0, items, RunState::Completed),
        "the counts moved"
    );
    assert_eq!(p.reduce_calls(&run), 1);
    let after = p.audit("8: after the fix and redrive", &run, items).await;
    report(
        "8",
        "s08_permanent_failures_are_failed_dead_lettered_and_redriven",
        &format!("300 items, {} failing with 422", expected.len()),
        started,
        &[before, after],
    );
}

// ---- 9 ------------------------------------------------------------------------------

#[tokio::test]
async fn s09_a_reduce_failing_three_times_is_claimed_once_and_completes() {
    let started = Instant::now();
    let chaos = Chaos {
        reduce_failures: 3,
        ..Chaos::default()
    };
    let p = Pipeline::start(setup(100, chaos, 5)).await;
    let run = split(&p, "reduce-retries", &[]).await;
    p.drain_with(&p.forwarder, WORKERS, DRAIN_LIMIT).await;

    assert_eq!(p.record(&run).await.state, RunState::Completed);
    let stats = p.service.stats();
    let reduce = &stats.run(NAME, run.as_str()).unwrap().reduce;
    assert_eq!(
        reduce.statuses,
        [Some(503), Some(503), Some(503), Some(200)]
    );
    // One claim: one reduce message queued (the forwarder sends nothing else here).
    let sent = p.forwarder_requests.snapshot();
    assert_eq!(sent.get("SQS.SendMessage"), Some(&1), "{sent:?}");
    assert!(p.parked().await.is_empty());
    let audit = p.audit("9: reduce fails 3 times", &run, 100).await;
    report(
        "9",
        "s09_a_reduce_failing_three_times_is_claimed_once_and_completes",
        "100 items, reduce answered 503 three times",
        started,
        &[audit],
    );
}

// ---- 10 -----------------------------------------------------------------------------

#[tokio::test]
async fn s10_a_crash_between_the_last_count_and_the_claim_is_swept() {
    let started = Instant::now();
    let p = Pipeline::start(setup(100, Chaos::default(), 3)).await;
    let run = split(&p, "missed-claim", &[]).await;
    // The claim (the UpdateItem that moves the run to REDUCING) never lands: DynamoDB
    // fails it however often it is tried, after the last counter update went through.
    let faulty = FaultyHttp::by_body(|operation, body| {
        if operation == dynamodb("UpdateItem") && body.contains("REDUCING") {
            dynamodb_error(500, "InternalServerError", "Internal server error")
        } else {
            Fault::Pass
        }
    });
    let crashing = p.build_forwarder(&ForwarderOptions {
        http: Some(faulty.shared()),
        ledger_retry: Some(fast_retries()),
        ..ForwarderOptions::default()
    });
    p.drain_with(&crashing, WORKERS, DRAIN_LIMIT).await;
    let stuck = p.record(&run).await;
    assert_eq!(
        (stuck.state, stuck.done, stuck.total),
        (RunState::Processing, 100, Some(100)),
        "finished, but not claimed"
    );
    assert!(faulty.injected()[&dynamodb("UpdateItem")] >= 1);
    assert_eq!(p.reduce_calls(&run), 0);

    let (sweeper, _) = p.splitter(p.settings(&[("OVERLAP", "allow")]), quick());
    let swept = handle(&sweeper, json!({"sweep": true}), later())
        .await
        .unwrap();
    assert_eq!(
        swept,
        Outcome::Swept {
            processing: 1,
            failed_from_dead_letters: 0,
            claimed: vec![run.clone()],
            requeued: vec![],
            splitting: vec![],
            resumed: vec![],
            announced: vec![],
        }
    );
    p.drain_with(&p.forwarder, WORKERS, DRAIN_LIMIT).await;
    assert_completed_with_one_reduce(&p, &run).await;
    let again = handle(&sweeper, json!({"sweep": true}), later())
        .await
        .unwrap();
    assert_eq!(
        again,
        Outcome::Swept {
            processing: 0,
            failed_from_dead_letters: 0,
            claimed: vec![],
            requeued: vec![],
            splitting: vec![],
            resumed: vec![],
            announced: vec![],
        }
    );
    let audit = p.audit("10: claim lost, swept", &run, 100).await;
    report(
        "10",
        "s10_a_crash_between_the_last_count_and_the_claim_is_swept",
        "100 items, every claim attempt failed",
        started,
        &[audit],
    );
}

#[tokio::test]
async fn s10b_a_crash_between_the_claim_and_the_reduce_message_is_swept() {
    let started = Instant::now();
    let p = Pipeline::start(setup(60, Chaos::default(), 3)).await;
    let run = split(&p, "lost-reduce-message", &[]).await;
    // The reduce is claimed, but its message never reaches the queue: SQS fails every
    // SendMessage of this forwarder (the SDK's retries included), as if the function
    // died right after the claim.
    let faulty = FaultyHttp::new(|operation| {
        if operation == "AmazonSQS.SendMessage" {
            Fault::Answer {
                status: 500,
                body: json!({"__type": "InternalFailure", "message": "injected"}),
            }
        } else {
            Fault::Pass
        }
    });
    let crashing = p.build_forwarder(&ForwarderOptions {
        http: Some(faulty.shared()),
        ..ForwarderOptions::default()
    });
    p.drain_with(&crashing, WORKERS, DRAIN_LIMIT).await;
    let stuck = p.record(&run).await;
    assert_eq!(stuck.state, RunState::Reducing, "claimed: {stuck:?}");
    assert!(stuck.reduce_claimed_at.is_some() && stuck.reduce_queued_at.is_none());
    assert_eq!(p.reduce_calls(&run), 0);

    // A young claim is left alone (its message may be on its way) ...
    let (sweeper, _) = p.splitter(p.settings(&[("OVERLAP", "allow")]), quick());
    let swept = handle(&sweeper, json!({"sweep": true}), later())
        .await
        .unwrap();
    assert!(
        matches!(&swept, Outcome::Swept { requeued, .. } if requeued.is_empty()),
        "{swept:?}"
    );
    // ... an aged one gets its reduce message queued, once.
    let (mut aged, _) = p.splitter(p.settings(&[("OVERLAP", "allow")]), quick());
    aged.tuning.reduce_requeue_after = Duration::ZERO;
    let swept = handle(&aged, json!({"sweep": true}), later())
        .await
        .unwrap();
    assert_eq!(
        swept,
        Outcome::Swept {
            processing: 0,
            failed_from_dead_letters: 0,
            claimed: vec![],
            requeued: vec![run.clone()],
            splitting: vec![],
            resumed: vec![],
            announced: vec![],
        }
    );
    assert!(p.record(&run).await.reduce_queued_at.is_some());
    let again = handle(&aged, json!({"sweep": true}), later())
        .await
        .unwrap();
    assert!(
        matches!(&again, Outcome::Swept { requeued, .. } if requeued.is_empty()),
        "{again:?}"
    );
    p.drain_with(&p.forwarder, WORKERS, DRAIN_LIMIT).await;
    assert_completed_with_one_reduce(&p, &run).await;
    let audit = p.audit("10b: reduce message lost, swept", &run, 60).await;
    report(
        "10b",
        "s10b_a_crash_between_the_claim_and_the_reduce_message_is_swept",
        "60 items, the claimer's reduce message never sent",
        started,
        &[audit],
    );
}

/// Retries of throttled and conflicting ledger calls in milliseconds.
fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 12,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(10),
    }
}

// ---- 11 -----------------------------------------------------------------------------

#[tokio::test]
async fn s11_throttled_and_conflicting_ledger_writes_are_retried_and_counters_match() {
    let started = Instant::now();
    let p = Pipeline::start(setup(200, Chaos::default(), 3)).await;
    // Sharded counters: the run's counts are summed over 4 counter items.
    let run = split(&p, "contention", &[("COUNTER_SHARDS", "4")]).await;
    // Answered without reaching the emulator: the first tries of the blocks' reports
    // cancelled by a conflict or throttled, every other update (the blocks' counts and the
    // run's) and a tenth of the run reads throttled.
    let dice = Dice::new(11);
    let updates = AtomicU64::new(0);
    let reports = AtomicU64::new(0);
    let faulty = FaultyHttp::new(move |operation| {
        if operation == dynamodb("TransactWriteItems") {
            // A block's report (two in this run): its first tries conflict or throttle.
            match reports.fetch_add(1, Ordering::SeqCst) {
                0 | 2 => transaction_conflict(),
                1 | 3 => dynamodb_error(
                    400,
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded.",
                ),
                _ => Fault::Pass,
            }
        } else if operation == dynamodb("UpdateItem") {
            if updates.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                throttling()
            } else {
                Fault::Pass
            }
        } else if operation == dynamodb("Query") && dice.chance(0.1) {
            throttling()
        } else {
            Fault::Pass
        }
    });
    let forwarder = p.build_forwarder(&ForwarderOptions {
        http: Some(faulty.shared()),
        ledger_retry: Some(fast_retries()),
        ..ForwarderOptions::default()
    });
    p.drain_with(&forwarder, WORKERS, DRAIN_LIMIT).await;

    assert_completed_with_one_reduce(&p, &run).await;
    let injected = faulty.injected();
    let count = |operation: &str| injected.get(&dynamodb(operation)).copied().unwrap_or(0);
    let (transactions, updates, reads) = (
        count("TransactWriteItems"),
        count("UpdateItem"),
        count("Query"),
    );
    // The emulator throttles and conflicts on its own too (its partition ceiling and
    // transaction holds), so which calls reach the injected faults varies: the run reads
    // may all have been answered before the dice threw a fault for one.
    let limits = p.limits();
    assert!(
        transactions > 0 && updates >= 2 && reads + limits.throttled + limits.conflicted > 0,
        "{injected:?}, emulator {limits}"
    );
    let audit = p.audit("11: conflicts + throttling", &run, 200).await;
    assert_eq!(audit.succeeded, 200);
    report(
        "11",
        "s11_throttled_and_conflicting_ledger_writes_are_retried_and_counters_match",
        &format!(
            "200 items, 4 counter shards, {transactions} transactions cancelled or throttled, {updates} run updates and {reads} run reads throttled"
        ),
        started,
        &[audit],
    );
}

// ---- 12 -----------------------------------------------------------------------------

/// The bytes of a process request of `seq` in `run`, signed at `t`.
fn signed_process(service: SocketAddr, run: &str, seq: u64, t: i64) -> Vec<u8> {
    let path = format!("/microprocesses/{NAME}/process");
    let run_id = RunId::parse(run).unwrap();
    let body = serde_json::to_vec(&ProcessRequest {
        microprocess: NAME.into(),
        run: run_id.clone(),
        seq,
        item: demo_service::paging::item_id(seq),
        payload: None,
        attempt: 1,
        callback: None,
    })
    .unwrap();
    let signature = signature_header(t, &[sign(SECRET, t, "POST", &path, &body)]);
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {service}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in [
        (HEADER_CONTRACT, CONTRACT_VERSION.to_owned()),
        (HEADER_NAME, NAME.to_owned()),
        (HEADER_RUN, run.to_owned()),
        (HEADER_SEQ, seq.to_string()),
        (HEADER_ATTEMPT, "1".to_owned()),
        (
            HEADER_IDEMPOTENCY_KEY,
            process_idempotency_key(&run_id, seq),
        ),
        (HEADER_SIGNATURE, signature),
    ] {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend(body);
    bytes
}

/// Sends raw request bytes; (status, head of the response, lowercase).
async fn send_raw(service: SocketAddr, bytes: Vec<u8>) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(service).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(&bytes).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let text = String::from_utf8_lossy(&response).to_lowercase();
        let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, head)
    })
    .await
    .unwrap()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn s12_bad_stale_and_replayed_signatures_are_rejected() {
    let started = Instant::now();
    let items = 20;
    let p = Pipeline::start(setup(items, Chaos::default(), 3)).await;
    let run = split(&p, "bad-signatures", &[]).await;

    // A forwarder signing with the wrong secret: every call refused, every child FAILED
    // at once and dead-lettered, the reduce refused too.
    let wrong = p.build_forwarder(&ForwarderOptions {
        secret: "not-the-secret".into(),
        ..ForwarderOptions::default()
    });
    p.drain_with(&wrong, WORKERS, DRAIN_LIMIT).await;
    let record = p.record(&run).await;
    assert_eq!(
        (record.failed, record.state),
        (items, RunState::ReduceFailed)
    );
    let children = p.ledger.children(NAME, &run).await.unwrap();
    assert!(children.iter().all(|c| c.state == ChildState::Failed
        && c.attempts == 1
        && c.reason.as_deref().unwrap_or_default().contains("401")));
    let stats = p.service.stats();
    assert_eq!(stats.rejected("signature_mismatch"), items + 1);
    assert_eq!(stats.run(NAME, run.as_str()).unwrap().process_calls, 0);
    let refused = p.audit("12: wrong secret", &run, items).await;
    assert_eq!(refused.failed, items);

    // The secret fixed: the dead letters redriven, the reduce retried by hand.
    let dead = p.redrive().await;
    assert_eq!(dead as u64, items + 1, "the children's and the reduce's");
    p.drain(DRAIN_LIMIT).await;
    assert!(p.ledger.retry_reduce(NAME, &run, Utc::now()).await.unwrap());
    p.send(&QueueMessage::Reduce { run: run.clone() }.to_body())
        .await;
    p.drain(DRAIN_LIMIT).await;
    assert_completed_with_one_reduce(&p, &run).await;
    let fixed = p.audit("12: redriven with the secret", &run, items).await;
    assert_eq!(fixed.succeeded, items);

    // Stale: signed 301 s ago.
    let service = p.service.queue_addr;
    let (status, _) = send_raw(service, signed_process(service, "raw", 1, unix_now() - 301)).await;
    assert_eq!(status, 401);
    assert_eq!(p.service.stats().rejected("signature_stale"), 1);

    // Replayed: a request signed near the edge of the window is accepted, its replay
    // inside the window gets the kept answer, and once the window has passed its replay
    // is refused.
    let signed_at = unix_now() - 297;
    let captured = signed_process(service, "raw", 2, signed_at);
    let (status, head) = send_raw(service, captured.clone()).await;
    assert_eq!(status, 200, "{head}");
    let (status, head) = send_raw(service, captured.clone()).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("idempotent-replayed: true"), "{head}");
    while unix_now() - signed_at <= 301 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = send_raw(service, captured).await;
    assert_eq!(status, 401);
    let stats = p.service.stats();
    assert_eq!(stats.rejected("signature_stale"), 2);
    let raw = stats.run(NAME, "raw").unwrap();
    assert_eq!((raw.process_calls, raw.succeeded), (2, 1), "counted once");
    report(
        "12",
        "s12_bad_stale_and_replayed_signatures_are_rejected",
        "20 items with a wrong secret, then redriven; one stale and one replayed request",
        started,
        &[refused, fixed],
    );
}

// ---- the headline run ---------------------------------------------------------------

/// Items of the headline run: `CHAOS_ITEMS`, 100,000 unless set.
fn chaos_items() -> u64 {
    std::env::var("CHAOS_ITEMS").map_or(100_000, |v| {
        v.replace(['_', ','], "")
            .parse()
            .unwrap_or_else(|_| panic!("CHAOS_ITEMS must be a number of items, not `{v}`"))
    })
}

/// Forwarder batches at a time in the headline run (the mapping's concurrency).
const CHAOS_WORKERS: usize = 3;
/// Share of forwarder invocations killed.
const CHAOS_KILL_RATE: f64 = 0.01;
/// Share of the process messages the splitter queues twice.
const CHAOS_DUPLICATE_RATE: f64 = 0.05;
/// Seed of every random choice of the headline run.
const CHAOS_SEED: u64 = 2026;
/// How long the headline run may go without progress (children counted, pages split, a
/// state change) before it is called stuck.
const CHAOS_STALL: Duration = Duration::from_secs(300);

/// What one of the headline run's mapping workers did.
#[derive(Debug, Default)]
struct WorkerTally {
    invocations: u64,
    killed: u64,
    /// Message ids of the reduce messages it received (each however often).
    reduce_messages: BTreeSet<String>,
}

/// One worker of the mapping: batches through its own forwarder, whose AWS requests can
/// hang, until the split is over and the queue is empty. A seeded share of its
/// invocations is killed before their 1st to 4th AWS request (or, with fewer requests,
/// after the last, before the mapping deletes the batch), as in scenario 4: the batch is
/// never settled and comes back after the visibility timeout.
async fn chaos_worker(
    p: &Pipeline,
    worker: usize,
    max_attempts: u32,
    split_over: &AtomicBool,
) -> WorkerTally {
    let wire = Tripwire::default();
    let faulty = FaultyHttp::new(wire.rule());
    // The queue's maxReceiveCount is one more (the template's redrive policy).
    let forwarder = p.build_forwarder(&ForwarderOptions {
        max_attempts,
        backoff_base_millis: 20,
        http: Some(faulty.shared()),
        ..ForwarderOptions::default()
    });
    let dice = Dice::new(CHAOS_SEED ^ (worker as u64 + 1));
    let mut tally = WorkerTally::default();
    loop {
        let event = receive(&p.mapping_sqs, &p.queue_url, BATCH_SIZE, 0).await;
        if event.records.is_empty() {
            if split_over.load(Ordering::SeqCst) && depth(&p.sqs, &p.queue_url).await == (0, 0) {
                return tally;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        for record in &event.records {
            let body = record.body.as_deref().unwrap_or_default();
            if let Ok(QueueMessage::Reduce { .. }) = QueueMessage::parse(body) {
                tally
                    .reduce_messages
                    .insert(record.message_id.clone().unwrap_or_default());
            }
        }
        tally.invocations += 1;
        let kill = dice
            .chance(CHAOS_KILL_RATE)
            .then(|| dice.between(1, 4) as u32);
        match kill {
            Some(n) => wire.arm(n),
            None => wire.disarm(),
        }
        let handled = tokio::select! {
            response = forwarder.handle(LambdaEvent::new(event.clone(), context())) => Some(response.unwrap()),
            () = wire.wait() => None,
        };
        match (kill, handled) {
            (None, Some(response)) => settle(&p.mapping_sqs, &p.queue_url, &event, &response).await,
            (Some(_), _) => tally.killed += 1,
            (None, None) => unreachable!("killed without being armed"),
        }
    }
}

/// Issue 5's headline run: `CHAOS_ITEMS` items (100,000 unless set), split in pages of
/// 1,000 while the forwarders work, with a tenth of the process calls answered 5xx, one
/// forwarder invocation in a hundred killed and one process message in twenty queued
/// twice, all at once, on the kit's emulator, with 3 attempts (see below).
/// Prints its figures as a table (wall seconds: from the split's first invocation until
/// the queue is drained); nothing may be lost, counted twice or unexpected, the reduce is
/// claimed once, the run completes, and the dead-letter queue holds exactly the children
/// recorded `FAILED`. `make chaos` (`CHAOS_ITEMS=2000 make chaos` for a short one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the headline run of issue 5, minutes to hours: `make chaos`"]
async fn headline_chaos_run() {
    let items = chaos_items();
    // Three attempts: with a tenth of calls answered 5xx, about one child in a thousand
    // fails all of them, so the FAILED children and the dead letters have something to
    // match (with five, about one in 100,000 would).
    let max_attempts = 3;
    let chaos = Chaos {
        seed: CHAOS_SEED,
        fail_rate_5xx: 0.1,
        ..Chaos::default()
    };
    // A longer visibility timeout than the scenarios' 2 s: a batch slowed down by a busy
    // machine is not delivered again while it runs (a killed one comes back after it).
    let setup = Setup {
        visibility_timeout: 6,
        ..setup(items, chaos, max_attempts)
    };
    let p = Pipeline::on(MotoServer::start(), setup).await;
    let name = "headline";
    let run = RunId::parse(name).unwrap();

    let started = Instant::now();
    let (mut splitter, handoff) = p.splitter(
        p.settings(&[("SPLIT_PAGE_SIZE", "1000"), ("OVERLAP", "allow")]),
        quick(),
    );
    splitter.queue = Arc::new(DuplicatingQueue {
        inner: splitter.queue.clone(),
        seed: CHAOS_SEED,
        share: CHAOS_DUPLICATE_RATE,
    });
    let split_over = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    let split = async {
        let outcomes = follow(&splitter, &handoff, json!({"run": name}), later).await;
        split_over.store(true, Ordering::SeqCst);
        sealed(outcomes.last().unwrap())
    };
    let workers = async {
        let tallies =
            join_all((0..CHAOS_WORKERS).map(|w| chaos_worker(&p, w, max_attempts, &split_over)))
                .await;
        finished.store(true, Ordering::SeqCst);
        tallies
    };
    // A line every 30 s, for long runs; stuck after CHAOS_STALL without progress.
    let progress = async {
        let mut printed = Instant::now();
        let mut moved = Instant::now();
        let mut seen = None;
        while !finished.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if printed.elapsed() < Duration::from_secs(30) {
                continue;
            }
            printed = Instant::now();
            let Some(r) = p.run(name).await else {
                continue;
            };
            eprintln!(
                "headline: {:.0} s, enqueued {}, done {} of {items}, {}",
                started.elapsed().as_secs_f64(),
                r.enqueued,
                r.done,
                r.state
            );
            let now = Some((r.enqueued, r.done, r.state));
            if now != seen {
                (seen, moved) = (now, Instant::now());
            }
            assert!(
                moved.elapsed() < CHAOS_STALL,
                "no progress for {CHAOS_STALL:?}: {r:?}, {:?} (visible, in flight) on the queue",
                depth(&p.sqs, &p.queue_url).await
            );
        }
    };
    let ((total, pages, _), tallies, ()) = tokio::join!(split, workers, progress);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(total, items);

    // The figures.
    let (seqs, _) = census(&p.queued());
    let duplicates_sent = seqs.values().map(|n| u64::from(*n) - 1).sum::<u64>();
    let invocations: u64 = tallies.iter().map(|t| t.invocations).sum();
    let killed: u64 = tallies.iter().map(|t| t.killed).sum();
    let reduce_messages: BTreeSet<&String> =
        tallies.iter().flat_map(|t| &t.reduce_messages).collect();
    let record = p.record(&run).await;
    let stats = p.service.stats();
    let run_stats = stats.run(NAME, name).expect("the service saw the run");
    let answered_5xx: usize = run_stats
        .children
        .values()
        .flat_map(|c| &c.history)
        .filter(|c| c.status.is_some_and(|s| s >= 500))
        .count();
    let reduce = &run_stats.reduce;
    let reduce_200 = reduce.statuses.iter().filter(|s| **s == Some(200)).count();
    let audit = p.audit("headline", &run, items).await;
    let limits = p.limits();
    let figures: Vec<(&str, String)> = vec![
        ("items", items.to_string()),
        ("split pages", pages.to_string()),
        ("wall seconds", format!("{wall:.1}")),
        ("children/s", format!("{:.1}", items as f64 / wall)),
        ("process calls", run_stats.process_calls.to_string()),
        ("5xx answers", answered_5xx.to_string()),
        (
            "forwarder invocations killed",
            format!("{killed} of {invocations}"),
        ),
        ("duplicates sent", duplicates_sent.to_string()),
        ("lost", audit.lost.len().to_string()),
        ("double-counted", audit.double_counted.len().to_string()),
        ("unexpected", audit.unexpected.len().to_string()),
        (
            "reduce claims (messages queued / calls answered 200 of calls)",
            format!(
                "{} / {reduce_200} of {}",
                reduce_messages.len(),
                reduce.calls
            ),
        ),
        ("run state", record.state.to_string()),
        ("FAILED in ledger", audit.failed.to_string()),
        ("messages in DLQ", audit.dead_lettered.to_string()),
        (
            "dead letters superseded by a duplicate's success",
            audit.superseded.len().to_string(),
        ),
        ("requests denied (IAM)", limits.denied.to_string()),
        (
            "DynamoDB requests throttled / conflicted",
            format!("{} / {}", limits.throttled, limits.conflicted),
        ),
        (
            "requests retried after a throttle or conflict",
            limits.retried.to_string(),
        ),
    ];
    println!(
        "\nheadline chaos run: {items} items, 10% 5xx, {}% of forwarder invocations killed, {}% of messages duplicated, {CHAOS_WORKERS} batches at a time, seed {CHAOS_SEED}\n| figure | value |\n|---|---|",
        CHAOS_KILL_RATE * 100.0,
        CHAOS_DUPLICATE_RATE * 100.0
    );
    for (figure, value) in &figures {
        println!("| {figure} | {value} |");
    }

    assert!(
        answered_5xx > 0 && killed > 0 && duplicates_sent > 0,
        "every fault happened"
    );
    assert!(audit.lost.is_empty(), "lost: {:?}", audit.lost);
    assert!(
        audit.double_counted.is_empty(),
        "double-counted: {:?}",
        audit.double_counted
    );
    assert!(
        audit.unexpected.is_empty(),
        "unexpected: {:?}",
        audit.unexpected
    );
    assert_eq!(reduce_messages.len(), 1, "one reduce claim");
    assert!(
        reduce.completed,
        "the reduce report was written: {reduce:?}"
    );
    assert_eq!(record.state, RunState::Completed, "{record:?}");
    assert_eq!(
        (
            &audit.failed_not_dead_lettered,
            &audit.dead_lettered_not_failed
        ),
        (&Vec::new(), &Vec::new()),
        "the dead-letter queue holds every FAILED child, and otherwise only dead letters \
         superseded by a duplicate's success"
    );
    audit.assert_clean();
}
