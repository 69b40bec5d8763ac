//! A function's settings: the one contract between the templates and the functions.
//!
//! Each function reads what it uses: [`SplitterSettings`] and [`ForwarderSettings`], both
//! holding the [`CommonSettings`]. `from_lookup` takes the lookup as a closure, so tests
//! pass a map and never touch the process environment; `from_env` is the same over
//! `std::env`. Variables a function does not use are ignored.
//!
//! `to_environment` is the way back: the variables, in order, that `from_lookup` reads
//! into the same settings. The generator renders each function's `Environment` from it
//! (with CloudFormation references for what only a deploy knows), and the local runner's
//! tests and the benchmarks build their functions' environments from it, so a variable's
//! name, range and default are written here only.

use std::time::Duration;

use thiserror::Error;

use crate::ledger::Overlap;

/// Microprocess name, as in config.
pub const MICROPROCESS_NAME: &str = "MICROPROCESS_NAME";
/// DynamoDB ledger table name.
pub const LEDGER_TABLE: &str = "LEDGER_TABLE";
/// URL of this microprocess's SQS queue.
pub const QUEUE_URL: &str = "QUEUE_URL";
/// Base URL of the service's queue host.
pub const QUEUE_BASE_URL: &str = "QUEUE_BASE_URL";
/// ARN of the Secrets Manager secret holding the signing secret(s).
pub const SIGNING_SECRET_ARN: &str = "SIGNING_SECRET_ARN";
/// Path of the split endpoint (splitter).
pub const SPLIT_PATH: &str = "SPLIT_PATH";
/// `limit` of each split page request (splitter).
pub const SPLIT_PAGE_SIZE: &str = "SPLIT_PAGE_SIZE";
/// The most of one split page the splitter reads, in bytes: what its memory holds;
/// optional, what `SPLIT_PAGE_SIZE` items at the contract's limits take by default.
pub const SPLIT_PAGE_MAX_BYTES: &str = "SPLIT_PAGE_MAX_BYTES";
/// Attempts at one split page before the run ends `SPLIT_FAILED` (splitter).
pub const SPLIT_MAX_ATTEMPTS: &str = "SPLIT_MAX_ATTEMPTS";
/// `skip` or `allow`: whether a run starts while another one is active (splitter).
pub const OVERLAP: &str = "OVERLAP";
/// Days the ledger keeps a run's records, fixed when the run starts (splitter).
pub const RETENTION_DAYS: &str = "RETENTION_DAYS";
/// Counter shards of a run, fixed when the run starts (splitter).
pub const COUNTER_SHARDS: &str = "COUNTER_SHARDS";
/// Child partition keys of a run, fixed when the run starts (splitter).
pub const LEDGER_PARTITIONS: &str = "LEDGER_PARTITIONS";
/// Path of the process endpoint (forwarder).
pub const PROCESS_PATH: &str = "PROCESS_PATH";
/// Path of the reduce endpoint (forwarder).
pub const REDUCE_PATH: &str = "REDUCE_PATH";
/// Timeout of one process or reduce call, in seconds (forwarder).
pub const PROCESS_TIMEOUT_SECONDS: &str = "PROCESS_TIMEOUT_SECONDS";
/// Attempts per process or reduce call; the queue's `maxReceiveCount` (forwarder).
pub const MAX_ATTEMPTS: &str = "MAX_ATTEMPTS";
/// Bucket for results over 64 KiB; optional (forwarder).
pub const RESULTS_BUCKET: &str = "RESULTS_BUCKET";
/// URL of the microprocess's dead-letter queue (forwarder, and the splitter's sweep).
pub const DEAD_LETTER_QUEUE_URL: &str = "DEAD_LETTER_QUEUE_URL";
/// `ledger`, `bucket` or `discard` (forwarder).
pub const RESULT_STORAGE: &str = "RESULT_STORAGE";
/// Lifecycle step a stored result object is tagged with (forwarder).
pub const RESULTS_EXPIRY_DAYS: &str = "RESULTS_EXPIRY_DAYS";
/// Cap on process calls a second across all forwarders; `0` for none (forwarder).
pub const RATE_LIMIT_PER_SECOND: &str = "RATE_LIMIT_PER_SECOND";
/// The event source mapping's MaximumConcurrency (forwarder).
pub const MAX_CONCURRENCY: &str = "MAX_CONCURRENCY";
/// The event source mapping's BatchSize: what a forwarder's share of the rate cap may
/// save up (forwarder).
pub const BATCH_SIZE: &str = "BATCH_SIZE";
/// First retry delay in milliseconds; optional, 2000 by default (forwarder).
pub const BACKOFF_BASE_MILLIS: &str = "BACKOFF_BASE_MILLIS";
/// The environment the function belongs to (`prod`); read by people in the console.
pub const MICROPROCESS_ENVIRONMENT: &str = "MICROPROCESS_ENVIRONMENT";
/// The log filter (`info`, `forwarder=debug,info`).
pub const RUST_LOG: &str = "RUST_LOG";
/// The log filter the templates set.
pub const DEFAULT_RUST_LOG: &str = "info";
/// What a forwarder without `BACKOFF_BASE_MILLIS` waits before its first retry.
pub const DEFAULT_BACKOFF_BASE_MILLIS: u64 = 2000;
/// Longest `Retry-After` honoured, in seconds; optional, 3600 by default (forwarder).
pub const MAX_RETRY_AFTER_SECONDS: &str = "MAX_RETRY_AFTER_SECONDS";
/// What a forwarder without `MAX_RETRY_AFTER_SECONDS` honours of a `Retry-After`.
pub const DEFAULT_MAX_RETRY_AFTER_SECONDS: u64 = 3600;
/// The largest 2xx process answer read, in bytes; optional, 6 MiB by default (forwarder).
pub const RESULT_LIMIT_BYTES: &str = "RESULT_LIMIT_BYTES";

