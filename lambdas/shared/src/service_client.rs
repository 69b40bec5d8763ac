//! The kit's HTTP client for a service's queue host: every request signed and carrying the
//! contract headers, redirects never followed, a timeout per request, and each answer
//! classified as the contract says.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use thiserror::Error;

use crate::contract::{
    process_idempotency_key, reduce_idempotency_key, Outcome, ProcessRequest, ReduceRequest,
    SplitPage, CONTENT_TYPE_JSON, CONTRACT_VERSION, HEADER_ATTEMPT, HEADER_CONTRACT,
    HEADER_IDEMPOTENCY_KEY, HEADER_NAME, HEADER_RUN, HEADER_SEQ, HEADER_SIGNATURE,
    MAX_ITEM_ID_BYTES, MAX_ITEM_PAYLOAD_BYTES,
};
use crate::errors::error_chain;
use crate::queue_host::{BaseUrlError, QueueBase};
use crate::run_id::RunId;
use crate::signing::{sign, signature_header};
use crate::signing_secret::SigningKeys;

/// How much of a failing response body a reason quotes.
const REASON_BODY_CHARS: usize = 200;
/// How much of a non-2xx body is read: enough for the reason, never the whole of a
/// hostile one.
const ERROR_BODY_BYTES: usize = 4096;
/// How much of a reduce answer is read: the kit keeps none of it.
const REDUCE_BODY_BYTES: usize = 64 * 1024;
/// The longest `next` cursor: it is checkpointed in the run's ledger record, whose item
/// must stay far below DynamoDB's 400 KB (contract 1.1).
pub const MAX_CURSOR_BYTES: usize = 4096;
/// The longest a split page of `limit` items can be within the contract: each item at
/// its id and payload limits, with room for JSON escapes and whitespace, plus the cursor.
pub fn max_split_page_bytes(limit: u32) -> usize {
    let per_item = 2 * (MAX_ITEM_ID_BYTES + MAX_ITEM_PAYLOAD_BYTES) + 256;
    usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_mul(per_item)
        + 2 * MAX_CURSOR_BYTES
        + 1024
}

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("queue base URL {0}")]
    BadBaseUrl(#[from] BaseUrlError),
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// What became of one call: the contract's classification plus what the ledger records.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub outcome: Outcome,
    /// The HTTP status, when the service answered.
    pub status: Option<u16>,
    /// The response body (empty when there was none).
    pub body: Vec<u8>,
    /// A `Retry-After` the service asked for.
    pub retry_after: Option<Duration>,
    /// A short human reason, recorded on a failed child.
    pub reason: String,
}

/// A split page that could not be used; the splitter retries it.
#[derive(Debug, Error)]
#[error("split page (cursor {cursor:?}) failed: {reason}")]
pub struct SplitPageError {
    pub cursor: Option<String>,
    pub reason: String,
    pub retry_after: Option<Duration>,
}

#[derive(Clone)]
pub struct ServiceClient {
    http: reqwest::Client,
    base: QueueBase,
    microprocess: String,
    /// Every current signing key: each request carries one `v1` per key, so a service
    /// that holds either side of a rotation accepts it.
    keys: Arc<SigningKeys>,
    /// The largest 2xx process answer read (the contract's result limit).
    result_limit: usize,
    /// The most of a split page read, when the function's memory holds less than a page
    /// of `limit` items at the contract's limits.
    page_limit: Option<usize>,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("base_url", &self.base.as_str())
            .field("microprocess", &self.microprocess)
            .finish_non_exhaustive()
    }
}

