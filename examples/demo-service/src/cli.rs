//! The `demo-service` command line: every flag also reads an environment variable, so a
//! container can be configured either way.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::chaos::Chaos;
use crate::config::{
    secrets_in, Config, DEFAULT_HEARTBEAT, DEFAULT_ITEMS, DEFAULT_LONG_TASK, DEFAULT_MICROPROCESS,
};
use microprocess_shared::signing::MAX_SKEW_SECONDS;

/// The kit's demo credit-score service: a queue host that implements contract v1 (split,
/// process, reduce) with chaos knobs, and a live host.
///
/// A process call that carries a callback (`X-Microprocess-Callback`, or `"callback"` in
/// the body) is a long task: answered 202 Accepted, worked on for `--long-task-seconds`
/// with a signed `heartbeat` report every `--heartbeat-seconds`, then reported
/// `succeeded` to the callback, signed with the same secret.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "demo-service", version)]
pub struct Args {
    /// Port of the queue host on 127.0.0.1 (the kit's `QUEUE_BASE_URL`); 0 picks a free one.
    #[arg(long, env = "DEMO_QUEUE_PORT", default_value_t = 8081)]
    pub queue_port: u16,

    /// Port of the live host on 127.0.0.1; 0 picks a free one.
    #[arg(long, env = "DEMO_LIVE_PORT", default_value_t = 8080)]
    pub live_port: u16,

    /// Signing secret: the key itself, or the rotation form
    /// {"current": "...", "previous": "..."} (both accepted); repeat the flag to accept
    /// several.
    #[arg(
        long = "secret",
        env = "MICROPROCESS_SIGNING_SECRET",
        hide_env_values = true,
        required = true
    )]
    pub secrets: Vec<String>,

    /// Microprocess to serve at /microprocesses/<name>/...; repeat it (or separate with
    /// commas) for several.
    #[arg(
        long = "microprocess",
        env = "DEMO_MICROPROCESSES",
        value_delimiter = ',',
        default_value = DEFAULT_MICROPROCESS
    )]
    pub microprocesses: Vec<String>,

    /// Items in each microprocess's split.
    #[arg(long, env = "DEMO_ITEMS", default_value_t = DEFAULT_ITEMS)]
    pub items: u64,

    /// Items of one microprocess's split, as NAME=N (repeat it, or separate with commas),
    /// instead of --items: `--items-of annual-report=5`.
    #[arg(long = "items-of", env = "DEMO_ITEMS_OF", value_delimiter = ',', value_parser = parse_items_of)]
    pub items_of: Vec<(String, u64)>,

    /// Mount the queue host's routes under this path (`/svc`), as behind a gateway that
    /// routes by prefix; the kit's `queue_base_url` then ends with it.
    #[arg(long, env = "DEMO_PATH_PREFIX", default_value = "")]
    pub path_prefix: String,

    /// Directory that receives the reduce reports, as <dir>/<microprocess>/<run>.json.
    #[arg(long, env = "DEMO_REPORT_DIR")]
    pub report_dir: Option<PathBuf>,

    /// How long a long task (a process call with a callback, answered 202) works before
    /// it reports `succeeded` to the callback, in seconds.
    #[arg(long, env = "DEMO_LONG_TASK_SECONDS", default_value_t = DEFAULT_LONG_TASK.as_secs())]
    pub long_task_seconds: u64,

    /// Interval of a long task's `heartbeat` reports while it works, in seconds (at
    /// least 1).
    #[arg(long, env = "DEMO_HEARTBEAT_SECONDS", default_value_t = DEFAULT_HEARTBEAT.as_secs())]
    pub heartbeat_seconds: u64,

    #[command(flatten)]
    pub chaos: Chaos,
}

fn parse_items_of(value: &str) -> Result<(String, u64), String> {
    let (name, items) = value
        .split_once('=')
        .ok_or_else(|| format!("`{value}` is not NAME=N, like `annual-report=5`"))?;
    let items = items
        .parse()
        .map_err(|_| format!("`{items}` in `{value}` is not a whole number of items"))?;
    Ok((name.to_string(), items))
}

