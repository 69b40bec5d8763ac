//! Each function's `Environment.Variables`, rendered from the typed settings the function
//! reads them back into (`microprocess_shared::settings`), so the names, ranges and
//! defaults of the variables are written in one place.
//!
//! What only a deploy knows (the table's and queues' names, the secret's ARN, the bucket)
//! is a CloudFormation `Ref`; every other value is the config's.

use std::time::Duration;

use microprocess_shared::ledger::Overlap as LedgerOverlap;
use microprocess_shared::settings::{
    self, CommonSettings, Environment as Variables, ForwarderSettings,
    ResultStorage as FunctionStorage, SplitterSettings,
};
use serde_json::{json, Map, Value};

use super::context::results_expiry_step;
use crate::config::model::{Microprocess, Overlap, ResultStorage};
use crate::config::Environment;

/// Variables whose value is a reference to a parameter or resource of the stack.
const REFERENCES: [(&str, &str); 7] = [
    (settings::ALARM_TOPIC_ARN, "AlarmTopicArn"),
    (settings::CALLBACK_FUNCTION, "Callback"),
    (settings::LEDGER_TABLE, "LedgerTableName"),
    (settings::QUEUE_URL, "Queue"),
    (settings::DEAD_LETTER_QUEUE_URL, "DeadLetterQueue"),
    (settings::SIGNING_SECRET_ARN, "SigningSecretArn"),
    (settings::RESULTS_BUCKET, "BucketName"),
];

fn common(env: &Environment, m: &Microprocess) -> CommonSettings {
    CommonSettings {
        microprocess_name: m.name.clone(),
        ledger_table: "LedgerTableName".into(),
        queue_url: "Queue".into(),
        queue_base_url: env
            .service
            .queue_base_url()
            .trim_end_matches('/')
            .to_string(),
        signing_secret_arn: "SigningSecretArn".into(),
    }
}

/// What the splitter reads of one page at most: a page of `page_size` items at the
/// contract's limits, or a quarter of what its memory holds beside the runtime (a page
/// is held as read, as parsed, and as queue messages), whichever is less.
pub fn split_page_max_bytes(page_size: u32, memory_mb: u32) -> usize {
    const RUNTIME_MB: usize = 64;
    let by_memory = (memory_mb as usize).saturating_sub(RUNTIME_MB) * 1024 * 1024 / 4;
    microprocess_shared::service_client::max_split_page_bytes(page_size).min(by_memory)
}

/// The splitter's settings in environment `env`.
pub fn splitter_settings(env: &Environment, m: &Microprocess) -> SplitterSettings {
    SplitterSettings {
        common: common(env, m),
        split_path: m.split.path.clone(),
        dead_letter_queue_url: "DeadLetterQueue".into(),
        split_page_size: m.split.page_size,
        split_page_max_bytes: split_page_max_bytes(m.split.page_size, m.split.memory_mb),
        split_max_attempts: m.split.max_attempts,
        overlap: match m.overlap {
            Overlap::Skip => LedgerOverlap::Skip,
            Overlap::Allow => LedgerOverlap::Allow,
        },
        retention_days: m.results.retention_days,
        counter_shards: m.results.counter_shards,
        ledger_partitions: m.results.partitions,
        alarm_topic_arn: Some("AlarmTopicArn".into()),
        expected_duration: m
            .expected_duration_minutes
            .map(|minutes| Duration::from_secs(60 * u64::from(minutes))),
    }
}

/// The forwarder's settings in environment `env`.
pub fn forwarder_settings(env: &Environment, m: &Microprocess) -> ForwarderSettings {
    ForwarderSettings {
        common: common(env, m),
        process_path: m.process.path.clone(),
        reduce_path: m.reduce.path.clone(),
        process_timeout: Duration::from_secs(u64::from(m.process.timeout_seconds)),
        max_attempts: m.process.max_attempts,
        results_bucket: Some("BucketName".into()),
        dead_letter_queue_url: "DeadLetterQueue".into(),
        result_storage: match m.results.storage {
            ResultStorage::Ledger => FunctionStorage::Ledger,
            ResultStorage::Bucket => FunctionStorage::Bucket,
            ResultStorage::Discard => FunctionStorage::Discard,
        },
        results_expiry_days: results_expiry_step(m.results.retention_days),
        rate_limit_per_second: m.delivery.rate_limit_per_second,
        max_concurrency: m.delivery.max_concurrency,
        batch_size: m.delivery.batch_size,
        backoff_base: Duration::from_millis(settings::DEFAULT_BACKOFF_BASE_MILLIS),
        max_retry_after: Duration::from_secs(u64::from(m.process.max_retry_after_seconds)),
        result_limit: usize::try_from(m.delivery.result_limit_kib).unwrap_or(usize::MAX) * 1024,
        lease: m
            .process
            .completion
            .lease_seconds()
            .map(|s| Duration::from_secs(u64::from(s))),
        callback_url: None,
        tolerated_failure_percent: m.process.tolerated_failure_percent,
        // The forwarder reads the URL of its callback function at start: a variable that
        // refers to the URL resource (`CallbackUrl.FunctionUrl`) makes checkov 3.3.30
        // crash while it writes its JSON report.
        callback_function: m
            .process
            .completion
            .lease_seconds()
            .map(|_| "Callback".into()),
    }
}

/// `Environment.Variables` of the splitter.
pub fn splitter(env: &Environment, m: &Microprocess) -> Value {
    variables(env, splitter_settings(env, m).to_environment())
}

/// `Environment.Variables` of the forwarder.
pub fn forwarder(env: &Environment, m: &Microprocess) -> Value {
    variables(env, forwarder_settings(env, m).to_environment())
}

/// `Environment.Variables` of the callback function (callback completion only): the
/// forwarder's settings without the callback function, which is itself.
pub fn callback(env: &Environment, m: &Microprocess) -> Value {
    let settings = ForwarderSettings {
        callback_function: None,
        ..forwarder_settings(env, m)
    };
    variables(env, settings.to_environment())
}

/// The variables as CloudFormation writes them, with the environment's name after the
/// microprocess's and the log filter last.
fn variables(env: &Environment, written: Variables) -> Value {
    let mut out = Map::new();
    for (name, value) in written {
        let value = match REFERENCES.iter().find(|(variable, _)| *variable == name) {
            Some((_, logical_id)) => json!({ "Ref": logical_id }),
            None => json!(value),
        };
        out.insert(name.to_string(), value);
        if name == settings::MICROPROCESS_NAME {
            out.insert(settings::MICROPROCESS_ENVIRONMENT.into(), json!(env.name));
        }
    }
    out.insert(settings::RUST_LOG.into(), json!(settings::DEFAULT_RUST_LOG));
    Value::Object(out)
}
