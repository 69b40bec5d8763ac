//! The rendered templates of every shipped environment: pinned as snapshots, isolated per
//! microprocess, and free of wildcard IAM actions.

use std::path::{Path, PathBuf};

use microprocess_kit::config::Project;
use microprocess_kit::render::{RenderedStack, Renderer};
use serde_json::Value;

mod common;
use common::copy_dir;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A project with the architecture fixed, so snapshots do not depend on the machine.
fn project(root: &Path) -> Project {
    Project {
        root: root.to_path_buf(),
        host_arch: "x86_64".into(),
    }
}

fn render(root: &Path, env: &str) -> Vec<RenderedStack> {
    let project = project(root);
    let env = project.load(env).unwrap_or_else(|d| panic!("{d}"));
    Renderer::load(&root.join("templates"))
        .unwrap()
        .render_environment(&env)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn environments(root: &Path) -> Vec<String> {
    project(root).environment_names().unwrap()
}

#[test]
fn every_environment_matches_its_snapshots() {
    let root = root();
    let envs = environments(&root);
    assert_eq!(envs, ["dev", "local", "prod", "sandbox", "staging"]);
    for env in envs {
        for stack in render(&root, &env) {
            let name = format!(
                "{env}__{}",
                stack.plan.template_file.trim_end_matches(".template.json")
            );
            insta::assert_snapshot!(name, stack.json);
        }
    }
}

#[test]
fn rendering_is_deterministic() {
    let root = root();
    for env in environments(&root) {
        let a: Vec<String> = render(&root, &env).into_iter().map(|s| s.json).collect();
        let b: Vec<String> = render(&root, &env).into_iter().map(|s| s.json).collect();
        assert_eq!(a, b, "{env}");
    }
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

#[test]
fn adding_a_microprocess_adds_one_stack_and_changes_no_other() {
    let root = root();
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&root.join("environments"), &tmp.path().join("environments"));
    copy_dir(&root.join("templates"), &tmp.path().join("templates"));
    let before: Vec<_> = environments(&root)
        .into_iter()
        .map(|e| (e.clone(), render(&root, &e)))
        .collect();

    let mp = tmp.path().join("environments/microprocesses.toml");
    let mut text = std::fs::read_to_string(&mp).unwrap();
    text.push_str(THIRD);
    std::fs::write(&mp, text).unwrap();

    for (env, old) in before {
        let new = render(tmp.path(), &env);
        assert_eq!(new.len(), old.len() + 1, "{env}: exactly one stack more");
        for o in &old {
            let n = new
                .iter()
                .find(|n| n.plan.name == o.plan.name)
                .unwrap_or_else(|| panic!("{env}: {} vanished", o.plan.name));
            assert!(
                n.json == o.json,
                "{env}: adding a microprocess changed {}",
                o.plan.name
            );
        }
        let added: Vec<_> = new
            .iter()
            .filter(|n| old.iter().all(|o| o.plan.name != n.plan.name))
            .collect();
        assert_eq!(added.len(), 1);
        assert_eq!(
            added[0].plan.microprocess.as_deref(),
            Some("invoice-reminders")
        );
        assert_eq!(
            added[0].plan.name,
            format!("scores-{env}-mp-invoice-reminders")
        );
    }
}

/// Every policy statement that allows something, wherever it sits (role policies, key
/// policies, bucket and topic policies).
fn allow_statements(v: &Value, path: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            if m.get("Effect") == Some(&Value::String("Allow".into())) {
                out.push((path.clone(), v.clone()));
            }
            for (k, c) in m {
                allow_statements(c, format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                allow_statements(c, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn no_policy_allows_a_wildcard_action() {
    let root = root();
    let mut checked = 0;
    for env in environments(&root) {
        for stack in render(&root, &env) {
            let mut statements = Vec::new();
            allow_statements(&stack.template, stack.plan.name.clone(), &mut statements);
            for (path, s) in statements {
                assert!(
                    s.get("NotAction").is_none(),
                    "{path}: NotAction allows everything else"
                );
                let actions = match s.get("Action") {
                    Some(Value::String(a)) => vec![a.clone()],
                    Some(Value::Array(a)) => {
                        a.iter().map(|x| x.as_str().unwrap().to_string()).collect()
                    }
                    other => panic!("{path}: action is {other:?}"),
                };
                for a in actions {
                    assert!(!a.contains('*'), "{path}: allows wildcard action `{a}`");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} actions seen");
}

#[test]
fn stateful_resources_follow_the_protection_of_their_environment() {
    let root = root();
    for env in environments(&root) {
        let protected = project(&root).load(&env).unwrap().protected;
        let want = if protected { "Retain" } else { "Delete" };
        for stack in render(&root, &env) {
            for (id, r) in stack.template["Resources"].as_object().unwrap() {
                let ty = r["Type"].as_str().unwrap();
                let stateful = matches!(
                    ty,
                    "AWS::DynamoDB::Table"
                        | "AWS::S3::Bucket"
                        | "AWS::KMS::Key"
                        | "AWS::SecretsManager::Secret"
                        | "AWS::SQS::Queue"
                        | "AWS::Logs::LogGroup"
                );
                if stateful {
                    assert_eq!(r["DeletionPolicy"], want, "{env} {id}");
                    assert_eq!(r["UpdateReplacePolicy"], want, "{env} {id}");
                }
            }
        }
    }
}

#[test]
fn every_taggable_resource_carries_the_kit_tags() {
    let root = root();
    for env in environments(&root) {
        for stack in render(&root, &env) {
            for (id, r) in stack.template["Resources"].as_object().unwrap() {
                let Some(tags) = r["Properties"].get("Tags") else {
                    continue;
                };
                let keys: Vec<&str> = tags
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["Key"].as_str().unwrap())
                    .collect();
                for k in [
                    "microprocess:environment",
                    "microprocess:kit-version",
                    "microprocess:service",
                ] {
                    assert!(keys.contains(&k), "{env} {id} lacks {k}");
                }
                if stack.plan.microprocess.is_some() {
                    assert!(keys.contains(&"microprocess:name"), "{env} {id}");
                }
            }
        }
    }
}

/// Properties the emulator drops (PITR, TTL, architecture) are asserted on the templates.
#[test]
fn properties_the_emulator_cannot_show() {
    let root = root();
    let prod = render(&root, "prod");
    let core = &prod[0].template["Resources"];
    let table = &core["LedgerTable"]["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(table["SSESpecification"]["SSEType"], "KMS");
    assert_eq!(table["TimeToLiveSpecification"]["Enabled"], true);
    let mp = prod
        .iter()
        .find(|s| s.plan.microprocess.as_deref() == Some("credit-scores"))
        .unwrap();
    let r = &mp.template["Resources"];
    assert_eq!(r["Forwarder"]["Properties"]["Architectures"][0], "arm64");
    assert_eq!(
        r["ForwarderQueueMapping"]["Properties"]["FunctionResponseTypes"][0],
        "ReportBatchItemFailures"
    );
    assert_eq!(
        r["ForwarderQueueMapping"]["Properties"]["ScalingConfig"]["MaximumConcurrency"],
        200
    );
    assert_eq!(
        r["Forwarder"]["Properties"]["ReservedConcurrentExecutions"],
        200
    );
    // One receive more than max_attempts (5): a cut-off last attempt is recorded FAILED.
    assert_eq!(
        r["Queue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"],
        6
    );
    let forwarder_timeout = r["Forwarder"]["Properties"]["Timeout"].as_u64().unwrap();
    assert!(
        r["Queue"]["Properties"]["VisibilityTimeout"]
            .as_u64()
            .unwrap()
            >= 6 * forwarder_timeout
    );
    assert!(
        r["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]
            .as_u64()
            .unwrap()
            > r["Queue"]["Properties"]["MessageRetentionPeriod"]
                .as_u64()
                .unwrap()
    );
    assert_eq!(
        r["Schedule"]["Properties"]["ScheduleExpressionTimezone"],
        "Australia/Sydney"
    );
    let service = &prod[1].template["Resources"];
    assert_eq!(service["QueueAlb"]["Properties"]["Scheme"], "internal");
    let idle = service["QueueAlb"]["Properties"]["LoadBalancerAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["Key"] == "idle_timeout.timeout_seconds")
        .unwrap()["Value"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(idle >= forwarder_timeout);
    assert_eq!(
        service["PublicHttpsListener"]["Properties"]["SslPolicy"],
        "ELBSecurityPolicy-TLS13-1-2-2021-06"
    );
}

/// What a deploy would give each `Ref` of a function's variables, shaped as AWS gives it.
fn deployed(logical_id: &str) -> String {
    match logical_id {
        "Queue" => "https://sqs.ap-southeast-2.amazonaws.com/333333333333/scores-prod-q".into(),
        "DeadLetterQueue" => {
            "https://sqs.ap-southeast-2.amazonaws.com/333333333333/scores-prod-dlq".into()
        }
        "SigningSecretArn" => {
            "arn:aws:secretsmanager:ap-southeast-2:333333333333:secret:signing-AbCdEf".into()
        }
        "LedgerTableName" => "scores-prod-ledger".into(),
        "BucketName" => "scores-prod-assets".into(),
        "Callback" => "scores-prod-annual-report-callback".into(),
        "AlarmTopicArn" => {
            "arn:aws:sns:ap-southeast-2:333333333333:scores-prod-microprocess-alarms".into()
        }
        other => panic!("a function variable refers to `{other}`, which this test does not know"),
    }
}

/// The one contract between templates and functions: every function's rendered
/// `Environment` reads back through the function's own settings loader.
#[test]
fn every_function_environment_reads_back_into_its_settings() {
    use microprocess_shared::settings::{ForwarderSettings, SplitterSettings};
    let root = root();
    for env in environments(&root) {
        for stack in render(&root, &env) {
            let template: Value = serde_json::from_str(&stack.json).unwrap();
            let Some(resources) = template["Resources"].as_object() else {
                continue;
            };
            for (id, resource) in resources {
                if resource["Type"] != "AWS::Lambda::Function" {
                    continue;
                }
                let variables = resource["Properties"]["Environment"]["Variables"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{env} {id}: no variables"));
                let value = |name: &str| -> Option<String> {
                    match variables.get(name)? {
                        Value::String(s) => Some(s.clone()),
                        other => Some(deployed(other["Ref"].as_str().unwrap_or_default())),
                    }
                };
                let read = match id.as_str() {
                    "Splitter" => SplitterSettings::from_lookup(value).map(|_| ()),
                    "Forwarder" => ForwarderSettings::from_lookup(value).map(|s| {
                        assert_eq!(
                            s.lease.is_some(),
                            s.callback_function.is_some(),
                            "{env} {id}"
                        );
                        assert!(s.callback_url.is_none(), "{env} {id}: read at start");
                    }),
                    "Callback" => ForwarderSettings::from_lookup(value).map(|s| {
                        assert!(
                            s.lease.is_some() && s.callback_function.is_none(),
                            "{env} {id}"
                        );
                    }),
                    other => panic!("{env}: a function `{other}` this test does not know"),
                };
                read.unwrap_or_else(|e| panic!("{env} {id}: {e}"));
            }
        }
    }
}

/// Callback completion's function URL: what the emulator cannot show of it (it enforces
/// no resource policy), in every environment.
#[test]
fn the_callback_is_a_function_url_open_to_signed_reports_only() {
    let root = root();
    for env in environments(&root) {
        for stack in render(&root, &env) {
            let r = &stack.template["Resources"];
            let callback = stack.plan.microprocess.as_deref() == Some("annual-report");
            assert_eq!(
                r.get("Callback").is_some(),
                callback,
                "{env} {}",
                stack.plan.name
            );
            assert_eq!(r.get("CallbackUrl").is_some(), callback);
            if !callback {
                continue;
            }
            let url = &r["CallbackUrl"]["Properties"];
            assert_eq!(
                url["AuthType"], "NONE",
                "{env}: services sign reports; the function checks"
            );
            assert_eq!(url["TargetFunctionArn"]["Fn::GetAtt"][0], "Callback");
            // Since October 2025 a new function URL needs both permissions.
            let url_permission = &r["CallbackUrlPermission"]["Properties"];
            assert_eq!(url_permission["Action"], "lambda:InvokeFunctionUrl");
            assert_eq!(url_permission["FunctionUrlAuthType"], "NONE");
            let invoke = &r["CallbackInvokePermission"]["Properties"];
            assert_eq!(invoke["Action"], "lambda:InvokeFunction");
            assert_eq!(
                invoke["InvokedViaFunctionUrl"], true,
                "{env}: only through the URL"
            );
            let function = &r["Callback"]["Properties"];
            assert!(function["ReservedConcurrentExecutions"].as_u64().unwrap() >= 2);
            // The forwarder reads its callback's URL at start, with its own permission.
            let variables = &r["Forwarder"]["Properties"]["Environment"]["Variables"];
            assert_eq!(variables["CALLBACK_FUNCTION"]["Ref"], "Callback");
            assert!(r["Callback"]["Properties"]["Environment"]["Variables"]
                .get("CALLBACK_FUNCTION")
                .is_none());
            // The forwarder closes leases; the callback records and queues the reduce.
            let forwarder_policy =
                r["ForwarderRole"]["Properties"]["Policies"][0]["PolicyDocument"].to_string();
            assert!(forwarder_policy.contains("dynamodb:DeleteItem"));
            assert!(forwarder_policy.contains("lambda:GetFunctionUrlConfig"));
            let callback_policy =
                r["CallbackRole"]["Properties"]["Policies"][0]["PolicyDocument"].to_string();
            for action in [
                "dynamodb:DeleteItem",
                "dynamodb:UpdateItem",
                "sqs:SendMessage",
                "secretsmanager:GetSecretValue",
            ] {
                assert!(
                    callback_policy.contains(action),
                    "{env}: the callback needs {action}"
                );
            }
            assert!(
                !callback_policy.contains("sqs:ReceiveMessage"),
                "{env}: the callback consumes nothing"
            );
            assert_eq!(
                stack.template["Outputs"]["CallbackReportUrl"]["Value"]["Fn::Sub"],
                "${CallbackUrl.FunctionUrl}report"
            );
        }
    }
}
