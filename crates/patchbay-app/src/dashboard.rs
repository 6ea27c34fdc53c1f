//! The data behind the dashboard's pages (issue 17): the same service-layer
//! reads the API makes, shaped into `patchbay_render::dashboard` view models.
//!
//! The overview's coverage buckets are the dashboard's promise: a host
//! counts as **patched** only when its inventory is fresh (checked in within
//! the stale threshold), it has an inventory at all, advisories have been
//! imported, and it has no open, non-excepted finding. Hosts with no
//! inventory are **unknown**; managed hosts that stopped checking in are
//! **stale** whatever their last findings said. Every number names the age
//! of the data behind it.

use crate::prioritise::{MAX_WORKLIST_LIMIT, WorkFilter};
use crate::rollup::{Got, PAGE_WAIT, Rolled, Rollup};
use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use jiff::Timestamp;
use patchbay_core::report::Report;
use patchbay_proto::api::{PatchOut, WorkItem};
use patchbay_render::dashboard::{Bucket, DeploymentLine, FeedLine, Overview, age};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// A feed import older than this is shown as stale.
pub const FEED_STALE_SECS: i64 = 72 * 3600;

fn ts(s: &str) -> Option<i64> {
    s.parse::<Timestamp>().ok().map(|t| t.as_second())
}

/// "data from 2 min ago to 3 h ago" over check-in times (seconds).
fn age_range(now: i64, times: &[i64]) -> String {
    match (times.iter().max(), times.iter().min()) {
        (Some(&newest), Some(&oldest)) if newest == oldest => {
            format!("check-in {}", age(now, newest))
        }
        (Some(&newest), Some(&oldest)) => {
            format!("check-ins {} to {}", age(now, newest), age(now, oldest))
        }
        _ => "no data".to_string(),
    }
}

/// The dashboard's rolled-up values (see [`crate::rollup`]): the overview,
/// the worklist page's lines, the catalog, and each report.
#[derive(Default)]
pub struct Rollups {
    overview: Arc<Rollup<Overview>>,
    worklist: Arc<Rollup<Vec<WorkItem>>>,
    patches: Arc<Rollup<Vec<PatchOut>>>,
    reports: Mutex<HashMap<String, Arc<Rollup<Report>>>>,
    drift: Mutex<HashMap<String, Arc<Rollup<patchbay_proto::api::GroupDriftOut>>>>,
    exceptions: Arc<Rollup<ExceptionFigures>>,
    patch_tiers: Arc<Rollup<BTreeMap<String, String>>>,
}

impl Rollups {
    /// An exception was added or revoked here: the exceptions page's counts
    /// and review lists are computed again for the next page.
    pub fn exceptions_changed(&self) {
        self.exceptions.clear();
    }
}

/// What the exceptions page rolls up: the findings each exception covers,
/// counted, and the review lists.
#[derive(Debug, Clone)]
pub struct ExceptionFigures {
    /// Findings covered, by exception id.
    pub covers: HashMap<String, usize>,
    /// Expiring, expired, ownerless.
    pub review: patchbay_proto::api::ExceptionReviewOut,
}

/// The exceptions page: the register in force read now, with the counts and
/// review lists of the last computation (`None` while being computed).
#[derive(Debug, Clone)]
pub struct ExceptionsPage {
    /// In force, each with the findings it covers when counted.
    pub in_force: Vec<(patchbay_proto::api::ExceptionOut, Option<usize>)>,
    /// The review lists, when computed.
    pub review: Option<patchbay_proto::api::ExceptionReviewOut>,
    /// What the page says about the figures' age (or that they are being
    /// computed); empty when computed for this page.
    pub note: String,
}

/// Lines of the worklist page.
pub const WORKLIST_PAGE_LINES: usize = 500;

