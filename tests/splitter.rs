//! The splitter against the emulator's real SQS and DynamoDB and the demo service (a
//! real HTTP service implementing the contract): the handler is called directly, as the
//! Lambda runtime would, and its hand-offs are recorded and run by the test instead of
//! invoking Lambda.
//!
//! What reaches the queue is checked twice: the queue's own message count, and the
//! bodies of the entries each `SendMessageBatch` accepted, recorded on the way (receiving
//! thousands of messages back from the emulator takes minutes).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::Utc;
use demo_service::{Chaos, SeqSelector};
use kit_tests::mapping::depth;
use kit_tests::moto::MotoServer;
use kit_tests::pipeline::{
    assert_every_seq_once, census, follow, later, quick, scheduled_tick, sealed, Boxed,
    CrashingQueue, Pipeline, Setup, NAME, SCHEDULED_RUN,
};
use microprocess_shared::contract::{SplitItem, SplitPage};
use microprocess_shared::ledger::{Layout, Overlap};
use microprocess_shared::ledger_keys::{ChildState, RunState};
use microprocess_shared::queue_message::QueueMessage;
use microprocess_shared::run_id::RunId;
use microprocess_shared::service_client::SplitPageError;
use serde_json::{json, Value};
use splitter::{handle, Deadline, HandoffRule, Outcome, PageSource, SplitterError, Tuning};

async fn bench(items: u64, chaos: Chaos) -> Pipeline {
    bench_on(MotoServer::start(), items, chaos).await
}

