//! Invoking a function through a running local runner, for commands such as `start`:
//! the same Lambda `Invoke` call as in AWS, sent to the runner's endpoint.

use std::path::Path;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_lambda::config::Credentials;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde_json::{json, Value};
use thiserror::Error;

use super::state;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error(
        "no local runner is running for this environment (no endpoint in `{}`)\n  \
         hint: start it with `microprocess local run --env <env>`",
        state_file.display()
    )]
    NotRunning { state_file: std::path::PathBuf },
    #[error(
        "cannot invoke `{function}` through the local runner at {endpoint}: {detail}\n  \
         hint: is `microprocess local run` still running?"
    )]
    Invoke {
        function: String,
        endpoint: String,
        detail: String,
    },
}

/// The Lambda endpoint of the runner whose work folder is `work_dir`, while it runs.
pub fn lambda_endpoint(work_dir: &Path) -> Result<String, ClientError> {
    state::read(work_dir)
        .lambda_endpoint
        .ok_or_else(|| ClientError::NotRunning {
            state_file: state::path(work_dir),
        })
}

/// A Lambda client for the runner at `endpoint` (it ignores signatures).
pub async fn lambda_client(endpoint: &str, region: &str) -> aws_sdk_lambda::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "microprocess-local-runner",
        ))
        .load()
        .await;
    aws_sdk_lambda::Client::new(&config)
}

/// Queues an asynchronous invocation of `function` with `payload`.
pub async fn invoke_event(
    endpoint: &str,
    region: &str,
    function: &str,
    payload: &Value,
) -> Result<(), ClientError> {
    let error = |detail: String| ClientError::Invoke {
        function: function.to_string(),
        endpoint: endpoint.to_string(),
        detail,
    };
    let out = lambda_client(endpoint, region)
        .await
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(serde_json::to_vec(payload).unwrap_or_default()))
        .send()
        .await
        .map_err(|e| error(super::error_chain(&e)))?;
    match out.status_code() {
        200..=299 => Ok(()),
        status => Err(error(format!("answered status {status}"))),
    }
}

/// Starts run `run` by hand: `{"run": "<run>"}` to the splitter `splitter`, asynchronously.
pub async fn start_run(
    endpoint: &str,
    region: &str,
    splitter: &str,
    run: &str,
) -> Result<(), ClientError> {
    invoke_event(endpoint, region, splitter, &json!({ "run": run })).await
}