impl Args {
    /// The service config these flags describe (validated by the service when it starts).
    pub fn into_config(self) -> Config {
        Config {
            secrets: self
                .secrets
                .iter()
                .flat_map(|value| secrets_in(value))
                .collect(),
            microprocesses: self.microprocesses,
            items: self.items,
            items_of: self.items_of.into_iter().collect(),
            report_dir: self.report_dir,
            queue_port: self.queue_port,
            live_port: self.live_port,
            max_skew_seconds: MAX_SKEW_SECONDS,
            path_prefix: self.path_prefix,
            long_task: Duration::from_secs(self.long_task_seconds),
            heartbeat: Duration::from_secs(self.heartbeat_seconds),
            chaos: self.chaos,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::CommandFactory;

    use super::*;
    use crate::chaos::SeqSelector;

    #[test]
    fn the_command_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let args = Args::try_parse_from(["demo-service", "--secret", "s"]).unwrap();
        let config = args.into_config();
        assert_eq!(config.queue_port, 8081);
        assert_eq!(config.live_port, 8080);
        assert_eq!(config.microprocesses, ["credit-scores"]);
        assert_eq!(config.items, 1000);
        assert_eq!(config.long_task, Duration::from_secs(5));
        assert_eq!(config.heartbeat, Duration::from_secs(2));
        assert_eq!(config.chaos, Chaos::default());
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn every_knob_has_a_flag() {
        let args = Args::try_parse_from([
            "demo-service",
            "--queue-port=0",
            "--live-port=0",
            "--secret=one",
            r#"--secret={"current": "new", "previous": "old"}"#,
            "--microprocess=credit-scores",
            "--microprocess=abn-refresh",
            "--items=50",
            "--report-dir=/tmp/reports",
            "--seed=9",
            "--fail-rate-5xx=0.2",
            "--fail-seqs-4xx=3,5-6",
            "--retry-after=2",
            "--retry-after-seqs=0.5",
            "--delay-ms=10",
            "--slow-seqs=7",
            "--slow-ms=1500",
            "--slow-attempts=1",
            "--late-answers",
            "--reduce-failures=2",
            "--split-failures=1",
            "--garbage-rate=0.1",
            "--long-task-seconds=30",
            "--heartbeat-seconds=10",
            "--lost-report-seqs=1",
            "--duplicate-report-seqs=2-3",
            "--late-report-seqs=4",
            "--bad-signature-report-seqs=0.5",
        ])
        .unwrap();
        let config = args.clone().into_config();
        assert_eq!(config.secrets, ["one", "new", "old"]);
        assert_eq!(config.long_task, Duration::from_secs(30));
        assert_eq!(config.heartbeat, Duration::from_secs(10));
        assert_eq!(args.microprocesses, ["credit-scores", "abn-refresh"]);
        assert_eq!(args.report_dir, Some(PathBuf::from("/tmp/reports")));
        assert_eq!(
            args.chaos,
            Chaos {
                seed: 9,
                fail_rate_5xx: 0.2,
                fail_seqs_4xx: SeqSelector::Seqs(BTreeSet::from([3, 5, 6])),
                retry_after: 2,
                retry_after_seqs: SeqSelector::Fraction(0.5),
                delay_ms: 10,
                slow_seqs: SeqSelector::Seqs(BTreeSet::from([7])),
                slow_ms: 1500,
                slow_attempts: Some(1),
                late_answers: true,
                reduce_failures: 2,
                split_failures: 1,
                garbage_rate: 0.1,
                large_result_seqs: SeqSelector::None,
                large_result_bytes: crate::chaos::DEFAULT_LARGE_RESULT_BYTES,
                uncarriable_seqs: SeqSelector::None,
                hostile_error_seqs: SeqSelector::None,
                split_overfill: false,
                cursor_bytes: 0,
                lost_report_seqs: SeqSelector::Seqs(BTreeSet::from([1])),
                duplicate_report_seqs: SeqSelector::Seqs(BTreeSet::from([2, 3])),
                late_report_seqs: SeqSelector::Seqs(BTreeSet::from([4])),
                bad_signature_report_seqs: SeqSelector::Fraction(0.5),
            }
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_fix() {
        let error = Args::try_parse_from(["demo-service", "--secret=s", "--fail-rate-5xx=2"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`2` is not a fraction; write one between 0 and 1 with a decimal point"),
            "{error}"
        );
        let error = Args::try_parse_from(["demo-service", "--secret=s", "--slow-seqs=a"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`a` in `a` is not a seq or a range"),
            "{error}"
        );
    }
}