async fn bench_on(moto: MotoServer, items: u64, chaos: Chaos) -> Pipeline {
    Pipeline::on(
        moto,
        Setup {
            items,
            chaos,
            ..Setup::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_split_of_2500_items_seals_with_every_seq_queued_once() {
    let bench = bench(2500, Chaos::default()).await;
    let (splitter, handoff) = bench.default_splitter();
    let outcome = handle(&splitter, scheduled_tick(), later()).await.unwrap();
    assert_eq!(sealed(&outcome), (2500, 25, false));
    assert!(handoff.payloads().is_empty());

    let run = bench.run(SCHEDULED_RUN).await.unwrap();
    assert_eq!(run.state, RunState::Processing);
    assert!(run.split_done);
    assert_eq!(run.total, Some(2500));
    assert_eq!((run.enqueued, run.pages), (2500, 25));
    assert!(run.split_done_at.is_some());
    assert_eq!(bench.split_calls(SCHEDULED_RUN), 25);

    assert_eq!(depth(&bench.sqs, &bench.queue_url).await, (2500, 0));
    let messages = bench.queued();
    let (seqs, reduces) = census(&messages);
    assert_every_seq_once(&seqs, 2500);
    assert!(reduces.is_empty());
    for message in &messages {
        if let QueueMessage::Process {
            run,
            seq,
            item,
            payload,
        } = message
        {
            assert_eq!(run.as_str(), SCHEDULED_RUN);
            assert_eq!(item, &demo_service::paging::item_id(*seq));
            assert_eq!(
                payload.as_ref(),
                Some(&demo_service::paging::item_payload(*seq))
            );
        }
    }

    // The same tick again finds the run past its split.
    let again = handle(&splitter, scheduled_tick(), later()).await.unwrap();
    assert!(
        matches!(&again, Outcome::NothingToDo { state, .. } if state == "PROCESSING"),
        "{again:?}"
    );
    assert!(bench.queued().is_empty());
}

#[tokio::test]
async fn a_split_handed_off_every_few_pages_resumes_at_its_checkpoint() {
    let bench = bench(1000, Chaos::default()).await;
    let tuning = Tuning {
        handoff: HandoffRule {
            max_pages_per_invocation: Some(4),
            ..HandoffRule::default()
        },
        ..quick()
    };
    let (splitter, handoff) = bench.splitter(bench.settings(&[]), tuning);
    let outcomes = follow(&splitter, &handoff, scheduled_tick(), later).await;
    // 10 pages, 4 per invocation.
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    for (i, outcome) in outcomes[..2].iter().enumerate() {
        let pages = 4 * (i as u64 + 1);
        assert_eq!(
            outcome,
            &Outcome::HandedOff {
                run: RunId::parse(SCHEDULED_RUN).unwrap(),
                enqueued: pages * 100,
                pages,
                failed_attempts: 0,
            }
        );
    }
    assert_eq!(sealed(&outcomes[2]), (1000, 10, false));
    assert_eq!(
        bench.split_calls(SCHEDULED_RUN),
        10,
        "no page is read twice"
    );
    let (seqs, _) = census(&bench.queued());
    assert_every_seq_once(&seqs, 1000);
    assert_eq!(bench.all_runs().await.len(), 1);
}

#[tokio::test]
async fn a_deadline_within_the_margin_hands_off_after_each_page() {
    let bench = bench(500, Chaos::default()).await;
    let tuning = Tuning {
        handoff: HandoffRule {
            min_margin: Duration::from_secs(600),
            ..HandoffRule::default()
        },
        ..quick()
    };
    let (splitter, handoff) = bench.splitter(bench.settings(&[]), tuning);
    let outcomes = follow(&splitter, &handoff, json!({"run": "manual-1"}), || {
        Deadline::after(Duration::from_secs(300))
    })
    .await;
    assert_eq!(outcomes.len(), 5, "{outcomes:?}");
    assert_eq!(sealed(&outcomes[4]), (500, 5, false));
    let (seqs, _) = census(&bench.queued());
    assert_every_seq_once(&seqs, 500);
}

#[tokio::test]
async fn a_crash_after_a_random_page_resumes_without_losing_a_seq() {
    let bench = bench(1000, Chaos::default()).await;
    // Crash while queueing page `k + 1` (0-based page k), after some of its batches.
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize;
    let k = 1 + seed % 8;
    let partial = 1 + (seed / 8) % 9;
    eprintln!("crashing on page index {k} after {partial} of its 10 batches");
    let (mut crashing, _) = bench.default_splitter();
    crashing.tuning.enqueue.attempts = 2;
    crashing.queue = bench.recorded(Arc::new(CrashingQueue::new(
        bench.sqs_queue(),
        k * 10 + partial,
    )));
    let error = handle(&crashing, scheduled_tick(), later())
        .await
        .unwrap_err();
    match &error {
        SplitterError::Enqueue {
            page,
            first_seq,
            next_seq,
            ..
        } => assert_eq!(
            (*page, *first_seq, *next_seq),
            (k as u64 + 1, k as u64 * 100, k as u64 * 100 + 100)
        ),
        other => panic!("{other:?}"),
    }
    let checkpoint = bench.run(SCHEDULED_RUN).await.unwrap();
    assert_eq!(checkpoint.state, RunState::Splitting);
    assert_eq!(
        (checkpoint.pages, checkpoint.enqueued),
        (k as u64, k as u64 * 100)
    );

    // Lambda retries the same event; the run resumes from its checkpoint.
    let (splitter, _) = bench.default_splitter();
    let outcome = handle(&splitter, scheduled_tick(), later()).await.unwrap();
    assert_eq!(sealed(&outcome), (1000, 10, false));
    assert_eq!(
        bench.split_calls(SCHEDULED_RUN),
        11,
        "page {k} was read twice"
    );
    let runs = bench.all_runs().await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].total, Some(1000));

    // The calls in flight when the crash came were cut short: what they sent may have
    // reached the queue unrecorded, all of it from the page that was read again.
    let (messages, on_queue) = bench.queued_with_unrecorded(100).await;
    let (seqs, _) = census(&messages);
    assert_eq!(seqs.len(), 1000, "every seq is queued");
    assert_eq!(seqs.keys().last(), Some(&999));
    let page = (k as u64 * 100)..(k as u64 * 100 + 100);
    for (seq, count) in &seqs {
        if !page.contains(seq) {
            assert_eq!(
                *count, 1,
                "seq {seq} outside the re-read page was queued {count} times"
            );
        }
        assert!(*count <= 2, "seq {seq} queued {count} times");
    }
    assert!(
        on_queue <= 1100,
        "at most the re-read page is duplicated: {on_queue}"
    );
}

#[tokio::test]
async fn a_checkpoint_of_the_last_page_resumes_straight_to_the_seal() {
    let bench = bench(50, Chaos::default()).await;
    // The last page was queued and checkpointed (no cursor: no more pages), then the
    // invocation died before the seal; its lease has run out since.
    let run = stopped_split(&bench, "crashed-before-seal", None, 50, 1).await;
    let (splitter, _) = bench.default_splitter();
    let outcome = handle(
        &splitter,
        json!({"run": "crashed-before-seal", "resume": true}),
        later(),
    )
    .await
    .unwrap();
    assert_eq!(sealed(&outcome), (50, 1, false));
    assert_eq!(bench.split_calls(run.as_str()), 0, "no page is read again");
    assert_eq!(bench.run(run.as_str()).await.unwrap().total, Some(50));
}

#[tokio::test]
async fn a_tick_delivered_three_times_at_once_starts_one_run() {
    let bench = bench_on(MotoServer::start(), 500, Chaos::default()).await;
    // The deliveries that find the run already started find its lease taken.
    let (splitter, handoff) = bench.splitter(bench.settings(&[]), quick());
    let (a, b, c) = tokio::join!(
        handle(&splitter, scheduled_tick(), later()),
        handle(&splitter, scheduled_tick(), later()),
        handle(&splitter, scheduled_tick(), later()),
    );
    let outcomes = [a.unwrap(), b.unwrap(), c.unwrap()];
    assert!(handoff.payloads().is_empty());
    let mut sealed_count = 0;
    for outcome in &outcomes {
        match outcome {
            Outcome::Sealed { total, .. } => {
                assert_eq!(*total, 500);
                sealed_count += 1;
            }
            Outcome::Stopped { .. } | Outcome::NothingToDo { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(sealed_count, 1, "one delivery splits: {outcomes:?}");
    let runs = bench.all_runs().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].run.as_str(), SCHEDULED_RUN);
    assert_eq!(runs[0].state, RunState::Processing);
    assert_eq!(runs[0].total, Some(500));
    let (seqs, _) = census(&bench.queued());
    assert_every_seq_once(&seqs, 500);
    assert_eq!(bench.split_calls(SCHEDULED_RUN), 5);
}

#[tokio::test]
async fn overlap_skip_starts_nothing_while_a_run_is_active_and_allow_starts_it() {
    let bench = bench(50, Chaos::default()).await;
    let (splitter, _) = bench.default_splitter();
    let first = handle(&splitter, json!({"run": "first"}), later())
        .await
        .unwrap();
    assert_eq!(sealed(&first), (50, 1, false));

    let second = handle(&splitter, json!({"run": "second"}), later())
        .await
        .unwrap();
    assert_eq!(
        second,
        Outcome::Skipped {
            run: RunId::parse("second").unwrap(),
            running: RunId::parse("first").unwrap(),
        }
    );
    assert!(bench.run("second").await.is_none(), "nothing written");
    assert_eq!(bench.split_calls("second"), 0);

    let (allowing, _) = bench.splitter(bench.settings(&[("OVERLAP", "allow")]), quick());
    let second = handle(&allowing, json!({"run": "second"}), later())
        .await
        .unwrap();
    assert_eq!(sealed(&second), (50, 1, false));
    assert_eq!(bench.all_runs().await.len(), 2);
}

/// Fixed pages, for items the demo service never sends.
struct FixedPages(Vec<SplitPage>);

impl PageSource for FixedPages {
    fn page<'a>(
        &'a self,
        _run: &'a RunId,
        _limit: u32,
        cursor: Option<&'a str>,
        _timeout: Duration,
    ) -> Boxed<'a, Result<SplitPage, SplitPageError>> {
        let index: usize = cursor.map_or(0, |c| c.parse().unwrap());
        let page = self.0[index].clone();
        Box::pin(async move { Ok(page) })
    }
}

