//! In-process service tests: the router called with `tower::ServiceExt::oneshot`
//! over a real SQLite store, no sockets, no processes (the middle test
//! boundary between the unit tests and the end-to-end tests in
//! `crates/patchbay-cli/tests/it`).

mod backups;
mod dashboard;
mod deploy;
mod discovery_scan;
mod drift;
mod email;
mod escalations;
mod feed_sync;
mod governance;
mod hardening;
mod heartbeats;
mod impact;
mod matrix;
mod openapi;
mod outcomes;
mod retest;
mod rotation;
mod siem;
mod sla_resolve;
mod support;
mod test_report;
mod webhook_lifecycle;
mod webhooks;
