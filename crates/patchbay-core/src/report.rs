//! Compliance reports as of any date, recomputed from history.
//!
//! Pure functions over a [`History`] (assets, findings with first-seen,
//! resolved and due times, exceptions) and an `as_of` instant:
//!
//! - [`compliance`]: per asset, owner and group — open findings within SLA,
//!   overdue, excepted, patched; an asset is *compliant* when it has no overdue,
//!   non-excepted finding;
//!   [`compliance_of`] is its aggregation from per-asset counts, however
//!   they were counted (the server counts "now" from its projection of open
//!   findings);
//! - [`time_to_patch`]: per tier, mean, median and p90 of resolved − first
//!   seen, over findings resolved by `as_of`;
//! - [`sla_adherence`]: per tier, the share of findings resolved by their due
//!   date, and of open findings not yet overdue;
//! - [`coverage`]: assets seen in the 24 h before `as_of` over all known
//!   assets, managed and unmanaged;
//! - [`deployments()`]: rollout outcomes — per deployment and per ISO week,
//!   jobs succeeded, failed, rolled back, rollback failed and skipped, the
//!   success and rollback rates, job durations, and time to patch through
//!   Patchbay's own jobs ([`deployments`](mod@deployments) defines each).
//!
//! Definitions. A finding exists at `t` when `first_seen ≤ t`; it is open at
//! `t` unless `resolved_at ≤ t`; it is overdue at `t` when open and `due < t`;
//! it is excepted at `t` when an exception in force at `t` covers it (an
//! excepted finding is never counted overdue). Percentiles use the
//! nearest-rank method: p-th percentile = the ⌈p/100 · n⌉-th smallest value;
//! the median is the mean of the two middle values for an even count.
//!
//! Limits of recomputation: findings keep their first detection and last
//! resolution only, so a finding resolved and later reopened counts as open
//! in between; assets keep their last check-in only, so for a past date an
//! asset seen after it counts as seen at it.
//!
//! Each report names the controls it evidences ([`controls`]). [`Report`]
//! holds any one of them, by kind ([`KINDS`]), for whoever renders it
//! (`patchbay-render`).

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::exception::{Exception, FindingFacts, excepting};
use crate::risk::Tier;

pub mod deployments;
pub mod governance;
pub mod test_report;
pub use deployments::{DeploymentRecord, Deployments, JobRecord, deployments};

/// An asset in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetRecord {
    /// Name.
    pub name: String,
    /// Owner ("" when unknown).
    pub owner: String,
    /// Policy groups.
    pub groups: Vec<String>,
    /// Whether an agent reports it (false: imported, unmanaged).
    pub managed: bool,
    /// First known.
    pub created_at: Timestamp,
    /// Last check-in (managed) or import.
    pub last_seen: Option<Timestamp>,
}

/// A finding in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRecord {
    /// Index of its asset in [`History::assets`].
    pub asset: usize,
    /// Advisory id.
    pub advisory: String,
    /// CVE aliases.
    pub cves: Vec<String>,
    /// Binary package.
    pub package: String,
    /// Source package.
    pub source_package: String,
    /// Tier.
    pub tier: Tier,
    /// First detected.
    pub first_seen: Timestamp,
    /// Resolved (patched), if it was.
    pub resolved_at: Option<Timestamp>,
    /// SLA due date.
    pub due: Timestamp,
    /// Whether the advisory names a fixed version for it (a job can only
    /// close a finding that has a fix: the re-test targets those).
    pub fixable: bool,
}

/// Everything the reports read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Assets.
    pub assets: Vec<AssetRecord>,
    /// Findings.
    pub findings: Vec<FindingRecord>,
    /// Exceptions.
    pub exceptions: Vec<Exception>,
    /// Deployments with their jobs' outcomes.
    pub deployments: Vec<DeploymentRecord>,
}

/// A finding's state at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not yet detected.
    Unknown,
    /// Resolved by then.
    Patched,
    /// Open, excepted.
    Excepted,
    /// Open, past due.
    Overdue,
    /// Open, within SLA.
    WithinSla,
}

/// The exceptions in force at one instant, indexed by asset and group.
struct Active<'a> {
    by_asset: std::collections::HashMap<String, Vec<&'a Exception>>,
    by_group: std::collections::HashMap<&'a str, Vec<&'a Exception>>,
}

