//! The queue host: split, process and reduce for every configured microprocess, behind
//! the signature check, plus the unsigned `/_demo` routes for tests and the demo.
//!
//! Besides the signature, each handler checks that the request agrees with itself (path,
//! headers and body name the same microprocess, run and seq; the `Idempotency-Key` is the
//! one the contract prescribes; the item is the one this service listed at that seq) and
//! answers 400 when it does not: as the kit's reference service, it makes a kit bug
//! visible as a failed child instead of letting it through.
//!
//! A process call that carries a callback (contract 1.1, section 2b) meets the same
//! checks and chaos, then is answered `202 Accepted` and handed to [`crate::long_task`].

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use microprocess_shared::contract::{
    process_idempotency_key, reduce_idempotency_key, ProcessRequest, ReduceRequest, SplitPage,
    CONTENT_TYPE_JSON, HEADER_ATTEMPT, HEADER_CALLBACK, HEADER_IDEMPOTENCY_KEY, HEADER_NAME,
    HEADER_RUN, HEADER_SEQ,
};
use microprocess_shared::run_id::RunId;
use reqwest::Url;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{check_signature, reject};
use crate::chaos::Chaos;
use crate::error::ApiError;
use crate::long_task::{self, Accepted, Task};
use crate::paging;
use crate::report;
use crate::score::Score;
use crate::state::{Answer, ProcessCall, Shared};

/// Set on an answer given again for an `Idempotency-Key` already answered.
pub const HEADER_REPLAYED: &str = "idempotent-replayed";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let contract = Router::new()
        .route("/microprocesses/{name}/split", get(split))
        .route("/microprocesses/{name}/process", post(process))
        .route("/microprocesses/{name}/reduce", post(reduce))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            check_signature,
        ));
    let demo = Router::new()
        .route("/_demo/stats", get(stats))
        .route("/_demo/fix", post(fix))
        .route("/_demo/chaos", get(chaos).put(set_chaos));
    let routes = contract.merge(demo);
    let prefix = shared.config.path_prefix.clone();
    let routes = if prefix.is_empty() {
        routes
    } else {
        Router::new().nest(&prefix, routes)
    };
    routes.fallback(not_found).with_state(shared)
}

/// The page as chaos spoils it: ids SQS cannot carry, one item too many, long cursors.
fn misbehave(chaos: &Chaos, start: u64, page: &mut SplitPage) {
    for (seq, item) in (start..).zip(page.items.iter_mut()) {
        if chaos.uncarriable(seq) {
            item.id.push('\u{FFFF}');
        }
    }
    if chaos.split_overfill {
        if let Some(last) = page.items.last().cloned() {
            page.items.push(last);
        }
    }
    if let Some(next) = page.next.as_mut() {
        while next.len() < chaos.cursor_bytes {
            next.push('.');
        }
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "nothing at `{}`; the contract paths are /microprocesses/<name>/split|process|reduce",
            uri.path()
        ),
    )
}

// ---- split --------------------------------------------------------------------------

#[derive(Deserialize)]
struct SplitQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

async fn split(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let run = match request_run(&shared, &name, &headers) {
        Ok(run) => run,
        Err(error) => return reject(&shared, error),
    };
    let query = match Query::<SplitQuery>::try_from_uri(&uri) {
        Ok(Query(query)) => query,
        Err(error) => {
            return reject(
                &shared,
                ApiError::bad_request(
                    "bad_query",
                    format!("the query is not `limit=<n>[&cursor=<c>]`: {error}"),
                ),
            )
        }
    };
    let calls = shared.with_run(&name, run.as_str(), |stats| {
        stats.split_calls += 1;
        stats.split_calls
    });
    let chaos = shared.chaos();
    if calls <= u64::from(chaos.split_failures) {
        tracing::info!(microprocess = %name, %run, calls, "split: injected 500");
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected_split_failure",
            format!(
                "split call {calls} of this run fails on purpose (--split-failures {})",
                chaos.split_failures
            ),
        )
        .into_response();
    }
    let items = shared.config.items_for(&name);
    let cursor = query.cursor.as_deref();
    let page = paging::parse_limit(query.limit.as_deref()).and_then(|limit| {
        Ok((
            paging::start_of(items, cursor)?,
            paging::page(items, cursor, limit)?,
        ))
    });
    match page {
        Ok((start, mut page)) => {
            misbehave(&chaos, start, &mut page);
            tracing::debug!(microprocess = %name, %run, items = page.items.len(), "split page");
            Json(page).into_response()
        }
        Err(error) => reject(
            &shared,
            ApiError::bad_request("bad_page_request", error.to_string()),
        ),
    }
}

