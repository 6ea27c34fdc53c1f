//! The router and its handlers.
//!
//! Authentication runs in middleware *before* the body is read, so an
//! unauthenticated client cannot make the server buffer a large body.

use crate::errors::ApiError;
use crate::metrics::{CheckinLabels, HttpLabels, Metrics};
use crate::{MAX_AGENT_BODY, MAX_API_BODY};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, MatchedPath, OriginalUri, Path, Query, Request, State,
};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use patchbay_app::agents::CheckinKind;
use patchbay_app::{App, Caller, RequestCtx};
use patchbay_proto::api::{AssetPatch, CreateEnrollToken, CreateToken, ImportAsset, List};
use patchbay_proto::error::ErrorCode;
use patchbay_store::AgentRow;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Instant;

/// Shared handler state.
#[derive(Clone)]
pub struct AppState {
    /// The service layer.
    pub app: App,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

type ApiResult<T> = Result<T, ApiError>;

/// Builds the whole router.
pub fn router(app: App, metrics: Arc<Metrics>) -> Router {
    let state = AppState { app, metrics };
    let api = Router::new()
        .route("/whoami", get(whoami))
        .route("/assets", get(list_assets))
        .route("/assets/import", post(import_assets))
        .route("/assets/{name}", get(show_asset).patch(update_asset))
        .route(
            "/assets/{name}/enrollment-approvals",
            post(approve_enrollment),
        )
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/enroll-tokens", post(create_enroll_token))
        .route("/audit", get(list_audit))
        .route("/audit/export", get(export_audit))
        .route("/findings", get(list_findings))
        .route("/feeds", get(list_feeds))
        .route("/worklist", get(worklist))
        .route("/policy", get(get_policy).post(apply_policy))
        .route("/policy/preview", post(preview_policy))
        .route("/triage/{cve}", get(triage))
        .route("/patches", get(list_patches))
        .route("/oob-events", get(list_oob))
        .route("/deployments", get(list_deployments))
        .route("/windows", get(list_windows).post(add_window))
        .route("/windows/{name}", delete(remove_window))
        .route("/blackouts", get(list_blackouts).post(add_blackout))
        .route("/blackouts/{name}", delete(remove_blackout))
        .route("/blackouts/{name}/approvals", post(approve_blackout))
        .route("/plan/preview", post(plan_preview))
        .route("/reports/{kind}", get(report))
        .route("/evidence", get(evidence_bundle))
        .route("/changes", get(list_changes))
        .route("/changes/{id}", get(show_change))
        .route("/changes/{id}/runbook", get(change_runbook))
        .route("/changes/{id}/lessons", post(add_lesson))
        .route("/lessons", get(search_lessons))
        .route("/exceptions", get(list_exceptions).post(add_exception))
        .route("/exceptions/review", get(review_exceptions))
        .route("/exceptions/{id}", get(show_exception))
        .route("/exceptions/{id}/revoke", post(revoke_exception))
        .route("/calendar.ics", get(calendar_authed))
        .fallback(api_not_found)
        .layer(DefaultBodyLimit::max(MAX_API_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), api_auth));
    let agent_authed = Router::new()
        .route("/checkin", post(checkin))
        .layer(DefaultBodyLimit::max(MAX_AGENT_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), agent_auth));
    let agent = Router::new()
        .route("/enroll", post(enroll))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .merge(agent_authed);
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_handler))
        .route("/calendar.ics", get(calendar_feed))
        .nest("/api/v1", api)
        .nest("/agent/v1", agent)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), track));
    for (name, value) in SECURITY_HEADERS {
        router = router.layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                axum::http::HeaderName::from_static(name),
                axum::http::HeaderValue::from_static(value),
            ),
        );
    }
    router
        // Spans record the path, never the query: `/calendar.ics?token=…`
        // carries a secret.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
                tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state)
}

/// Headers on every response: nothing is sniffed, framed, cached or sent on as
/// a referrer, and HTML (reports, runbooks) may load nothing from anywhere —
/// inline styles and inline SVG only. A handler's own value wins.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("cache-control", "no-store"),
];

fn ctx_of(req: &Request) -> RequestCtx {
    RequestCtx {
        method: req.method().to_string(),
        // Inside nested routers the URI is stripped of the prefix: record the
        // path the client asked for.
        path: req
            .extensions()
            .get::<OriginalUri>()
            .map(|u| u.0.path().to_string())
            .unwrap_or_else(|| req.uri().path().to_string()),
        remote: req
            .extensions()
            .get::<ConnectInfo<crate::tls::RemoteAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_default(),
    }
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("<non-ASCII>"))
}

