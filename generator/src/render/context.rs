//! The values a template sees. Templates only place values; every name and derived number
//! is computed here, once, so templates stay readable CloudFormation.

use serde_json::{json, Value};

use crate::config::model::{
    AlbLayout, Egress, EgressDestination, Environment, FargateService, Microprocess, Service,
};
use crate::plan::{self, StackPlan};
use crate::KIT_VERSION;

/// Tags on every resource that takes them; also the stack tags at deploy time.
pub fn base_tags(env: &Environment) -> Vec<(String, String)> {
    let mut tags = vec![
        ("microprocess:environment".to_string(), env.name.clone()),
        (
            "microprocess:kit-version".to_string(),
            KIT_VERSION.to_string(),
        ),
        (
            "microprocess:service".to_string(),
            env.service.name().to_string(),
        ),
    ];
    if let Some(days) = env.expires_after_days {
        tags.push((
            "microprocess:expires-after-days".to_string(),
            days.to_string(),
        ));
    }
    if let Some(s) = &env.sandbox {
        tags.push((
            crate::config::sandbox::SANDBOX_OF_TAG.to_string(),
            s.of.clone(),
        ));
    }
    tags
}

fn tag_list(tags: &[(String, String)]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// The account that delivers ALB access logs in regions older than August 2022; newer
/// regions use the `logdelivery.elasticloadbalancing.amazonaws.com` service principal.
pub fn elb_log_account(region: &str) -> Option<&'static str> {
    Some(match region {
        "us-east-1" => "127311923021",
        "us-east-2" => "033677994240",
        "us-west-1" => "027434742980",
        "us-west-2" => "797873946194",
        "af-south-1" => "098369216593",
        "ap-east-1" => "754344448648",
        "ap-southeast-3" => "589379963580",
        "ap-south-1" => "718504428378",
        "ap-northeast-3" => "383597477331",
        "ap-northeast-2" => "600734575887",
        "ap-southeast-1" => "114774131450",
        "ap-southeast-2" => "783225319266",
        "ap-northeast-1" => "582318560864",
        "ca-central-1" => "985666609251",
        "eu-central-1" => "054676820928",
        "eu-west-1" => "156460612806",
        "eu-west-2" => "652711504416",
        "eu-south-1" => "635631232127",
        "eu-west-3" => "009996457667",
        "eu-north-1" => "897822967062",
        "me-south-1" => "076674570225",
        "sa-east-1" => "507241528517",
        _ => return None,
    })
}

fn common(env: &Environment, stack: &StackPlan) -> serde_json::Map<String, Value> {
    let mut c = serde_json::Map::new();
    c.insert(
        "env".into(),
        serde_json::to_value(env).unwrap_or(Value::Null),
    );
    c.insert("prefix".into(), json!(plan::prefix(env)));
    c.insert("kit_version".into(), json!(KIT_VERSION));
    c.insert(
        "stack".into(),
        serde_json::to_value(stack).unwrap_or(Value::Null),
    );
    // A protected environment keeps its data when a stack is deleted or a resource replaced,
    // but a failed first create removes what it made: a resource kept then, under its fixed
    // name, would make the next create fail with "already exists".
    c.insert(
        "deletion_policy".into(),
        json!(if env.protected {
            "RetainExceptOnCreate"
        } else {
            "Delete"
        }),
    );
    c.insert(
        "replace_policy".into(),
        json!(if env.protected { "Retain" } else { "Delete" }),
    );
    c.insert(
        "fargate".into(),
        json!(matches!(env.service, Service::Fargate(_))),
    );
    c.insert("queue_base_url".into(), json!(env.service.queue_base_url()));
    // The local environment deploys to the emulator, which crashes on a few properties
    // AWS takes; templates leave those out there (the README lists them).
    c.insert("emulator".into(), json!(crate::aws::is_local(&env.name)));
    c.insert("tags".into(), tag_list(&base_tags(env)));
    c.insert(
        "stateful_tags".into(),
        tag_list(
            &[
                base_tags(env),
                vec![("microprocess:stateful".into(), "true".into())],
            ]
            .concat(),
        ),
    );
    c.insert(
        "parameters".into(),
        Value::Array(stack.parameters.iter().map(|(n, _)| json!(n)).collect()),
    );
    c
}

