//! Patchbay's pure domain core.
//!
//! Everything here is a plain function over values: no IO, no async, no clock.
//! Callers pass `now` in. Parsers of untrusted input (dpkg status, apk installed
//! database, rpm query lists, os-release) live here so they can be property-tested
//! and fuzzed without touching a file system.
//!
//! # Layout
//! - [`audit`]: the audit trail's hash chain, head signatures and verifier.
//! - [`drift`]: a group's baseline (modal version per package, or a golden
//!   host) and each host's drift from it; what converging installs.
//! - [`exception`]: the exception register's matching, lifetimes and review.
//! - [`names`]: validated newtypes for asset names and other identifiers.
//! - [`auth`]: roles, actions, and the single role → permission table.
//! - [`asset`]: asset kinds, business impact, exposure, and the liveness rule
//!   (managed / stale / unmanaged).
//! - [`inventory`]: the inventory model, its canonical hash, deltas, and the
//!   parsers of package databases.
//! - [`token`]: token format and hashing (random bytes are an input).
//! - [`assess`]: OS → OSV ecosystem, the advisory index, and matching with a
//!   fleet-wide cache of (ecosystem, package, version) results.
//! - [`compiled`]: the compiled advisory index: an index, KEV and EPSS laid out
//!   once in a versioned, checksummed binary form, decoded on demand.
//! - [`report`]: compliance, time-to-patch, SLA adherence and coverage as of any
//!   date, and the controls each evidences.
//! - [`severity`]: which CVSS score a finding uses when it has several (source
//!   and version preference, ADR 0013).
//! - [`risk`]: the risk model: tiers P0–P4, rank score, SLA due dates (KEV due
//!   dates honoured), and the reasons for each decision.
//! - [`rank`]: findings ranked under a policy (tier, due date, score,
//!   exclusion, groups) and the worklist order — one ranking for every answer.
//! - [`policy`]: policy as code: the versioned TOML policy file, its validation
//!   (errors name line and field), groups, approval, exclusions, pins, rings.
//! - [`window`]: maintenance windows: RFC 5545 recurrences in an IANA time
//!   zone, with RFC DST rules, a day offset and a cutoff.
//! - [`when`]: the one parser of instants, durations and time zones (and the
//!   renderer of SLA durations); errors name the field and the text.
//! - [`plan`]: the schedule planner: assets into their earliest eligible
//!   windows in ring order, blackouts and soak respected, SLA-at-risk forecast.
//! - [`rollout`]: the rollout state machine (`step(state, observations, now)`):
//!   rings, concurrency, the hard error-budget cap, gates, halt and rollback.
//! - [`job`]: agent jobs: typed, signed (canonical encoding, ed25519), and the
//!   agent's admission rules.
//! - [`event`]: the typed, versioned event schema integrations receive.
//! - [`webhook`]: webhook signatures, retry backoff, filters and templates.
//! - [`canary`]: canary analysis of a ring's health checks (Fisher exact,
//!   Mann-Whitney U with a tolerance; inconclusive when data is thin).
//! - [`discovery`]: machines seen by scans, DHCP leases, cloud inventories
//!   and agents' neighbour tables (parsers), reconciled with the registry into
//!   shadow, ghost, duplicate and conflict.
#![forbid(unsafe_code)]

pub mod assess;
pub mod asset;
pub mod audit;
pub mod auth;
pub mod canary;
pub mod compiled;
pub mod discovery;
pub mod drift;
pub mod escalation;
pub mod event;
pub mod exception;
pub mod impact;
pub mod inventory;
pub mod job;
pub mod names;
pub mod plan;
pub mod policy;
pub mod rank;
pub mod report;
pub mod risk;
pub mod rollout;
pub mod severity;
pub mod siem;
pub mod token;
pub mod webhook;
pub mod when;
pub mod window;
