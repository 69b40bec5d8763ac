//! The live host: the service's own traffic, which the kit never calls. It shows that
//! the queue host and the live host are two doors onto one service.

use axum::extract::Path;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use microprocess_shared::contract::validate_item_id;
use serde_json::json;

use crate::error::ApiError;
use crate::score::Score;

pub(crate) fn router() -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/scores/{id}", get(score))
        .fallback(not_found)
}

async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn score(Path(id): Path<String>) -> Response {
    match validate_item_id(&id) {
        Ok(()) => Json(Score::of(&id)).into_response(),
        Err(error) => ApiError::bad_request("bad_item", error.to_string()).into_response(),
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "nothing at `{}`; the live host serves /healthz and /scores/<id>",
            uri.path()
        ),
    )
}