// ---- process ------------------------------------------------------------------------

async fn process(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let read = match read_process(&shared, &name, &headers, &body) {
        Ok(read) => read,
        Err(error) => return reject(&shared, error),
    };
    let (run, request, key) = (&read.run, &read.request, &read.key);
    let (seq, attempt) = (request.seq, request.attempt);
    let call = shared.begin_process(&name, run.as_str(), seq, &request.item, attempt);
    // A long task holding a late report waits for a later attempt's arrival.
    shared.long_tasks.arrived();

    if let Some(answer) = shared.answer(&name, key) {
        call.finish(answer.status, true, None);
        return answer_response(answer, true);
    }

    let chaos = shared.chaos();
    if let Some(wait) = retry_after(&chaos, &shared, &name, run.as_str(), seq, &call) {
        call.finish(429, false, None);
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "injected_retry_after",
            format!("seq {seq} is asked to come back in {wait} s on purpose (--retry-after)"),
        )
        .with_retry_after(wait)
        .into_response();
    }

    let mut delay = chaos.delay_ms;
    let slow = chaos.is_slow(seq, attempt);
    if slow {
        delay += chaos.slow_ms;
    }
    let delay = Duration::from_millis(delay);
    if slow && chaos.late_answers {
        // The work is done and recorded now; only the answer is late, so a caller that
        // gives up first finds it done when it comes back.
        let response = work(&shared, &chaos, &name, &read, call);
        tokio::time::sleep(delay).await;
        return response;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    work(&shared, &chaos, &name, &read, call)
}

/// A process request, read and cross-checked.
struct ProcessRead {
    run: RunId,
    request: ProcessRequest,
    /// The `Idempotency-Key`, `<run>/<seq>`.
    key: String,
    /// Where a long task reports (contract 1.1): the body's `callback` or the header.
    callback: Option<Url>,
}

/// The answer of a process call past the idempotency record, `--retry-after` and the
/// delays: the injected failures, else the score, kept for replays, or, with a callback,
/// a `202` and a long task.
fn work(
    shared: &Arc<Shared>,
    chaos: &Chaos,
    name: &str,
    read: &ProcessRead,
    call: ProcessCall,
) -> Response {
    let (run, request, key) = (&read.run, &read.request, read.key.as_str());
    let (seq, attempt) = (request.seq, request.attempt);
    if chaos.hostile_error(seq) {
        call.finish(422, false, None);
        // Clears the screen, turns text red, rings the bell, and holds bytes that no SQS
        // attribute can carry.
        let body = "\u{1b}[2J\u{1b}[31mrefused\u{7}\u{0}\u{1}\u{9b}31m for good\u{1b}]0;owned\u{7}";
        return (StatusCode::UNPROCESSABLE_ENTITY, body).into_response();
    }
    if chaos.fails_4xx(seq) && !shared.fixed() {
        call.finish(422, false, None);
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "injected_permanent_failure",
            format!(
                "seq {seq} ({}) fails on purpose until `POST /_demo/fix` (--fail-seqs-4xx)",
                request.item
            ),
        )
        .into_response();
    }

    if let Some(status) = chaos.injected_5xx(run.as_str(), seq, attempt) {
        call.finish(status, false, None);
        return ApiError::new(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "injected_server_error",
            format!("attempt {attempt} of seq {seq} fails on purpose (--fail-rate-5xx)"),
        )
        .into_response();
    }

    if let Some(callback) = &read.callback {
        return accept_long_task(shared, chaos, name, read, callback, call);
    }

    let answer = if chaos.garbage(run.as_str(), seq, attempt) {
        Answer {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: format!(
                "<html><body>scored {} (not JSON, on purpose)</body></html>",
                request.item
            )
            .into_bytes(),
        }
    } else {
        let mut body = serde_json::to_value(Score::of(&request.item)).unwrap_or_default();
        if let (Some(bytes), Some(object)) = (chaos.large_result(seq), body.as_object_mut()) {
            object.insert("detail".into(), "x".repeat(bytes).into());
        }
        Answer {
            status: 200,
            content_type: CONTENT_TYPE_JSON,
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    };
    let kept = shared.keep_answer(name, key, answer);
    let score = (kept.content_type == CONTENT_TYPE_JSON).then(|| Score::of(&request.item).score);
    call.finish(kept.status, false, score);
    tracing::debug!(microprocess = %name, %run, seq, attempt, status = kept.status, "processed");
    answer_response(kept, false)
}

