//! The runner's own loopback endpoint, which speaks the part of the Lambda API that
//! invokes functions, so the SDK's `Invoke` reaches the runner instead of the emulator
//! (whose `Invoke` would need Docker):
//!
//! - `POST /2015-03-31/functions/{name}/invocations` with `X-Amz-Invocation-Type`
//!   `Event` (queued, `202`), `RequestResponse` (the default: run, `200` with the answer,
//!   `X-Amz-Function-Error` when it failed) or `DryRun` (`204`); `{name}` may be a name or
//!   an ARN, with or without a qualifier;
//! - `GET /local/status`: what the runner runs, with counters, as JSON.
//!
//! The functions get this endpoint as `AWS_ENDPOINT_URL_LAMBDA` (the SDK's per-service
//! endpoint variable), so the splitter's hand-off to itself comes here; the CLI's `start`
//! invokes through it too ([`super::client`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Value};

use super::function::FunctionRuntime;
use super::permissions::Denial;
use super::runtime_api::{Outcome, MAX_PAYLOAD_BYTES};

/// The functions the endpoint serves, and the runner's description of itself.
pub struct Registry {
    pub functions: BTreeMap<String, Arc<FunctionRuntime>>,
    /// Served as `GET /local/status`, with each function's counters added.
    pub description: Value,
    /// Requests the emulator denied the functions (see `permissions`).
    pub denied: Arc<Mutex<Vec<Denial>>>,
    /// Function URLs as the runner serves them, by function name.
    pub urls: BTreeMap<String, super::function_url::FunctionUrl>,
    /// The mappings the runner polls, by UUID: their spec, their switches and their
    /// function's ARN (`ListEventSourceMappings`, `UpdateEventSourceMapping`).
    pub mappings: BTreeMap<
        String,
        (
            super::discover::MappingSpec,
            Arc<super::poller::MappingControl>,
            String,
        ),
    >,
}

impl Registry {
    /// The function a Lambda `FunctionName` means: a name, a full or partial ARN, with an
    /// optional `:qualifier`.
    pub fn resolve(&self, function_name: &str) -> Option<&Arc<FunctionRuntime>> {
        let name = match function_name.split_once("function:") {
            Some((_, rest)) => rest,
            None => function_name,
        };
        let name = name.split(':').next().unwrap_or(name);
        self.functions.get(name)
    }

    pub fn denials(&self) -> Vec<Denial> {
        self.denied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn status(&self) -> Value {
        let mut status = self.description.clone();
        let counters: serde_json::Map<String, Value> = self
            .functions
            .iter()
            .map(|(name, f)| {
                (
                    name.clone(),
                    serde_json::to_value(f.stats.snapshot()).unwrap_or(Value::Null),
                )
            })
            .collect();
        if let Some(object) = status.as_object_mut() {
            object.insert("counters".into(), Value::Object(counters));
            object.insert(
                "denied".into(),
                serde_json::to_value(self.denials()).unwrap_or(Value::Null),
            );
        }
        status
    }
}

pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .route("/2021-10-31/functions/{name}/url", get(url_config))
        .route("/2015-03-31/event-source-mappings/", get(list_mappings))
        .route("/2015-03-31/event-source-mappings", get(list_mappings))
        .route(
            "/2015-03-31/event-source-mappings/{uuid}",
            put(update_mapping),
        )
        .route("/local/status", get(status))
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES))
        .with_state(registry)
}

/// A mapping as `GetEventSourceMapping` describes it.
fn mapping_json(
    spec: &super::discover::MappingSpec,
    control: &super::poller::MappingControl,
    function_arn: &str,
) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let enabled = control.enabled.load(Relaxed);
    json!({
        "UUID": spec.uuid,
        "BatchSize": spec.batch_size,
        "EventSourceArn": spec.queue_arn,
        "FunctionArn": function_arn,
        "LastModified": Utc::now().timestamp(),
        "State": if enabled { "Enabled" } else { "Disabled" },
        "StateTransitionReason": "USER_INITIATED",
        "ScalingConfig": { "MaximumConcurrency": control.concurrency.load(Relaxed) },
        "FunctionResponseTypes": if spec.report_batch_item_failures { vec!["ReportBatchItemFailures"] } else { vec![] },
    })
}

#[derive(serde::Deserialize)]
struct ListQuery {
    #[serde(rename = "FunctionName")]
    function_name: Option<String>,
}

/// `ListEventSourceMappings` of the mappings the runner polls.
async fn list_mappings(
    State(registry): State<Arc<Registry>>,
    Query(query): Query<ListQuery>,
) -> Json<Value> {
    let wanted = query
        .function_name
        .map(|f| match f.split_once("function:") {
            Some((_, rest)) => rest.split(':').next().unwrap_or(rest).to_string(),
            None => f,
        });
    let listed: Vec<Value> = registry
        .mappings
        .values()
        .filter(|(spec, ..)| wanted.as_ref().is_none_or(|w| *w == spec.function))
        .map(|(spec, control, arn)| mapping_json(spec, control, arn))
        .collect();
    Json(json!({ "EventSourceMappings": listed }))
}

