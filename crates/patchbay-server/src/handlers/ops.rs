//! Health, metrics, the 404 answer and `whoami`.

use crate::errors::ApiError;
use crate::extract::Authed;
use crate::router::AppState;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use patchbay_proto::api::WhoAmI;
use patchbay_proto::error::ErrorCode;

/// `GET /healthz`: 200 when the database answers, 503 naming why otherwise.
#[utoipa::path(
    get,
    path = "/healthz",
    security(()),
    responses(
        (status = 200, description = "The database answers", body = String, content_type = "text/plain"),
        (status = 503, description = "The database does not answer (the text says why)", body = String, content_type = "text/plain"),
    )
)]
pub async fn healthz(State(st): State<AppState>) -> Response {
    match st.app.store().ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        // An outage's error already reads "database unavailable: …".
        Err(e @ patchbay_store::StoreError::Unavailable(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unavailable: {e}\n"),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus metrics (OpenMetrics text). Feed freshness
/// and drift per group are read from the database at each scrape (every
/// replica answers the same).
#[utoipa::path(
    get,
    path = "/metrics",
    security(()),
    responses(
        (status = 200, description = "Prometheus metrics (OpenMetrics text)", body = String, content_type = "application/openmetrics-text"),
    )
)]
pub async fn metrics(State(st): State<AppState>) -> Response {
    match st.app.feed_freshness().await {
        Ok(feeds) => {
            for f in feeds {
                let l = crate::metrics::FeedLabels { feed: f.name };
                st.metrics.feed_age.get_or_create(&l).set(f.age_secs);
                st.metrics
                    .feed_last_attempt_ok
                    .get_or_create(&l)
                    .set(i64::from(f.last_ok));
                st.metrics
                    .feed_last_attempt
                    .get_or_create(&l)
                    .set(f.last_attempt.as_millisecond() as f64 / 1000.0);
                st.metrics
                    .feed_stale
                    .get_or_create(&l)
                    .set(i64::from(f.stale));
            }
        }
        Err(e) => tracing::warn!(error = %e.message, "metrics: feed freshness unavailable"),
    }
    match st.app.drift_counts().await {
        Ok(groups) => {
            // A group no longer in the policy stops being reported.
            st.metrics.drifted_packages.clear();
            for (group, n) in groups {
                st.metrics
                    .drifted_packages
                    .get_or_create(&crate::metrics::GroupLabels { group })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        Err(e) => tracing::warn!(error = %e.message, "metrics: drift unavailable"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}

/// The answer for a path no route matches.
pub async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

/// `GET /api/v1/whoami`: the caller, and the server's public signing key
/// (for pinning in `audit verify` and `evidence verify`).
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    responses((status = 200, body = WhoAmI))
)]
pub async fn whoami(State(st): State<AppState>, a: Authed) -> Json<WhoAmI> {
    Json(WhoAmI {
        token_id: a.caller.token().map(|t| t.0),
        name: a.caller.token().map(|t| t.1.to_string()),
        role: a.caller.role,
        scopes: a.caller.scopes.list(),
        server_public_key: st.app.signer().map(|s| s.public_hex()),
    })
}
