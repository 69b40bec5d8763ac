//! The rendered templates of every shipped environment: pinned as snapshots, isolated per
//! microprocess, and free of wildcard IAM actions.

use std::path::{Path, PathBuf};

use microprocess_kit::config::Project;
use microprocess_kit::plan::ParameterSource;
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
        // A failed first create removes what it made (RetainExceptOnCreate): kept under its
        // fixed name, it would fail the next create with "already exists".
        let (deletion, replace) = if protected {
            ("RetainExceptOnCreate", "Retain")
        } else {
            ("Delete", "Delete")
        };
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
                    assert_eq!(r["DeletionPolicy"], deletion, "{env} {id}");
                    assert_eq!(r["UpdateReplacePolicy"], replace, "{env} {id}");
                }
            }
        }
    }
}

/// Nothing a first create makes may refuse that create's rollback: a deletion-protected
/// load balancer or table ends it `ROLLBACK_FAILED`. Protection comes from the
/// `DeletionProtection` parameter, which deploy sets to "false" for the create and to
/// "true" from the update that follows it.
#[test]
fn no_resource_blocks_the_rollback_of_a_first_create() {
    let root = root();
    for env in environments(&root) {
        let protected = project(&root).load(&env).unwrap().protected;
        for stack in render(&root, &env) {
            let t = &stack.template;
            let has_param = t["Parameters"].get("DeletionProtection").is_some();
            let planned = stack.plan.parameters.iter().any(|(n, s)| {
                n == "DeletionProtection" && *s == ParameterSource::DeletionProtection
            });
            assert_eq!(has_param, planned, "{env} {}", stack.plan.name);
            if has_param {
                assert!(
                    protected,
                    "{env}: only protected environments arm protection"
                );
                assert_eq!(t["Parameters"]["DeletionProtection"]["Default"], "false");
            }
            for (id, r) in t["Resources"].as_object().unwrap() {
                let p = &r["Properties"];
                match r["Type"].as_str().unwrap() {
                    "AWS::ElasticLoadBalancingV2::LoadBalancer" => {
                        let attr = p["LoadBalancerAttributes"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|a| a["Key"] == "deletion_protection.enabled")
                            .unwrap();
                        if protected {
                            assert_eq!(
                                attr["Value"],
                                serde_json::json!({"Ref": "DeletionProtection"}),
                                "{env} {id}"
                            );
                        } else {
                            assert_eq!(attr["Value"], "false", "{env} {id}");
                        }
                    }
                    "AWS::DynamoDB::Table" => {
                        let v = &p["DeletionProtectionEnabled"];
                        if protected {
                            assert_eq!(
                                *v,
                                serde_json::json!({"Fn::If": ["DeletionProtected", true, false]}),
                                "{env} {id}"
                            );
                            assert_eq!(
                                t["Conditions"]["DeletionProtected"],
                                serde_json::json!({"Fn::Equals": [{"Ref": "DeletionProtection"}, "true"]})
                            );
                        } else {
                            assert_eq!(*v, false, "{env} {id}");
                        }
                    }
                    // Other types with a switch that refuses deletion; the kit makes none.
                    "AWS::RDS::DBInstance" | "AWS::RDS::DBCluster" | "AWS::EC2::Instance" => {
                        panic!(
                            "{env} {id}: a type with deletion protection the test does not check"
                        )
                    }
                    _ => {}
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

/// Every security group declares its egress: one without `SecurityGroupEgress` keeps
/// AWS's default allow-all, whatever separate egress resources add.
#[test]
fn every_security_group_declares_its_egress() {
    let root = root();
    for env in environments(&root) {
        for stack in render(&root, &env) {
            for (id, r) in stack.template["Resources"].as_object().unwrap() {
                assert_ne!(
                    r["Type"], "AWS::EC2::SecurityGroupEgress",
                    "{env} {id}: inline it"
                );
                if r["Type"] == "AWS::EC2::SecurityGroup" {
                    let egress = r["Properties"]["SecurityGroupEgress"].as_array();
                    assert!(egress.is_some_and(|e| !e.is_empty()), "{env} {id}");
                }
            }
        }
    }
}

/// The private subnets reach AWS: with `egress = "vpc-endpoints"` the service stack holds
/// gateway endpoints for S3 and DynamoDB on the given route tables and an interface
/// endpoint for every other API the functions and tasks call; with `nat` it holds none
/// (deploy checks the routes, `tests/preflight.rs`).
#[test]
fn private_subnets_reach_aws_through_endpoints_or_a_nat() {
    let root = root();
    let mut seen = std::collections::BTreeSet::new();
    for env in environments(&root) {
        let loaded = project(&root).load(&env).unwrap();
        let microprocess_kit::config::model::Service::Fargate(f) = &loaded.service else {
            continue;
        };
        let stacks = render(&root, &env);
        let service = stacks
            .iter()
            .find(|s| s.plan.name.ends_with("-service"))
            .unwrap();
        let r = service.template["Resources"].as_object().unwrap();
        let endpoints: Vec<(&String, &Value)> = r
            .iter()
            .filter(|(_, v)| v["Type"] == "AWS::EC2::VPCEndpoint")
            .collect();
        match f.network.egress {
            microprocess_kit::config::model::Egress::Nat => {
                seen.insert("nat");
                assert!(endpoints.is_empty(), "{env}");
            }
            microprocess_kit::config::model::Egress::VpcEndpoints => {
                seen.insert("vpc-endpoints");
                let services: Vec<String> = endpoints
                    .iter()
                    .map(|(_, v)| {
                        v["Properties"]["ServiceName"]["Fn::Sub"]
                            .as_str()
                            .unwrap()
                            .trim_start_matches("com.amazonaws.${AWS::Region}.")
                            .to_string()
                    })
                    .collect();
                for needed in [
                    "s3",
                    "dynamodb",
                    "sqs",
                    "secretsmanager",
                    "lambda",
                    "sns",
                    "logs",
                    "ecr.api",
                    "ecr.dkr",
                ] {
                    assert!(
                        services.iter().any(|s| s == needed),
                        "{env}: no {needed} endpoint"
                    );
                }
                for (id, v) in &endpoints {
                    let p = &v["Properties"];
                    if p["VpcEndpointType"] == "Gateway" {
                        assert_eq!(
                            p["RouteTableIds"],
                            serde_json::json!(f.network.private_route_table_ids),
                            "{env} {id}"
                        );
                    } else {
                        assert_eq!(p["PrivateDnsEnabled"], true, "{env} {id}");
                        assert_eq!(
                            p["SubnetIds"],
                            serde_json::json!(f.private_subnet_ids),
                            "{env} {id}"
                        );
                        assert_eq!(p["SecurityGroupIds"][0]["Ref"], "EndpointsSecurityGroup");
                    }
                }
                let sg = &r["EndpointsSecurityGroup"]["Properties"];
                let sources: Vec<&Value> = sg["SecurityGroupIngress"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| &i["SourceSecurityGroupId"]["Ref"])
                    .collect();
                assert_eq!(sources, ["FunctionsSecurityGroup", "TasksSecurityGroup"]);
            }
        }
    }
    assert_eq!(seen.len(), 2, "the shipped environments show both choices");
}

/// The internal queue ALB's record goes to the private zone, never the live host's public
/// one; each listener carries the certificate of its host.
#[test]
fn the_internal_queue_host_lives_in_a_private_zone_with_its_certificate() {
    let root = root();
    for env in environments(&root) {
        let loaded = project(&root).load(&env).unwrap();
        let microprocess_kit::config::model::Service::Fargate(f) = &loaded.service else {
            continue;
        };
        let stacks = render(&root, &env);
        let service = stacks
            .iter()
            .find(|s| s.plan.name.ends_with("-service"))
            .unwrap();
        let r = &service.template["Resources"];
        let queue_zone = &r["QueueDnsRecord"]["Properties"]["HostedZoneId"];
        assert_eq!(
            r["LiveDnsRecord"]["Properties"]["HostedZoneId"],
            f.hosted_zone_id.as_str()
        );
        if f.layout == microprocess_kit::config::model::AlbLayout::InternalQueue {
            assert_ne!(*queue_zone, f.hosted_zone_id.as_str(), "{env}");
            assert_eq!(*queue_zone, f.queue_hosted_zone_id.as_str(), "{env}");
            assert_eq!(
                r["QueueHttpsListener"]["Properties"]["Certificates"][0]["CertificateArn"],
                f.queue_certificate_arn.as_str()
            );
        } else {
            assert_eq!(*queue_zone, f.hosted_zone_id.as_str(), "{env}");
        }
    }
}

/// The containers keep a read-only root filesystem but can write `/tmp`, take the
/// service's own variables and secrets, and the execution role reads exactly those secrets.
#[test]
fn the_service_can_be_itself() {
    let root = root();
    for env in ["dev", "prod", "sandbox", "staging"] {
        let stacks = render(&root, env);
        let service = stacks
            .iter()
            .find(|s| s.plan.name.ends_with("-service"))
            .unwrap();
        let r = &service.template["Resources"];
        for side in ["Live", "Queue"] {
            let td = &r[format!("{side}TaskDefinition")]["Properties"];
            let container = &td["ContainerDefinitions"][0];
            assert_eq!(container["ReadonlyRootFilesystem"], true);
            let mounts = container["MountPoints"].as_array().unwrap();
            assert_eq!(mounts[0]["ContainerPath"], "/tmp", "{env} {side}");
            assert_eq!(td["Volumes"][0]["Name"], mounts[0]["SourceVolume"]);
        }
    }
    let prod = render(&root, "prod");
    let r = &prod[1].template["Resources"];
    let container = &r["QueueTaskDefinition"]["Properties"]["ContainerDefinitions"][0];
    assert!(container["Environment"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"Name": "LOG_LEVEL", "Value": "info"})));
    let parameter = "arn:aws:ssm:ap-southeast-2:333333333333:parameter/scores/database-url";
    assert!(container["Secrets"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"Name": "DATABASE_URL", "ValueFrom": parameter})));
    let statements = r["TaskExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"]
        .as_array()
        .unwrap();
    let inject = statements
        .iter()
        .find(|s| s["Sid"] == "InjectServiceParameters")
        .unwrap();
    assert_eq!(inject["Action"], "ssm:GetParameters");
    assert_eq!(inject["Resource"], serde_json::json!([parameter]));
    let groups = &r["QueueService"]["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
        ["SecurityGroups"];
    assert_eq!(groups[1], "sg-0c1b2c3d4e5f60031");
    let task_policies = r["TaskRole"]["Properties"]["Policies"].as_array().unwrap();
    let own = task_policies
        .iter()
        .find(|p| p["PolicyName"] == "service-statements")
        .unwrap();
    assert_eq!(
        own["PolicyDocument"]["Statement"][0]["Action"],
        serde_json::json!(["dynamodb:GetItem", "dynamodb:Query"])
    );
}

/// The queue alarm fires on a queue that stopped draining, not on old messages, which a
/// large healthy run has by design.
#[test]
fn the_queue_alarm_fires_on_a_stall_not_on_age() {
    let root = root();
    for env in environments(&root) {
        for stack in render(&root, &env) {
            let Some(r) = stack.template["Resources"].as_object() else {
                continue;
            };
            assert!(
                r.values()
                    .all(|v| v["Properties"]["MetricName"] != "ApproximateAgeOfOldestMessage"),
                "{env}"
            );
            if stack.plan.microprocess.is_none() {
                continue;
            }
            let alarm = &r["QueueStalledAlarm"]["Properties"];
            let stalled = alarm["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["ReturnData"] == true)
                .unwrap();
            assert_eq!(
                stalled["Expression"],
                "IF(visible + held > 0 AND delivered == 0, 1, 0)"
            );
            let periods = alarm["EvaluationPeriods"].as_u64().unwrap();
            let visibility = r["Queue"]["Properties"]["VisibilityTimeout"]
                .as_u64()
                .unwrap();
            assert!(
                periods * 300 >= 2 * visibility.min(43_200),
                "{env}: the window outlasts a retry"
            );
            assert_eq!(alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"]);
        }
    }
}
