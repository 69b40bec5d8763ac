//! The `demo-service` binary: flags and environment variables reach the service, it
//! prints where it listens, and it stops cleanly on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::receiver::{summary, Receiver};
use common::{get, Call, MP, RUN, SECRET};
use microprocess_shared::contract::ReportOutcome;
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_demo-service");

/// A started binary; killed if a test fails before stopping it.
struct Running {
    child: Child,
    queue_url: String,
    live_url: String,
}

impl Running {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut command = Command::new(BINARY);
        command
            .args(args)
            .env_remove("MICROPROCESS_SIGNING_SECRET")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the binary starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let urls: Value = serde_json::from_str(&line).expect("a JSON line with the URLs");
        Running {
            child,
            queue_url: urls["queue_url"].as_str().unwrap().to_owned(),
            live_url: urls["live_url"].as_str().unwrap().to_owned(),
        }
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn flags_configure_the_service_and_sigterm_stops_it() {
    let service = Running::start(
        &[
            "--queue-port=0",
            "--live-port=0",
            "--secret",
            SECRET,
            "--items=5",
            "--split-failures=1",
        ],
        &[],
    );
    assert!(service.queue_url.starts_with("http://127.0.0.1:"));
    assert!(service.live_url.starts_with("http://127.0.0.1:"));
    let reply = Call::split(MP, RUN, "limit=10")
        .answer(&service.queue_url)
        .await;
    assert_eq!(reply.status, 500);
    let reply = Call::split(MP, RUN, "limit=10")
        .answer(&service.queue_url)
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["items"].as_array().unwrap().len(), 5);
    assert_eq!(
        get(&format!("{}/healthz", service.live_url)).await.status,
        200
    );
    let stats = get(&format!("{}/_demo/stats", service.queue_url))
        .await
        .json();
    assert_eq!(stats["microprocesses"][MP][RUN]["split_calls"], 2);
    let status = service.stop();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn environment_variables_configure_the_service() {
    let service = Running::start(
        &[],
        &[
            ("DEMO_QUEUE_PORT", "0"),
            ("DEMO_LIVE_PORT", "0"),
            (
                "MICROPROCESS_SIGNING_SECRET",
                r#"{"current": "test-secret", "previous": "old-secret"}"#,
            ),
            ("DEMO_MICROPROCESSES", "abn-refresh"),
            ("DEMO_ITEMS", "3"),
            ("DEMO_FAIL_SEQS_4XX", "1"),
        ],
    );
    let base = service.queue_url.clone();
    let reply = Call::split("abn-refresh", RUN, "limit=10")
        .answer(&base)
        .await;
    assert_eq!(reply.json()["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        Call::process("abn-refresh", RUN, 1, 1)
            .answer(&base)
            .await
            .status,
        422
    );
    assert_eq!(
        Call::process("abn-refresh", RUN, 2, 1)
            .answer(&base)
            .await
            .status,
        200
    );
    assert_eq!(
        Call::split(MP, RUN, "limit=1").answer(&base).await.status,
        404
    );
    drop(service);
}

#[test]
fn bad_flags_and_configs_fail_with_the_fix() {
    let output = Command::new(BINARY)
        .args(["--secret=s", "--garbage-rate=5"])
        .env_remove("MICROPROCESS_SIGNING_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`5` is not a fraction"), "{stderr}");

    let output = Command::new(BINARY)
        .args([
            "--secret=s",
            "--microprocess=a/b",
            "--queue-port=0",
            "--live-port=0",
        ])
        .env_remove("MICROPROCESS_SIGNING_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: microprocess name `a/b` cannot be served"),
        "{stderr}"
    );

    let output = Command::new(BINARY)
        .env_remove("MICROPROCESS_SIGNING_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--secret"));
}

#[tokio::test]
async fn long_task_flags_reach_the_service() {
    let receiver = Receiver::start().await;
    let service = Running::start(
        &[
            "--queue-port=0",
            "--live-port=0",
            "--secret",
            SECRET,
            "--items=5",
            "--long-task-seconds=0",
            "--heartbeat-seconds=1",
        ],
        &[("DEMO_DUPLICATE_REPORT_SEQS", "2")],
    );
    let reply = Call::process(MP, RUN, 2, 1)
        .with_callback(&receiver.url())
        .answer(&service.queue_url)
        .await;
    assert_eq!(reply.status, 202);
    let received = receiver.wait_for_finals(3).await;
    use ReportOutcome::{Failed, Succeeded};
    assert_eq!(
        summary(&received),
        [
            (Succeeded, 1, true, 200),
            (Succeeded, 1, true, 200),
            (Failed, 1, true, 200)
        ]
    );
    let stats = get(&format!("{}/_demo/stats", service.queue_url))
        .await
        .json();
    assert_eq!(stats["accepted"], 1);
    let status = service.stop();
    assert!(status.success(), "{status:?}");
}

#[test]
fn help_documents_the_long_task_flags() {
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--long-task-seconds",
        "--heartbeat-seconds",
        "--lost-report-seqs",
        "--duplicate-report-seqs",
        "--late-report-seqs",
        "--bad-signature-report-seqs",
        "X-Microprocess-Callback",
    ] {
        assert!(help.contains(flag), "{flag} is not in --help:\n{help}");
    }
}
