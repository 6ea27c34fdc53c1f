//! A deployment's published test report (issue 18, item 7;
//! docs/test-results.md): JUnit XML, HTML or JSON, for the API and for the
//! dashboard (the same HTML page behind the session cookie).

use crate::errors::ApiError;
use crate::extract::{ApiPath, ApiResult, Authed, query};
use crate::handlers::ui::{UiUser, app_error};
use crate::router::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use patchbay_app::AppError;
use patchbay_proto::error::ErrorCode;
use patchbay_render::test_report::{Format, render};
use serde::Deserialize;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestReportQuery {
    /// `json` (default), `junit` (JUnit XML) or `html`.
    format: Option<String>,
}

/// `GET /api/v1/deployments/{id}/test-report?format=junit|html|json`: every
/// check run for the deployment — gate verdicts, rehearsals, applies and
/// their privilege checks, re-tests, backup verifications — as test cases.
#[utoipa::path(
    get,
    path = "/api/v1/deployments/{id}/test-report",
    params(("id" = String, Path, description = "The deployment’s id"), TestReportQuery),
    responses(
        (status = 200, description = "The report: JSON (the default), JUnit XML or a printable HTML page", content((Object = "application/json"), (String = "application/xml"), (String = "text/html"))),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn test_report(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
    q: Result<Query<TestReportQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let format: Format = q
        .format
        .as_deref()
        .unwrap_or("json")
        .parse()
        .map_err(|m: String| ApiError::new(ErrorCode::InvalidRequest, m))?;
    let r = st.app.test_report(&a.caller, &id, &a.ctx).await?;
    let body = render(&r, format).map_err(AppError::from)?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

/// `GET /ui/deployments/{id}/test-report`: the HTML report, for the
/// dashboard's links (deployment board, change record).
pub async fn ui_test_report(
    State(st): State<AppState>,
    u: UiUser,
    Path(id): Path<String>,
) -> Response {
    match st.app.test_report(&u.who.caller, &id, &u.ctx).await {
        Ok(r) => match render(&r, Format::Html) {
            Ok(body) => {
                ([(header::CONTENT_TYPE, Format::Html.content_type())], body).into_response()
            }
            Err(e) => app_error(AppError::from(e)),
        },
        Err(e) => app_error(e),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeriodQuery {
    /// Asked at or after: RFC 3339, or a date (its midnight, UTC). Default: the beginning.
    from: Option<String>,
    /// Asked before: RFC 3339, or a date (the end of that day, UTC). Default: no end.
    to: Option<String>,
}

/// `GET /api/v1/backup-verifications?from=&to=`: the snapshot
/// verifications asked in the period, oldest first, with their verdicts
/// (docs/backup-verification.md).
#[utoipa::path(
    get,
    path = "/api/v1/backup-verifications",
    params(PeriodQuery),
    responses(
        (status = 200, body = Vec<patchbay_proto::api::BackupVerificationOut>),
        (status = 400, response = crate::openapi::Error),
    )
)]
pub async fn backup_verifications(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<PeriodQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let from = match &q.from {
        Some(f) => patchbay_core::when::instant("from", f, &jiff::tz::TimeZone::UTC)?,
        None => jiff::Timestamp::UNIX_EPOCH,
    };
    let to = match &q.to {
        Some(t) => patchbay_core::when::as_of("to", t)?,
        None => jiff::Timestamp::MAX,
    };
    let list = st
        .app
        .backup_verifications(&a.caller, from, to, &a.ctx)
        .await?;
    Ok(axum::Json(list).into_response())
}
