//! A plain HTTP client that speaks the kit's side of the contract, for the tests.
#![allow(dead_code)]

pub mod receiver;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use demo_service::{Config, DemoService, RunningService};
use microprocess_shared::contract::{
    CONTRACT_VERSION, HEADER_ATTEMPT, HEADER_CALLBACK, HEADER_CONTRACT, HEADER_IDEMPOTENCY_KEY,
    HEADER_NAME, HEADER_RUN, HEADER_SEQ, HEADER_SIGNATURE,
};
use microprocess_shared::signing::{sign, signature_header};
use serde_json::{json, Value};

pub const SECRET: &str = "test-secret";
pub const MP: &str = "credit-scores";
pub const RUN: &str = "2026-11-01T02-00-00Z";

pub async fn start(config: Config) -> RunningService {
    DemoService::start(config)
        .await
        .expect("the demo service starts")
}

thread_local! {
    // Building a client costs tens of milliseconds; each test runs on its own thread.
    static CLIENT: reqwest::Client = reqwest::Client::builder().no_proxy().build().unwrap();
}

/// The test thread's HTTP client.
pub fn client() -> reqwest::Client {
    CLIENT.with(Clone::clone)
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// One request as the kit would send it, with knobs to break it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub t: i64,
    pub secrets: Vec<String>,
    /// Sign this path instead of the one sent.
    pub signed_path: Option<String>,
    /// Send this signature header as is.
    pub raw_signature: Option<String>,
    pub timeout: Option<Duration>,
}

impl Call {
    fn new(
        method: &'static str,
        path: String,
        body: Vec<u8>,
        microprocess: &str,
        run: &str,
    ) -> Call {
        let mut headers = vec![
            (HEADER_CONTRACT.to_owned(), CONTRACT_VERSION.to_owned()),
            (HEADER_NAME.to_owned(), microprocess.to_owned()),
            (HEADER_RUN.to_owned(), run.to_owned()),
        ];
        if method == "POST" {
            headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
        }
        Call {
            method,
            path,
            body,
            headers,
            t: now(),
            secrets: vec![SECRET.to_owned()],
            signed_path: None,
            raw_signature: None,
            timeout: None,
        }
    }

    pub fn split(microprocess: &str, run: &str, query: &str) -> Call {
        Call::new(
            "GET",
            format!("/microprocesses/{microprocess}/split?{query}"),
            Vec::new(),
            microprocess,
            run,
        )
    }

    pub fn process(microprocess: &str, run: &str, seq: u64, attempt: u32) -> Call {
        let item = format!("ACN-{:09}", seq + 1);
        let body = json!({"microprocess": microprocess, "run": run, "seq": seq, "item": item,
                          "payload": {"account": seq + 1}, "attempt": attempt});
        Call::new(
            "POST",
            format!("/microprocesses/{microprocess}/process"),
            serde_json::to_vec(&body).unwrap(),
            microprocess,
            run,
        )
        .header(HEADER_SEQ, &seq.to_string())
        .header(HEADER_ATTEMPT, &attempt.to_string())
        .header(HEADER_IDEMPOTENCY_KEY, &format!("{run}/{seq}"))
    }

    pub fn reduce(microprocess: &str, run: &str, total: u64, succeeded: u64, failed: u64) -> Call {
        let body = json!({"microprocess": microprocess, "run": run, "total": total,
                          "succeeded": succeeded, "failed": failed,
                          "started_at": "2026-11-01T02:00:00Z",
                          "split_done_at": "2026-11-01T02:07:12Z",
                          "results": {"table": "ledger",
                                      "partition_keys": [format!("RUN#{microprocess}#{run}#0"),
                                                         format!("RUN#{microprocess}#{run}#1")],
                                      "bucket": null}});
        Call::new(
            "POST",
            format!("/microprocesses/{microprocess}/reduce"),
            serde_json::to_vec(&body).unwrap(),
            microprocess,
            run,
        )
        .header(HEADER_IDEMPOTENCY_KEY, &format!("{run}/reduce"))
    }

    /// A long task's call (contract 1.1): `callback` in the body and in
    /// `X-Microprocess-Callback`, as the kit sends it.
    pub fn with_callback(self, url: &str) -> Call {
        self.with_body_callback(url).header(HEADER_CALLBACK, url)
    }

    /// `callback` in the body only.
    pub fn with_body_callback(mut self, url: &str) -> Call {
        let mut body: Value = serde_json::from_slice(&self.body).expect("a JSON body");
        body["callback"] = Value::from(url);
        self.body = serde_json::to_vec(&body).unwrap();
        self
    }

    /// Sets a header, replacing any of the same name.
    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn without_header(mut self, name: &str) -> Call {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    pub fn signed_at(mut self, t: i64) -> Call {
        self.t = t;
        self
    }

    pub fn signed_with(mut self, secrets: &[&str]) -> Call {
        self.secrets = secrets.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Call {
        self.timeout = Some(timeout);
        self
    }

    pub fn signature(&self) -> String {
        if let Some(raw) = &self.raw_signature {
            return raw.clone();
        }
        let path = self.signed_path.as_deref().unwrap_or(&self.path);
        let values: Vec<String> = self
            .secrets
            .iter()
            .map(|secret| sign(secret, self.t, self.method, path, &self.body))
            .collect();
        signature_header(self.t, &values)
    }

    pub async fn send(self, base: &str) -> Result<Reply, reqwest::Error> {
        let client = client();
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).unwrap();
        let mut request = client
            .request(method, format!("{base}{}", self.path))
            .header(HEADER_SIGNATURE, self.signature())
            .body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(timeout) = self.timeout {
            request = request.timeout(timeout);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// [`Call::answer`] with an owned base URL, for spawned tasks.
    pub async fn answer_owned(self, base: String) -> Reply {
        self.answer(&base).await
    }

    /// Sends and expects an answer (any status).
    pub async fn answer(self, base: &str) -> Reply {
        self.send(base).await.expect("the service answers")
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "status {}: body is not JSON ({error}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error` code of an error answer.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// A plain unsigned GET, for the live host and `/_demo`.
pub async fn get(url: &str) -> Reply {
    let client = client();
    let response = client.get(url).send().await.unwrap();
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

/// A plain unsigned request with a body, for `/_demo`.
pub async fn send_unsigned(method: &str, url: &str, body: &str) -> Reply {
    let client = client();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = client
        .request(method, url)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.unwrap().to_vec(),
    }
}