/// Retention steps of the results bucket's lifecycle rules. A result object is tagged with
/// the smallest step at least its microprocess's `results.retention_days`.
pub const RESULTS_EXPIRY_LADDER: [u32; 11] = [1, 7, 30, 90, 180, 365, 400, 730, 1095, 1825, 3650];

pub fn results_expiry_step(retention_days: u32) -> u32 {
    RESULTS_EXPIRY_LADDER
        .iter()
        .copied()
        .find(|d| *d >= retention_days)
        .unwrap_or(3650)
}

pub fn core(env: &Environment, stack: &StackPlan) -> Value {
    let mut c = common(env, stack);
    c.insert("results_expiry_ladder".into(), json!(RESULTS_EXPIRY_LADDER));
    c.insert(
        "elb_log_account".into(),
        json!(elb_log_account(&env.region)),
    );
    c.insert(
        "dashboard_body".into(),
        json!(dashboard_body(&plan::prefix(env))),
    );
    c.insert(
        "kms_pending_window_days".into(),
        json!(if env.protected { 30 } else { 7 }),
    );
    Value::Object(c)
}

/// The dashboard as the `Fn::Sub` string CloudWatch takes. Searches match the name prefix,
/// so every microprocess of the environment appears, present and future.
fn dashboard_body(prefix: &str) -> String {
    let widget = |title: &str, y: u32, x: u32, search: String, stat: &str| {
        json!({
            "type": "metric", "x": x, "y": y, "width": 12, "height": 6,
            "properties": {
                "title": title, "region": "${AWS::Region}", "view": "timeSeries", "stacked": false,
                "metrics": [[{"expression": format!("SEARCH('{search}', '{stat}', 60)"), "id": "e1", "label": ""}]]
            }
        })
    };
    let sqs = |metric: &str| format!("{{AWS/SQS,QueueName}} MetricName=\"{metric}\" {prefix}");
    let lambda =
        |metric: &str| format!("{{AWS/Lambda,FunctionName}} MetricName=\"{metric}\" {prefix}");
    let body = json!({"widgets": [
        widget("Messages waiting (queues and dead-letter queues)", 0, 0, sqs("ApproximateNumberOfMessagesVisible"), "Maximum"),
        widget("Age of oldest message (s)", 0, 12, sqs("ApproximateAgeOfOldestMessage"), "Maximum"),
        widget("Messages in flight", 6, 0, sqs("ApproximateNumberOfMessagesNotVisible"), "Maximum"),
        widget("Function errors", 6, 12, lambda("Errors"), "Sum"),
        widget("Function throttles", 12, 0, lambda("Throttles"), "Sum"),
        widget("Function concurrency", 12, 12, lambda("ConcurrentExecutions"), "Maximum"),
        widget("Ledger write units", 18, 0, format!("{{AWS/DynamoDB,TableName}} MetricName=\"ConsumedWriteCapacityUnits\" {prefix}-ledger"), "Sum"),
        widget("Ledger throttled requests", 18, 12, format!("{{AWS/DynamoDB,TableName,Operation}} MetricName=\"ThrottledRequests\" {prefix}-ledger"), "Sum"),
    ]});
    serde_json::to_string(&body).unwrap_or_default()
}

