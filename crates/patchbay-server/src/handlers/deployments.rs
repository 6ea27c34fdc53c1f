//! Deployments: preview, create, show, operator actions, approvals.

use crate::extract::{ApiResult, Authed, json_body};
use crate::router::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use patchbay_proto::api::{DeployApprovalIn, DeploymentSpec};
use serde::Deserialize;

/// `POST /api/v1/deployments/preview`: what a deployment would do.
pub async fn preview(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let spec: DeploymentSpec = json_body(body)?;
    Ok(Json(st.app.deploy_preview(&a.caller, &spec, &a.ctx).await?))
}

/// `POST /api/v1/deployments`: a new deployment (draft) and its change record.
pub async fn create(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let spec: DeploymentSpec = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.deploy_create(&a.caller, &spec, &a.ctx).await?),
    ))
}

/// `GET /api/v1/deployments/{id}`: state, rings and gate verdicts, jobs.
pub async fn show(
    State(st): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.deploy_show(&a.caller, &id, &a.ctx).await?))
}

/// The body of an operator action.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionIn {
    #[serde(default)]
    comment: Option<String>,
}

async fn act(
    st: AppState,
    a: Authed,
    id: String,
    action: &str,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: ActionIn = match &body {
        Ok(b) if b.is_empty() => ActionIn::default(),
        _ => json_body(body)?,
    };
    Ok(Json(
        st.app
            .deploy_action(&a.caller, &id, action, input.comment.as_deref(), &a.ctx)
            .await?,
    ))
}

/// `POST /api/v1/deployments/{id}/start`.
pub async fn start(
    State(st): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    act(st, a, id, "start", body).await
}

/// `POST /api/v1/deployments/{id}/pause`.
pub async fn pause(
    State(st): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    act(st, a, id, "pause", body).await
}

/// `POST /api/v1/deployments/{id}/resume`.
pub async fn resume(
    State(st): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    act(st, a, id, "resume", body).await
}

/// `POST /api/v1/deployments/{id}/abort` (a comment is required).
pub async fn abort(
    State(st): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    act(st, a, id, "abort", body).await
}

/// `POST /api/v1/deployments/{id}/rollback` (a comment is required).
pub async fn rollback(
    State(st): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    act(st, a, id, "rollback", body).await
}

/// `POST /api/v1/deployments/{id}/approvals`: approve a ring, or reject.
pub async fn approval(
    State(st): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: DeployApprovalIn = json_body(body)?;
    Ok(Json(
        st.app
            .deploy_approval(&a.caller, &id, &input, &a.ctx)
            .await?,
    ))
}
