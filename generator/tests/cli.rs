//! The `microprocess` binary end to end, on a copy of the shipped project: what it prints,
//! its exit codes, and what `generate` writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
fn validate_prints_a_summary_of_a_valid_environment() {
    let tmp = project_copy();
    let out = microprocess(tmp.path(), &["validate", "--env", "prod"]);
    assert_eq!(
        text(&out.stdout),
        "ok: `prod` (ap-southeast-2, arm64, protected): 3 microprocesses (abn-refresh, annual-report, credit-scores); \
         service fargate, queue host scores-queue.example.com\n"
    );
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
}

/// `--output json` (docs/json-output.md): one document on stdout, nothing else, the same
/// exit codes.
#[test]
fn validate_reports_as_json() {
    let tmp = project_copy();
    let out = microprocess(
        tmp.path(),
        &["--output", "json", "validate", "--env", "prod"],
    );
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({
            "command": "validate",
            "environments": [{
                "name": "prod",
                "ok": true,
                "region": "ap-southeast-2",
                "architecture": "arm64",
                "protected": true,
                "microprocesses": ["abn-refresh", "annual-report", "credit-scores"],
                "service": {"name": "scores", "mode": "fargate", "queue_base_url": "https://scores-queue.example.com"},
                "sandbox_of": null,
                "problems": []
            }]
        })
    );

    let prod = tmp.path().join("environments/prod.toml");
    let before = std::fs::read_to_string(&prod).unwrap();
    std::fs::write(
        &prod,
        before.replacen("max_concurrency = 200", "max_concurrency = 5000", 1),
    )
    .unwrap();
    let out = microprocess(
        tmp.path(),
        &["validate", "--env", "prod", "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "", "the problems are in the document");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let env = &report["environments"][0];
    assert_eq!(env["ok"], false);
    assert_eq!(env["microprocesses"], serde_json::json!([]));
    assert!(env.get("region").is_none());
    assert_eq!(
        env["problems"][0],
        serde_json::json!({
            "message": "`credit-scores.delivery.max_concurrency` must be between 2 and 1000, got `5000`",
            "location": "environments/prod.toml:75:19",
            "hint": "the event source mapping's MaximumConcurrency is 2 to 1000"
        })
    );
}

#[test]
fn validate_prints_each_problem_with_its_place_and_exits_1() {
    let tmp = project_copy();
    let prod = tmp.path().join("environments/prod.toml");
    let before = std::fs::read_to_string(&prod).unwrap();
    let after = before.replacen("max_concurrency = 200", "max_concurrency = 5000", 1);
    assert_ne!(before, after);
    std::fs::write(&prod, after).unwrap();

    let out = microprocess(tmp.path(), &["validate", "--env", "prod"]);
    assert_eq!(
        text(&out.stderr),
        "\
error: `credit-scores.delivery.max_concurrency` must be between 2 and 1000, got `5000`
  --> environments/prod.toml:75:19
   |
75 | max_concurrency = 5000
   |                   ^^^^
   = hint: the event source mapping's MaximumConcurrency is 2 to 1000
`prod`: 1 problem found
"
    );
    assert_eq!(text(&out.stdout), "");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn validate_suggests_the_closest_environment_name() {
    let tmp = project_copy();
    let out = microprocess(tmp.path(), &["validate", "--env", "prd"]);
    assert_eq!(
        text(&out.stderr),
        "\
error: unknown environment `prd`
 = hint: did you mean `prod`? (environments: `dev`, `local`, `prod`, `sandbox`, `staging`)
`prd`: 1 problem found
"
    );
    assert_eq!(out.status.code(), Some(1));
}

/// Every file under `dir`, by path relative to it.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(base).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn generate_writes_the_bundle_and_is_byte_for_byte_repeatable() {
    let tmp = project_copy();
    // `local` builds for the host; fake zips for both architectures keep this machine-neutral.
    let assets = tmp.path().join("assets");
    for arch in ["x86_64", "arm64"] {
        for function in microprocess_kit::plan::FUNCTIONS {
            let dir = assets.join(arch).join(function);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("bootstrap.zip"),
                format!("fake {function} zip for {arch}"),
            )
            .unwrap();
        }
    }
    let dist = tmp.path().join("dist");
    let args = [
        "generate",
        "--env",
        "local",
        "--assets-dir",
        assets.to_str().unwrap(),
        "--out-dir",
        dist.to_str().unwrap(),
    ];

    let first = microprocess(tmp.path(), &args);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let bundle = dist.join("local");
    let written = files(&bundle);
    let names: Vec<String> = written
        .keys()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    for expected in [
        "core.template.json",
        "mp-credit-scores.template.json",
        "mp-abn-refresh.template.json",
        "manifest.json",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    let zips: Vec<&String> = names.iter().filter(|n| n.starts_with("assets/")).collect();
    assert_eq!(
        zips.len(),
        microprocess_kit::plan::FUNCTIONS.len(),
        "{names:?}"
    );
    let arch = microprocess_kit::config::host_architecture();
    for function in microprocess_kit::plan::FUNCTIONS {
        let zip = zips
            .iter()
            .find(|n| n.starts_with(&format!("assets/{function}-{arch}-")) && n.ends_with(".zip"))
            .unwrap_or_else(|| panic!("no {function} zip in {names:?}"));
        assert_eq!(
            written[Path::new(zip.as_str())],
            format!("fake {function} zip for {arch}").into_bytes()
        );
    }
    assert_eq!(
        names.len(),
        8,
        "three zips, the core, three microprocesses, the manifest: {names:?}"
    );

    let second = microprocess(tmp.path(), &args);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    let rewritten = files(&bundle);
    assert_eq!(
        rewritten.keys().collect::<Vec<_>>(),
        written.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &written {
        assert!(
            rewritten[path] == *bytes,
            "{} differs between two runs",
            path.display()
        );
    }
}

/// `generate --output json` (docs/json-output.md, "generate"): each bundle with its
/// stacks as the manifest has them, and nothing else on stdout.
#[test]
fn generate_reports_as_json() {
    let tmp = project_copy();
    let assets = tmp.path().join("assets");
    for function in microprocess_kit::plan::FUNCTIONS {
        let dir = assets.join("arm64").join(function);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bootstrap.zip"), format!("fake {function} zip")).unwrap();
    }
    let out = microprocess(
        tmp.path(),
        &[
            "--output",
            "json",
            "generate",
            "--env",
            "prod",
            "--assets-dir",
            assets.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["command"], "generate");
    let bundle = &report["environments"][0];
    let keys: Vec<&String> = bundle.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "dir", "milliseconds", "stacks", "assets"]);
    assert_eq!(bundle["name"], "prod");
    let dir = std::path::Path::new(bundle["dir"].as_str().unwrap());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let stacks = bundle["stacks"].as_array().unwrap();
    assert_eq!(stacks.len(), manifest["stacks"].as_array().unwrap().len());
    for (s, m) in stacks.iter().zip(manifest["stacks"].as_array().unwrap()) {
        assert_eq!(s["name"], m["name"]);
        assert_eq!(s["sha256"], m["template_sha256"]);
        assert_eq!(s["bytes"], m["template_bytes"]);
        assert!(dir.join(s["template"].as_str().unwrap()).is_file());
    }
    assert_eq!(stacks[0]["kind"], "core");
    assert_eq!(stacks[1]["kind"], "service");
    assert!(
        !dir.with_file_name("prod.partial").exists(),
        "the staging folder is gone"
    );
}