pub fn service(env: &Environment, stack: &StackPlan) -> Value {
    let mut c = common(env, stack);
    if let Service::Fargate(f) = &env.service {
        c.insert("svc".into(), serde_json::to_value(f).unwrap_or(Value::Null));
        let internal = f.layout == AlbLayout::InternalQueue;
        c.insert(
            "queue_alb".into(),
            json!(if internal { "QueueAlb" } else { "PublicAlb" }),
        );
        c.insert(
            "queue_listener".into(),
            json!(if internal {
                "QueueHttpsListener"
            } else {
                "PublicHttpsListener"
            }),
        );
        // On a shared ALB the queue host's long requests set the idle timeout for both.
        let public_idle = if internal {
            60
        } else {
            f.queue_idle_timeout_seconds
        };
        c.insert(
            "public_idle_timeout_seconds".into(),
            json!(public_idle.to_string()),
        );
        c.insert(
            "queue_deregistration_delay".into(),
            json!(f.queue_idle_timeout_seconds.min(3600).to_string()),
        );
        service_access(&mut c, f);
        c.insert(
            "cpu_architecture".into(),
            json!(if env.architecture == "arm64" {
                "ARM64"
            } else {
                "X86_64"
            }),
        );
    }
    Value::Object(c)
}

/// Interface endpoints the private subnets need with `egress = "vpc-endpoints"`: the
/// functions call SQS, Secrets Manager, Lambda (the hand-off, the callback's URL) and SNS
/// (announcements); Fargate pulls from ECR and writes logs. S3 and DynamoDB go through
/// gateway endpoints; KMS is called by those services, not by the kit.
pub const INTERFACE_ENDPOINTS: [&str; 7] = [
    "ecr.api",
    "ecr.dkr",
    "lambda",
    "logs",
    "secretsmanager",
    "sns",
    "sqs",
];

/// `arn:…:secret:name-AbCdEf` of a `ValueFrom` that may name a JSON key after it.
fn secret_arn(value_from: &str) -> String {
    value_from.split(':').take(7).collect::<Vec<_>>().join(":")
}

/// The service's own reach, in the shapes CloudFormation takes.
fn service_access(c: &mut serde_json::Map<String, Value>, f: &FargateService) {
    let net = &f.network;
    c.insert(
        "vpc_endpoints".into(),
        json!(net.egress == Egress::VpcEndpoints),
    );
    let mut interfaces: Vec<&str> = INTERFACE_ENDPOINTS.to_vec();
    let ssm = f
        .container
        .secrets
        .iter()
        .any(|(_, v)| v.split(':').nth(2) == Some("ssm"));
    if ssm {
        interfaces.push("ssm");
    }
    interfaces.sort();
    c.insert(
        "interface_endpoints".into(),
        Value::Array(
            interfaces
                .iter()
                .map(|name| {
                    let id: String = name
                        .split('.')
                        .map(|p| {
                            let mut ch = p.chars();
                            ch.next()
                                .map(|first| first.to_uppercase().chain(ch).collect::<String>())
                                .unwrap_or_default()
                        })
                        .collect();
                    json!({"name": name, "id": format!("{id}Endpoint")})
                })
                .collect(),
        ),
    );
    let egress: Vec<Value> = net
        .task_egress
        .iter()
        .map(|r| {
            let mut rule = json!({
                "Description": r.description,
                "IpProtocol": r.protocol,
                "FromPort": r.from_port,
                "ToPort": r.to_port,
            });
            let (key, value) = match &r.destination {
                EgressDestination::Cidr(v) => ("CidrIp", v),
                EgressDestination::SecurityGroupId(v) => ("DestinationSecurityGroupId", v),
                EgressDestination::PrefixListId(v) => ("DestinationPrefixListId", v),
            };
            rule[key] = json!(value);
            rule
        })
        .collect();
    c.insert("task_egress".into(), Value::Array(egress));
    let container = &f.container;
    c.insert(
        "container_environment".into(),
        Value::Array(
            container
                .environment
                .iter()
                .map(|(k, v)| json!({"Name": k, "Value": v}))
                .collect(),
        ),
    );
    c.insert(
        "container_secrets".into(),
        Value::Array(
            container
                .secrets
                .iter()
                .map(|(k, v)| json!({"Name": k, "ValueFrom": v}))
                .collect(),
        ),
    );
    let (parameters, secrets): (Vec<&String>, Vec<&String>) = container
        .secrets
        .iter()
        .map(|(_, v)| v)
        .partition(|v| v.split(':').nth(2) == Some("ssm"));
    let mut secret_arns: Vec<String> = secrets.iter().map(|v| secret_arn(v)).collect();
    secret_arns.dedup();
    c.insert("secret_arns".into(), json!(secret_arns));
    c.insert("parameter_arns".into(), json!(parameters));
    c.insert(
        "writable_volumes".into(),
        Value::Array(
            container
                .writable_paths
                .iter()
                .enumerate()
                .map(|(i, p)| json!({"name": format!("writable-{i}"), "path": p}))
                .collect(),
        ),
    );
    c.insert(
        "task_statements".into(),
        Value::Array(
            f.task_role
                .statements
                .iter()
                .map(|st| {
                    let mut v = json!({
                        "Effect": st.effect,
                        "Action": st.actions,
                        "Resource": st.resources,
                    });
                    if let Some(sid) = &st.sid {
                        v["Sid"] = json!(sid);
                    }
                    v
                })
                .collect(),
        ),
    );
}

