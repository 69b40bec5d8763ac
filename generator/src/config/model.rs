//! The validated configuration: the only config types that travel past the config module.
//! Every number here is already inside its AWS range and every cross-field rule holds.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub name: String,
    pub account_id: Option<String>,
    pub region: String,
    pub protected: bool,
    /// `arm64` or `x86_64`, as Lambda spells it.
    pub architecture: String,
    pub lambda_concurrency_limit: u32,
    pub log_retention_days: u32,
    pub alarm_email: Option<String>,
    /// Sandboxes carry an expiry tag so forgotten ones can be found and removed.
    pub expires_after_days: Option<u32>,
    pub service: Service,
    /// Enabled microprocesses, sorted by name. Not serialized: the serialized environment
    /// is what every template sees as `env`, and no template reads them (a microprocess
    /// stack gets its own as `mp`); in every stack's context they made rendering an
    /// environment quadratic in their number (50 s for 1,000 microprocesses).
    #[serde(skip_serializing)]
    pub microprocesses: Vec<Microprocess>,
    /// Set when this is a copy of an environment made with `--sandbox`; `name` is then
    /// `<file>-<sandbox name>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<super::sandbox::Sandbox>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Service {
    /// The kit deploys the service's live and queue sides on ECS Fargate.
    Fargate(Box<FargateService>),
    /// The service runs elsewhere; the kit only calls it at `queue_base_url`.
    External {
        name: String,
        queue_base_url: String,
    },
}

impl Service {
    pub fn name(&self) -> &str {
        match self {
            Service::Fargate(f) => &f.name,
            Service::External { name, .. } => name,
        }
    }

