//! Maintenance windows, blackouts, the schedule planner and the calendar feed.
//!
//! Windows and blackouts are stored definitions; occurrences are computed on
//! read by `patchbay_core::window`. The planner (`patchbay_core::plan`) gets the
//! assets in scope with their policy rings, the windows and blackouts that
//! apply to each, and every open, non-excluded finding with its SLA due date.
//!
//! Rings come from the policy; a policy without rings plans every asset in
//! one implicit ring, `all`, without soak.
//!
//! Targeting: a window or blackout applies to the assets it names and to the
//! members of the policy groups it names; one that names neither applies to
//! every asset. An out-of-band deployment (`DEP-OOB-…`) may enter a blackout
//! only once an approver (never the deployment's creator) has recorded an
//! approval for that pair.

use crate::ranking::{self, Ranked};
use crate::{App, AppError, Caller, RequestCtx, fmt_ts};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use patchbay_core::auth::Action;
use patchbay_core::names::AssetName;
use patchbay_core::plan::{self, Blackout, PlanAsset, PlanFinding, PlanOptions, RingSpec};
use patchbay_core::plan::{RiskReason, Unplanned};
use patchbay_core::policy::Policy;
use patchbay_core::when::{self, format_duration};
use patchbay_core::window::{Recurrence, Window};
use patchbay_proto::api::{
    AssetPlanOut, AtRiskOut, BlackoutApprovalIn, BlackoutApprovalOut, BlackoutOut, BlackoutSpec,
    OccurrenceOut, PlanOut, PlanRequest, RingPlanOut, WindowOut, WindowSpec,
};
use patchbay_store::{AssetRow, BlackoutApprovalRow, BlackoutRow, WindowRow};
use serde_json::json;
use std::collections::{HashMap, HashSet};

/// The one ring of a policy that defines none: every asset, no soak.
pub const IMPLICIT_RING: &str = "all";

/// Default planning horizon.
pub const DEFAULT_PLAN_DAYS: u32 = 90;
/// Longest planning horizon.
pub const MAX_PLAN_DAYS: u32 = 366;
/// Default expected duration of one asset's job.
pub const DEFAULT_JOB_ESTIMATE: SignedDuration = SignedDuration::from_mins(30);
/// Longest calendar range.
pub const MAX_CALENDAR_DAYS: i64 = 2 * 366;
/// Longest maintenance-window occurrence: a week (a longer "window" is no
/// window; leave such assets unconstrained instead).
pub const MAX_WINDOW_DURATION: SignedDuration = SignedDuration::from_hours(7 * 24);
/// Longest blackout: a year (longer freezes hide assets from patching for good).
pub const MAX_BLACKOUT: SignedDuration = SignedDuration::from_hours(366 * 24);
/// Longest expected job of one asset in a plan preview.
pub const MAX_JOB_ESTIMATE: SignedDuration = SignedDuration::from_hours(24);

/// Builds the core window of a definition; every error names its field.
pub fn window_from_spec(spec: &WindowSpec) -> Result<Window, AppError> {
    let rrule: Recurrence = spec
        .rrule
        .parse()
        .map_err(|e| AppError::invalid(format!("rrule: {e}")))?;
    let dtstart = when::local("dtstart", &spec.dtstart)?;
    let tz = when::zone("tz", &spec.tz)?;
    let duration = when::span("duration", &spec.duration)?;
    let w = Window::new(rrule, dtstart, tz, duration)
        .map_err(|e| AppError::invalid(e.to_string()))?
        .with_offset_days(spec.offset_days)
        .map_err(|e| AppError::invalid(e.to_string()))?;
    match &spec.cutoff {
        Some(c) => w
            .with_cutoff(when::span("cutoff", c)?)
            .map_err(|e| AppError::invalid(e.to_string())),
        None => Ok(w),
    }
}

pub(crate) fn window_from_row(r: &WindowRow) -> Result<Window, AppError> {
    window_from_spec(&spec_of(r)).map_err(|e| {
        AppError::new(
            patchbay_proto::error::ErrorCode::Internal,
            format!("stored window {} no longer parses: {}", r.name, e.message),
        )
    })
}

fn spec_of(r: &WindowRow) -> WindowSpec {
    WindowSpec {
        name: r.name.clone(),
        rrule: r.rrule.clone(),
        dtstart: r.dtstart.clone(),
        tz: r.tz.clone(),
        duration: format_secs(r.duration_secs),
        offset_days: i32::try_from(r.offset_days).unwrap_or(0),
        cutoff: (r.cutoff_secs > 0).then(|| format_secs(r.cutoff_secs)),
        groups: r.groups.clone(),
        assets: r.assets.clone(),
        description: r.description.clone(),
    }
}

/// `5400` → `1h 30m` (jiff's friendly format, which parses back).
fn format_secs(secs: i64) -> String {
    format!("{:#}", SignedDuration::from_secs(secs))
}

