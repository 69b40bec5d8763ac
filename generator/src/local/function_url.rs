//! Function URLs on loopback: each deployed function with a URL config (the callback of a
//! microprocess with callback completion) is served on its own port of 127.0.0.1, the
//! request turned into the event Lambda gives a function URL's function (payload format
//! 2.0) and the function's answer back into the HTTP response.
//!
//! The emulator stores the URL config but serves nothing at its URL, so the runner points
//! every function variable that holds the emulator's URL at the loopback one instead
//! ([`rewrite`]); the path stays as in AWS, so signatures over it hold.
//!
//! As in AWS: the raw body is base64-encoded unless its content type is text or JSON; a
//! function that fails, times out or answers something that is not a response gives
//! `502`. An `AuthType` of `AWS_IAM` is noted at start and not checked.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlResponse;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use chrono::Utc;
use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::function::FunctionRuntime;
use super::runtime_api::Outcome;
use super::{emulator_error, LocalError};

/// The largest request body a function URL takes (Lambda's 6 MB payload).
const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// A function's URL as the emulator gives it, and where the runner serves it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FunctionUrl {
    pub function: String,
    pub arn: String,
    /// `https://<id>.lambda-url.<region>.on.aws/`, as stored.
    pub deployed: String,
    /// `http://127.0.0.1:<port>/`.
    pub local: String,
}

/// The URL configs of `functions`, by function name.
pub async fn discover(
    lambda: &aws_sdk_lambda::Client,
    functions: &[String],
) -> Result<BTreeMap<String, (String, String)>, LocalError> {
    let mut urls = BTreeMap::new();
    for name in functions {
        match lambda
            .get_function_url_config()
            .function_name(name)
            .send()
            .await
        {
            Ok(config) => {
                urls.insert(
                    name.clone(),
                    (
                        config.function_url().to_string(),
                        config.auth_type().as_str().to_string(),
                    ),
                );
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => {
                return Err(emulator_error(
                    &format!("read the function URL of `{name}`"),
                    &e,
                ))
            }
        }
    }
    Ok(urls)
}

/// `value` with a deployed function URL replaced by where the runner serves it.
pub fn rewrite(value: &str, urls: &[FunctionUrl]) -> Option<String> {
    urls.iter().find_map(|u| {
        value
            .strip_prefix(u.deployed.as_str())
            .map(|rest| format!("{}{rest}", u.local))
    })
}

/// Invokes a function with a function URL event: its answer, or `None` when it failed.
pub type Invoke = Arc<dyn Fn(Bytes) -> BoxFuture<'static, Option<Bytes>> + Send + Sync>;

/// How the runner invokes `runtime`.
pub fn invoke_runtime(runtime: Arc<FunctionRuntime>) -> Invoke {
    Arc::new(move |payload| {
        let runtime = runtime.clone();
        Box::pin(async move {
            match runtime.invoke_request(payload).await {
                Ok(Outcome::Response(answer)) => Some(answer),
                Ok(Outcome::Error { .. }) | Err(_) => None,
            }
        })
    })
}

/// The HTTP side of one function URL, whose function `invoke` runs.
pub fn router(invoke: Invoke, function_arn: String) -> Router {
    Router::new()
        .fallback(serve)
        .with_state(Arc::new((invoke, function_arn)))
}

async fn serve(State(target): State<Arc<(Invoke, String)>>, request: Request) -> Response {
    let (invoke, arn) = (&target.0, &target.1);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
        )
            .into_response();
    };
    let event = event(&parts, &body, arn);
    match invoke(Bytes::from(event.to_string())).await {
        Some(answer) => response(&answer),
        None => bad_gateway(),
    }
}

fn bad_gateway() -> Response {
    (
        StatusCode::BAD_GATEWAY,
        [("content-type", "application/json")],
        r#"{"Message":"Internal Server Error"}"#,
    )
        .into_response()
}

/// Whether Lambda passes a body of this content type as text.
fn is_text(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t.starts_with("text/")
            || t.contains("json")
            || t.contains("xml")
            || t.contains("javascript")
            || t.starts_with("application/x-www-form-urlencoded")
    })
}

/// The function URL event (payload format 2.0) of one request.
pub fn event(parts: &axum::http::request::Parts, body: &[u8], function_arn: &str) -> Value {
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            // Repeated headers are joined with commas, as Lambda does.
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_string(), Value::String(value));
            }
        }
    }
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    let text = is_text(content_type) && std::str::from_utf8(body).is_ok();
    let (body_value, encoded) = if body.is_empty() {
        (Value::Null, false)
    } else if text {
        (
            Value::String(String::from_utf8_lossy(body).into_owned()),
            false,
        )
    } else {
        (
            Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        )
    };
    let query = parts.uri.query().unwrap_or_default();
    let now = Utc::now();
    let account = function_arn.split(':').nth(4).unwrap_or_default();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.uri.path(),
        "rawQueryString": query,
        "headers": headers,
        "queryStringParameters": if query.is_empty() { Value::Null } else {
            Value::Object(form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect())
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": account,
            "domainName": parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1"),
            "domainPrefix": "127",
            "requestId": super::instance::request_id(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": parts.headers.get("user-agent").and_then(|h| h.to_str().ok()).unwrap_or_default(),
            },
        },
        "body": body_value,
        "isBase64Encoded": encoded,
    })
}

/// The HTTP response of a function's answer: a response object, or (as Lambda reads any
/// other JSON) a `200` with the answer as its body.
pub fn response(answer: &[u8]) -> Response {
    let value: Value = match serde_json::from_slice(answer) {
        Ok(v) => v,
        Err(_) => return bad_gateway(),
    };
    let shaped = value.get("statusCode").is_some();
    if !shaped {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            value.to_string(),
        )
            .into_response();
    }
    let Ok(parsed) = serde_json::from_value::<LambdaFunctionUrlResponse>(value) else {
        return bad_gateway();
    };
    let Ok(status) = u16::try_from(parsed.status_code)
        .map_err(|_| ())
        .and_then(|s| StatusCode::from_u16(s).map_err(|_| ()))
    else {
        return bad_gateway();
    };
    let body = match (parsed.body, parsed.is_base64_encoded) {
        (None, _) => Vec::new(),
        (Some(b), false) => b.into_bytes(),
        (Some(b), true) => match base64::engine::general_purpose::STANDARD.decode(b) {
            Ok(bytes) => bytes,
            Err(_) => return bad_gateway(),
        },
    };
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    for (name, value) in &parsed.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.headers_mut().append(n, v);
        }
    }
    out
}