#[derive(serde::Deserialize)]
struct MappingUpdate {
    #[serde(rename = "Enabled")]
    enabled: Option<bool>,
    #[serde(rename = "ScalingConfig")]
    scaling: Option<Scaling>,
}

#[derive(serde::Deserialize)]
struct Scaling {
    #[serde(rename = "MaximumConcurrency")]
    maximum_concurrency: Option<u32>,
}

/// `UpdateEventSourceMapping`: turns a mapping's pollers off or on, or changes how many
/// take messages (2 to the pollers it was started with, which is the function's reserve).
async fn update_mapping(
    State(registry): State<Arc<Registry>>,
    Path(uuid): Path<String>,
    body: Bytes,
) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let Some((spec, control, arn)) = registry.mappings.get(&uuid) else {
        return lambda_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", &format!("The resource you requested does not exist: no mapping `{uuid}` in the local runner"));
    };
    let update: MappingUpdate = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => {
            return lambda_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                &e.to_string(),
            )
        }
    };
    if let Some(n) = update.scaling.and_then(|s| s.maximum_concurrency) {
        if !(2..=control.pollers.max(2)).contains(&n) {
            return lambda_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                &format!("MaximumConcurrency {n} is outside 2 to {} (the function's reserved concurrency)", control.pollers),
            );
        }
        control.concurrency.store(n, Relaxed);
    }
    if let Some(enabled) = update.enabled {
        control.enabled.store(enabled, Relaxed);
    }
    (StatusCode::ACCEPTED, Json(mapping_json(spec, control, arn))).into_response()
}

/// `GetFunctionUrlConfig`: the URL where the runner serves the function's URL (a forwarder
/// reads its callback's at start).
async fn url_config(State(registry): State<Arc<Registry>>, Path(name): Path<String>) -> Response {
    let name = match name.split_once("function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest).to_string(),
        None => name,
    };
    match registry.urls.get(&name) {
        Some(url) => {
            let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string();
            Json(json!({
                "FunctionUrl": url.local,
                "FunctionArn": url.arn,
                "AuthType": "NONE",
                "CreationTime": now,
                "LastModifiedTime": now,
                "InvokeMode": "BUFFERED",
            }))
            .into_response()
        }
        None => lambda_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("The resource you requested does not exist: no function URL for `{name}`"),
        ),
    }
}

async fn status(State(registry): State<Arc<Registry>>) -> Json<Value> {
    Json(registry.status())
}

async fn invoke(
    State(registry): State<Arc<Registry>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    payload: Bytes,
) -> Response {
    let Some(function) = registry.resolve(&name) else {
        return lambda_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!(
                "Function not found: {name} (the local runner runs: {})",
                registry
                    .functions
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    };
    let payload = if payload.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        payload
    };
    if serde_json::from_slice::<Value>(&payload).is_err() {
        return lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Could not parse request body into json",
        );
    }
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    let version = [("x-amz-executed-version", "$LATEST")];
    match invocation_type {
        "DryRun" => (StatusCode::NO_CONTENT, version).into_response(),
        "Event" => match function.invoke_event(payload) {
            Ok(()) => (StatusCode::ACCEPTED, version).into_response(),
            Err(e) => lambda_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceException",
                &e.to_string(),
            ),
        },
        "RequestResponse" => match function.invoke_request(payload).await {
            Ok(Outcome::Response(body)) => (
                StatusCode::OK,
                [
                    ("x-amz-executed-version", "$LATEST"),
                    ("content-type", "application/json"),
                ],
                body,
            )
                .into_response(),
            Ok(Outcome::Error { body, .. }) => (
                StatusCode::OK,
                [
                    ("x-amz-executed-version", "$LATEST"),
                    ("x-amz-function-error", "Unhandled"),
                    ("content-type", "application/json"),
                ],
                body,
            )
                .into_response(),
            Err(failure) => (
                StatusCode::OK,
                [
                    ("x-amz-executed-version", "$LATEST"),
                    ("x-amz-function-error", "Unhandled"),
                    ("content-type", "application/json"),
                ],
                json!({"errorType": "Sandbox.Timedout", "errorMessage": failure.to_string()})
                    .to_string(),
            )
                .into_response(),
        },
        other => lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            &format!(
                "unknown invocation type `{other}`; expected Event, RequestResponse or DryRun"
            ),
        ),
    }
}

/// An error as the Lambda API sends it (the SDK reads the type from the header).
fn lambda_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-errortype", error_type),
            ("content-type", "application/json"),
        ],
        json!({"Type": "User", "message": message}).to_string(),
    )
        .into_response()
}
