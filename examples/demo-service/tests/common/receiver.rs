//! The kit's side of a long task, for the tests: a callback receiver on loopback that
//! checks each report's signature as the kit does and records it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use axum::Router;
use microprocess_shared::contract::{CallbackReport, ReportOutcome, HEADER_SIGNATURE};
use microprocess_shared::signing::{verify, MAX_SKEW_SECONDS};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{now, SECRET};

/// Where the receiver listens, under its address: a path and a query, both signed.
pub const CALLBACK_PATH: &str = "/kit/callbacks/credit-scores?token=a%20b";

/// One report as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub report: CallbackReport,
    /// The signature held for one of the receiver's secrets.
    pub signed: bool,
    /// `X-Microprocess-Signature` as received.
    pub signature: String,
    pub content_type: Option<String>,
    /// What the receiver answered.
    pub status: u16,
    pub at: Instant,
}

impl Received {
    pub fn is(&self, outcome: ReportOutcome, attempt: u32) -> bool {
        self.report.outcome == outcome && self.report.attempt == attempt
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Answers to give to the next well-signed reports, in order; then `otherwise`.
    script: VecDeque<u16>,
    otherwise: u16,
    /// Requests that were not a report at all.
    malformed: u64,
}

struct Shared {
    secrets: Vec<String>,
    inner: Mutex<Inner>,
}

/// A running receiver; it stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Receiver {
    /// Verifies with [`SECRET`] and answers 200 to every well-signed report, 401 to the
    /// others.
    pub async fn start() -> Receiver {
        Receiver::with_secrets(&[SECRET]).await
    }

    pub async fn with_secrets(secrets: &[&str]) -> Receiver {
        let shared = Arc::new(Shared {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            inner: Mutex::new(Inner {
                otherwise: 200,
                ..Inner::default()
            }),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new()
            .route("/kit/callbacks/{name}", post(receive))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Receiver {
            addr,
            shared,
            server,
        }
    }

    /// The callback URL to hand to the service.
    pub fn url(&self) -> String {
        format!("http://{}{CALLBACK_PATH}", self.addr)
    }

    /// The next well-signed reports are answered with `statuses`, in order.
    pub fn script(&self, statuses: &[u16]) {
        self.shared.inner.lock().unwrap().script = statuses.iter().copied().collect();
    }

    /// Well-signed reports past the script are answered `status`.
    pub fn answer_with(&self, status: u16) {
        self.shared.inner.lock().unwrap().otherwise = status;
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.inner.lock().unwrap().received.clone()
    }

    pub fn malformed(&self) -> u64 {
        self.shared.inner.lock().unwrap().malformed
    }

    /// Waits until `done` holds for what was received, at most `timeout`; returns it.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "not received within {timeout:?}; got {:#?}",
                summary(&received)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for `count` well-signed final (`succeeded` or `failed`) reports.
    pub async fn wait_for_finals(&self, count: usize) -> Vec<Received> {
        self.wait_for(Duration::from_secs(10), |received| {
            received
                .iter()
                .filter(|r| r.signed && r.report.outcome != ReportOutcome::Heartbeat)
                .count()
                >= count
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `(outcome, attempt, signed, status)` of each report, for failure messages.
pub fn summary(received: &[Received]) -> Vec<(ReportOutcome, u32, bool, u16)> {
    received
        .iter()
        .map(|r| (r.report.outcome, r.report.attempt, r.signed, r.status))
        .collect()
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let signature = headers
        .get(HEADER_SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let secrets: Vec<&str> = shared.secrets.iter().map(String::as_str).collect();
    let signed = verify(
        &secrets,
        &signature,
        "POST",
        path_and_query,
        &body,
        now(),
        MAX_SKEW_SECONDS,
    )
    .is_ok();
    let mut inner = shared.inner.lock().unwrap();
    let Ok(report) = serde_json::from_slice::<CallbackReport>(&body) else {
        inner.malformed += 1;
        return StatusCode::BAD_REQUEST;
    };
    let status = if !signed {
        401
    } else {
        let otherwise = inner.otherwise;
        inner.script.pop_front().unwrap_or(otherwise)
    };
    inner.received.push(Received {
        report,
        signed,
        signature,
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        status,
        at: Instant::now(),
    });
    StatusCode::from_u16(status).unwrap()
}
