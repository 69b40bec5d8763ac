//! The kit's HTTP client for a service's queue host: every request signed and carrying the
//! contract headers, redirects never followed, a timeout per request, and each answer
//! classified as the contract says.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use thiserror::Error;

use crate::contract::{
    process_idempotency_key, reduce_idempotency_key, Outcome, ProcessRequest, ReduceRequest,
    SplitPage, CONTENT_TYPE_JSON, CONTRACT_VERSION, HEADER_ATTEMPT, HEADER_CONTRACT,
    HEADER_IDEMPOTENCY_KEY, HEADER_NAME, HEADER_RUN, HEADER_SEQ, HEADER_SIGNATURE,
};
use crate::errors::error_chain;
use crate::run_id::RunId;
use crate::signing::{sign, signature_header};

/// How much of a failing response body a reason quotes.
const REASON_BODY_CHARS: usize = 200;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("queue base URL `{0}` must start with https:// (or http:// for a loopback address)")]
    BadBaseUrl(String),
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
    base_url: String,
    microprocess: String,
    secret: String,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("base_url", &self.base_url)
            .field("microprocess", &self.microprocess)
            .finish_non_exhaustive()
    }
}

impl ServiceClient {
    /// `base_url` is the queue host (`https://scores-queue.example.com`, or a loopback
    /// `http://127.0.0.1:8081` locally); `secret` signs every request.
    pub fn new(base_url: &str, microprocess: &str, secret: String) -> Result<Self, ClientError> {
        let base_url = base_url.trim_end_matches('/').to_string();
        let loopback = ["http://127.", "http://localhost", "http://[::1]"];
        if !base_url.starts_with("https://") && !loopback.iter().any(|p| base_url.starts_with(p)) {
            return Err(ClientError::BadBaseUrl(base_url));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(50))
            .build()
            .map_err(ClientError::Build)?;
        Ok(ServiceClient {
            http,
            base_url,
            microprocess: microprocess.to_string(),
            secret,
        })
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
        let d = self
            .send(
                Method::GET,
                &path_and_query,
                Vec::new(),
                run,
                None,
                None,
                timeout,
                None,
            )
            .await;
        if d.outcome != Outcome::Succeeded {
            return Err(fail(d.reason, d.retry_after));
        }
        serde_json::from_slice::<SplitPage>(&d.body)
            .map_err(|e| fail(format!("the page is not a contract page: {e}"), None))
    }

    /// `POST <path>` for one child.
    pub async fn process(
        &self,
        path: &str,
        request: &ProcessRequest,
        timeout: Duration,
    ) -> Delivery {
        let body = serde_json::to_vec(request).unwrap_or_default();
        let key = process_idempotency_key(&request.run, request.seq);
        self.send(
            Method::POST,
            path,
            body,
            &request.run,
            Some(request.seq),
            Some(request.attempt),
            timeout,
            Some(key),
        )
        .await
    }

    /// `POST <path>`: the run's one reduce.
    pub async fn reduce(&self, path: &str, request: &ReduceRequest, timeout: Duration) -> Delivery {
        let body = serde_json::to_vec(request).unwrap_or_default();
        let key = reduce_idempotency_key(&request.run);
        self.send(
            Method::POST,
            path,
            body,
            &request.run,
            None,
            None,
            timeout,
            Some(key),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
        run: &RunId,
        seq: Option<u64>,
        attempt: Option<u32>,
        timeout: Duration,
        idempotency_key: Option<String>,
    ) -> Delivery {
        let t = Utc::now().timestamp();
        let signature = sign(&self.secret, t, method.as_str(), path_and_query, &body);
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        put(HEADER_CONTRACT, CONTRACT_VERSION);
        put(HEADER_NAME, &self.microprocess);
        put(HEADER_RUN, run.as_str());
        put(HEADER_SIGNATURE, &signature_header(t, &[signature]));
        if let Some(k) = &idempotency_key {
            put(HEADER_IDEMPOTENCY_KEY, k);
        }
        if let Some(s) = seq {
            put(HEADER_SEQ, &s.to_string());
        }
        if let Some(a) = attempt {
            put(HEADER_ATTEMPT, &a.to_string());
        }
        if method == Method::POST {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_JSON));
        }
        let url = format!("{}{path_and_query}", self.base_url);
        let result = self
            .http
            .request(method, &url)
            .headers(headers)
            .body(body)
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
        let body = match response.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => return failed_call(&e, timeout),
        };
        let outcome = Outcome::from_status(status.as_u16());
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
    let text = String::from_utf8_lossy(body);
    let excerpt: String = text.chars().take(REASON_BODY_CHARS).collect();
    let excerpt = excerpt.split_whitespace().collect::<Vec<_>>().join(" ");
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
        assert!(ServiceClient::new("http://scores.internal", "m", "s".into()).is_err());
        assert!(ServiceClient::new("http://127.0.0.1:8081", "m", "s".into()).is_ok());
        assert!(ServiceClient::new("https://scores-queue.example.com/", "m", "s".into()).is_ok());
    }
}