/// What a page says about a value served from an earlier computation
/// (empty when it was computed for this request).
pub fn rolled_note(stored: Option<(Timestamp, std::time::Duration)>, now: Timestamp) -> String {
    match stored {
        None => String::new(),
        Some((at, took)) => format!(
            "Computed {} (it takes {:.1} s on this fleet, so pages show the last computation and it is redone in the background every {} s).",
            age(now.as_second(), at.as_second()),
            took.as_secs_f64(),
            crate::rollup::REFRESH_AFTER.as_secs()
        ),
    }
}

/// What a page says while its figures are being computed.
pub fn pending_note(
    since: Timestamp,
    last_took: Option<std::time::Duration>,
    now: Timestamp,
) -> String {
    let mut s = format!(
        "The figures of this page are being computed for the whole fleet (started {}).",
        age(now.as_second(), since.as_second())
    );
    if let Some(t) = last_took {
        s.push_str(&format!(
            " The last computation took {:.1} s.",
            t.as_secs_f64()
        ));
    }
    s
}

impl App {
    /// A rolled-up value: `compute` runs as the dashboard itself (the
    /// caller's permission was checked before); waits up to `wait` for a
    /// value being computed (`None`: as long as it takes).
    async fn rolled<T, F, Fut>(
        &self,
        slot: Arc<Rollup<T>>,
        wait: Option<std::time::Duration>,
        compute: F,
    ) -> Result<Got<T>, AppError>
    where
        T: Send + Sync + 'static,
        F: Fn(App) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<T, AppError>> + Send + 'static,
    {
        let clock = self.clone();
        let app = self.clone();
        slot.get(move || clock.now(), move || compute(app.clone()), wait)
            .await
    }

