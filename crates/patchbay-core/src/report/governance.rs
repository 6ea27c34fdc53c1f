//! The governance review report (issue 18, item 9): for a period, the risk
//! removed against the effort spent, per group and per owner, with the
//! period's wins. Pure: the history, the approvals and the period are
//! arguments; nothing reads a clock. Definitions (also in docs/governance.md):
//!
//! The **period** is `[from, to)`; `from < to`.
//!
//! **Risk removed** — over findings *closed in the period* (`resolved_at` in
//! the period; findings the policy excludes are not in the history):
//! - `closed`, and `closed_by_tier` (P0…P4, every tier listed);
//! - `closed_in_sla`: resolved by their due date (`resolved_at ≤ due`);
//!   `closed_late` the rest;
//! - **`exposure_days_avoided`** = Σ max(0, due − resolved_at), in days: how
//!   much sooner than its SLA allowed each finding stopped being exposed;
//! - `exposure_days_over_sla` = Σ max(0, resolved_at − due), in days: the
//!   exposure beyond the SLA of those closed late.
//!
//! **Effort spent**:
//! - `jobs`: apply jobs that ran (not skipped) with their outcome taken in the
//!   period (`finished_at`); `rollbacks`: jobs whose rollback ended in the
//!   period (`rollback_at`; rolled back or rollback failed);
//! - **`window_hours`**: per deployment, the span from its first job's lease
//!   to its last job's end (`rollback_at`, else `finished_at`), intersected
//!   with the period, summed over deployments, in hours; `deployments`
//!   counts those whose span meets the period;
//! - `approvals`: ring approvals taken in the period; their **wait** is
//!   `approved_at − requested_at` (the ring asked when it became ready for
//!   approval), in hours: mean, median (of an even count: the mean of the two
//!   middle values), max.
//!
//! **Per group and per owner**: the same risk figures over the findings of
//! their assets, and `jobs` / `rollbacks` over their hosts' jobs (an asset in
//! several groups counts in each; in none: `(none)`; no owner: `(none)`).
//! Window hours and approvals are per deployment and stay in the whole.
//!
//! **Wins**:
//! - `p0_closed`, `p0_closed_in_sla`: P0 findings closed in the period, and of
//!   those, by their due date;
//! - **streaks**: the period's days are `[from + k·24 h, from + (k+1)·24 h)`
//!   (a last partial day counts); a day is **clean** when at its end no
//!   finding is overdue (detected, not resolved by then, due before then).
//!   `longest_streak_days` is the longest run of clean days,
//!   `current_streak_days` the run ending with the period's last day;
//! - `fastest`: the five closures in the period with the shortest first seen →
//!   resolved, in hours (ties: asset, advisory, package).
//!
//! Figures in days and hours are rounded to two decimals once, after summing
//! exact seconds.

use super::{FindingRecord, History};
use crate::report::deployments::JobRecord;
use crate::risk::Tier;
use crate::rollout::JobState;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;

/// A ring approval: when the ring asked for it and when it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// `DEP-…`.
    pub deployment: String,
    /// Ring name.
    pub ring: String,
    /// When the ring became ready for approval.
    pub requested_at: Timestamp,
    /// When the approval was taken in.
    pub approved_at: Timestamp,
    /// Who approved.
    pub by: String,
}

/// Risk removed over a set of findings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Risk {
    /// Findings closed in the period.
    pub closed: u64,
    /// Of those, per tier (every tier listed).
    pub closed_by_tier: BTreeMap<String, u64>,
    /// Closed by their due date.
    pub closed_in_sla: u64,
    /// Closed after their due date.
    pub closed_late: u64,
    /// Σ max(0, due − resolved), days.
    pub exposure_days_avoided: f64,
    /// Σ max(0, resolved − due), days.
    pub exposure_days_over_sla: f64,
}

/// Approval wait, hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Wait {
    /// Mean.
    pub mean_hours: f64,
    /// Median.
    pub median_hours: f64,
    /// Longest.
    pub max_hours: f64,
}

/// Effort spent, for the whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Effort {
    /// Deployments whose span meets the period.
    pub deployments: u64,
    /// Hours of those spans inside the period.
    pub window_hours: f64,
    /// Apply jobs that ran, outcome in the period.
    pub jobs: u64,
    /// Rollbacks ended in the period.
    pub rollbacks: u64,
    /// Ring approvals taken in the period.
    pub approvals: u64,
    /// Their wait.
    pub approval_wait: Wait,
}

