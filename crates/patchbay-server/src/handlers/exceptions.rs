//! The exception register (EXC-…).

use crate::extract::{ApiResult, Authed, json_body, query};
use crate::router::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use patchbay_proto::api::{ExceptionSpec, List, RevokeIn};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExceptionsQuery {
    #[serde(default)]
    all: bool,
}

/// `GET /api/v1/exceptions?all=`.
pub async fn list(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<ExceptionsQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let q = query(q)?;
    Ok(Json(List {
        items: st.app.exceptions(&a.caller, q.all, &a.ctx).await?,
    }))
}

/// `POST /api/v1/exceptions`: the caller is the approver.
pub async fn add(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let spec: ExceptionSpec = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.add_exception(&a.caller, &spec, &a.ctx).await?),
    ))
}

/// `GET /api/v1/exceptions/{id}`.
pub async fn show(
    State(st): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.exception(&a.caller, &id, &a.ctx).await?))
}

/// `POST /api/v1/exceptions/{id}/revoke`.
pub async fn revoke(
    State(st): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: RevokeIn = json_body(body)?;
    Ok(Json(
        st.app
            .revoke_exception(&a.caller, &id, &input.reason, &a.ctx)
            .await?,
    ))
}

/// `GET /api/v1/exceptions/review`: expiring, expired and ownerless (reads only).
pub async fn review(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.review_exceptions(&a.caller, &a.ctx).await?))
}