fn item(id: &str, payload: Option<Value>) -> SplitItem {
    SplitItem {
        id: id.to_owned(),
        payload,
    }
}

#[tokio::test]
async fn items_that_break_the_limits_become_failed_children_and_keep_their_seq() {
    let bench = bench(0, Chaos::default()).await;
    let (mut splitter, _) = bench.default_splitter();
    splitter.pages = Arc::new(FixedPages(vec![
        SplitPage {
            items: vec![
                item("ACN-1", None),
                item("", None),
                item("ACN-3", Some(json!({"a": 1}))),
                item(&"x".repeat(600), None),
                item("bad\u{7}id", None),
            ],
            next: Some("1".into()),
        },
        SplitPage {
            items: vec![
                item("ACN-6", Some(Value::String("y".repeat(70_000)))),
                item("ACN-7", None),
            ],
            next: None,
        },
    ]));
    let outcome = handle(&splitter, json!({"run": "invalid-items"}), later())
        .await
        .unwrap();
    assert_eq!(sealed(&outcome), (7, 2, false));

    let run = bench.run("invalid-items").await.unwrap();
    // The run's counters move when a block is complete: its one block of 7 is not yet.
    assert_eq!((run.total, run.failed, run.done), (Some(7), 0, 0));
    assert_eq!(run.state, RunState::Processing);
    let children = bench.ledger.children(NAME, &run.run).await.unwrap();
    let failed: Vec<(u64, &str)> = children
        .iter()
        .map(|c| {
            assert_eq!(c.state, ChildState::Failed);
            assert_eq!(c.attempts, 0);
            (c.seq, c.reason.as_deref().unwrap())
        })
        .collect();
    assert_eq!(
        failed.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [1, 3, 4, 5]
    );
    assert!(failed[0].1.starts_with("item id is empty"), "{failed:?}");
    assert!(failed[1].1.contains("600 bytes long"), "{failed:?}");
    assert!(
        failed[2].1.contains("control character U+0007"),
        "{failed:?}"
    );
    assert!(failed[3].1.contains("payload is 70002 bytes"), "{failed:?}");

    let (seqs, reduces) = census(&bench.queued());
    assert_eq!(seqs.keys().copied().collect::<Vec<_>>(), [0, 2, 6]);
    assert!(reduces.is_empty());
}