impl ServiceClient {
    /// `base_url` is the queue host (`https://scores-queue.example.com`, or a loopback
    /// `http://127.0.0.1:8081` locally), with an optional path prefix; each of `keys`
    /// signs every request.
    pub fn new(
        base_url: &str,
        microprocess: &str,
        keys: impl Into<SigningKeys>,
    ) -> Result<Self, ClientError> {
        let base = QueueBase::parse(base_url)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(50))
            .build()
            .map_err(ClientError::Build)?;
        Ok(ServiceClient {
            http,
            base,
            microprocess: microprocess.to_string(),
            keys: Arc::new(keys.into()),
            result_limit: DEFAULT_RESULT_LIMIT,
            page_limit: None,
        })
    }

    /// The most of one split page this client reads (what the splitter's memory holds).
    pub fn with_page_limit(mut self, bytes: usize) -> Self {
        self.page_limit = Some(bytes);
        self
    }

    /// The largest 2xx process answer this client reads; a larger one fails the child.
    pub fn with_result_limit(mut self, bytes: usize) -> Self {
        self.result_limit = bytes;
        self
    }

    pub fn result_limit(&self) -> usize {
        self.result_limit
    }

    /// `GET <path>?limit=<n>[&cursor=<c>]`, parsed as a contract page.
    pub async fn split_page(
        &self,
        path: &str,
        run: &RunId,
        limit: u32,
        cursor: Option<&str>,
        timeout: Duration,
    ) -> Result<SplitPage, SplitPageError> {
        let mut path_and_query = format!("{path}?limit={limit}");
        if let Some(c) = cursor {
            path_and_query.push_str("&cursor=");
            path_and_query.push_str(&percent_encode(c));
        }
        let fail = |reason: String, retry_after| SplitPageError {
            cursor: cursor.map(str::to_string),
            reason,
            retry_after,
        };
        let by_contract = max_split_page_bytes(limit);
        let (max_answer, limit_name) = match self.page_limit {
            Some(bytes) if bytes < by_contract => (
                bytes,
                "what the splitter's memory holds of one page (`split.memory_mb`)",
            ),
            _ => (
                by_contract,
                "a page of `limit` items at the contract's item limits",
            ),
        };
        let call = Call {
            method: &Method::GET,
            path_and_query: &path_and_query,
            body: &[],
            run,
            seq: None,
            attempt: None,
            timeout,
            idempotency_key: None,
            max_answer,
            limit_name,
        };
        let d = self.send(call).await;
        if d.outcome != Outcome::Succeeded {
            return Err(fail(d.reason, d.retry_after));
        }
        let page = serde_json::from_slice::<SplitPage>(&d.body)
            .map_err(|e| fail(format!("the page is not a contract page: {e}"), None))?;
        if page.items.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
            return Err(fail(
                format!(
                    "the page has {} items, more than the `limit` of {limit} it was asked for",
                    page.items.len()
                ),
                None,
            ));
        }
        if let Some(next) = page.next.as_deref().filter(|n| n.len() > MAX_CURSOR_BYTES) {
            return Err(fail(
                format!(
                    "the `next` cursor is {} bytes; a cursor must be at most {MAX_CURSOR_BYTES} bytes",
                    next.len()
                ),
                None,
            ));
        }
        Ok(page)
    }

    /// The keys the client signs with; the kit's callback verifies reports with them.
    pub fn signing_keys(&self) -> &SigningKeys {
        &self.keys
    }

    /// `POST <path>` for one child.
    pub async fn process(
        &self,
        path: &str,
        request: &ProcessRequest,
        timeout: Duration,
    ) -> Delivery {
        let body = serde_json::to_vec(request).unwrap_or_default();
        self.send(Call {
            method: &Method::POST,
            path_and_query: path,
            body: &body,
            run: &request.run,
            seq: Some(request.seq),
            attempt: Some(request.attempt),
            timeout,
            idempotency_key: Some(&process_idempotency_key(&request.run, request.seq)),
            max_answer: self.result_limit,
            limit_name: "the result limit (`delivery.result_limit_kib`)",
        })
        .await
    }

    /// `POST <path>`: the run's one reduce.
    pub async fn reduce(&self, path: &str, request: &ReduceRequest, timeout: Duration) -> Delivery {
        let body = serde_json::to_vec(request).unwrap_or_default();
        self.send(Call {
            method: &Method::POST,
            path_and_query: path,
            body: &body,
            run: &request.run,
            seq: None,
            attempt: None,
            timeout,
            idempotency_key: Some(&reduce_idempotency_key(&request.run)),
            max_answer: REDUCE_BODY_BYTES,
            limit_name: "what the kit reads of a reduce answer",
        })
        .await
    }

    /// Sends the call; a 401 makes the client read the signing secret again, and when it
    /// changed (a rotation since this process started) the call is sent once more.
    async fn send(&self, call: Call<'_>) -> Delivery {
        let keys = self.keys.current();
        let delivery = self.send_once(&call, &keys).await;
        if delivery.status == Some(401) && self.keys.reread(&keys).await {
            return self.send_once(&call, &self.keys.current()).await;
        }
        delivery
    }

    async fn send_once(&self, call: &Call<'_>, keys: &[String]) -> Delivery {
        let Call {
            method,
            path_and_query,
            body,
            run,
            seq,
            attempt,
            timeout,
            idempotency_key,
            max_answer,
            limit_name,
        } = *call;
        let target = match self.base.target(path_and_query) {
            Ok(target) => target,
            Err(reason) => return failed_at_once(reason),
        };
        let t = Utc::now().timestamp();
        let signatures: Vec<String> = keys
            .iter()
            .map(|secret| sign(secret, t, method.as_str(), &target.path_and_query, body))
            .collect();
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        put(HEADER_CONTRACT, CONTRACT_VERSION);
        put(HEADER_NAME, &self.microprocess);
        put(HEADER_RUN, run.as_str());
        put(HEADER_SIGNATURE, &signature_header(t, &signatures));
        if let Some(k) = idempotency_key {
            put(HEADER_IDEMPOTENCY_KEY, k);
        }
        if let Some(s) = seq {
            put(HEADER_SEQ, &s.to_string());
        }
        if let Some(a) = attempt {
            put(HEADER_ATTEMPT, &a.to_string());
        }
        if *method == Method::POST {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_JSON));
        }
        let result = self
            .http
            .request(method.clone(), target.url)
            .headers(headers)
            .body(body.to_vec())
            .timeout(timeout)
            .send()
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => return failed_call(&e, timeout),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let outcome = Outcome::from_status(status.as_u16());
        let bound = if outcome == Outcome::Succeeded {
            max_answer
        } else {
            ERROR_BODY_BYTES
        };
        let body = match read_bounded(response, bound).await {
            Ok(Bounded::Whole(b)) => b,
            Ok(Bounded::Cut(b)) if outcome != Outcome::Succeeded => b,
            Ok(Bounded::Cut(_)) => {
                return failed_at_once(format!(
                    "HTTP {status}: the answer is over {max_answer} bytes, {limit_name}"
                ))
            }
            Err(e) => return failed_call(&e, timeout),
        };
        let reason = if outcome == Outcome::Succeeded {
            String::new()
        } else {
            status_reason(status, &body)
        };
        Delivery {
            outcome,
            status: Some(status.as_u16()),
            body,
            retry_after,
            reason,
        }
    }
}

