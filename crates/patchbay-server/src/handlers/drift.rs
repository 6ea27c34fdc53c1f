//! Configuration drift per policy group (docs/drift.md).

use crate::extract::{ApiResult, Authed, query};
use crate::router::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use patchbay_proto::api::DriftOut;
use serde::Deserialize;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct DriftQuery {
    /// A policy group, or an asset (its groups, its own line only); none:
    /// every group.
    target: Option<String>,
    /// A golden host whose packages are the baseline (default: the modal
    /// version per package).
    golden: Option<String>,
}

/// `GET /api/v1/drift?target=&golden=`: each group's baseline and each
/// member's newer, older, missing and extra packages.
#[utoipa::path(
    get,
    path = "/api/v1/drift",
    params(DriftQuery),
    responses(
        (status = 200, body = DriftOut),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn drift(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<DriftQuery>, QueryRejection>,
) -> ApiResult<Json<DriftOut>> {
    let q = query(q)?;
    Ok(Json(
        st.app
            .drift(&a.caller, q.target.as_deref(), q.golden.as_deref(), &a.ctx)
            .await?,
    ))
}

/// `PUT /api/v1/drift/{name}/golden`: pins a golden host as the group's
/// baseline (audited `drift.golden_set`).
#[utoipa::path(
    put,
    path = "/api/v1/drift/{name}/golden",
    params(("name" = String, Path, description = "policy group")),
    request_body = patchbay_proto::api::GoldenIn,
    responses(
        (status = 204, description = "pinned"),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn set_golden(
    State(st): State<AppState>,
    a: Authed,
    crate::extract::ApiPath(group): crate::extract::ApiPath<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<axum::http::StatusCode> {
    let g: patchbay_proto::api::GoldenIn = crate::extract::json_body(body)?;
    st.app
        .set_golden_host(&a.caller, &group, Some(&g.asset), &a.ctx)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/drift/{name}/golden`: back to the modal baseline
/// (audited `drift.golden_cleared`).
#[utoipa::path(
    delete,
    path = "/api/v1/drift/{name}/golden",
    params(("name" = String, Path, description = "policy group")),
    responses(
        (status = 204, description = "unpinned"),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn clear_golden(
    State(st): State<AppState>,
    a: Authed,
    crate::extract::ApiPath(group): crate::extract::ApiPath<String>,
) -> ApiResult<axum::http::StatusCode> {
    st.app
        .set_golden_host(&a.caller, &group, None, &a.ctx)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