#[tokio::test]
async fn a_split_of_only_invalid_items_is_complete_at_the_seal_and_queues_its_reduce() {
    let bench = bench(0, Chaos::default()).await;
    let (mut splitter, _) = bench.default_splitter();
    splitter.pages = Arc::new(FixedPages(vec![SplitPage {
        items: vec![item("", None), item("a\nb", None)],
        next: None,
    }]));
    let outcome = handle(&splitter, json!({"run": "all-invalid"}), later())
        .await
        .unwrap();
    assert_eq!(sealed(&outcome), (2, 1, true));
    let run = bench.run("all-invalid").await.unwrap();
    assert_eq!(run.state, RunState::Reducing);
    assert_eq!((run.total, run.failed), (Some(2), 2));
    let (seqs, reduces) = census(&bench.queued());
    assert!(seqs.is_empty());
    assert_eq!(reduces, [run.run]);
}

#[tokio::test]
async fn a_split_endpoint_that_keeps_failing_ends_the_run_split_failed() {
    let chaos = Chaos {
        split_failures: 1000,
        ..Chaos::default()
    };
    let bench = bench(300, chaos).await;
    let (splitter, handoff) = bench.default_splitter();
    let outcome = handle(&splitter, scheduled_tick(), later()).await.unwrap();
    let reason = match &outcome {
        Outcome::SplitFailed { reason, .. } => reason.clone(),
        other => panic!("{other:?}"),
    };
    assert!(reason.contains("failed 3 of 3 attempts"), "{reason}");
    assert!(reason.contains("HTTP 500"), "{reason}");
    assert!(handoff.payloads().is_empty());
    assert_eq!(bench.split_calls(SCHEDULED_RUN), 3);

    let run = bench.run(SCHEDULED_RUN).await.unwrap();
    assert_eq!(run.state, RunState::SplitFailed);
    assert_eq!(run.reason.as_deref(), Some(reason.as_str()));
    assert_eq!(depth(&bench.sqs, &bench.queue_url).await, (0, 0));

    // A retried tick finds the run ended.
    let again = handle(&splitter, scheduled_tick(), later()).await.unwrap();
    assert!(
        matches!(&again, Outcome::NothingToDo { state, .. } if state == "SPLIT_FAILED"),
        "{again:?}"
    );
    assert_eq!(bench.split_calls(SCHEDULED_RUN), 3);
}

#[tokio::test]
async fn a_page_that_fails_fewer_times_than_the_attempts_is_retried() {
    let chaos = Chaos {
        split_failures: 2,
        ..Chaos::default()
    };
    let bench = bench(300, chaos).await;
    let (splitter, _) = bench.default_splitter();
    let outcome = handle(&splitter, scheduled_tick(), later()).await.unwrap();
    assert_eq!(sealed(&outcome), (300, 3, false));
    assert_eq!(bench.split_calls(SCHEDULED_RUN), 5);
    let (seqs, _) = census(&bench.queued());
    assert_every_seq_once(&seqs, 300);
}

