//! Webhook subscriptions, their delivery log, replays and test deliveries.

use crate::extract::{ApiResult, Authed, json_body, query};
use crate::router::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use patchbay_proto::api::{List, WebhookAuthSpec, WebhookSpec};
use serde::Deserialize;

/// `GET /api/v1/webhooks`.
pub async fn list(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.webhooks(&a.caller, &a.ctx).await?,
    }))
}

/// `POST /api/v1/webhooks`: answers the subscription and its secret (once).
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
pub async fn show(
    State(st): State<AppState>,
    a: Authed,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.webhook(&a.caller, &name, &a.ctx).await?))
}

/// `POST /api/v1/webhooks/{name}/auth`: replaces the auth headers (their
/// values never come back).
pub async fn set_auth(
    State(st): State<AppState>,
    a: Authed,
    Path(name): Path<String>,
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
pub async fn remove(
    State(st): State<AppState>,
    a: Authed,
    Path(name): Path<String>,
    _body: crate::extract::Drained,
) -> ApiResult<impl IntoResponse> {
    st.app.remove_webhook(&a.caller, &name, &a.ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveriesQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /api/v1/webhooks/{name}/deliveries?state=&limit=`.
pub async fn deliveries(
    State(st): State<AppState>,
    a: Authed,
    Path(name): Path<String>,
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
pub async fn replay(
    State(st): State<AppState>,
    a: Authed,
    Path(name): Path<String>,
    _body: crate::extract::Drained,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.replay_webhook(&a.caller, &name, &a.ctx).await?))
}

/// `POST /api/v1/webhooks/{name}/test`: queues a `webhook.test` event.
pub async fn test(
    State(st): State<AppState>,
    a: Authed,
    Path(name): Path<String>,
    _body: crate::extract::Drained,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::ACCEPTED,
        Json(st.app.test_webhook(&a.caller, &name, &a.ctx).await?),
    ))
}
