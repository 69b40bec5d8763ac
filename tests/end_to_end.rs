//! The whole kit as a user drives it, on the kit's emulator: `generate` and `deploy` the
//! `local` environment, `local run` the shipped Lambda zips against the demo service,
//! `start --wait`, `status`, `runs show`, `results`, `redrive`, and `teardown` leaving
//! nothing, with IAM enforced and nothing denied. Needs `make build` (the zips for this machine) and `make setup` (moto).

use demo_service::{Chaos, Config, SeqSelector};
use kit_tests::kit_project::{KitProject, Zips};
use kit_tests::moto::MotoServer;

const SECRET: &str = "end-to-end-test-secret";
const ITEMS: u64 = 120;
const FAILING_SEQ: u64 = 7;

/// Every function ran as its own role, held to the policies of the deployed templates, and
/// the CLI as the emulator's administrator: nothing was denied. Then the runner stops and
/// `teardown` leaves nothing.
fn nothing_denied_then_teardown(
    project: &KitProject,
    moto: &MotoServer,
    runner: kit_tests::kit_project::Background,
) {
    let denied = moto.stats()["denied"].clone();
    assert_eq!(denied, serde_json::json!([]), "denied:\n{}", runner.log());
    drop(runner);
    let (code, out, err) = cli(
        project,
        moto.endpoint(),
        &["teardown", "--env", "local", "--yes"],
    );
    assert_eq!(code, 0, "teardown:\n{out}\n{err}");
}

