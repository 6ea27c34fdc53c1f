//! The agent protocol (`/agent/v1`): enrolment, check-in and client
//! certificates (agent mutual TLS).

use crate::extract::{ApiResult, Ctx, json_body};
use crate::metrics::CheckinLabels;
use crate::router::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use patchbay_app::AgentCaller;
use patchbay_app::agents::CheckinKind;

/// `POST /agent/v1/enroll`: an enrolment token in the body buys a credential.
pub async fn enroll(
    State(st): State<AppState>,
    Ctx(ctx): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = json_body(body)?;
    let resp = st.app.enroll(req, &ctx).await?;
    st.metrics.enrolments.inc();
    Ok((StatusCode::CREATED, Json(resp)))
}

/// `POST /agent/v1/checkin`: the agent's inventory (unchanged, delta or full).
pub async fn checkin(
    State(st): State<AppState>,
    Extension(agent): Extension<AgentCaller>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = json_body(body)?;
    let (resp, kind) = st.app.checkin(&agent, req).await?;
    let kind = match kind {
        CheckinKind::Unchanged => "unchanged",
        CheckinKind::Full => "full",
        CheckinKind::Delta => "delta",
    };
    st.metrics
        .checkins
        .get_or_create(&CheckinLabels { kind: kind.into() })
        .inc();
    st.metrics
        .package_rows_written
        .inc_by(resp.package_rows_written);
    Ok(Json(resp))
}

/// `POST /agent/v1/certificate`: a new client certificate for the calling
/// agent's key (agent mutual TLS).
pub async fn certificate(
    State(st): State<AppState>,
    Extension(agent): Extension<AgentCaller>,
    Ctx(ctx): Ctx,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = json_body(body)?;
    let resp = st.app.issue_agent_certificate(&agent, req, &ctx).await?;
    Ok((StatusCode::CREATED, Json(resp)))
}
