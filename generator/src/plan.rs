//! The stacks of one environment, in deploy order, with the names and parameters that tie
//! them together. Rendering and the manifest both read this, so they cannot disagree.

use serde::{Deserialize, Serialize};

use crate::config::model::{Environment, Microprocess, ResultStorage, Service};

/// The Lambda binaries the kit ships; each becomes one zip asset.
pub const FUNCTIONS: [&str; 3] = ["splitter", "forwarder", "callback"];

/// The functions microprocess `m` deploys: the callback only with callback completion.
pub fn functions_of(m: &Microprocess) -> &'static [&'static str] {
    if m.process.completion.lease_seconds().is_some() {
        &FUNCTIONS
    } else {
        &FUNCTIONS[..2]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StackKind {
    Core,
    Service,
    Microprocess,
}

/// Where a stack parameter's value comes from at deploy time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum ParameterSource {
    /// An output of a stack deployed earlier.
    Output { stack: String, output: String },
    /// The S3 key of a content-hashed asset uploaded to the assets bucket.
    Asset { asset: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct StackPlan {
    /// The CloudFormation stack name.
    pub name: String,
    pub kind: StackKind,
    /// The microprocess a `Microprocess` stack holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub microprocess: Option<String>,
    /// File name of the template under `dist/ENV/`.
    pub template_file: String,
    /// Parameter name → source, sorted by name.
    pub parameters: Vec<(String, ParameterSource)>,
}

/// Outputs of the core stack that later stacks take as parameters.
pub const CORE_OUTPUTS: [&str; 8] = [
    "LedgerTableName",
    "LedgerTableArn",
    "BucketName",
    "BucketArn",
    "KmsKeyArn",
    "SigningSecretArn",
    "AlarmTopicArn",
    "LogsBucketName",
];

/// The prefix of every stack and resource name of an environment: `<service>-<env>`.
pub fn prefix(env: &Environment) -> String {
    format!("{}-{}", env.service.name(), env.name)
}

pub fn core_stack_name(env: &Environment) -> String {
    format!("{}-core", prefix(env))
}

pub fn service_stack_name(env: &Environment) -> String {
    format!("{}-service", prefix(env))
}

pub fn microprocess_stack_name(env: &Environment, m: &Microprocess) -> String {
    format!("{}-mp-{}", prefix(env), m.name)
}

pub fn microprocess_template_file(m: &Microprocess) -> String {
    format!("mp-{}.template.json", m.name)
}

/// Function names, kept under Lambda's 64 characters by the config's name limits.
pub fn function_name(env: &Environment, m: &Microprocess, function: &str) -> String {
    format!("{}-{}-{}", prefix(env), m.name, function)
}

/// The names a microprocess stack gives its resources, as its template sees them.
#[derive(Debug, Clone, Serialize)]
pub struct MicroprocessNames {
    pub queue: String,
    pub dlq: String,
    pub schedule_dlq: String,
    pub splitter: String,
    pub forwarder: String,
    /// Callback completion only; named the same way whatever the config.
    pub callback: String,
    /// The monthly (or whatever) schedule; the sweep's is this with `-sweep`.
    pub schedule: String,
}

pub fn microprocess_names(env: &Environment, m: &Microprocess) -> MicroprocessNames {
    let p = prefix(env);
    MicroprocessNames {
        queue: format!("{p}-{}", m.name),
        dlq: format!("{p}-{}-dlq", m.name),
        schedule_dlq: format!("{p}-{}-schedule-dlq", m.name),
        splitter: function_name(env, m, "splitter"),
        forwarder: function_name(env, m, "forwarder"),
        callback: function_name(env, m, "callback"),
        schedule: format!("{p}-{}", m.name),
    }
}

/// A name the templates give a resource, and the most characters AWS takes for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameLimit {
    /// What kind of name it is, e.g. `Lambda function name`.
    pub what: &'static str,
    pub name: String,
    pub limit: usize,
}

/// Every name of the environment that contains the environment's name, with its AWS
/// limit: stack names, the names the templates set explicitly (functions, queues,
/// schedules, table, topic, ...) and the DNS labels of the service's hosts. Resources the
/// templates leave unnamed (roles, buckets, load balancers, target groups) get names
/// CloudFormation shortens itself.
pub fn name_limits(env: &Environment) -> Vec<NameLimit> {
    let p = prefix(env);
    let mut limits = Vec::new();
    let mut add = |what: &'static str, name: String, limit: usize| {
        limits.push(NameLimit { what, name, limit });
    };
    add("tag value", env.name.clone(), 256);
    for s in stacks(env) {
        add("stack name", s.name, 128);
    }
    add("DynamoDB table name", format!("{p}-ledger"), 255);
    add("KMS alias name", format!("alias/{p}-microprocesses"), 256);
    add(
        "Secrets Manager secret name",
        format!("{p}/microprocesses/signing-secret"),
        512,
    );
    add("SNS topic name", format!("{p}-microprocess-alarms"), 256);
    add(
        "CloudWatch dashboard name",
        format!("{p}-microprocesses"),
        255,
    );
    for m in &env.microprocesses {
        let n = microprocess_names(env, m);
        for f in functions_of(m).iter().map(|f| function_name(env, m, f)) {
            add("Lambda function name", f.clone(), 64);
            add("log group name", format!("/aws/lambda/{f}"), 512);
        }
        for q in [n.queue, n.dlq, n.schedule_dlq] {
            add("SQS queue name", q, 80);
        }
        add(
            "EventBridge Scheduler schedule name",
            format!("{}-sweep", n.schedule),
            64,
        );
        add("EventBridge Scheduler schedule name", n.schedule, 64);
    }
    if let Service::Fargate(f) = &env.service {
        add("ECS cluster name", p.clone(), 255);
        add("log group name", format!("/ecs/{p}"), 512);
        for side in ["live", "queue"] {
            add("ECS task definition family", format!("{p}-{side}"), 255);
            add("scaling policy name", format!("{p}-{side}-cpu"), 256);
        }
        for host in [&f.live_host, &f.queue_host] {
            add("DNS name", host.clone(), 253);
            if let Some(label) = host.split('.').next() {
                add("DNS label", label.to_string(), 63);
            }
        }
    }
    limits
}

pub fn stacks(env: &Environment) -> Vec<StackPlan> {
    let core = core_stack_name(env);
    let from_core = |names: &[&str]| -> Vec<(String, ParameterSource)> {
        names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    ParameterSource::Output {
                        stack: core.clone(),
                        output: n.to_string(),
                    },
                )
            })
            .collect()
    };
    let mut plans = vec![StackPlan {
        name: core.clone(),
        kind: StackKind::Core,
        microprocess: None,
        template_file: "core.template.json".into(),
        parameters: Vec::new(),
    }];
    let fargate = matches!(env.service, Service::Fargate(_));
    if fargate {
        plans.push(StackPlan {
            name: service_stack_name(env),
            kind: StackKind::Service,
            microprocess: None,
            template_file: "service.template.json".into(),
            parameters: from_core(&[
                "AlarmTopicArn",
                "BucketArn",
                "KmsKeyArn",
                "LedgerTableArn",
                "LogsBucketName",
                "SigningSecretArn",
            ]),
        });
    }
    for m in &env.microprocesses {
        let mut parameters = from_core(&[
            "AlarmTopicArn",
            "BucketName",
            "KmsKeyArn",
            "LedgerTableArn",
            "LedgerTableName",
            "SigningSecretArn",
        ]);
        if m.results.storage != ResultStorage::Discard {
            parameters.extend(from_core(&["BucketArn"]));
        }
        for f in functions_of(m) {
            parameters.push((
                code_key_parameter(f),
                ParameterSource::Asset {
                    asset: f.to_string(),
                },
            ));
        }
        if fargate {
            parameters.push((
                "FunctionsSecurityGroupId".into(),
                ParameterSource::Output {
                    stack: service_stack_name(env),
                    output: "FunctionsSecurityGroupId".into(),
                },
            ));
        }
        parameters.sort_by(|a, b| a.0.cmp(&b.0));
        plans.push(StackPlan {
            name: microprocess_stack_name(env, m),
            kind: StackKind::Microprocess,
            microprocess: Some(m.name.clone()),
            template_file: microprocess_template_file(m),
            parameters,
        });
    }
    plans
}

/// `SplitterCodeKey`, `ForwarderCodeKey`.
pub fn code_key_parameter(function: &str) -> String {
    let mut c = function.chars();
    let first = c.next().map(|f| f.to_ascii_uppercase()).unwrap_or_default();
    format!("{first}{}CodeKey", c.as_str())
}