/// `runs show RUN` until its output contains `text` (within `limit`); that output.
async fn runs_show_until(
    project: &KitProject,
    endpoint: &str,
    run: &str,
    text: &str,
    limit: std::time::Duration,
) -> String {
    let started = std::time::Instant::now();
    loop {
        let (_, out, _) = cli(project, endpoint, &["runs", "show", run, "--env", "local"]);
        if out.contains(text) {
            return out;
        }
        assert!(
            started.elapsed() < limit,
            "`{text}` did not come within {limit:?}:\n{out}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// Runs the CLI to its end without holding up the demo service, which runs on this test's
/// runtime (a blocked worker would keep the tasks queued on it waiting).
fn cli(project: &KitProject, endpoint: &str, args: &[&str]) -> (i32, String, String) {
    tokio::task::block_in_place(|| project.cli(endpoint, args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_fails_one_child_and_its_reduce_then_redrive_completes_it() {
    let project = KitProject::new(Zips::Built);
    // Two attempts: the failing reduce gives up after one retry, so the test is quick.
    project.append(
        "local.toml",
        "\n[microprocesses.credit-scores.process]\nmax_attempts = 2\n",
    );
    project.generate();
    let moto = MotoServer::start();
    let endpoint = moto.endpoint().to_string();
    project.deploy(&moto);

    // The service is mounted under a path prefix, as behind a gateway that routes by
    // prefix: every call is signed over the path as sent, prefix included.
    let service = demo_service::DemoService::start(
        Config::new(SECRET)
            .with_items(ITEMS)
            .with_path_prefix("/svc")
            .with_chaos(Chaos {
                fail_seqs_4xx: SeqSelector::Seqs([FAILING_SEQ].into()),
                reduce_failures: 2,
                ..Chaos::default()
            }),
    )
    .await
    .unwrap();
    assert!(service.queue_url().ends_with("/svc"));
    let runner = tokio::task::block_in_place(|| {
        project.run_locally(&endpoint, &service.queue_url(), SECRET)
    });

    // The run: one child fails for good (4xx), then the reduce fails twice: REDUCE_FAILED.
    let (code, out, err) = cli(
        &project,
        &endpoint,
        &[
            "start",
            "credit-scores",
            "--env",
            "local",
            "--run",
            "e2e-1",
            "--wait",
            "--timeout",
            "240",
        ],
    );
    assert_eq!(
        code,
        9,
        "start --wait:\n{out}\n{err}\nrunner:\n{}",
        runner.log()
    );
    assert!(
        out.contains("started run `e2e-1` of `credit-scores` in `local`"),
        "{out}"
    );
    assert!(
        out.contains("run `e2e-1` of `credit-scores`: REDUCE_FAILED in "),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{ITEMS} children, {} succeeded, 1 failed",
            ITEMS - 1
        )),
        "{out}"
    );
    assert!(
        err.contains("microprocess redrive e2e-1 --env local"),
        "{err}"
    );

    let (code, out, err) = cli(&project, &endpoint, &["status", "--env", "local"]);
    assert_eq!(code, 0, "status:\n{out}\n{err}");
    let row = out
        .lines()
        .find(|l| l.contains("e2e-1"))
        .unwrap_or_else(|| panic!("no row for the run:\n{out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..6],
        &[
            "credit-scores",
            "e2e-1",
            "REDUCE_FAILED",
            &ITEMS.to_string(),
            &(ITEMS - 1).to_string(),
            "1"
        ],
        "{out}"
    );
    // The failed child and the failed reduce are both dead-lettered.
    assert!(
        out.contains("dead letters: abn-refresh 0 · annual-report 0 · credit-scores 2"),
        "{out}"
    );

    let (code, out, err) = cli(
        &project,
        &endpoint,
        &["runs", "show", "e2e-1", "--env", "local"],
    );
    assert_eq!(code, 0, "runs show:\n{out}\n{err}");
    assert!(out.contains("state         REDUCE_FAILED"), "{out}");
    assert!(out.contains("reason        reduce: "), "{out}");
    assert!(
        out.contains(&format!("seq {FAILING_SEQ:>6}  ACN-{:09}", FAILING_SEQ + 1)),
        "{out}"
    );

    // The same run as JSON (docs/json-output.md): the documented fields, nothing else.
    let (code, out, err) = cli(
        &project,
        &endpoint,
        &[
            "runs", "show", "e2e-1", "--env", "local", "--output", "json",
        ],
    );
    assert_eq!(code, 0, "runs show --output json:\n{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keys =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(
        keys(&report),
        [
            "command",
            "environment",
            "run",
            "dead_letters",
            "failed_children"
        ]
    );
    assert_eq!(report["command"], "runs show");
    let run = &report["run"];
    assert_eq!(
        keys(run),
        [
            "microprocess",
            "run",
            "state",
            "reason",
            "started_at",
            "split_done_at",
            "finished_at",
            "pages",
            "split_done",
            "total",
            "enqueued",
            "succeeded",
            "failed",
            "in_flight",
            "in_progress",
            "rate_per_second",
            "eta_seconds"
        ]
    );
    assert_eq!(run["state"], "REDUCE_FAILED");
    assert_eq!(run["total"], ITEMS);
    assert_eq!(run["failed"], 1);
    assert_eq!(run["in_flight"], 0);
    assert_eq!(report["failed_children"][0]["seq"], FAILING_SEQ);
    assert_eq!(
        report["failed_children"][0]["item"],
        format!("ACN-{:09}", FAILING_SEQ + 1)
    );

    let (code, out, err) = cli(
        &project,
        &endpoint,
        &["results", "e2e-1", "--env", "local", "--failed"],
    );
    assert_eq!(code, 0, "results --failed:\n{out}\n{err}");
    let failed: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(failed.len(), 1, "{out}");
    assert_eq!(failed[0]["seq"], FAILING_SEQ);
    assert_eq!(failed[0]["state"], "FAILED");
    assert!(
        failed[0]["reason"].as_str().unwrap().contains("422"),
        "{out}"
    );

    // Two letters redrive must not send again: one of a child that succeeded (as when a
    // duplicate of its message succeeded after this copy was dead-lettered) and a second
    // letter of the failed child.
    let sqs = aws_sdk_sqs::Client::new(&kit_tests::moto::sdk_config(&endpoint).await);
    let queues = sqs.list_queues().send().await.unwrap();
    let dlq = queues
        .queue_urls()
        .iter()
        .find(|u| u.ends_with("-credit-scores-dlq"))
        .unwrap_or_else(|| panic!("no dead-letter queue of credit-scores: {queues:?}"));
    let letter = |seq: u64| {
        microprocess_shared::queue_message::QueueMessage::Process {
            run: microprocess_shared::run_id::RunId::parse("e2e-1").unwrap(),
            seq,
            item: demo_service::paging::item_id(seq),
            payload: None,
        }
        .to_body()
    };
    for seq in [0, FAILING_SEQ] {
        sqs.send_message()
            .queue_url(dlq)
            .message_body(letter(seq))
            .send()
            .await
            .unwrap();
    }

    // Fix the service; redrive sends the child back, waits for it, retries the reduce.
    service.service.set_fixed(true);
    let (code, out, err) = cli(
        &project,
        &endpoint,
        &["redrive", "e2e-1", "--env", "local", "--wait"],
    );
    assert_eq!(code, 0, "redrive:\n{out}\n{err}\nrunner:\n{}", runner.log());
    assert!(
        out.contains(
            "sent 1 dead-lettered child(ren) of run `e2e-1` back to the queue of `credit-scores`"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "deleted 1 letter(s) of children that succeeded since (a duplicate of their message did) and 1 second letter(s) of a resent child, without sending them"
        ),
        "{out}"
    );
    assert!(out.contains("reduce of run `e2e-1` queued again"), "{out}");
    assert!(
        out.contains("COMPLETED in")
            && out.contains(&format!("{ITEMS} children, {ITEMS} succeeded, 0 failed")),
        "{out}"
    );

    let (code, out, err) = cli(&project, &endpoint, &["results", "e2e-1", "--env", "local"]);
    assert_eq!(code, 0, "results:\n{out}\n{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, ITEMS);
    assert!(lines.iter().all(|l| l["state"] == "SUCCEEDED"), "{out}");
    assert!(lines.iter().all(|l| l["result"].is_object()), "{out}");
    assert_eq!(
        err.trim(),
        format!("{ITEMS} succeeded, 0 failed"),
        "results' stderr"
    );
    // Two reduce calls failed, the retried one wrote the report once.
    let stats = service.stats();
    let reduce = &stats.run("credit-scores", "e2e-1").unwrap().reduce;
    assert_eq!(
        reduce.statuses,
        vec![Some(503), Some(503), Some(200)],
        "{reduce:?}"
    );
    assert!(reduce.completed);
    // Neither letter that redrive deleted reached the service: one call for the child
    // that succeeded, and the failed child's 4xx and its one redriven call.
    let run_stats = stats.run("credit-scores", "e2e-1").unwrap();
    assert_eq!(run_stats.child(0).unwrap().calls, 1, "{run_stats:?}");
    assert_eq!(
        run_stats.child(FAILING_SEQ).unwrap().calls,
        2,
        "{run_stats:?}"
    );

    // A completed run cannot be cancelled.
    let (code, out, err) = cli(&project, &endpoint, &["cancel", "e2e-1", "--env", "local"]);
    assert_eq!(code, 4, "cancel:\n{out}\n{err}");
    assert!(
        err.contains("run `e2e-1` of `credit-scores` has ended COMPLETED; only a SPLITTING, PROCESSING or REDUCING run can be cancelled"),
        "{err}"
    );

    nothing_denied_then_teardown(&project, &moto, runner);
    let (code, out, err) = cli(&project, &endpoint, &["status", "--env", "local"]);
    assert_eq!(code, 8, "status after teardown:\n{out}\n{err}");
    assert!(err.contains("is not deployed"), "{err}");
}

/// Callback completion through the whole local stack: the forwarder's calls carry the URL
/// the runner serves for the callback function (the shipped `callback` zip behind its
/// function URL), the demo service answers 202, heartbeats and reports, and the run
/// completes with the reported results, with IAM enforced and nothing denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_task_completes_by_its_report_through_the_local_runner() {
    let project = KitProject::new(Zips::Built);
    project.generate();
    let moto = MotoServer::start();
    let endpoint = moto.endpoint().to_string();
    project.deploy(&moto);
    let mut config = Config::new(SECRET).with_long_task(
        std::time::Duration::from_millis(500),
        std::time::Duration::from_millis(200),
    );
    config.microprocesses = vec!["annual-report".into()];
    config.items_of.insert("annual-report".into(), 3);
    let service = demo_service::DemoService::start(config).await.unwrap();
    let runner = tokio::task::block_in_place(|| {
        project.run_locally(&endpoint, &service.queue_url(), SECRET)
    });
    // The runner says where it serves the callback's function URL.
    let started = std::time::Instant::now();
    while !runner
        .log()
        .contains("function URL of `scores-local-annual-report-callback`")
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{}",
            runner.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let (code, out, err) = cli(
        &project,
        &endpoint,
        &[
            "start",
            "annual-report",
            "--env",
            "local",
            "--run",
            "long-1",
            "--wait",
            "--timeout",
            "120",
        ],
    );
    assert_eq!(
        code,
        0,
        "start --wait:\n{out}\n{err}\nrunner:\n{}",
        runner.log()
    );
    assert!(
        out.contains("COMPLETED") || err.contains("COMPLETED"),
        "{out}\n{err}"
    );
    let stats = service.stats();
    assert_eq!(stats.accepted, 3, "every call was answered 202");
    assert_eq!(
        stats.report_statuses.get(&401),
        None,
        "the callback took the service's signatures"
    );
    assert!(
        stats.report_statuses.get(&200).copied().unwrap_or(0) >= 3,
        "{:?}",
        stats.report_statuses
    );

    let (code, out, err) = cli(
        &project,
        &endpoint,
        &["results", "long-1", "--env", "local"],
    );
    assert_eq!(code, 0, "results:\n{out}\n{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    for line in &lines {
        assert_eq!(line["state"], "SUCCEEDED", "{line}");
        assert!(
            line["result"]["report"]
                .as_str()
                .unwrap_or_default()
                .starts_with("annual report of"),
            "{line}"
        );
    }
    nothing_denied_then_teardown(&project, &moto, runner);
}

/// Run controls on a run in flight, through the local runner: a paused microprocess takes
/// nothing off its queue (also across a runner restart and a redeploy), `status` shows the
/// pause and a throttle, and once resumed under a rate cap of 20 calls a second the run
/// completes with nothing lost or failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_microprocess_waits_and_a_throttled_one_completes_at_its_cap() {
    use std::time::{Duration, Instant};
    const ITEMS: u64 = 100;
    let project = KitProject::new(Zips::Built);
    project.generate();
    let moto = MotoServer::start();
    let endpoint = moto.endpoint().to_string();
    project.deploy(&moto);
    let service = demo_service::DemoService::start(Config::new(SECRET).with_items(ITEMS))
        .await
        .unwrap();
    let run_locally = || {
        tokio::task::block_in_place(|| project.run_locally(&endpoint, &service.queue_url(), SECRET))
    };
    let runner = run_locally();

    let (code, out, err) = cli(
        &project,
        &endpoint,
        &[
            "pause",
            "credit-scores",
            "--env",
            "local",
            "--reason",
            "vendor outage",
        ],
    );
    assert_eq!(code, 0, "pause:\n{out}\n{err}");
    assert!(
        out.contains("paused the deliveries of `credit-scores`"),
        "{out}"
    );
    let (code, out, err) = cli(
        &project,
        &endpoint,
        &["start", "credit-scores", "--env", "local", "--run", "ctl-1"],
    );
    assert_eq!(code, 0, "start:\n{out}\n{err}");
    // The split fills the queue; nothing is delivered while paused.
    runs_show_until(
        &project,
        &endpoint,
        "ctl-1",
        ", sealed",
        Duration::from_secs(60),
    )
    .await;
    // Polls already waiting when the pause came may still return a batch each (4
    // forwarders × 10), which finishes, as Lambda finishes batches in flight; then nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = |service: &demo_service::RunningService| {
        service
            .stats()
            .run("credit-scores", "ctl-1")
            .map_or(0, |r| r.process_calls)
    };
    let taken = calls(&service);
    assert!(
        taken <= 40,
        "a paused microprocess went on taking batches: {taken} calls"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        calls(&service),
        taken,
        "a paused microprocess made process calls"
    );

    // A restart of the runner and a redeploy keep the pause.
    drop(runner);
    let runner = run_locally();
    let started = Instant::now();
    while !runner.log().contains("`credit-scores` is paused") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the restarted runner did not keep the pause:\n{}",
            runner.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, out, err) = cli(&project, &endpoint, &["deploy", "--env", "local", "--yes"]);
    assert_eq!(code, 0, "deploy:\n{out}\n{err}");
    assert!(out.contains("`credit-scores` stays paused"), "{out}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(calls(&service), taken, "the pause did not hold");

    let (code, out, err) = cli(
        &project,
        &endpoint,
        &[
            "throttle",
            "credit-scores",
            "--env",
            "local",
            "--max-concurrency",
            "2",
            "--rate",
            "20",
        ],
    );
    assert_eq!(code, 0, "throttle:\n{out}\n{err}");
    let (code, out, _) = cli(&project, &endpoint, &["status", "--env", "local"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("`credit-scores`: paused since") && out.contains("(vendor outage)"),
        "{out}"
    );
    assert!(
        out.contains("max concurrency 2 (config 4)") && out.contains("rate 20/s (config 200/s)"),
        "{out}"
    );
    let (code, _, err) = cli(
        &project,
        &endpoint,
        &[
            "throttle",
            "credit-scores",
            "--env",
            "local",
            "--max-concurrency",
            "99",
        ],
    );
    assert_eq!(code, 2, "above the reserved concurrency is refused: {err}");

    let (code, out, err) = cli(
        &project,
        &endpoint,
        &["resume", "credit-scores", "--env", "local"],
    );
    assert_eq!(code, 0, "resume:\n{out}\n{err}");
    let resumed = Instant::now();
    let out = runs_show_until(
        &project,
        &endpoint,
        "ctl-1",
        "COMPLETED",
        Duration::from_secs(90),
    )
    .await;
    assert!(out.contains(&format!("succeeded     {ITEMS}")), "{out}");
    // At least 60 calls at 20 a second, each forwarder starting with an empty bucket.
    assert!(
        resumed.elapsed() >= Duration::from_secs(2),
        "the rate cap did not hold: {:?}",
        resumed.elapsed()
    );
    let (code, out, err) = cli(
        &project,
        &endpoint,
        &["throttle", "credit-scores", "--env", "local", "--clear"],
    );
    assert_eq!(code, 0, "throttle --clear:\n{out}\n{err}");
    let (_, out, _) = cli(&project, &endpoint, &["status", "--env", "local"]);
    assert!(
        !out.contains("`credit-scores`:"),
        "cleared controls still shown:\n{out}"
    );
    nothing_denied_then_teardown(&project, &moto, runner);
}

#[test]
fn unknown_names_get_a_hint_and_exit_2() {
    let project = KitProject::new(Zips::Fake);
    let moto = MotoServer::start();
    project.generate();
    project.deploy(&moto);
    let (code, _, err) = project.cli(
        moto.endpoint(),
        &["start", "credit-score", "--env", "local"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("environment `local` has no microprocess `credit-score`")
            && err.contains("did you mean `credit-scores`?"),
        "{err}"
    );
    let (code, _, err) = project.cli(
        moto.endpoint(),
        &["runs", "show", "no-such-run", "--env", "local"],
    );
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains("no run `no-such-run` in the ledger of `local`"),
        "{err}"
    );
    let (code, _, err) = project.cli(moto.endpoint(), &["results", "bad/id", "--env", "local"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`bad/id` is not a run id"), "{err}");
    let (code, _, err) = project.cli(
        moto.endpoint(),
        &["cancel", "no-such-run", "--env", "local"],
    );
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains("no run `no-such-run` in the ledger of `local`"),
        "{err}"
    );
}