impl<'a> Active<'a> {
    fn new(h: &'a History, t: Timestamp) -> Self {
        let mut a = Active {
            by_asset: Default::default(),
            by_group: Default::default(),
        };
        for e in h.exceptions.iter().filter(|e| e.active_at(t)) {
            match &e.scope {
                crate::exception::Scope::Asset(n) => a
                    .by_asset
                    .entry(n.to_ascii_lowercase())
                    .or_default()
                    .push(e),
                crate::exception::Scope::Group(g) => {
                    a.by_group.entry(g.as_str()).or_default().push(e)
                }
            }
        }
        a
    }

    fn excepted(&self, h: &History, f: &FindingRecord) -> bool {
        if self.by_asset.is_empty() && self.by_group.is_empty() {
            return false;
        }
        let a = &h.assets[f.asset];
        let facts = FindingFacts {
            asset: &a.name,
            groups: &a.groups,
            advisory: &f.advisory,
            cves: &f.cves,
            package: &f.package,
            source_package: &f.source_package,
        };
        let asset_hit = self
            .by_asset
            .get(&a.name.to_ascii_lowercase())
            .is_some_and(|v| v.iter().any(|e| e.covers(&facts)));
        asset_hit
            || a.groups.iter().any(|g| {
                self.by_group
                    .get(g.as_str())
                    .is_some_and(|v| v.iter().any(|e| e.covers(&facts)))
            })
    }
}

fn state_with(active: &Active<'_>, h: &History, f: &FindingRecord, t: Timestamp) -> State {
    if f.first_seen > t {
        return State::Unknown;
    }
    if f.resolved_at.is_some_and(|r| r <= t) {
        return State::Patched;
    }
    if active.excepted(h, f) {
        return State::Excepted;
    }
    if f.due < t {
        State::Overdue
    } else {
        State::WithinSla
    }
}

/// The state of finding `f` at `t`.
pub fn state(h: &History, f: &FindingRecord, t: Timestamp) -> State {
    let active = Active::new(h, t);
    debug_assert_eq!(active.excepted(h, f), {
        let a = &h.assets[f.asset];
        excepting(
            &h.exceptions,
            &FindingFacts {
                asset: &a.name,
                groups: &a.groups,
                advisory: &f.advisory,
                cves: &f.cves,
                package: &f.package,
                source_package: &f.source_package,
            },
            t,
        )
        .is_some()
    });
    state_with(&active, h, f, t)
}

/// Counts of findings by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Open within SLA.
    pub within_sla: u64,
    /// Open past due.
    pub overdue: u64,
    /// Open, excepted.
    pub excepted: u64,
    /// Resolved by the date.
    pub patched: u64,
}

impl Counts {
    /// Counts one finding in state `s` ([`State::Unknown`]: not counted).
    pub fn add(&mut self, s: State) {
        match s {
            State::WithinSla => self.within_sla += 1,
            State::Overdue => self.overdue += 1,
            State::Excepted => self.excepted += 1,
            State::Patched => self.patched += 1,
            State::Unknown => {}
        }
    }
    /// Open findings (within SLA + overdue + excepted).
    pub fn open(&self) -> u64 {
        self.within_sla + self.overdue + self.excepted
    }
}

/// What an asset's data says at a date: each asset is in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetStatus {
    /// Fresh data and no open finding at all (excepted ones included).
    FullyPatched,
    /// Open findings, all within their SLA.
    MissingWithinSla,
    /// At least one finding past due and not excepted (stale data or not:
    /// the violation stands until data shows it fixed).
    Overdue,
    /// Open findings, every one covered by an exception.
    Excepted,
    /// No data to tell: an agent that has not checked in within
    /// [`crate::asset::DEFAULT_STALE_AFTER`] (or never), or an imported asset
    /// nothing was ever found on. Never counted as patched.
    Unknown,
}

impl AssetStatus {
    /// The status of an asset from its findings' counts and its data.
    pub fn of(a: &AssetRecord, c: &Counts, ever_assessed: bool, as_of: Timestamp) -> Self {
        let fresh = a.last_seen.is_some_and(|t| {
            t <= as_of && as_of.duration_since(t) < crate::asset::DEFAULT_STALE_AFTER
        });
        let known = if a.managed { fresh } else { ever_assessed };
        // An overdue finding is a known violation until data shows it fixed,
        // stale or not; short of that, stale data proves nothing.
        if c.overdue > 0 {
            AssetStatus::Overdue
        } else if !known {
            AssetStatus::Unknown
        } else if c.within_sla > 0 {
            AssetStatus::MissingWithinSla
        } else if c.excepted > 0 {
            AssetStatus::Excepted
        } else {
            AssetStatus::FullyPatched
        }
    }
}

