//! Service errors: a stable [`ErrorCode`] and a message for people.

use patchbay_proto::error::ErrorCode;
use patchbay_store::StoreError;

/// An error answered to a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct AppError {
    /// Stable code.
    pub code: ErrorCode,
    /// What went wrong, naming the thing.
    pub message: String,
    /// For `too_many_requests`: seconds until a retry may succeed (the HTTP
    /// `Retry-After` header).
    pub retry_after: Option<u64>,
}

impl AppError {
    /// Builds an error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// Sets the seconds until a retry may succeed.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    /// `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
}

/// A time text that could not be read: `invalid_request`, naming the field.
impl From<patchbay_core::when::WhenError> for AppError {
    fn from(e: patchbay_core::when::WhenError) -> Self {
        AppError::invalid(e.to_string())
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => AppError::new(ErrorCode::NotFound, m),
            StoreError::Conflict(m) => AppError::new(ErrorCode::Conflict, m),
            StoreError::Unavailable(m) if m.starts_with(patchbay_store::DISK_FULL) => {
                tracing::error!(error = %m, "database disk full; changes refused");
                AppError::new(
                    ErrorCode::Unavailable,
                    "the database's disk is full: changes are refused until space is freed (reads still work); retry later",
                )
            }
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                AppError::new(
                    ErrorCode::Unavailable,
                    "the database is unavailable; retry later",
                )
            }
            StoreError::Integrity(m) => {
                tracing::error!(error = %m, "audit chain integrity check failed; refusing the change");
                AppError::new(ErrorCode::Internal, m)
            }
            StoreError::Other(m) => {
                tracing::error!(error = %m, "storage error");
                AppError::new(
                    ErrorCode::Internal,
                    "internal storage error (see the server log)",
                )
            }
        }
    }
}

impl From<patchbay_render::Error> for AppError {
    fn from(e: patchbay_render::Error) -> Self {
        tracing::error!(error = %e, "rendering failed");
        AppError::new(ErrorCode::Internal, e.to_string())
    }
}
