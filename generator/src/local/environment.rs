//! The process environment of a function's instances, as Lambda gives it: the
//! variables its template set (a function URL's pointed at where the runner serves it),
//! Lambda's own, pointed at the emulator and the runner, and the credentials of the
//! function's execution role.

use std::collections::BTreeMap;

use super::code::Code;
use super::discover::FunctionSpec;
use super::roles::RoleSession;
use super::{secret, RunnerConfig};

/// The process environment of a function's instances (but `AWS_LAMBDA_RUNTIME_API`):
/// its own variables, then what Lambda sets, pointed at the emulator and the runner,
/// with the credentials of the function's role.
pub(super) fn environment(
    spec: &FunctionSpec,
    config: &RunnerConfig,
    code: &Code,
    lambda_endpoint: &str,
    secret_override: Option<&String>,
    session: &RoleSession,
    urls: &[super::function_url::FunctionUrl],
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = spec.environment.clone();
    for value in env.values_mut() {
        if let Some(local) = super::function_url::rewrite(value, urls) {
            *value = local;
        }
    }
    if let (Some(url), true) = (&config.queue_base_url, env.contains_key("QUEUE_BASE_URL")) {
        env.insert("QUEUE_BASE_URL".into(), url.clone());
    }
    if let Some(arn) = secret_override {
        env.insert(secret::SIGNING_SECRET_ARN.into(), arn.clone());
    }
    let code_dir = code.dir.display().to_string();
    let lambda = [
        ("AWS_LAMBDA_FUNCTION_NAME", spec.name.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_mb.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.name),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_REGION", spec.region.clone()),
        ("AWS_DEFAULT_REGION", spec.region.clone()),
        ("AWS_ENDPOINT_URL", config.emulator_endpoint.clone()),
        ("AWS_ENDPOINT_URL_LAMBDA", lambda_endpoint.to_string()),
        ("_HANDLER", spec.handler.clone()),
        ("LAMBDA_TASK_ROOT", code_dir.clone()),
        ("LAMBDA_RUNTIME_DIR", code_dir),
        ("TZ", ":UTC".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
    ];
    for (name, value) in lambda.into_iter().chain(session.environment()) {
        env.insert(name.into(), value);
    }
    env.into_iter().collect()
}
