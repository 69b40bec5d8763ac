//! AWS requests that go wrong on purpose: an HTTP client for the SDK ([`FaultyHttp`])
//! that hands every request to a rule, which lets it through to the SDK's own client,
//! answers it itself with a synthetic error (the request never reaches the emulator, so
//! nothing is written), or never answers (the caller is killed there: [`Tripwire`]).
//! Also a seeded random source ([`Dice`]) for the choices of a scenario.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use serde_json::{json, Value};

/// What happens to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Sent to the emulator as usual.
    Pass,
    /// Answered here, with this status and JSON body; the emulator never sees it.
    Answer { status: u16, body: Value },
    /// Never answered: whoever sent it waits until it is dropped.
    Hang,
}

/// Decides the fault of a request from its operation, such as
/// `DynamoDB_20120810.TransactWriteItems` or `AmazonSQS.SendMessage` (the `X-Amz-Target`
/// header; empty for REST services such as S3), and its body as text (empty when it is
/// streamed).
pub type Rule = Arc<dyn Fn(&str, &str) -> Fault + Send + Sync>;

/// An SDK HTTP client that applies a [`Rule`] to every request and counts what it did
/// besides letting requests through, per operation.
#[derive(Clone)]
pub struct FaultyHttp {
    inner: SharedHttpClient,
    rule: Rule,
    injected: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl fmt::Debug for FaultyHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyHttp")
            .field("injected", &self.injected())
            .finish()
    }
}

impl FaultyHttp {
    /// The SDK's default HTTP client (plain HTTP: the emulator is on loopback) behind `rule`.
    pub fn new(rule: impl Fn(&str) -> Fault + Send + Sync + 'static) -> FaultyHttp {
        FaultyHttp::by_body(move |operation, _| rule(operation))
    }

    /// As [`FaultyHttp::new`], the rule also reading the request's body: for one kind of
    /// write among others of the same operation.
    pub fn by_body(rule: impl Fn(&str, &str) -> Fault + Send + Sync + 'static) -> FaultyHttp {
        FaultyHttp {
            inner: aws_smithy_http_client::Builder::new().build_http(),
            rule: Arc::new(rule),
            injected: Arc::default(),
        }
    }

    /// `operation` → requests answered here or left hanging.
    pub fn injected(&self) -> BTreeMap<String, u64> {
        self.injected.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// For an SDK config builder's `http_client`.
    pub fn shared(&self) -> SharedHttpClient {
        SharedHttpClient::new(self.clone())
    }
}

impl HttpClient for FaultyHttp {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(FaultyConnector {
            inner: self.inner.http_connector(settings, components),
            rule: self.rule.clone(),
            injected: self.injected.clone(),
        })
    }
}

struct FaultyConnector {
    inner: SharedHttpConnector,
    rule: Rule,
    injected: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl fmt::Debug for FaultyConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FaultyConnector")
    }
}

impl HttpConnector for FaultyConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let operation = request
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .to_owned();
        let body = request
            .body()
            .bytes()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let fault = (self.rule)(&operation, &body);
        if fault != Fault::Pass {
            if let Ok(mut injected) = self.injected.lock() {
                *injected.entry(operation).or_default() += 1;
            }
        }
        match fault {
            Fault::Pass => self.inner.call(request),
            Fault::Answer { status, body } => {
                let mut response = HttpResponse::new(
                    StatusCode::try_from(status).expect("a valid status"),
                    SdkBody::from(body.to_string()),
                );
                response
                    .headers_mut()
                    .insert("content-type", "application/x-amz-json-1.0");
                HttpConnectorFuture::ready(Ok(response))
            }
            Fault::Hang => HttpConnectorFuture::new(std::future::pending()),
        }
    }
}

/// A DynamoDB error answer of type `kind` (awsJson 1.0: the type in `__type`).
pub fn dynamodb_error(status: u16, kind: &str, message: &str) -> Fault {
    Fault::Answer {
        status,
        body: json!({
            "__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"),
            "message": message,
        }),
    }
}

/// `TransactWriteItems` cancelled because another transaction was writing one of its
/// items (DynamoDB names only the item in conflict; the others are `None`).
pub fn transaction_conflict() -> Fault {
    Fault::Answer {
        status: 400,
        body: json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]",
            "CancellationReasons": [
                {"Code": "None"},
                {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
            ],
        }),
    }
}

/// DynamoDB throttling the request.
pub fn throttling() -> Fault {
    dynamodb_error(
        400,
        "ThrottlingException",
        "Rate of requests exceeds the allowed throughput.",
    )
}

/// The operation name `DynamoDB_20120810.<operation>`.
pub fn dynamodb(operation: &str) -> String {
    format!("DynamoDB_20120810.{operation}")
}

/// Kills a caller at a chosen request: once armed with `n`, the `n`-th request from then
/// on and every one after it hang, and [`Tripwire::tripped`] turns true.
#[derive(Debug, Clone, Default)]
pub struct Tripwire {
    /// Requests still let through; `None`: disarmed.
    left: Arc<Mutex<Option<u32>>>,
    tripped: Arc<AtomicBool>,
}

impl Tripwire {
    /// The `n`-th request (1-based) from now hangs, and every later one.
    pub fn arm(&self, n: u32) {
        *self.left.lock().unwrap() = Some(n.saturating_sub(1));
        self.tripped.store(false, Ordering::SeqCst);
    }

    /// Every request goes through again.
    pub fn disarm(&self) {
        *self.left.lock().unwrap() = None;
        self.tripped.store(false, Ordering::SeqCst);
    }

    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// Returns once the wire is tripped.
    pub async fn wait(&self) {
        while !self.tripped() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The rule of a [`FaultyHttp`] that kills at the armed request.
    pub fn rule(&self) -> impl Fn(&str) -> Fault + Send + Sync + 'static {
        let wire = self.clone();
        move |_operation| {
            let mut left = wire.left.lock().unwrap();
            match *left {
                _ if wire.tripped() => Fault::Hang,
                None => Fault::Pass,
                Some(0) => {
                    wire.tripped.store(true, Ordering::SeqCst);
                    Fault::Hang
                }
                Some(n) => {
                    *left = Some(n - 1);
                    Fault::Pass
                }
            }
        }
    }
}

/// A seeded random source (SplitMix64): the same seed, the same choices.
#[derive(Debug)]
pub struct Dice(Mutex<u64>);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(Mutex::new(seed))
    }

    pub fn next_u64(&self) -> u64 {
        let mut state = self.0.lock().unwrap();
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `true` with probability `p`.
    pub fn chance(&self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Whether `key` is among the share `p` of keys that `seed` picks (the same answer
    /// however often, and in whatever order, it is asked).
    pub fn pick(seed: u64, key: u64, p: f64) -> bool {
        Dice::new(seed ^ key.wrapping_mul(0xD6E8_FEB8_6659_FD93)).chance(p)
    }

    /// A number in `low..=high`.
    pub fn between(&self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }
}
