//! The Patchbay agent: enrols once, then reports this host's inventory to the
//! server at an interval with jitter.
//!
//! The check-in loop is read-only: it collects and reports. Changes to packages
//! happen only through the execution layer ([`exec`]), reached from the local
//! subcommands (`apply`, `rollback`, `check`, `updates`, `recover`). Everything
//! the agent needs to survive restarts lives in its state directory (identity,
//! last acknowledged inventory written atomically; the job journal appended and
//! fsynced).
//!
//! # Layout
//! The `patchbay-agent` binary is this crate's `src/main.rs` (flags and logging,
//! then [`cli::main_entry`]); it links only what this library needs — the server
//! talks to it over HTTP through [`patchbay_client`], and no server crate (sqlx,
//! axum, hyper) is among its dependencies (`scripts/test` checks).
//!
//! - [`collect`]: host facts, package databases (dpkg, apk, rpm), pending updates.
//! - [`state`]: the state directory (identity, last acknowledged inventory).
//! - [`run`]: enrolment, check-in (full, delta or unchanged) and the loop, over
//!   [`patchbay_client::Client`].
//! - [`exec`]: the execution layer: package-manager backends (apt, dnf, zypper,
//!   apk), pre-flight, health checks, rollback, the crash-safe journal and the
//!   typed results the local commands print ([`exec::report`]).
//! - [`cli`]: command-line flags and the binary's entry point.
#![forbid(unsafe_code)]

pub mod cli;
pub mod collect;
pub mod exec;
pub mod run;
pub mod state;
