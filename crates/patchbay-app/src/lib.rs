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
//! - [`change`]: the one path for every state change (transaction, audit
//!   entry, outbox event).
//! - [`changes`]: change records (CHG-…), runbooks (as data, rendered by
//!   `patchbay-render`), the lessons-learned log.
//! - [`deployments`]: server-driven rollouts: preview, create, operator
//!   actions and approvals, the rollout driver, the job half of check-ins.
//! - [`drift`]: configuration drift per policy group (baseline, per-host
//!   differences), its metric, and the pins of a "converge" deployment.
//! - [`duties`]: the duties runner: background work under a leader lease.
//! - [`email`]: email over SMTP (lettre), sent from the outbox per contact.
//! - [`escalations`]: notification contacts, escalation chains and their
//!   duty (steps fired as audited events), acknowledgement.
//! - [`error`]: [`AppError`], a stable code plus a human message.
//! - [`auth`]: callers, token authentication (expiry), role and scope
//!   checks, bootstrap token.
//! - [`backoff`]: backoff on repeated authentication failures (429 before the
//!   secret is looked up), per source and per credential, bounded memory.
//! - [`assets`]: registry queries, edits and agentless imports.
//! - [`agents`]: enrolment and check-in (inventory deltas).
//! - [`impact`]: expected-impact notices before a deployment's window and
//!   a summary after it, per owner (a duty), and the impact API.
//! - [`heartbeats`]: liveness of unchanged check-ins, in memory, flushed in
//!   batches (no write transaction per steady check-in).
//! - [`system`]: the named system callers (duties, start-up, zero-day lane, …).
//! - [`tokens`]: API and enrolment tokens, audit listing.
//! - [`assess`]: findings kept in step with inventories and feeds.
//! - [`evidence`]: verifying and exporting the hash-chained audit trail.
//! - [`exceptions`]: the exception register (EXC-…), review and expiry events.
//! - [`governance`]: the governance review report (risk removed against
//!   effort spent) over a period.
//! - [`feeds`]: storing imported advisory, KEV and EPSS feeds.
//! - `outbox`: reading the events outbox from a consumer's stored cursor and moving
//!   it in the same transaction (webhooks, contacts, escalation chains).
//! - [`prioritise`]: risk tiers, the worklist, policy preview/apply, triage.
//! - `ranking`: the one ranking of findings (tier, due date, groups, exclusion,
//!   exception) that prioritise, schedule, exceptions and reports share.
//! - `snapshot`: one read transaction for the reads of a consistent answer.
//! - [`reports`]: compliance, time-to-patch, SLA and coverage reports as of a
//!   date, as data (rendered by `patchbay-render`).
//! - [`schedule`]: maintenance windows, blackouts, the plan preview, the calendar.
//! - [`sla`]: the SLA watch (`sla.at_risk`, `sla.breached`, once per finding)
//!   and the weekly exception review event.
//! - `breaches`: the end of an SLA breach (`sla.resolved`, in the fixing
//!   change's transaction).
#![forbid(unsafe_code)]

pub mod agent_ca;
pub mod agents;
pub mod assess;
pub mod assets;
pub mod auth;
pub mod backoff;
pub mod backups;
mod breaches;
pub mod change;
pub mod changes;
pub mod csaf;
pub mod dashboard;
pub mod deployments;
pub mod discovery;
pub mod drift;
pub mod duties;
pub mod email;
pub mod error;
pub mod escalations;
pub mod evidence;
pub mod exceptions;
pub mod feed_sync;
pub mod feeds;
pub mod governance;
pub mod heartbeats;
pub mod impact;
pub mod keys;
mod outbox;
pub mod prioritise;
pub mod projection;
mod ranking;
pub mod rehearsal_gate;
pub mod rehearsals;
pub mod reports;
pub mod rollup;
pub mod schedule;
pub mod siem;
pub mod signatures;
pub mod sla;
mod snapshot;
pub mod system;
pub mod test_report;
pub mod tokens;
pub mod users;
pub mod webhooks;

