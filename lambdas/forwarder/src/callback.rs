//! The callback: where a service reports the outcome of a `202 Accepted` (contract 1.1,
//! section 2b). It runs as its own Lambda function behind a function URL (`bin/callback`)
//! and shares the forwarder's recording, so a reported child is counted by the same rules
//! as an answered one.
//!
//! `POST /report` with a signed JSON body `{run, seq, attempt, outcome, result?, reason?}`:
//!
//! | answer | when |
//! |---|---|
//! | `200` | recorded, or recorded before (the first terminal report counts), or a heartbeat that renewed the lease; also a report for a run that has ended (nothing is recorded) |
//! | `400` | the body is not a report, or names an attempt never made |
//! | `401` | the signature is missing, malformed, stale or matches no current key |
//! | `404` | unknown run, or a seq the run has not accepted; any other path |
//! | `405` | a method other than `POST` |
//! | `503` | the ledger cannot be reached now: report again (`Retry-After`) |

use aws_lambda_events::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine as _;
use chrono::Utc;
use microprocess_shared::contract::{
    CallbackReport, ReportOutcome, CALLBACK_PATH, HEADER_SIGNATURE,
};
use microprocess_shared::ledger::{ChildOutcome, Claim, LedgerError};
use microprocess_shared::ledger_keys::{ChildState, RunState};
use microprocess_shared::run_id::RunId;
use microprocess_shared::signing::{verify, VerifyError, MAX_SKEW_SECONDS};
use serde_json::json;

use crate::Forwarder;

/// A report's answer, before it becomes the function URL's response.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Answer {
    fn new(status: u16, body: serde_json::Value) -> Answer {
        Answer { status, body }
    }

    fn error(status: u16, message: impl Into<String>) -> Answer {
        Answer::new(status, json!({ "error": message.into() }))
    }

    fn recorded(note: &str) -> Answer {
        Answer::new(200, json!({ "recorded": true, "note": note }))
    }

    /// The function URL response.
    pub fn into_response(self) -> LambdaFunctionUrlResponse {
        let mut response = LambdaFunctionUrlResponse::default();
        response.status_code = i64::from(self.status);
        response.headers.insert(
            "content-type",
            aws_lambda_events::http::HeaderValue::from_static("application/json"),
        );
        if self.status == 503 {
            response.headers.insert(
                "retry-after",
                aws_lambda_events::http::HeaderValue::from_static("5"),
            );
        }
        response.body = Some(self.body.to_string());
        response
    }
}

fn unavailable(error: &LedgerError) -> Answer {
    tracing::error!(%error, "the ledger cannot be reached; the service reports again");
    Answer::error(503, "the ledger cannot be reached now; report again")
}

