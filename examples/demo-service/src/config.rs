//! What one demo service serves: its secrets, microprocesses, items, ports, long tasks
//! and chaos.

use std::path::PathBuf;
use std::time::Duration;

use microprocess_shared::ledger_keys::MAX_SEQ;
use microprocess_shared::signing::MAX_SKEW_SECONDS;
use thiserror::Error;

use crate::chaos::{Chaos, ChaosError};

/// The microprocess served when the config names none.
pub const DEFAULT_MICROPROCESS: &str = "credit-scores";
/// Items in each microprocess's split when the config does not say.
pub const DEFAULT_ITEMS: u64 = 1000;
/// How long a long task works when the config does not say (`--long-task-seconds`).
pub const DEFAULT_LONG_TASK: Duration = Duration::from_secs(5);
/// Interval of a long task's heartbeats when the config does not say
/// (`--heartbeat-seconds`).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);

/// Configuration of a [`crate::DemoService`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Signing secrets; a request signed with any of them is accepted (key rotation).
    pub secrets: Vec<String>,
    /// Microprocesses served, each at `/microprocesses/<name>/split|process|reduce`.
    pub microprocesses: Vec<String>,
    /// Items in each microprocess's split: `ACN-000000001` to `ACN-<items>`.
    pub items: u64,
    /// Items of the microprocesses whose split differs from `items` (`--items-of`).
    pub items_of: std::collections::BTreeMap<String, u64>,
    /// Where reduce reports are written, as `<dir>/<microprocess>/<run>.json`; `None`
    /// keeps them in [`crate::Stats`] only.
    pub report_dir: Option<PathBuf>,
    /// Port of the queue host on 127.0.0.1; 0 picks a free one.
    pub queue_port: u16,
    /// Port of the live host on 127.0.0.1; 0 picks a free one.
    pub live_port: u16,
    /// Largest accepted distance between a signature's `t` and this clock, in seconds.
    pub max_skew_seconds: u64,
    /// A path the queue host's routes are mounted under (`/svc`), as behind a gateway
    /// that routes by prefix; empty for none.
    pub path_prefix: String,
    /// How long a long task works (a process call with a callback, answered `202`)
    /// before it reports `succeeded`.
    pub long_task: Duration,
    /// Interval of a long task's `heartbeat` reports while it works; more than 0.
    pub heartbeat: Duration,
    pub chaos: Chaos,
}

impl Config {
    /// One secret, the `credit-scores` microprocess with [`DEFAULT_ITEMS`] items, free
    /// ports, no report dir, long tasks of [`DEFAULT_LONG_TASK`] with a heartbeat every
    /// [`DEFAULT_HEARTBEAT`], no chaos.
    pub fn new(secret: impl Into<String>) -> Config {
        Config {
            secrets: vec![secret.into()],
            microprocesses: vec![DEFAULT_MICROPROCESS.to_owned()],
            items: DEFAULT_ITEMS,
            items_of: std::collections::BTreeMap::new(),
            report_dir: None,
            queue_port: 0,
            live_port: 0,
            max_skew_seconds: MAX_SKEW_SECONDS,
            path_prefix: String::new(),
            long_task: DEFAULT_LONG_TASK,
            heartbeat: DEFAULT_HEARTBEAT,
            chaos: Chaos::default(),
        }
    }

    /// How long a long task works, and how often it sends a heartbeat meanwhile.
    pub fn with_long_task(mut self, long_task: Duration, heartbeat: Duration) -> Config {
        self.long_task = long_task;
        self.heartbeat = heartbeat;
        self
    }

    /// Mounts the queue host's routes under `prefix` (`/svc`).
    pub fn with_path_prefix(mut self, prefix: impl Into<String>) -> Config {
        self.path_prefix = prefix.into();
        self
    }

    /// The items in `microprocess`'s split.
    pub fn items_for(&self, microprocess: &str) -> u64 {
        self.items_of
            .get(microprocess)
            .copied()
            .unwrap_or(self.items)
    }

    pub fn with_items(mut self, items: u64) -> Config {
        self.items = items;
        self
    }

    pub fn with_chaos(mut self, chaos: Chaos) -> Config {
        self.chaos = chaos;
        self
    }

    pub fn with_report_dir(mut self, dir: impl Into<PathBuf>) -> Config {
        self.report_dir = Some(dir.into());
        self
    }

    pub fn with_microprocesses<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Config {
        self.microprocesses = names.into_iter().map(Into::into).collect();
        self
    }

