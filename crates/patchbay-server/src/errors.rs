//! HTTP error answers: `{"error": {"code", "message"}}` with the code's status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use patchbay_app::AppError;
use patchbay_proto::error::{ErrorBody, ErrorCode, ErrorDetail};

/// An error answered over HTTP.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

/// A time text that could not be read (`invalid_request`, naming the field).
impl From<patchbay_core::when::WhenError> for ApiError {
    fn from(e: patchbay_core::when::WhenError) -> Self {
        ApiError(e.into())
    }
}

impl ApiError {
    /// Builds an error from a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(AppError::new(code, message))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.0.retry_after;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.0.code,
                message: self.0.message,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        resp
    }
}
