//! Sandboxes end to end: two sandboxes of one environment deployed side by side into a
//! fresh emulator (`tools/emulator.py`), one of them made to expire, and
//! `teardown --expired` removing exactly that one. The CLI binary runs on a temporary copy
//! of the project whose `local.toml` expires, so the sandboxes are `local-alice` and
//! `local-bob` and deploy to the emulator as `local` does; fake Lambda zips stand in for
//! the real ones.

use aws_config::SdkConfig;
use aws_sdk_cloudformation::types::Tag;
use kit_tests::kit_project::{KitProject, Zips};
use kit_tests::moto::{sdk_config, MotoServer};

/// A copy of the project whose `local` environment expires, so it has sandboxes.
fn project() -> KitProject {
    let project = KitProject::new(Zips::Fake);
    let local = project.path().join("environments/local.toml");
    let text = std::fs::read_to_string(&local).unwrap();
    assert!(text.contains("protected = false\n"), "local.toml changed");
    std::fs::write(
        &local,
        text.replacen(
            "protected = false\n",
            "protected = false\nexpires_after_days = 7\n",
            1,
        ),
    )
    .unwrap();
    project
}

/// `generate` and `deploy --yes` of sandbox `name` of `local`.
fn deploy_sandbox(project: &KitProject, moto: &MotoServer, name: &str) {
    let assets = project.path().join("assets");
    let (code, out, err) = project.cli(
        "http://127.0.0.1:9",
        &[
            "generate",
            "--env",
            "local",
            "--sandbox",
            name,
            "--assets-dir",
            assets.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "generate failed:\n{out}{err}");
    let (code, out, err) = project.cli(
        moto.endpoint(),
        &["deploy", "--env", "local", "--sandbox", name, "--yes"],
    );
    assert_eq!(
        code,
        0,
        "deploy failed:\n{out}\n{err}\nemulator:\n{}",
        moto.log()
    );
    assert!(out.contains(&format!("deployed `local-{name}`")), "{out}");
}

/// The stacks of sandbox `env` (`local-alice`), in name order.
fn stacks_of(env: &str) -> Vec<String> {
    [
        "core",
        "mp-abn-refresh",
        "mp-annual-report",
        "mp-credit-scores",
    ]
    .iter()
    .map(|k| format!("scores-{env}-{k}"))
    .collect()
}

/// Stack name → status, of every stack the emulator knows (deleted ones included).
async fn statuses(config: &SdkConfig) -> Vec<(String, String)> {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    let mut all: Vec<(String, String)> = cfn
        .describe_stacks()
        .send()
        .await
        .unwrap()
        .stacks()
        .iter()
        .map(|s| {
            (
                s.stack_name().unwrap().to_string(),
                s.stack_status().unwrap().as_str().to_string(),
            )
        })
        .collect();
    all.sort();
    all
}

/// Sets the expiry tag of each of `stacks` to a day long past, as a deploy years ago would
/// have. moto takes an `UpdateStack` that only changes tags when no parameters are passed
/// (AWS wants each one with `UsePreviousValue`, which moto then refuses as "no updates").
async fn expire(config: &SdkConfig, stacks: &[String]) {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    for name in stacks {
        let out = cfn.describe_stacks().stack_name(name).send().await.unwrap();
        let stack = &out.stacks()[0];
        let tags: Vec<Tag> = stack
            .tags()
            .iter()
            .map(|t| {
                let key = t.key().unwrap();
                let value = if key == "microprocess:expires-at" {
                    "2020-01-01T00:00:00Z"
                } else {
                    t.value().unwrap()
                };
                Tag::builder().key(key).value(value).build()
            })
            .collect();
        assert!(
            stack
                .tags()
                .iter()
                .any(|t| t.key() == Some("microprocess:expires-at")),
            "{name} has no expiry tag"
        );
        cfn.update_stack()
            .stack_name(name)
            .use_previous_template(true)
            .set_tags(Some(tags))
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot retag {name}: {e:?}"));
    }
}

/// Names of the queues, functions, tables and buckets that contain `part`.
async fn resources_named(config: &SdkConfig, part: &str) -> Vec<String> {
    let mut names = Vec::new();
    for u in aws_sdk_sqs::Client::new(config)
        .list_queues()
        .send()
        .await
        .unwrap()
        .queue_urls()
    {
        names.push(format!("queue {}", u.rsplit('/').next().unwrap()));
    }
    for f in aws_sdk_lambda::Client::new(config)
        .list_functions()
        .send()
        .await
        .unwrap()
        .functions()
    {
        names.push(format!("function {}", f.function_name().unwrap()));
    }
    for t in aws_sdk_dynamodb::Client::new(config)
        .list_tables()
        .send()
        .await
        .unwrap()
        .table_names()
    {
        names.push(format!("table {t}"));
    }
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    );
    for b in s3.list_buckets().send().await.unwrap().buckets() {
        names.push(format!("bucket {}", b.name().unwrap()));
    }
    names.retain(|n| n.contains(part));
    names.sort();
    names
}

