//! Change records (CHG-…), runbooks (data from the app, rendered by
//! `patchbay-render`), and the lessons-learned log.

use crate::errors::ApiError;
use crate::extract::{ApiPath, ApiResult, Authed, json_body, query};
use crate::router::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use patchbay_app::AppError;
use patchbay_proto::api::{ChangeRecordOut, ChangeSummaryOut, LessonIn, LessonOut, List};
use patchbay_proto::error::ErrorCode;
use serde::Deserialize;

/// `GET /api/v1/changes`.
#[utoipa::path(
    get,
    path = "/api/v1/changes",
    responses((status = 200, body = List<ChangeSummaryOut>))
)]
pub async fn list(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.change_records(&a.caller, &a.ctx).await?,
    }))
}

/// `GET /api/v1/changes/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/changes/{id}",
    params(
        ("id" = String, Path, description = "The change record’s id (`CHG-…`)"),
    ),
    responses(
        (status = 200, body = ChangeRecordOut),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn show(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.app.change_record(&a.caller, &id, &a.ctx).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunbookQuery {
    format: Option<String>,
}

/// `GET /api/v1/changes/{id}/runbook?format=md|html`.
#[utoipa::path(
    get,
    path = "/api/v1/changes/{id}/runbook",
    params(
        ("id" = String, Path, description = "The change record’s id (`CHG-…`)"),
        RunbookQuery,
    ),
    responses(
        (status = 200, description = "The runbook, as Markdown (`format=md`, the default) or an HTML page (`format=html`)", content((String = "text/markdown"), (String = "text/html"))),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn runbook(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
    q: Result<Query<RunbookQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
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
    let runbook = st.app.runbook(&a.caller, &id, &a.ctx).await?;
    Ok(if html {
        let body = patchbay_render::runbook::html(&runbook).map_err(AppError::from)?;
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
    } else {
        let body = patchbay_render::runbook::markdown(&runbook);
        (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            body,
        )
            .into_response()
    })
}

/// `POST /api/v1/changes/{id}/lessons`.
#[utoipa::path(
    post,
    path = "/api/v1/changes/{id}/lessons",
    params(
        ("id" = String, Path, description = "The change record’s id (`CHG-…`)"),
    ),
    request_body = LessonIn,
    responses(
        (status = 201, body = LessonOut),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn add_lesson(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: LessonIn = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(
            st.app
                .add_lesson(&a.caller, &id, &input.text, &a.ctx)
                .await?,
        ),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct LessonQuery {
    q: Option<String>,
}

/// `GET /api/v1/lessons?q=`.
#[utoipa::path(
    get,
    path = "/api/v1/lessons",
    params(LessonQuery),
    responses(
        (status = 200, body = List<LessonOut>),
        (status = 400, response = crate::openapi::Error),
    )
)]
pub async fn search_lessons(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<LessonQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let q = query(q)?;
    Ok(Json(List {
        items: st
            .app
            .search_lessons(&a.caller, q.q.as_deref().unwrap_or(""), &a.ctx)
            .await?,
    }))
}