    /// The base URL every kit request goes to (the queue host).
    pub fn queue_base_url(&self) -> String {
        match self {
            Service::Fargate(f) => format!("https://{}", f.queue_host),
            Service::External { queue_base_url, .. } => queue_base_url.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FargateService {
    pub name: String,
    pub image: String,
    pub container_port: u16,
    pub health_check_path: String,
    pub vpc_id: String,
    pub public_subnet_ids: Vec<String>,
    pub private_subnet_ids: Vec<String>,
    pub certificate_arn: String,
    /// The queue host's certificate: `queue_certificate_arn`, else `certificate_arn`.
    pub queue_certificate_arn: String,
    pub hosted_zone_id: String,
    /// The zone of the queue host's record: a private zone of the VPC with the internal
    /// layout, the live host's zone with the shared one.
    pub queue_hosted_zone_id: String,
    pub live_host: String,
    pub queue_host: String,
    pub layout: AlbLayout,
    pub queue_idle_timeout_seconds: u32,
    pub live: Tasks,
    pub queue: Tasks,
    pub business_hours: Option<BusinessHours>,
    pub network: Network,
    pub container: Container,
    pub task_role: TaskRole,
}

/// How the functions and tasks in the private subnets reach AWS's APIs.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Egress {
    /// The service stack creates gateway endpoints (S3, DynamoDB) and interface endpoints
    /// (the rest) in the VPC.
    VpcEndpoints,
    /// The subnets route to a NAT; deploy checks each one's default route.
    Nat,
}

#[derive(Debug, Clone, Serialize)]
pub struct Network {
    pub egress: Egress,
    /// The private subnets' route tables, which the gateway endpoints join.
    pub private_route_table_ids: Vec<String>,
    /// Security groups the tasks carry beside the kit's (a database's client group).
    pub task_security_group_ids: Vec<String>,
    pub task_egress: Vec<EgressRule>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EgressRule {
    pub description: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    pub from_port: u16,
    pub to_port: u16,
    pub destination: EgressDestination,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EgressDestination {
    Cidr(String),
    SecurityGroupId(String),
    PrefixListId(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Container {
    /// Extra variables, sorted by name; `MICROPROCESS_*` stay the kit's.
    pub environment: Vec<(String, String)>,
    /// Variable name → Secrets Manager secret or SSM parameter ARN, sorted by name.
    pub secrets: Vec<(String, String)>,
    /// Writable directories on the read-only root filesystem, `/tmp` first.
    pub writable_paths: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskRole {
    pub managed_policy_arns: Vec<String>,
    pub statements: Vec<PolicyStatement>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyStatement {
    pub sid: Option<String>,
    /// `Allow` or `Deny`.
    pub effect: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AlbLayout {
    /// The queue host on its own internal ALB, reachable only from the kit's functions.
    InternalQueue,
    /// The article's layout: both hosts as rules on one internet-facing ALB.
    SharedPublic,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tasks {
    pub cpu: u32,
    pub memory_mb: u32,
    pub min_tasks: u32,
    pub max_tasks: u32,
    pub target_cpu_percent: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct BusinessHours {
    pub timezone: String,
    pub start: String,
    pub end: String,
    pub min_tasks: u32,
    pub max_tasks: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Microprocess {
    pub name: String,
    pub description: String,
    pub schedule: Schedule,
    pub overlap: Overlap,
    pub split: Split,
    pub process: Process,
    pub reduce: Reduce,
    pub delivery: Delivery,
    pub results: Results,
    /// How long a run is expected to take: the sweep warns on the alarm topic, and
    /// `status` says, when a run will miss it.
    pub expected_duration_minutes: Option<u32>,
}

impl Microprocess {
    /// What the callback function reserves (callback completion only): as many reports
    /// at once as calls.
    pub fn callback_reserved_concurrency(&self) -> Option<u32> {
        self.process
            .completion
            .lease_seconds()
            .map(|_| self.delivery.max_concurrency)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    /// `cron(...)` or `rate(...)` in EventBridge Scheduler syntax.
    pub expression: String,
    pub timezone: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// A tick while a run is in progress is skipped (and logged).
    Skip,
    /// A tick starts a second run alongside the first.
    Allow,
}

#[derive(Debug, Clone, Serialize)]
pub struct Split {
    pub path: String,
    pub page_size: u32,
    pub max_attempts: u32,
    pub timeout_seconds: u32,
    pub memory_mb: u32,
    pub reserved_concurrency: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Process {
    pub path: String,
    pub timeout_seconds: u32,
    pub max_attempts: u32,
    /// The longest `Retry-After` the forwarder honours; a longer one is capped.
    pub max_retry_after_seconds: u32,
    pub completion: Completion,
    /// A run whose failed children pass this share of its total is cancelled (Step
    /// Functions' tolerated failure percentage); `None`: never.
    pub tolerated_failure_percent: Option<u32>,
}

/// How a child's outcome arrives (contract section 2b).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Completion {
    /// The process call's answer is the outcome.
    Response,
    /// A `202 Accepted` leaves the child in progress under a lease of `lease_seconds`
    /// until the service reports to the callback (`config::completion`).
    Callback { lease_seconds: u32 },
}

impl Completion {
    pub fn lease_seconds(self) -> Option<u32> {
        match self {
            Completion::Response => None,
            Completion::Callback { lease_seconds } => Some(lease_seconds),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Reduce {
    pub path: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub batch_size: u32,
    pub max_concurrency: u32,
    pub reserved_concurrency: u32,
    pub rate_limit_per_second: Option<u32>,
    pub forwarder_timeout_seconds: u32,
    pub forwarder_memory_mb: u32,
    pub visibility_timeout_seconds: u32,
    pub message_retention_days: u32,
    /// The largest 2xx process answer read, in KiB (see `config::result_limit`).
    pub result_limit_kib: u32,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResultStorage {
    /// In the child record up to 64 KiB, larger in the results bucket by reference.
    Ledger,
    /// Always in the results bucket.
    Bucket,
    /// Results are not kept; the service stores its own.
    Discard,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub storage: ResultStorage,
    pub retention_days: u32,
    /// 1 means one counter on the run item; more spread a run's fan-in over partitions.
    pub counter_shards: u32,
    /// Child partition keys a run's blocks spread over (`config::ledger_layout`).
    pub partitions: u32,
}
