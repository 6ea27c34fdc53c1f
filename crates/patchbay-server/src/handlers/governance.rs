//! The governance review report (docs/governance.md).

use crate::errors::ApiError;
use crate::extract::{ApiResult, Authed, query};
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
pub(crate) struct GovernanceQuery {
    /// Period start: RFC 3339, or a date (its midnight, UTC).
    from: String,
    /// Period end, excluded: RFC 3339, or a date (the end of that day, UTC).
    to: String,
    /// `json` (default), `csv` or `html`.
    format: Option<String>,
}

/// `GET /api/v1/governance?from=&to=&format=`: risk removed against effort
/// spent over the period, per group and owner, with the period's wins.
#[utoipa::path(
    get,
    path = "/api/v1/governance",
    params(GovernanceQuery),
    responses(
        (status = 200, description = "The report: JSON (the default), CSV or a printable HTML page", content((Object = "application/json"), (String = "text/csv"), (String = "text/html"))),
        (status = 400, response = crate::openapi::Error),
    )
)]
pub async fn governance(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<GovernanceQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let format: Format = q
        .format
        .as_deref()
        .unwrap_or("json")
        .parse()
        .map_err(|m: String| ApiError::new(ErrorCode::InvalidRequest, m))?;
    let from = patchbay_core::when::instant("from", &q.from, &jiff::tz::TimeZone::UTC)?;
    let to = patchbay_core::when::as_of("to", &q.to)?;
    let g = st.app.governance(&a.caller, from, to, &a.ctx).await?;
    let body = patchbay_render::governance::render(&g, format).map_err(AppError::from)?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}