    /// The overview page's data: computed live on a fleet where that is
    /// cheap, else the last computation (its age in `computed`), with the
    /// newest events read now.
    pub async fn dashboard_overview(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Got<Overview>, AppError> {
        self.require(caller, patchbay_core::auth::Action::ReadInventory, ctx)
            .await?;
        let slot = self.rollups.overview.clone();
        let r = match self
            .rolled(slot, Some(PAGE_WAIT), |app| async move {
                app.overview_now().await
            })
            .await?
        {
            Got::Ready(r) => r,
            Got::Pending { since, last_took } => return Ok(Got::Pending { since, last_took }),
        };
        let mut o = (*r.value).clone();
        o.computed = rolled_note(r.stored, self.now());
        // The newest events (outbox ids are sequential), newest first.
        let cursor = self.live_cursor().await?;
        let mut events: Vec<(String, String, String)> = self
            .live_events(caller, (cursor - OVERVIEW_EVENTS).max(0), ctx)
            .await?
            .into_iter()
            .map(|e| {
                (
                    crate::fmt_ts(e.event.at),
                    e.event.kind.as_str().to_string(),
                    e.event.summary,
                )
            })
            .collect();
        events.reverse();
        o.events = events;
        o.cursor = cursor;
        Ok(Got::Ready(Rolled {
            value: Arc::new(o),
            stored: r.stored,
        }))
    }

    /// The worklist page's lines (the first [`WORKLIST_PAGE_LINES`]).
    pub async fn dashboard_worklist(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Got<Vec<WorkItem>>, AppError> {
        self.require(caller, patchbay_core::auth::Action::ReadInventory, ctx)
            .await?;
        let slot = self.rollups.worklist.clone();
        self.rolled(slot, Some(PAGE_WAIT), |app| async move {
            app.worklist(
                &Caller::local("dashboard"),
                &WorkFilter {
                    limit: Some(WORKLIST_PAGE_LINES),
                    ..Default::default()
                },
                &RequestCtx::default(),
            )
            .await
        })
        .await
    }

    /// The catalog page's patches.
    pub async fn dashboard_patches(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Got<Vec<PatchOut>>, AppError> {
        self.require(caller, patchbay_core::auth::Action::ReadInventory, ctx)
            .await?;
        let slot = self.rollups.patches.clone();
        self.rolled(slot, Some(PAGE_WAIT), |app| async move {
            app.patches(&Caller::local("dashboard"), &RequestCtx::default())
                .await
        })
        .await
    }

    /// A policy group's drift from its baseline, every member's line, for
    /// the asset page (which shows its asset's line).
    pub async fn dashboard_group_drift(
        &self,
        caller: &Caller,
        group: &str,
        ctx: &RequestCtx,
    ) -> Result<Got<patchbay_proto::api::GroupDriftOut>, AppError> {
        self.require(caller, patchbay_core::auth::Action::ReadInventory, ctx)
            .await?;
        let slot = self
            .rollups
            .drift
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(group.to_string())
            .or_default()
            .clone();
        let group = group.to_string();
        self.rolled(slot, Some(PAGE_WAIT), move |app| {
            let group = group.clone();
            async move {
                app.drift(
                    &Caller::local("dashboard"),
                    Some(&group),
                    None,
                    &RequestCtx::default(),
                )
                .await?
                .groups
                .into_iter()
                .next()
                .ok_or_else(|| AppError::not_found(format!("no policy group named {group:?}")))
            }
        })
        .await
    }

    /// The exceptions page: the register read now; counts and review
    /// lists rolled up (cleared when an exception is added or revoked here).
    pub async fn dashboard_exceptions(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<ExceptionsPage, AppError> {
        self.require(caller, patchbay_core::auth::Action::ReadInventory, ctx)
            .await?;
        let live = self.exceptions_in_force_uncounted().await?;
        let slot = self.rollups.exceptions.clone();
        let got = self
            .rolled(slot, Some(PAGE_WAIT), |app| async move {
                let (all, review) = app.exception_register().await?;
                Ok(ExceptionFigures {
                    covers: all.into_iter().map(|e| (e.id, e.covers.len())).collect(),
                    review,
                })
            })
            .await?;
        Ok(match got {
            Got::Ready(r) => ExceptionsPage {
                in_force: live
                    .into_iter()
                    .map(|e| {
                        let n = r.value.covers.get(&e.id).copied();
                        (e, n)
                    })
                    .collect(),
                review: Some(r.value.review.clone()),
                note: rolled_note(r.stored, self.now()),
            },
            Got::Pending { since, last_took } => ExceptionsPage {
                in_force: live.into_iter().map(|e| (e, None)).collect(),
                review: None,
                note: pending_note(since, last_took, self.now()),
            },
        })
    }

    /// The change records page: the list read now; each change's highest
    /// tier from the rolled patch tiers (with their age in the note).
    pub async fn dashboard_changes(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<(Vec<patchbay_proto::api::ChangeSummaryOut>, String), AppError> {
        self.require(caller, patchbay_core::auth::Action::ReadInventory, ctx)
            .await?;
        let (changes, deps) = self.change_rows().await?;
        if changes.is_empty() {
            return Ok((vec![], String::new()));
        }
        let slot = self.rollups.patch_tiers.clone();
        let got = self
            .rolled(slot, Some(PAGE_WAIT), |app| async move {
                app.patch_tiers().await
            })
            .await?;
        Ok(match got {
            Got::Ready(r) => (
                crate::changes::change_summaries(&changes, &deps, &r.value),
                rolled_note(r.stored, self.now()),
            ),
            Got::Pending { since, last_took } => (
                crate::changes::change_summaries(&changes, &deps, &BTreeMap::new())
                    .into_iter()
                    .map(|mut c| {
                        c.highest_tier = "being computed".into();
                        c
                    })
                    .collect(),
                format!(
                    "Highest tiers: {}",
                    pending_note(since, last_took, self.now())
                ),
            ),
        })
    }

    /// A report as of now, for its page (`wait`: [`PAGE_WAIT`]) and
    /// downloads (`None`: they wait for it).
    pub async fn dashboard_report(
        &self,
        caller: &Caller,
        kind: &str,
        wait: Option<std::time::Duration>,
        ctx: &RequestCtx,
    ) -> Result<Got<Report>, AppError> {
        self.require(caller, patchbay_core::auth::Action::ReadInventory, ctx)
            .await?;
        if !patchbay_core::report::KINDS.contains(&kind) {
            // The service's own message for an unknown kind.
            self.report(caller, kind, None, ctx).await?;
        }
        let slot = self
            .rollups
            .reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind.to_string())
            .or_default()
            .clone();
        let kind = kind.to_string();
        self.rolled(slot, wait, move |app| {
            let kind = kind.clone();
            async move {
                app.report(
                    &Caller::local("dashboard"),
                    &kind,
                    None,
                    &RequestCtx::default(),
                )
                .await
            }
        })
        .await
    }

    /// The overview's data computed now (as the dashboard itself).
    async fn overview_now(&self) -> Result<Overview, AppError> {
        let caller = &Caller::local("dashboard");
        let ctx = &RequestCtx::default();
        let now = self.now();
        let now_s = now.as_second();
        let assets = self.list_assets(caller, ctx).await?;
        let feeds = self.list_feeds(caller, ctx).await?;
        // One read of the history for the compliance numbers and the charts.
        let history = self.history(caller, ctx).await?;
        let as_of_now = now.round(jiff::Unit::Second).unwrap_or(now);
        let compliance = patchbay_core::report::compliance(&history, as_of_now);
        // SLA adherence over the last 8 weeks (resolved within SLA, %), oldest first.
        let sla_trend: Vec<(String, f64)> = (0..8)
            .rev()
            .map(|w| {
                let at = as_of_now - jiff::SignedDuration::from_hours(24 * 7 * w);
                let a = patchbay_core::report::sla_adherence(&history, at);
                let label = at.to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
                (label, a.all.resolved_in_sla_pct)
            })
            .collect();
        let ttp = patchbay_core::report::time_to_patch(&history, as_of_now);
        let ttp_median: Vec<(String, f64)> = ttp
            .by_tier
            .iter()
            .map(|(t, s)| {
                (
                    format!("{t} ({} closed)", s.count),
                    (s.median_hours * 10.0).round() / 10.0,
                )
            })
            .collect();
        // Only discovery's shadow count: the history read above serves the rest.
        let shadows = Some(self.discovery_counts().await?.0);
        let open: HashMap<&str, u64> = compliance
            .by_asset
            .iter()
            // Excepted findings are open too: an excepted host is not patched.
            .map(|l| (l.name.as_str(), l.findings.open()))
            .collect();
        let have_feeds = feeds.iter().any(|f| f.kind == "osv");
        let mut groups: BTreeMap<&'static str, Vec<i64>> = BTreeMap::new();
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        for a in &assets {
            let seen = a.last_seen.as_deref().and_then(ts);
            let key = if a.liveness == "stale" {
                "stale"
            } else if a.package_count == 0 || !have_feeds {
                "unknown"
            } else if open.get(a.name.as_str()).copied().unwrap_or(0) > 0 {
                "exposed"
            } else {
                "patched"
            };
            *counts.entry(key).or_default() += 1;
            if let Some(s) = seen {
                groups.entry(key).or_default().push(s);
            }
        }
        let bucket = |key: &'static str, label: &'static str, class: &'static str| {
            let times = groups.get(key).map(Vec::as_slice).unwrap_or(&[]);
            let n = counts.get(key).copied().unwrap_or(0);
            let age = match key {
                "unknown" if !have_feeds => "no advisories imported, or no inventory".to_string(),
                "unknown" => "no inventory reported".to_string(),
                _ if n == 0 => "—".to_string(),
                _ => age_range(now_s, times),
            };
            Bucket {
                key,
                label,
                count: n,
                age,
                class,
            }
        };
        let buckets = vec![
            bucket("patched", "Patched (fresh data, nothing open)", "good"),
            bucket("exposed", "Exposed (open findings)", "bad"),
            bucket("stale", "Stale (no check-in in 24 h)", "warn"),
            bucket("unknown", "Unknown (no data)", "warn"),
        ];
        let all_seen: Vec<i64> = assets
            .iter()
            .filter_map(|a| a.last_seen.as_deref().and_then(ts))
            .collect();
        let inventory_age = format!(
            "Inventory behind these numbers: {}.",
            age_range(now_s, &all_seen)
        );

        // Exposure by tier: the worklist (open, not excepted, not excluded).
        let work = self
            .worklist(
                caller,
                &WorkFilter {
                    limit: Some(MAX_WORKLIST_LIMIT),
                    ..WorkFilter::default()
                },
                ctx,
            )
            .await?;
        let mut tiers: BTreeMap<String, u64> = ["P0", "P1", "P2", "P3", "P4"]
            .into_iter()
            .map(|t| (t.to_string(), 0))
            .collect();
        for w in &work {
            *tiers.entry(w.tier.clone()).or_default() += 1;
        }
        let truncated = work.len() >= MAX_WORKLIST_LIMIT;
        let mut newest_feed: BTreeMap<String, &patchbay_proto::api::FeedOut> = BTreeMap::new();
        for f in &feeds {
            let newer = newest_feed
                .get(&f.kind)
                .is_none_or(|g| ts(&g.imported_at) < ts(&f.imported_at));
            if newer {
                newest_feed.insert(f.kind.clone(), f);
            }
        }
        let feed_ages: Vec<String> = newest_feed
            .values()
            .map(|f| {
                format!(
                    "{} {}",
                    f.kind,
                    ts(&f.imported_at)
                        .map(|t| age(now_s, t))
                        .unwrap_or_default()
                )
            })
            .collect();
        let exposure_age = if feed_ages.is_empty() {
            "No advisories imported: exposure unknown.".to_string()
        } else {
            format!(
                "Assessed now from advisories imported: {}; inventory {}.{}",
                feed_ages.join(", "),
                age_range(now_s, &all_seen),
                if truncated {
                    format!(" Counts cut at the first {MAX_WORKLIST_LIMIT} findings.")
                } else {
                    String::new()
                }
            )
        };
        let overdue = compliance.total.findings.overdue;
        let overdue_age = format!("as of {}, from the same data", fmt_ts(now));

        let mut windows: Vec<(String, String, String)> = self
            .windows(caller, ctx)
            .await?
            .into_iter()
            .filter_map(|w| {
                w.next
                    .first()
                    .map(|o| (w.spec.name.clone(), o.start.clone(), o.end.clone()))
            })
            .collect();
        windows.sort_by_key(|w| ts(&w.1));
        windows.truncate(8);

        let deployments = self
            .deployments(caller, ctx)
            .await?
            .into_iter()
            .filter(|d| !matches!(d.status.as_str(), "completed" | "aborted" | "rolled_back"))
            .take(20)
            .map(|d| DeploymentLine {
                created: format!(
                    "{} ({})",
                    d.created_at,
                    ts(&d.created_at).map(|t| age(now_s, t)).unwrap_or_default()
                ),
                hosts: d.assets.len(),
                id: d.id,
                kind: d.kind,
                status: d.status,
            })
            .collect();
        let feeds = newest_feed
            .values()
            .map(|f| {
                let t = ts(&f.imported_at);
                FeedLine {
                    kind: f.kind.clone(),
                    version: f.version.clone(),
                    records: f.records,
                    age: format!(
                        "{} ({})",
                        f.imported_at,
                        t.map(|t| age(now_s, t)).unwrap_or_default()
                    ),
                    stale: t.is_none_or(|t| now_s - t > FEED_STALE_SECS),
                }
            })
            .collect();
        Ok(Overview {
            events: vec![],
            cursor: 0,
            computed: String::new(),
            fleet: assets.len() as u64,
            managed: assets.iter().filter(|a| a.liveness != "unmanaged").count() as u64,
            unmanaged: assets.iter().filter(|a| a.liveness == "unmanaged").count() as u64,
            shadows,
            buckets,
            inventory_age,
            tiers: tiers.into_iter().map(|(t, n)| (t, n as f64)).collect(),
            exposure_age,
            overdue,
            overdue_age,
            windows,
            deployments,
            feeds,
            sla_trend,
            ttp_median,
            compliance: format!(
                "{} of {} assets fully patched ({} %: fresh data, no open finding); {} % within SLA \
                 (no overdue finding outside an exception — not the same as patched); {} overdue, \
                 {} covered only by exceptions, {} unknown or stale.",
                compliance.total.status.fully_patched,
                compliance.total.assets,
                compliance.total.fully_patched_pct,
                compliance.total.compliant_pct,
                compliance.total.status.overdue,
                compliance.total.status.excepted,
                compliance.total.status.unknown,
            ),
        })
    }
}

impl App {
    /// The newest `limit` audit entries, newest first (the audit page).
    pub async fn recent_audit(
        &self,
        caller: &Caller,
        limit: i64,
        ctx: &RequestCtx,
    ) -> Result<Vec<patchbay_proto::api::AuditEventOut>, AppError> {
        self.require(caller, patchbay_core::auth::Action::ReadAudit, ctx)
            .await?;
        let (head, _) = {
            let mut tx = self.store.read().await?;
            tx.audit_head().await?
        };
        let mut out = self
            .list_audit(caller, (head - limit).max(0), limit, ctx)
            .await?;
        out.reverse();
        Ok(out)
    }
}

/// One event of the dashboard's live stream: the outbox row's id (the
/// stream's cursor) and the typed event.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    /// Outbox id: the SSE `id:` a reconnecting browser resumes after.
    pub id: i64,
    /// The event.
    pub event: patchbay_core::event::Event,
}

/// Events the overview lists when it is made.
const OVERVIEW_EVENTS: i64 = 10;

/// Most events one read of the live stream returns.
pub const LIVE_BATCH: i64 = 200;

impl App {
    /// Events after outbox id `after` (oldest first, at most [`LIVE_BATCH`]),
    /// for the dashboard's live stream; anyone who may read the inventory.
    pub async fn live_events(
        &self,
        caller: &Caller,
        after: i64,
        ctx: &RequestCtx,
    ) -> Result<Vec<LiveEvent>, AppError> {
        self.require(caller, patchbay_core::auth::Action::ReadInventory, ctx)
            .await?;
        let mut tx = self.store.read().await?;
        Ok(tx
            .events_after(after.max(0), LIVE_BATCH)
            .await?
            .into_iter()
            .map(|r| LiveEvent {
                id: r.id,
                event: patchbay_core::event::Event::from_outbox(
                    r.id,
                    r.event.at,
                    &r.event.kind,
                    &r.event.actor,
                    &r.event.subject,
                    &r.event.payload,
                ),
            })
            .collect())
    }

    /// The newest outbox id (where a page's live stream starts).
    pub async fn live_cursor(&self) -> Result<i64, AppError> {
        let mut tx = self.store.read().await?;
        Ok(tx.last_event_id().await?)
    }
}

fn snake<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl App {
    /// A deployment's rollout board, as `caller` may see it.
    pub async fn dashboard_board(
        &self,
        caller: &Caller,
        id: &str,
        ctx: &RequestCtx,
    ) -> Result<patchbay_render::dashboard::Board, AppError> {
        use patchbay_core::rollout::{DeploymentState, JobState, RingState};
        use patchbay_render::dashboard::{Board, HostBoard, RingBoard};
        let cursor = self.live_cursor().await?;
        let d = self.deploy_show(caller, id, ctx).await?;
        let now_s = self.now().as_second();
        let dep = &d.deployment;
        let mut rings = Vec::new();
        let mut awaiting = Vec::new();
        if let Some(r) = &d.rollout {
            for ring in &r.rings {
                let count =
                    |f: &dyn Fn(JobState) -> bool| ring.jobs.iter().filter(|j| f(j.state)).count();
                let failures = ring.failures();
                let budget = ring.spec.error_budget;
                if ring.state == RingState::AwaitingApproval {
                    awaiting.push(ring.spec.name.clone());
                }
                rings.push(RingBoard {
                    name: ring.spec.name.clone(),
                    state: snake(&ring.state),
                    pending: count(&|s| s == JobState::Pending),
                    in_flight: count(&|s| s.in_flight()),
                    succeeded: count(&|s| s == JobState::Succeeded),
                    failed: count(&|s| matches!(s, JobState::Failed | JobState::RollbackFailed)),
                    unreachable: ring
                        .jobs
                        .iter()
                        .filter(|j| !j.online && !j.state.is_terminal())
                        .count(),
                    rolled_back: count(&|s| s == JobState::RolledBack),
                    budget: format!("{} of {budget} left", budget.saturating_sub(failures)),
                    gate: ring
                        .gates
                        .last()
                        .map(|g| format!("{} {}: {}", g.gate, snake(&g.verdict), g.reason))
                        .unwrap_or_else(|| "no decision yet".into()),
                    approved_by: ring.approved_by.clone().unwrap_or_default(),
                    hosts: ring
                        .jobs
                        .iter()
                        .map(|j| HostBoard {
                            host: j.spec.host.clone(),
                            state: snake(&j.state),
                            online: j.online,
                            note: j
                                .error
                                .clone()
                                .or_else(|| j.note.clone())
                                .unwrap_or_default(),
                        })
                        .collect(),
                });
            }
        }
        let state = d.rollout.as_ref().map(|r| r.state);
        // Only what this caller may do is offered (an auditor sees no button;
        // the service refuses a direct post anyway).
        if !caller.permits(patchbay_core::auth::Action::Approve) {
            awaiting.clear();
        }
        let may_act = caller.permits(patchbay_core::auth::Action::WriteAssets);
        let actions: Vec<&'static str> = match state {
            _ if !may_act => vec![],
            None | Some(DeploymentState::Draft) => vec!["start"],
            Some(DeploymentState::Running) => vec!["pause", "abort", "rollback"],
            Some(DeploymentState::Paused) => vec!["resume", "abort", "rollback"],
            Some(DeploymentState::Halted) => vec!["rollback", "abort"],
            Some(DeploymentState::Completed) => vec!["rollback"],
            Some(DeploymentState::Aborted) => vec![],
        };
        let created = format!(
            "{} by {} ({})",
            dep.created_at,
            dep.created_by,
            ts(&dep.created_at)
                .map(|t| age(now_s, t))
                .unwrap_or_default()
        );
        Ok(Board {
            id: dep.id.clone(),
            kind: dep.kind.clone(),
            status: dep.status.clone(),
            reason: dep.reason.clone(),
            patches: dep.patches.join(", "),
            created,
            rings,
            actions,
            awaiting,
            cursor,
            impact: Vec::new(),
        })
    }
}

impl App {
    /// The audit chain verified from its first entry against this server's
    /// signing key (following its announced rotations): a line for the audit
    /// page. Costs a read of the whole log, so the page runs it on request.
    pub async fn audit_verify_line(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<String, AppError> {
        self.require(caller, patchbay_core::auth::Action::ReadAudit, ctx)
            .await?;
        let Some(signer) = self.signer() else {
            return Ok("not verified: this server holds no signing key".into());
        };
        let key =
            patchbay_core::audit::public_key(&signer.public_hex()).map_err(AppError::invalid)?;
        Ok(
            match crate::evidence::verify_audit(self.store.as_ref(), vec![key], 1024, 0, |_| {})
                .await?
            {
                Ok(s) => format!(
                    "intact: {} entries up to #{}, {} signatures checked against this server's key {}",
                    s.entries,
                    s.last_seq,
                    s.signatures_checked,
                    &signer.public_hex()[..16]
                ),
                Err(b) => format!("BROKEN: {b}"),
            },
        )
    }
}