/// Records request counts and latencies by route template.
async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let labels = HttpLabels {
        method,
        route,
        status: resp.status().as_u16(),
    };
    st.metrics.http_requests.get_or_create(&labels).inc();
    st.metrics
        .http_duration
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    resp
}

async fn api_auth(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let ctx = ctx_of(&req);
    match st
        .app
        .authenticate(authorization(req.headers()), &ctx)
        .await
    {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            req.extensions_mut().insert(ctx);
            next.run(req).await
        }
        Err(e) => ApiError(e).into_response(),
    }
}

async fn agent_auth(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let ctx = ctx_of(&req);
    match st
        .app
        .authenticate_agent(authorization(req.headers()), &ctx)
        .await
    {
        Ok(agent) => {
            req.extensions_mut().insert(agent);
            next.run(req).await
        }
        Err(e) => ApiError(e).into_response(),
    }
}

/// Decodes a JSON body, naming the line and column of a syntax error and mapping
/// an oversized body to 413.
fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("request body too large: {}", r.body_text()),
            )
        } else {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("cannot read request body: {}", r.body_text()),
            )
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "request body is empty; JSON expected",
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("invalid JSON body: {e}")))
}

async fn healthz(State(st): State<AppState>) -> Response {
    match st.app.store().ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unavailable: {e}\n"),
        )
            .into_response(),
    }
}

async fn metrics_handler(State(st): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

async fn api_not_found(req: Request) -> ApiError {
    not_found(req).await
}

/// `GET /api/v1/whoami`: the caller, and the server's public signing key
/// (for pinning in `audit verify` and `evidence verify`).
async fn whoami(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<serde_json::Value> {
    Json(
        serde_json::json!({"token_id": caller.token_id, "name": caller.name, "role": caller.role,
        "server_public_key": st.app.signer().map(|s| s.public_hex())}),
    )
}

async fn list_assets(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.list_assets(&caller, &ctx).await?,
    }))
}

async fn show_asset(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.show_asset(&caller, &name, &ctx).await?))
}

async fn update_asset(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let patch: AssetPatch = json_body(body)?;
    Ok(Json(
        st.app.update_asset(&caller, &name, patch, &ctx).await?,
    ))
}

async fn approve_enrollment(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: patchbay_proto::api::EnrollmentApprovalIn = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(
            st.app
                .approve_enrollment(&caller, &name, &input, &ctx)
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

async fn import_assets(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let is_csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let items = if is_csv {
        let bytes = body.map_err(|r| ApiError::new(ErrorCode::PayloadTooLarge, r.body_text()))?;
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
    Ok(Json(st.app.import_assets(&caller, items, &ctx).await?))
}

async fn list_tokens(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.list_tokens(&caller, &ctx).await?,
    }))
}

async fn create_token(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req: CreateToken = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.create_token(&caller, req, &ctx).await?),
    ))
}

async fn revoke_token(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("token id {id:?} is not a number"),
        )
    })?;
    st.app.revoke_token(&caller, id, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_enroll_token(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req: CreateEnrollToken = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.create_enroll_token(&caller, req, &ctx).await?),
    ))
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    1000
}

async fn list_audit(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    Ok(Json(List {
        items: st.app.list_audit(&caller, q.after, q.limit, &ctx).await?,
    }))
}

async fn enroll(
    State(st): State<AppState>,
    ConnectInfo(remote): ConnectInfo<crate::tls::RemoteAddr>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = json_body(body)?;
    let ctx = RequestCtx {
        method: "POST".into(),
        path: "/agent/v1/enroll".into(),
        remote: remote.to_string(),
    };
    let resp = st.app.enroll(req, &ctx).await?;
    st.metrics.enrolments.inc();
    Ok((StatusCode::CREATED, Json(resp)))
}

async fn checkin(
    State(st): State<AppState>,
    Extension(agent): Extension<AgentRow>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = json_body(body)?;
    let (resp, kind) = st.app.checkin(&agent, req).await?;
    let kind = match kind {
        CheckinKind::Unchanged => "unchanged",
        CheckinKind::Full => "full",
        CheckinKind::Delta => "delta",
    };
    st.metrics
        .checkins
        .get_or_create(&CheckinLabels { kind: kind.into() })
        .inc();
    st.metrics
        .package_rows_written
        .inc_by(resp.package_rows_written);
    Ok(Json(resp))
}

#[derive(Deserialize)]
struct FindingsQuery {
    asset: Option<String>,
    #[serde(default)]
    all: bool,
}

