//! The TOML files exactly as written: strict (`deny_unknown_fields`), every value spanned so
//! validation can point at it. Nothing here is trusted; `validate` turns it into the model.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// `environments/microprocesses.toml`: one table per microprocess, keyed by its name.
pub type RawMicroprocesses = BTreeMap<Spanned<String>, RawMicroprocess>;

/// One microprocess entry. In `microprocesses.toml` it is the whole definition; under
/// `[microprocesses.NAME]` in an environment file the same keys override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMicroprocess {
    pub description: Option<Spanned<String>>,
    pub enabled: Option<Spanned<bool>>,
    pub schedule: Option<RawSchedule>,
    pub overlap: Option<Spanned<String>>,
    pub expected_duration_minutes: Option<Spanned<i64>>,
    pub split: Option<RawSplit>,
    pub process: Option<RawProcess>,
    pub reduce: Option<RawReduce>,
    pub delivery: Option<RawDelivery>,
    pub results: Option<RawResults>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub expression: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub enabled: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSplit {
    pub path: Option<Spanned<String>>,
    pub page_size: Option<Spanned<i64>>,
    pub max_attempts: Option<Spanned<i64>>,
    pub timeout_seconds: Option<Spanned<i64>>,
    pub memory_mb: Option<Spanned<i64>>,
    pub reserved_concurrency: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProcess {
    pub path: Option<Spanned<String>>,
    pub timeout_seconds: Option<Spanned<i64>>,
    pub max_attempts: Option<Spanned<i64>>,
    pub max_retry_after_seconds: Option<Spanned<i64>>,
    pub completion: Option<Spanned<String>>,
    pub lease_seconds: Option<Spanned<i64>>,
    pub tolerated_failure_percent: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReduce {
    pub path: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    pub batch_size: Option<Spanned<i64>>,
    pub max_concurrency: Option<Spanned<i64>>,
    pub reserved_concurrency: Option<Spanned<i64>>,
    pub rate_limit_per_second: Option<Spanned<i64>>,
    pub forwarder_timeout_seconds: Option<Spanned<i64>>,
    pub forwarder_memory_mb: Option<Spanned<i64>>,
    pub visibility_timeout_seconds: Option<Spanned<i64>>,
    pub message_retention_days: Option<Spanned<i64>>,
    pub result_limit_kib: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResults {
    pub storage: Option<Spanned<String>>,
    pub retention_days: Option<Spanned<i64>>,
    pub counter_shards: Option<Spanned<i64>>,
    pub partitions: Option<Spanned<i64>>,
}

/// `environments/ENV.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvironmentFile {
    pub environment: Spanned<RawEnvironment>,
    pub service: Spanned<RawService>,
    #[serde(default)]
    pub microprocesses: BTreeMap<Spanned<String>, RawMicroprocess>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvironment {
    pub account_id: Option<Spanned<String>>,
    pub region: Spanned<String>,
    pub protected: Spanned<bool>,
    pub architecture: Spanned<String>,
    pub lambda_concurrency_limit: Option<Spanned<i64>>,
    pub log_retention_days: Option<Spanned<i64>>,
    pub alarm_email: Option<Spanned<String>>,
    pub expires_after_days: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: Spanned<String>,
    /// `fargate`: the kit deploys the service; `external`: the service runs elsewhere
    /// (the local environment, or a service another stack owns) at `queue_base_url`.
    pub mode: Spanned<String>,
    pub queue_base_url: Option<Spanned<String>>,
    pub image: Option<Spanned<String>>,
    pub container_port: Option<Spanned<i64>>,
    pub health_check_path: Option<Spanned<String>>,
    pub vpc_id: Option<Spanned<String>>,
    pub public_subnet_ids: Option<Spanned<Vec<Spanned<String>>>>,
    pub private_subnet_ids: Option<Spanned<Vec<Spanned<String>>>>,
    pub certificate_arn: Option<Spanned<String>>,
    pub queue_certificate_arn: Option<Spanned<String>>,
    pub hosted_zone_id: Option<Spanned<String>>,
    pub queue_hosted_zone_id: Option<Spanned<String>>,
    pub live_host: Option<Spanned<String>>,
    pub queue_host: Option<Spanned<String>>,
    pub layout: Option<Spanned<String>>,
    pub queue_idle_timeout_seconds: Option<Spanned<i64>>,
    pub live: Option<Spanned<RawTasks>>,
    pub queue: Option<Spanned<RawQueueTasks>>,
    pub network: Option<Spanned<RawNetwork>>,
    pub container: Option<Spanned<RawContainer>>,
    pub task_role: Option<Spanned<RawTaskRole>>,
}

/// How the private subnets reach AWS, and what else the tasks may reach.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// `vpc-endpoints` (the kit creates them) or `nat` (deploy checks the routes).
    pub egress: Option<Spanned<String>>,
    pub private_route_table_ids: Option<Spanned<Vec<Spanned<String>>>>,
    pub task_security_group_ids: Option<Spanned<Vec<Spanned<String>>>>,
    pub task_egress: Option<Vec<Spanned<RawEgressRule>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEgressRule {
    pub description: Option<Spanned<String>>,
    pub protocol: Option<Spanned<String>>,
    pub port: Option<Spanned<i64>>,
    pub to_port: Option<Spanned<i64>>,
    pub cidr: Option<Spanned<String>>,
    pub security_group_id: Option<Spanned<String>>,
    pub prefix_list_id: Option<Spanned<String>>,
}

/// What both sides' containers get beyond the kit's own settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContainer {
    pub environment: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    pub secrets: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    pub writable_paths: Option<Spanned<Vec<Spanned<String>>>>,
}

/// What the service's own role may do beyond reading its children and results.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTaskRole {
    pub managed_policy_arns: Option<Spanned<Vec<Spanned<String>>>>,
    pub statements: Option<Vec<Spanned<RawStatement>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatement {
    pub sid: Option<Spanned<String>>,
    pub effect: Option<Spanned<String>>,
    pub actions: Spanned<Vec<Spanned<String>>>,
    pub resources: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTasks {
    pub cpu: Spanned<i64>,
    pub memory_mb: Spanned<i64>,
    pub min_tasks: Spanned<i64>,
    pub max_tasks: Spanned<i64>,
    pub target_cpu_percent: Spanned<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueueTasks {
    pub cpu: Spanned<i64>,
    pub memory_mb: Spanned<i64>,
    pub min_tasks: Spanned<i64>,
    pub max_tasks: Spanned<i64>,
    pub target_cpu_percent: Spanned<i64>,
    pub business_hours: Option<Spanned<RawBusinessHours>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBusinessHours {
    pub timezone: Spanned<String>,
    pub start: Spanned<String>,
    pub end: Spanned<String>,
    pub min_tasks: Spanned<i64>,
    pub max_tasks: Spanned<i64>,
}