use jiff::{SignedDuration, Timestamp};
use patchbay_store::{AuditRecord, Store};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use auth::{AgentCaller, Caller, CheckinHeld, Principal, RequestCtx};
pub use error::AppError;
pub use system::SystemActor;

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
    /// Backoff on repeated authentication failures.
    pub auth_backoff: backoff::BackoffConfig,
    /// Mutual TLS for agents (the CA itself: [`App::with_agent_ca`]).
    pub agent_mtls: agent_ca::AgentMtls,
    /// How often the liveness of unchanged check-ins, kept in memory, is
    /// stored ([`heartbeats`]); zero writes each one at once, in its own
    /// transaction (the behaviour before batching).
    pub heartbeat_flush: std::time::Duration,
    /// Webhook delivery (retries, timeouts, concurrency).
    pub webhooks: webhooks::WebhookConfig,
    /// The SMTP server emails go through (none: emails wait in the outbox).
    pub smtp: Option<email::SmtpConfig>,
    /// Email delivery (retries, timeout, batch).
    pub email: email::EmailConfig,
    /// Feed sync sources and feed uploads.
    pub feeds: feed_sync::FeedSyncConfig,
    /// An asset no source (check-in, discovery) attested for this long is a
    /// ghost ([`discovery`]).
    pub ghost_after: SignedDuration,
    /// Scans the discovery-scan duty runs (none by default).
    pub discovery_scans: Vec<discovery::ScanConfig>,
    /// Expected-impact notices: lead time and interruption estimates
    /// ([`impact`]).
    pub impact: impact::ImpactConfig,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            stale_after: patchbay_core::asset::DEFAULT_STALE_AFTER,
            checkin_interval_secs: 15 * 60,
            duties: duties::DutiesConfig::default(),
            auth_backoff: backoff::BackoffConfig::default(),
            agent_mtls: agent_ca::AgentMtls::default(),
            heartbeat_flush: heartbeats::DEFAULT_HEARTBEAT_FLUSH,
            webhooks: webhooks::WebhookConfig::default(),
            smtp: None,
            email: email::EmailConfig::default(),
            feeds: feed_sync::FeedSyncConfig::default(),
            ghost_after: patchbay_core::discovery::DEFAULT_GHOST_AFTER,
            discovery_scans: Vec::new(),
            impact: impact::ImpactConfig::default(),
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
    refusals: Arc<Mutex<RefusalLimiter>>,
    backoff: Arc<Mutex<backoff::AuthBackoff>>,
    /// The signing key, replaceable while running ([`App::rotate_signing_key`]).
    keyring: patchbay_core::audit::Keyring,
    /// Where the signing key lives (rotation writes the new one there).
    key_file: Option<std::path::PathBuf>,
    /// The key rotations recorded in the audit log, oldest first (handed to
    /// agents at check-in so they can follow from the key they pinned).
    announcements: Arc<std::sync::RwLock<Vec<patchbay_core::audit::KeyAnnouncement>>>,
    /// Rung when jobs are leased, so long-polling check-ins answer at once.
    job_bell: Arc<tokio::sync::Notify>,
    /// Rung when an agent's job result is stored, so the duties runner steps
    /// the rollouts at once instead of at its next tick (a failing canary
    /// halts the deployment within moments, a passed ring's successor starts).
    driver_bell: Arc<tokio::sync::Notify>,
    /// Rung when a change that enqueued events commits, so the webhook
    /// delivery loop fans out at once.
    outbox_bell: Arc<tokio::sync::Notify>,
    /// Set (and rung) when the server starts shutting down: long-polling
    /// check-ins answer at once instead of holding the shutdown up.
    draining: Arc<(std::sync::atomic::AtomicBool, tokio::sync::Notify)>,
    /// The agent CA, when agent mutual TLS is on.
    agent_ca: Option<Arc<agent_ca::AgentCa>>,
    /// Check-in times of unchanged check-ins not yet stored.
    heartbeats: Arc<heartbeats::Heartbeats>,
    /// The feed sync running beside the duties runner, if any
    /// ([`App::start_feed_sync`]).
    feed_sync_task: feed_sync::Task,
    discovery_scan_task: feed_sync::Task,
    /// The dashboard's rolled-up values ([`rollup`]).
    rollups: Arc<dashboard::Rollups>,
    /// The ranked projection of open findings the worklist reads ([`projection`]).
    open_findings: Arc<tokio::sync::Mutex<projection::OpenFindings>>,
}

/// Refusal entries one source (client IP address) may add to the audit log per
/// minute; further refusals in that minute are counted and recorded as one
/// `request.denied.suppressed` entry with their number.
pub const REFUSALS_PER_MINUTE: u32 = 20;
/// The window of [`REFUSALS_PER_MINUTE`].
pub const REFUSAL_WINDOW: SignedDuration = SignedDuration::from_secs(60);
/// Longest request-derived text (path, method) recorded in an audit entry, in
/// bytes; longer text is cut at a character boundary and marked.
pub const MAX_AUDIT_TEXT: usize = 256;
/// Sources tracked at once; refusals from further sources share one bucket.
const MAX_REFUSAL_SOURCES: usize = 10_000;
/// The bucket of sources beyond [`MAX_REFUSAL_SOURCES`].
const OVERFLOW_SOURCE: &str = "(other sources)";
/// The actor of aggregated refusal entries.
pub const REFUSAL_LIMITER_ACTOR: &str = SystemActor::RefusalLimiter.name();

