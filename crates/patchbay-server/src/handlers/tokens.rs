//! API tokens and agent enrolment tokens.

use crate::errors::ApiError;
use crate::extract::{ApiPath, ApiResult, Authed, json_body};
use crate::router::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use patchbay_proto::api::{
    CreateEnrollToken, CreateToken, EnrollTokenCreated, List, TokenCreated, TokenInfo,
};
use patchbay_proto::error::ErrorCode;

/// `GET /api/v1/tokens`: never their secrets.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    responses((status = 200, body = List<TokenInfo>))
)]
pub async fn list(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.list_tokens(&a.caller, &a.ctx).await?,
    }))
}

/// `POST /api/v1/tokens`: the secret is in the answer, once.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    request_body = CreateToken,
    responses(
        (status = 201, body = TokenCreated),
        (status = 400, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn create(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req: CreateToken = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.create_token(&a.caller, req, &a.ctx).await?),
    ))
}

/// `DELETE /api/v1/tokens/{id}`.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    params(("id" = i64, Path, description = "The token’s id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn revoke(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
    _body: crate::extract::Drained,
) -> ApiResult<impl IntoResponse> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("token id {id:?} is not a number"),
        )
    })?;
    st.app.revoke_token(&a.caller, id, &a.ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/enroll-tokens`: N uses, a lifetime.
#[utoipa::path(
    post,
    path = "/api/v1/enroll-tokens",
    request_body = CreateEnrollToken,
    responses(
        (status = 201, body = EnrollTokenCreated),
        (status = 400, response = crate::openapi::Error),
    )
)]
pub async fn create_enroll_token(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req: CreateEnrollToken = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.create_enroll_token(&a.caller, req, &a.ctx).await?),
    ))
}
