//! The duties runner: the one owner of background work.
//!
//! Background duties (the exception-expiry sweep, the rollout driver, the
//! SLA watch, the weekly exception review, escalation chains, feed sync,
//! expected-impact notices) run here and nowhere else, and so does each replica's
//! own housekeeping (recording its suppressed refusal counts), which runs on
//! every replica whether it leads or not. Several server replicas may
//! share one PostgreSQL database, and a duty must run on exactly one of them,
//! so the runner holds a **leader lease** (a row in `leases`, taken and
//! renewed with one atomic upsert, as River and Oban do): each tick, a replica
//! renews its lease or, if the holder let it lapse, takes it over; only the
//! holder runs duties. A replica that dies stops renewing and another takes
//! over once the lease has expired (at most one TTL plus one tick later). A
//! replica that shuts down gracefully releases its lease at once.
//!
//! Time for the lease and for "is a duty due" comes from the app's clock.
//! [`Runner::tick`] is one step; the server calls it every
//! [`DutiesConfig::tick`] and [`Runner::release`] at shutdown, and tests call
//! it directly, so they drive the runner deterministically.

use crate::{App, AppError};
use jiff::{SignedDuration, Timestamp};
use patchbay_store::LeaseOutcome;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

/// The name of the lease the runner holds.
pub const LEASE: &str = "duties";

/// The audit actor of the runner's own entries.
pub const ACTOR: &str = crate::SystemActor::Duties.name();

/// Settings of the runner.
#[derive(Debug, Clone)]
pub struct DutiesConfig {
    /// How often the runner wakes up (renews its lease, runs due duties).
    pub tick: Duration,
    /// How long a lease lasts without renewal: a dead leader's duties resume
    /// elsewhere at most this (plus one tick) later. Must exceed the tick.
    pub lease_ttl: SignedDuration,
    /// How often the exception-expiry sweep runs.
    pub exception_sweep_every: SignedDuration,
}

impl Default for DutiesConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(5),
            lease_ttl: SignedDuration::from_secs(30),
            exception_sweep_every: crate::exceptions::SWEEP_EVERY,
        }
    }
}

/// The duties, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Duty {
    /// Raise `exception.expired` once for each exception that ran out.
    ExceptionExpiry,
    /// Step every moving deployment (`deployments::drive_rollouts`).
    Rollouts,
    /// Open, resolve and step escalation chains
    /// (`escalations::run_escalations`).
    Escalations,
    /// Raise `sla.at_risk` / `sla.breached` once per finding
    /// (`sla::watch_sla`).
    SlaWatch,
    /// Raise this week's `exception.review` once
    /// (`sla::review_exceptions_weekly`).
    ExceptionReview,
    /// Fetch the configured feed sources that are due, import what changed,
    /// raise `feed.stale` (`feed_sync::sync_feeds`, started in the background
    /// by `start_feed_sync` unless one is still running; each source keeps its
    /// own schedule, so the duty itself runs every tick).
    FeedSync,
    /// Run the configured nmap scans that are due and import them
    /// (`discovery::start_discovery_scans`, in the background like feed sync;
    /// none unless configured).
    DiscoveryScan,
    /// Raise each owner's expected-impact notice before a deployment's
    /// window and its summary after, once each (`impact::run_impact_notices`).
    ImpactNotices,
}

impl Duty {
    /// Every duty.
    pub const ALL: [Duty; 8] = [
        Duty::ExceptionExpiry,
        // Before the SLA watch: a KEV update raises its findings first.
        Duty::FeedSync,
        Duty::Rollouts,
        // After the rollouts: a deployment finished in this tick gets its
        // summaries at once.
        Duty::ImpactNotices,
        // Before the escalations, so a chain starts in the tick its event
        // is raised.
        Duty::SlaWatch,
        Duty::ExceptionReview,
        Duty::Escalations,
        Duty::DiscoveryScan,
    ];

