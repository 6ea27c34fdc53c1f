//! Patchbay's HTTP server: the REST API (`/api/v1`), the agent endpoints
//! (`/agent/v1`), health and Prometheus metrics.
//!
//! Handlers decode, call one [`App`] method, and encode; authorization, transactions
//! and audit live in the service layer. [`serve`] takes a bound listener and a
//! shutdown future, so tests bind port 0 and stop the server when they like.
//!
//! # Layout
//! - [`router`]: every route with who may call it (one table), middleware.
//! - [`handlers`]: one file per resource.
//! - [`extract`]: the [`Authed`] caller extractor, body and query decoding.
//! - [`errors`]: [`ApiError`], mapping service errors to HTTP answers.
//! - [`metrics`]: Prometheus registry and counters.
//! - [`openapi`]: the OpenAPI 3.1 document (`GET /api/v1/openapi.json`),
//!   generated from the handlers' annotations and the route table.
//! - [`setup`]: opening the store, first-start admin token, listener.
//! - [`tls`]: serving HTTPS (rustls) from PEM files.
//! - [`delivery`]: the webhook delivery loop (leader only, a task per
//!   subscription).
//! - [`siem`]: the SIEM sink (syslog RFC 5424 over UDP, TCP, TLS; CEF or
//!   JSON; leader only) and [`config`], the server configuration file.
#![forbid(unsafe_code)]

pub mod config;
pub mod delivery;
pub mod errors;
pub mod extract;
pub(crate) mod handlers;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod router;
pub mod setup;
pub mod siem;
pub mod tls;

pub use errors::ApiError;
pub use extract::Authed;
pub use router::{Access, RouteSpec, router, routes};
pub use setup::{ConnLimits, Prepared, Settings, prepare, serve, serve_tls};

/// Largest accepted body on the agent check-in endpoint: a 100,000-package
/// inventory is about 20 MB of JSON.
pub const MAX_AGENT_BODY: usize = 32 * 1024 * 1024;
/// Largest accepted body on the REST API (imports of tens of thousands of assets).
pub const MAX_API_BODY: usize = 16 * 1024 * 1024;