/// Callback completion (contract 1.1, 2b): the URL a service reports to; optional, set on
/// the forwarder of a microprocess with `process.completion = "callback"`.
pub const CALLBACK_URL: &str = "CALLBACK_URL";
/// The environment's alarm topic, where the sweep announces late and failed runs;
/// optional (splitter).
pub const ALARM_TOPIC_ARN: &str = "ALARM_TOPIC_ARN";
/// How long a run of the microprocess is expected to take, in minutes; optional
/// (splitter: the sweep warns when a run will miss it).
pub const EXPECTED_DURATION_MINUTES: &str = "EXPECTED_DURATION_MINUTES";
/// A run whose failed children pass this percentage of its total is cancelled; optional.
pub const TOLERATED_FAILURE_PERCENT: &str = "TOLERATED_FAILURE_PERCENT";
/// Callback completion: the callback function's name; the forwarder reads its function
/// URL at start (`lambda:GetFunctionUrlConfig`) unless `CALLBACK_URL` is set.
pub const CALLBACK_FUNCTION: &str = "CALLBACK_FUNCTION";
/// Callback completion: an accepted child's lease, in seconds; set on the forwarder and
/// the callback function of such a microprocess, absent otherwise.
pub const LEASE_SECONDS: &str = "LEASE_SECONDS";

/// Settings both functions need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonSettings {
    pub microprocess_name: String,
    pub ledger_table: String,
    pub queue_url: String,
    /// Without a trailing `/`; a path is appended as is.
    pub queue_base_url: String,
    pub signing_secret_arn: String,
}

/// Settings of the splitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitterSettings {
    pub common: CommonSettings,
    pub split_path: String,
    /// Read by the sweep, for children SQS dead-lettered with no outcome.
    pub dead_letter_queue_url: String,
    pub split_page_size: u32,
    /// A longer page is malformed: more than the splitter's memory holds.
    pub split_page_max_bytes: usize,
    pub split_max_attempts: u32,
    /// Whether a run starts while another run of the microprocess is active.
    pub overlap: Overlap,
    /// Retention of a new run's ledger records, in days.
    pub retention_days: u32,
    /// Counter shards of a new run.
    pub counter_shards: u32,
    /// Child partition keys of a new run.
    pub ledger_partitions: u32,
    /// Where the sweep announces runs that will miss their expected duration or ended
    /// other than `COMPLETED`.
    pub alarm_topic_arn: Option<String>,
    /// How long a run is expected to take.
    pub expected_duration: Option<Duration>,
}

/// Settings of the forwarder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwarderSettings {
    pub common: CommonSettings,
    pub process_path: String,
    pub reduce_path: String,
    pub process_timeout: Duration,
    pub max_attempts: u32,
    /// `None` when `RESULTS_BUCKET` is unset or empty.
    pub results_bucket: Option<String>,
    pub dead_letter_queue_url: String,
    pub result_storage: ResultStorage,
    pub results_expiry_days: u32,
    /// Process calls a second across all forwarders of the microprocess.
    pub rate_limit_per_second: Option<u32>,
    pub max_concurrency: u32,
    /// Messages a batch holds at most.
    pub batch_size: u32,
    /// First retry delay; later ones double, with jitter.
    pub backoff_base: Duration,
    /// A longer `Retry-After` is honoured only up to this (config validation holds the
    /// whole retry schedule inside the queue's retention).
    pub max_retry_after: Duration,
    /// The contract's result limit: a larger 2xx answer fails its child at once.
    pub result_limit: usize,
    /// Callback completion: how long an accepted child's lease lasts (a heartbeat renews
    /// it). `None`: the microprocess completes each child with the call's answer.
    pub lease: Option<Duration>,
    /// Callback completion: the callback URL sent with each process call (the forwarder
    /// only; the callback function is the URL).
    pub callback_url: Option<String>,
    /// Callback completion: the callback function, whose URL the forwarder reads at start
    /// when `callback_url` is not set (a template cannot pass the URL itself: see
    /// `templates/microprocess.yaml`).
    pub callback_function: Option<String>,
    /// A run whose failed children pass this percentage of its total is cancelled.
    pub tolerated_failure_percent: Option<u32>,
}

