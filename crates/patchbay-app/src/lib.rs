//! Patchbay's service layer: the one place that authorizes, opens transactions
//! and records audit events.
//!
//! HTTP handlers decode a request, call one method of [`App`], and encode the
//! answer. Each method that changes state checks the caller's role, runs one
//! write transaction, and appends its audit event *inside that transaction*, so a
//! change and its record commit together or not at all. Refused requests are
//! recorded too, in a transaction of their own.
//!
//! Time comes from an injected [`Clock`] so tests control it.
//!
//! # Layout
//! - [`changes`]: change records (CHG-…), runbooks, the lessons-learned log.
//! - [`duties`]: the duties runner: background work under a leader lease.
//! - [`error`]: [`AppError`], a stable code plus a human message.
//! - [`auth`]: callers, token authentication, role checks, bootstrap token.
//! - [`assets`]: registry queries, edits and agentless imports.
//! - [`agents`]: enrolment and check-in (inventory deltas).
//! - [`tokens`]: API and enrolment tokens, audit listing.
//! - [`assess`]: findings kept in step with inventories and feeds.
//! - [`evidence`]: verifying and exporting the hash-chained audit trail.
//! - [`exceptions`]: the exception register (EXC-…), review and expiry events.
//! - [`feeds`]: storing imported advisory, KEV and EPSS feeds.
//! - [`prioritise`]: risk tiers, the worklist, policy preview/apply, triage.
//! - [`reports`]: compliance, time-to-patch, SLA and coverage reports as of a
//!   date, in JSON, CSV and printable HTML with SVG charts.
//! - [`schedule`]: maintenance windows, blackouts, the plan preview, the calendar.
#![forbid(unsafe_code)]

pub mod agents;
pub mod assess;
pub mod assets;
pub mod auth;
pub mod changes;
pub mod duties;
pub mod error;
pub mod evidence;
pub mod exceptions;
pub mod feeds;
pub mod prioritise;
pub mod reports;
pub mod schedule;
pub mod tokens;

use jiff::{SignedDuration, Timestamp};
use patchbay_store::{AuditRecord, Store, Tx};
use std::sync::{Arc, Mutex};

pub use auth::{Caller, RequestCtx};
pub use error::AppError;

/// Source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that tests set by hand.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    /// Starts at `t`.
    pub fn new(t: Timestamp) -> Self {
        Self(Mutex::new(t))
    }
    /// Moves the clock.
    pub fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }
    /// Advances the clock.
    pub fn advance(&self, d: SignedDuration) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *g += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Settings of the service layer.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// A managed asset is stale after this long without a check-in.
    pub stale_after: SignedDuration,
    /// Check-in interval suggested to agents.
    pub checkin_interval_secs: u64,
    /// The background duties runner.
    pub duties: duties::DutiesConfig,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            stale_after: patchbay_core::asset::DEFAULT_STALE_AFTER,
            checkin_interval_secs: 15 * 60,
            duties: duties::DutiesConfig::default(),
        }
    }
}

/// The service layer.
#[derive(Clone)]
pub struct App {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: AppConfig,
    index_cache: Arc<Mutex<assess::IndexCache>>,
    signer: Option<Arc<patchbay_core::audit::Signer>>,
}

impl App {
    /// Creates the service over a store and a clock.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: AppConfig) -> Self {
        Self {
            store,
            clock,
            config,
            index_cache: Arc::default(),
            signer: None,
        }
    }

    /// Signs audit entries (and evidence) with the server's key.
    pub fn with_signer(mut self, signer: patchbay_core::audit::Signer) -> Self {
        self.signer = Some(Arc::new(signer));
        self
    }

    /// The server's signing key, if this process holds it.
    pub fn signer(&self) -> Option<&patchbay_core::audit::Signer> {
        self.signer.as_deref()
    }

    /// Records the signing key's public half and seals audit entries written
    /// before the hash chain existed. Run once at start.
    pub async fn init_audit_chain(&self) -> Result<u64, AppError> {
        let mut tx = self.store.write().await?;
        if let Some(s) = &self.signer {
            tx.register_server_key(&s.public_hex(), self.now()).await?;
        }
        let sealed = tx.seal_legacy_audit(self.signer.as_deref()).await?;
        tx.commit().await?;
        Ok(sealed)
    }

    /// The store (for health checks).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Now, from the injected clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The configuration.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    fn record(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: serde_json::Value,
    ) -> AuditRecord {
        AuditRecord {
            at: self.now(),
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: outcome.to_string(),
            detail,
        }
    }

    /// Appends an audit event inside `tx`.
    async fn audit_in(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), AppError> {
        let rec = self.record(actor, action, target, "ok", detail);
        tx.append_audit(&rec, self.signer.as_deref()).await?;
        Ok(())
    }

    /// Records a refused request in its own transaction. Failing to record is
    /// logged, never turned into a different answer for the client.
    async fn audit_refusal(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) {
        let rec = self.record(actor, action, target, "denied", detail);
        let res = async {
            let mut tx = self.store.write().await?;
            tx.append_audit(&rec, self.signer.as_deref()).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = res {
            tracing::error!(error = %e, action, "could not record a refused request in the audit log");
        }
    }
}

/// A fresh 32-byte seed for a signing key.
pub fn new_signing_seed() -> [u8; 32] {
    random32()
}

/// Generates 32 random bytes from the OS-seeded generator.
pub(crate) fn random32() -> [u8; 32] {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b
}

/// Formats a timestamp for the wire (RFC 3339, UTC, second precision).
pub fn fmt_ts(t: Timestamp) -> String {
    t.round(jiff::Unit::Second).unwrap_or(t).to_string()
}