/// One group's or owner's line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Line {
    /// Group or owner.
    pub name: String,
    /// Risk removed on its assets.
    #[serde(flatten)]
    pub risk: Risk,
    /// Its hosts' jobs that ran.
    pub jobs: u64,
    /// Its hosts' rollbacks.
    pub rollbacks: u64,
}

/// One fast closure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Closure {
    /// Asset.
    pub asset: String,
    /// Advisory.
    pub advisory: String,
    /// Binary package.
    pub package: String,
    /// Tier.
    pub tier: String,
    /// First seen → resolved, hours.
    pub hours: f64,
}

/// The period's wins.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Wins {
    /// P0 findings closed in the period.
    pub p0_closed: u64,
    /// Of those, by their due date.
    pub p0_closed_in_sla: u64,
    /// Longest run of days with nothing overdue.
    pub longest_streak_days: u64,
    /// The run ending with the period's last day.
    pub current_streak_days: u64,
    /// The five fastest closures.
    pub fastest: Vec<Closure>,
}

/// The governance review report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Governance {
    /// Period start (RFC 3339, inclusive).
    pub from: String,
    /// Period end (RFC 3339, exclusive).
    pub to: String,
    /// Risk removed.
    pub risk: Risk,
    /// Effort spent.
    pub effort: Effort,
    /// Per policy group, by name.
    pub by_group: Vec<Line>,
    /// Per owner, by name.
    pub by_owner: Vec<Line>,
    /// The period's wins.
    pub wins: Wins,
}

const NONE: &str = "(none)";

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn secs(d: SignedDuration) -> i64 {
    d.as_secs()
}

/// Exact sums in seconds, rounded once.
#[derive(Default)]
struct RiskSum {
    r: Risk,
    avoided: i64,
    over: i64,
}

impl RiskSum {
    fn add(&mut self, f: &FindingRecord, resolved: Timestamp) {
        self.r.closed += 1;
        *self
            .r
            .closed_by_tier
            .entry(f.tier.as_str().to_owned())
            .or_default() += 1;
        if resolved <= f.due {
            self.r.closed_in_sla += 1;
            self.avoided += secs(f.due.duration_since(resolved));
        } else {
            self.r.closed_late += 1;
            self.over += secs(resolved.duration_since(f.due));
        }
    }

    fn finish(mut self) -> Risk {
        for t in Tier::ALL {
            self.r
                .closed_by_tier
                .entry(t.as_str().to_owned())
                .or_default();
        }
        self.r.exposure_days_avoided = round2(self.avoided as f64 / 86_400.0);
        self.r.exposure_days_over_sla = round2(self.over as f64 / 86_400.0);
        self.r
    }
}

#[derive(Default)]
struct LineSum {
    risk: RiskSum,
    jobs: u64,
    rollbacks: u64,
}

fn in_period(t: Timestamp, from: Timestamp, to: Timestamp) -> bool {
    from <= t && t < to
}

fn ran_in(j: &JobRecord, from: Timestamp, to: Timestamp) -> bool {
    j.state != JobState::Skipped && j.finished_at.is_some_and(|f| in_period(f, from, to))
}

fn rolled_back_in(j: &JobRecord, from: Timestamp, to: Timestamp) -> bool {
    matches!(j.state, JobState::RolledBack | JobState::RollbackFailed)
        && j.rollback_at.is_some_and(|r| in_period(r, from, to))
}