/// Where a child's 2xx body is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultStorage {
    /// In the child record up to 64 KiB, larger in the results bucket.
    Ledger,
    /// Always in the results bucket.
    Bucket,
    /// Not kept.
    Discard,
}

/// A missing or bad environment variable, named, with what it should look like.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SettingsError {
    #[error("environment variable `{variable}` is not set; expected {expected}")]
    Missing {
        variable: &'static str,
        expected: &'static str,
    },
    #[error("environment variable `{variable}` is `{value}`; expected {expected}")]
    Invalid {
        variable: &'static str,
        value: String,
        expected: &'static str,
    },
}

const NAME_EXPECTED: &str =
    "the microprocess name, 1 to 64 letters, digits, `_` or `-`, like `credit-scores`";
const TABLE_EXPECTED: &str =
    "a DynamoDB table name, 3 to 255 letters, digits, `_`, `-` or `.`, like `microprocesses-prod-ledger`";
const QUEUE_URL_EXPECTED: &str =
    "the SQS queue URL, like `https://sqs.eu-west-1.amazonaws.com/123456789012/credit-scores`";
const BASE_URL_EXPECTED: &str =
    "the queue host's base URL without query or fragment, like `https://scores-queue.example.com` or `http://127.0.0.1:8081`";
const SECRET_EXPECTED: &str =
    "the ARN of the signing secret, like `arn:aws:secretsmanager:eu-west-1:123456789012:secret:microprocesses-prod-signing`";
const PATH_EXPECTED: &str =
    "a path starting with `/`, without spaces, query or fragment, like `/jobs/credit-scores/split`";
const PAGE_SIZE_EXPECTED: &str = "a whole number from 1 to 10000, like `1000`";
const SPLIT_ATTEMPTS_EXPECTED: &str = "a whole number from 1 to 20, like `5`";
const OVERLAP_EXPECTED: &str = "`skip` or `allow`";
const RETENTION_EXPECTED: &str = "a whole number of days from 1 to 3650, like `90`";
const SHARDS_EXPECTED: &str = "a whole number from 1 to 64, like `1`";
const PARTITIONS_EXPECTED: &str = "a whole number from 1 to 1000, like `2`";
const TIMEOUT_EXPECTED: &str = "a whole number of seconds from 1 to 900, like `25`";
const ATTEMPTS_EXPECTED: &str = "a whole number from 1 to 1000, like `5`";
const STORAGE_EXPECTED: &str = "`ledger`, `bucket` or `discard`";
const EXPIRY_EXPECTED: &str = "a whole number of days from 1 to 3650, like `90`";
const RATE_EXPECTED: &str = "a whole number of calls a second from 0 (no cap) to 100000";
const CONCURRENCY_EXPECTED: &str = "a whole number from 2 to 1000, like `10`";
const BATCH_SIZE_EXPECTED: &str = "a whole number from 1 to 10, like `10`";
const BACKOFF_EXPECTED: &str = "a whole number of milliseconds from 1 to 900000, like `2000`";
const RETRY_AFTER_EXPECTED: &str = "a whole number of seconds from 0 to 43200, like `3600`";
const TOPIC_EXPECTED: &str =
    "the ARN of the alarm topic, like `arn:aws:sns:eu-west-1:123456789012:scores-prod-microprocess-alarms`";
const DURATION_EXPECTED: &str = "a whole number of minutes from 1 to 525600, like `180`";
const PERCENT_EXPECTED: &str = "a whole percentage from 0 to 99, like `5`";
const FUNCTION_EXPECTED: &str =
    "a Lambda function name, 1 to 64 letters, digits, `-` or `_`, like `scores-prod-annual-report-callback`";
const LEASE_EXPECTED: &str = "a whole number of seconds from 10 to 86400, like `900`";
const CALLBACK_URL_EXPECTED: &str =
    "the callback's URL, like `https://abcdefgh.lambda-url.eu-west-1.on.aws/report`";
/// The shortest and longest lease an accepted child may have, in seconds.
pub const MIN_LEASE_SECONDS: u64 = 10;
pub const MAX_LEASE_SECONDS: u64 = 86_400;
const PAGE_BYTES_EXPECTED: &str = "a number of bytes of at least 1024, like `50331648`";
const RESULT_LIMIT_EXPECTED: &str = "a number of bytes from 1024 to 1073741824, like `6291456`";
const BUCKET_EXPECTED: &str =
    "an S3 bucket name (3 to 63 lowercase letters, digits, `.` or `-`), or nothing when results stay in the ledger";

