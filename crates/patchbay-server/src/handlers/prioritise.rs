//! Prioritisation: the worklist, the policy, triage, patches, deployments.

use crate::errors::ApiError;
use crate::extract::{ApiPath, ApiResult, Authed, json_body, query, raw_body};
use crate::router::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use patchbay_proto::api::{
    DeploymentOut, List, OobEventOut, PatchOut, PolicyEffect, PolicyOut, PolicyTextIn, Triage,
    WorkItem,
};
use patchbay_proto::error::ErrorCode;
use serde::Deserialize;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WorkQuery {
    asset: Option<String>,
    owner: Option<String>,
    group: Option<String>,
    tier: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/worklist?asset=&owner=&group=&tier=&limit=`.
#[utoipa::path(
    get,
    path = "/api/v1/worklist",
    params(WorkQuery),
    responses(
        (status = 200, body = List<WorkItem>),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn worklist(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<WorkQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let q = query(q)?;
    let tier = match q.tier.as_deref() {
        None | Some("") => None,
        Some(t) => Some(
            t.parse()
                .map_err(|e: String| ApiError::new(ErrorCode::InvalidRequest, e))?,
        ),
    };
    let filter = patchbay_app::prioritise::WorkFilter {
        asset: q.asset,
        owner: q.owner,
        group: q.group,
        tier,
        limit: q.limit,
    };
    Ok(Json(List {
        items: st.app.worklist(&a.caller, &filter, &a.ctx).await?,
    }))
}

/// What a policy body may be (the OpenAPI request body's description).
const POLICY_BODY: &str =
    "The policy's TOML text (`application/toml` or `text/plain`), or JSON `{\"text\": \"…\"}`";

/// A policy body: the TOML text, sent as `text/plain`/`application/toml`, or JSON
/// `{"text": "..."}`.
fn policy_text(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult<String> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        return Ok(json_body::<PolicyTextIn>(body)?.text);
    }
    let bytes = raw_body(body)?;
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("policy is not UTF-8: {e}"),
        )
    })
}

/// `GET /api/v1/policy`: the policy in force, its fingerprint, who applied it.
#[utoipa::path(
    get,
    path = "/api/v1/policy",
    responses((status = 200, body = PolicyOut))
)]
pub async fn get_policy(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.policy(&a.caller, &a.ctx).await?))
}

/// `POST /api/v1/policy/preview`: what applying the policy would change.
#[utoipa::path(
    post,
    path = "/api/v1/policy/preview",
    request_body(description = POLICY_BODY, content((String = "application/toml"), (String = "text/plain"), (PolicyTextIn = "application/json"))),
    responses(
        (status = 200, body = PolicyEffect),
        (status = 400, response = crate::openapi::Error),
    )
)]
pub async fn preview_policy(
    State(st): State<AppState>,
    a: Authed,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let text = policy_text(&headers, body)?;
    Ok(Json(st.app.policy_preview(&a.caller, &text, &a.ctx).await?))
}

/// `POST /api/v1/policy`: applies a policy (a no-op when it is in force).
#[utoipa::path(
    post,
    path = "/api/v1/policy",
    request_body(description = POLICY_BODY, content((String = "application/toml"), (String = "text/plain"), (PolicyTextIn = "application/json"))),
    responses(
        (status = 200, body = PolicyEffect),
        (status = 400, response = crate::openapi::Error),
    )
)]
pub async fn apply_policy(
    State(st): State<AppState>,
    a: Authed,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let text = policy_text(&headers, body)?;
    Ok(Json(st.app.policy_apply(&a.caller, &text, &a.ctx).await?))
}

/// `GET /api/v1/triage/{cve}`: affected assets, versions, fixes, due dates.
#[utoipa::path(
    get,
    path = "/api/v1/triage/{cve}",
    params(
        ("cve" = String, Path, description = "A vulnerability id (CVE, GHSA, DSA…)"),
    ),
    responses(
        (status = 200, body = Triage),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn triage(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(cve): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.triage(&a.caller, &cve, &a.ctx).await?))
}

/// `GET /api/v1/patches`: the patch catalog, approved or not, and why.
#[utoipa::path(
    get,
    path = "/api/v1/patches",
    responses((status = 200, body = List<PatchOut>))
)]
pub async fn patches(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.patches(&a.caller, &a.ctx).await?,
    }))
}

/// `GET /api/v1/oob-events`: the zero-day lane's out-of-band events.
#[utoipa::path(
    get,
    path = "/api/v1/oob-events",
    responses((status = 200, body = List<OobEventOut>))
)]
pub async fn oob_events(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.oob_events(&a.caller, &a.ctx).await?,
    }))
}

/// `GET /api/v1/deployments`.
#[utoipa::path(
    get,
    path = "/api/v1/deployments",
    responses((status = 200, body = List<DeploymentOut>))
)]
pub async fn deployments(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.deployments(&a.caller, &a.ctx).await?,
    }))
}
