//! Schedule planning: place a deployment's assets into their maintenance
//! windows, ring by ring, and forecast which findings will miss their SLA.
//!
//! A pure function over values: [`plan`] takes the assets (each with its ring,
//! windows, blackouts and findings with SLA due dates), the rings with their
//! soak times, the windows, the blackouts and `now`, and returns when each
//! asset is forecast to be patched and which findings are **SLA at risk**, with
//! the reasons.
//!
//! # Rules
//! - **Rings in order.** Ring 0 may start at `now`. Ring *r* + 1 may start only
//!   once every planned asset of ring *r* is done (its planned start plus the
//!   job estimate) and ring *r*'s soak time has passed. A ring with no planned
//!   asset does not delay the next one.
//! - **Earliest eligible window.** An asset is patched at the earliest instant
//!   `t ≥` its ring's start that lies in one of its windows' occurrences and
//!   leaves the window's cutoff (`start ≤ t ≤ end − cutoff`,
//!   [`Window::accepts_job_at`]), and such that the job `[t, t + estimate)`
//!   does not overlap any of its blackouts.
//! - **Blackouts override windows.** A blackout is ignored only when the
//!   deployment is out-of-band **and** the blackout carries a recorded
//!   approval; the plan then names the blackouts the asset enters.
//! - **Horizon.** Nothing is planned at or after `until`; an asset without an
//!   eligible instant before it is *unplanned* (with the reason) and does not
//!   hold up later rings.
//! - **SLA at risk** exactly when the finding's due date is before the
//!   asset's planned time, or the asset is unplanned. The reasons say why:
//!   already overdue, no window before the due date, a blackout, the ring
//!   soak (the earlier rings plus soak times), or not in any ring.

use jiff::{SignedDuration, Timestamp};

use crate::window::{Occurrence, Window};

/// A change freeze: nothing may be deployed in `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blackout {
    /// Identifier shown in reasons (e.g. `BLK-2026-12-001` or a name).
    pub id: String,
    /// When the freeze starts.
    pub start: Timestamp,
    /// When it ends (exclusive).
    pub end: Timestamp,
    /// Why (e.g. "year-end freeze").
    pub reason: String,
    /// Who owns it.
    pub owner: String,
    /// Who approved that this deployment may enter the blackout; honoured
    /// only for an out-of-band deployment ([`PlanOptions::out_of_band`]).
    pub approved_by: Option<String>,
}

/// A ring of the deployment, in rollout order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingSpec {
    /// Ring name (`ring0-staging`).
    pub name: String,
    /// How long to wait after the ring's last job before the next ring starts.
    pub soak: SignedDuration,
}

/// An open finding on an asset, with its SLA due date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFinding {
    /// Identifier (e.g. `CVE-2024-1234 openssl`).
    pub id: String,
    /// The SLA due date.
    pub due: Timestamp,
}

/// One asset to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanAsset {
    /// Asset name.
    pub name: String,
    /// Index into the rings, or `None` when the asset is in no ring.
    pub ring: Option<usize>,
    /// Indices into the windows.
    pub windows: Vec<usize>,
    /// Indices into the blackouts that apply to this asset.
    pub blackouts: Vec<usize>,
    /// Its open findings.
    pub findings: Vec<PlanFinding>,
}

/// Options of one planning run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// The planning instant; nothing is planned before it.
    pub now: Timestamp,
    /// The horizon; nothing is planned at or after it.
    pub until: Timestamp,
    /// How long one asset's job is expected to take: a job may not run into
    /// a blackout, and a ring is done when its last job is.
    pub job_estimate: SignedDuration,
    /// An out-of-band deployment: approved blackouts are entered.
    pub out_of_band: bool,
}

/// Why an asset could not be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unplanned {
    /// The asset is in no ring.
    NoRing,
    /// The asset has no window.
    NoWindow,
    /// No eligible instant before the horizon.
    NoSlotBeforeHorizon,
}

/// Where one asset was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetPlan {
    /// Index of the asset in the input.
    pub asset: usize,
    /// The planned start of its job, or why there is none.
    pub planned: Result<Slot, Unplanned>,
}

/// A planned job start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// When the job starts.
    pub at: Timestamp,
    /// Index of the window.
    pub window: usize,
    /// The window occurrence it starts in.
    pub occurrence: Occurrence,
    /// Blackouts (indices) the job enters under an out-of-band approval.
    pub enters_blackouts: Vec<usize>,
}

