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
//! - [`collect`]: host facts, package databases (dpkg, apk, rpm), pending updates.
//! - [`state`]: the state directory (identity, last acknowledged inventory).
//! - [`run`]: enrolment, check-in (full, delta or unchanged) and the loop.
//! - [`exec`]: the execution layer: package-manager backends (apt, dnf, zypper,
//!   apk), pre-flight, health checks, rollback and the crash-safe journal.
//! - [`cli`]: command-line flags and the binary's entry point.
#![forbid(unsafe_code)]

pub mod cli;
pub mod collect;
pub mod exec;
pub mod run;
pub mod state;
