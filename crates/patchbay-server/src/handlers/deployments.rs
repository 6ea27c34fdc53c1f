//! Deployments: preview, create, show, operator actions, approvals,
//! rehearsals.

use crate::extract::{ApiPath, ApiResult, Authed, json_body};
use crate::router::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use patchbay_proto::api::{DeployApprovalIn, DeploymentDetail, DeploymentPreview, DeploymentSpec};
use serde::Deserialize;

/// `POST /api/v1/deployments/preview`: what a deployment would do.
#[utoipa::path(
    post,
    path = "/api/v1/deployments/preview",
    request_body = DeploymentSpec,
    responses(
        (status = 200, body = DeploymentPreview),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn preview(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let spec: DeploymentSpec = json_body(body)?;
    Ok(Json(st.app.deploy_preview(&a.caller, &spec, &a.ctx).await?))
}

/// `POST /api/v1/deployments`: a new deployment (draft) and its change record.
#[utoipa::path(
    post,
    path = "/api/v1/deployments",
    request_body = DeploymentSpec,
    responses(
        (status = 201, body = DeploymentDetail),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/v1/deployments/{id}",
    params(("id" = String, Path, description = "The deployment’s id")),
    responses(
        (status = 200, body = DeploymentDetail),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn show(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.deploy_show(&a.caller, &id, &a.ctx).await?))
}

/// The body of an operator action.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
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
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{id}/start",
    params(("id" = String, Path, description = "The deployment’s id")),
    request_body(description = "Empty, or `{\"comment\": \"…\"}`", content = ActionIn),
    responses(
        (status = 200, body = DeploymentDetail),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn start(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    act(st, a, id, "start", body).await
}

/// `POST /api/v1/deployments/{id}/pause`.
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{id}/pause",
    params(("id" = String, Path, description = "The deployment’s id")),
    request_body(description = "Empty, or `{\"comment\": \"…\"}`", content = ActionIn),
    responses(
        (status = 200, body = DeploymentDetail),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn pause(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    act(st, a, id, "pause", body).await
}

/// `POST /api/v1/deployments/{id}/resume`.
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{id}/resume",
    params(("id" = String, Path, description = "The deployment’s id")),
    request_body(description = "Empty, or `{\"comment\": \"…\"}`", content = ActionIn),
    responses(
        (status = 200, body = DeploymentDetail),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn resume(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    act(st, a, id, "resume", body).await
}

/// `POST /api/v1/deployments/{id}/abort` (a comment is required).
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{id}/abort",
    params(("id" = String, Path, description = "The deployment’s id")),
    request_body(description = "`{\"comment\": \"…\"}` (required)", content = ActionIn),
    responses(
        (status = 200, body = DeploymentDetail),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn abort(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    act(st, a, id, "abort", body).await
}

/// `POST /api/v1/deployments/{id}/rollback` (a comment is required).
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{id}/rollback",
    params(("id" = String, Path, description = "The deployment’s id")),
    request_body(description = "`{\"comment\": \"…\"}` (required)", content = ActionIn),
    responses(
        (status = 200, body = DeploymentDetail),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn rollback(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    act(st, a, id, "rollback", body).await
}

/// `POST /api/v1/deployments/{id}/approvals`: approve a ring, or reject.
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{id}/approvals",
    params(("id" = String, Path, description = "The deployment’s id")),
    request_body = DeployApprovalIn,
    responses(
        (status = 200, body = DeploymentDetail),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn approval(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: DeployApprovalIn = json_body(body)?;
    Ok(Json(
        st.app
            .deploy_approval(&a.caller, &id, &input, &a.ctx)
            .await?,
    ))
}

/// `GET /api/v1/deployments/{id}/rehearsals`: every rehearsal of the
/// deployment (a ring's gate and on demand), newest run first, with what the
/// agents found (`docs/rehearsal.md`).
#[utoipa::path(
    get,
    path = "/api/v1/deployments/{id}/rehearsals",
    params(("id" = String, Path, description = "The deployment’s id")),
    responses(
        (status = 200, body = patchbay_proto::api::RehearsalsOut),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn rehearsals(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        st.app.deploy_rehearsals(&a.caller, &id, &a.ctx).await?,
    ))
}

/// `GET /api/v1/deployments/{id}/impact`: the expected impact per owner
/// (window, packages, services, reboot, interruption estimate) and the
/// notices raised (`docs/impact-notices.md`).
#[utoipa::path(
    get,
    path = "/api/v1/deployments/{id}/impact",
    params(("id" = String, Path, description = "The deployment’s id")),
    responses(
        (status = 200, body = patchbay_proto::api::DeploymentImpactOut),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn impact(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.deploy_impact(&a.caller, &id, &a.ctx).await?))
}

/// `POST /api/v1/deployments/{id}/rehearsals`: rehearse now on every host of
/// the deployment (read-only on the hosts; audited `deployment.rehearse`).
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{id}/rehearsals",
    params(("id" = String, Path, description = "The deployment’s id")),
    responses(
        (status = 202, body = patchbay_proto::api::RehearsalsOut),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn rehearse(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::ACCEPTED,
        Json(st.app.deploy_rehearse(&a.caller, &id, &a.ctx).await?),
    ))
}
