//! Error bodies. Every non-2xx answer of `/api/v1` and `/agent/v1` carries
//! `{"error": {"code": "...", "message": "..."}}`; `code` is stable and meant for
//! machines, `message` is for people and names what went wrong.

use serde::{Deserialize, Serialize};

/// Stable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No credentials, or unknown, revoked or expired credentials (HTTP 401).
    Unauthenticated,
    /// An API token past its expiry (HTTP 401): create a new one.
    TokenExpired,
    /// Too many failed authentications from this source or with this
    /// credential; retry after the `Retry-After` header's seconds (HTTP 429).
    TooManyRequests,
    /// Valid credentials without the needed role or scope (HTTP 403).
    Forbidden,
    /// The named thing does not exist (HTTP 404).
    NotFound,
    /// The request conflicts with existing state (HTTP 409).
    Conflict,
    /// The body or parameters are malformed (HTTP 400 / 422).
    InvalidRequest,
    /// The body exceeds the size limit (HTTP 413).
    PayloadTooLarge,
    /// A delta check-in was computed against an inventory the server does not hold;
    /// the agent must send its full inventory (HTTP 409).
    InventoryBaseMismatch,
    /// The agent speaks a protocol version this server does not (HTTP 400).
    UnsupportedProtocol,
    /// An enrolment would take over an asset that has an active agent, or adopt
    /// an imported asset, without proof: the old agent's credential or an
    /// operator's enrolment approval (HTTP 409).
    EnrollmentNeedsApproval,
    /// A check-in reports a machine id other than the one its asset was
    /// enrolled with (HTTP 409).
    IdentityMismatch,
    /// The storage backend is unavailable; retry later (HTTP 503).
    Unavailable,
    /// A bug or unexpected failure (HTTP 500).
    Internal,
}

impl ErrorCode {
    /// The HTTP status for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::Unauthenticated | ErrorCode::TokenExpired => 401,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict
            | ErrorCode::InventoryBaseMismatch
            | ErrorCode::EnrollmentNeedsApproval
            | ErrorCode::IdentityMismatch => 409,
            ErrorCode::InvalidRequest | ErrorCode::UnsupportedProtocol => 400,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::InventoryBaseMismatch => "inventory_base_mismatch",
            ErrorCode::UnsupportedProtocol => "unsupported_protocol",
            ErrorCode::EnrollmentNeedsApproval => "enrollment_needs_approval",
            ErrorCode::IdentityMismatch => "identity_mismatch",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// The `error` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable code.
    pub code: ErrorCode,
    /// Human message.
    pub message: String,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}