/// One ring's forecast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingPlan {
    /// Index into the rings.
    pub ring: usize,
    /// The earliest instant its jobs may start (previous rings + soak).
    pub earliest: Timestamp,
    /// First planned job start.
    pub first: Option<Timestamp>,
    /// Last planned job start.
    pub last: Option<Timestamp>,
    /// When the next ring may start: last job done plus soak (`earliest` when
    /// nothing was planned).
    pub next_ring_earliest: Timestamp,
    /// Assets in the ring.
    pub assets: usize,
    /// Of which unplanned.
    pub unplanned: usize,
}

/// Why a finding's SLA is at risk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RiskReason {
    /// The due date has already passed.
    Overdue,
    /// None of the asset's windows has an eligible instant between now and
    /// the due date, whatever the rings and blackouts.
    NoWindowBeforeDue,
    /// Without these blackouts (indices) the asset would be patched in time.
    Blackout(Vec<usize>),
    /// The earlier rings and their soak times hold the asset's ring until this
    /// instant.
    RingSoak {
        /// Index of the asset's ring.
        ring: usize,
        /// When the ring may start.
        earliest: Timestamp,
    },
    /// The asset is in no ring, so it is not rolled out.
    NotInRing,
}

/// A finding whose SLA due date falls before its planned patch time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtRisk {
    /// Index of the asset.
    pub asset: usize,
    /// Index of the finding in the asset's findings.
    pub finding: usize,
    /// The due date.
    pub due: Timestamp,
    /// The planned patch time, if any.
    pub planned: Option<Timestamp>,
    /// Why (at least one).
    pub reasons: Vec<RiskReason>,
}

/// The result of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Per ring, in ring order.
    pub rings: Vec<RingPlan>,
    /// Per asset, in input order.
    pub assets: Vec<AssetPlan>,
    /// Findings at risk, by asset then finding order.
    pub at_risk: Vec<AtRisk>,
}

/// The windows' occurrences between `now` and the horizon, computed once.
struct Expanded<'a> {
    windows: &'a [Window],
    occ: Vec<Vec<Occurrence>>,
    /// `last_job_start` of each occurrence (monotonic per window).
    last: Vec<Vec<Timestamp>>,
}

impl<'a> Expanded<'a> {
    fn new(windows: &'a [Window], opts: &PlanOptions) -> Self {
        let occ: Vec<Vec<Occurrence>> = windows
            .iter()
            .map(|w| w.occurrences_between(opts.now, opts.until))
            .collect();
        let last = windows
            .iter()
            .zip(&occ)
            .map(|(w, os)| os.iter().map(|o| w.last_job_start(o)).collect())
            .collect();
        Expanded { windows, occ, last }
    }
}

/// Which blackouts are in force for a search.
#[derive(Clone, Copy)]
enum Freeze {
    /// The asset's blackouts, minus approved ones for out-of-band work.
    Apply,
    /// Ignore blackouts (to explain a risk).
    Ignore,
}

struct Search<'a> {
    ex: &'a Expanded<'a>,
    blackouts: &'a [Blackout],
    opts: &'a PlanOptions,
}

impl Search<'_> {
    fn waived(&self, b: &Blackout) -> bool {
        self.opts.out_of_band && b.approved_by.is_some()
    }

    /// The earliest eligible slot at or after `t0`, before `limit`.
    fn earliest(
        &self,
        asset: &PlanAsset,
        t0: Timestamp,
        limit: Timestamp,
        freeze: Freeze,
    ) -> Option<Slot> {
        let est = self.opts.job_estimate;
        let mut best: Option<Slot> = None;
        for &w in &asset.windows {
            let (Some(occs), Some(lasts)) = (self.ex.occ.get(w), self.ex.last.get(w)) else {
                continue;
            };
            let first = lasts.partition_point(|&l| l < t0);
            for (occ, &hi) in occs[first..].iter().zip(&lasts[first..]) {
                let lo = occ.start.max(t0);
                if lo >= limit || best.as_ref().is_some_and(|b| b.at <= lo) {
                    break;
                }
                let at = match freeze {
                    Freeze::Ignore => Some(lo),
                    Freeze::Apply => self.clear_of_blackouts(asset, lo, hi, est),
                };
                if let Some(at) = at.filter(|&at| at < limit) {
                    if best.as_ref().is_none_or(|b| at < b.at) {
                        let enters = if self.opts.out_of_band {
                            self.entered(asset, at, est)
                        } else {
                            Vec::new()
                        };
                        best = Some(Slot {
                            at,
                            window: w,
                            occurrence: *occ,
                            enters_blackouts: enters,
                        });
                    }
                    break;
                }
            }
        }
        debug_assert!(
            best.as_ref()
                .is_none_or(|b| { self.ex.windows[b.window].accepts_job_at(&b.occurrence, b.at) })
        );
        best
    }

    /// The earliest `t` in `[lo, hi]` with `[t, t + est)` clear of every
    /// blackout in force.
    fn clear_of_blackouts(
        &self,
        asset: &PlanAsset,
        lo: Timestamp,
        hi: Timestamp,
        est: SignedDuration,
    ) -> Option<Timestamp> {
        let mut t = lo;
        // Each pass moves `t` past at least one blackout, so at most n passes.
        for _ in 0..=asset.blackouts.len() {
            let mut moved = false;
            for &b in &asset.blackouts {
                let Some(b) = self.blackouts.get(b) else {
                    continue;
                };
                if self.waived(b) {
                    continue;
                }
                if overlaps(t, est, b) {
                    t = b.end;
                    moved = true;
                }
            }
            if t > hi {
                return None;
            }
            if !moved {
                return Some(t);
            }
        }
        None
    }

    fn entered(&self, asset: &PlanAsset, at: Timestamp, est: SignedDuration) -> Vec<usize> {
        asset
            .blackouts
            .iter()
            .copied()
            .filter(|&i| {
                self.blackouts
                    .get(i)
                    .is_some_and(|b| self.waived(b) && overlaps(at, est, b))
            })
            .collect()
    }
}

