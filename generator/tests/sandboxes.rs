//! `--sandbox NAME`: two sandboxes of one environment render disjoint bundles, the longest
//! allowed name still fits every AWS limit in the rendered templates, and the command line
//! says clearly what it refuses.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{project_copy, root};

use microprocess_kit::config::sandbox::max_name_len;
use microprocess_kit::config::Project;
use microprocess_kit::render::Renderer;

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

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Properties that name a resource, with the AWS limit on each (0: no limit checked).
const NAME_PROPERTIES: [(&str, &str, usize); 11] = [
    ("AWS::Lambda::Function", "FunctionName", 64),
    ("AWS::SQS::Queue", "QueueName", 80),
    ("AWS::Scheduler::Schedule", "Name", 64),
    ("AWS::DynamoDB::Table", "TableName", 255),
    ("AWS::SNS::Topic", "TopicName", 256),
    ("AWS::KMS::Alias", "AliasName", 256),
    ("AWS::SecretsManager::Secret", "Name", 512),
    ("AWS::CloudWatch::Dashboard", "DashboardName", 255),
    ("AWS::Logs::LogGroup", "LogGroupName", 512),
    ("AWS::ECS::Cluster", "ClusterName", 255),
    ("AWS::Route53::RecordSet", "Name", 253),
];

/// Every literal resource name in a template, as (type, property, value).
fn resource_names(template: &Value) -> Vec<(String, String, String)> {
    let mut names = Vec::new();
    let resources = template["Resources"].as_object().unwrap();
    for r in resources.values() {
        let kind = r["Type"].as_str().unwrap_or_default();
        for (t, prop, _) in NAME_PROPERTIES {
            if t == kind {
                if let Some(v) = r["Properties"][prop].as_str() {
                    names.push((kind.to_string(), prop.to_string(), v.to_string()));
                }
            }
        }
    }
    names
}

fn fake_assets(dir: &Path) {
    for arch in ["x86_64", "arm64"] {
        for function in microprocess_kit::plan::FUNCTIONS {
            let d = dir.join(arch).join(function);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("bootstrap.zip"), format!("fake {function} zip")).unwrap();
        }
    }
}

