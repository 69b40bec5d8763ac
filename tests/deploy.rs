//! `microprocess deploy`, `diff` and `teardown` end to end: the CLI binary on a temporary
//! copy of the project, against a fresh emulator per test (`tools/emulator.py`, as
//! `make emulator-start` runs it), with small fake Lambda zips so no cross-compiler is
//! needed.

use kit_tests::deployed::{function_names, queue_names, stacks, table_names};
use kit_tests::kit_project::{KitProject, Zips};
use kit_tests::moto::{sdk_config, MotoServer};

const STACKS: [&str; 4] = [
    "scores-local-core",
    "scores-local-mp-abn-refresh",
    "scores-local-mp-annual-report",
    "scores-local-mp-credit-scores",
];

fn names(stacks: &[(String, String, usize)]) -> Vec<&str> {
    stacks.iter().map(|s| s.0.as_str()).collect()
}

#[tokio::test]
async fn deploy_creates_every_stack_and_a_second_deploy_changes_nothing() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let project = KitProject::new(Zips::Fake);
    project.generate();

    let started = std::time::Instant::now();
    let out = project.deploy(&moto);
    eprintln!(
        "deploy of local took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for s in STACKS {
        assert!(out.contains(&format!("{s}: create, ")), "{out}");
    }
    assert!(out.contains("assets: 3 uploaded"), "{out}");
    let after_first = stacks(&config).await;
    assert_eq!(names(&after_first), STACKS);
    for (name, status, _) in &after_first {
        assert_eq!(status, "CREATE_COMPLETE", "{name}");
    }
    let mut expected_queues = Vec::new();
    let mut expected_functions = Vec::new();
    for m in ["abn-refresh", "annual-report", "credit-scores"] {
        for q in ["", "-dlq", "-schedule-dlq"] {
            expected_queues.push(format!("scores-local-{m}{q}"));
        }
        // Only the microprocess with callback completion has a callback.
        let functions: &[&str] = if m == "annual-report" {
            &["callback", "forwarder", "splitter"]
        } else {
            &["forwarder", "splitter"]
        };
        for f in functions {
            expected_functions.push(format!("scores-local-{m}-{f}"));
        }
    }
    expected_queues.sort();
    expected_functions.sort();
    assert_eq!(queue_names(&config).await, expected_queues);
    assert_eq!(function_names(&config).await, expected_functions);
    assert_eq!(table_names(&config).await, ["scores-local-ledger"]);
    let secret = aws_sdk_secretsmanager::Client::new(&config)
        .get_secret_value()
        .secret_id("scores-local/microprocesses/signing-secret")
        .send()
        .await
        .expect("the signing secret exists");
    assert_eq!(secret.secret_string().unwrap().len(), 64);

    let out = project.deploy(&moto);
    for s in STACKS {
        assert!(out.contains(&format!("{s}: no change")), "{out}");
    }
    assert!(out.contains("0 created, 0 updated, 4 no change"), "{out}");
    assert!(out.contains("assets: 0 uploaded, 3 already"), "{out}");
    assert_eq!(
        stacks(&config).await,
        after_first,
        "a deploy without changes added stack events"
    );
}

const THIRD: &str = r#"
[invoice-reminders]
description = "Remind customers of unpaid invoices, weekly"
schedule = { expression = "cron(0 9 ? * MON *)", timezone = "Europe/London" }

[invoice-reminders.split]
path = "/microprocesses/invoice-reminders/split"

[invoice-reminders.process]
path = "/microprocesses/invoice-reminders/process"
timeout_seconds = 10

[invoice-reminders.reduce]
path = "/microprocesses/invoice-reminders/reduce"

[invoice-reminders.delivery]
max_concurrency = 2
"#;

#[tokio::test]
async fn adding_a_microprocess_creates_only_its_stack() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let project = KitProject::new(Zips::Fake);
    project.generate();
    project.deploy(&moto);
    let before = stacks(&config).await;

    project.append("microprocesses.toml", THIRD);
    let (code, out, err) = project.cli(moto.endpoint(), &["deploy", "--env", "local", "--yes"]);
    assert_eq!(code, 3, "a stale bundle is refused:\n{out}{err}");
    assert!(err.contains("is stale"), "{err}");
    assert!(
        err.contains("run `microprocess generate --env local`"),
        "{err}"
    );

    project.generate();
    let out = project.deploy(&moto);
    for s in STACKS {
        assert!(out.contains(&format!("{s}: no change")), "{out}");
    }
    assert!(
        out.contains("scores-local-mp-invoice-reminders: create, "),
        "{out}"
    );
    assert!(out.contains("1 created, 0 updated, 4 no change"), "{out}");
    let after = stacks(&config).await;
    assert_eq!(
        after
            .iter()
            .filter(|s| s.0 != "scores-local-mp-invoice-reminders")
            .cloned()
            .collect::<Vec<_>>(),
        before,
        "the other stacks were touched"
    );
    let added = after
        .iter()
        .find(|s| s.0 == "scores-local-mp-invoice-reminders")
        .unwrap();
    assert_eq!(added.1, "CREATE_COMPLETE");
    assert!(added.2 > 2, "its resources' events too: {added:?}");
    assert!(function_names(&config)
        .await
        .contains(&"scores-local-invoice-reminders-forwarder".to_string()));
}

