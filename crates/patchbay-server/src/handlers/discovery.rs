//! Discovery: imports of scans, leases and cloud inventories, the
//! reconciliation, adopting and dismissing shadow candidates.

use crate::errors::ApiError;
use crate::extract::{ApiResult, Authed, json_body, query, raw_body};
use crate::router::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use patchbay_core::discovery::SourceKind;
use patchbay_proto::discovery::{
    AcceptExposure, AdoptShadow, DiscoveryImportOut, DiscoveryOut, DismissShadow,
};
use patchbay_proto::error::ErrorCode;
use serde::Deserialize;

/// `?kind=…&source=…&external=…&name=…`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// `nmap`, `dhcpd`, `dnsmasq`, `aws`, `azure` or `gcp`.
    kind: String,
    /// The source's name (default: the kind); a later import under the
    /// same name replaces this one's observations.
    source: Option<String>,
    /// Taken from outside the network: its open ports are exposure evidence.
    #[serde(default)]
    external: bool,
    /// The file's name, for error messages.
    name: Option<String>,
}

/// `POST /api/v1/discovery/import`: one file as the raw body (nmap XML,
/// dhcpd or dnsmasq leases, AWS/Azure/GCP JSON), validated whole.
#[utoipa::path(
    post,
    path = "/api/v1/discovery/import",
    params(ImportQuery),
    request_body(description = "The file as it is: nmap XML, a dhcpd or dnsmasq lease file, or AWS/Azure/GCP inventory JSON", content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, body = DiscoveryImportOut),
        (status = 400, response = crate::openapi::Error),
    )
)]
pub async fn import(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<ImportQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let q = query(q)?;
    let kind: SourceKind = q
        .kind
        .parse()
        .map_err(|e: String| ApiError::new(ErrorCode::InvalidRequest, format!("kind: {e}")))?;
    let bytes = raw_body(body)?;
    let file = q.name.as_deref().unwrap_or("the upload");
    let file: String = file.chars().filter(|c| !c.is_control()).take(100).collect();
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("{file}: not UTF-8 text: {e}"),
        )
    })?;
    Ok(Json(
        st.app
            .import_discovery(
                &a.caller,
                kind,
                q.source.as_deref(),
                q.external,
                &file,
                text,
                &a.ctx,
            )
            .await?,
    ))
}

/// `GET /api/v1/discovery`: shadows, dismissed, ghosts, duplicates,
/// conflicts and matches as of now.
#[utoipa::path(
    get,
    path = "/api/v1/discovery",
    responses((status = 200, body = DiscoveryOut))
)]
pub async fn show(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.discovery(&a.caller, &a.ctx).await?))
}

/// `POST /api/v1/discovery/adopt`: a shadow candidate becomes an agentless asset.
#[utoipa::path(
    post,
    path = "/api/v1/discovery/adopt",
    request_body = AdoptShadow,
    responses(
        (status = 201, description = "`{asset, key}`: the new asset's name", body = serde_json::Value),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn adopt(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: AdoptShadow = json_body(body)?;
    let name = st.app.adopt_shadow(&a.caller, &input, &a.ctx).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"asset": name, "key": input.key})),
    ))
}

/// `POST /api/v1/discovery/dismiss`: a shadow candidate is not to be managed (with why).
#[utoipa::path(
    post,
    path = "/api/v1/discovery/dismiss",
    request_body = DismissShadow,
    responses(
        (status = 204, description = "Dismissed"),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn dismiss(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: DismissShadow = json_body(body)?;
    st.app.dismiss_shadow(&a.caller, &input, &a.ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/discovery/exposure`: accept an external scan's evidence
/// (the asset becomes internet-facing).
#[utoipa::path(
    post,
    path = "/api/v1/discovery/exposure",
    request_body = AcceptExposure,
    responses(
        (status = 204, description = "The asset is internet-facing"),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn accept_exposure(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: AcceptExposure = json_body(body)?;
    st.app.accept_exposure(&a.caller, &input, &a.ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}