async fn list_findings(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    q: Result<Query<FindingsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    Ok(Json(List {
        items: st
            .app
            .list_findings(&caller, q.asset.as_deref(), q.all, &ctx)
            .await?,
    }))
}

async fn list_feeds(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.list_feeds(&caller, &ctx).await?,
    }))
}

#[derive(Deserialize)]
struct WorkQuery {
    asset: Option<String>,
    owner: Option<String>,
    group: Option<String>,
    tier: Option<String>,
    limit: Option<usize>,
}

async fn worklist(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    q: Result<Query<WorkQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let tier = match q.tier.as_deref() {
        None | Some("") => None,
        Some(t) => Some(
            t.parse()
                .map_err(|e: String| ApiError::new(ErrorCode::InvalidRequest, e))?,
        ),
    };
    let filter = patchbay_app::prioritise::WorkFilter {
        asset: q.asset,
        owner: q.owner,
        group: q.group,
        tier,
        limit: q.limit,
    };
    Ok(Json(List {
        items: st.app.worklist(&caller, &filter, &ctx).await?,
    }))
}

/// A policy body: the TOML text, sent as `text/plain`/`application/toml`, or JSON
/// `{"text": "..."}`.
fn policy_text(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult<String> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        #[derive(Deserialize)]
        struct Body {
            text: String,
        }
        return Ok(json_body::<Body>(body)?.text);
    }
    let bytes = body.map_err(|r| ApiError::new(ErrorCode::PayloadTooLarge, r.body_text()))?;
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("policy is not UTF-8: {e}"),
        )
    })
}

async fn get_policy(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
) -> ApiResult<impl IntoResponse> {
    st.app
        .require(&caller, patchbay_core::auth::Action::ReadInventory, &ctx)
        .await?;
    let (p, row) = st.app.policy_in_force().await?;
    Ok(Json(serde_json::json!({
        "fingerprint": p.fingerprint(),
        "text": row.as_ref().map(|r| r.text.clone()).unwrap_or_else(|| patchbay_app::prioritise::DEFAULT_POLICY.into()),
        "applied_by": row.as_ref().map(|r| r.applied_by.clone()),
        "applied_at": row.as_ref().map(|r| patchbay_app::fmt_ts(r.applied_at)),
    })))
}

async fn preview_policy(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let text = policy_text(&headers, body)?;
    Ok(Json(st.app.policy_preview(&caller, &text, &ctx).await?))
}

async fn apply_policy(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let text = policy_text(&headers, body)?;
    Ok(Json(st.app.policy_apply(&caller, &text, &ctx).await?))
}

async fn triage(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    Path(cve): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.triage(&caller, &cve, &ctx).await?))
}

async fn list_patches(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.patches(&caller, &ctx).await?,
    }))
}

async fn list_oob(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.oob_events(&caller, &ctx).await?,
    }))
}

async fn list_deployments(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.deployments(&caller, &ctx).await?,
    }))
}

async fn list_windows(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.windows(&caller, &ctx).await?,
    }))
}

async fn add_window(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let spec: patchbay_proto::api::WindowSpec = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.add_window(&caller, &spec, &ctx).await?),
    ))
}

async fn remove_window(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    st.app.remove_window(&caller, &name, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_blackouts(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.blackouts(&caller, &ctx).await?,
    }))
}

async fn add_blackout(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let spec: patchbay_proto::api::BlackoutSpec = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.add_blackout(&caller, &spec, &ctx).await?),
    ))
}

async fn remove_blackout(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    st.app.remove_blackout(&caller, &name, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn approve_blackout(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: patchbay_proto::api::BlackoutApprovalIn = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(
            st.app
                .approve_blackout(&caller, &name, &input, &ctx)
                .await?,
        ),
    ))
}

async fn plan_preview(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req: patchbay_proto::api::PlanRequest = json_body(body)?;
    Ok(Json(st.app.plan_preview(&caller, &req, &ctx).await?))
}

/// Query of the calendar feed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarQuery {
    group: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// For calendar applications that cannot send an Authorization header.
    token: Option<String>,
}