/// Whether a job `[t, t + est)` (a single instant when `est` is zero) overlaps
/// the blackout `[start, end)`.
fn overlaps(t: Timestamp, est: SignedDuration, b: &Blackout) -> bool {
    let end = t.checked_add(est).unwrap_or(Timestamp::MAX);
    t < b.end && (end > b.start || (est.is_zero() && t >= b.start))
}

/// Plans the assets; see the module documentation for the rules.
pub fn plan(
    rings: &[RingSpec],
    windows: &[Window],
    blackouts: &[Blackout],
    assets: &[PlanAsset],
    opts: &PlanOptions,
) -> Plan {
    let ex = Expanded::new(windows, opts);
    let search = Search {
        ex: &ex,
        blackouts,
        opts,
    };
    let mut by_ring: Vec<Vec<usize>> = vec![Vec::new(); rings.len()];
    let mut out: Vec<AssetPlan> = (0..assets.len())
        .map(|i| AssetPlan {
            asset: i,
            planned: Err(Unplanned::NoRing),
        })
        .collect();
    for (i, a) in assets.iter().enumerate() {
        if let Some(r) = a.ring.filter(|&r| r < rings.len()) {
            by_ring[r].push(i);
        }
    }

    let mut ring_plans = Vec::with_capacity(rings.len());
    let mut earliest = opts.now;
    for (r, members) in by_ring.iter().enumerate() {
        let mut first: Option<Timestamp> = None;
        let mut last: Option<Timestamp> = None;
        let mut unplanned = 0;
        for &i in members {
            let a = &assets[i];
            let planned = if a.windows.is_empty() {
                Err(Unplanned::NoWindow)
            } else {
                search
                    .earliest(a, earliest, opts.until, Freeze::Apply)
                    .ok_or(Unplanned::NoSlotBeforeHorizon)
            };
            match &planned {
                Ok(s) => {
                    first = Some(first.map_or(s.at, |f| f.min(s.at)));
                    last = Some(last.map_or(s.at, |l| l.max(s.at)));
                }
                Err(_) => unplanned += 1,
            }
            out[i].planned = planned;
        }
        let next = match last {
            Some(l) => l
                .checked_add(opts.job_estimate)
                .and_then(|t| t.checked_add(rings[r].soak))
                .unwrap_or(Timestamp::MAX)
                .max(earliest),
            None => earliest,
        };
        ring_plans.push(RingPlan {
            ring: r,
            earliest,
            first,
            last,
            next_ring_earliest: next,
            assets: members.len(),
            unplanned,
        });
        earliest = next;
    }

    let mut at_risk = Vec::new();
    for (i, a) in assets.iter().enumerate() {
        let planned = out[i].planned.as_ref().ok().map(|s| s.at);
        let late: Vec<usize> = a
            .findings
            .iter()
            .enumerate()
            .filter(|(_, f)| planned.is_none_or(|p| f.due < p))
            .map(|(k, _)| k)
            .collect();
        if late.is_empty() {
            continue;
        }
        let ring = a.ring.filter(|&r| r < rings.len());
        let ring_start = ring.map(|r| ring_plans[r].earliest);
        // What the asset would get without the rings, without the blackouts,
        // and without either: the reasons are the constraints that matter.
        let plain = search.earliest(a, opts.now, opts.until, Freeze::Ignore);
        let no_ring = search.earliest(a, opts.now, opts.until, Freeze::Apply);
        let no_freeze =
            ring_start.and_then(|t0| search.earliest(a, t0, opts.until, Freeze::Ignore));
        for k in late {
            let due = a.findings[k].due;
            let in_time = |s: &Option<Slot>| s.as_ref().is_some_and(|s| s.at <= due);
            let mut reasons = Vec::new();
            if due < opts.now {
                reasons.push(RiskReason::Overdue);
            } else if ring.is_none() {
                reasons.push(RiskReason::NotInRing);
            } else if !in_time(&plain) {
                reasons.push(RiskReason::NoWindowBeforeDue);
            } else {
                let frozen = !in_time(&no_ring);
                let soaked = !in_time(&no_freeze);
                if frozen || !soaked {
                    reasons.push(RiskReason::Blackout(blocking(a, blackouts, opts, due)));
                }
                if let (true, Some(r), Some(t)) = (soaked || !frozen, ring, ring_start) {
                    reasons.push(RiskReason::RingSoak {
                        ring: r,
                        earliest: t,
                    });
                }
            }
            if ring.is_none() && due < opts.now {
                reasons.push(RiskReason::NotInRing);
            }
            at_risk.push(AtRisk {
                asset: i,
                finding: k,
                due,
                planned,
                reasons,
            });
        }
    }

    Plan {
        rings: ring_plans,
        assets: out,
        at_risk,
    }
}