/// Answers `202` and starts the long task of the call (none when the attempt's task is
/// running already), or 503 when the service is shutting down.
fn accept_long_task(
    shared: &Arc<Shared>,
    chaos: &Chaos,
    name: &str,
    read: &ProcessRead,
    callback: &Url,
    call: ProcessCall,
) -> Response {
    let (run, request) = (&read.run, &read.request);
    let (seq, attempt) = (request.seq, request.attempt);
    let task = Task::new(chaos, name, run, request, &read.key, callback.clone());
    let accepted = long_task::accept(shared, task);
    if accepted == Accepted::Closed {
        call.finish(503, false, None);
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "this service is shutting down and starts no long task; call again later",
        )
        .into_response();
    }
    shared.count_accepted();
    call.accepted();
    tracing::debug!(microprocess = %name, %run, seq, attempt, ?accepted, "accepted a long task");
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "accepted": true,
            "run": run,
            "seq": seq,
            "attempt": attempt,
            "callback": callback.as_str(),
        })),
    )
        .into_response()
}

/// Reads and cross-checks a process request: body, headers and the split agree.
fn read_process(
    shared: &Shared,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<ProcessRead, ApiError> {
    let run = request_run(shared, name, headers)?;
    let request: ProcessRequest = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(
            "bad_body",
            format!("the body is not a process request: {error}"),
        )
    })?;
    same(
        "microprocess",
        "the path",
        name,
        "the body",
        &request.microprocess,
    )?;
    same(
        "run",
        HEADER_RUN,
        run.as_str(),
        "the body",
        request.run.as_str(),
    )?;
    let seq_header = header_text(headers, HEADER_SEQ)?;
    same(
        "seq",
        HEADER_SEQ,
        seq_header,
        "the body",
        &request.seq.to_string(),
    )?;
    let attempt_header = header_text(headers, HEADER_ATTEMPT)?;
    same(
        "attempt",
        HEADER_ATTEMPT,
        attempt_header,
        "the body",
        &request.attempt.to_string(),
    )?;
    if request.attempt == 0 {
        return Err(ApiError::bad_request(
            "bad_attempt",
            "attempt is 0; attempts count from 1",
        ));
    }
    let key = header_text(headers, HEADER_IDEMPOTENCY_KEY)?;
    let expected_key = process_idempotency_key(&run, request.seq);
    same(
        "idempotency key",
        HEADER_IDEMPOTENCY_KEY,
        key,
        "`<run>/<seq>`",
        &expected_key,
    )?;
    let items = shared.config.items_for(&request.microprocess);
    if request.seq >= items {
        return Err(ApiError::bad_request(
            "unknown_seq",
            format!(
                "seq {} is past this service's split of {items} items",
                request.seq
            ),
        ));
    }
    let listed = paging::item_id(request.seq);
    if request.item != listed {
        return Err(ApiError::bad_request(
            "item_mismatch",
            format!(
                "seq {} is `{listed}` in this service's split, but the request names `{}`; \
                 seq is the 0-based position in the split",
                request.seq, request.item
            ),
        ));
    }
    let callback = read_callback(headers, &request)?;
    Ok(ProcessRead {
        run,
        request,
        key: expected_key,
        callback,
    })
}