    /// Checks what the types let through.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.secrets.is_empty() {
            return Err(ConfigError::NoSecret);
        }
        if self.secrets.iter().any(String::is_empty) {
            return Err(ConfigError::EmptySecret);
        }
        if self.microprocesses.is_empty() {
            return Err(ConfigError::NoMicroprocess);
        }
        for (index, name) in self.microprocesses.iter().enumerate() {
            if !is_valid_name(name) {
                return Err(ConfigError::BadMicroprocessName { name: name.clone() });
            }
            if self.microprocesses[..index].contains(name) {
                return Err(ConfigError::DuplicateMicroprocess { name: name.clone() });
            }
        }
        if let Some(items) = std::iter::once(self.items)
            .chain(self.items_of.values().copied())
            .find(|i| *i > MAX_SEQ + 1)
        {
            return Err(ConfigError::TooManyItems { items });
        }
        let prefix = &self.path_prefix;
        if !prefix.is_empty()
            && (!prefix.starts_with('/')
                || prefix.ends_with('/')
                || !prefix[1..].split('/').all(is_valid_name))
        {
            return Err(ConfigError::BadPathPrefix {
                prefix: prefix.clone(),
            });
        }
        if self.heartbeat.is_zero() {
            return Err(ConfigError::ZeroHeartbeat);
        }
        self.chaos.validate()?;
        Ok(())
    }
}

/// The keys in one secret value: the value itself, or, in the rotation form the kit
/// stores during a roll, `{"current": "...", "previous": "..."}`, both keys.
pub fn secrets_in(value: &str) -> Vec<String> {
    microprocess_shared::signing_secret::signing_keys(value)
}

/// A name that is safe in a URL path, a ledger key and a file name.
fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A configuration the service cannot start with.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    #[error("no signing secret; pass one with `--secret` or `MICROPROCESS_SIGNING_SECRET`")]
    NoSecret,
    #[error("a signing secret is empty; pass the environment's secret with `--secret`")]
    EmptySecret,
    #[error("no microprocess to serve; name one with `--microprocess`")]
    NoMicroprocess,
    #[error(
        "microprocess name `{name}` cannot be served; use 1 to 64 letters, digits, `-` or \
         `_`, starting with a letter or a digit"
    )]
    BadMicroprocessName { name: String },
    #[error("microprocess `{name}` is named twice; name each once")]
    DuplicateMicroprocess { name: String },
    #[error("{items} items do not fit the ledger's 12-digit seq; use at most 1000000000000")]
    TooManyItems { items: u64 },
    #[error(
        "path prefix `{prefix}` cannot be served; write segments of letters, digits, `-` or \
         `_`, each after a `/`, like `/svc` or `/teams/scores`"
    )]
    BadPathPrefix { prefix: String },
    #[error("the heartbeat interval is 0; use at least 1 s with `--heartbeat-seconds`")]
    ZeroHeartbeat,
    #[error(transparent)]
    Chaos(#[from] ChaosError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_value_is_the_key_or_the_rotation_form() {
        assert_eq!(secrets_in("abc"), ["abc"]);
        assert_eq!(
            secrets_in(r#"{"current": "new", "previous": "old"}"#),
            ["new", "old"]
        );
        assert_eq!(secrets_in(r#"{"current": "new"}"#), ["new"]);
        // JSON that is not an object is a key like any other.
        assert_eq!(secrets_in("12345"), ["12345"]);
    }

    #[test]
    fn the_default_config_is_valid() {
        assert_eq!(Config::new("s").validate(), Ok(()));
    }

    #[test]
    fn rejections_name_the_fix() {
        let cases = [
            (
                Config {
                    secrets: vec![],
                    ..Config::new("s")
                },
                "no signing secret; pass one with `--secret` or `MICROPROCESS_SIGNING_SECRET`",
            ),
            (
                Config::new(""),
                "a signing secret is empty; pass the environment's secret with `--secret`",
            ),
            (
                Config::new("s").with_microprocesses(["a/b"]),
                "microprocess name `a/b` cannot be served; use 1 to 64 letters, digits, `-` or \
                 `_`, starting with a letter or a digit",
            ),
            (
                Config::new("s").with_microprocesses(["a", "a"]),
                "microprocess `a` is named twice; name each once",
            ),
            (
                Config::new("s").with_microprocesses(Vec::<String>::new()),
                "no microprocess to serve; name one with `--microprocess`",
            ),
            (
                Config::new("s").with_items(MAX_SEQ + 2),
                "1000000000001 items do not fit the ledger's 12-digit seq; use at most \
                 1000000000000",
            ),
            (
                Config::new("s").with_long_task(Duration::from_secs(1), Duration::ZERO),
                "the heartbeat interval is 0; use at least 1 s with `--heartbeat-seconds`",
            ),
        ];
        for (config, message) in cases {
            assert_eq!(config.validate().unwrap_err().to_string(), message);
        }
    }
}