/// Assets by [`AssetStatus`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// Fresh data, nothing open.
    pub fully_patched: u64,
    /// Open findings, all within SLA.
    pub missing_within_sla: u64,
    /// Something overdue.
    pub overdue: u64,
    /// Open findings, all excepted.
    pub excepted: u64,
    /// Stale or no data.
    pub unknown: u64,
}

impl StatusCounts {
    fn add(&mut self, s: AssetStatus) {
        match s {
            AssetStatus::FullyPatched => self.fully_patched += 1,
            AssetStatus::MissingWithinSla => self.missing_within_sla += 1,
            AssetStatus::Overdue => self.overdue += 1,
            AssetStatus::Excepted => self.excepted += 1,
            AssetStatus::Unknown => self.unknown += 1,
        }
    }
}

/// One line of the compliance report (an asset, owner or group).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ComplianceLine {
    /// Asset, owner or group name.
    pub name: String,
    /// Assets in it.
    pub assets: u64,
    /// Of which compliant in the SLA sense: no overdue, non-excepted finding
    /// (findings within their SLA are allowed; this is not "patched").
    pub compliant_assets: u64,
    /// `compliant_assets / assets` in percent (100 when there are none): SLA
    /// adherence of the assets.
    pub compliant_pct: f64,
    /// Assets by what their data says (fully patched, missing patches within
    /// SLA, overdue, excepted, unknown or stale).
    pub status: StatusCounts,
    /// `status.fully_patched / assets` in percent (0 when there are none).
    pub fully_patched_pct: f64,
    /// Findings by state.
    pub findings: Counts,
}

/// The compliance report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Compliance {
    /// As of.
    pub as_of: String,
    /// The whole fleet.
    pub total: ComplianceLine,
    /// Per owner ("(no owner)" for none).
    pub by_owner: Vec<ComplianceLine>,
    /// Per policy group.
    pub by_group: Vec<ComplianceLine>,
    /// Per asset.
    pub by_asset: Vec<ComplianceLine>,
}

fn pct(num: u64, den: u64) -> f64 {
    if den == 0 {
        100.0
    } else {
        (num as f64 * 1000.0 / den as f64).round() / 10.0
    }
}

/// The compliance report at `as_of`: per asset, its findings' states
/// ([`state`]) and whether anything was ever found on it by then, aggregated
/// by [`compliance_of`].
pub fn compliance(h: &History, as_of: Timestamp) -> Compliance {
    let n = h.assets.len();
    let mut per_asset = vec![Counts::default(); n];
    let active = Active::new(h, as_of);
    for f in &h.findings {
        per_asset[f.asset].add(state_with(&active, h, f, as_of));
    }
    let mut assessed = vec![false; n];
    for f in &h.findings {
        if f.first_seen <= as_of {
            assessed[f.asset] = true;
        }
    }
    compliance_of(&h.assets, &per_asset, &assessed, as_of)
}