/// The contract's result limit when the config sets none: 6 MiB.
pub const DEFAULT_RESULT_LIMIT: usize = 6 * 1024 * 1024;

/// One request, as [`ServiceClient::send`] makes it.
struct Call<'a> {
    method: &'a Method,
    path_and_query: &'a str,
    body: &'a [u8],
    run: &'a RunId,
    seq: Option<u64>,
    attempt: Option<u32>,
    timeout: Duration,
    idempotency_key: Option<&'a str>,
    /// The most of a 2xx answer that is read; more fails the call.
    max_answer: usize,
    /// What sets `max_answer`, for the reason.
    limit_name: &'static str,
}

/// A body read up to a bound.
enum Bounded {
    Whole(Vec<u8>),
    /// The first `bound` bytes of a longer body; the rest was never read.
    Cut(Vec<u8>),
}

/// Reads at most `bound` bytes of the body and stops there, so a hostile or broken service
/// cannot make the function hold more than the bound.
async fn read_bounded(
    mut response: reqwest::Response,
    bound: usize,
) -> Result<Bounded, reqwest::Error> {
    let announced = response
        .content_length()
        .and_then(|l| usize::try_from(l).ok());
    let mut body = Vec::with_capacity(announced.unwrap_or(0).min(bound));
    while let Some(chunk) = response.chunk().await? {
        let room = bound - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok(Bounded::Cut(body));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bounded::Whole(body))
}

/// A call that must not be retried: the answer itself breaks the contract.
fn failed_at_once(reason: String) -> Delivery {
    Delivery {
        outcome: Outcome::Failed,
        status: None,
        body: Vec::new(),
        retry_after: None,
        reason,
    }
}

fn failed_call(e: &reqwest::Error, timeout: Duration) -> Delivery {
    let reason = if e.is_timeout() {
        format!("no answer within {} s", timeout.as_secs_f32())
    } else {
        format!("connection failed: {}", error_chain(e))
    };
    Delivery {
        outcome: Outcome::Retry,
        status: None,
        body: Vec::new(),
        retry_after: None,
        reason,
    }
}

/// `HTTP 503 Service Unavailable: <start of the body>`.
pub fn status_reason(status: StatusCode, body: &[u8]) -> String {
    let text = crate::printable::printable(&String::from_utf8_lossy(body));
    let excerpt: String = text.chars().take(REASON_BODY_CHARS).collect();
    if excerpt.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {excerpt}")
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so an opaque cursor
/// survives the query string and the signed path-and-query is exactly what is sent.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:20:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn cursors_are_encoded() {
        assert_eq!(percent_encode("abc-1_2.3~"), "abc-1_2.3~");
        assert_eq!(percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn reasons_quote_the_body_briefly() {
        assert_eq!(
            status_reason(StatusCode::SERVICE_UNAVAILABLE, b""),
            "HTTP 503 Service Unavailable"
        );
        let long = "x".repeat(500);
        let r = status_reason(StatusCode::UNPROCESSABLE_ENTITY, long.as_bytes());
        assert!(r.starts_with("HTTP 422 Unprocessable Entity: xxx") && r.len() < 260);
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let s = || "s".to_string();
        assert!(ServiceClient::new("http://scores.internal", "m", s()).is_err());
        assert!(ServiceClient::new("http://127.0.0.1@evil.com", "m", s()).is_err());
        assert!(ServiceClient::new("http://127.0.0.1:8081", "m", s()).is_ok());
        assert!(ServiceClient::new("https://scores-queue.example.com/", "m", s()).is_ok());
    }
}
