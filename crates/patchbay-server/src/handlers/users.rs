//! Dashboard users and their sessions, for administrators and scripts
//! (`patchbay users …`). Sign-in itself is the dashboard's (`/ui/login`).

use crate::errors::ApiError;
use crate::extract::{ApiPath, ApiResult, Authed, json_body, query};
use crate::router::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use patchbay_proto::api::{AddUser, List, SessionInfo, SetPassword, SetUserDisabled, UserInfo};
use patchbay_proto::error::ErrorCode;
use serde::Deserialize;

/// `GET /api/v1/users`: never a password or its hash.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    responses((status = 200, body = List<UserInfo>))
)]
pub async fn list(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.list_users(&a.caller, &a.ctx).await?,
    }))
}

/// `POST /api/v1/users`.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    request_body = AddUser,
    responses(
        (status = 201, body = UserInfo),
        (status = 400, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn add(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req: AddUser = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.add_user(&a.caller, req, &a.ctx).await?),
    ))
}

/// `POST /api/v1/users/{name}/password`: every session of the user ends.
#[utoipa::path(
    post,
    path = "/api/v1/users/{name}/password",
    params(("name" = String, Path, description = "The user's name")),
    request_body = SetPassword,
    responses(
        (status = 204, description = "Changed; the user's sessions ended"),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn password(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req: SetPassword = json_body(body)?;
    st.app
        .set_user_password(&a.caller, &name, &req.password, &a.ctx)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/users/{name}/disabled`: disabling ends the user's sessions.
#[utoipa::path(
    post,
    path = "/api/v1/users/{name}/disabled",
    params(("name" = String, Path, description = "The user's name")),
    request_body = SetUserDisabled,
    responses(
        (status = 200, body = UserInfo),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn disabled(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req: SetUserDisabled = json_body(body)?;
    Ok(Json(
        st.app
            .set_user_disabled(&a.caller, &name, req.disabled, &a.ctx)
            .await?,
    ))
}

/// Filters of `GET /api/v1/sessions`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// Only this user's sessions.
    pub user: Option<String>,
    /// Ended sessions too (`true`); by default only open ones.
    #[serde(default)]
    pub all: bool,
}

/// `GET /api/v1/sessions`: newest first, never their secrets.
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    params(SessionQuery),
    responses(
        (status = 200, body = List<SessionInfo>),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn sessions(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<SessionQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let q = query(q)?;
    Ok(Json(List {
        items: st
            .app
            .list_sessions(&a.caller, q.user.as_deref(), q.all, &a.ctx)
            .await?,
    }))
}

/// `DELETE /api/v1/sessions/{id}`: the browser holding it is signed out.
#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{id}",
    params(("id" = i64, Path, description = "The session's id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn revoke_session(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
    _body: crate::extract::Drained,
) -> ApiResult<impl IntoResponse> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("session id {id:?} is not a number"),
        )
    })?;
    st.app.revoke_session(&a.caller, id, &a.ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}
