//! What the emulator says is deployed: the functions (name, environment, timeout,
//! memory, handler, code hash, reserved concurrency, dead-letter target) and their SQS
//! event source mappings (queue, batch size, `MaximumConcurrency`, partial batch
//! responses).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_lambda::types::{EventSourceMappingConfiguration, FunctionResponseType};
use serde::Serialize;

use super::{emulator_error, LocalError};

/// Lambda's default timeout, when a function reports none.
const DEFAULT_TIMEOUT_SECONDS: u64 = 3;
/// Lambda's default memory, when a function reports none.
const DEFAULT_MEMORY_MB: u32 = 128;
/// Lambda's default batch size for SQS.
const DEFAULT_BATCH_SIZE: u32 = 10;

/// A deployed function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionSpec {
    pub name: String,
    pub arn: String,
    pub region: String,
    pub account: String,
    /// The execution role's ARN: the runner runs the function with its credentials.
    pub role: String,
    /// The environment variables its template gave it.
    pub environment: BTreeMap<String, String>,
    #[serde(serialize_with = "seconds")]
    pub timeout: Duration,
    pub memory_mb: u32,
    pub handler: String,
    /// SHA-256 of the zip, base64.
    pub code_sha256: String,
    /// `ReservedConcurrentExecutions`, when set.
    pub reserved_concurrency: Option<u32>,
    /// Where failed asynchronous invocations go (an SQS queue ARN), when set.
    pub dead_letter_target: Option<String>,
}

/// An SQS event source mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappingSpec {
    pub uuid: String,
    /// The function's name.
    pub function: String,
    pub queue_arn: String,
    pub queue_url: String,
    pub batch_size: u32,
    /// `ScalingConfig.MaximumConcurrency`, when set.
    pub maximum_concurrency: Option<u32>,
    /// `FunctionResponseTypes` has `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
    /// `State` as the emulator reported it when the runner started.
    pub state: String,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// The parts of an ARN: `arn:<partition>:<service>:<region>:<account>:<resource>`.
pub fn arn_parts(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_), Some(_), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some((region, account, resource))
}

