//! Every generated template of every environment passes cfn-lint with zero findings and
//! checkov with zero failed checks. A checkov finding that is right to keep is suppressed
//! in the resource's Metadata with its reason; this test prints the suppressions per check.

use std::collections::BTreeMap;
use std::process::Command;

use kit_tests::{render_all, run, venv_tool, write_templates};
use serde_json::Value;

#[test]
fn cfn_lint_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_templates(dir.path());
    assert!(files.len() >= 15, "{} templates", files.len());
    let (code, stdout, stderr) = run(Command::new(venv_tool("cfn-lint")).args(&files));
    assert!(
        code == 0 && stdout.trim().is_empty(),
        "cfn-lint exit {code}:\n{stdout}\n{stderr}"
    );
    println!("cfn-lint: {} templates, 0 findings", files.len());
}

#[test]
fn checkov_fails_nothing_and_every_suppression_has_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    write_templates(dir.path());
    let (code, stdout, stderr) = run(Command::new(venv_tool("checkov"))
        .arg("--directory")
        .arg(dir.path())
        .args([
            "--framework",
            "cloudformation",
            "--skip-download",
            "--output",
            "json",
        ]));
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("checkov exit {code}, not JSON ({e}):\n{stdout}\n{stderr}"));
    let results = &report["results"];
    let failed = results["failed_checks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let failures: Vec<String> = failed
        .iter()
        .map(|f| {
            format!(
                "{} {} in {} {}",
                f["check_id"], f["check_name"], f["file_path"], f["resource"]
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "checkov failed checks:\n{}",
        failures.join("\n")
    );
    let passed = results["passed_checks"].as_array().map_or(0, Vec::len);
    assert!(
        passed > 500,
        "only {passed} checks passed: did checkov scan the templates?"
    );

    // Suppressions as checkov saw them, with the reasons written in the templates.
    let mut per_check: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for s in results["skipped_checks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let id = s["check_id"].as_str().unwrap_or_default().to_string();
        let entry = per_check.entry(id).or_insert((0, String::new()));
        entry.0 += 1;
    }
    for (_, stacks) in render_all() {
        for stack in stacks {
            for (logical_id, resource) in stack.template["Resources"].as_object().unwrap() {
                let Some(skips) = resource
                    .pointer("/Metadata/checkov/skip")
                    .and_then(Value::as_array)
                else {
                    continue;
                };
                for skip in skips {
                    let id = skip["id"].as_str().unwrap_or_default();
                    let reason = skip["comment"].as_str().unwrap_or_default();
                    assert!(
                        reason.len() > 20,
                        "{} {logical_id}: suppression of {id} needs a written reason",
                        stack.plan.name
                    );
                    if let Some(e) = per_check.get_mut(id) {
                        e.1 = reason.to_string();
                    } else {
                        panic!("{} {logical_id}: suppression of {id} matches no check checkov ran; remove it", stack.plan.name);
                    }
                }
            }
        }
    }
    println!(
        "checkov: {passed} passed, 0 failed, {} suppressed",
        per_check.values().map(|v| v.0).sum::<usize>()
    );
    for (id, (count, reason)) in &per_check {
        println!("  {id:<12} {count:>3}  {reason}");
    }
}
