//! `microprocess estimate` end to end: what it prints for a configured microprocess, and
//! its errors and exit codes for names and numbers it cannot use.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::project_copy;

fn microprocess(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_microprocess"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn estimate_prints_duration_costs_per_service_and_the_comparisons() {
    let tmp = project_copy();
    let out = microprocess(
        tmp.path(),
        &[
            "estimate",
            "credit-scores",
            "--env",
            "prod",
            "--items",
            "1000000",
        ],
    );
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "`credit-scores` in `prod`: 1,000,000 items, the service answering in 50 ms"
    );
    assert_eq!(
        lines[1],
        "  batches of 10, 200 at a time, at most 2,000 calls/s, 5 attempts, pages of 1000, \
         1 counter shard, results in the ledger, forwarder 128 MB arm64"
    );
    // 1,000,000 children at the cap of 2,000 a second, plus the mapping's scale-up.
    assert!(
        lines[3].starts_with("duration: 8 min 40 s (2,000 children/s, bound by the rate cap"),
        "{stdout}"
    );
    let row = |service: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(service))
            .unwrap_or_else(|| panic!("no `{service}` row: {stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("DynamoDB")[1..6],
        ["0.368", "write", "+", "0.200", "read"]
    );
    assert_eq!(row("SQS")[1..3], ["0.300", "requests"]);
    assert_eq!(row("total")[1..], ["$0.56", "$0.56"]);
    let ledger = lines
        .iter()
        .find(|l| l.starts_with("ledger: "))
        .unwrap_or_else(|| panic!("no ledger line: {stdout}"));
    assert!(
        ledger.starts_with(
            "ledger: 6 child partition keys (`results.partitions`), 0.367 write units a child; \
             at 2,000 children/s the busiest key takes 116 write units/s of DynamoDB's 1,000 (12%)"
        ),
        "{ledger}"
    );
    // 200 forwarders each wait most of a batch for their share of the cap; 19 reach it.
    assert_eq!(
        lines[4],
        "  one forwarder batch lasts 990 ms, 905 ms of it waiting for the instance's share of the cap (10 calls/s)"
    );
    assert!(
        stdout.contains(
            "hint: 19 forwarders reach the cap of 2,000 calls/s without waiting for it: with \
             `delivery.max_concurrency = 19` in `prod` this run costs $0.41 ($0.41 per million, \
             Lambda $0.0348 instead of $0.19) at the same pace, while the service answers in 50 ms"
        ),
        "{stdout}"
    );
    assert!(stdout.contains(
        "Step Functions Distributed Map, per million children: Standard children $50.00; \
         Express children $26.10 (one item each) or $2.61 (10 items each, at-least-once)"
    ));
    assert!(stdout
        .contains("idle, per month: $0.26 for the queue's long polling (657,000 empty receives)"));
    assert!(stdout.contains("`prod` is in ap-southeast-2, whose prices differ"));
}

#[test]
fn an_unknown_microprocess_gets_a_suggestion_and_exit_2() {
    let tmp = project_copy();
    let out = microprocess(
        tmp.path(),
        &["estimate", "credit-score", "--env", "prod", "--items", "10"],
    );
    assert_eq!(
        text(&out.stderr),
        "error: environment `prod` has no microprocess `credit-score`\n  \
         hint: did you mean `credit-scores`? (microprocesses: `abn-refresh`, `annual-report`, `credit-scores`)\n"
    );
    assert_eq!(text(&out.stdout), "");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_unknown_environment_is_a_config_error() {
    let tmp = project_copy();
    let out = microprocess(
        tmp.path(),
        &["estimate", "credit-scores", "--env", "prd", "--items", "10"],
    );
    assert_eq!(
        text(&out.stderr),
        "\
error: unknown environment `prd`
 = hint: did you mean `prod`? (environments: `dev`, `local`, `prod`, `sandbox`, `staging`)
"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn numbers_the_model_cannot_use_are_refused() {
    let tmp = project_copy();
    let out = microprocess(
        tmp.path(),
        &[
            "estimate",
            "credit-scores",
            "--env",
            "prod",
            "--items",
            "10",
            "--latency-ms",
            "30000",
        ],
    );
    assert_eq!(
        text(&out.stderr),
        "error: `--latency-ms 30000` is longer than the process timeout of `credit-scores` (25 s): \
         every call would time out\n  hint: raise `process.timeout_seconds`, or estimate a shorter latency\n"
    );
    assert_eq!(out.status.code(), Some(2));
    let out = microprocess(
        tmp.path(),
        &["estimate", "credit-scores", "--env", "prod", "--items", "0"],
    );
    assert_eq!(text(&out.stderr), "error: `--items` must be at least 1\n");
    assert_eq!(out.status.code(), Some(2));
}

/// `--output json` (docs/json-output.md, "estimate"): the figures of the text report as
/// one document, pinned for the monthly run of 19 million companies.
#[test]
fn estimate_reports_as_json() {
    let tmp = project_copy();
    let out = microprocess(
        tmp.path(),
        &[
            "--output",
            "json",
            "estimate",
            "credit-scores",
            "--env",
            "prod",
            "--items",
            "19000000",
        ],
    );
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&String> = report.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "command",
            "environment",
            "microprocess",
            "items",
            "run_seconds",
            "split_seconds",
            "children_per_second",
            "bound",
            "attempts_per_child",
            "failed_fraction",
            "cost",
            "cost_per_million",
            "requests"
        ]
    );
    assert_eq!(report["command"], "estimate");
    assert_eq!(report["items"], 19_000_000);
    assert_eq!(report["bound"], "rate_cap");
    assert_eq!(report["children_per_second"], 2000.0);
    assert_eq!(report["requests"]["sqs"], 5_700_003);
    let cost = &report["cost"];
    let parts: f64 = ["lambda", "sqs", "dynamodb", "s3"]
        .iter()
        .map(|k| cost[k].as_f64().unwrap())
        .sum();
    assert!(
        (parts - cost["total"].as_f64().unwrap()).abs() < 0.001,
        "{cost}"
    );
}
