//! Webhook subscriptions, their delivery log, replays and test deliveries.

use crate::extract::{ApiPath, ApiResult, Authed, json_body, query};
use crate::router::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use patchbay_proto::api::{
    DeliveryOut, List, ReplayOut, WebhookAuthSpec, WebhookCreated, WebhookOut, WebhookSpec,
    WebhookTestOut,
};
use serde::Deserialize;

/// `GET /api/v1/webhooks`.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    responses((status = 200, body = List<WebhookOut>))
)]
pub async fn list(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.webhooks(&a.caller, &a.ctx).await?,
    }))
}

/// `POST /api/v1/webhooks`: answers the subscription and its secret (once).
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    request_body = WebhookSpec,
    responses(
        (status = 201, body = WebhookCreated),
        (status = 400, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn add(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let spec: WebhookSpec = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.add_webhook(&a.caller, &spec, &a.ctx).await?),
    ))
}

/// `GET /api/v1/webhooks/{name}`.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{name}",
    params(
        ("name" = String, Path, description = "The subscription’s name"),
    ),
    responses(
        (status = 200, body = WebhookOut),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn show(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.webhook(&a.caller, &name, &a.ctx).await?))
}

/// `POST /api/v1/webhooks/{name}/auth`: replaces the auth headers (their
/// values never come back).
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{name}/auth",
    params(
        ("name" = String, Path, description = "The subscription’s name"),
    ),
    request_body = WebhookAuthSpec,
    responses(
        (status = 200, body = WebhookOut),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn set_auth(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let spec: WebhookAuthSpec = json_body(body)?;
    Ok(Json(
        st.app
            .set_webhook_auth(&a.caller, &name, &spec, &a.ctx)
            .await?,
    ))
}

/// `DELETE /api/v1/webhooks/{name}`.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{name}",
    params(
        ("name" = String, Path, description = "The subscription’s name"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn remove(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
    _body: crate::extract::Drained,
) -> ApiResult<impl IntoResponse> {
    st.app.remove_webhook(&a.caller, &name, &a.ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveriesQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /api/v1/webhooks/{name}/deliveries?state=&limit=`.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{name}/deliveries",
    params(
        ("name" = String, Path, description = "The subscription’s name"),
        DeliveriesQuery,
    ),
    responses(
        (status = 200, body = List<DeliveryOut>),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn deliveries(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
    q: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let q = query(q)?;
    Ok(Json(List {
        items: st
            .app
            .webhook_deliveries(
                &a.caller,
                &name,
                q.state.as_deref(),
                q.limit.unwrap_or(100),
                &a.ctx,
            )
            .await?,
    }))
}

/// `POST /api/v1/webhooks/{name}/replay`: dead letters become pending.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{name}/replay",
    params(
        ("name" = String, Path, description = "The subscription’s name"),
    ),
    responses(
        (status = 200, body = ReplayOut),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn replay(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
    _body: crate::extract::Drained,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.replay_webhook(&a.caller, &name, &a.ctx).await?))
}

/// `POST /api/v1/webhooks/{name}/test`: queues a `webhook.test` event.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{name}/test",
    params(
        ("name" = String, Path, description = "The subscription’s name"),
    ),
    responses(
        (status = 202, body = WebhookTestOut),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn test(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
    _body: crate::extract::Drained,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::ACCEPTED,
        Json(st.app.test_webhook(&a.caller, &name, &a.ctx).await?),
    ))
}