/// Occurrences for the wire.
pub fn occurrences_out(w: &Window, from: Timestamp, count: usize) -> Vec<OccurrenceOut> {
    w.occurrences(from, count)
        .into_iter()
        .map(|o| OccurrenceOut {
            start: fmt_ts(o.start),
            end: fmt_ts(o.end),
        })
        .collect()
}

fn name_of(field: &str, raw: &str) -> Result<String, AppError> {
    AssetName::parse(raw)
        .map(|n| n.as_str().to_string())
        .map_err(|e| AppError::invalid(format!("{field}: {e}")))
}

/// Whether a definition naming `groups` and `assets` covers this asset.
pub(crate) fn covers(
    groups: &[String],
    assets: &[String],
    asset: &str,
    asset_groups: &[String],
) -> bool {
    (groups.is_empty() && assets.is_empty())
        || assets.iter().any(|a| a.eq_ignore_ascii_case(asset))
        || groups.iter().any(|g| asset_groups.contains(g))
}

fn groups_and_ring(policy: &Policy, a: &AssetRow) -> (Vec<String>, Option<usize>) {
    ranking::with_facts(a, |af| {
        let groups = policy.groups_of(af);
        let ring = policy
            .ring_of(af, &groups)
            .and_then(|r| policy.rings.iter().position(|x| x.name == r.name));
        (groups, ring)
    })
}

fn blackout_out(b: BlackoutRow, approvals: &[BlackoutApprovalRow]) -> BlackoutOut {
    BlackoutOut {
        approvals: approvals
            .iter()
            .filter(|a| a.blackout == b.name)
            .map(approval_out)
            .collect(),
        name: b.name,
        start: fmt_ts(b.starts_at),
        end: fmt_ts(b.ends_at),
        reason: b.reason,
        owner: b.owner,
        groups: b.groups,
        assets: b.assets,
        created_at: fmt_ts(b.created_at),
        created_by: b.created_by,
    }
}

fn approval_out(a: &BlackoutApprovalRow) -> BlackoutApprovalOut {
    BlackoutApprovalOut {
        deployment: a.deployment.clone(),
        approver: a.approver.clone(),
        note: a.note.clone(),
        approved_at: fmt_ts(a.approved_at),
    }
}

/// One calendar entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalEvent {
    /// Stable unique id.
    pub uid: String,
    /// Title.
    pub summary: String,
    /// Details.
    pub description: String,
    /// Start.
    pub start: Timestamp,
    /// End.
    pub end: Timestamp,
    /// `MAINTENANCE-WINDOW` or `BLACKOUT`.
    pub category: &'static str,
}

fn chrono_utc(t: Timestamp) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.as_second(), 0).unwrap_or_default()
}

/// Renders an RFC 5545 calendar (times in UTC; `stamp` is every DTSTAMP so the
/// output is a function of its input).
pub fn render_ics(name: &str, events: &[CalEvent], stamp: Timestamp) -> String {
    use icalendar::{Calendar, Component, Event, EventLike};
    let mut cal = Calendar::empty();
    cal.append_property(("VERSION", "2.0"));
    cal.append_property(("PRODID", "-//Patchbay//Patchbay schedule//EN"));
    cal.append_property(("CALSCALE", "GREGORIAN"));
    cal.append_property(("METHOD", "PUBLISH"));
    cal.name(name);
    for e in events {
        cal.push(
            Event::new()
                .uid(&e.uid)
                .summary(&e.summary)
                .description(&e.description)
                .starts(chrono_utc(e.start))
                .ends(chrono_utc(e.end))
                .timestamp(chrono_utc(stamp))
                .add_property("CATEGORIES", e.category)
                .add_property(
                    "TRANSP",
                    if e.category == "BLACKOUT" {
                        "OPAQUE"
                    } else {
                        "TRANSPARENT"
                    },
                )
                .done(),
        );
    }
    cal.done().to_string()
}