#[tokio::test]
async fn a_zero_item_split_seals_with_total_zero_and_queues_the_reduce() {
    let bench = bench(0, Chaos::default()).await;
    let (splitter, _) = bench.default_splitter();
    let outcome = handle(&splitter, scheduled_tick(), later()).await.unwrap();
    assert_eq!(sealed(&outcome), (0, 1, true));
    let run = bench.run(SCHEDULED_RUN).await.unwrap();
    assert_eq!(run.state, RunState::Reducing);
    assert_eq!(run.total, Some(0));
    assert!(run.split_done);
    let (seqs, reduces) = census(&bench.queued());
    assert!(seqs.is_empty());
    assert_eq!(reduces, [RunId::parse(SCHEDULED_RUN).unwrap()]);
}

#[tokio::test]
async fn the_sweep_claims_finished_runs_that_missed_their_reduce() {
    let bench = bench(20, Chaos::default()).await;
    let (splitter, _) = bench.splitter(bench.settings(&[("OVERLAP", "allow")]), quick());
    let outcome = handle(&splitter, json!({"run": "finished"}), later())
        .await
        .unwrap();
    assert_eq!(sealed(&outcome), (20, 1, false));
    let finished = RunId::parse("finished").unwrap();
    // Every child done, but the writer that saw it complete died before the claim.
    assert!(bench.count_succeeded(&finished, 20).await.complete);
    // Another run still processing, and one still splitting.
    let busy = handle(&splitter, json!({"run": "busy"}), later())
        .await
        .unwrap();
    assert_eq!(sealed(&busy), (20, 1, false));
    let splitting = RunId::parse("splitting").unwrap();
    bench
        .ledger
        .start_run(
            NAME,
            &splitting,
            Overlap::Allow,
            30,
            Layout::SINGLE,
            Utc::now(),
        )
        .await
        .unwrap();
    bench.queued();

    let swept = handle(&splitter, json!({"sweep": true}), later())
        .await
        .unwrap();
    assert_eq!(
        swept,
        Outcome::Swept {
            processing: 2,
            failed_from_dead_letters: 0,
            claimed: vec![finished.clone()],
            requeued: vec![],
            splitting: vec![splitting.clone()],
            resumed: vec![],
            announced: vec![],
        }
    );
    assert_eq!(
        bench.run("finished").await.unwrap().state,
        RunState::Reducing
    );
    assert_eq!(bench.run("busy").await.unwrap().state, RunState::Processing);
    let (seqs, reduces) = census(&bench.queued());
    assert!(seqs.is_empty());
    assert_eq!(reduces, [finished]);

    // Claimed once: the next sweep finds nothing to claim.
    let again = handle(&splitter, json!({"sweep": true}), later())
        .await
        .unwrap();
    assert_eq!(
        again,
        Outcome::Swept {
            processing: 1,
            failed_from_dead_letters: 0,
            claimed: vec![],
            requeued: vec![],
            splitting: vec![splitting],
            resumed: vec![],
            announced: vec![],
        }
    );
    assert!(bench.queued().is_empty());
}

#[tokio::test]
async fn a_hand_off_never_creates_a_run() {
    let bench = bench(10, Chaos::default()).await;
    let (splitter, _) = bench.default_splitter();
    let error = handle(
        &splitter,
        json!({"run": "unknown", "resume": true}),
        later(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, SplitterError::RunNotFound { .. }),
        "{error:?}"
    );
    assert_eq!(error.error_type(), "Splitter.RunNotFound");
    assert!(bench.run("unknown").await.is_none());
    assert_eq!(bench.split_calls("unknown"), 0);
}