#[tokio::test]
async fn diff_shows_a_change_and_executes_nothing() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let project = KitProject::new(Zips::Fake);
    project.generate();
    project.deploy(&moto);
    let before = stacks(&config).await;

    project.append(
        "local.toml",
        "\n[microprocesses.abn-refresh.process]\ntimeout_seconds = 12\n",
    );
    project.generate();
    let (code, out, err) = project.cli(moto.endpoint(), &["diff", "--env", "local"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("scores-local-mp-abn-refresh: update, "),
        "{out}"
    );
    assert!(out.contains("~ change"), "{out}");
    assert!(out.contains("Forwarder "), "{out}");
    assert!(
        out.contains("scores-local-mp-credit-scores: no change"),
        "{out}"
    );
    assert!(
        out.contains("0 to create, 1 to update, 3 no change"),
        "{out}"
    );
    assert_eq!(stacks(&config).await, before, "diff changed a stack");

    let out = project.deploy(&moto);
    assert!(
        out.contains("scores-local-mp-abn-refresh: UPDATE_COMPLETE"),
        "{out}"
    );
    let timeout = aws_sdk_lambda::Client::new(&config)
        .get_function_configuration()
        .function_name("scores-local-abn-refresh-forwarder")
        .send()
        .await
        .unwrap()
        .timeout();
    assert_eq!(
        timeout,
        Some(17),
        "the forwarder timeout follows the process timeout"
    );
}

#[tokio::test]
async fn teardown_leaves_nothing() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let project = KitProject::new(Zips::Fake);
    project.generate();
    project.deploy(&moto);

    let (code, out, err) = project.cli(moto.endpoint(), &["teardown", "--env", "local", "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}\nemulator:\n{}", moto.log());
    assert!(out.contains("emptied bucket"), "{out}");
    assert!(out.contains("4 stacks deleted, nothing left"), "{out}");
    assert!(stacks(&config)
        .await
        .iter()
        .all(|s| s.1 == "DELETE_COMPLETE"));
    assert_eq!(queue_names(&config).await, Vec::<String>::new());
    assert_eq!(function_names(&config).await, Vec::<String>::new());
    assert_eq!(table_names(&config).await, Vec::<String>::new());
    let buckets = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    )
    .list_buckets()
    .send()
    .await
    .unwrap();
    assert!(buckets.buckets().is_empty(), "{:?}", buckets.buckets());

    // A second teardown finds nothing to delete and nothing left.
    let (code, out, err) = project.cli(moto.endpoint(), &["teardown", "--env", "local", "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("`local` has no stacks"), "{out}");
}

#[tokio::test]
async fn teardown_names_what_is_left_and_fails() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let project = KitProject::new(Zips::Fake);
    project.generate();
    project.deploy(&moto);
    // A queue someone made by hand with the environment's tag.
    aws_sdk_sqs::Client::new(&config)
        .create_queue()
        .queue_name("scores-local-by-hand")
        .tags("microprocess:environment", "local")
        .send()
        .await
        .unwrap();

    let (code, out, err) = project.cli(moto.endpoint(), &["teardown", "--env", "local", "--yes"]);
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(
        err.contains("error: teardown of `local` left 1 resources behind:\n  - tagged arn:aws:sqs:us-east-1:123456789012:scores-local-by-hand\n"),
        "{err}"
    );
}

#[tokio::test]
async fn teardown_refuses_a_protected_environment() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let project = KitProject::new(Zips::Fake);
    project.replace("local.toml", "protected = false", "protected = true");
    project.generate();
    project.deploy(&moto);

    let (code, out, err) = project.cli(moto.endpoint(), &["teardown", "--env", "local", "--yes"]);
    assert_eq!(code, 4, "{out}\n{err}");
    assert_eq!(out, "");
    assert!(
        err.starts_with(
            "error: `local` is protected: teardown never removes a protected environment\n"
        ),
        "{err}"
    );
    let after = stacks(&config).await;
    assert_eq!(names(&after), STACKS);
    // The core stack was updated once, to arm its deletion protection.
    assert!(after.iter().all(|s| s.1
        == if s.0 == "scores-local-core" {
            "UPDATE_COMPLETE"
        } else {
            "CREATE_COMPLETE"
        }));
}

