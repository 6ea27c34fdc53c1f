//! Request handlers, one file per resource. Each decodes its request, calls
//! one [`patchbay_app::App`] method and encodes the answer; who may call which
//! handler is declared in [`crate::router`].
//!
//! # Layout
//! - [`ops`]: health, metrics, the 404 answer, `whoami`.
//! - [`agent`]: the agent protocol (enrolment, check-in).
//! - [`assets`]: the asset registry, imports, enrolment approvals.
//! - [`discovery`]: scans, leases and cloud inventories; shadow, ghost,
//!   duplicate and conflict; adopt and dismiss.
//! - [`tokens`]: API and enrolment tokens.
//! - [`drift`]: configuration drift per policy group.
//! - [`audit`]: the audit log and its export.
//! - [`findings`]: findings and imported feeds.
//! - [`csaf`]: what CSAF documents say about an asset's products.
//! - [`feeds`]: feed uploads (`patchbay feeds import` against a server).
//! - [`prioritise`]: worklist, policy, triage, patches, deployments.
//! - [`schedule`]: windows, blackouts, the plan preview, the calendar.
//! - [`deployments`]: deployments and their rollouts.
//! - [`exceptions`]: the exception register.
//! - [`reports`]: reports and the evidence bundle.
//! - [`governance`]: the governance review report over a period.
//! - [`changes`]: change records, runbooks, lessons.
//! - [`test_report`]: a deployment's published test report (API and dashboard).
//! - [`escalations`]: notification contacts, the email log, escalation
//!   chains and acknowledgement.
//! - [`webhooks`]: webhook subscriptions, deliveries, replays, tests.
//! - [`users`]: dashboard users and their sessions (the API side).
//! - [`ui`]: the NOC dashboard's pages and forms (session cookie, CSRF).
//! - [`ui_act`]: the dashboard's new-deployment and exception forms.

pub mod agent;
pub mod assets;
pub mod audit;
pub mod changes;
pub mod csaf;
pub mod deployments;
pub mod discovery;
pub mod drift;
pub mod escalations;
pub mod exceptions;
pub mod feeds;
pub mod findings;
pub mod governance;
pub mod ops;
pub mod prioritise;
pub mod reports;
pub mod schedule;
pub mod test_report;
pub mod tokens;
pub mod ui;
pub mod ui_act;
pub mod users;
pub mod webhooks;
