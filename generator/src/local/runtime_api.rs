//! The Lambda Runtime API for one function instance, on its own loopback port (the
//! process's `AWS_LAMBDA_RUNTIME_API`):
//!
//! - `GET /2018-06-01/runtime/invocation/next` waits for the next event and answers it
//!   with the `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms` and
//!   `-Invoked-Function-Arn` headers;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` end it;
//! - `POST /2018-06-01/runtime/init/error` reports a failed start.
//!
//! The runner hands events in through a channel ([`Pending`]) and gets the outcome back
//! on the event's own channel.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, oneshot, watch};

use super::logs::LogSink;

/// Largest response or error body a function may post (Lambda's synchronous limit).
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Largest event handed to a function: ten SQS messages of up to 1 MiB each, with room.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// What a function answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `POST .../response`.
    Response(Bytes),
    /// `POST .../error`: the error type (from the `Lambda-Runtime-Function-Error-Type`
    /// header or the body's `errorType`) and the body.
    Error { error_type: String, body: Bytes },
}

/// Why an invocation has no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("the function did not ask for the event within {} s of its start", waited.as_secs())]
    NotStarted { waited: Duration },
    #[error("Task timed out after {:.2} seconds", after.as_secs_f64())]
    TimedOut { after: Duration },
    #[error("the function's process ended ({status}) before answering")]
    Exited { status: String },
    /// Lambda's words for a sandbox stopped at its memory limit.
    #[error("Runtime exited with error: signal: killed (Runtime.OutOfMemory: the process used {} MiB of its {limit_mb} MB)", used / super::memory::MIB)]
    OutOfMemory { used: u64, limit_mb: u32 },
    #[error("the runner is stopping")]
    Shutdown,
}

/// The result of one invocation.
pub type InvokeResult = Result<Outcome, Failure>;

/// An event waiting for the instance to ask for it.
pub struct Pending {
    pub request_id: String,
    pub payload: Bytes,
    /// The function's timeout; the deadline is counted from when the event is handed out.
    pub timeout: Duration,
    /// Told when the event is handed out.
    pub delivered: oneshot::Sender<()>,
    pub result: oneshot::Sender<InvokeResult>,
}

struct InFlight {
    request_id: String,
    result: oneshot::Sender<InvokeResult>,
}

/// One instance's side of the API.
pub struct ApiState {
    function_arn: String,
    label: String,
    logs: LogSink,
    pending: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    in_flight: Mutex<Option<InFlight>>,
    shutdown: watch::Receiver<bool>,
}

impl ApiState {
    pub fn new(
        function_arn: String,
        label: String,
        logs: LogSink,
        pending: mpsc::Receiver<Pending>,
        shutdown: watch::Receiver<bool>,
    ) -> ApiState {
        ApiState {
            function_arn,
            label,
            logs,
            pending: tokio::sync::Mutex::new(pending),
            in_flight: Mutex::new(None),
            shutdown,
        }
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, Option<InFlight>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the invocation in flight, if any, with `failure` (the process ended).
    pub fn fail_in_flight(&self, failure: Failure) {
        if let Some(in_flight) = self.in_flight().take() {
            let _ = in_flight.result.send(Err(failure));
        }
    }

    /// Forgets invocation `request_id` (it timed out): a late answer is refused.
    pub fn forget(&self, request_id: &str) {
        let mut in_flight = self.in_flight();
        if in_flight
            .as_ref()
            .is_some_and(|f| f.request_id == request_id)
        {
            in_flight.take();
        }
    }

    fn finish(&self, request_id: &str, outcome: Outcome) -> Result<(), ()> {
        let mut in_flight = self.in_flight();
        match in_flight.take() {
            Some(f) if f.request_id == request_id => {
                let _ = f.result.send(Ok(outcome));
                Ok(())
            }
            other => {
                *in_flight = other;
                Err(())
            }
        }
    }
}

/// The routes of one instance.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(DefaultBodyLimit::max(
            MAX_PAYLOAD_BYTES.max(MAX_EVENT_BYTES),
        ))
        .with_state(state)
}

async fn next(State(state): State<Arc<ApiState>>) -> Response {
    let mut shutdown = state.shutdown.clone();
    // When the runner stops, the request is left unanswered: the process is about to be
    // killed, and the Rust runtime would panic on an answer without a request id.
    let stopping = || std::future::pending::<Response>();
    let mut pending = tokio::select! {
        pending = state.pending.lock() => pending,
        () = super::stop_requested(&mut shutdown) => return stopping().await,
    };
    let event = loop {
        let received = tokio::select! {
            received = pending.recv() => received,
            () = super::stop_requested(&mut shutdown) => None,
        };
        let Some(event) = received else {
            return stopping().await;
        };
        // An event whose caller gave up waiting (the process was too slow to start) is
        // dropped rather than run late.
        if !event.result.is_closed() {
            break event;
        }
    };
    drop(pending);
    let deadline_ms = SystemTime::now()
        .checked_add(event.timeout)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
        .unwrap_or_default();
    {
        let mut in_flight = state.in_flight();
        if let Some(previous) = in_flight.take() {
            // Asking for the next event answers none of the previous one.
            let _ = previous.result.send(Err(Failure::Exited {
                status: "it asked for the next event without answering this one".into(),
            }));
        }
        *in_flight = Some(InFlight {
            request_id: event.request_id.clone(),
            result: event.result,
        });
    }
    let _ = event.delivered.send(());
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set("lambda-runtime-aws-request-id", &event.request_id);
    set("lambda-runtime-deadline-ms", &deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &state.function_arn);
    set("content-type", "application/json");
    (StatusCode::OK, headers, event.payload).into_response()
}

async fn response(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    settle(&state, &id, Outcome::Response(body))
}

async fn error(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error_type = error_type(&headers, &body);
    settle(&state, &id, Outcome::Error { error_type, body })
}

async fn init_error(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.logs.note(format!(
        "{}: failed to start ({}): {}",
        state.label,
        error_type(&headers, &body),
        String::from_utf8_lossy(&body)
    ));
    accepted()
}

fn settle(state: &ApiState, id: &str, outcome: Outcome) -> Response {
    match state.finish(id, outcome) {
        Ok(()) => accepted(),
        Err(()) => (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            format!(
                r#"{{"errorMessage":"invocation {id} is not in progress (it timed out, or was answered already)","errorType":"InvalidRequestID"}}"#
            ),
        )
            .into_response(),
    }
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

fn error_type(headers: &HeaderMap, body: &[u8]) -> String {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()?
                .get("errorType")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "Unhandled".to_string())
}
