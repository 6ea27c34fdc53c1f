//! The audit log: listing, the JSON Lines export, and the rotation of the
//! key that signs it (`POST /api/v1/keys/rotate`, ADR 0007).

use crate::extract::{ApiResult, Authed, query};
use crate::router::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use patchbay_proto::api::{AuditEventOut, KeyRotated, List};
use serde::Deserialize;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    1000
}

/// `GET /api/v1/audit?after=&limit=`.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    params(AuditQuery),
    responses(
        (status = 200, body = List<AuditEventOut>),
        (status = 400, response = crate::openapi::Error),
    )
)]
pub async fn list(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let q = query(q)?;
    Ok(Json(List {
        items: st
            .app
            .list_audit(&a.caller, q.after, q.limit, &a.ctx)
            .await?,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    from: String,
    to: String,
}

/// `GET /api/v1/audit/export?from=&to=`: JSON Lines with hashes and signatures.
#[utoipa::path(
    get,
    path = "/api/v1/audit/export",
    params(ExportQuery),
    responses(
        (status = 200, description = "JSON Lines: one audit entry with its hash and signature per line", content_type = "application/x-ndjson", body = String),
        (status = 400, response = crate::openapi::Error),
    )
)]
pub async fn export(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let utc = jiff::tz::TimeZone::UTC;
    let from = patchbay_core::when::instant("from", &q.from, &utc)?;
    let to = patchbay_core::when::instant("to", &q.to, &utc)?;
    let entries = st.app.audit_export(&a.caller, from, to, &a.ctx).await?;
    let mut body = String::new();
    for e in &entries {
        body.push_str(&serde_json::to_string(e).unwrap_or_default());
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// The body of `POST /api/v1/keys/rotate`: a JSON object (`{}`), so that a
/// stray POST with any other body rotates nothing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateKey {}

/// `POST /api/v1/keys/rotate` (admin), body `{}`: a new signing key,
/// announced in the audit log under the old one; answers with the
/// announcement.
#[utoipa::path(
    post,
    path = "/api/v1/keys/rotate",
    request_body(description = "`{}` (nothing else: a stray POST rotates nothing)", content = inline(Object)),
    responses(
        (status = 201, body = KeyRotated),
        (status = 400, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn rotate_key(
    State(st): State<AppState>,
    a: Authed,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let RotateKey {} = crate::extract::json_body(body)?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(st.app.rotate_signing_key(&a.caller, &a.ctx).await?),
    ))
}
