//! Findings and the imported feeds.

use crate::extract::{ApiResult, Authed, query};
use crate::router::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use patchbay_proto::api::{FeedOut, FindingOut, List};
use serde::Deserialize;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FindingsQuery {
    asset: Option<String>,
    #[serde(default)]
    all: bool,
}

/// `GET /api/v1/findings?asset=&all=`.
#[utoipa::path(
    get,
    path = "/api/v1/findings",
    params(FindingsQuery),
    responses(
        (status = 200, body = List<FindingOut>),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn list(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<FindingsQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let q = query(q)?;
    Ok(Json(List {
        items: st
            .app
            .list_findings(&a.caller, q.asset.as_deref(), q.all, &a.ctx)
            .await?,
    }))
}

/// `GET /api/v1/feeds`: each imported feed's source, version and record count.
#[utoipa::path(
    get,
    path = "/api/v1/feeds",
    responses((status = 200, body = List<FeedOut>))
)]
pub async fn feeds(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.list_feeds(&a.caller, &a.ctx).await?,
    }))
}