#[test]
fn local_talks_only_to_a_loopback_endpoint_and_deploy_needs_yes_without_a_terminal() {
    let project = KitProject::new(Zips::Fake);
    project.generate();
    let (code, _, err) = project.cli(
        "https://cloudformation.us-east-1.amazonaws.com",
        &["deploy", "--env", "local", "--yes"],
    );
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("the `local` environment only talks to a loopback endpoint"),
        "{err}"
    );

    let (code, _, err) = project.cli("http://127.0.0.1:9", &["deploy", "--env", "local"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("pass `--yes`"), "{err}");

    let (code, _, err) = project.cli("http://127.0.0.1:9", &["deploy", "--env", "dev", "--yes"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        err,
        format!(
            "error: no bundle for `dev` at `{}`\n  hint: run `microprocess generate --env dev` first\n",
            project.path().join("dist/dev").display()
        )
    );
}

#[tokio::test]
async fn a_template_the_emulator_cannot_take_fails_with_the_stack_and_the_next_step() {
    let moto = MotoServer::start();
    let project = KitProject::new(Zips::Fake);
    // Put back what the local core leaves out: moto crashes on KMS key tags.
    let core = project.path().join("templates/core.yaml");
    let text = std::fs::read_to_string(&core).unwrap();
    let guard = "{%- if not emulator %}\n";
    assert!(text.contains(guard), "the local guard moved");
    std::fs::write(&core, text.replacen(guard, "{%- if true %}\n", 1)).unwrap();
    project.generate();

    let (code, out, err) = project.cli(moto.endpoint(), &["deploy", "--env", "local", "--yes"]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(
        err.starts_with("error: stack `scores-local-core`: the emulator failed on "),
        "{err}"
    );
    assert!(
        err.contains("(HTTP 500)\n  hint: its log names the resource"),
        "{err}"
    );
    assert!(moto.log().contains("KeyError: 'TagKey'"), "{}", moto.log());
}

/// `status` (and `status --watch`) of an environment torn down under it says so and exits
/// as for "not deployed", rather than ending on SQS's raw `QueueDoesNotExist`.
#[tokio::test]
async fn status_says_the_environment_is_gone_when_its_queues_are() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let project = KitProject::new(Zips::Fake);
    project.generate();
    project.deploy(&moto);
    let sqs = aws_sdk_sqs::Client::new(&config);
    for url in sqs.list_queues().send().await.unwrap().queue_urls() {
        sqs.delete_queue().queue_url(url).send().await.unwrap();
    }

    let (code, out, err) = project.cli(moto.endpoint(), &["status", "--env", "local"]);
    assert_eq!(code, 8, "{out}\n{err}");
    assert!(
        err.starts_with("error: environment `local` is gone: what it reads no longer exists, so it was torn down while this ran ("),
        "{err}"
    );
    assert!(
        err.ends_with("  hint: deploy it again with `microprocess deploy --env local`\n"),
        "{err}"
    );
}

/// `status --output json` of a deployed environment without runs (docs/json-output.md).
#[tokio::test]
async fn status_reports_as_json() {
    let moto = MotoServer::start();
    let project = KitProject::new(Zips::Fake);
    project.generate();
    project.deploy(&moto);
    let (code, out, err) = project.cli(
        moto.endpoint(),
        &["status", "--env", "local", "--output", "json"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["command"], "status");
    assert_eq!(report["environment"], "local");
    assert!(report["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(report["runs"], serde_json::json!([]));
    assert_eq!(
        report["dead_letters"],
        serde_json::json!({"abn-refresh": 0, "annual-report": 0, "credit-scores": 0})
    );
    assert_eq!(report["controls"], serde_json::json!([]));
    assert_eq!(report["late"], serde_json::json!([]));
    assert_eq!(
        report["unconfirmed_alarm_subscriptions"],
        serde_json::json!([])
    );

    // `--watch`: a document per look on a line of its own; idle at once here.
    let (code, out, err) = project.cli(
        moto.endpoint(),
        &[
            "status",
            "--env",
            "local",
            "--watch",
            "--until-idle",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let look: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(look["command"], "status");
    // The text watch off a terminal: a block per look under its time.
    let (code, out, err) = project.cli(
        moto.endpoint(),
        &["status", "--env", "local", "--watch", "--until-idle"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with("-- "), "{out}");
    assert!(out.contains("no runs in `local` yet"), "{out}");
}
