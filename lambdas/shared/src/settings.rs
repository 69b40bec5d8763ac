//! A function's settings, read from the environment variables its template sets.
//!
//! [`Settings::from_lookup`] takes the lookup as a closure, so tests pass a map and never
//! touch the process environment; [`Settings::from_env`] is the same over `std::env`.
//! Both functions (splitter and forwarder) read one set of variables, so one template
//! block serves both.

use std::time::Duration;

use thiserror::Error;

/// Microprocess name, as in config.
pub const MICROPROCESS_NAME: &str = "MICROPROCESS_NAME";
/// DynamoDB ledger table name.
pub const LEDGER_TABLE: &str = "LEDGER_TABLE";
/// URL of this microprocess's SQS queue.
pub const QUEUE_URL: &str = "QUEUE_URL";
/// Base URL of the service's queue host.
pub const QUEUE_BASE_URL: &str = "QUEUE_BASE_URL";
/// Path of the split endpoint.
pub const SPLIT_PATH: &str = "SPLIT_PATH";
/// Path of the process endpoint.
pub const PROCESS_PATH: &str = "PROCESS_PATH";
/// Path of the reduce endpoint.
pub const REDUCE_PATH: &str = "REDUCE_PATH";
/// Timeout of one process or reduce call, in seconds.
pub const PROCESS_TIMEOUT_SECONDS: &str = "PROCESS_TIMEOUT_SECONDS";
/// Attempts per split page, process call and reduce call.
pub const MAX_ATTEMPTS: &str = "MAX_ATTEMPTS";
/// ARN of the Secrets Manager secret holding the signing secret(s).
pub const SIGNING_SECRET_ARN: &str = "SIGNING_SECRET_ARN";
/// Bucket for results over 64 KiB; optional.
pub const RESULTS_BUCKET: &str = "RESULTS_BUCKET";
/// `limit` of each split page request; optional.
pub const SPLIT_PAGE_LIMIT: &str = "SPLIT_PAGE_LIMIT";

/// `SPLIT_PAGE_LIMIT` when the variable is not set.
pub const DEFAULT_SPLIT_PAGE_LIMIT: u32 = 1000;

/// Validated settings of a splitter or forwarder function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub microprocess_name: String,
    pub ledger_table: String,
    pub queue_url: String,
    /// Without a trailing `/`; a path is appended as is.
    pub queue_base_url: String,
    pub split_path: String,
    pub process_path: String,
    pub reduce_path: String,
    pub process_timeout: Duration,
    pub max_attempts: u32,
    pub signing_secret_arn: String,
    /// `None` when `RESULTS_BUCKET` is unset or empty.
    pub results_bucket: Option<String>,
    pub split_page_limit: u32,
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
const PATH_EXPECTED: &str =
    "a path starting with `/`, without spaces, query or fragment, like `/jobs/credit-scores/split`";
const TIMEOUT_EXPECTED: &str = "a whole number of seconds from 1 to 900, like `30`";
const ATTEMPTS_EXPECTED: &str = "a whole number from 1 to 100, like `5`";
const SECRET_EXPECTED: &str =
    "the ARN of the signing secret, like `arn:aws:secretsmanager:eu-west-1:123456789012:secret:microprocesses-prod-signing`";
const BUCKET_EXPECTED: &str =
    "an S3 bucket name (3 to 63 lowercase letters, digits, `.` or `-`), or nothing when results stay in the ledger";
