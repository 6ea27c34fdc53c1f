//! The exception register (EXC-…).

use crate::extract::{ApiPath, ApiResult, Authed, json_body, query};
use crate::router::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use patchbay_proto::api::{ExceptionOut, ExceptionReviewOut, ExceptionSpec, List, RevokeIn};
use serde::Deserialize;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExceptionsQuery {
    #[serde(default)]
    all: bool,
}

/// `GET /api/v1/exceptions?all=`.
#[utoipa::path(
    get,
    path = "/api/v1/exceptions",
    params(ExceptionsQuery),
    responses(
        (status = 200, body = List<ExceptionOut>),
        (status = 400, response = crate::openapi::Error),
    )
)]
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
#[utoipa::path(
    post,
    path = "/api/v1/exceptions",
    request_body = ExceptionSpec,
    responses(
        (status = 201, body = ExceptionOut),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/v1/exceptions/{id}",
    params(
        ("id" = String, Path, description = "The exception’s id (`EXC-…`)"),
    ),
    responses(
        (status = 200, body = ExceptionOut),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn show(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.exception(&a.caller, &id, &a.ctx).await?))
}

/// `POST /api/v1/exceptions/{id}/revoke`.
#[utoipa::path(
    post,
    path = "/api/v1/exceptions/{id}/revoke",
    params(
        ("id" = String, Path, description = "The exception’s id (`EXC-…`)"),
    ),
    request_body = RevokeIn,
    responses(
        (status = 200, body = ExceptionOut),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn revoke(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
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
#[utoipa::path(
    get,
    path = "/api/v1/exceptions/review",
    responses((status = 200, body = ExceptionReviewOut))
)]
pub async fn review(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.review_exceptions(&a.caller, &a.ctx).await?))
}