/// The compliance report at `as_of` from what each asset's findings are at
/// that date — `per_asset[i]`, the counts of `assets[i]`'s findings by
/// [`State`], and `assessed[i]`, whether any finding of it was first seen by
/// then — however they were counted: [`compliance`] counts them from a
/// [`History`]; the server counts the report as of now from its projection
/// of open findings and the stored resolved ones (`patchbay_app::projection`).
/// The one aggregation into asset, owner, group and fleet lines.
///
/// # Panics
///
/// When `per_asset` or `assessed` is not as long as `assets`.
pub fn compliance_of(
    assets: &[AssetRecord],
    per_asset: &[Counts],
    assessed: &[bool],
    as_of: Timestamp,
) -> Compliance {
    let n = assets.len();
    assert!(
        per_asset.len() == n && assessed.len() == n,
        "one count and one assessed flag per asset"
    );
    let known: Vec<bool> = assets.iter().map(|a| a.created_at <= as_of).collect();
    let status: Vec<AssetStatus> = (0..n)
        .map(|i| AssetStatus::of(&assets[i], &per_asset[i], assessed[i], as_of))
        .collect();
    let line = |name: String, members: &mut dyn Iterator<Item = usize>| {
        let mut l = ComplianceLine {
            name,
            ..ComplianceLine::default()
        };
        for i in members {
            if !known[i] {
                continue;
            }
            l.assets += 1;
            let c = per_asset[i];
            if c.overdue == 0 {
                l.compliant_assets += 1;
            }
            l.status.add(status[i]);
            l.findings.within_sla += c.within_sla;
            l.findings.overdue += c.overdue;
            l.findings.excepted += c.excepted;
            l.findings.patched += c.patched;
        }
        l.compliant_pct = pct(l.compliant_assets, l.assets);
        l.fully_patched_pct = if l.assets == 0 {
            0.0
        } else {
            pct(l.status.fully_patched, l.assets)
        };
        l
    };
    let mut owners: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, a) in assets.iter().enumerate() {
        let o = if a.owner.is_empty() {
            "(no owner)"
        } else {
            a.owner.as_str()
        };
        owners.entry(o).or_default().push(i);
        for g in &a.groups {
            groups.entry(g.as_str()).or_default().push(i);
        }
    }
    Compliance {
        as_of: as_of.to_string(),
        total: line("fleet".into(), &mut (0..n)),
        by_owner: owners
            .into_iter()
            .map(|(o, m)| line(o.to_string(), &mut m.into_iter()))
            .collect(),
        by_group: groups
            .into_iter()
            .map(|(g, m)| line(g.to_string(), &mut m.into_iter()))
            .collect(),
        by_asset: (0..n)
            .filter(|&i| known[i])
            .map(|i| line(assets[i].name.clone(), &mut std::iter::once(i)))
            .collect(),
    }
}

/// Summary statistics of durations, in hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stats {
    /// How many.
    pub count: u64,
    /// Mean (hours).
    pub mean_hours: f64,
    /// Median (hours).
    pub median_hours: f64,
    /// 90th percentile, nearest rank (hours).
    pub p90_hours: f64,
}

/// Statistics of `values` (seconds); all zero when empty.
pub fn stats(values: &mut [i64]) -> Stats {
    if values.is_empty() {
        return Stats::default();
    }
    values.sort_unstable();
    let n = values.len();
    let h = |s: f64| (s / 3600.0 * 100.0).round() / 100.0;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let median = if n % 2 == 1 {
        values[n / 2] as f64
    } else {
        (values[n / 2 - 1] as f64 + values[n / 2] as f64) / 2.0
    };
    let rank = (0.9 * n as f64).ceil() as usize;
    let p90 = values[rank.clamp(1, n) - 1] as f64;
    Stats {
        count: n as u64,
        mean_hours: h(mean),
        median_hours: h(median),
        p90_hours: h(p90),
    }
}

/// Time to patch per tier.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TimeToPatch {
    /// As of.
    pub as_of: String,
    /// Per tier (P0…P4), over findings resolved by `as_of`.
    pub by_tier: BTreeMap<String, Stats>,
    /// All tiers.
    pub all: Stats,
}

/// Time to patch at `as_of`.
pub fn time_to_patch(h: &History, as_of: Timestamp) -> TimeToPatch {
    let mut per: [Vec<i64>; 5] = Default::default();
    let mut all = Vec::new();
    for f in &h.findings {
        if let Some(r) = f.resolved_at.filter(|r| *r <= as_of && f.first_seen <= *r) {
            let secs = r.duration_since(f.first_seen).as_secs();
            per[f.tier.index()].push(secs);
            all.push(secs);
        }
    }
    TimeToPatch {
        as_of: as_of.to_string(),
        by_tier: Tier::ALL
            .iter()
            .zip(per.iter_mut())
            .map(|(t, v)| (t.to_string(), stats(v)))
            .collect(),
        all: stats(&mut all),
    }
}

/// SLA adherence of one tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Adherence {
    /// Findings resolved by `as_of`.
    pub resolved: u64,
    /// Of which on or before their due date.
    pub resolved_in_sla: u64,
    /// `resolved_in_sla / resolved` in percent (100 when none).
    pub resolved_in_sla_pct: f64,
    /// Open (non-excepted) findings at `as_of`.
    pub open: u64,
    /// Of which overdue.
    pub open_overdue: u64,
    /// Open and excepted.
    pub excepted: u64,
}