fn compact(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

impl App {
    async fn validate_targets(
        &self,
        groups: &[String],
        assets: &[String],
    ) -> Result<(Vec<String>, Vec<String>), AppError> {
        let mut snap = self.snapshot().await?;
        let (policy, _) = snap.policy_in_force().await?;
        let known: Vec<&str> = policy.groups.iter().map(|g| g.name.as_str()).collect();
        let mut gs: Vec<String> = Vec::new();
        for (i, g) in groups.iter().enumerate() {
            if !known.contains(&g.as_str()) {
                return Err(AppError::invalid(format!(
                    "groups[{i}]: unknown group {g:?} (groups of the policy in force: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            gs.push(g.clone());
        }
        let tx = snap.tx();
        let mut names = Vec::new();
        for (i, a) in assets.iter().enumerate() {
            let n = name_of(&format!("assets[{i}]"), a)?;
            if tx.asset_by_name(&n).await?.is_none() {
                return Err(AppError::invalid(format!(
                    "assets[{i}]: unknown asset {n:?}"
                )));
            }
            names.push(n);
        }
        gs.sort();
        gs.dedup();
        names.sort();
        names.dedup();
        Ok((gs, names))
    }

    /// Stores a maintenance window (admin, operator).
    pub async fn add_window(
        &self,
        caller: &Caller,
        spec: &WindowSpec,
        ctx: &RequestCtx,
    ) -> Result<WindowOut, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let name = name_of("name", &spec.name)?;
        let w = window_from_spec(spec)?;
        if w.duration() > MAX_WINDOW_DURATION {
            return Err(AppError::invalid(format!(
                "duration: {:?} is longer than the longest window, {}",
                spec.duration,
                format_duration(MAX_WINDOW_DURATION)
            )));
        }
        let (groups, assets) = self.validate_targets(&spec.groups, &spec.assets).await?;
        let row = WindowRow {
            name: name.clone(),
            rrule: w.rrule().to_string(),
            dtstart: w.dtstart().to_string(),
            tz: w.tz().iana_name().unwrap_or("UTC").to_string(),
            duration_secs: w.duration().as_secs(),
            offset_days: i64::from(w.offset_days()),
            cutoff_secs: w.cutoff().as_secs(),
            groups,
            assets,
            description: match spec.description.trim() {
                "" => String::new(),
                d => patchbay_core::names::check_label(d, patchbay_core::names::MAX_TEXT_LEN)
                    .map_err(|m| AppError::invalid(format!("description: {m}")))?,
            },
            created_at: self.now(),
            created_by: caller.actor(),
        };
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        if !tx.insert_window(&row).await? {
            return Err(AppError::new(
                patchbay_proto::error::ErrorCode::Conflict,
                format!("a window named {name:?} exists; remove it first"),
            ));
        }
        tx.audit(
            "window.add",
            &format!("window:{name}"),
            json!({"rrule": row.rrule, "dtstart": row.dtstart, "tz": row.tz,
                   "duration_s": row.duration_secs, "offset_days": row.offset_days,
                   "cutoff_s": row.cutoff_secs, "groups": row.groups, "assets": row.assets}),
        )
        .await?;
        tx.commit().await?;
        Ok(WindowOut {
            spec: spec_of(&row),
            next: occurrences_out(&w, self.now(), 3),
            created_at: fmt_ts(row.created_at),
            created_by: row.created_by,
        })
    }

    /// Stored windows with their next occurrences.
    pub async fn windows(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Vec<WindowOut>, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let rows = {
            let mut tx = self.store.read().await?;
            tx.list_windows().await?
        };
        let now = self.now();
        rows.into_iter()
            .map(|r| {
                let w = window_from_row(&r)?;
                Ok(WindowOut {
                    spec: spec_of(&r),
                    next: occurrences_out(&w, now, 3),
                    created_at: fmt_ts(r.created_at),
                    created_by: r.created_by,
                })
            })
            .collect()
    }

    /// One asset's schedule: the policy groups it is in, the maintenance
    /// windows that cover it (with their next occurrences) and the
    /// blackouts that cover it — what the dashboard's asset page shows.
    pub async fn asset_schedule(
        &self,
        caller: &Caller,
        name: &str,
        ctx: &RequestCtx,
    ) -> Result<AssetSchedule, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut snap = self.snapshot().await?;
        let (policy, _) = snap.policy_in_force().await?;
        let tx = snap.tx();
        let asset = tx
            .asset_by_name(name)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no asset {name:?}")))?;
        let (groups, _) = groups_and_ring(&policy, &asset);
        let windows = tx.list_windows().await?;
        let blackouts = tx.list_blackouts().await?;
        let approvals = tx.list_blackout_approvals().await?;
        let now = self.now();
        let windows = windows
            .into_iter()
            .filter(|r| covers(&r.groups, &r.assets, &asset.name, &groups))
            .map(|r| {
                let w = window_from_row(&r)?;
                Ok(WindowOut {
                    spec: spec_of(&r),
                    next: occurrences_out(&w, now, 3),
                    created_at: fmt_ts(r.created_at),
                    created_by: r.created_by,
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        let blackouts = blackouts
            .into_iter()
            .filter(|b| covers(&b.groups, &b.assets, &asset.name, &groups))
            .map(|b| blackout_out(b, &approvals))
            .collect();
        Ok(AssetSchedule {
            groups,
            windows,
            blackouts,
        })
    }

    /// Removes a window (admin, operator).
    pub async fn remove_window(
        &self,
        caller: &Caller,
        name: &str,
        ctx: &RequestCtx,
    ) -> Result<(), AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let name = name_of("name", name)?;
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        if !tx.delete_window(&name).await? {
            return Err(AppError::not_found(format!("no window named {name:?}")));
        }
        tx.audit("window.remove", &format!("window:{name}"), json!({}))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a blackout (admin, operator).
    pub async fn add_blackout(
        &self,
        caller: &Caller,
        spec: &BlackoutSpec,
        ctx: &RequestCtx,
    ) -> Result<BlackoutOut, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let name = name_of("name", &spec.name)?;
        let tz = match &spec.tz {
            Some(z) => when::zone("tz", z)?,
            None => TimeZone::UTC,
        };
        let start = when::instant("start", &spec.start, &tz)?;
        let end = when::instant("end", &spec.end, &tz)?;
        if end <= start {
            return Err(AppError::invalid(format!(
                "end: {} is not after start {}",
                fmt_ts(end),
                fmt_ts(start)
            )));
        }
        if end.duration_since(start) > MAX_BLACKOUT {
            return Err(AppError::invalid(format!(
                "end: the blackout from {} to {} is longer than the longest blackout, {} days",
                fmt_ts(start),
                fmt_ts(end),
                MAX_BLACKOUT.as_hours() / 24
            )));
        }
        let reason = spec.reason.trim();
        if reason.is_empty() {
            return Err(AppError::invalid("reason: a blackout needs a reason"));
        }
        let owner = spec.owner.trim();
        if owner.is_empty() {
            return Err(AppError::invalid("owner: a blackout needs an owner"));
        }
        for (field, v) in [("reason", reason), ("owner", owner)] {
            patchbay_core::names::check_label(v, patchbay_core::names::MAX_TEXT_LEN)
                .map_err(|m| AppError::invalid(format!("{field}: {m}")))?;
        }
        let (groups, assets) = self.validate_targets(&spec.groups, &spec.assets).await?;
        let row = BlackoutRow {
            name: name.clone(),
            starts_at: start,
            ends_at: end,
            reason: reason.to_string(),
            owner: owner.to_string(),
            groups,
            assets,
            created_at: self.now(),
            created_by: caller.actor(),
        };
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        if !tx.insert_blackout(&row).await? {
            return Err(AppError::new(
                patchbay_proto::error::ErrorCode::Conflict,
                format!("a blackout named {name:?} exists; remove it first"),
            ));
        }
        tx.audit(
            "blackout.add",
            &format!("blackout:{name}"),
            json!({"start": fmt_ts(start), "end": fmt_ts(end), "reason": row.reason,
                   "owner": row.owner, "groups": row.groups, "assets": row.assets}),
        )
        .await?;
        tx.commit().await?;
        Ok(blackout_out(row, &[]))
    }

    /// Stored blackouts with their approvals.
    pub async fn blackouts(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Vec<BlackoutOut>, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut tx = self.store.read().await?;
        let approvals = tx.list_blackout_approvals().await?;
        Ok(tx
            .list_blackouts()
            .await?
            .into_iter()
            .map(|b| blackout_out(b, &approvals))
            .collect())
    }

    /// Removes a blackout and its approvals (admin, operator).
    pub async fn remove_blackout(
        &self,
        caller: &Caller,
        name: &str,
        ctx: &RequestCtx,
    ) -> Result<(), AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let name = name_of("name", name)?;
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        if !tx.delete_blackout(&name).await? {
            return Err(AppError::not_found(format!("no blackout named {name:?}")));
        }
        tx.audit("blackout.remove", &format!("blackout:{name}"), json!({}))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lets an out-of-band deployment enter a blackout (admin, approver; never
    /// the deployment's creator). The caller is the recorded approver.
    pub async fn approve_blackout(
        &self,
        caller: &Caller,
        name: &str,
        input: &BlackoutApprovalIn,
        ctx: &RequestCtx,
    ) -> Result<BlackoutApprovalOut, AppError> {
        self.require(caller, Action::Approve, ctx).await?;
        let name = name_of("name", name)?;
        let note = input.note.trim();
        if note.is_empty() {
            return Err(AppError::invalid(
                "note: an approval to enter a blackout needs a reason",
            ));
        }
        patchbay_core::names::check_label(note, patchbay_core::names::MAX_TEXT_LEN)
            .map_err(|m| AppError::invalid(format!("note: {m}")))?;
        let mut tx = self.change(caller, Action::Approve, ctx).await?;
        if !tx.list_blackouts().await?.iter().any(|b| b.name == name) {
            return Err(AppError::not_found(format!("no blackout named {name:?}")));
        }
        let dep = tx
            .list_deployments()
            .await?
            .into_iter()
            .find(|d| d.id == input.deployment)
            .ok_or_else(|| AppError::not_found(format!("no deployment {:?}", input.deployment)))?;
        if dep.kind != "oob" {
            return Err(AppError::invalid(format!(
                "deployment: {} is not out-of-band; only out-of-band deployments may enter a blackout",
                dep.id
            )));
        }
        let approver = caller.actor();
        if approver == dep.created_by {
            // Four-eyes: recorded like every refusal (after the write
            // transaction ends: never hold one connection waiting for another).
            drop(tx);
            let mut detail = json!({"method": crate::bounded_text(&ctx.method),
                                    "remote": crate::bounded_text(&ctx.remote),
                                    "reason": "the deployment's creator may not approve it",
                                    "deployment": dep.id});
            detail["blackout"] = json!(name);
            self.audit_refusal(
                &approver,
                "blackout.approve",
                &format!("blackout:{name}"),
                &ctx.remote,
                detail,
            )
            .await;
            return Err(AppError::new(
                patchbay_proto::error::ErrorCode::Forbidden,
                format!(
                    "{approver} created {}; its approval must come from someone else",
                    dep.id
                ),
            ));
        }
        let row = BlackoutApprovalRow {
            blackout: name.clone(),
            deployment: dep.id.clone(),
            approver,
            note: note.to_string(),
            approved_at: self.now(),
        };
        if !tx.insert_blackout_approval(&row).await? {
            return Err(AppError::new(
                patchbay_proto::error::ErrorCode::Conflict,
                format!("{} is already approved to enter {name}", dep.id),
            ));
        }
        tx.audit(
            "blackout.approve",
            &format!("blackout:{name}"),
            json!({"deployment": dep.id, "note": row.note}),
        )
        .await?;
        tx.commit().await?;
        Ok(approval_out(&row))
    }

    /// Forecasts when each asset is patched and which findings miss their SLA.
    pub async fn plan_preview(
        &self,
        caller: &Caller,
        req: &PlanRequest,
        ctx: &RequestCtx,
    ) -> Result<PlanOut, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let now = match &req.from {
            Some(f) => when::instant("from", f, &TimeZone::UTC)?,
            None => self.now(),
        };
        let days = req.days.unwrap_or(DEFAULT_PLAN_DAYS);
        if !(1..=MAX_PLAN_DAYS).contains(&days) {
            return Err(AppError::invalid(format!(
                "days: must be between 1 and {MAX_PLAN_DAYS}, got {days}"
            )));
        }
        let job_estimate = match &req.job_estimate {
            Some(s) => when::span("job_estimate", s)?,
            None => DEFAULT_JOB_ESTIMATE,
        };
        if job_estimate > MAX_JOB_ESTIMATE {
            return Err(AppError::invalid(format!(
                "job_estimate: must be at most {}",
                format_duration(MAX_JOB_ESTIMATE)
            )));
        }
        let until = now
            .checked_add(SignedDuration::from_hours(24 * i64::from(days)))
            .map_err(|e| AppError::invalid(format!("from: out of range: {e}")))?;
        let mut snap = self.snapshot().await?;
        let (policy, _) = snap.policy_in_force().await?;
        if let Some(g) = &req.group
            && !policy.groups.iter().any(|x| &x.name == g)
        {
            return Err(AppError::invalid(format!(
                "group: unknown group {g:?} in the policy in force"
            )));
        }
        let (window_rows, blackout_rows, approvals, deployment, assets) = {
            let tx = snap.tx();
            let deployment = match &req.deployment {
                Some(id) => Some(
                    tx.list_deployments()
                        .await?
                        .into_iter()
                        .find(|d| &d.id == id)
                        .ok_or_else(|| AppError::not_found(format!("no deployment {id:?}")))?,
                ),
                None => None,
            };
            (
                tx.list_windows().await?,
                tx.list_blackouts().await?,
                tx.list_blackout_approvals().await?,
                deployment,
                // A deployment's plan reads its assets only, not the fleet's.
                match &req.deployment {
                    Some(_) => vec![],
                    None => tx.list_assets().await?,
                },
            )
        };
        let (assets, findings) = match &deployment {
            Some(d) => (
                snap.tx().assets_by_names(&d.assets).await?,
                snap.findings_of_assets(&d.assets)
                    .await?
                    .into_iter()
                    .filter(|f| f.resolved_at.is_none())
                    .collect(),
            ),
            None => (assets, snap.open_findings().await?),
        };
        let mut ranked: Vec<Ranked> = snap.rank(&policy, findings).await?;
        let exceptions = snap.exceptions().await?;
        drop(snap);
        ranking::mark(&mut ranked, &exceptions, now);
        let ranked: Vec<Ranked> = ranked
            .into_iter()
            .filter(|r| !r.excluded && r.item.exception.is_none())
            .collect();
        let out_of_band = deployment.as_ref().is_some_and(|d| d.kind == "oob");
        let windows: Vec<Window> = window_rows
            .iter()
            .map(window_from_row)
            .collect::<Result<_, _>>()?;
        let blackouts: Vec<Blackout> = blackout_rows
            .iter()
            .map(|b| Blackout {
                id: b.name.clone(),
                start: b.starts_at,
                end: b.ends_at,
                reason: b.reason.clone(),
                owner: b.owner.clone(),
                approved_by: deployment.as_ref().and_then(|d| {
                    approvals
                        .iter()
                        .find(|a| a.blackout == b.name && a.deployment == d.id)
                        .map(|a| a.approver.clone())
                }),
            })
            .collect();

        // Scope: the deployment's assets, or every asset with open findings.
        let mut by_asset: HashMap<&str, Vec<&Ranked>> = HashMap::new();
        for r in &ranked {
            by_asset
                .entry(r.item.finding.asset.as_str())
                .or_default()
                .push(r);
        }
        let scope: HashSet<String> = match &deployment {
            Some(d) => d.assets.iter().cloned().collect(),
            None => by_asset.keys().map(|s| s.to_string()).collect(),
        };
        let mut rows: Vec<&AssetRow> = assets.iter().filter(|a| scope.contains(&a.name)).collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        let mut plan_assets = Vec::new();
        let mut meta: Vec<Vec<&Ranked>> = Vec::new();
        for a in rows {
            let (groups, ring) = groups_and_ring(&policy, a);
            if req.group.as_ref().is_some_and(|g| !groups.contains(g)) {
                continue;
            }
            let ws = window_rows
                .iter()
                .enumerate()
                .filter(|(_, w)| covers(&w.groups, &w.assets, &a.name, &groups))
                .map(|(i, _)| i)
                .collect();
            let bs = blackout_rows
                .iter()
                .enumerate()
                .filter(|(_, b)| covers(&b.groups, &b.assets, &a.name, &groups))
                .map(|(i, _)| i)
                .collect();
            let fs: Vec<&Ranked> = by_asset.get(a.name.as_str()).cloned().unwrap_or_default();
            plan_assets.push(PlanAsset {
                name: a.name.clone(),
                ring,
                windows: ws,
                blackouts: bs,
                findings: fs
                    .iter()
                    .map(|r| PlanFinding {
                        id: r.item.finding.id.clone(),
                        due: r.due,
                    })
                    .collect(),
            });
            meta.push(fs);
        }
        // A policy without rings rolls out to every asset in one implicit ring.
        let rings: Vec<RingSpec> = if policy.rings.is_empty() {
            for a in &mut plan_assets {
                a.ring = Some(0);
            }
            vec![RingSpec {
                name: IMPLICIT_RING.into(),
                soak: SignedDuration::ZERO,
            }]
        } else {
            policy
                .rings
                .iter()
                .map(|r| RingSpec {
                    name: r.name.clone(),
                    soak: r.soak,
                })
                .collect()
        };
        let opts = PlanOptions {
            now,
            until,
            job_estimate,
            out_of_band,
        };
        let p = plan::plan(&rings, &windows, &blackouts, &plan_assets, &opts);

        let ring_out: Vec<RingPlanOut> = p
            .rings
            .iter()
            .map(|r| RingPlanOut {
                ring: rings[r.ring].name.clone(),
                soak: format_duration(rings[r.ring].soak),
                earliest: fmt_ts(r.earliest),
                first: r.first.map(fmt_ts),
                last: r.last.map(fmt_ts),
                assets: r.assets,
                unplanned: r.unplanned,
            })
            .collect();
        let mut asset_out: Vec<(Option<Timestamp>, AssetPlanOut)> = p
            .assets
            .iter()
            .map(|ap| {
                let a = &plan_assets[ap.asset];
                let ring = a.ring.map(|r| rings[r].name.clone());
                match &ap.planned {
                    Ok(s) => (
                        Some(s.at),
                        AssetPlanOut {
                            asset: a.name.clone(),
                            ring,
                            planned: Some(fmt_ts(s.at)),
                            window: Some(window_rows[s.window].name.clone()),
                            occurrence: Some(OccurrenceOut {
                                start: fmt_ts(s.occurrence.start),
                                end: fmt_ts(s.occurrence.end),
                            }),
                            enters_blackouts: s
                                .enters_blackouts
                                .iter()
                                .map(|&b| blackouts[b].id.clone())
                                .collect(),
                            unplanned: None,
                            findings: a.findings.len(),
                        },
                    ),
                    Err(u) => (
                        None,
                        AssetPlanOut {
                            asset: a.name.clone(),
                            ring,
                            planned: None,
                            window: None,
                            occurrence: None,
                            enters_blackouts: vec![],
                            unplanned: Some(
                                match u {
                                    Unplanned::NoRing => "in no rollout ring of the policy".to_string(),
                                    Unplanned::NoWindow => "no maintenance window applies to it".to_string(),
                                    Unplanned::NoSlotBeforeHorizon => format!(
                                        "no eligible window time before {} (windows, cutoffs and blackouts)",
                                        fmt_ts(until)
                                    ),
                                },
                            ),
                            findings: a.findings.len(),
                        },
                    ),
                }
            })
            .collect();
        asset_out.sort_by(|a, b| {
            (a.0.is_none(), a.0, &a.1.asset).cmp(&(b.0.is_none(), b.0, &b.1.asset))
        });
        let mut at_risk: Vec<(Timestamp, AtRiskOut)> = p
            .at_risk
            .iter()
            .map(|r| {
                let a = &plan_assets[r.asset];
                let f = meta[r.asset][r.finding];
                let reasons = r
                    .reasons
                    .iter()
                    .map(|reason| match reason {
                        RiskReason::Overdue => format!("overdue since {}", fmt_ts(r.due)),
                        RiskReason::NoWindowBeforeDue if a.windows.is_empty() => {
                            "no maintenance window applies to the asset".to_string()
                        }
                        RiskReason::NoWindowBeforeDue => format!(
                            "no maintenance window time between {} and the due date",
                            fmt_ts(now)
                        ),
                        RiskReason::Blackout(bs) => {
                            let names: Vec<String> = bs
                                .iter()
                                .map(|&b| {
                                    let b = &blackouts[b];
                                    format!(
                                        "{} ({}; owner {}; {} to {})",
                                        b.id,
                                        b.reason,
                                        b.owner,
                                        fmt_ts(b.start),
                                        fmt_ts(b.end)
                                    )
                                })
                                .collect();
                            format!("blackout: {}", names.join(", "))
                        }
                        RiskReason::RingSoak { ring, earliest } => format!(
                            "ring soak: {} may start only at {}, after the earlier rings and their soak times",
                            rings[*ring].name,
                            fmt_ts(*earliest)
                        ),
                        RiskReason::NotInRing => {
                            "the asset is in no rollout ring of the policy".to_string()
                        }
                    })
                    .collect();
                (
                    r.due,
                    AtRiskOut {
                        asset: a.name.clone(),
                        cve: f.item.finding.advisory.clone(),
                        package: f.item.finding.package.clone(),
                        tier: f.tier.to_string(),
                        due: fmt_ts(r.due),
                        planned: r.planned.map(fmt_ts),
                        reasons,
                    },
                )
            })
            .collect();
        at_risk.sort_by(|a, b| (a.0, &a.1.asset, &a.1.cve).cmp(&(b.0, &b.1.asset, &b.1.cve)));
        let planned = asset_out.iter().filter(|a| a.0.is_some()).count();
        let summary = format!(
            "{planned} of {} assets planned between {} and {}; {} findings at risk of missing their SLA",
            asset_out.len(),
            fmt_ts(now),
            fmt_ts(until),
            at_risk.len()
        );
        Ok(PlanOut {
            from: fmt_ts(now),
            until: fmt_ts(until),
            deployment: deployment.map(|d| d.id),
            out_of_band,
            rings: ring_out,
            assets: asset_out.into_iter().map(|a| a.1).collect(),
            at_risk: at_risk.into_iter().map(|a| a.1).collect(),
            summary,
        })
    }

    /// The calendar of windows and blackouts in `[from, to)`, optionally only
    /// those that apply to a policy group (fleet-wide ones included).
    pub async fn calendar(
        &self,
        caller: &Caller,
        group: Option<&str>,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        ctx: &RequestCtx,
    ) -> Result<String, AppError> {
        self.require(caller, Action::ReadCalendar, ctx).await?;
        let now = self.now();
        let from = from.unwrap_or_else(|| now - SignedDuration::from_hours(24 * 7));
        let to = to.unwrap_or_else(|| now + SignedDuration::from_hours(24 * 90));
        if to <= from {
            return Err(AppError::invalid("to: must be after from"));
        }
        if to.duration_since(from) > SignedDuration::from_hours(24 * MAX_CALENDAR_DAYS) {
            return Err(AppError::invalid(format!(
                "to: the range may span at most {MAX_CALENDAR_DAYS} days"
            )));
        }
        if let Some(g) = group {
            let (policy, _) = self.policy_in_force().await?;
            if !policy.groups.iter().any(|x| x.name == g) {
                return Err(AppError::invalid(format!(
                    "group: unknown group {g:?} in the policy in force"
                )));
            }
        }
        let events = self.calendar_events(group, from, to).await?;
        let name = match group {
            Some(g) => format!("Patchbay maintenance calendar ({g})"),
            None => "Patchbay maintenance calendar".to_string(),
        };
        Ok(render_ics(&name, &events, now))
    }

    /// Windows' occurrences and blackouts in `[from, to)` (only those that
    /// apply to `group` when given, fleet-wide ones included), by start.
    async fn calendar_events(
        &self,
        group: Option<&str>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<CalEvent>, AppError> {
        let (windows, blackouts) = {
            let mut tx = self.store.read().await?;
            (tx.list_windows().await?, tx.list_blackouts().await?)
        };
        let wanted = |groups: &[String], assets: &[String]| match group {
            None => true,
            Some(g) => (groups.is_empty() && assets.is_empty()) || groups.iter().any(|x| x == g),
        };
        let mut events = Vec::new();
        for r in windows.iter().filter(|r| wanted(&r.groups, &r.assets)) {
            let w = window_from_row(r)?;
            for o in w.occurrences_between(from, to) {
                events.push(CalEvent {
                    uid: format!("window-{}-{}@patchbay", r.name, compact(o.start)),
                    summary: format!("Maintenance window: {}", r.name),
                    description: format!(
                        "{}{}RRULE {} from {} {} for {}{}{}; applies to {}",
                        r.description,
                        if r.description.is_empty() { "" } else { "\n" },
                        r.rrule,
                        r.dtstart,
                        r.tz,
                        format_secs(r.duration_secs),
                        if r.offset_days != 0 {
                            format!(", offset {:+} days", r.offset_days)
                        } else {
                            String::new()
                        },
                        if r.cutoff_secs > 0 {
                            format!(", no new job in the last {}", format_secs(r.cutoff_secs))
                        } else {
                            String::new()
                        },
                        targets(&r.groups, &r.assets)
                    ),
                    start: o.start,
                    end: o.end,
                    category: "MAINTENANCE-WINDOW",
                });
            }
        }
        for b in blackouts
            .iter()
            .filter(|b| wanted(&b.groups, &b.assets) && b.ends_at > from && b.starts_at < to)
        {
            events.push(CalEvent {
                uid: format!("blackout-{}@patchbay", b.name),
                summary: format!("Blackout: {} ({})", b.name, b.reason),
                description: format!(
                    "Change freeze. Reason: {}. Owner: {}. Applies to {}.",
                    b.reason,
                    b.owner,
                    targets(&b.groups, &b.assets)
                ),
                start: b.starts_at,
                end: b.ends_at,
                category: "BLACKOUT",
            });
        }
        events.sort_by(|a, b| (a.start, &a.uid).cmp(&(b.start, &b.uid)));
        Ok(events)
    }

    /// The dashboard's calendar: windows' occurrences and blackouts in
    /// `[from, to)` (at most 62 days), by start: (summary, start, end,
    /// `MAINTENANCE-WINDOW` or `BLACKOUT`).
    pub async fn calendar_entries(
        &self,
        caller: &Caller,
        from: Timestamp,
        to: Timestamp,
        ctx: &RequestCtx,
    ) -> Result<Vec<(String, Timestamp, Timestamp, &'static str)>, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        if to <= from || to.duration_since(from) > SignedDuration::from_hours(24 * 62) {
            return Err(AppError::invalid(
                "the calendar shows 1 to 62 days at a time",
            ));
        }
        Ok(self
            .calendar_events(None, from, to)
            .await?
            .into_iter()
            .map(|e| (e.summary, e.start, e.end, e.category))
            .collect())
    }
}

fn targets(groups: &[String], assets: &[String]) -> String {
    if groups.is_empty() && assets.is_empty() {
        return "every asset".into();
    }
    let mut parts = Vec::new();
    if !groups.is_empty() {
        parts.push(format!("groups {}", groups.join(", ")));
    }
    if !assets.is_empty() {
        parts.push(format!("assets {}", assets.join(", ")));
    }
    parts.join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ics_is_well_formed() {
        let t: Timestamp = "2026-03-08T07:30:00Z".parse().unwrap();
        let long = "x".repeat(200);
        let ics = render_ics(
            "Patchbay",
            &[CalEvent {
                uid: "u1@patchbay".into(),
                summary: "Blackout: a; b, c".into(),
                description: long,
                start: t,
                end: t + SignedDuration::from_hours(3),
                category: "BLACKOUT",
            }],
            t,
        );
        assert!(
            ics.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"),
            "{ics}"
        );
        assert_eq!(ics.matches("PRODID:").count(), 1);
        assert!(ics.contains("DTSTART:20260308T073000Z\r\n"));
        assert!(ics.contains("DTEND:20260308T103000Z\r\n"));
        assert!(ics.contains("SUMMARY:Blackout: a\\; b\\, c\r\n"), "{ics}");
        // Lines are folded at 75 octets and end with CRLF.
        for line in ics.split("\r\n") {
            assert!(line.len() <= 75, "{line:?}");
            assert!(!line.contains('\n'));
        }
        assert!(ics.ends_with("END:VCALENDAR\r\n"));
    }

    #[test]
    fn field_errors_name_the_field() {
        let spec = |f: &dyn Fn(&mut WindowSpec)| {
            let mut s = WindowSpec {
                name: "w".into(),
                rrule: "FREQ=DAILY".into(),
                dtstart: "2026-01-01T02:00".into(),
                tz: "UTC".into(),
                duration: "2h".into(),
                offset_days: 0,
                cutoff: None,
                groups: vec![],
                assets: vec![],
                description: String::new(),
            };
            f(&mut s);
            window_from_spec(&s).map(|_| ()).map_err(|e| e.message)
        };
        assert_eq!(spec(&|_| {}), Ok(()));
        let err = |f: &dyn Fn(&mut WindowSpec)| spec(f).unwrap_err();
        assert!(err(&|s| s.rrule = "FREQ=HOURLY".into()).starts_with("rrule:"));
        assert!(err(&|s| s.dtstart = "2026-13-01T02:00".into()).starts_with("dtstart:"));
        assert!(err(&|s| s.tz = "Nowhere/City".into()).starts_with("tz:"));
        assert!(err(&|s| s.duration = "-2h".into()).starts_with("duration:"));
        assert!(err(&|s| s.duration = "0s".into()).contains("duration"));
        assert!(err(&|s| s.cutoff = Some("3h".into())).contains("cutoff"));
        assert!(err(&|s| s.offset_days = 9999).contains("offset_days"));
        // Durations print in a form that parses back.
        assert_eq!(format_secs(5400), "1h 30m");
        assert_eq!(when::span("d", "1h 30m").unwrap().as_secs(), 5400);
        assert_eq!(when::span("d", "PT4H").unwrap().as_secs(), 14400);
    }
}

/// One asset's schedule ([`App::asset_schedule`]).
#[derive(Debug, Clone)]
pub struct AssetSchedule {
    /// The policy groups the asset is in.
    pub groups: Vec<String>,
    /// The maintenance windows covering it.
    pub windows: Vec<WindowOut>,
    /// The blackouts covering it.
    pub blackouts: Vec<patchbay_proto::api::BlackoutOut>,
}