#[tokio::test]
async fn teardown_expired_removes_only_the_sandbox_past_its_expiry() {
    let moto = MotoServer::start();
    let config = sdk_config(moto.endpoint()).await;
    let project = project();
    let started = std::time::Instant::now();
    deploy_sandbox(&project, &moto, "alice");
    deploy_sandbox(&project, &moto, "bob");
    eprintln!(
        "two sandboxes deployed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut both = [stacks_of("local-alice"), stacks_of("local-bob")].concat();
    both.sort();
    assert_eq!(
        statuses(&config).await,
        both.iter()
            .map(|s| (s.clone(), "CREATE_COMPLETE".to_string()))
            .collect::<Vec<_>>()
    );
    let bob_before = resources_named(&config, "local-bob").await;
    assert!(
        bob_before.contains(&"function scores-local-bob-credit-scores-forwarder".to_string()),
        "{bob_before:?}"
    );
    assert!(!resources_named(&config, "local-alice").await.is_empty());

    // Nothing has expired yet.
    let (code, out, err) = project.cli(
        moto.endpoint(),
        &["teardown", "--expired", "--env", "local", "--yes"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("no sandbox of `local` has expired (2 found)"),
        "{out}"
    );

    expire(&config, &stacks_of("local-alice")).await;
    let started = std::time::Instant::now();
    let (code, out, err) = project.cli(
        moto.endpoint(),
        &["teardown", "--expired", "--env", "local", "--yes"],
    );
    eprintln!(
        "teardown --expired took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(code, 0, "{out}\n{err}\nemulator:\n{}", moto.log());
    assert!(out.contains("`local-bob` expires "), "{out}");
    assert!(out.contains(": kept (4 stacks)"), "{out}");
    assert!(
        out.contains("`local-alice` expired 2020-01-01 00:00 UTC: 4 stacks\n"),
        "{out}"
    );
    assert!(out.contains("removing `local-alice`\n"), "{out}");
    assert!(out.contains("emptied bucket"), "{out}");
    assert!(out.contains("4 stacks deleted, nothing left"), "{out}");
    assert!(
        out.contains("removed 1 of 1 expired sandboxes of `local`; 1 not expired"),
        "{out}"
    );
    assert!(!out.contains("scores-local-bob-core: deleting"), "{out}");

    // Alice is gone, every bit of her; Bob is as he was.
    for (name, status) in statuses(&config).await {
        if name.contains("local-alice") {
            assert_eq!(status, "DELETE_COMPLETE", "{name}");
        } else {
            assert_eq!(status, "CREATE_COMPLETE", "{name}");
        }
    }
    assert_eq!(
        resources_named(&config, "local-alice").await,
        Vec::<String>::new()
    );
    assert_eq!(resources_named(&config, "local-bob").await, bob_before);

    // A second run finds only Bob, who has not expired.
    let (code, out, err) = project.cli(
        moto.endpoint(),
        &["teardown", "--expired", "--env", "local", "--yes"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("no sandbox of `local` has expired (1 found)"),
        "{out}"
    );

    // Bob goes on his own, by name.
    let (code, out, err) = project.cli(
        moto.endpoint(),
        &["teardown", "--env", "local", "--sandbox", "bob", "--yes"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("stacks of `local-bob`, in the order they go:"),
        "{out}"
    );
    assert!(out.contains("4 stacks deleted, nothing left"), "{out}");
    assert_eq!(
        resources_named(&config, "local-").await,
        Vec::<String>::new()
    );
}

#[test]
fn teardown_expired_needs_yes_without_a_terminal_and_an_environment_with_sandboxes() {
    let project = project();
    let (code, out, err) = project.cli(
        "http://127.0.0.1:9",
        &["teardown", "--expired", "--env", "local"],
    );
    assert_eq!(code, 4, "{out}{err}");
    assert!(err.contains("pass `--yes`"), "{err}");

    let (code, out, err) = project.cli(
        "http://127.0.0.1:9",
        &["teardown", "--expired", "--env", "prod", "--yes"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.starts_with("error: `prod` is protected, so it cannot have sandboxes\n --> environments/prod.toml:6:13\n"),
        "{err}"
    );
    assert_eq!(out, "");
}
