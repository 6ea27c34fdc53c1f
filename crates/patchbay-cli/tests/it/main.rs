//! End-to-end tests of the `patchbay` and `patchbay-agent` binaries against a real
//! server, on SQLite and on PostgreSQL (PATCHBAY_TEST_PG_URL, set by scripts/test).

mod support;

mod agent;
mod assess;
mod audit_chain;
mod auth;
mod backup;
mod changes;
mod checkin;
mod cli;
mod config_check;
mod crash;
mod csaf;
mod dashboard_browser;
mod delta;
mod dev;
mod discovery;
mod duties;
mod enrichment;
mod escalations;
mod exceptions;
mod feeds_upload;
mod flips;
mod heartbeats;
mod identity;
mod injection;
mod keep_alive;
mod key_rotation;
mod lifecycle;
mod limits;
mod malformed;
mod mtls;
mod prioritise;
mod projection;
mod reports;
mod scan;
mod scan_index;
mod schedule;
mod siem_config;
mod smtp_config;
mod test_results;
mod tls;
mod upgrade;
mod webhook_auth;
mod webhooks;

/// Runs each named test function once per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[test] fn $name() { super::$name("sqlite") } )* }
        mod postgres { $( #[test] fn $name() { super::$name("postgres") } )* }
    };
}
