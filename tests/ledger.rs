//! The ledger against moto: each test starts its own moto server and creates the ledger
//! table as the `local` core template defines it. Tests of concurrent writers use a moto
//! that handles one request at a time, because moto's own conditional writes are not
//! atomic under concurrency where DynamoDB's are (see `kit_tests::moto`).

use chrono::{DateTime, TimeZone, Utc};
use kit_tests::ledger_table::create_ledger_table;
use kit_tests::moto::{sdk_config, MotoServer};
use microprocess_shared::aws::SdkConfig;
use microprocess_shared::ledger::{
    ChildOutcome, ChildResult, InvalidItem, Layout, Ledger, LedgerError, Overlap, RunRecord,
    StartRun,
};
use microprocess_shared::ledger_keys::{ChildState, RunState};
use microprocess_shared::run_id::RunId;

const MP: &str = "credit-scores";
const RETENTION_DAYS: u32 = 30;

struct Moto {
    _server: MotoServer,
    config: SdkConfig,
    table: String,
}

impl Moto {
    async fn start() -> Moto {
        Moto::on(MotoServer::start()).await
    }

    async fn on(server: MotoServer) -> Moto {
        let config = sdk_config(server.endpoint()).await;
        let table = create_ledger_table(&config).await;
        Moto {
            _server: server,
            config,
            table,
        }
    }

    /// A ledger with its own client and run cache, as another Lambda would have.
    fn ledger(&self) -> Ledger {
        Ledger::from_config(&self.config, &self.table)
    }
}

/// `shards` counter shards, and three child partitions: every test reads a spread run.
fn layout(shards: u32) -> Layout {
    Layout::new(shards, 3)
}

fn run_id(id: &str) -> RunId {
    RunId::parse(id).unwrap()
}

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 2, minute, 0).unwrap()
}

fn succeeded(seq: u64) -> ChildOutcome {
    ChildOutcome {
        seq,
        item: format!("ACN-{seq:09}"),
        state: ChildState::Succeeded,
        attempts: 1,
        result: Some(ChildResult::Inline(format!("{{\"score\":{seq}}}"))),
        reason: None,
    }
}

fn failed(seq: u64) -> ChildOutcome {
    ChildOutcome {
        seq,
        item: format!("ACN-{seq:09}"),
        state: ChildState::Failed,
        attempts: 5,
        result: None,
        reason: Some("HTTP 500: boom".into()),
    }
}

/// The split lease the tests' runs are split under, and a time it lasts until.
const LEASE: &str = "test-lease";
const FOREVER: i64 = 4_000_000_000;

async fn start(ledger: &Ledger, run: &RunId, shards: u32) -> RunRecord {
    match ledger
        .start_run(
            MP,
            run,
            Overlap::Allow,
            RETENTION_DAYS,
            layout(shards),
            at(0),
        )
        .await
        .unwrap()
    {
        StartRun::Started(_) => {}
        other => panic!("expected a new run, got {other:?}"),
    };
    ledger
        .take_split_lease(MP, run, LEASE, FOREVER, at(0))
        .await
        .unwrap()
        .expect("a new run's lease is free")
}

/// A run started and sealed with `total` children.
async fn sealed(ledger: &Ledger, run: &RunId, total: u64, shards: u32) -> RunRecord {
    start(ledger, run, shards).await;
    ledger
        .checkpoint(MP, run, LEASE, FOREVER, None, total, 1)
        .await
        .unwrap();
    ledger.seal(MP, run, total, at(1)).await.unwrap()
}

