//! The Patchbay agent: enrols once, then reports this host's inventory to the
//! server at an interval with jitter.
//!
//! The check-in loop collects and reports; it changes packages only when the
//! local configuration allows server jobs (`[jobs] enabled = true`, default
//! off) and then only for jobs signed by the server key pinned at enrolment
//! ([`jobs`]). Changes to packages happen only through the execution layer
//! ([`exec`]), reached from those jobs and from the local subcommands (`apply`,
//! `rollback`, `check`, `updates`, `recover`). Everything the agent needs to
//! survive restarts lives in its state directory (identity, last acknowledged
//! inventory and the job outbox written atomically; the job journal appended
//! and fsynced).
//!
//! # Layout
//! The `patchbay-agent` binary is this crate's `src/main.rs` (flags and logging,
//! then [`cli::main_entry`]); it links only what this library needs — the server
//! talks to it over HTTP through [`patchbay_client`], and no server crate (sqlx,
//! axum, hyper) is among its dependencies (`scripts/test` checks).
//!
//! - [`collect`]: host facts, package databases (dpkg, apk, rpm), pending updates.
//! - [`state`]: the state directory (identity, last acknowledged inventory).
//! - [`run`]: enrolment, check-in (full, delta or unchanged; job results until
//!   acknowledged; long-poll) and the loop, over [`patchbay_client::Client`].
//! - [`jobs`]: server-signed jobs from the check-in: admission (signature under
//!   the pinned key, deadline, local checks), execution through [`exec`], and
//!   the durable outbox of results.
//! - [`exec`]: the execution layer: package-manager backends (apt, dnf, zypper,
//!   apk), pre-flight, health checks, rollback, the crash-safe journal and the
//!   typed results the local commands print ([`exec::report`]).
//! - [`cli`]: command-line flags and the binary's entry point.
#![forbid(unsafe_code)]

pub mod cli;
pub mod collect;
pub mod exec;
pub mod jobs;
pub mod run;
pub mod state;
