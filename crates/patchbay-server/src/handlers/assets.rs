//! The asset registry: list, show, edit, import, enrolment approvals.

use crate::errors::ApiError;
use crate::extract::{ApiPath, ApiResult, Authed, json_body, raw_body};
use crate::router::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use patchbay_proto::api::{
    AssetDetail, AssetPatch, AssetSummary, EnrollmentApprovalIn, EnrollmentApprovalOut,
    ImportAsset, ImportResult, List,
};
use patchbay_proto::error::ErrorCode;
use serde::Deserialize;

/// `GET /api/v1/assets`.
#[utoipa::path(
    get,
    path = "/api/v1/assets",
    responses((status = 200, body = List<AssetSummary>))
)]
pub async fn list(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.list_assets(&a.caller, &a.ctx).await?,
    }))
}

/// `GET /api/v1/assets/{name}`: with its packages.
#[utoipa::path(
    get,
    path = "/api/v1/assets/{name}",
    params(("name" = String, Path, description = "The asset’s name")),
    responses(
        (status = 200, body = AssetDetail),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn show(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.show_asset(&a.caller, &name, &a.ctx).await?))
}

/// `PATCH /api/v1/assets/{name}`: owner, impact, exposure, environment, tags.
#[utoipa::path(
    patch,
    path = "/api/v1/assets/{name}",
    params(("name" = String, Path, description = "The asset’s name")),
    request_body = AssetPatch,
    responses(
        (status = 200, body = AssetDetail),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn update(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let patch: AssetPatch = json_body(body)?;
    Ok(Json(
        st.app.update_asset(&a.caller, &name, patch, &a.ctx).await?,
    ))
}

/// `POST /api/v1/assets/{name}/enrollment-approvals`: one use, time-limited.
#[utoipa::path(
    post,
    path = "/api/v1/assets/{name}/enrollment-approvals",
    params(("name" = String, Path, description = "The asset’s name")),
    request_body = EnrollmentApprovalIn,
    responses(
        (status = 201, body = EnrollmentApprovalOut),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn approve_enrollment(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: EnrollmentApprovalIn = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(
            st.app
                .approve_enrollment(&a.caller, &name, &input, &a.ctx)
                .await?,
        ),
    ))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ImportBody {
    List(Vec<ImportAsset>),
    Wrapped { assets: Vec<ImportAsset> },
}

/// `POST /api/v1/assets/import`: CSV (`text/csv`) or JSON, validated whole.
#[utoipa::path(
    post,
    path = "/api/v1/assets/import",
    request_body(description = "A JSON array of assets, `{\"assets\": [...]}`, or CSV with a header row (`text/csv`)", content((Vec<ImportAsset> = "application/json"), (String = "text/csv"))),
    responses(
        (status = 200, body = ImportResult),
        (status = 400, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn import(
    State(st): State<AppState>,
    a: Authed,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let is_csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let items = if is_csv {
        let bytes = raw_body(body)?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("CSV body is not UTF-8: {e}"),
            )
        })?;
        patchbay_app::assets::parse_import_csv(text)?
    } else {
        match json_body::<ImportBody>(body)? {
            ImportBody::List(v) | ImportBody::Wrapped { assets: v } => v,
        }
    };
    Ok(Json(st.app.import_assets(&a.caller, items, &a.ctx).await?))
}