impl CommonSettings {
    /// Reads the common settings through `lookup`, which returns a variable's value or
    /// `None`. An empty value counts as not set.
    pub fn from_lookup<F>(lookup: F) -> Result<CommonSettings, SettingsError>
    where
        F: Fn(&str) -> Option<String>,
    {
        Self::read(&Lookup(&lookup))
    }

    fn read<F>(env: &Lookup<'_, F>) -> Result<CommonSettings, SettingsError>
    where
        F: Fn(&str) -> Option<String>,
    {
        Ok(CommonSettings {
            microprocess_name: env.required(MICROPROCESS_NAME, NAME_EXPECTED, |v| {
                (1..=64).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })?,
            ledger_table: env.required(LEDGER_TABLE, TABLE_EXPECTED, |v| {
                (3..=255).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
            })?,
            queue_url: env.required(QUEUE_URL, QUEUE_URL_EXPECTED, is_http_url)?,
            queue_base_url: env
                .required(QUEUE_BASE_URL, BASE_URL_EXPECTED, |v| {
                    is_http_url(v) && !v.contains(['?', '#'])
                })?
                .trim_end_matches('/')
                .to_owned(),
            signing_secret_arn: env.required(SIGNING_SECRET_ARN, SECRET_EXPECTED, |v| {
                v.starts_with("arn:") && !v.contains(char::is_whitespace)
            })?,
        })
    }

    /// The URL of `path` on the queue host.
    pub fn queue_host_url(&self, path: &str) -> String {
        format!("{}{path}", self.queue_base_url)
    }

    fn write(&self, out: &mut Environment) {
        out.push((MICROPROCESS_NAME, self.microprocess_name.clone()));
        out.push((LEDGER_TABLE, self.ledger_table.clone()));
        out.push((QUEUE_URL, self.queue_url.clone()));
        out.push((QUEUE_BASE_URL, self.queue_base_url.clone()));
        out.push((SIGNING_SECRET_ARN, self.signing_secret_arn.clone()));
    }
}

/// A function's environment variables, in the order they are written.
pub type Environment = Vec<(&'static str, String)>;

impl SplitterSettings {
    /// The variables [`SplitterSettings::from_lookup`] reads back into these settings.
    pub fn to_environment(&self) -> Environment {
        let mut out = Environment::new();
        self.common.write(&mut out);
        out.extend([
            (SPLIT_PATH, self.split_path.clone()),
            (DEAD_LETTER_QUEUE_URL, self.dead_letter_queue_url.clone()),
            (SPLIT_PAGE_SIZE, self.split_page_size.to_string()),
            (SPLIT_PAGE_MAX_BYTES, self.split_page_max_bytes.to_string()),
            (SPLIT_MAX_ATTEMPTS, self.split_max_attempts.to_string()),
            (
                OVERLAP,
                match self.overlap {
                    Overlap::Skip => "skip",
                    Overlap::Allow => "allow",
                }
                .to_string(),
            ),
            (RETENTION_DAYS, self.retention_days.to_string()),
            (COUNTER_SHARDS, self.counter_shards.to_string()),
            (LEDGER_PARTITIONS, self.ledger_partitions.to_string()),
        ]);
        if let Some(topic) = &self.alarm_topic_arn {
            out.push((ALARM_TOPIC_ARN, topic.clone()));
        }
        if let Some(expected) = self.expected_duration {
            out.push((
                EXPECTED_DURATION_MINUTES,
                (expected.as_secs() / 60).to_string(),
            ));
        }
        out
    }
}

impl ForwarderSettings {
    /// The variables [`ForwarderSettings::from_lookup`] reads back into these settings.
    pub fn to_environment(&self) -> Environment {
        let mut out = Environment::new();
        self.common.write(&mut out);
        out.extend([
            (DEAD_LETTER_QUEUE_URL, self.dead_letter_queue_url.clone()),
            (PROCESS_PATH, self.process_path.clone()),
            (REDUCE_PATH, self.reduce_path.clone()),
            (
                PROCESS_TIMEOUT_SECONDS,
                self.process_timeout.as_secs().to_string(),
            ),
            (MAX_ATTEMPTS, self.max_attempts.to_string()),
            (
                MAX_RETRY_AFTER_SECONDS,
                self.max_retry_after.as_secs().to_string(),
            ),
            (
                BACKOFF_BASE_MILLIS,
                self.backoff_base.as_millis().to_string(),
            ),
            (RESULT_LIMIT_BYTES, self.result_limit.to_string()),
            (
                RATE_LIMIT_PER_SECOND,
                self.rate_limit_per_second.unwrap_or(0).to_string(),
            ),
            (MAX_CONCURRENCY, self.max_concurrency.to_string()),
            (BATCH_SIZE, self.batch_size.to_string()),
            (
                RESULT_STORAGE,
                match self.result_storage {
                    ResultStorage::Ledger => "ledger",
                    ResultStorage::Bucket => "bucket",
                    ResultStorage::Discard => "discard",
                }
                .to_string(),
            ),
            (
                RESULTS_BUCKET,
                self.results_bucket.clone().unwrap_or_default(),
            ),
            (RESULTS_EXPIRY_DAYS, self.results_expiry_days.to_string()),
        ]);
        if let Some(lease) = self.lease {
            out.push((LEASE_SECONDS, lease.as_secs().to_string()));
        }
        if let Some(url) = &self.callback_url {
            out.push((CALLBACK_URL, url.clone()));
        }
        if let Some(function) = &self.callback_function {
            out.push((CALLBACK_FUNCTION, function.clone()));
        }
        if let Some(percent) = self.tolerated_failure_percent {
            out.push((TOLERATED_FAILURE_PERCENT, percent.to_string()));
        }
        out
    }
}

impl SplitterSettings {
    /// Reads the splitter's settings from the process environment.
    pub fn from_env() -> Result<SplitterSettings, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the splitter's settings through `lookup`; an empty value counts as not set.
    pub fn from_lookup<F>(lookup: F) -> Result<SplitterSettings, SettingsError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let env = Lookup(&lookup);
        Ok(SplitterSettings {
            common: CommonSettings::read(&env)?,
            split_path: env.required(SPLIT_PATH, PATH_EXPECTED, is_plain_path)?,
            dead_letter_queue_url: env.required(
                DEAD_LETTER_QUEUE_URL,
                QUEUE_URL_EXPECTED,
                is_http_url,
            )?,
            split_page_size: env.number(SPLIT_PAGE_SIZE, PAGE_SIZE_EXPECTED, 1..=10_000)?,
            split_page_max_bytes: match env.get(SPLIT_PAGE_MAX_BYTES) {
                None => crate::service_client::max_split_page_bytes(env.number(
                    SPLIT_PAGE_SIZE,
                    PAGE_SIZE_EXPECTED,
                    1..=10_000,
                )?),
                Some(_) => {
                    env.number(SPLIT_PAGE_MAX_BYTES, PAGE_BYTES_EXPECTED, 1024..=usize::MAX)?
                }
            },
            split_max_attempts: env.number(SPLIT_MAX_ATTEMPTS, SPLIT_ATTEMPTS_EXPECTED, 1..=20)?,
            overlap: match env
                .required(OVERLAP, OVERLAP_EXPECTED, |v| {
                    ["skip", "allow"].contains(&v)
                })?
                .as_str()
            {
                "allow" => Overlap::Allow,
                _ => Overlap::Skip,
            },
            retention_days: env.number(RETENTION_DAYS, RETENTION_EXPECTED, 1..=3650)?,
            counter_shards: env.number(COUNTER_SHARDS, SHARDS_EXPECTED, 1..=64)?,
            ledger_partitions: env.number(
                LEDGER_PARTITIONS,
                PARTITIONS_EXPECTED,
                1..=crate::ledger_keys::MAX_PARTITIONS,
            )?,
            alarm_topic_arn: env
                .optional(ALARM_TOPIC_ARN, TOPIC_EXPECTED, |v| v.starts_with("arn:"))?,
            expected_duration: match env.get(EXPECTED_DURATION_MINUTES) {
                None => None,
                Some(_) => Some(Duration::from_secs(
                    60 * env.number::<u64>(
                        EXPECTED_DURATION_MINUTES,
                        DURATION_EXPECTED,
                        1..=525_600,
                    )?,
                )),
            },
        })
    }
}

impl ForwarderSettings {
    /// Reads the forwarder's settings from the process environment.
    pub fn from_env() -> Result<ForwarderSettings, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the forwarder's settings through `lookup`; an empty value counts as not set.
    pub fn from_lookup<F>(lookup: F) -> Result<ForwarderSettings, SettingsError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let env = Lookup(&lookup);
        Ok(ForwarderSettings {
            common: CommonSettings::read(&env)?,
            process_path: env.required(PROCESS_PATH, PATH_EXPECTED, is_plain_path)?,
            reduce_path: env.required(REDUCE_PATH, PATH_EXPECTED, is_plain_path)?,
            process_timeout: Duration::from_secs(env.number(
                PROCESS_TIMEOUT_SECONDS,
                TIMEOUT_EXPECTED,
                1..=900,
            )?),
            max_attempts: env.number(MAX_ATTEMPTS, ATTEMPTS_EXPECTED, 1..=1000)?,
            results_bucket: env.optional(RESULTS_BUCKET, BUCKET_EXPECTED, |v| {
                (3..=63).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
            })?,
            dead_letter_queue_url: env.required(
                DEAD_LETTER_QUEUE_URL,
                QUEUE_URL_EXPECTED,
                is_http_url,
            )?,
            result_storage: match env
                .required(RESULT_STORAGE, STORAGE_EXPECTED, |v| {
                    ["ledger", "bucket", "discard"].contains(&v)
                })?
                .as_str()
            {
                "bucket" => ResultStorage::Bucket,
                "discard" => ResultStorage::Discard,
                _ => ResultStorage::Ledger,
            },
            results_expiry_days: env.number(RESULTS_EXPIRY_DAYS, EXPIRY_EXPECTED, 1..=3650)?,
            rate_limit_per_second: Some(env.number(
                RATE_LIMIT_PER_SECOND,
                RATE_EXPECTED,
                0..=100_000,
            )?)
            .filter(|r| *r > 0),
            max_concurrency: env.number(MAX_CONCURRENCY, CONCURRENCY_EXPECTED, 2..=1000)?,
            batch_size: env.number(BATCH_SIZE, BATCH_SIZE_EXPECTED, 1..=10)?,
            backoff_base: Duration::from_millis(match env.get(BACKOFF_BASE_MILLIS) {
                None => DEFAULT_BACKOFF_BASE_MILLIS,
                Some(_) => env.number(BACKOFF_BASE_MILLIS, BACKOFF_EXPECTED, 1..=900_000)?,
            }),
            max_retry_after: Duration::from_secs(match env.get(MAX_RETRY_AFTER_SECONDS) {
                None => DEFAULT_MAX_RETRY_AFTER_SECONDS,
                Some(_) => env.number(MAX_RETRY_AFTER_SECONDS, RETRY_AFTER_EXPECTED, 0..=43_200)?,
            }),
            result_limit: match env.get(RESULT_LIMIT_BYTES) {
                None => crate::service_client::DEFAULT_RESULT_LIMIT,
                Some(_) => env.number(
                    RESULT_LIMIT_BYTES,
                    RESULT_LIMIT_EXPECTED,
                    1024..=1_073_741_824,
                )?,
            },
            lease: match env.get(LEASE_SECONDS) {
                None => None,
                Some(_) => Some(Duration::from_secs(env.number(
                    LEASE_SECONDS,
                    LEASE_EXPECTED,
                    MIN_LEASE_SECONDS..=MAX_LEASE_SECONDS,
                )?)),
            },
            callback_url: env.optional(CALLBACK_URL, CALLBACK_URL_EXPECTED, is_http_url)?,
            tolerated_failure_percent: match env.get(TOLERATED_FAILURE_PERCENT) {
                None => None,
                Some(_) => Some(env.number(TOLERATED_FAILURE_PERCENT, PERCENT_EXPECTED, 0..=99)?),
            },
            callback_function: env.optional(CALLBACK_FUNCTION, FUNCTION_EXPECTED, |v| {
                (1..=64).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            })?,
        })
    }
}

