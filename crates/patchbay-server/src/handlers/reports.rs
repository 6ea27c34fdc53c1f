//! Reports as of a date (computed by the app, rendered by `patchbay-render`),
//! and the signed evidence bundle.

use crate::errors::ApiError;
use crate::extract::{ApiPath, ApiResult, Authed, query};
use crate::router::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use patchbay_app::AppError;
use patchbay_proto::error::ErrorCode;
use patchbay_render::Format;
use serde::Deserialize;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    as_of: Option<String>,
    format: Option<String>,
}

/// `GET /api/v1/reports/{kind}?as_of=&format=json|csv|html`.
#[utoipa::path(
    get,
    path = "/api/v1/reports/{kind}",
    params(
        ("kind" = String, Path, description = "compliance, time-to-patch, sla, coverage or deployments"),
        ReportQuery,
    ),
    responses(
        (status = 200, description = "The report: JSON (the default), CSV or a printable HTML page", content((Object = "application/json"), (String = "text/csv"), (String = "text/html"))),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn report(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(kind): ApiPath<String>,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let format: Format = q
        .format
        .as_deref()
        .unwrap_or("json")
        .parse()
        .map_err(|m: String| ApiError::new(ErrorCode::InvalidRequest, m))?;
    let as_of = q
        .as_of
        .as_deref()
        .map(|t| patchbay_core::when::as_of("as_of", t))
        .transpose()?;
    let report = st.app.report(&a.caller, &kind, as_of, &a.ctx).await?;
    let body = patchbay_render::report::render(&report, format).map_err(AppError::from)?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvidenceQuery {
    as_of: Option<String>,
}

/// `GET /api/v1/evidence?as_of=`: the signed evidence bundle (zip).
#[utoipa::path(
    get,
    path = "/api/v1/evidence",
    params(EvidenceQuery),
    responses(
        (status = 200, description = "The signed evidence bundle (zip)", body = Vec<u8>, content_type = "application/zip"),
        (status = 400, response = crate::openapi::Error),
    )
)]
pub async fn evidence(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<EvidenceQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let as_of = match q.as_of.as_deref() {
        Some(t) => patchbay_core::when::as_of("as_of", t)?,
        None => st.app.now(),
    };
    let body = st.app.evidence_bundle(&a.caller, as_of, &a.ctx).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"patchbay-evidence.zip\"",
            ),
        ],
        body,
    )
        .into_response())
}
