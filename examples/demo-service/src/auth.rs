//! The checks every contract request passes before its handler runs: the signature
//! over the exact bytes received, then the contract version.
//!
//! This is the part a service in another language copies: read the raw body before
//! parsing it, sign `<t>.<METHOD>.<path-and-query as received>.<body>`, compare with each
//! `v1`, and refuse a `t` more than 300 s away.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{to_bytes, Body};
use axum::extract::{OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use microprocess_shared::contract::{CONTRACT_VERSION, HEADER_CONTRACT, HEADER_SIGNATURE};
use microprocess_shared::signing::{verify, VerifyError};

use crate::error::ApiError;
use crate::state::Shared;

/// Largest request body read; a process body holds at most a 64 KiB payload.
const MAX_BODY_BYTES: usize = 1024 * 1024;

pub(crate) async fn check_signature(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return reject(
                &shared,
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the body is over {MAX_BODY_BYTES} bytes or could not be read"),
                ),
            )
        }
    };

    let Some(header) = parts.headers.get(HEADER_SIGNATURE) else {
        return reject(
            &shared,
            ApiError::unauthorized(
                "signature_missing",
                format!("no `{HEADER_SIGNATURE}` header; sign every request with the environment's secret"),
            ),
        );
    };
    let Ok(header) = header.to_str() else {
        return reject(
            &shared,
            ApiError::unauthorized(
                "signature_malformed",
                format!("`{HEADER_SIGNATURE}` is not ASCII; expected `t=<unix seconds>,v1=<hex>`"),
            ),
        );
    };
    // The path and query exactly as received: re-encoding them would change what was
    // signed. Under a path prefix the router strips the prefix, and the request line
    // (which the kit signed) is the original URI.
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| uri.path(), |pq| pq.as_str());
    let secrets: Vec<&str> = shared.config.secrets.iter().map(String::as_str).collect();
    let checked = verify(
        &secrets,
        header,
        parts.method.as_str(),
        path_and_query,
        &body,
        unix_now(),
        shared.config.max_skew_seconds,
    );
    if let Err(error) = checked {
        let code = match error {
            VerifyError::Malformed { .. } => "signature_malformed",
            VerifyError::Stale { .. } => "signature_stale",
            VerifyError::Mismatch => "signature_mismatch",
        };
        tracing::warn!(code, path = path_and_query, %error, "refused a request whose signature does not hold");
        return reject(&shared, ApiError::unauthorized(code, error.to_string()));
    }

    let version = parts.headers.get(HEADER_CONTRACT).map(|v| v.as_bytes());
    if version != Some(CONTRACT_VERSION.as_bytes()) {
        let got = version.map_or("no header".to_owned(), |v| {
            format!("`{}`", String::from_utf8_lossy(v))
        });
        return reject(
            &shared,
            ApiError::bad_request(
                "contract_version",
                format!(
                    "`{HEADER_CONTRACT}` is {got}; this service speaks contract \
                     `{CONTRACT_VERSION}`"
                ),
            ),
        );
    }

    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// Counts a rejection in the stats and answers it.
pub(crate) fn reject(shared: &Shared, error: ApiError) -> Response {
    shared.reject(error.code);
    error.into_response()
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}