/// SLA adherence per tier.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlaAdherence {
    /// As of.
    pub as_of: String,
    /// Per tier.
    pub by_tier: BTreeMap<String, Adherence>,
    /// All tiers.
    pub all: Adherence,
}

/// SLA adherence at `as_of`.
pub fn sla_adherence(h: &History, as_of: Timestamp) -> SlaAdherence {
    let mut per = [Adherence::default(); 5];
    let mut all = Adherence::default();
    let active = Active::new(h, as_of);
    for f in &h.findings {
        let s = state_with(&active, h, f, as_of);
        for a in [&mut per[f.tier.index()], &mut all] {
            match s {
                State::Patched => {
                    a.resolved += 1;
                    if f.resolved_at.is_some_and(|r| r <= f.due) {
                        a.resolved_in_sla += 1;
                    }
                }
                State::Overdue => {
                    a.open += 1;
                    a.open_overdue += 1;
                }
                State::WithinSla => a.open += 1,
                State::Excepted => a.excepted += 1,
                State::Unknown => {}
            }
        }
    }
    for a in per.iter_mut().chain(std::iter::once(&mut all)) {
        a.resolved_in_sla_pct = pct(a.resolved_in_sla, a.resolved);
    }
    SlaAdherence {
        as_of: as_of.to_string(),
        by_tier: Tier::ALL
            .iter()
            .zip(per)
            .map(|(t, a)| (t.to_string(), a))
            .collect(),
        all,
    }
}

/// Coverage of the inventory.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Coverage {
    /// As of.
    pub as_of: String,
    /// Assets known by `as_of` (managed and unmanaged).
    pub known: u64,
    /// Managed (agent) assets.
    pub managed: u64,
    /// Unmanaged (imported) assets.
    pub unmanaged: u64,
    /// Assets seen in the 24 h before `as_of`.
    pub seen_24h: u64,
    /// `seen_24h / known` in percent.
    pub seen_24h_pct: f64,
    /// Managed assets not seen in 24 h (stale), by name.
    pub stale: Vec<String>,
    /// Machines discovery saw that no asset stands for (shadow candidates
    /// not dismissed). Only in a report as of now: each re-scan replaces
    /// its source's observations, so the past is not kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadows: Option<u64>,
    /// Ghost assets (nothing attested them for the ghost threshold), by
    /// name; as of now only, like `shadows`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ghosts: Option<Vec<String>>,
    /// `seen_24h / (known + shadows)` in percent: a fleet with unmanaged
    /// machines is not fully covered, whatever its known assets do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen_24h_pct_of_all: Option<f64>,
}

impl Coverage {
    /// Adds what discovery sees now: `shadows` machines without a record
    /// and the `ghosts` records nothing attests.
    pub fn with_discovery(mut self, shadows: u64, ghosts: Vec<String>) -> Self {
        self.seen_24h_pct_of_all = Some(pct(self.seen_24h, self.known + shadows));
        self.shadows = Some(shadows);
        self.ghosts = Some(ghosts);
        self
    }
}

/// Coverage at `as_of`.
pub fn coverage(h: &History, as_of: Timestamp) -> Coverage {
    let since = as_of - SignedDuration::from_hours(24);
    let mut c = Coverage {
        as_of: as_of.to_string(),
        ..Coverage::default()
    };
    for a in h.assets.iter().filter(|a| a.created_at <= as_of) {
        c.known += 1;
        if a.managed {
            c.managed += 1;
        } else {
            c.unmanaged += 1;
        }
        if a.last_seen.is_some_and(|t| t >= since) {
            c.seen_24h += 1;
        } else if a.managed {
            c.stale.push(a.name.clone());
        }
    }
    c.seen_24h_pct = pct(c.seen_24h, c.known);
    c
}

/// The report kinds, as named in the API and the evidence bundle.
pub const KINDS: [&str; 5] = ["compliance", "ttp", "sla", "coverage", "deployments"];

/// One report of any kind, as data (serialized as the report itself).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Report {
    /// `compliance`.
    Compliance(Compliance),
    /// `ttp`.
    TimeToPatch(TimeToPatch),
    /// `sla`.
    SlaAdherence(SlaAdherence),
    /// `coverage`.
    Coverage(Coverage),
    /// `deployments`.
    Deployments(Deployments),
}