async fn calendar_response(
    st: &AppState,
    caller: &Caller,
    q: CalendarQuery,
    ctx: &RequestCtx,
) -> ApiResult<Response> {
    let utc = jiff::tz::TimeZone::UTC;
    let from = q
        .from
        .as_deref()
        .map(|f| patchbay_app::schedule::parse_instant("from", f, &utc))
        .transpose()?;
    let to =
        q.to.as_deref()
            .map(|t| patchbay_app::schedule::parse_instant("to", t, &utc))
            .transpose()?;
    let body = st
        .app
        .calendar(caller, q.group.as_deref(), from, to, ctx)
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "inline; filename=\"patchbay.ics\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /api/v1/calendar.ics` (token in the Authorization header).
async fn calendar_authed(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    q: Result<Query<CalendarQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    calendar_response(&st, &caller, q, &ctx).await
}

/// `GET /calendar.ics`: the subscribable feed. Calendar applications cannot
/// send headers, so the token may also come as `?token=`; only a calendar
/// token (role `calendar`, which opens nothing else) is accepted here. The
/// token is never recorded, the path is.
async fn calendar_feed(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<CalendarQuery>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> ApiResult<Response> {
    let ctx = ctx_of(&req);
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let from_query = q.token.as_ref().map(|t| format!("Bearer {t}"));
    let auth = authorization(&headers).map(str::to_string).or(from_query);
    let caller = st.app.authenticate_calendar(auth.as_deref(), &ctx).await?;
    calendar_response(&st, &caller, q, &ctx).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    from: String,
    to: String,
}

/// `GET /api/v1/audit/export?from=&to=`: JSON Lines with hashes and signatures.
async fn export_audit(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    q: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let utc = jiff::tz::TimeZone::UTC;
    let from = patchbay_app::schedule::parse_instant("from", &q.from, &utc)?;
    let to = patchbay_app::schedule::parse_instant("to", &q.to, &utc)?;
    let entries = st.app.audit_export(&caller, from, to, &ctx).await?;
    let mut body = String::new();
    for e in &entries {
        body.push_str(&serde_json::to_string(e).unwrap_or_default());
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionsQuery {
    #[serde(default)]
    all: bool,
}

async fn list_exceptions(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    q: Result<Query<ExceptionsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    Ok(Json(List {
        items: st.app.exceptions(&caller, q.all, &ctx).await?,
    }))
}

async fn add_exception(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let spec: patchbay_proto::api::ExceptionSpec = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.add_exception(&caller, &spec, &ctx).await?),
    ))
}

async fn show_exception(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.exception(&caller, &id, &ctx).await?))
}

async fn revoke_exception(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: patchbay_proto::api::RevokeIn = json_body(body)?;
    Ok(Json(
        st.app
            .revoke_exception(&caller, &id, &input.reason, &ctx)
            .await?,
    ))
}

async fn review_exceptions(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.review_exceptions(&caller, &ctx).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    as_of: Option<String>,
    format: Option<String>,
}

/// `GET /api/v1/reports/{kind}?as_of=&format=json|csv|html`.
async fn report(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    Path(kind): Path<String>,
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let format: patchbay_app::reports::Format = q.format.as_deref().unwrap_or("json").parse()?;
    let as_of = q
        .as_of
        .as_deref()
        .map(patchbay_app::reports::parse_as_of)
        .transpose()?;
    let body = st.app.report(&caller, &kind, as_of, format, &ctx).await?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceQuery {
    as_of: Option<String>,
}

/// `GET /api/v1/evidence?as_of=`: the signed evidence bundle (zip).
async fn evidence_bundle(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    q: Result<Query<EvidenceQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let as_of = match q.as_of.as_deref() {
        Some(t) => patchbay_app::reports::parse_as_of(t)?,
        None => st.app.now(),
    };
    let body = st.app.evidence_bundle(&caller, as_of, &ctx).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"patchbay-evidence.zip\"",
            ),
        ],
        body,
    )
        .into_response())
}

async fn list_changes(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.change_records(&caller, &ctx).await?,
    }))
}

async fn show_change(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.change_record(&caller, &id, &ctx).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunbookQuery {
    format: Option<String>,
}

async fn change_runbook(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<String>,
    q: Result<Query<RunbookQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let html = match q.format.as_deref().unwrap_or("md") {
        "md" | "markdown" => false,
        "html" => true,
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("format: unknown format {other:?} (md or html)"),
            ));
        }
    };
    let body = st.app.runbook(&caller, &id, html, &ctx).await?;
    let ct = if html {
        "text/html; charset=utf-8"
    } else {
        "text/markdown; charset=utf-8"
    };
    Ok(([(header::CONTENT_TYPE, ct)], body).into_response())
}

async fn add_lesson(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: patchbay_proto::api::LessonIn = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.add_lesson(&caller, &id, &input.text, &ctx).await?),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LessonQuery {
    q: Option<String>,
}

async fn search_lessons(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestCtx>,
    q: Result<Query<LessonQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    Ok(Json(List {
        items: st
            .app
            .search_lessons(&caller, q.q.as_deref().unwrap_or(""), &ctx)
            .await?,
    }))
}
