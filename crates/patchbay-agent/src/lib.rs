//! The Patchbay agent: enrols once, then reports this host's inventory to the
//! server at an interval with jitter.
//!
//! The agent is read-only in this release: it collects and reports, and never
//! changes packages. Everything it needs to survive restarts lives in its state
//! directory (identity, last acknowledged inventory), written atomically.
//!
//! # Layout
//! - [`collect`]: host facts, package databases (dpkg, apk, rpm), pending updates.
//! - [`http`]: a small blocking JSON client shared with the CLI.
//! - [`state`]: the state directory (identity, last acknowledged inventory).
//! - [`run`]: enrolment, check-in (full, delta or unchanged) and the loop.
//! - [`cli`]: command-line flags and the binary's entry point.
#![forbid(unsafe_code)]

pub mod cli;
pub mod collect;
pub mod http;
pub mod run;
pub mod state;