/// `s` cut to at most [`MAX_AUDIT_TEXT`] bytes (at a character boundary), with
/// a marker naming how many bytes were cut.
pub fn bounded_text(s: &str) -> String {
    if s.len() <= MAX_AUDIT_TEXT {
        return s.to_string();
    }
    let mut cut = MAX_AUDIT_TEXT;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…[{} more bytes]", &s[..cut], s.len() - cut)
}

/// The source a refusal is counted against: the peer's IP address (its port
/// changes with every connection).
pub(crate) fn refusal_source(remote: &str) -> String {
    match remote.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().to_string(),
        Err(_) if remote.is_empty() => "(unknown)".into(),
        Err(_) => bounded_text(remote),
    }
}

/// Refusals of one source in the current window.
struct SourceWindow {
    start: Timestamp,
    recorded: u32,
    suppressed: u64,
    first_suppressed: Option<Timestamp>,
    last_suppressed: Option<Timestamp>,
}

/// Refusals counted but not recorded one by one.
struct Suppressed {
    source: String,
    count: u64,
    from: Timestamp,
    to: Timestamp,
}

impl SourceWindow {
    fn new(start: Timestamp) -> Self {
        Self {
            start,
            recorded: 0,
            suppressed: 0,
            first_suppressed: None,
            last_suppressed: None,
        }
    }

    fn suppressed(&self, source: &str) -> Option<Suppressed> {
        (self.suppressed > 0).then(|| Suppressed {
            source: source.to_string(),
            count: self.suppressed,
            from: self.first_suppressed.unwrap_or(self.start),
            to: self.last_suppressed.unwrap_or(self.start),
        })
    }
}

/// Per-source rate limit of refusal entries (time from the app's clock).
#[derive(Default)]
pub(crate) struct RefusalLimiter {
    by_source: HashMap<String, SourceWindow>,
}

impl RefusalLimiter {
    /// Counts one refusal of `source` at `now`: returns the aggregate of an
    /// ended window to record first, and whether this refusal is recorded.
    fn admit(&mut self, source: &str, now: Timestamp) -> (Option<Suppressed>, bool) {
        let key =
            if self.by_source.contains_key(source) || self.by_source.len() < MAX_REFUSAL_SOURCES {
                source
            } else {
                OVERFLOW_SOURCE
            };
        let w = self
            .by_source
            .entry(key.to_string())
            .or_insert_with(|| SourceWindow::new(now));
        let mut flushed = None;
        if now.duration_since(w.start) >= REFUSAL_WINDOW || now < w.start {
            flushed = w.suppressed(key);
            *w = SourceWindow::new(now);
        }
        if w.recorded < REFUSALS_PER_MINUTE {
            w.recorded += 1;
            (flushed, true)
        } else {
            w.suppressed += 1;
            w.first_suppressed.get_or_insert(now);
            w.last_suppressed = Some(now);
            (flushed, false)
        }
    }

    /// Ends every window older than [`REFUSAL_WINDOW`] at `now` (every window
    /// when `all`), returning the aggregates to record; forgets those sources.
    fn flush(&mut self, now: Timestamp, all: bool) -> Vec<Suppressed> {
        let mut out = Vec::new();
        self.by_source.retain(|k, w| {
            if !all && now.duration_since(w.start) < REFUSAL_WINDOW && now >= w.start {
                return true;
            }
            out.extend(w.suppressed(k));
            false
        });
        out.sort_by(|a, b| a.source.cmp(&b.source));
        out
    }
}