/// (succeeded, failed, done) of the run's counted children, each seq once. The run's own
/// counters hold those of its complete blocks: never more, and all of them once every
/// block is complete.
async fn counts(ledger: &Ledger, run: &RunId) -> (u64, u64, u64) {
    let children = ledger.children(MP, run).await.unwrap();
    let mut seqs: Vec<u64> = children.iter().map(|c| c.seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), children.len(), "a seq counted twice");
    let succeeded = children
        .iter()
        .filter(|c| c.state == ChildState::Succeeded)
        .count() as u64;
    let done = children.len() as u64;
    let record = ledger.run(MP, run).await.unwrap().unwrap();
    assert!(
        record.done <= done && record.succeeded <= succeeded,
        "{record:?}"
    );
    if record.total == Some(done) {
        assert_eq!(
            (record.succeeded, record.failed, record.done),
            (succeeded, done - succeeded, done),
            "every block complete: the run's counters hold them all"
        );
    }
    (succeeded, done - succeeded, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_of_the_same_run_finds_it() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("2026-11-01T02-00-00Z");
    let started = start(&ledger, &run, 1).await;
    assert_eq!(started.state, RunState::Splitting);
    assert_eq!(started.expires_at, at(0).timestamp() + 30 * 86_400);
    assert_eq!(ledger.run(MP, &run).await.unwrap(), Some(started.clone()));

    // A repeated schedule tick, with either overlap setting.
    for overlap in [Overlap::Skip, Overlap::Allow] {
        let again = ledger
            .start_run(MP, &run, overlap, RETENTION_DAYS, layout(1), at(3))
            .await
            .unwrap();
        assert_eq!(again, StartRun::Existing(started.clone()));
    }
    // Another ledger (another Lambda) sees the same.
    let other = moto
        .ledger()
        .start_run(MP, &run, Overlap::Skip, RETENTION_DAYS, layout(4), at(3))
        .await
        .unwrap();
    assert_eq!(other, StartRun::Existing(started));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_skip_reports_the_active_run_and_allow_starts_another() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let first = run_id("first");
    start(&ledger, &first, 1).await;

    let second = run_id("second");
    match ledger
        .start_run(MP, &second, Overlap::Skip, RETENTION_DAYS, layout(1), at(5))
        .await
        .unwrap()
    {
        StartRun::Skipped { running } => assert_eq!(running.run, first),
        other => panic!("expected a skip, got {other:?}"),
    }
    assert_eq!(
        ledger.run(MP, &second).await.unwrap(),
        None,
        "nothing written"
    );

    // Another microprocess is not held back.
    assert!(matches!(
        ledger
            .start_run(
                "abn-refresh",
                &second,
                Overlap::Skip,
                RETENTION_DAYS,
                layout(1),
                at(5)
            )
            .await
            .unwrap(),
        StartRun::Started(_)
    ));

    // Processing and reducing runs hold it back too; a finished one does not.
    ledger.seal(MP, &first, 0, at(6)).await.unwrap();
    assert!(matches!(
        ledger
            .start_run(MP, &second, Overlap::Skip, RETENTION_DAYS, layout(1), at(7))
            .await
            .unwrap(),
        StartRun::Skipped { .. }
    ));
    assert!(ledger.try_claim_reduce(MP, &first, at(7)).await.unwrap());
    assert!(matches!(
        ledger
            .start_run(MP, &second, Overlap::Skip, RETENTION_DAYS, layout(1), at(8))
            .await
            .unwrap(),
        StartRun::Skipped { .. }
    ));
    ledger.complete(MP, &first, at(8)).await.unwrap();
    assert!(matches!(
        ledger
            .start_run(MP, &second, Overlap::Skip, RETENTION_DAYS, layout(1), at(9))
            .await
            .unwrap(),
        StartRun::Started(_)
    ));

    // Allow starts next to an active run.
    let third = run_id("third");
    assert!(matches!(
        ledger
            .start_run(
                MP,
                &third,
                Overlap::Allow,
                RETENTION_DAYS,
                layout(1),
                at(10)
            )
            .await
            .unwrap(),
        StartRun::Started(_)
    ));
    let splitting: Vec<RunId> = ledger
        .runs_in_state(MP, RunState::Splitting)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run)
        .collect();
    assert_eq!(splitting, [second, third], "oldest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_only_move_forward() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("r1");
    start(&ledger, &run, 1).await;

    ledger
        .checkpoint(MP, &run, LEASE, FOREVER, Some("page-2"), 100, 1)
        .await
        .unwrap();
    let record = ledger.run(MP, &run).await.unwrap().unwrap();
    assert_eq!(
        (record.cursor.as_deref(), record.enqueued, record.pages),
        (Some("page-2"), 100, 1)
    );
    // The same checkpoint again (a page re-read after a crash) is fine.
    ledger
        .checkpoint(MP, &run, LEASE, FOREVER, Some("page-2"), 100, 1)
        .await
        .unwrap();
    ledger
        .checkpoint(MP, &run, LEASE, FOREVER, Some("page-3"), 200, 2)
        .await
        .unwrap();

    let error = ledger
        .checkpoint(MP, &run, LEASE, FOREVER, Some("page-2"), 100, 1)
        .await
        .unwrap_err();
    assert!(matches!(error, LedgerError::Refused { .. }), "{error}");
    assert!(error.to_string().contains("move back"), "{error}");
    let record = ledger.run(MP, &run).await.unwrap().unwrap();
    assert_eq!(
        (record.cursor.as_deref(), record.enqueued, record.pages),
        (Some("page-3"), 200, 2)
    );

    // The last page: no cursor left.
    ledger
        .checkpoint(MP, &run, LEASE, FOREVER, None, 250, 3)
        .await
        .unwrap();
    assert_eq!(ledger.run(MP, &run).await.unwrap().unwrap().cursor, None);

    // No checkpoint after the seal.
    ledger.seal(MP, &run, 250, at(2)).await.unwrap();
    let error = ledger
        .checkpoint(MP, &run, LEASE, FOREVER, None, 260, 4)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("PROCESSING, not SPLITTING"),
        "{error}"
    );

    let missing = ledger
        .checkpoint(MP, &run_id("nope"), LEASE, FOREVER, None, 1, 1)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, LedgerError::RunNotFound { .. }),
        "{missing}"
    );
}