/// The report for `[from, to)`; `None` when `from ≥ to`.
pub fn governance(
    h: &History,
    approvals: &[Approval],
    from: Timestamp,
    to: Timestamp,
) -> Option<Governance> {
    if from >= to {
        return None;
    }
    let asset_ix: BTreeMap<&str, usize> = h
        .assets
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.as_str(), i))
        .collect();
    let groups_of = |i: Option<usize>| -> Vec<String> {
        match i.map(|i| &h.assets[i].groups) {
            Some(g) if !g.is_empty() => g.clone(),
            _ => vec![NONE.to_owned()],
        }
    };
    let owner_of = |i: Option<usize>| -> String {
        match i.map(|i| h.assets[i].owner.as_str()) {
            Some(o) if !o.is_empty() => o.to_owned(),
            _ => NONE.to_owned(),
        }
    };
    let mut whole = RiskSum::default();
    let mut groups: BTreeMap<String, LineSum> = BTreeMap::new();
    let mut owners: BTreeMap<String, LineSum> = BTreeMap::new();
    let mut wins = Wins::default();
    let mut closures: Vec<(i64, &FindingRecord)> = Vec::new();
    for f in &h.findings {
        let Some(r) = f.resolved_at.filter(|r| in_period(*r, from, to)) else {
            continue;
        };
        whole.add(f, r);
        let i = Some(f.asset).filter(|i| *i < h.assets.len());
        for g in groups_of(i) {
            groups.entry(g).or_default().risk.add(f, r);
        }
        owners.entry(owner_of(i)).or_default().risk.add(f, r);
        if f.tier == Tier::P0 {
            wins.p0_closed += 1;
            if r <= f.due {
                wins.p0_closed_in_sla += 1;
            }
        }
        closures.push((secs(r.duration_since(f.first_seen)), f));
    }
    let mut effort = Effort::default();
    let mut window_secs = 0i64;
    for d in &h.deployments {
        let start = d.jobs.iter().filter_map(|j| j.leased_at).min();
        let end = d
            .jobs
            .iter()
            .filter_map(|j| j.rollback_at.or(j.finished_at))
            .max();
        if let (Some(s), Some(e)) = (start, end) {
            let (s, e) = (s.max(from), e.min(to));
            if s < e {
                effort.deployments += 1;
                window_secs += secs(e.duration_since(s));
            }
        }
        for j in &d.jobs {
            let ran = ran_in(j, from, to);
            let rb = rolled_back_in(j, from, to);
            if !ran && !rb {
                continue;
            }
            effort.jobs += u64::from(ran);
            effort.rollbacks += u64::from(rb);
            let i = asset_ix.get(j.host.as_str()).copied();
            for g in groups_of(i) {
                let l = groups.entry(g).or_default();
                l.jobs += u64::from(ran);
                l.rollbacks += u64::from(rb);
            }
            let l = owners.entry(owner_of(i)).or_default();
            l.jobs += u64::from(ran);
            l.rollbacks += u64::from(rb);
        }
    }
    effort.window_hours = round2(window_secs as f64 / 3600.0);
    let mut waits: Vec<i64> = approvals
        .iter()
        .filter(|a| in_period(a.approved_at, from, to))
        .map(|a| secs(a.approved_at.duration_since(a.requested_at)).max(0))
        .collect();
    waits.sort_unstable();
    effort.approvals = waits.len() as u64;
    if !waits.is_empty() {
        let n = waits.len();
        let h = |s: f64| round2(s / 3600.0);
        let median = if n % 2 == 1 {
            waits[n / 2] as f64
        } else {
            (waits[n / 2 - 1] + waits[n / 2]) as f64 / 2.0
        };
        effort.approval_wait = Wait {
            mean_hours: h(waits.iter().sum::<i64>() as f64 / n as f64),
            median_hours: h(median),
            max_hours: h(waits[n - 1] as f64),
        };
    }
    // Streaks over the period's days.
    let mut day_end = from;
    let mut run = 0u64;
    while day_end < to {
        day_end = day_end
            .checked_add(SignedDuration::from_hours(24))
            .unwrap_or(to)
            .min(to);
        let end = day_end;
        let clean = !h
            .findings
            .iter()
            .any(|f| f.first_seen <= end && f.resolved_at.is_none_or(|r| r > end) && f.due < end);
        run = if clean { run + 1 } else { 0 };
        wins.longest_streak_days = wins.longest_streak_days.max(run);
    }
    wins.current_streak_days = run;
    closures.sort_by(|a, b| {
        let key = |(s, f): &(i64, &FindingRecord)| {
            (
                *s,
                h.assets.get(f.asset).map(|a| a.name.clone()),
                f.advisory.clone(),
                f.package.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    wins.fastest = closures
        .iter()
        .take(5)
        .map(|(s, f)| Closure {
            asset: h
                .assets
                .get(f.asset)
                .map(|a| a.name.clone())
                .unwrap_or_default(),
            advisory: f.advisory.clone(),
            package: f.package.clone(),
            tier: f.tier.as_str().to_owned(),
            hours: round2(*s as f64 / 3600.0),
        })
        .collect();
    let lines = |m: BTreeMap<String, LineSum>| -> Vec<Line> {
        m.into_iter()
            .map(|(name, l)| Line {
                name,
                risk: l.risk.finish(),
                jobs: l.jobs,
                rollbacks: l.rollbacks,
            })
            .collect()
    };
    Some(Governance {
        from: from.to_string(),
        to: to.to_string(),
        risk: whole.finish(),
        effort,
        by_group: lines(groups),
        by_owner: lines(owners),
        wins,
    })
}