    /// Its name in logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Duty::ExceptionExpiry => "exception-expiry",
            Duty::Rollouts => "rollouts",
            Duty::Escalations => "escalations",
            Duty::SlaWatch => "sla-watch",
            Duty::ExceptionReview => "exception-review",
            Duty::FeedSync => "feed-sync",
            Duty::DiscoveryScan => "discovery-scan",
            Duty::ImpactNotices => "impact-notices",
        }
    }

    fn every(self, c: &DutiesConfig) -> SignedDuration {
        match self {
            Duty::ExceptionExpiry => c.exception_sweep_every,
            // Every tick: results and leases should not wait.
            Duty::Rollouts => SignedDuration::ZERO,
            // Every tick: a step is due to the tick.
            Duty::Escalations => SignedDuration::ZERO,
            Duty::SlaWatch => crate::sla::WATCH_EVERY,
            Duty::ExceptionReview => crate::sla::REVIEW_CHECK_EVERY,
            // Every tick: each source's own `every` decides.
            Duty::FeedSync => SignedDuration::ZERO,
            // Every tick: each scan's own `every` decides.
            Duty::DiscoveryScan => SignedDuration::ZERO,
            Duty::ImpactNotices => crate::impact::CHECK_EVERY,
        }
    }

    async fn run(self, app: &App) -> Result<usize, AppError> {
        match self {
            Duty::ExceptionExpiry => app.sweep_exceptions().await.map(|v| v.len()),
            Duty::Rollouts => app.drive_rollouts().await,
            Duty::Escalations => app.run_escalations().await,
            Duty::SlaWatch => app.watch_sla().await,
            Duty::ExceptionReview => app.review_exceptions_weekly().await,
            // In the background: a download must not hold up the tick.
            Duty::FeedSync => Ok(app.start_feed_sync().await),
            Duty::DiscoveryScan => Ok(app.start_discovery_scans().await),
            Duty::ImpactNotices => app.run_impact_notices().await,
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Whether this replica holds the lease after the tick.
    pub leader: bool,
    /// The duties it ran, with what each did (items handled) or its error.
    pub ran: Vec<(Duty, Result<usize, String>)>,
}

/// The runner of one replica.
pub struct Runner {
    app: App,
    holder: String,
    leader: bool,
    /// `leader`, shared with work that runs beside the runner (the webhook
    /// delivery loop delivers only while this replica leads).
    leading: std::sync::Arc<std::sync::atomic::AtomicBool>,
    last_run: HashMap<Duty, Timestamp>,
}

impl Runner {
    /// A runner for `app` that takes the lease as `holder` (unique per
    /// replica process: see [`replica_id`]).
    pub fn new(app: App, holder: impl Into<String>) -> Self {
        Self {
            app,
            holder: holder.into(),
            leader: false,
            leading: Default::default(),
            last_run: HashMap::new(),
        }
    }

    /// Rung when a job result is stored: the server ticks at once then too.
    pub fn bell(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.app.driver_bell()
    }

    /// Whether this replica leads, as of its last tick (shared: background
    /// work beside the runner checks it).
    pub fn leading(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.leading.clone()
    }

    /// How often the server should call [`Runner::tick`].
    pub fn tick_every(&self) -> Duration {
        self.app.config().duties.tick
    }

    /// This replica's lease holder name.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// One step: take or renew the lease; if held, run the duties that are
    /// due. A lease error counts as not leading (duties pause, never double).
    pub async fn tick(&mut self) -> TickReport {
        let config = self.app.config().duties.clone();
        // Replica-local work first, leader or not: this process's suppressed
        // refusal counts.
        self.app.flush_refusals().await;
        let now = self.app.now();
        let outcome = self.take_lease(now, config.lease_ttl).await;
        let was_leader = self.leader;
        self.leader = matches!(outcome, Ok(LeaseOutcome::Acquired | LeaseOutcome::Renewed));
        self.leading
            .store(self.leader, std::sync::atomic::Ordering::SeqCst);
        match &outcome {
            Ok(LeaseOutcome::Acquired) => {
                tracing::info!(holder = %self.holder, "duties: this replica took the leader lease");
            }
            Ok(LeaseOutcome::HeldByOther) if was_leader => {
                tracing::warn!(holder = %self.holder, "duties: lost the leader lease to another replica");
            }
            Err(e) => {
                tracing::warn!(error = %e.message, "duties: could not take or renew the lease; duties paused");
            }
            _ => {}
        }
        if !self.leader {
            // A new term starts from scratch: run everything when leading again.
            self.last_run.clear();
            return TickReport {
                leader: false,
                ran: Vec::new(),
            };
        }
        let mut ran = Vec::new();
        for duty in Duty::ALL {
            let due = self
                .last_run
                .get(&duty)
                .is_none_or(|t| now >= *t + duty.every(&config));
            if !due {
                continue;
            }
            self.last_run.insert(duty, now);
            let r = duty.run(&self.app).await.map_err(|e| e.message);
            match &r {
                Ok(n) => {
                    tracing::debug!(duty = duty.name(), items = n, holder = %self.holder, "duties: ran")
                }
                Err(e) => tracing::warn!(duty = duty.name(), error = %e, "duties: failed"),
            }
            ran.push((duty, r));
        }
        TickReport { leader: true, ran }
    }

    /// Takes or renews the lease; a new term is audited in the same
    /// transaction.
    async fn take_lease(
        &self,
        now: Timestamp,
        ttl: SignedDuration,
    ) -> Result<LeaseOutcome, AppError> {
        let mut tx = self
            .app
            .change_by_system(crate::system::SystemActor::Duties)
            .await?;
        let outcome = tx.try_lease(LEASE, &self.holder, now, now + ttl).await?;
        if outcome == LeaseOutcome::Acquired {
            tx.audit(
                "duties.leader",
                &format!("lease:{LEASE}"),
                json!({"holder": self.holder, "ttl_secs": ttl.as_secs()}),
            )
            .await?;
            tx.commit().await?;
        } else {
            tx.commit_unaudited("lease renewal (or none: held by another)")
                .await?;
        }
        Ok(outcome)
    }

    /// Gives the lease up if this replica holds it (at graceful shutdown),
    /// so another replica can take over at once rather than after the TTL.
    pub async fn release(&mut self) {
        if !self.leader {
            return;
        }
        self.leader = false;
        self.leading
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let released = async {
            let mut tx = self
                .app
                .change_by_system(crate::system::SystemActor::Duties)
                .await?;
            if tx.release_lease(LEASE, &self.holder).await? {
                tx.audit(
                    "duties.leader_released",
                    &format!("lease:{LEASE}"),
                    json!({"holder": self.holder}),
                )
                .await?;
                tx.commit().await?;
            }
            Ok::<(), AppError>(())
        }
        .await;
        match released {
            Ok(()) => tracing::info!(holder = %self.holder, "duties: released the leader lease"),
            Err(e) => {
                tracing::warn!(error = %e.message, "duties: could not release the lease (it expires on its own)")
            }
        }
    }
}

/// A lease holder name unique to this process: host, process id and a random
/// suffix (a restarted replica is a new holder).
pub fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let r = crate::random32();
    format!("{host}:{}:{}", std::process::id(), hex::encode(&r[..3]))
}
