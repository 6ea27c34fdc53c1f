//! CSAF: what the stored CSAF documents say about one asset's products
//! (`GET /api/v1/csaf/matches/{asset}`: CVEs, fixed release, remediations).

use crate::extract::{ApiPath, ApiResult, Authed};
use crate::router::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use patchbay_proto::api::{CsafMatchOut, List};

/// `GET /api/v1/csaf/matches/{asset}`: the asset's products matched against
/// every stored CSAF document, with the remediations that name them.
#[utoipa::path(
    get,
    path = "/api/v1/csaf/matches/{asset}",
    params(("asset" = String, Path, description = "The asset’s name")),
    responses(
        (status = 200, body = List<CsafMatchOut>),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn matches(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(asset): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.csaf_matches(&a.caller, &asset, &a.ctx).await?,
    }))
}
