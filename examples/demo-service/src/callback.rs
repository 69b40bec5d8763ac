//! Reports to a long task's callback (contract 1.1, section 2b): `POST <callback>` with a
//! JSON [`CallbackReport`], signed as the kit signs its requests. The header is
//! `X-Microprocess-Signature: t=<unix seconds>,v1=<hex>` over
//! `<t>.POST.<path-and-query of the callback URL>.<raw body>`, with one `v1` for each
//! secret of the config (every key during a rotation).
//!
//! A try answered 5xx, 408 or 429, or not answered at all (connection error, timeout), is
//! made again after a short backoff (100 ms, doubling), up to five tries. Any other answer
//! ends the report: 200, and the kit's 400, 401 and 404 are counted in the stats and not
//! tried again. Redirects are not followed, and no proxy is used: the callback is called
//! as given, `http://127.0.0.1:<port>/...` included.

use std::sync::OnceLock;
use std::time::Duration;

use microprocess_shared::contract::{
    CallbackReport, CONTENT_TYPE_JSON, CONTRACT_VERSION, HEADER_CONTRACT, HEADER_NAME, HEADER_RUN,
    HEADER_SIGNATURE,
};
use microprocess_shared::signing::{sign, signature_header};
use reqwest::header::CONTENT_TYPE;
use reqwest::redirect::Policy;
use reqwest::{Client, Url};

use crate::auth::unix_now;
use crate::state::Shared;

/// Tries of one report, the first included.
const TRIES: u32 = 5;
/// Wait before the second try; it doubles before each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait for the answer of one try.
const TRY_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a report is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signing {
    /// With every secret of the config.
    Right,
    /// With a key that is none of them (`--bad-signature-report-seqs`): tried once.
    WrongKey,
}

/// The HTTP client of the reports, built on first use: most services never report, and
/// building one takes tens of milliseconds.
#[derive(Default)]
pub(crate) struct Reporter {
    client: OnceLock<Option<Client>>,
}

impl Reporter {
    fn client(&self) -> Option<&Client> {
        self.client
            .get_or_init(|| {
                let built = Client::builder()
                    .no_proxy()
                    .redirect(Policy::none())
                    .timeout(TRY_TIMEOUT)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build();
                built
                    .inspect_err(|error| {
                        tracing::error!(%error, "cannot build the HTTP client of the reports");
                    })
                    .ok()
            })
            .as_ref()
    }
}

/// Sends `report` of `microprocess` to `callback`, trying again as the module says, and
/// returns the status of the last try (`None`: it got no answer).
pub(crate) async fn send(
    shared: &Shared,
    microprocess: &str,
    callback: &Url,
    report: &CallbackReport,
    signing: Signing,
) -> Option<u16> {
    shared.count_report(report.outcome);
    let Some(client) = shared.reporter.client() else {
        shared.count_report_answer(None);
        return None;
    };
    let body = serde_json::to_vec(report).unwrap_or_default();
    let tries = match signing {
        Signing::Right => TRIES,
        Signing::WrongKey => 1,
    };
    let mut backoff = FIRST_BACKOFF;
    let mut tried = 1;
    loop {
        let sent = Sent {
            client,
            microprocess,
            callback,
            report,
            body: &body,
        };
        let answer = sent.once(shared, signing).await;
        shared.count_report_answer(answer);
        let again = answer.is_none_or(is_transient);
        if !again || tried >= tries {
            if !answer.is_some_and(|status| (200..300).contains(&status)) {
                tracing::warn!(
                    microprocess,
                    run = %report.run,
                    seq = report.seq,
                    attempt = report.attempt,
                    outcome = ?report.outcome,
                    status = ?answer,
                    tries = tried,
                    ?signing,
                    "the callback did not take the report"
                );
            }
            return answer;
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
        tried += 1;
    }
}

/// What one try sends.
struct Sent<'a> {
    client: &'a Client,
    microprocess: &'a str,
    callback: &'a Url,
    report: &'a CallbackReport,
    body: &'a [u8],
}

impl Sent<'_> {
    async fn once(&self, shared: &Shared, signing: Signing) -> Option<u16> {
        let t = unix_now();
        let path_and_query = path_and_query(self.callback);
        let secrets = &shared.config.secrets;
        let signatures: Vec<String> = match signing {
            Signing::Right => secrets
                .iter()
                .map(|secret| sign(secret, t, "POST", &path_and_query, self.body))
                .collect(),
            Signing::WrongKey => vec![sign(
                &wrong_key(secrets),
                t,
                "POST",
                &path_and_query,
                self.body,
            )],
        };
        let sent = self
            .client
            .post(self.callback.clone())
            .header(CONTENT_TYPE, CONTENT_TYPE_JSON)
            .header(HEADER_CONTRACT, CONTRACT_VERSION)
            .header(HEADER_NAME, self.microprocess)
            .header(HEADER_RUN, self.report.run.as_str())
            .header(HEADER_SIGNATURE, signature_header(t, &signatures))
            .body(self.body.to_vec())
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read to the end, so the connection goes back to the pool.
                let _ = response.bytes().await;
                Some(status)
            }
            Err(error) => {
                tracing::debug!(callback = %self.callback, %error, "a report got no answer");
                None
            }
        }
    }
}

/// The path and query the request line carries, as signed: the URL's path (as the URL
/// parser encoded it) and its query, without the fragment, which is never sent.
pub(crate) fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Answers worth another try: the kit's own retry table for a process call.
fn is_transient(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// A key that is none of `secrets`.
fn wrong_key(secrets: &[String]) -> String {
    let mut key = String::from("not-the-signing-secret");
    while secrets.contains(&key) {
        key.push('!');
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_path_is_the_request_line_s() {
        let url = Url::parse("http://127.0.0.1:9/kit/callback?run=r1&x=a%20b#frag").unwrap();
        assert_eq!(path_and_query(&url), "/kit/callback?run=r1&x=a%20b");
        let url = Url::parse("https://kit.example.com").unwrap();
        assert_eq!(path_and_query(&url), "/");
    }

    #[test]
    fn transient_answers_are_tried_again() {
        for status in [500, 502, 503, 504, 408, 429] {
            assert!(is_transient(status), "{status}");
        }
        for status in [200, 202, 301, 400, 401, 404, 409, 422] {
            assert!(!is_transient(status), "{status}");
        }
    }

    #[test]
    fn the_wrong_key_is_no_secret() {
        let secrets = vec!["not-the-signing-secret".to_owned(), "s".to_owned()];
        assert!(!secrets.contains(&wrong_key(&secrets)));
    }
}