/// Before the fix SQS refused the whole page (U+FFFF is outside its characters), the page
/// was retried and the run ended `SPLIT_FAILED` with nothing processed.
#[tokio::test]
async fn ids_sqs_cannot_carry_become_failed_children_and_the_split_goes_on() {
    let chaos = Chaos {
        uncarriable_seqs: SeqSelector::Seqs([3, 250].into()),
        ..Chaos::default()
    };
    let bench = bench(300, chaos).await;
    let (splitter, _) = bench.default_splitter();
    let outcome = handle(&splitter, scheduled_tick(), later()).await.unwrap();
    assert_eq!(sealed(&outcome).0, 300, "{outcome:?}");
    let run = bench.run(SCHEDULED_RUN).await.unwrap();
    assert_eq!(run.state, RunState::Processing);
    let children = bench.ledger.children(NAME, &run.run).await.unwrap();
    let failed: Vec<(u64, &str)> = children
        .iter()
        .filter(|c| c.state == ChildState::Failed)
        .map(|c| (c.seq, c.reason.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(failed.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [3, 250]);
    assert!(
        failed[0]
            .1
            .contains("U+FFFF, which an SQS message cannot carry"),
        "{failed:?}"
    );
    let (seqs, _) = census(&bench.queued());
    assert_eq!(seqs.len(), 298);
}

/// A page over `limit`, a cursor over 4 KiB and a page over what `limit` items can take
/// are malformed (contract 1.1): retried, then `SPLIT_FAILED` with a reason that names the
/// rule. Before the fix all were taken: a cursor past DynamoDB's item limit could never be
/// checkpointed, and a page was read whole whatever its size.
#[tokio::test]
async fn pages_over_their_limit_or_with_a_long_cursor_are_malformed() {
    for (chaos, page_size, expected) in [
        (
            Chaos {
                split_overfill: true,
                ..Chaos::default()
            },
            "100",
            "more than the `limit` of 100",
        ),
        (
            Chaos {
                cursor_bytes: 5000,
                ..Chaos::default()
            },
            "100",
            "the `next` cursor is 5000 bytes; a cursor must be at most 4096 bytes",
        ),
        // A page of one item can be at most about 140 KB; the kit stops reading there.
        (
            Chaos {
                cursor_bytes: 200_000,
                ..Chaos::default()
            },
            "1",
            "a page of `limit` items at the contract's item limits",
        ),
    ] {
        let bench = bench(300, chaos).await;
        let (splitter, _) =
            bench.splitter(bench.settings(&[("SPLIT_PAGE_SIZE", page_size)]), quick());
        let outcome = handle(&splitter, scheduled_tick(), later()).await.unwrap();
        let reason = match &outcome {
            Outcome::SplitFailed { reason, .. } => reason.clone(),
            other => panic!("{other:?}"),
        };
        assert!(reason.contains(expected), "{reason}");
        assert_eq!(depth(&bench.sqs, &bench.queue_url).await, (0, 0));
    }
}

/// The splitter of a run stopped for good: its invocation failed and Lambda gave up on
/// its retries, so no checkpoint extends the split's lease. Before the fix the run stayed
/// `SPLITTING` until someone resumed it by hand; now the sweep takes the run's lease and
/// hands the split to a fresh invocation, which finishes it, and a second delivery of the
/// hand-off finds the lease held and stops.
#[tokio::test]
async fn a_split_whose_splitter_stopped_is_resumed_by_the_sweep() {
    let bench = bench(300, Chaos::default()).await;
    // It queued the first page and checkpointed, then stopped; its lease has run out.
    let run = stopped_split(&bench, "stopped-split", Some("c1-100"), 100, 1).await;
    let (splitter, handoff) = bench.default_splitter();
    // The first page's messages were queued before the checkpoint.
    for seq in 0..100 {
        bench.send_process(&run, seq).await;
    }

    let swept = handle(&splitter, json!({"sweep": true}), later())
        .await
        .unwrap();
    match &swept {
        Outcome::Swept { resumed, .. } => assert_eq!(resumed, std::slice::from_ref(&run)),
        other => panic!("{other:?}"),
    }
    let payloads = handoff.payloads();
    assert_eq!(payloads.len(), 1, "{payloads:?}");
    let token = payloads[0]["lease"].as_str().unwrap().to_owned();
    assert_ne!(token, "stopped");

    // The hand-off splits from the checkpoint; a second delivery of it finds nothing.
    let outcome = handle(&splitter, payloads[0].clone(), later())
        .await
        .unwrap();
    assert_eq!(sealed(&outcome).0, 300, "{outcome:?}");
    assert_eq!(bench.split_calls(run.as_str()), 2, "pages 2 and 3 only");
    let again = handle(&splitter, payloads[0].clone(), later())
        .await
        .unwrap();
    assert!(matches!(again, Outcome::NothingToDo { .. }), "{again:?}");

    // And a sweep of a live split leaves it alone.
    let swept = handle(&splitter, json!({"sweep": true}), later())
        .await
        .unwrap();
    assert!(
        matches!(&swept, Outcome::Swept { resumed, .. } if resumed.is_empty()),
        "{swept:?}"
    );
}

/// A run whose splitter checkpointed `cursor`, `enqueued` and `pages` under the lease
/// `stopped`, then stopped: the lease has run out.
async fn stopped_split(
    bench: &Pipeline,
    run: &str,
    cursor: Option<&str>,
    enqueued: u64,
    pages: u64,
) -> RunId {
    let run = RunId::parse(run).unwrap();
    bench
        .ledger
        .start_run(NAME, &run, Overlap::Skip, 30, Layout::SINGLE, Utc::now())
        .await
        .unwrap();
    let now = Utc::now().timestamp();
    bench
        .ledger
        .take_split_lease(NAME, &run, "stopped", now + 60, Utc::now())
        .await
        .unwrap()
        .unwrap();
    bench
        .ledger
        .checkpoint(NAME, &run, "stopped", now - 1, cursor, enqueued, pages)
        .await
        .unwrap();
    run
}

/// A topic with a queue subscribed to it, to read what is published.
async fn alarm_topic(bench: &Pipeline) -> (String, String) {
    let sns = aws_sdk_sns::Client::new(&bench.config);
    let topic = sns
        .create_topic()
        .name("alarms")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let inbox = bench
        .sqs
        .create_queue()
        .queue_name("alarm-inbox")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let inbox_arn = bench
        .sqs
        .get_queue_attributes()
        .queue_url(&inbox)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .unwrap();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(inbox_arn)
        .send()
        .await
        .unwrap();
    (topic, inbox)
}

/// Every message published to the topic so far (the SNS envelope's `Message`).
async fn published(bench: &Pipeline, inbox: &str) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let got = bench
            .sqs
            .receive_message()
            .queue_url(inbox)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        if got.messages().is_empty() {
            return out;
        }
        for m in got.messages() {
            let envelope: Value = serde_json::from_str(m.body().unwrap_or_default()).unwrap();
            out.push(envelope["Message"].as_str().unwrap_or_default().to_string());
            bench
                .sqs
                .delete_message()
                .queue_url(inbox)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn the_sweep_announces_a_late_run_and_one_that_ended_badly_once_each() {
    let bench = bench(20, Chaos::default()).await;
    let (topic, inbox) = alarm_topic(&bench).await;
    let settings = bench.settings(&[
        ("OVERLAP", "allow"),
        ("ALARM_TOPIC_ARN", &topic),
        ("EXPECTED_DURATION_MINUTES", "10"),
    ]);
    let (splitter, _) = bench.splitter(settings, quick());
    // A run started 30 minutes ago, expected to take 10: past its due time.
    let late = RunId::parse("late").unwrap();
    bench
        .ledger
        .start_run(
            NAME,
            &late,
            Overlap::Allow,
            30,
            Layout::SINGLE,
            Utc::now() - chrono::Duration::minutes(30),
        )
        .await
        .unwrap();
    bench
        .ledger
        .seal(NAME, &late, 1000, Utc::now())
        .await
        .unwrap();
    // A run on time: started now.
    let on_time = RunId::parse("on-time").unwrap();
    bench
        .ledger
        .start_run(
            NAME,
            &on_time,
            Overlap::Allow,
            30,
            Layout::SINGLE,
            Utc::now(),
        )
        .await
        .unwrap();
    // A run cancelled: announced as ended.
    let cancelled = RunId::parse("cancelled").unwrap();
    bench
        .ledger
        .start_run(
            NAME,
            &cancelled,
            Overlap::Allow,
            30,
            Layout::SINGLE,
            Utc::now(),
        )
        .await
        .unwrap();
    bench
        .ledger
        .cancel(NAME, &cancelled, "vendor outage", Utc::now())
        .await
        .unwrap();

    let swept = handle(&splitter, json!({"sweep": true}), later())
        .await
        .unwrap();
    let Outcome::Swept { announced, .. } = swept else {
        panic!("not a sweep: {swept:?}");
    };
    assert_eq!(announced, [late.clone(), cancelled.clone()]);
    let mut messages = published(&bench, &inbox).await;
    messages.sort();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0]
            .starts_with("Run `cancelled` of `credit-scores` ended CANCELLED: vendor outage"),
        "{messages:?}"
    );
    assert!(
        messages[1]
            .starts_with("Run `late` of `credit-scores` is past its expected duration of 10 min"),
        "{messages:?}"
    );

    // Once each: the next sweep announces nothing.
    let again = handle(&splitter, json!({"sweep": true}), later())
        .await
        .unwrap();
    assert!(
        matches!(&again, Outcome::Swept { announced, .. } if announced.is_empty()),
        "{again:?}"
    );
    assert!(published(&bench, &inbox).await.is_empty());
}