/// The callback of a process request: the body's and the header's, which must agree when
/// both are there (the signature covers the body only), as an absolute http(s) URL.
fn read_callback(headers: &HeaderMap, request: &ProcessRequest) -> Result<Option<Url>, ApiError> {
    let header = match headers.get(HEADER_CALLBACK) {
        Some(_) => Some(header_text(headers, HEADER_CALLBACK)?),
        None => None,
    };
    let text = match (request.callback.as_deref(), header) {
        (None, None) => return Ok(None),
        (Some(body), Some(header)) => {
            same("callback", HEADER_CALLBACK, header, "the body", body)?;
            body
        }
        (Some(text), None) | (None, Some(text)) => text,
    };
    let bad = |why: String| {
        ApiError::bad_request(
            "bad_callback",
            format!("the callback `{text}` is not an absolute http or https URL: {why}"),
        )
    };
    let url = Url::parse(text).map_err(|error| bad(error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(bad(format!("its scheme is `{}`", url.scheme())));
    }
    Ok(Some(url))
}

/// The `Retry-After` seconds to answer with, when `--retry-after` applies to this call.
fn retry_after(
    chaos: &Chaos,
    shared: &Shared,
    name: &str,
    run: &str,
    seq: u64,
    call: &crate::state::ProcessCall,
) -> Option<u64> {
    if chaos.retry_after == 0 {
        return None;
    }
    let elapsed = if chaos.retry_after_seqs.is_none() {
        shared.run_age(name, run)
    } else if chaos
        .retry_after_seqs
        .contains(chaos.seed, "retry-after", seq)
    {
        call.since_first_call()
    } else {
        return None;
    };
    let window = Duration::from_secs(chaos.retry_after);
    let left = window.checked_sub(elapsed).filter(|left| !left.is_zero())?;
    // Whole seconds, rounded up: coming back after that many is never too early.
    Some(left.as_millis().div_ceil(1000).max(1) as u64)
}

fn answer_response(answer: Answer, replay: bool) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(answer.content_type),
        )],
        answer.body,
    )
        .into_response();
    if replay {
        response.headers_mut().insert(
            HeaderName::from_static(HEADER_REPLAYED),
            HeaderValue::from_static("true"),
        );
    }
    response
}

// ---- reduce -------------------------------------------------------------------------

async fn reduce(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (run, request, key) = match read_reduce(&shared, &name, &headers, &body) {
        Ok(read) => read,
        Err(error) => return reject(&shared, error),
    };
    let run = run.as_str();
    let call = shared.with_run(&name, run, |stats| {
        stats.reduce.calls += 1;
        stats.reduce.statuses.push(None);
        stats.reduce.calls
    });
    let record = |status: u16| {
        shared.with_run(&name, run, |stats| {
            if let Some(slot) = stats.reduce.statuses.get_mut(call as usize - 1) {
                *slot = Some(status);
            }
        });
    };

    if let Some(answer) = shared.answer(&name, &key) {
        record(answer.status);
        return answer_response(answer, true);
    }

    let chaos = shared.chaos();
    if call <= u64::from(chaos.reduce_failures) {
        record(503);
        tracing::info!(microprocess = %name, run, call, "reduce: injected 503");
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "injected_reduce_failure",
            format!(
                "reduce call {call} of this run fails on purpose (--reduce-failures {})",
                chaos.reduce_failures
            ),
        )
        .into_response();
    }

    let report = shared.with_run(&name, run, |stats| report::build(&request, stats));
    let path = shared
        .config
        .report_dir
        .as_deref()
        .map(|dir| report::path(dir, &name, run));
    if let Some(path) = &path {
        if let Err(error) = report::write(path, &report).await {
            record(500);
            tracing::error!(microprocess = %name, run, path = %path.display(), %error, "cannot write the report");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "report_not_written",
                format!("cannot write the report to `{}`: {error}", path.display()),
            )
            .into_response();
        }
    }
    let body = json!({"report_path": path, "report": report});
    let answer = Answer {
        status: 200,
        content_type: CONTENT_TYPE_JSON,
        body: serde_json::to_vec(&body).unwrap_or_default(),
    };
    let kept = shared.keep_answer(&name, &key, answer);
    shared.with_run(&name, run, |stats| {
        if !stats.reduce.completed {
            stats.reduce.completed = true;
            stats.reduce.report_path = path.clone();
            stats.reduce.report = Some(report);
        }
    });
    record(kept.status);
    tracing::info!(microprocess = %name, run, path = ?path, "reduced");
    answer_response(kept, false)
}