#[test]
fn two_sandboxes_render_disjoint_bundles() {
    let tmp = project_copy();
    let assets = tmp.path().join("assets");
    fake_assets(&assets);
    let dist = tmp.path().join("dist");
    let generate = |args: &[&str]| {
        let mut all = vec![
            "generate",
            "--assets-dir",
            assets.to_str().unwrap(),
            "--out-dir",
            dist.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let out = microprocess(tmp.path(), &all);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let out = generate(&["--env", "sandbox", "--sandbox", "alice"]);
    assert!(
        out.starts_with("sandbox-alice: 5 stacks → dist/sandbox-alice\n"),
        "{out}"
    );
    generate(&["--env", "sandbox", "--sandbox", "bob"]);

    let mut stacks_of = Vec::new();
    let mut names_of = Vec::new();
    for (name, env) in [("alice", "sandbox-alice"), ("bob", "sandbox-bob")] {
        let bundle = dist.join(env);
        let manifest = read_json(&bundle.join("manifest.json"));
        assert_eq!(manifest["environment"], env);
        assert_eq!(manifest["tags"]["microprocess:environment"], env);
        assert_eq!(manifest["tags"]["microprocess:sandbox-of"], "sandbox");
        assert_eq!(manifest["tags"]["microprocess:expires-after-days"], "7");
        let stacks: BTreeSet<String> = manifest["stacks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            stacks,
            [
                "core",
                "service",
                "mp-abn-refresh",
                "mp-annual-report",
                "mp-credit-scores"
            ]
            .iter()
            .map(|k| format!("scores-{env}-{k}"))
            .collect()
        );
        let mut names = BTreeSet::new();
        for s in manifest["stacks"].as_array().unwrap() {
            let template = read_json(&bundle.join(s["template"].as_str().unwrap()));
            for (kind, prop, value) in resource_names(&template) {
                assert!(
                    value.contains(env) || value.contains(&format!("-{name}.")),
                    "{kind}.{prop} `{value}` does not name the sandbox"
                );
                names.insert(value);
            }
        }
        assert!(
            names.contains(&format!("scores-{env}-credit-scores-forwarder")),
            "{names:?}"
        );
        assert!(
            names.contains(&format!("scores-{name}.sandbox.dev.example.com")),
            "{names:?}"
        );
        assert!(names.len() > 20, "{names:?}");
        stacks_of.push(stacks);
        names_of.push(names);
    }
    assert!(stacks_of[0].is_disjoint(&stacks_of[1]));
    assert!(names_of[0].is_disjoint(&names_of[1]));

    // `--env` defaults to `sandbox`, and the same sandbox renders the same bundle.
    let before = std::fs::read(dist.join("sandbox-alice/manifest.json")).unwrap();
    generate(&["--sandbox", "alice"]);
    assert_eq!(
        std::fs::read(dist.join("sandbox-alice/manifest.json")).unwrap(),
        before
    );
    assert!(!dist.join("sandbox").exists());
}

#[test]
fn the_longest_sandbox_name_renders_names_within_every_aws_limit() {
    let project = Project {
        root: root(),
        host_arch: "x86_64".into(),
    };
    let (max, _) = max_name_len(&project.load("sandbox").unwrap());
    let name = format!("z{}", "9".repeat(max - 1));
    let env = project.load_instance("sandbox", Some(&name)).unwrap();
    let stacks = Renderer::load(&root().join("templates"))
        .unwrap()
        .render_environment(&env)
        .unwrap();
    let mut at_limit = Vec::new();
    for s in &stacks {
        assert!(s.plan.name.len() <= 128, "{}", s.plan.name);
        for (kind, prop, value) in resource_names(&s.template) {
            let (_, _, limit) = NAME_PROPERTIES
                .iter()
                .find(|(t, p, _)| *t == kind && *p == prop)
                .unwrap();
            assert!(
                value.len() <= *limit,
                "{kind}.{prop} `{value}` is {} characters, over {limit}",
                value.len()
            );
            if value.len() == *limit {
                at_limit.push(value);
            }
        }
    }
    assert_eq!(
        at_limit,
        [
            format!("scores-sandbox-{name}-annual-report-forwarder"),
            format!("scores-sandbox-{name}-credit-scores-forwarder")
        ]
    );
}

#[test]
fn the_command_line_says_what_it_refuses() {
    let tmp = project_copy();
    let run = |args: &[&str]| {
        let out = microprocess(tmp.path(), args);
        (
            out.status.code().unwrap(),
            text(&out.stdout),
            text(&out.stderr),
        )
    };

    let (code, out, err) = run(&["validate", "--sandbox", "alice"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "ok: `sandbox-alice` (ap-southeast-2, arm64): 3 microprocesses (abn-refresh, annual-report, credit-scores); \
         service fargate, queue host scores-queue-alice.sandbox.dev.example.com\n  \
         sandbox `alice` of `sandbox`: expires 7 days after each deploy\n"
    );

    // A protected environment: a config error, pointing at the file.
    let (code, _, err) = run(&["validate", "--env", "prod", "--sandbox", "alice"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        "\
error: `prod` is protected, so it cannot have sandboxes
 --> environments/prod.toml:6:13
  |
6 | protected = true
  |             ^^^^
  = hint: sandboxes are throw-away copies that `teardown --expired` removes; instantiate an unprotected environment with `expires_after_days`, e.g. `--env sandbox`
`prod-alice`: 1 problem found
"
    );

    // Problems of the file are reported in the file, whatever the sandbox.
    let sandbox = tmp.path().join("environments/sandbox.toml");
    let good = std::fs::read_to_string(&sandbox).unwrap();
    std::fs::write(
        &sandbox,
        good.replace("log_retention_days = 7", "log_retention_days = 8"),
    )
    .unwrap();
    let (code, _, err) = run(&["generate", "--sandbox", "alice"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--> environments/sandbox.toml:9:22\n"),
        "{err}"
    );
    std::fs::write(&sandbox, good).unwrap();

    // Bad names are usage errors (2), as clap's own are.
    let (code, _, err) = run(&["validate", "--sandbox", "Alice"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`Alice` is not a valid sandbox name: use lowercase letters, digits"),
        "{err}"
    );
    let long = "a".repeat(26);
    let (code, _, err) = run(&["generate", "--sandbox", &long]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: sandbox name `{long}` is 26 characters; sandboxes of `sandbox` take at most 25\n"
        )),
        "{err}"
    );
    for args in [
        &["generate", "--all-envs", "--sandbox", "alice"][..],
        &["teardown", "--expired", "--sandbox", "alice"],
        &["deploy"],
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }

    // A sandbox's name is not an environment's.
    let (code, _, err) = run(&["validate", "--env", "sandbox-alice"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("hint: a sandbox is named by its environment and its name: `--env sandbox --sandbox alice`"),
        "{err}"
    );

    // Deploy names the sandbox the way it was asked for.
    let (code, _, err) = run(&["deploy", "--sandbox", "alice", "--yes"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        err,
        format!(
            "error: no bundle for `sandbox-alice` at `{}`\n  hint: run `microprocess generate --env sandbox --sandbox alice` first\n",
            tmp.path().join("dist/sandbox-alice").display()
        )
    );
}

/// A sandbox's certificate check asks for the sandbox's own hosts, which the shipped
/// wildcard certificate must cover: what deploy checks is what the sandbox serves.
#[test]
fn a_sandbox_checks_its_certificate_against_its_own_hosts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let project = Project {
        root: root.to_path_buf(),
        host_arch: "x86_64".into(),
    };
    let env = project.load_instance("sandbox", Some("alice")).unwrap();
    let preflight = microprocess_kit::deploy::preflight::Preflight::of(&env).unwrap();
    let hosts: Vec<&String> = preflight
        .certificates
        .iter()
        .flat_map(|(_, hosts)| hosts)
        .collect();
    assert_eq!(
        hosts,
        [
            "scores-alice.sandbox.dev.example.com",
            "scores-queue-alice.sandbox.dev.example.com"
        ]
    );
    assert!(hosts
        .iter()
        .all(|h| microprocess_kit::deploy::preflight::covers("*.sandbox.dev.example.com", h)));
    // The shared-public layout keeps the queue host's record in the live host's zone.
    assert_eq!(preflight.private_zone_id, None);
}