const PAGE_LIMIT_EXPECTED: &str = "a whole number from 1 to 10000, like `1000`";

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which returns a variable's value or `None`.
    /// An empty value counts as not set.
    pub fn from_lookup<F>(lookup: F) -> Result<Settings, SettingsError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let env = Lookup(&lookup);
        Ok(Settings {
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
            split_path: env.required(SPLIT_PATH, PATH_EXPECTED, is_plain_path)?,
            process_path: env.required(PROCESS_PATH, PATH_EXPECTED, is_plain_path)?,
            reduce_path: env.required(REDUCE_PATH, PATH_EXPECTED, is_plain_path)?,
            process_timeout: Duration::from_secs(env.number(
                PROCESS_TIMEOUT_SECONDS,
                TIMEOUT_EXPECTED,
                1..=900,
                None,
            )?),
            max_attempts: env.number(MAX_ATTEMPTS, ATTEMPTS_EXPECTED, 1..=100, None)?,
            signing_secret_arn: env.required(SIGNING_SECRET_ARN, SECRET_EXPECTED, |v| {
                v.starts_with("arn:") && !v.contains(char::is_whitespace)
            })?,
            results_bucket: env.optional(RESULTS_BUCKET, BUCKET_EXPECTED, |v| {
                (3..=63).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
            })?,
            split_page_limit: env.number(
                SPLIT_PAGE_LIMIT,
                PAGE_LIMIT_EXPECTED,
                1..=10_000,
                Some(DEFAULT_SPLIT_PAGE_LIMIT),
            )?,
        })
    }

    /// The URL of `path` on the queue host.
    pub fn queue_host_url(&self, path: &str) -> String {
        format!("{}{path}", self.queue_base_url)
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
        default: Option<N>,
    ) -> Result<N, SettingsError>
    where
        N: std::str::FromStr + PartialOrd,
    {
        let Some(value) = self.get(variable) else {
            return default.ok_or(SettingsError::Missing { variable, expected });
        };
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

    fn complete() -> HashMap<&'static str, String> {
        [
            (MICROPROCESS_NAME, "credit-scores"),
            (LEDGER_TABLE, "microprocesses-dev-ledger"),
            (
                QUEUE_URL,
                "https://sqs.eu-west-1.amazonaws.com/123456789012/credit-scores",
            ),
            (QUEUE_BASE_URL, "http://127.0.0.1:8081/"),
            (SPLIT_PATH, "/jobs/credit-scores/split"),
            (PROCESS_PATH, "/jobs/credit-scores/process"),
            (REDUCE_PATH, "/jobs/credit-scores/reduce"),
            (PROCESS_TIMEOUT_SECONDS, "30"),
            (MAX_ATTEMPTS, "5"),
            (
                SIGNING_SECRET_ARN,
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:signing",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect()
    }

    fn load(vars: &HashMap<&'static str, String>) -> Result<Settings, SettingsError> {
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn reads_a_complete_environment() {
        let settings = load(&complete()).unwrap();
        assert_eq!(settings.microprocess_name, "credit-scores");
        assert_eq!(settings.queue_base_url, "http://127.0.0.1:8081");
        assert_eq!(
            settings.queue_host_url(&settings.process_path),
            "http://127.0.0.1:8081/jobs/credit-scores/process"
        );
        assert_eq!(settings.process_timeout, Duration::from_secs(30));
        assert_eq!(settings.max_attempts, 5);
        assert_eq!(settings.results_bucket, None);
        assert_eq!(settings.split_page_limit, DEFAULT_SPLIT_PAGE_LIMIT);
    }

    #[test]
    fn optional_values_are_read() {
        let mut vars = complete();
        vars.insert(RESULTS_BUCKET, "microprocesses-dev-results".into());
        vars.insert(SPLIT_PAGE_LIMIT, "250".into());
        let settings = load(&vars).unwrap();
        assert_eq!(
            settings.results_bucket.as_deref(),
            Some("microprocesses-dev-results")
        );
        assert_eq!(settings.split_page_limit, 250);
    }

    #[test]
    fn each_required_variable_is_named_when_missing_or_empty() {
        for variable in complete().keys() {
            for missing in [None, Some(String::new())] {
                let mut vars = complete();
                match &missing {
                    None => vars.remove(variable),
                    Some(empty) => vars.insert(variable, empty.clone()),
                };
                match load(&vars) {
                    Err(SettingsError::Missing { variable: v, .. }) => assert_eq!(v, *variable),
                    other => panic!("{variable} {missing:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn bad_values_are_rejected_with_the_variable_and_an_example() {
        for (variable, value) in [
            (MICROPROCESS_NAME, "credit#scores"),
            (MICROPROCESS_NAME, "credit scores"),
            (LEDGER_TABLE, "ab"),
            (QUEUE_URL, "sqs://queue"),
            (QUEUE_BASE_URL, "127.0.0.1:8081"),
            (QUEUE_BASE_URL, "https://"),
            (QUEUE_BASE_URL, "https://host/?x=1"),
            (SPLIT_PATH, "split"),
            (SPLIT_PATH, "/split?limit=5"),
            (PROCESS_PATH, "/a b"),
            (REDUCE_PATH, "/reduce#x"),
            (PROCESS_TIMEOUT_SECONDS, "0"),
            (PROCESS_TIMEOUT_SECONDS, "901"),
            (PROCESS_TIMEOUT_SECONDS, "30s"),
            (PROCESS_TIMEOUT_SECONDS, "+30"),
            (MAX_ATTEMPTS, "-1"),
            (MAX_ATTEMPTS, "101"),
            (SIGNING_SECRET_ARN, "my-secret"),
            (RESULTS_BUCKET, "Results_Bucket"),
            (SPLIT_PAGE_LIMIT, "0"),
            (SPLIT_PAGE_LIMIT, "10001"),
        ] {
            let mut vars = complete();
            vars.insert(variable, value.into());
            match load(&vars) {
                Err(SettingsError::Invalid {
                    variable: v,
                    value: got,
                    ..
                }) => {
                    assert_eq!((v, got.as_str()), (variable, value));
                }
                other => panic!("{variable}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn messages_say_what_the_value_should_look_like() {
        let mut vars = complete();
        vars.remove(LEDGER_TABLE);
        assert_eq!(
            load(&vars).unwrap_err().to_string(),
            "environment variable `LEDGER_TABLE` is not set; expected a DynamoDB table name, \
             3 to 255 letters, digits, `_`, `-` or `.`, like `microprocesses-prod-ledger`"
        );
        let mut vars = complete();
        vars.insert(MAX_ATTEMPTS, "0".into());
        assert_eq!(
            load(&vars).unwrap_err().to_string(),
            "environment variable `MAX_ATTEMPTS` is `0`; expected a whole number from 1 to 100, like `5`"
        );
    }
}