/// Every function whose name starts with `prefix`, sorted by name.
pub async fn functions(
    lambda: &aws_sdk_lambda::Client,
    prefix: &str,
) -> Result<Vec<FunctionSpec>, LocalError> {
    let mut found = Vec::new();
    let mut marker = None;
    loop {
        let page = lambda
            .list_functions()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| emulator_error("list the functions (Lambda ListFunctions)", &e))?;
        for f in page.functions() {
            let name = f.function_name().unwrap_or_default();
            if !name.starts_with(prefix) {
                continue;
            }
            let arn = f.function_arn().unwrap_or_default().to_string();
            let (region, account, _) = arn_parts(&arn).unwrap_or_default();
            let (region, account) = (region.to_string(), account.to_string());
            let reserved = lambda
                .get_function_concurrency()
                .function_name(name)
                .send()
                .await
                .map_err(|e| {
                    emulator_error(
                        &format!(
                            "read the reserved concurrency of `{name}` (GetFunctionConcurrency)"
                        ),
                        &e,
                    )
                })?
                .reserved_concurrent_executions()
                .and_then(|n| u32::try_from(n).ok());
            found.push(FunctionSpec {
                name: name.to_string(),
                arn,
                region,
                account,
                role: f.role().unwrap_or_default().to_string(),
                environment: f
                    .environment()
                    .and_then(|e| e.variables())
                    .map(|vars| vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                timeout: Duration::from_secs(
                    f.timeout()
                        .and_then(|t| u64::try_from(t).ok())
                        .unwrap_or(DEFAULT_TIMEOUT_SECONDS),
                ),
                memory_mb: f
                    .memory_size()
                    .and_then(|m| u32::try_from(m).ok())
                    .unwrap_or(DEFAULT_MEMORY_MB),
                handler: f.handler().unwrap_or("bootstrap").to_string(),
                code_sha256: f.code_sha256().unwrap_or_default().to_string(),
                reserved_concurrency: reserved,
                dead_letter_target: f
                    .dead_letter_config()
                    .and_then(|d| d.target_arn())
                    .filter(|arn| !arn.is_empty())
                    .map(str::to_string),
            });
        }
        marker = page.next_marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The SQS event source mappings of `functions`, with their queue URLs.
pub async fn mappings(
    lambda: &aws_sdk_lambda::Client,
    sqs: &aws_sdk_sqs::Client,
    functions: &[FunctionSpec],
) -> Result<Vec<MappingSpec>, LocalError> {
    let mut found = Vec::new();
    let mut marker = None;
    loop {
        let page = lambda
            .list_event_source_mappings()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| {
                emulator_error(
                    "list the event source mappings (Lambda ListEventSourceMappings)",
                    &e,
                )
            })?;
        for m in page.event_source_mappings() {
            let Some(function) = functions
                .iter()
                .find(|f| Some(f.arn.as_str()) == m.function_arn())
            else {
                continue;
            };
            if let Some(mapping) = sqs_mapping(sqs, m, function).await? {
                found.push(mapping);
            }
        }
        marker = page.next_marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    found.sort_by(|a, b| (&a.function, &a.queue_arn).cmp(&(&b.function, &b.queue_arn)));
    Ok(found)
}

async fn sqs_mapping(
    sqs: &aws_sdk_sqs::Client,
    m: &EventSourceMappingConfiguration,
    function: &FunctionSpec,
) -> Result<Option<MappingSpec>, LocalError> {
    let queue_arn = m.event_source_arn().unwrap_or_default();
    let Some((_, account, queue_name)) = arn_parts(queue_arn).filter(|_| {
        queue_arn
            .split(':')
            .nth(2)
            .is_some_and(|service| service == "sqs")
    }) else {
        // Only SQS sources are part of the kit.
        return Ok(None);
    };
    let queue_url = sqs
        .get_queue_url()
        .queue_name(queue_name)
        .queue_owner_aws_account_id(account)
        .send()
        .await
        .map_err(|e| {
            emulator_error(
                &format!(
                    "find the queue `{queue_name}` of `{}`'s mapping",
                    function.name
                ),
                &e,
            )
        })?
        .queue_url()
        .unwrap_or_default()
        .to_string();
    Ok(Some(MappingSpec {
        uuid: m.uuid().unwrap_or_default().to_string(),
        function: function.name.clone(),
        queue_arn: queue_arn.to_string(),
        queue_url,
        batch_size: m
            .batch_size()
            .and_then(|b| u32::try_from(b).ok())
            .filter(|b| *b > 0)
            .unwrap_or(DEFAULT_BATCH_SIZE),
        maximum_concurrency: m
            .scaling_config()
            .and_then(|s| s.maximum_concurrency())
            .and_then(|c| u32::try_from(c).ok()),
        report_batch_item_failures: m
            .function_response_types()
            .contains(&FunctionResponseType::ReportBatchItemFailures),
        state: m.state().unwrap_or("Enabled").to_string(),
    }))
}

/// Turns the emulator's own delivery of a mapping off: moto answers every `SendMessage`
/// to a mapped queue by receiving a batch (which raises the receive counts), failing to
/// start the function in Docker and putting the batch back, so messages would reach the
/// dead-letter queue without ever being delivered. The runner delivers them instead.
pub async fn disable_in_emulator(
    lambda: &aws_sdk_lambda::Client,
    mapping: &MappingSpec,
) -> Result<(), LocalError> {
    lambda
        .update_event_source_mapping()
        .uuid(&mapping.uuid)
        .enabled(false)
        .send()
        .await
        .map_err(|e| {
            emulator_error(
                &format!(
                    "turn off the emulator's own delivery of `{}` (UpdateEventSourceMapping `{}`)",
                    mapping.queue_arn, mapping.uuid
                ),
                &e,
            )
        })?;
    Ok(())
}

/// The mappings' states as the emulator reports them now, by UUID.
pub async fn mapping_states(
    lambda: &aws_sdk_lambda::Client,
) -> Result<BTreeMap<String, String>, LocalError> {
    let mut states = BTreeMap::new();
    let mut marker = None;
    loop {
        let page = lambda
            .list_event_source_mappings()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| emulator_error("list the event source mappings", &e))?;
        for m in page.event_source_mappings() {
            states.insert(
                m.uuid().unwrap_or_default().to_string(),
                m.state().unwrap_or_default().to_string(),
            );
        }
        marker = page.next_marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_split_into_region_account_and_resource() {
        assert_eq!(
            arn_parts("arn:aws:lambda:us-east-1:123456789012:function:scores-local-x-forwarder"),
            Some((
                "us-east-1",
                "123456789012",
                "function:scores-local-x-forwarder"
            ))
        );
        assert_eq!(
            arn_parts("arn:aws:sqs:us-east-1:123456789012:scores-local-x"),
            Some(("us-east-1", "123456789012", "scores-local-x"))
        );
        assert_eq!(arn_parts("scores-local-x"), None);
    }
}
