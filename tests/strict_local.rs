//! The local world as strict as AWS, driven as a user drives it: the `local`
//! environment's real templates deployed into the kit's emulator, which enforces IAM on
//! every request, and the shipped zips run by `local run`, each function as its own role.
//! A template that leaves an action out of a role fails locally, naming the function,
//! the role and the action, where it used to pass and fail in a customer's account.
//! (The whole pipeline with nothing denied is `end_to_end`'s run.)

use std::time::{Duration, Instant};

use demo_service::Config;
use kit_tests::kit_project::{KitProject, Zips};
use kit_tests::moto::MotoServer;

const SECRET: &str = "strict-local-test-secret";

/// `templates/microprocess.yaml` of `project` without `action` in the forwarder's role.
fn take_out_of_the_forwarder_role(project: &KitProject, action: &str) {
    let path = project.path().join("templates").join("microprocess.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let role = text
        .find("  ForwarderRole:")
        .expect("the template has a ForwarderRole");
    let end = role
        + text[role..]
            .find("\n  Splitter:")
            .expect("the splitter follows the role");
    let line = format!("                  - {action}\n");
    let at = role
        + text[role..end]
            .find(&line)
            .unwrap_or_else(|| panic!("the forwarder's role has no `{action}`"));
    let edited = format!("{}{}", &text[..at], &text[at + line.len()..]);
    std::fs::write(&path, edited).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_missing_from_the_forwarders_role_stops_the_runner_naming_it() {
    let project = KitProject::new(Zips::Built);
    take_out_of_the_forwarder_role(&project, "dynamodb:UpdateItem");
    project.generate();
    let moto = MotoServer::start();
    let endpoint = moto.endpoint().to_string();
    project.deploy(&moto);
    let service = demo_service::DemoService::start(Config::new(SECRET).with_items(20))
        .await
        .unwrap();
    let mut runner = tokio::task::block_in_place(|| {
        project.run_locally(&endpoint, &service.queue_url(), SECRET)
    });
    let (code, out, err) = tokio::task::block_in_place(|| {
        project.cli(
            &endpoint,
            &[
                "start",
                "credit-scores",
                "--env",
                "local",
                "--run",
                "denied-1",
                "--wait",
                "--timeout",
                "90",
            ],
        )
    });
    // `start --wait` ends as soon as the runner stops, naming the denial (exit 3).
    assert_eq!(code, 3, "start --wait:\n{out}{err}");
    assert!(
        err.contains("the local runner stopped because the emulator denied"),
        "{err}"
    );
    assert!(
        err.contains("which is not allowed `dynamodb:UpdateItem`"),
        "{err}"
    );

    let started = Instant::now();
    while runner.running() {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the runner did not stop on the denial:\n{}",
            runner.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = runner.log();
    assert!(
        log.contains("access denied: `scores-local-credit-scores-forwarder` runs as role `"),
        "{log}"
    );
    assert!(
        log.contains("which is not allowed `dynamodb:UpdateItem` on `arn:aws:dynamodb:"),
        "{log}"
    );
    assert!(log.contains("error: the emulator denied"), "{log}");
    let denied = moto.stats()["denied"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!denied.is_empty());
    assert!(
        denied.iter().all(|d| d["action"] == "dynamodb:UpdateItem"
            && d["principal"]
                .as_str()
                .unwrap_or_default()
                .contains(":assumed-role/")),
        "only the forwarder's missing action is denied: {denied:?}"
    );
}