struct Lookup<'a, F>(&'a F);

impl<F> Lookup<'_, F>
where
    F: Fn(&str) -> Option<String>,
{
    fn get(&self, variable: &str) -> Option<String> {
        (self.0)(variable).filter(|value| !value.is_empty())
    }

    fn required(
        &self,
        variable: &'static str,
        expected: &'static str,
        valid: impl Fn(&str) -> bool,
    ) -> Result<String, SettingsError> {
        self.optional(variable, expected, valid)?
            .ok_or(SettingsError::Missing { variable, expected })
    }

    fn optional(
        &self,
        variable: &'static str,
        expected: &'static str,
        valid: impl Fn(&str) -> bool,
    ) -> Result<Option<String>, SettingsError> {
        match self.get(variable) {
            None => Ok(None),
            Some(value) if valid(&value) => Ok(Some(value)),
            Some(value) => Err(SettingsError::Invalid {
                variable,
                value,
                expected,
            }),
        }
    }

    fn number<N>(
        &self,
        variable: &'static str,
        expected: &'static str,
        range: std::ops::RangeInclusive<N>,
    ) -> Result<N, SettingsError>
    where
        N: std::str::FromStr + PartialOrd,
    {
        let value = self
            .get(variable)
            .ok_or(SettingsError::Missing { variable, expected })?;
        match value.parse::<N>() {
            Ok(number) if value.bytes().all(|b| b.is_ascii_digit()) && range.contains(&number) => {
                Ok(number)
            }
            _ => Err(SettingsError::Invalid {
                variable,
                value,
                expected,
            }),
        }
    }
}