fn read_reduce(
    shared: &Shared,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(RunId, ReduceRequest, String), ApiError> {
    let run = request_run(shared, name, headers)?;
    let request: ReduceRequest = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(
            "bad_body",
            format!("the body is not a reduce request: {error}"),
        )
    })?;
    same(
        "microprocess",
        "the path",
        name,
        "the body",
        &request.microprocess,
    )?;
    same(
        "run",
        HEADER_RUN,
        run.as_str(),
        "the body",
        request.run.as_str(),
    )?;
    let key = header_text(headers, HEADER_IDEMPOTENCY_KEY)?;
    let expected_key = reduce_idempotency_key(&run);
    same(
        "idempotency key",
        HEADER_IDEMPOTENCY_KEY,
        key,
        "`<run>/reduce`",
        &expected_key,
    )?;
    if request.succeeded + request.failed != request.total {
        return Err(ApiError::bad_request(
            "bad_counts",
            format!(
                "succeeded ({}) + failed ({}) is not total ({}); the reduce comes once every \
                 child is done",
                request.succeeded, request.failed, request.total
            ),
        ));
    }
    Ok((run, request, expected_key))
}

// ---- shared checks ------------------------------------------------------------------

/// The run of a contract request, after checking the microprocess is served here and the
/// name header agrees with the path. Starts the run's clock.
fn request_run(shared: &Shared, name: &str, headers: &HeaderMap) -> Result<RunId, ApiError> {
    if !shared
        .config
        .microprocesses
        .iter()
        .any(|served| served == name)
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_microprocess",
            format!(
                "this service serves no microprocess `{name}`; it serves {}",
                shared.config.microprocesses.join(", ")
            ),
        ));
    }
    let header_name = header_text(headers, HEADER_NAME)?;
    same("microprocess", HEADER_NAME, header_name, "the path", name)?;
    let run = header_text(headers, HEADER_RUN)?;
    let run = RunId::parse(run)
        .map_err(|error| ApiError::bad_request("bad_run", format!("`{HEADER_RUN}`: {error}")))?;
    shared.run_age(name, run.as_str());
    Ok(run)
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, ApiError> {
    let value = headers.get(name).ok_or_else(|| {
        ApiError::bad_request(
            "missing_header",
            format!("no `{name}` header; the contract sends it"),
        )
    })?;
    value
        .to_str()
        .map_err(|_| ApiError::bad_request("bad_header", format!("`{name}` is not ASCII")))
}

/// Checks that two places of the request give one value.
fn same(
    what: &str,
    place: &str,
    value: &str,
    other_place: &str,
    other: &str,
) -> Result<(), ApiError> {
    if value == other {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "inconsistent_request",
            format!(
                "{what} is `{value}` in {place} but `{other}` in {other_place}; they must agree"
            ),
        ))
    }
}

// ---- /_demo -------------------------------------------------------------------------

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.stats()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixRequest {
    fixed: bool,
}

/// `POST /_demo/fix` cures the 422 seqs; `{"fixed": false}` breaks them again.
async fn fix(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let fixed = if body.iter().all(u8::is_ascii_whitespace) {
        true
    } else {
        match serde_json::from_slice::<FixRequest>(&body) {
            Ok(request) => request.fixed,
            Err(error) => {
                return ApiError::bad_request(
                    "bad_body",
                    format!("expected no body or `{{\"fixed\": true|false}}`: {error}"),
                )
                .into_response()
            }
        }
    };
    shared.set_fixed(fixed);
    tracing::info!(fixed, "fix toggled");
    Json(json!({"fixed": fixed})).into_response()
}

async fn chaos(State(shared): State<Arc<Shared>>) -> Response {
    Json(&*shared.chaos()).into_response()
}

/// `PUT /_demo/chaos` replaces every knob; knobs left out go back to their default.
async fn set_chaos(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let chaos = match serde_json::from_slice::<Chaos>(&body) {
        Ok(chaos) => chaos,
        Err(error) => {
            return ApiError::bad_request("bad_body", format!("not a chaos setting: {error}"))
                .into_response()
        }
    };
    if let Err(error) = chaos.validate() {
        return ApiError::bad_request("bad_chaos", error.to_string()).into_response();
    }
    shared.set_chaos(chaos.clone());
    Json(chaos).into_response()
}