impl Report {
    /// The report of `kind` (one of [`KINDS`]) at `as_of`; `None` for an
    /// unknown kind.
    pub fn compute(kind: &str, h: &History, as_of: Timestamp) -> Option<Report> {
        Some(match kind {
            "compliance" => Report::Compliance(compliance(h, as_of)),
            "ttp" => Report::TimeToPatch(time_to_patch(h, as_of)),
            "sla" => Report::SlaAdherence(sla_adherence(h, as_of)),
            "coverage" => Report::Coverage(coverage(h, as_of)),
            "deployments" => Report::Deployments(deployments(h, as_of)),
            _ => return None,
        })
    }

    /// Its kind, one of [`KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Report::Compliance(_) => "compliance",
            Report::TimeToPatch(_) => "ttp",
            Report::SlaAdherence(_) => "sla",
            Report::Coverage(_) => "coverage",
            Report::Deployments(_) => "deployments",
        }
    }

    /// The controls it evidences.
    pub fn controls(&self) -> &'static [Control] {
        controls(self.kind())
    }
}

/// A control a report section evidences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Control {
    /// Framework.
    pub framework: &'static str,
    /// Control id.
    pub id: &'static str,
    /// What it asks, in short.
    pub title: &'static str,
}

const fn c(framework: &'static str, id: &'static str, title: &'static str) -> Control {
    Control {
        framework,
        id,
        title,
    }
}

/// The controls each report evidences (`compliance`, `ttp`, `sla`,
/// `coverage`, `deployments`, `exceptions`, `audit`, `changes`).
pub fn controls(report: &str) -> &'static [Control] {
    const SI2: Control = c("NIST SP 800-53 Rev. 5", "SI-2", "Flaw remediation");
    const RA5: Control = c(
        "NIST SP 800-53 Rev. 5",
        "RA-5",
        "Vulnerability monitoring and scanning",
    );
    const CIS71: Control = c(
        "CIS Controls v8",
        "7.1",
        "Establish and maintain a vulnerability management process",
    );
    const CIS72: Control = c(
        "CIS Controls v8",
        "7.2",
        "Establish and maintain a remediation process",
    );
    const CIS73: Control = c(
        "CIS Controls v8",
        "7.3",
        "Perform automated operating system patch management",
    );
    const CIS74: Control = c(
        "CIS Controls v8",
        "7.4",
        "Perform automated application patch management",
    );
    const CIS75: Control = c(
        "CIS Controls v8",
        "7.5",
        "Perform automated vulnerability scans of internal enterprise assets",
    );
    const CIS77: Control = c(
        "CIS Controls v8",
        "7.7",
        "Remediate detected vulnerabilities",
    );
    const ISO88: Control = c(
        "ISO/IEC 27001:2022",
        "A.8.8",
        "Management of technical vulnerabilities",
    );
    const ISO832: Control = c("ISO/IEC 27001:2022", "A.8.32", "Change management");
    const PCI: Control = c(
        "PCI DSS v4.0",
        "6.3.3",
        "Security patches installed within one month of release (critical)",
    );
    const CC71: Control = c(
        "SOC 2 (TSC 2017)",
        "CC7.1",
        "Detection and monitoring of configuration changes and vulnerabilities",
    );
    const CC81: Control = c(
        "SOC 2 (TSC 2017)",
        "CC8.1",
        "Change management: authorize, test, approve and implement changes",
    );
    const BOD: Control = c(
        "CISA BOD 22-01",
        "KEV due dates",
        "Remediate known exploited vulnerabilities by the KEV due date",
    );
    match report {
        "compliance" => &[SI2, RA5, CIS77, ISO88, PCI, CC71, BOD],
        "ttp" => &[SI2, CIS72, CIS73, CIS74, ISO88, PCI],
        "sla" => &[SI2, CIS72, CIS77, ISO88, PCI, BOD],
        "coverage" => &[RA5, CIS71, CIS75, ISO88, CC71],
        "deployments" => &[SI2, CIS73, CIS74, CIS77, ISO832, CC81],
        "exceptions" => &[SI2, CIS72, ISO88, CC71],
        "audit" => &[ISO832, CC81, CC71],
        "changes" => &[ISO832, CC81, SI2],
        "governance" => &[SI2, CIS72, CIS77, ISO88, ISO832, CC81, PCI, BOD],
        _ => &[],
    }
}
