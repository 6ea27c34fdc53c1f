//! Extractors and decoding helpers shared by the handlers.
//!
//! [`Authed`] is the authenticated API caller with the facts of its request;
//! the authentication middleware puts it in the request, handlers take it as
//! an argument. Bodies and queries are decoded by [`json_body`] and [`query`],
//! which turn every decoding failure into a stable `invalid_request` (or 413)
//! answer naming what was wrong and where.

use crate::errors::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OriginalUri, Query, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, Method, StatusCode, Uri};
use patchbay_app::{Caller, RequestCtx};
use patchbay_proto::error::ErrorCode;
use serde::de::DeserializeOwned;

/// Handler result.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// An authenticated API caller and its request's facts (method, path, peer),
/// which refusals and audit entries record.
#[derive(Debug, Clone)]
pub struct Authed {
    /// Who is calling.
    pub caller: Caller,
    /// The request, for the audit trail.
    pub ctx: RequestCtx,
}

/// The answer when a handler that needs a caller runs without the
/// authentication middleware in front of it (a wiring mistake, never a
/// client's fault; refusing is the safe side).
pub(crate) fn missing_auth() -> ApiError {
    tracing::error!("a handler needing a caller ran without authentication middleware");
    ApiError::new(
        ErrorCode::Internal,
        "internal error: request not authenticated",
    )
}

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authed>()
            .cloned()
            .ok_or_else(missing_auth)
    }
}

/// The facts of a request recorded with refusals: method, the path the client
/// asked for, and the peer address when the server knows it.
pub(crate) fn request_ctx(req: &Request) -> RequestCtx {
    ctx_from(req.method(), req.uri(), req.extensions())
}

fn ctx_from(method: &Method, uri: &Uri, ext: &Extensions) -> RequestCtx {
    RequestCtx {
        method: method.to_string(),
        // Inside nested routers the URI is stripped of the prefix: record the
        // path the client asked for.
        path: ext
            .get::<OriginalUri>()
            .map(|u| u.0.path().to_string())
            .unwrap_or_else(|| uri.path().to_string()),
        remote: ext
            .get::<ConnectInfo<crate::tls::RemoteAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_default(),
        client_cert: ext
            .get::<crate::tls::ClientCert>()
            .and_then(|c| c.0.clone()),
    }
}

/// The request's facts, for handlers whose caller is not an API token (the
/// enrolment endpoint).
#[derive(Debug, Clone)]
pub struct Ctx(pub RequestCtx);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Ctx(ctx_from(&parts.method, &parts.uri, &parts.extensions)))
    }
}

/// Decodes a JSON body, naming the line and column of a syntax error and mapping
/// an oversized body to 413.
pub(crate) fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let bytes = raw_body(body)?;
    if bytes.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "request body is empty; JSON expected",
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("invalid JSON body: {e}")))
}

/// The body's bytes; an oversized body is 413, any other read failure 400.
pub(crate) fn raw_body(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|r| {
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
    })
}

/// A path parameter, decoded. Axum's own `Path` answers a parameter that is
/// not UTF-8 once percent-decoded (`/api/v1/assets/%FF`) with a plain-text
/// 400; this answers the API's error body (`invalid_request`) like every
/// other bad input. Found while checking the OpenAPI document's media types.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("path: {}", e.body_text()),
            )),
        }
    }
}

/// A decoded query string; a failure is 400 naming the parameter.
pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))
}

/// A request body the handler has no use for, read to its end anyway (up to
/// the router's body limit) and dropped.
///
/// Why: hyper keeps an HTTP/1.1 connection alive after the answer only if
/// the request body was read. A handler that ignores it drops it unread,
/// and when its bytes have not arrived yet (a client writing the head and
/// the body separately, a loaded machine), hyper closes the connection
/// after answering. The client put the connection back in its pool when
/// the answer came; its next request on it races the close and fails with
/// "Peer disconnected" — a POST that may not be retried. Seen as an
/// intermittent failure of the kill -9 webhook test under load (issue 15);
/// `keep_alive::a_body_a_handler_ignores_does_not_close_the_connection` in
/// crates/patchbay-cli/tests/it guards it.
pub struct Drained;

impl<S: Send + Sync> FromRequest<S> for Drained {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Too large or cut off: nothing to keep the connection for.
        let _ = Bytes::from_request(req, state).await;
        Ok(Drained)
    }
}