impl App {
    /// Creates the service over a store and a clock.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: AppConfig) -> Self {
        Self {
            store,
            clock,
            config: config.clone(),
            index_cache: Arc::default(),
            refusals: Arc::default(),
            backoff: Arc::new(Mutex::new(backoff::AuthBackoff::new(
                config.auth_backoff.clone(),
            ))),
            feed_sync_task: Arc::default(),
            discovery_scan_task: Arc::default(),
            rollups: Arc::default(),
            keyring: patchbay_core::audit::Keyring::default(),
            key_file: None,
            announcements: Arc::default(),
            job_bell: Arc::default(),
            driver_bell: Arc::default(),
            outbox_bell: Arc::default(),
            draining: Arc::default(),
            agent_ca: None,
            heartbeats: Arc::default(),
            open_findings: Arc::default(),
        }
    }

    /// Issues agents' client certificates with this CA (agent mutual TLS;
    /// [`AppConfig::agent_mtls`] says how they are enforced).
    pub fn with_agent_ca(mut self, ca: agent_ca::AgentCa) -> Self {
        self.agent_ca = Some(Arc::new(ca));
        self
    }

    /// The agent CA, if agent mutual TLS is on.
    pub fn agent_ca(&self) -> Option<&agent_ca::AgentCa> {
        self.agent_ca.as_deref()
    }

    /// Signs audit entries (and evidence) with the server's key.
    pub fn with_signer(self, signer: patchbay_core::audit::Signer) -> Self {
        self.keyring.replace(Some(Arc::new(signer)));
        self
    }

    /// Keeps the signing key in `path` (the data directory's key file), so
    /// that a key rotation can store the new key there.
    pub fn with_key_file(mut self, path: std::path::PathBuf) -> Self {
        self.key_file = Some(path);
        self
    }

    /// The server's signing key, if this process holds it (the current one:
    /// a key rotation replaces it).
    pub fn signer(&self) -> Option<Arc<patchbay_core::audit::Signer>> {
        self.keyring.current()
    }

    /// Records the signing key's public half and seals audit entries written
    /// before the hash chain existed. Run once at start.
    pub async fn init_audit_chain(&self) -> Result<u64, AppError> {
        let mut tx = self
            .change_by_system(system::SystemActor::Bootstrap)
            .await?;
        let signer = self.signer();
        if let Some(s) = &signer {
            tx.register_server_key(&s.public_hex(), self.now()).await?;
        }
        let sealed = tx.seal_legacy_audit(signer.as_deref()).await?;
        let announced = tx.key_announcements().await?;
        self.set_announcements(&announced);
        // Sealing hashes and signs the audit log itself; it has no entry of its own.
        tx.commit_unaudited("key registration and sealing of the audit chain at start")
            .await?;
        Ok(sealed)
    }

    /// The bell the duties runner waits on besides its tick: rung when a job
    /// result is stored (it keeps one permit, so a result stored while the
    /// runner is busy is not missed).
    pub fn driver_bell(&self) -> Arc<tokio::sync::Notify> {
        self.driver_bell.clone()
    }

    /// Rung when events were committed to the outbox (the webhook delivery
    /// loop waits on it).
    pub fn outbox_bell(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_bell.clone()
    }

    /// Ends every long poll now and any started later (they answer with no
    /// jobs): called when the server begins a graceful shutdown, so a rolling
    /// restart of replicas does not wait out each agent's long poll, and the
    /// agents' next check-ins go to the replicas that stay.
    pub fn end_long_polls(&self) {
        self.draining
            .0
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.draining.1.notify_waiters();
    }

    /// Check-in times not yet stored ([`heartbeats`]).
    pub fn heartbeats(&self) -> &heartbeats::Heartbeats {
        &self.heartbeats
    }

    /// An asset's last check-in: the later of the stored time and this
    /// replica's pending one.
    pub(crate) fn last_seen(&self, asset_id: i64, stored: Option<Timestamp>) -> Option<Timestamp> {
        self.heartbeats.seen(asset_id, stored)
    }

    /// Stores the pending check-in times in one transaction (every replica
    /// runs this every `heartbeat_flush`, and once more at shutdown). Returns
    /// how many assets' times were written; on error the times stay pending
    /// for the next flush.
    pub async fn flush_heartbeats(&self) -> Result<usize, AppError> {
        let beats = self.heartbeats.snapshot();
        if beats.is_empty() {
            return Ok(0);
        }
        let mut tx = self
            .change_by_system(system::SystemActor::Heartbeats)
            .await?;
        tx.record_seen(&beats).await?;
        tx.commit_unaudited("check-in heartbeats (inventory unchanged), batched")
            .await?;
        self.heartbeats.stored(&beats);
        Ok(beats.len())
    }

    /// The same service over another handle of the same database (a wrapper,
    /// e.g. `patchbay_store::testing::CountingStore`, which counts the read
    /// transactions of a request in tests).
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = store;
        self
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

    /// Records a refused request in its own transaction. Failing to record is
    /// logged, never turned into a different answer for the client.
    ///
    /// Bounded: the target is cut to [`MAX_AUDIT_TEXT`] bytes, and a source
    /// (`remote`'s IP address) adds at most [`REFUSALS_PER_MINUTE`] entries per
    /// [`REFUSAL_WINDOW`]; the rest are counted and recorded as one
    /// `request.denied.suppressed` entry when the window has ended (at the
    /// source's next refusal or at [`App::flush_refusals`]).
    async fn audit_refusal(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        remote: &str,
        detail: serde_json::Value,
    ) {
        let now = self.now();
        let source = refusal_source(remote);
        let (flushed, record) = self
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(&source, now);
        let mut recs: Vec<AuditRecord> =
            flushed.iter().map(|s| self.suppressed_record(s)).collect();
        if record {
            recs.push(self.record(
                &bounded_text(actor),
                action,
                &bounded_text(target),
                "denied",
                detail,
            ));
        }
        self.append_refusals(&recs, action).await;
    }

    /// Records the aggregates of refusal windows that have ended (every
    /// replica's duties runner runs this each tick, leader or not: the counts
    /// live in each process, so a burst is recorded even if its source goes
    /// quiet). Returns how many aggregate entries were written.
    pub async fn flush_refusals(&self) -> usize {
        self.flush_refusals_inner(false).await
    }

    /// Records the aggregates of every refusal window, ended or not (at
    /// shutdown, so no suppressed count is lost).
    pub async fn flush_all_refusals(&self) -> usize {
        self.flush_refusals_inner(true).await
    }

    async fn flush_refusals_inner(&self, all: bool) -> usize {
        let now = self.now();
        let done = self
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .flush(now, all);
        let recs: Vec<AuditRecord> = done.iter().map(|s| self.suppressed_record(s)).collect();
        self.append_refusals(&recs, "request.denied.suppressed")
            .await;
        recs.len()
    }

    fn suppressed_record(&self, s: &Suppressed) -> AuditRecord {
        self.record(
            REFUSAL_LIMITER_ACTOR,
            "request.denied.suppressed",
            &format!("source:{}", s.source),
            "denied",
            json!({"source": s.source, "count": s.count, "from": fmt_ts(s.from), "to": fmt_ts(s.to),
                   "limit_per_minute": REFUSALS_PER_MINUTE,
                   "reason": format!("{} more refusals from {} suppressed (at most {} recorded per minute)",
                                     s.count, s.source, REFUSALS_PER_MINUTE)}),
        )
    }

    async fn append_refusals(&self, recs: &[AuditRecord], action: &str) {
        if recs.is_empty() {
            return;
        }
        let res = async {
            let mut tx = self
                .change_by_system(system::SystemActor::RefusalLimiter)
                .await?;
            tx.audit_refusals(recs).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = res {
            tracing::error!(error = %e.message, action, "could not record a refused request in the audit log");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_cuts_at_a_char_boundary_and_marks() {
        assert_eq!(bounded_text("short"), "short");
        let long = "é".repeat(MAX_AUDIT_TEXT); // 2 bytes each
        let b = bounded_text(&long);
        assert!(b.len() <= MAX_AUDIT_TEXT + 32, "{}", b.len());
        assert!(b.ends_with(&format!("…[{} more bytes]", MAX_AUDIT_TEXT)));
    }

    #[test]
    fn limiter_records_n_per_window_then_aggregates() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut l = RefusalLimiter::default();
        let mut recorded = 0;
        for _ in 0..50 {
            let (flushed, rec) = l.admit("10.0.0.1", t0);
            assert!(flushed.is_none());
            recorded += u32::from(rec);
        }
        assert_eq!(recorded, REFUSALS_PER_MINUTE);
        // Another source has its own budget.
        assert!(l.admit("10.0.0.2", t0).1);
        // Within the window nothing is flushed; after it, the count is.
        assert!(
            l.flush(t0 + SignedDuration::from_secs(59), false)
                .is_empty()
        );
        let (flushed, rec) = l.admit("10.0.0.1", t0 + REFUSAL_WINDOW);
        let s = flushed.expect("the aggregate of the ended window");
        assert_eq!((s.source.as_str(), s.count), ("10.0.0.1", 30));
        assert!(rec);
        let done = l.flush(t0 + REFUSAL_WINDOW * 3, false);
        assert!(done.is_empty(), "nothing suppressed since");
        assert!(l.by_source.is_empty(), "ended windows are forgotten");
        // At shutdown every window is flushed, ended or not.
        for _ in 0..25 {
            l.admit("10.0.0.3", t0);
        }
        assert!(l.flush(t0, false).is_empty());
        let all = l.flush(t0, true);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].count, 5);
    }

    #[test]
    fn refusal_source_is_the_ip() {
        assert_eq!(refusal_source("127.0.0.1:5555"), "127.0.0.1");
        assert_eq!(refusal_source("[::1]:80"), "::1");
        assert_eq!(refusal_source(""), "(unknown)");
    }
}