fn is_http_url(value: &str) -> bool {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split('/').next().unwrap_or_default();
            !host.is_empty() && !value.contains(|c: char| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

fn is_plain_path(value: &str) -> bool {
    value.starts_with('/')
        && !value.contains(|c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    type Vars = HashMap<&'static str, String>;
    type Loader = fn(&Vars) -> Result<(), SettingsError>;

    fn vars(pairs: &[(&'static str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    fn common() -> Vars {
        vars(&[
            (MICROPROCESS_NAME, "credit-scores"),
            (LEDGER_TABLE, "microprocesses-dev-ledger"),
            (
                QUEUE_URL,
                "https://sqs.eu-west-1.amazonaws.com/123456789012/credit-scores",
            ),
            (QUEUE_BASE_URL, "http://127.0.0.1:8081/"),
            (
                SIGNING_SECRET_ARN,
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:signing",
            ),
        ])
    }

    fn splitter_vars() -> Vars {
        let mut all = common();
        all.extend(vars(&[
            (SPLIT_PATH, "/jobs/credit-scores/split"),
            (
                DEAD_LETTER_QUEUE_URL,
                "https://sqs.eu-west-1.amazonaws.com/123456789012/credit-scores-dlq",
            ),
            (SPLIT_PAGE_SIZE, "1000"),
            (SPLIT_MAX_ATTEMPTS, "5"),
            (OVERLAP, "skip"),
            (RETENTION_DAYS, "90"),
            (COUNTER_SHARDS, "1"),
            (LEDGER_PARTITIONS, "2"),
        ]));
        all
    }

    fn forwarder_vars() -> Vars {
        let mut all = common();
        all.extend(vars(&[
            (PROCESS_PATH, "/jobs/credit-scores/process"),
            (REDUCE_PATH, "/jobs/credit-scores/reduce"),
            (PROCESS_TIMEOUT_SECONDS, "25"),
            (MAX_ATTEMPTS, "5"),
            (
                DEAD_LETTER_QUEUE_URL,
                "https://sqs.eu-west-1.amazonaws.com/123456789012/credit-scores-dlq",
            ),
            (RESULT_STORAGE, "ledger"),
            (RESULTS_EXPIRY_DAYS, "90"),
            (RATE_LIMIT_PER_SECOND, "0"),
            (MAX_CONCURRENCY, "10"),
            (BATCH_SIZE, "10"),
        ]));
        all
    }

    fn splitter(vars: &Vars) -> Result<SplitterSettings, SettingsError> {
        SplitterSettings::from_lookup(|name| vars.get(name).cloned())
    }

    fn forwarder(vars: &Vars) -> Result<ForwarderSettings, SettingsError> {
        ForwarderSettings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn to_environment_reads_back_into_the_same_settings() {
        let splitter_settings = splitter(&splitter_vars()).unwrap();
        let written: Vars = splitter_settings.to_environment().into_iter().collect();
        assert_eq!(splitter(&written).unwrap(), splitter_settings);
        let mut with_bucket = forwarder_vars();
        with_bucket.insert(RESULTS_BUCKET, "scores-dev-results".into());
        with_bucket.insert(RATE_LIMIT_PER_SECOND, "200".into());
        for vars in [forwarder_vars(), with_bucket] {
            let forwarder_settings = forwarder(&vars).unwrap();
            let written: Vars = forwarder_settings.to_environment().into_iter().collect();
            assert_eq!(forwarder(&written).unwrap(), forwarder_settings);
        }
    }

    /// Both functions' loaders, so every rule is checked on each.
    fn load_both(vars: &Vars) -> [Result<(), SettingsError>; 2] {
        [splitter(vars).map(|_| ()), forwarder(vars).map(|_| ())]
    }

    #[test]
    fn splitter_reads_its_environment() {
        let settings = splitter(&splitter_vars()).unwrap();
        assert_eq!(settings.common.microprocess_name, "credit-scores");
        assert_eq!(settings.common.queue_base_url, "http://127.0.0.1:8081");
        assert_eq!(
            settings.common.queue_host_url(&settings.split_path),
            "http://127.0.0.1:8081/jobs/credit-scores/split"
        );
        assert_eq!(settings.split_page_size, 1000);
        assert_eq!(settings.split_max_attempts, 5);
        assert_eq!(settings.overlap, Overlap::Skip);
        assert_eq!(settings.retention_days, 90);
        assert_eq!(settings.counter_shards, 1);
        let mut allow = splitter_vars();
        allow.insert(OVERLAP, "allow".into());
        assert_eq!(splitter(&allow).unwrap().overlap, Overlap::Allow);
    }

    #[test]
    fn forwarder_reads_its_environment() {
        let settings = forwarder(&forwarder_vars()).unwrap();
        assert_eq!(settings.process_timeout, Duration::from_secs(25));
        assert_eq!(settings.max_attempts, 5);
        assert_eq!(settings.results_bucket, None);
        let mut with_bucket = forwarder_vars();
        with_bucket.insert(RESULTS_BUCKET, "microprocesses-dev-assets".into());
        assert_eq!(
            forwarder(&with_bucket).unwrap().results_bucket.as_deref(),
            Some("microprocesses-dev-assets")
        );
    }

    #[test]
    fn each_function_ignores_the_other_ones_variables() {
        assert!(splitter(&forwarder_vars()).is_err());
        assert!(forwarder(&splitter_vars()).is_err());
        let mut all = splitter_vars();
        all.extend(forwarder_vars());
        all.insert("OVERLAP", "skip".into());
        assert!(splitter(&all).is_ok());
        assert!(forwarder(&all).is_ok());
    }

    #[test]
    fn each_required_variable_is_named_when_missing_or_empty() {
        let cases: [(Vars, Loader); 2] = [
            (splitter_vars(), |v| splitter(v).map(|_| ())),
            (forwarder_vars(), |v| forwarder(v).map(|_| ())),
        ];
        for (complete, load) in cases {
            for variable in complete.keys() {
                for missing in [None, Some(String::new())] {
                    let mut vars = complete.clone();
                    match &missing {
                        None => vars.remove(variable),
                        Some(empty) => vars.insert(variable, empty.clone()),
                    };
                    match load(&vars) {
                        Err(SettingsError::Missing { variable: v, .. }) => {
                            assert_eq!(v, *variable)
                        }
                        other => panic!("{variable} {missing:?}: {other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn bad_values_are_rejected_with_the_variable_and_an_example() {
        let mut all = splitter_vars();
        all.extend(forwarder_vars());
        for (variable, value) in [
            (MICROPROCESS_NAME, "credit#scores"),
            (MICROPROCESS_NAME, "credit scores"),
            (LEDGER_TABLE, "ab"),
            (QUEUE_URL, "sqs://queue"),
            (QUEUE_BASE_URL, "127.0.0.1:8081"),
            (QUEUE_BASE_URL, "https://"),
            (QUEUE_BASE_URL, "https://host/?x=1"),
            (SIGNING_SECRET_ARN, "my-secret"),
            (SPLIT_PATH, "split"),
            (SPLIT_PATH, "/split?limit=5"),
            (SPLIT_PAGE_SIZE, "0"),
            (SPLIT_PAGE_SIZE, "10001"),
            (SPLIT_MAX_ATTEMPTS, "21"),
            (OVERLAP, "sometimes"),
            (OVERLAP, "Skip"),
            (RETENTION_DAYS, "0"),
            (RETENTION_DAYS, "3651"),
            (COUNTER_SHARDS, "0"),
            (COUNTER_SHARDS, "65"),
            (LEDGER_PARTITIONS, "0"),
            (LEDGER_PARTITIONS, "1001"),
            (PROCESS_PATH, "/a b"),
            (REDUCE_PATH, "/reduce#x"),
            (PROCESS_TIMEOUT_SECONDS, "0"),
            (PROCESS_TIMEOUT_SECONDS, "901"),
            (PROCESS_TIMEOUT_SECONDS, "30s"),
            (PROCESS_TIMEOUT_SECONDS, "+30"),
            (MAX_ATTEMPTS, "-1"),
            (MAX_ATTEMPTS, "1001"),
            (RESULTS_BUCKET, "Results_Bucket"),
        ] {
            let mut vars = all.clone();
            vars.insert(variable, value.into());
            let rejected = load_both(&vars)
                .into_iter()
                .filter_map(Result::err)
                .collect::<Vec<_>>();
            assert!(!rejected.is_empty(), "{variable}={value} was accepted");
            for error in rejected {
                match error {
                    SettingsError::Invalid {
                        variable: v,
                        value: got,
                        ..
                    } => assert_eq!((v, got.as_str()), (variable, value)),
                    other => panic!("{variable}={value}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn messages_say_what_the_value_should_look_like() {
        let mut vars = splitter_vars();
        vars.remove(LEDGER_TABLE);
        assert_eq!(
            splitter(&vars).unwrap_err().to_string(),
            "environment variable `LEDGER_TABLE` is not set; expected a DynamoDB table name, \
             3 to 255 letters, digits, `_`, `-` or `.`, like `microprocesses-prod-ledger`"
        );
        let mut vars = forwarder_vars();
        vars.insert(MAX_ATTEMPTS, "0".into());
        assert_eq!(
            forwarder(&vars).unwrap_err().to_string(),
            "environment variable `MAX_ATTEMPTS` is `0`; expected a whole number from 1 to 1000, like `5`"
        );
    }
}