/// Two invocations of one run never both split it: the lease has one holder, a live one
/// is refused to others, an expired one is taken over, and the old holder's checkpoints
/// are refused from then on. (Before the lease, a second start watched the checkpoint for
/// 10 s, and a slow first page let both split.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_split_lease_has_one_holder() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("r-lease");
    start(&ledger, &run, 1).await;
    let until = |minute: u32| at(minute).timestamp();
    // `start` took it until FOREVER for LEASE; hand it to `first` until minute 10.
    ledger
        .checkpoint(MP, &run, LEASE, until(10), Some("c1"), 10, 1)
        .await
        .unwrap();
    assert!(ledger
        .take_split_lease(MP, &run, "second", until(20), at(5))
        .await
        .unwrap()
        .is_none());
    // The holder renews its own lease.
    assert!(ledger
        .take_split_lease(MP, &run, LEASE, until(12), at(5))
        .await
        .unwrap()
        .is_some());
    // Past its end the lease is taken over, and the old holder can no longer checkpoint.
    let taken = ledger
        .take_split_lease(MP, &run, "second", until(20), at(13))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (taken.split_lease.as_deref(), taken.cursor.as_deref()),
        (Some("second"), Some("c1"))
    );
    let error = ledger
        .checkpoint(MP, &run, LEASE, until(20), Some("c2"), 20, 2)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("another invocation has taken the split's lease"),
        "{error}"
    );
    // Nor end the run: its pages may well succeed for the new holder.
    assert!(ledger
        .split_failed(MP, &run, Some(LEASE), "stale", at(13))
        .await
        .is_err());
    ledger
        .checkpoint(MP, &run, "second", until(20), None, 20, 2)
        .await
        .unwrap();
    ledger.seal(MP, &run, 20, at(14)).await.unwrap();
    // Past its split, nobody takes it.
    assert!(ledger
        .take_split_lease(MP, &run, "third", until(30), at(25))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_split_is_sealed_once() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("r1");
    start(&ledger, &run, 1).await;
    ledger
        .checkpoint(MP, &run, LEASE, FOREVER, None, 7, 1)
        .await
        .unwrap();

    let first = ledger.seal(MP, &run, 7, at(2)).await.unwrap();
    assert_eq!(first.state, RunState::Processing);
    assert!(first.split_done);
    assert_eq!(first.total, Some(7));
    assert_eq!(first.split_done_at, Some(at(2)));

    let again = ledger.seal(MP, &run, 9, at(4)).await.unwrap();
    assert_eq!(again, first, "a second seal changes nothing");

    // The index moved with the state.
    assert!(ledger
        .runs_in_state(MP, RunState::Splitting)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        ledger
            .runs_in_state(MP, RunState::Processing)
            .await
            .unwrap(),
        [first]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_failure_ends_the_run() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("r1");
    start(&ledger, &run, 1).await;
    ledger
        .split_failed(
            MP,
            &run,
            Some(LEASE),
            "page 3: HTTP 503 after 5 attempts",
            at(3),
        )
        .await
        .unwrap();
    let record = ledger.run(MP, &run).await.unwrap().unwrap();
    assert_eq!(record.state, RunState::SplitFailed);
    assert_eq!(
        record.reason.as_deref(),
        Some("page 3: HTTP 503 after 5 attempts")
    );
    assert_eq!(record.finished_at, Some(at(3)));
    // Repeating it is fine; sealing or checkpointing it is not.
    ledger
        .split_failed(MP, &run, None, "again", at(4))
        .await
        .unwrap();
    assert!(matches!(
        ledger.seal(MP, &run, 3, at(5)).await.unwrap_err(),
        LedgerError::Refused { .. }
    ));
    assert!(ledger
        .checkpoint(MP, &run, LEASE, FOREVER, None, 3, 1)
        .await
        .is_err());
    assert_eq!(
        ledger
            .runs_in_state(MP, RunState::SplitFailed)
            .await
            .unwrap()[0]
            .run,
        run
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_changes_nothing() {
    duplicates_change_nothing(Moto::start().await).await;
}

async fn duplicates_change_nothing(moto: Moto) {
    let ledger = moto.ledger();
    let run = run_id("r1");
    sealed(&ledger, &run, 5, 1).await;

    let batch = [succeeded(0), failed(1), succeeded(2)];
    let first = ledger
        .record_children(MP, &run, &batch, at(5))
        .await
        .unwrap();
    assert_eq!(first.newly_counted, [0, 1, 2]);
    assert!(first.duplicates.is_empty());
    assert!(!first.complete);
    assert_eq!(counts(&ledger, &run).await, (2, 1, 3));
    let children = ledger.children(MP, &run).await.unwrap();
    let run_before = ledger.run(MP, &run).await.unwrap();

    // The same batch again, later: nothing changes, not even the records' times.
    let again = ledger
        .record_children(MP, &run, &batch, at(9))
        .await
        .unwrap();
    assert!(again.newly_counted.is_empty());
    assert!(again.moved_to_succeeded.is_empty());
    assert_eq!(again.duplicates, [0, 1, 2]);
    assert_eq!(ledger.children(MP, &run).await.unwrap(), children);
    assert_eq!(ledger.run(MP, &run).await.unwrap(), run_before);

    // A batch mixing duplicates and new children counts the new ones only, and a seq given
    // twice in one call counts once.
    let mixed = [
        succeeded(2),
        succeeded(3),
        failed(1),
        succeeded(4),
        succeeded(4),
    ];
    let recorded = ledger
        .record_children(MP, &run, &mixed, at(10))
        .await
        .unwrap();
    assert_eq!(recorded.newly_counted, [3, 4]);
    assert_eq!(recorded.duplicates, [1, 2, 4]);
    assert!(recorded.complete);
    assert_eq!(counts(&ledger, &run).await, (4, 1, 5));

    let children = ledger.children(MP, &run).await.unwrap();
    let seqs: Vec<u64> = children.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    assert_eq!(children[0].finished_at, at(5));
    assert_eq!(
        children[0].result,
        Some(ChildResult::Inline("{\"score\":0}".into()))
    );
    assert_eq!(children[1].reason.as_deref(), Some("HTTP 500: boom"));
    assert_eq!(children[1].attempts, 5);
    assert_eq!(children[3].expires_at, at(10).timestamp() + 30 * 86_400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_after_success_changes_nothing() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("r1");
    sealed(&ledger, &run, 2, 1).await;
    ledger
        .record_children(MP, &run, &[succeeded(0)], at(5))
        .await
        .unwrap();
    let before = ledger.children(MP, &run).await.unwrap();

    // The message came back (visibility timeout) and failed this time, alone or in a batch.
    for batch in [
        vec![failed(0)],
        vec![failed(0), succeeded(0)],
        vec![succeeded(0)],
    ] {
        let recorded = ledger
            .record_children(MP, &run, &batch, at(7))
            .await
            .unwrap();
        assert!(recorded.newly_counted.is_empty(), "{recorded:?}");
        assert!(recorded.moved_to_succeeded.is_empty(), "{recorded:?}");
        assert_eq!(counts(&ledger, &run).await, (1, 0, 1));
        assert_eq!(ledger.children(MP, &run).await.unwrap(), before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_child_that_succeeds_later_moves_between_counts() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("r1");
    sealed(&ledger, &run, 3, 1).await;
    let recorded = ledger
        .record_children(MP, &run, &[failed(0), failed(1), succeeded(2)], at(5))
        .await
        .unwrap();
    assert!(recorded.complete, "failed children count as done");
    assert_eq!(counts(&ledger, &run).await, (1, 2, 3));

    // Redriven from the dead-letter queue: child 1 succeeds, in a batch with a new
    // duplicate of child 2.
    let mut redriven = succeeded(1);
    redriven.attempts = 1;
    let recorded = ledger
        .record_children(MP, &run, &[redriven, succeeded(2)], at(30))
        .await
        .unwrap();
    assert_eq!(recorded.moved_to_succeeded, [1]);
    assert_eq!(recorded.duplicates, [2]);
    assert!(recorded.newly_counted.is_empty());
    assert_eq!(counts(&ledger, &run).await, (2, 1, 3));
    let child = &ledger.children(MP, &run).await.unwrap()[1];
    assert_eq!(child.state, ChildState::Succeeded);
    assert_eq!(child.reason, None);
    assert_eq!(child.finished_at, at(30));
    assert_eq!(
        child.result,
        Some(ChildResult::Inline("{\"score\":1}".into()))
    );

    // It moves once.
    let again = ledger
        .record_children(MP, &run, &[succeeded(1), failed(1)], at(31))
        .await
        .unwrap();
    assert_eq!(again.duplicates, [1, 1]);
    assert_eq!(counts(&ledger, &run).await, (2, 1, 3));
}

/// Two copies of one reduce message race: one copy's call fails for good and records
/// `REDUCE_FAILED`, then the other copy's call is answered 2xx. Before the fix the 2xx
/// could not complete the run (`complete` accepted only `REDUCING`), so a service that
/// had taken the reduce on saw its run end `REDUCE_FAILED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reduce_answered_2xx_completes_the_run_after_a_copy_failed() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("r-race");
    sealed(&ledger, &run, 1, 1).await;
    ledger
        .record_children(MP, &run, &[succeeded(0)], at(5))
        .await
        .unwrap();
    assert!(ledger.try_claim_reduce(MP, &run, at(6)).await.unwrap());
    ledger
        .reduce_failed(MP, &run, "reduce: HTTP 503 (attempt 3 of 3)", at(7))
        .await
        .unwrap();
    ledger.complete(MP, &run, at(8)).await.unwrap();
    let record = ledger.run(MP, &run).await.unwrap().unwrap();
    assert_eq!(record.state, RunState::Completed);
    assert_eq!(record.finished_at, Some(at(8)));
    let reason = record.reason.unwrap();
    assert!(reason.contains("answered 2xx"), "{reason}");
    // And the late failure of a copy cannot undo it.
    assert!(ledger.reduce_failed(MP, &run, "late", at(9)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_claimed_and_completed_once() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("r1");
    sealed(&ledger, &run, 3, 1).await;
    assert!(
        !ledger.try_claim_reduce(MP, &run, at(2)).await.unwrap(),
        "nothing done yet"
    );
    let recorded = ledger
        .record_children(MP, &run, &[succeeded(0), succeeded(1), failed(2)], at(5))
        .await
        .unwrap();
    assert!(recorded.complete);
    assert!(ledger.try_claim_reduce(MP, &run, at(6)).await.unwrap());
    assert!(!ledger.try_claim_reduce(MP, &run, at(6)).await.unwrap());
    assert!(!moto
        .ledger()
        .try_claim_reduce(MP, &run, at(6))
        .await
        .unwrap());
    assert_eq!(
        ledger.runs_in_state(MP, RunState::Reducing).await.unwrap()[0].run,
        run
    );

    // A redriven child succeeding during the reduce still moves the counts.
    let recorded = ledger
        .record_children(MP, &run, &[succeeded(2)], at(7))
        .await
        .unwrap();
    assert_eq!(recorded.moved_to_succeeded, [2]);

    ledger.complete(MP, &run, at(8)).await.unwrap();
    ledger.complete(MP, &run, at(9)).await.unwrap();
    let record = ledger.run(MP, &run).await.unwrap().unwrap();
    assert_eq!(record.state, RunState::Completed);
    assert_eq!(record.finished_at, Some(at(8)));
    assert_eq!((record.succeeded, record.failed, record.done), (3, 0, 3));
    assert!(matches!(
        ledger
            .reduce_failed(MP, &run, "late", at(10))
            .await
            .unwrap_err(),
        LedgerError::Refused { .. }
    ));
    assert!(ledger
        .runs_in_state(MP, RunState::Reducing)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        ledger.runs_in_state(MP, RunState::Completed).await.unwrap()[0].run,
        run
    );

    // The other end of a reduce.
    let other = run_id("r2");
    sealed(&ledger, &other, 0, 1).await;
    assert!(ledger.try_claim_reduce(MP, &other, at(11)).await.unwrap());
    ledger
        .reduce_failed(MP, &other, "HTTP 500 after 5 attempts", at(12))
        .await
        .unwrap();
    ledger
        .reduce_failed(MP, &other, "again", at(13))
        .await
        .unwrap();
    let record = ledger.run(MP, &other).await.unwrap().unwrap();
    assert_eq!(record.state, RunState::ReduceFailed);
    assert_eq!(record.reason.as_deref(), Some("HTTP 500 after 5 attempts"));
    // A 2xx for the reduce still completes it (see
    // `a_reduce_answered_2xx_completes_the_run_after_a_copy_failed`).
    ledger.complete(MP, &other, at(14)).await.unwrap();
    assert_eq!(
        ledger.run(MP, &other).await.unwrap().unwrap().state,
        RunState::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_done_before_the_seal_complete_at_the_seal() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("r1");
    start(&ledger, &run, 1).await;
    ledger
        .checkpoint(MP, &run, LEASE, FOREVER, None, 2, 1)
        .await
        .unwrap();
    let recorded = ledger
        .record_children(MP, &run, &[succeeded(0), succeeded(1)], at(2))
        .await
        .unwrap();
    assert!(!recorded.complete, "not sealed yet");
    assert!(!ledger.try_claim_reduce(MP, &run, at(2)).await.unwrap());
    let record = ledger.seal(MP, &run, 2, at(3)).await.unwrap();
    assert!(record.all_children_done());
    // The splitter claims after sealing.
    assert!(ledger.try_claim_reduce(MP, &run, at(3)).await.unwrap());
}

/// Records one child with its own ledger; claims the reduce when it saw the run complete.
async fn finish_child(ledger: &Ledger, run: &RunId, outcome: ChildOutcome) -> bool {
    let recorded = ledger
        .record_children(MP, run, &[outcome], at(20))
        .await
        .unwrap();
    recorded.complete && ledger.try_claim_reduce(MP, run, at(21)).await.unwrap()
}

async fn race_for_the_claim(moto: &Moto, shards: u32, rounds: u32) {
    for round in 0..rounds {
        let run = run_id(&format!("round-{round}"));
        let total = 6;
        let setup = moto.ledger();
        sealed(&setup, &run, total, shards).await;
        let early: Vec<ChildOutcome> = (0..total - 2).map(succeeded).collect();
        setup
            .record_children(MP, &run, &early, at(10))
            .await
            .unwrap();

        let (a, b) = (moto.ledger(), moto.ledger());
        let (claimed_a, claimed_b) = tokio::join!(
            finish_child(&a, &run, succeeded(total - 2)),
            finish_child(&b, &run, failed(total - 1)),
        );
        assert!(
            claimed_a ^ claimed_b,
            "round {round} (shards {shards}): claims {claimed_a} and {claimed_b}"
        );
        let record = setup.run(MP, &run).await.unwrap().unwrap();
        assert_eq!(record.state, RunState::Reducing);
        assert_eq!((record.succeeded, record.failed, record.done), (5, 1, 6));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_finishing_the_last_children_claim_the_reduce_once() {
    let moto = Moto::start().await;
    race_for_the_claim(&moto, 1, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_counters_give_the_same_totals_and_one_claim() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("sharded");
    let total = 250;
    sealed(&ledger, &run, total, 4).await;

    // Most children in one call (several transactions), some failing.
    let first: Vec<ChildOutcome> = (0..200)
        .map(|seq| {
            if seq % 10 == 3 {
                failed(seq)
            } else {
                succeeded(seq)
            }
        })
        .collect();
    let recorded = ledger
        .record_children(MP, &run, &first, at(5))
        .await
        .unwrap();
    assert_eq!(recorded.newly_counted.len(), 200);
    assert_eq!(counts(&ledger, &run).await, (180, 20, 200));

    // Duplicates, moves and the rest, from another ledger.
    let other = moto.ledger();
    let mut rest: Vec<ChildOutcome> = (190..total).map(succeeded).collect();
    rest.push(succeeded(3));
    let recorded = other.record_children(MP, &run, &rest, at(6)).await.unwrap();
    assert_eq!(recorded.newly_counted, (200..total).collect::<Vec<_>>());
    assert_eq!(recorded.moved_to_succeeded, [3, 193]);
    assert_eq!(recorded.duplicates.len(), 9);
    assert!(recorded.complete);
    assert_eq!(counts(&ledger, &run).await, (232, 18, 250));
    let record = ledger.run(MP, &run).await.unwrap().unwrap();
    assert_eq!(record.counter_shards, 4);
    assert!(record.all_children_done());

    // The counts live on the shards, not on the run record: seqs 0 to 249 fall in blocks
    // of 100 on shards 0, 1 and 2.
    let items = moto
        .ledger()
        .client()
        .query()
        .table_name(&moto.table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :shard)")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(record.partition_key()),
        )
        .expression_attribute_values(
            ":shard",
            aws_sdk_dynamodb::types::AttributeValue::S("SHARD#".into()),
        )
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 3);

    assert!(ledger.try_claim_reduce(MP, &run, at(7)).await.unwrap());
    assert!(!other.try_claim_reduce(MP, &run, at(7)).await.unwrap());

    race_for_the_claim(&moto, 4, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_finds_a_finished_but_unclaimed_run() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    for (name, shards) in [("plain", 1), ("sharded", 3)] {
        let run = run_id(name);
        sealed(&ledger, &run, 4, shards).await;
        let outcomes: Vec<ChildOutcome> = (0..4).map(succeeded).collect();
        let recorded = ledger
            .record_children(MP, &run, &outcomes, at(5))
            .await
            .unwrap();
        assert!(recorded.complete);
        // ... and the writer crashed before claiming.
    }
    let unfinished = run_id("unfinished");
    sealed(&ledger, &unfinished, 4, 1).await;

    let sweep = moto.ledger();
    let processing = sweep.runs_in_state(MP, RunState::Processing).await.unwrap();
    let finished: Vec<&RunRecord> = processing
        .iter()
        .filter(|r| r.all_children_done())
        .collect();
    let names: Vec<&str> = finished.iter().map(|r| r.run.as_str()).collect();
    assert_eq!(names, ["plain", "sharded"]);
    for record in finished {
        assert_eq!(record.done, 4, "shards summed");
        assert!(sweep
            .try_claim_reduce(MP, &record.run, at(6))
            .await
            .unwrap());
    }
    assert!(!sweep
        .try_claim_reduce(MP, &unfinished, at(6))
        .await
        .unwrap());
    assert_eq!(
        sweep.runs_in_state(MP, RunState::Processing).await.unwrap()[0].run,
        unfinished
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_split_items_become_failed_children() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("r1");
    start(&ledger, &run, 1).await;
    let long_id = "x".repeat(5000);
    let recorded = ledger
        .record_invalid_items(
            MP,
            &run,
            &[
                InvalidItem {
                    seq: 4,
                    item: long_id,
                    reason: "id is 5000 bytes; at most 512".into(),
                },
                InvalidItem {
                    seq: 9,
                    item: "bad\u{7}id".into(),
                    reason: "id contains a control character".into(),
                },
            ],
            at(1),
        )
        .await
        .unwrap();
    assert_eq!(recorded.newly_counted, [4, 9]);
    assert_eq!(counts(&ledger, &run).await, (0, 2, 2));
    let children = ledger.children(MP, &run).await.unwrap();
    assert_eq!(children[0].state, ChildState::Failed);
    assert_eq!(children[0].attempts, 0);
    assert_eq!(children[0].item.len(), 2048, "stored cut");
    assert_eq!(
        children[1].reason.as_deref(),
        Some("id contains a control character")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_of_an_unknown_run_are_refused() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("ghost");
    let error = ledger
        .record_children(MP, &run, &[succeeded(0)], at(1))
        .await
        .unwrap_err();
    assert!(matches!(error, LedgerError::RunNotFound { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "record children of run `credit-scores/ghost`: the run does not exist in the ledger \
         (never started, or expired)"
    );
    assert!(ledger.children(MP, &run).await.unwrap().is_empty());
    let pending = ChildOutcome {
        state: ChildState::Pending,
        ..succeeded(0)
    };
    start(&ledger, &run, 1).await;
    assert!(matches!(
        ledger
            .record_children(MP, &run, &[pending], at(1))
            .await
            .unwrap_err(),
        LedgerError::InvalidInput { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_units_of_a_batch_of_ten_new_children() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("units");
    sealed(&ledger, &run, 10, 1).await;
    let (reported, estimated) = (
        ledger.consumed_write_units(),
        ledger.estimated_write_units(),
    );
    let outcomes: Vec<ChildOutcome> = (0..10).map(succeeded).collect();
    ledger
        .record_children(MP, &run, &outcomes, at(5))
        .await
        .unwrap();
    let reported = ledger.consumed_write_units() - reported;
    let estimated = ledger.estimated_write_units() - estimated;
    eprintln!(
        "batch of 10 new children: {reported} write units reported by the endpoint, \
         {estimated} by DynamoDB's pricing rules ({} per child)",
        estimated as f64 / 10.0
    );
    // One details item (10 children, under 1 KB) and one count update of the block: 1 unit
    // each; the block is complete, so its report: a transaction of two items, 2 units each.
    assert_eq!(estimated, 6);
    assert!(reported >= 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_call_is_split_into_transactions_of_at_most_100_items() {
    let moto = Moto::start().await;
    let ledger = moto.ledger();
    let run = run_id("large");
    sealed(&ledger, &run, 250, 1).await;
    let before = ledger.estimated_write_units();
    let outcomes: Vec<ChildOutcome> = (0..250).map(succeeded).collect();
    let recorded = ledger
        .record_children(MP, &run, &outcomes, at(5))
        .await
        .unwrap();
    assert_eq!(recorded.newly_counted.len(), 250);
    assert!(recorded.complete);
    // Per block: a details item (100 children of about 70 bytes), two count updates (at
    // most 50 children each) and the report; a fifth of a unit per child, or less.
    let units = ledger.estimated_write_units() - before;
    eprintln!("250 children in one call: {units} write units");
    assert!(units <= 50, "{units}");
    let again = ledger
        .record_children(MP, &run, &outcomes, at(6))
        .await
        .unwrap();
    assert_eq!(again.duplicates.len(), 250);
    assert_eq!(counts(&ledger, &run).await, (250, 0, 250));
    assert_eq!(ledger.children(MP, &run).await.unwrap().len(), 250);
}

/// What the ledger relies on, checked on the emulator itself: a duplicate guarded write
/// cancels the transaction with `ConditionalCheckFailed` and, with
/// `ReturnValuesOnConditionCheckFailure = ALL_OLD`, the record that is there (as in AWS);
/// moto reports no consumed capacity for transactions (AWS does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_reports_what_the_ledger_relies_on() {
    use aws_sdk_dynamodb::types::{
        AttributeValue, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
        TransactWriteItem,
    };
    let moto = Moto::start().await;
    let client = moto.ledger().client().clone();
    let put = |state: &str| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&moto.table)
                    .item("pk", AttributeValue::S("RUN#m#r".into()))
                    .item("sk", AttributeValue::S("CHILD#000000000000".into()))
                    .item("state", AttributeValue::S(state.into()))
                    .condition_expression("attribute_not_exists(pk)")
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let first = client
        .transact_write_items()
        .transact_items(put("FAILED"))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap();
    assert!(
        first.consumed_capacity().is_empty(),
        "moto now reports transaction capacity: {:?}",
        first.consumed_capacity()
    );
    let error = client
        .transact_write_items()
        .transact_items(put("SUCCEEDED"))
        .send()
        .await
        .unwrap_err();
    match aws_sdk_dynamodb::Error::from(error) {
        aws_sdk_dynamodb::Error::TransactionCanceledException(cancelled) => {
            let reason = &cancelled.cancellation_reasons()[0];
            assert_eq!(reason.code(), Some("ConditionalCheckFailed"));
            assert_eq!(
                reason.item().and_then(|i| i.get("state")),
                Some(&AttributeValue::S("FAILED".into()))
            );
        }
        other => panic!("expected a cancelled transaction, got {other:?}"),
    }
}