pub fn microprocess(env: &Environment, stack: &StackPlan, m: &Microprocess) -> Value {
    let mut c = common(env, stack);
    let p = plan::prefix(env);
    let mut tags = base_tags(env);
    tags.push(("microprocess:name".into(), m.name.clone()));
    c.insert("tags".into(), tag_list(&tags));
    tags.push(("microprocess:stateful".into(), "true".into()));
    c.insert("stateful_tags".into(), tag_list(&tags));
    c.insert("mp".into(), serde_json::to_value(m).unwrap_or(Value::Null));
    c.insert(
        "names".into(),
        serde_json::to_value(plan::microprocess_names(env, m)).unwrap_or(Value::Null),
    );
    c.insert(
        "schedule_state".into(),
        json!(if m.schedule.enabled {
            "ENABLED"
        } else {
            "DISABLED"
        }),
    );
    c.insert(
        "rate_limit_per_second".into(),
        json!(m.delivery.rate_limit_per_second.unwrap_or(0).to_string()),
    );
    c.insert(
        "results_expiry_days".into(),
        json!(results_expiry_step(m.results.retention_days)),
    );
    c.insert(
        "splitter_environment".into(),
        super::function_environment::splitter(env, m),
    );
    c.insert(
        "forwarder_environment".into(),
        super::function_environment::forwarder(env, m),
    );
    c.insert(
        "callback_environment".into(),
        super::function_environment::callback(env, m),
    );
    // Shaped like an EventBridge scheduled event; Scheduler fills the placeholders per tick.
    let input = json!({
        "version": "0",
        "id": "<aws.scheduler.execution-id>",
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "${AWS::AccountId}",
        "time": "<aws.scheduler.scheduled-time>",
        "region": "${AWS::Region}",
        "resources": [format!("arn:${{AWS::Partition}}:scheduler:${{AWS::Region}}:${{AWS::AccountId}}:schedule/default/{p}-{}", m.name)],
        "detail": {"microprocess": m.name},
    });
    c.insert(
        "schedule_input".into(),
        json!(serde_json::to_string(&input).unwrap_or_default()),
    );
    c.insert(
        "seconds".into(),
        json!({
            "queue_retention": m.delivery.message_retention_days * 86_400,
            "dlq_retention": crate::config::DEAD_LETTER_RETENTION_DAYS * 86_400,
        }),
    );
    // Stalled once nothing was delivered for two visibility timeouts (a failed batch comes
    // back once in that time), at least 15 minutes and at most CloudWatch's 24 hours of
    // 5-minute periods.
    let periods = (2 * m.delivery.visibility_timeout_seconds)
        .div_ceil(300)
        .clamp(3, 288);
    c.insert(
        "stalled_alarm".into(),
        json!({"periods": periods, "minutes": periods * 5}),
    );
    Value::Object(c)
}