impl Forwarder {
    /// Handles one request to the callback's URL.
    pub async fn report(&self, request: &LambdaFunctionUrlRequest) -> Answer {
        let method = request
            .request_context
            .http
            .method
            .as_deref()
            .unwrap_or_default();
        let path = request.raw_path.as_deref().unwrap_or("/");
        if path != CALLBACK_PATH {
            return Answer::error(
                404,
                format!("no such path; reports go to `POST {CALLBACK_PATH}`"),
            );
        }
        if !method.eq_ignore_ascii_case("POST") {
            return Answer::error(405, format!("reports go to `POST {CALLBACK_PATH}`"));
        }
        let body = match body_of(request) {
            Ok(body) => body,
            Err(why) => return Answer::error(400, why),
        };
        let path_and_query = match request.raw_query_string.as_deref() {
            Some(q) if !q.is_empty() => format!("{path}?{q}"),
            _ => path.to_string(),
        };
        let header = request
            .headers
            .get(HEADER_SIGNATURE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if let Err(error) = self.verify(header, &path_and_query, &body).await {
            tracing::warn!(%error, "a report with a bad signature; refused");
            return Answer::error(401, error.to_string());
        }
        let report: CallbackReport = match serde_json::from_slice(&body) {
            Ok(report) => report,
            Err(error) => {
                return Answer::error(
                    400,
                    format!(
                        "the body is not a report ({error}); expected {{\"run\", \"seq\", \"attempt\", \"outcome\": \"succeeded\" | \"failed\" | \"heartbeat\", \"result\"?, \"reason\"?}}"
                    ),
                )
            }
        };
        if report.attempt == 0 {
            return Answer::error(400, "`attempt` starts at 1");
        }
        self.record_report(&report).await
    }

    async fn verify(
        &self,
        header: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        let keys = self.service.signing_keys();
        let check = |current: &[String]| {
            let secrets: Vec<&str> = current.iter().map(String::as_str).collect();
            verify(
                &secrets,
                header,
                "POST",
                path_and_query,
                body,
                Utc::now().timestamp(),
                MAX_SKEW_SECONDS,
            )
        };
        let current = keys.current();
        match check(&current) {
            // A service that already signs with a rotated key: read the secret again.
            Err(VerifyError::Mismatch) if keys.reread(&current).await => check(&keys.current()),
            other => other,
        }
    }

    async fn record_report(&self, report: &CallbackReport) -> Answer {
        let run = &report.run;
        let seq = report.seq;
        let record = match self.ledger.run(self.name(), run).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                return Answer::error(
                    404,
                    format!("run `{run}` of `{}` is not in the ledger", self.name()),
                )
            }
            Err(error) => return unavailable(&error),
        };
        if matches!(record.state, RunState::Cancelled | RunState::SplitFailed) {
            tracing::info!(%run, seq, state = %record.state, "a report for a run that has ended; nothing recorded");
            return Answer::new(
                200,
                json!({ "recorded": false, "note": format!("the run ended {}", record.state) }),
            );
        }
        let lease = match self.ledger.lease(self.name(), run, seq).await {
            Ok(lease) => lease,
            Err(error) => return unavailable(&error),
        };
        let Some(lease) = lease else {
            return self.without_lease(run, seq).await;
        };
        if report.attempt > lease.attempt {
            return Answer::error(
                400,
                format!(
                    "attempt {} of seq {seq} was never made (the latest is {})",
                    report.attempt, lease.attempt
                ),
            );
        }
        if report.outcome == ReportOutcome::Heartbeat {
            let lease_time = self.settings.lease.unwrap_or_default();
            let until = Utc::now() + chrono::Duration::from_std(lease_time).unwrap_or_default();
            return match self.ledger.renew_lease(self.name(), run, seq, until).await {
                Ok(true) => Answer::new(
                    200,
                    json!({ "recorded": true, "lease_until": until.to_rfc3339() }),
                ),
                Ok(false) => Answer::recorded("the child was already reported"),
                Err(error) => unavailable(&error),
            };
        }
        let outcome = match self
            .outcome_of(report, &lease.item, lease.attempt.max(report.attempt))
            .await
        {
            Ok(outcome) => outcome,
            Err(answer) => return answer,
        };
        let counted = match self.ledger.claim_report(self.name(), run, &outcome).await {
            Ok(Claim::Claimed) => outcome,
            Ok(Claim::AlreadyReported(first)) => {
                tracing::info!(%run, seq, "a later report; the first one counts");
                first
            }
            Ok(Claim::NoLease) => return self.without_lease(run, seq).await,
            Err(error) => return unavailable(&error),
        };
        match self
            .ledger
            .record_children(self.name(), run, std::slice::from_ref(&counted), Utc::now())
            .await
        {
            Ok(recorded) => {
                self.close_leases(run, &[seq]).await;
                if self.check_tolerance(&recorded.run).await {
                    return Answer::recorded(
                        "recorded; the run is cancelled, its failures past the tolerance",
                    );
                }
                if recorded.complete {
                    self.claim_and_send_reduce(&recorded.run, false).await;
                }
                tracing::info!(%run, seq, state = %counted.state, "reported outcome recorded");
                Answer::recorded(if recorded.duplicates.is_empty() {
                    "recorded"
                } else {
                    "already recorded"
                })
            }
            // The claim stands: the next report, or the forwarder's check of the lease,
            // counts it.
            Err(error) => unavailable(&error),
        }
    }

    /// A report for a child with no lease: counted before (its lease closed), or never
    /// accepted.
    async fn without_lease(&self, run: &RunId, seq: u64) -> Answer {
        match self.ledger.child_state(self.name(), run, seq).await {
            Ok(ChildState::Succeeded | ChildState::Failed) => Answer::recorded("already recorded"),
            Ok(ChildState::Pending) => Answer::error(
                404,
                format!("seq {seq} of run `{run}` has not been accepted"),
            ),
            Err(error) => unavailable(&error),
        }
    }

    /// The child outcome a terminal report stands for, its result stored as a 2xx body's.
    async fn outcome_of(
        &self,
        report: &CallbackReport,
        item: &str,
        attempts: u32,
    ) -> Result<ChildOutcome, Answer> {
        let failed = |reason: String| ChildOutcome {
            seq: report.seq,
            item: item.to_string(),
            state: ChildState::Failed,
            attempts,
            result: None,
            reason: Some(reason),
        };
        if report.outcome == ReportOutcome::Failed {
            return Ok(failed(
                report
                    .reason
                    .clone()
                    .unwrap_or_else(|| "reported failed".into()),
            ));
        }
        let body = match &report.result {
            None => Vec::new(),
            Some(value) => serde_json::to_vec(value).unwrap_or_default(),
        };
        if body.len() > self.settings.result_limit {
            return Ok(failed(format!(
                "the reported result is {} bytes, over the result limit (`delivery.result_limit_kib`) of {} bytes",
                body.len(),
                self.settings.result_limit
            )));
        }
        match self.store_result(&report.run, report.seq, &body).await {
            Ok(result) => Ok(ChildOutcome {
                seq: report.seq,
                item: item.to_string(),
                state: ChildState::Succeeded,
                attempts,
                result,
                reason: None,
            }),
            Err(reason) => {
                tracing::error!(run = %report.run, seq = report.seq, %reason, "cannot store the reported result");
                Err(Answer::error(
                    503,
                    "the result cannot be stored now; report again",
                ))
            }
        }
    }
}

/// The callback URL of `function` (its function URL, which ends in `/`, then
/// [`CALLBACK_PATH`]), read from Lambda.
pub async fn url_of(
    config: &aws_config::SdkConfig,
    function: Option<&str>,
) -> Result<String, String> {
    let function = function.ok_or(
        "LEASE_SECONDS is set but neither CALLBACK_URL nor CALLBACK_FUNCTION: callback completion needs the callback",
    )?;
    let got = aws_sdk_lambda::Client::new(config)
        .get_function_url_config()
        .function_name(function)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot read the function URL of the callback `{function}`: {}",
                microprocess_shared::errors::error_chain(&e)
            )
        })?;
    Ok(format!(
        "{}/{}",
        got.function_url().trim_end_matches('/'),
        CALLBACK_PATH.trim_start_matches('/')
    ))
}

/// The request's raw body (a function URL base64-encodes bodies it does not take for text).
fn body_of(request: &LambdaFunctionUrlRequest) -> Result<Vec<u8>, String> {
    let body = request.body.as_deref().unwrap_or_default();
    if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| format!("the body is not valid base64: {e}"))
    } else {
        Ok(body.as_bytes().to_vec())
    }
}
