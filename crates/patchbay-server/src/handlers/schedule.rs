//! Maintenance windows, blackouts, the plan preview and the calendar.

use crate::extract::{ApiPath, ApiResult, Authed, Ctx, json_body, query};
use crate::router::{AppState, authorization};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use patchbay_app::{Caller, RequestCtx};
use patchbay_proto::api::{
    BlackoutApprovalIn, BlackoutApprovalOut, BlackoutOut, BlackoutSpec, List, PlanOut, PlanRequest,
    WindowOut, WindowSpec,
};
use serde::Deserialize;

/// `GET /api/v1/windows`.
#[utoipa::path(
    get,
    path = "/api/v1/windows",
    responses((status = 200, body = List<WindowOut>))
)]
pub async fn list_windows(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.windows(&a.caller, &a.ctx).await?,
    }))
}

/// `POST /api/v1/windows`.
#[utoipa::path(
    post,
    path = "/api/v1/windows",
    request_body = WindowSpec,
    responses(
        (status = 201, body = WindowOut),
        (status = 400, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn add_window(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let spec: WindowSpec = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.add_window(&a.caller, &spec, &a.ctx).await?),
    ))
}

/// `DELETE /api/v1/windows/{name}`.
#[utoipa::path(
    delete,
    path = "/api/v1/windows/{name}",
    params(("name" = String, Path, description = "The window’s name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn remove_window(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
    _body: crate::extract::Drained,
) -> ApiResult<impl IntoResponse> {
    st.app.remove_window(&a.caller, &name, &a.ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/blackouts`.
#[utoipa::path(
    get,
    path = "/api/v1/blackouts",
    responses((status = 200, body = List<BlackoutOut>))
)]
pub async fn list_blackouts(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.blackouts(&a.caller, &a.ctx).await?,
    }))
}

/// `POST /api/v1/blackouts`.
#[utoipa::path(
    post,
    path = "/api/v1/blackouts",
    request_body = BlackoutSpec,
    responses(
        (status = 201, body = BlackoutOut),
        (status = 400, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn add_blackout(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let spec: BlackoutSpec = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.add_blackout(&a.caller, &spec, &a.ctx).await?),
    ))
}

/// `DELETE /api/v1/blackouts/{name}`.
#[utoipa::path(
    delete,
    path = "/api/v1/blackouts/{name}",
    params(("name" = String, Path, description = "The blackout’s name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn remove_blackout(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
    _body: crate::extract::Drained,
) -> ApiResult<impl IntoResponse> {
    st.app.remove_blackout(&a.caller, &name, &a.ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/blackouts/{name}/approvals`: an out-of-band deployment may
/// enter the blackout (four eyes: not its creator).
#[utoipa::path(
    post,
    path = "/api/v1/blackouts/{name}/approvals",
    params(("name" = String, Path, description = "The blackout’s name")),
    request_body = BlackoutApprovalIn,
    responses(
        (status = 201, body = BlackoutApprovalOut),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn approve_blackout(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: BlackoutApprovalIn = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(
            st.app
                .approve_blackout(&a.caller, &name, &input, &a.ctx)
                .await?,
        ),
    ))
}

/// `POST /api/v1/plan/preview`.
#[utoipa::path(
    post,
    path = "/api/v1/plan/preview",
    request_body = PlanRequest,
    responses(
        (status = 200, body = PlanOut),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn plan_preview(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req: PlanRequest = json_body(body)?;
    Ok(Json(st.app.plan_preview(&a.caller, &req, &a.ctx).await?))
}

/// Query of the calendar feed.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CalendarQuery {
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
        .map(|f| patchbay_core::when::instant("from", f, &utc))
        .transpose()?;
    let to =
        q.to.as_deref()
            .map(|t| patchbay_core::when::instant("to", t, &utc))
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
#[utoipa::path(
    get,
    path = "/api/v1/calendar.ics",
    params(CalendarQuery),
    responses(
        (status = 200, description = "The maintenance calendar (RFC 5545)", body = String, content_type = "text/calendar"),
        (status = 400, response = crate::openapi::Error),
    )
)]
pub async fn calendar_authed(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<CalendarQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    calendar_response(&st, &a.caller, q, &a.ctx).await
}

/// `GET /calendar.ics`: the subscribable feed. Calendar applications cannot
/// send headers, so the token may also come as `?token=`; only a calendar
/// token (role `calendar`, which opens nothing else) is accepted here. The
/// token is never recorded, the path is.
#[utoipa::path(
    get,
    path = "/calendar.ics",
    params(CalendarQuery),
    security(("bearer" = []), ("calendar_token" = [])),
    responses(
        (status = 200, description = "The maintenance calendar (RFC 5545)", body = String, content_type = "text/calendar"),
        (status = 400, response = crate::openapi::Error),
        (status = 401, response = crate::openapi::Error),
        (status = 403, response = crate::openapi::Error),
        (status = 429, response = crate::openapi::Error),
    )
)]
pub async fn calendar_feed(
    State(st): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    q: Result<Query<CalendarQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let from_query = q.token.as_ref().map(|t| format!("Bearer {t}"));
    let auth = authorization(&headers).map(str::to_string).or(from_query);
    let caller = st.app.authenticate_calendar(auth.as_deref(), &ctx).await?;
    calendar_response(&st, &caller, q, &ctx).await
}
