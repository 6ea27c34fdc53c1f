//! Patchbay wire types: the REST API v1 (`/api/v1`) and the agent protocol v1.
//!
//! Serialization is a boundary: these types are what travels, and they are
//! converted by hand to domain types in the service layer. Changing a field here
//! changes the protocol; add fields as `Option` or with `#[serde(default)]`.
//!
//! # Layout
//! - [`error`]: the error body and its stable machine-readable codes.
//! - [`agent`]: enrolment and check-in messages.
//! - [`api`]: assets, tokens, enrolment tokens, audit events.
//! - [`discovery`]: discovery imports and the reconciliation (shadow, ghost,
//!   duplicate, conflict).
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod discovery;
pub mod error;

/// Agent protocol version spoken by this build.
pub const AGENT_PROTOCOL_VERSION: u32 = 1;