/// The asset's blackouts in force that overlap `[now, due]`.
fn blocking(
    a: &PlanAsset,
    blackouts: &[Blackout],
    opts: &PlanOptions,
    due: Timestamp,
) -> Vec<usize> {
    a.blackouts
        .iter()
        .copied()
        .filter(|&i| {
            blackouts.get(i).is_some_and(|b| {
                !(opts.out_of_band && b.approved_by.is_some()) && b.start <= due && b.end > opts.now
            })
        })
        .collect()
}

/// When a job may **start** on an asset, for a server-driven rollout: every
/// occurrence of `windows` that is open between `from` and `until`, from its
/// start to its last job start ([`Window::last_job_start`]: the cutoff
/// leaves time to finish), minus every start `t` at which the job
/// `[t, t + job_estimate)` would overlap one of `blackouts`. Sorted,
/// non-overlapping, each `[opens, closes)` non-empty. The ends are
/// exclusive, so the very last instant a window or a blackout would allow is
/// given up: a job never starts past a cutoff nor runs into a freeze.
pub fn job_slots(
    windows: &[&Window],
    blackouts: &[&Blackout],
    from: Timestamp,
    until: Timestamp,
    job_estimate: SignedDuration,
) -> Vec<crate::rollout::Slot> {
    let mut spans: Vec<(Timestamp, Timestamp)> = Vec::new();
    for w in windows {
        for occ in w.occurrences_between(from, until) {
            let opens = occ.start.max(from);
            let closes = w.last_job_start(&occ).min(until);
            if opens < closes {
                spans.push((opens, closes));
            }
        }
    }
    let spans = spans
        .into_iter()
        .map(|(opens, closes)| crate::rollout::Slot { opens, closes })
        .collect();
    without_blackouts(spans, blackouts, job_estimate)
}

/// `spans` minus every start `t` at which a job `[t, t + job_estimate]`
/// would touch one of `blackouts`; sorted and merged (see [`job_slots`]).
pub fn without_blackouts(
    spans: Vec<crate::rollout::Slot>,
    blackouts: &[&Blackout],
    job_estimate: SignedDuration,
) -> Vec<crate::rollout::Slot> {
    let mut spans: Vec<(Timestamp, Timestamp)> = spans
        .into_iter()
        .filter(|s| s.opens < s.closes)
        .map(|s| (s.opens, s.closes))
        .collect();
    // Blackouts: no start in [start − estimate, end).
    for b in blackouts {
        let no_from = b.start.checked_sub(job_estimate).unwrap_or(b.start);
        let no_until = b.end;
        spans = spans
            .into_iter()
            .flat_map(|(o, c)| {
                if c <= no_from || o >= no_until {
                    return vec![(o, c)];
                }
                let mut v = Vec::new();
                if o < no_from {
                    v.push((o, no_from));
                }
                if no_until < c {
                    v.push((no_until, c));
                }
                v
            })
            .collect();
    }
    spans.sort();
    let mut out: Vec<crate::rollout::Slot> = Vec::new();
    for (o, c) in spans {
        match out.last_mut() {
            Some(last) if o <= last.closes => last.closes = last.closes.max(c),
            _ => out.push(crate::rollout::Slot {
                opens: o,
                closes: c,
            }),
        }
    }
    out
}
