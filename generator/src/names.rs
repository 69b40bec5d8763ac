//! The names the kit gives an environment's stacks, functions, queues and schedules, and
//! the AWS limit of each. A leaf: the config checks names against these rules (a sandbox
//! name must leave every name within its limit) and the plan builds its stacks from them,
//! so neither reaches into the other.

use serde::Serialize;

use crate::config::model::{Environment, Microprocess, Service};

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

/// Every stack name of the environment, in deploy order.
pub fn stack_names(env: &Environment) -> Vec<String> {
    let mut names = vec![core_stack_name(env)];
    if matches!(env.service, Service::Fargate(_)) {
        names.push(service_stack_name(env));
    }
    names.extend(
        env.microprocesses
            .iter()
            .map(|m| microprocess_stack_name(env, m)),
    );
    names
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
    for name in stack_names(env) {
        add("stack name", name, 128);
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
