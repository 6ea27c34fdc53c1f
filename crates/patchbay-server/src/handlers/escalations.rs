//! Notification contacts, their email log, and escalation chains with
//! acknowledgement.

use crate::extract::{ApiPath, ApiResult, Authed, json_body, query};
use crate::router::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use patchbay_proto::api::{
    ContactOut, ContactSpec, EmailOut, EscalationAckIn, EscalationChainDetail, EscalationChainOut,
    EscalationOut, EscalationSpec, List,
};
use serde::Deserialize;

/// `GET /api/v1/contacts`.
#[utoipa::path(
    get,
    path = "/api/v1/contacts",
    responses((status = 200, body = List<ContactOut>))
)]
pub async fn contacts(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.contacts(&a.caller, &a.ctx).await?,
    }))
}

/// `POST /api/v1/contacts`.
#[utoipa::path(
    post,
    path = "/api/v1/contacts",
    request_body = ContactSpec,
    responses(
        (status = 201, body = ContactOut),
        (status = 400, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn add_contact(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let spec: ContactSpec = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.add_contact(&a.caller, &spec, &a.ctx).await?),
    ))
}

/// `DELETE /api/v1/contacts/{name}`.
#[utoipa::path(
    delete,
    path = "/api/v1/contacts/{name}",
    params(("name" = String, Path, description = "The contact’s name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn remove_contact(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
    _body: crate::extract::Drained,
) -> ApiResult<impl IntoResponse> {
    st.app.remove_contact(&a.caller, &name, &a.ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmailsQuery {
    #[serde(default)]
    contact: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /api/v1/contacts/deliveries?contact=&limit=`: the email log.
#[utoipa::path(
    get,
    path = "/api/v1/contacts/deliveries",
    params(EmailsQuery),
    responses(
        (status = 200, body = List<EmailOut>),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn emails(
    State(st): State<AppState>,
    a: Authed,
    q: Result<Query<EmailsQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let q = query(q)?;
    Ok(Json(List {
        items: st
            .app
            .email_deliveries(
                &a.caller,
                q.contact.as_deref(),
                q.limit.unwrap_or(100),
                &a.ctx,
            )
            .await?,
    }))
}

/// `GET /api/v1/escalations`.
#[utoipa::path(
    get,
    path = "/api/v1/escalations",
    responses((status = 200, body = List<EscalationChainOut>))
)]
pub async fn list(State(st): State<AppState>, a: Authed) -> ApiResult<impl IntoResponse> {
    Ok(Json(List {
        items: st.app.escalations(&a.caller, &a.ctx).await?,
    }))
}

/// `POST /api/v1/escalations`.
#[utoipa::path(
    post,
    path = "/api/v1/escalations",
    request_body = EscalationSpec,
    responses(
        (status = 201, body = EscalationChainOut),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn add(
    State(st): State<AppState>,
    a: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let spec: EscalationSpec = json_body(body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.app.add_escalation(&a.caller, &spec, &a.ctx).await?),
    ))
}

/// `GET /api/v1/escalations/{name}`.
#[utoipa::path(
    get,
    path = "/api/v1/escalations/{name}",
    params(("name" = String, Path, description = "The chain’s name")),
    responses(
        (status = 200, body = EscalationChainDetail),
        (status = 404, response = crate::openapi::Error),
    )
)]
pub async fn show(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        st.app.escalation_chain(&a.caller, &name, &a.ctx).await?,
    ))
}

/// `DELETE /api/v1/escalations/{name}`.
#[utoipa::path(
    delete,
    path = "/api/v1/escalations/{name}",
    params(("name" = String, Path, description = "The chain’s name")),
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
    st.app.remove_escalation(&a.caller, &name, &a.ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/escalations/{name}/ack`.
#[utoipa::path(
    post,
    path = "/api/v1/escalations/{name}/ack",
    params(("name" = String, Path, description = "The escalation’s id")),
    request_body = EscalationAckIn,
    responses(
        (status = 200, body = EscalationOut),
        (status = 400, response = crate::openapi::Error),
        (status = 404, response = crate::openapi::Error),
        (status = 409, response = crate::openapi::Error),
    )
)]
pub async fn ack(
    State(st): State<AppState>,
    a: Authed,
    ApiPath(name): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let input: EscalationAckIn = json_body(body)?;
    Ok(Json(
        st.app
            .ack_escalation(&a.caller, &name, &input, &a.ctx)
            .await?,
    ))
}
