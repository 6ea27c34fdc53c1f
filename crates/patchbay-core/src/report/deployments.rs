//! The `deployments` report: rollout outcomes per deployment and per ISO
//! week, and time to patch through Patchbay's own jobs, as of a date.
//!
//! Input: [`DeploymentRecord`]s in the [`History`] — per deployment its jobs,
//! one per host, with the job's state as the rollout engine stored it and the
//! times the agent-job table keeps (lease, result, rollback result).
//!
//! # Definitions
//!
//! A job's **outcome at `t`** (mutually exclusive):
//! - no outcome yet (`in_progress`): not leased, or leased and neither
//!   reported nor timed out by `t` (its `finished_at` is after `t`);
//! - `skipped`: never run (host offline, window closed, halted, aborted);
//! - after the apply outcome (`finished_at ≤ t`) and before the rollback
//!   result (`rollback_at`): `succeeded` or `failed`, by whether its apply
//!   failed (a reported failure or refusal, or no report by the deadline);
//! - from `rollback_at ≤ t`: `rolled_back` or `rollback_failed`.
//!
//! A job **ran** when it has an outcome other than `skipped`. Rates, in
//! percent to one decimal, `null` when the denominator is 0:
//! - `success_pct` = succeeded ÷ ran (a job rolled back after succeeding is
//!   not a success: the change is not in place);
//! - `rollback_pct` = rolled back ÷ ran;
//! - `failures_rolled_back_pct` = failed jobs rolled back ÷ `failures`, where
//!   `failures` counts every job whose apply failed by `t`, whatever came
//!   after (failed + rolled back or rollback failed after a failure).
//!
//! **Job duration**: lease → stored result of the apply job, over jobs whose
//! result was stored by `t` (a job that timed out has no result and no
//! duration); median and p90 in seconds (nearest rank, as the other reports).
//!
//! **Over time**: ISO weeks (`2026-W49`, Monday to Sunday, UTC). A job falls
//! in the week of its apply outcome (`finished_at`; skipped jobs: when they
//! were skipped); its rollback, if one ended by `t`, is counted in that same
//! week, so each job is counted once, where it finished.
//!
//! **Time to patch through a job**: a finding counts as patched by a
//! deployment's job when the job's host is the finding's asset, the job pins
//! the finding's (binary) package, the job's outcome at `t` is `succeeded`,
//! the finding was detected before the job's result (`first_seen ≤
//! result_at`) and was resolved after the job was leased and by `t` (the
//! inventory the agent sent after the job, which had the pinned version,
//! closed it). Its time to patch is `result_at − first_seen`: detection to the
//! job's success. A job that was later rolled back fixes nothing.
//!
//! **Re-test** ([`retest`], issue 18, item 3): a job's **targeted**
//! findings are those of its host whose binary package it pins and whose
//! advisory names a fixed version (nothing a job installs closes one that
//! has none), detected by the job's lease and still open then (`first_seen ≤ leased_at`, not
//! resolved before it; a job not leased yet: open at `t`). A targeted CVE
//! (the advisory id when it names none) is **closed** at `t` when every
//! targeted finding naming it was resolved by `t` — the agent sends its new
//! inventory with the job's result, and the check-in re-assesses the host in
//! the same transaction. A job whose outcome is `succeeded` while a targeted
//! CVE is still open is **not remediated**: counted in `not_remediated`, not
//! in `succeeded` (so not in `success_pct`), though it `ran`.
//!
//! The **state** shown is the stored one when the rollout was last written by
//! `t`; before that, `running` once a job was leased, else `draft` (past
//! states in between are not kept).

use super::{History, Stats, stats};
use crate::rollout::JobState;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One host's job in a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// The host (asset name).
    pub host: String,
    /// Packages the job pins (binary package names).
    pub packages: Vec<String>,
    /// The job's state as last stored by the rollout engine.
    pub state: JobState,
    /// Whether its apply failed (also when rolled back afterwards).
    pub failed: bool,
    /// When the apply job was leased (none: never).
    pub leased_at: Option<Timestamp>,
    /// When the agent's result of the apply job was stored (none: no result,
    /// e.g. it timed out).
    pub result_at: Option<Timestamp>,
    /// When its apply outcome was taken (result, timeout) or it was skipped.
    pub finished_at: Option<Timestamp>,
    /// When its rollback ended (rolled back or rollback failed).
    pub rollback_at: Option<Timestamp>,
}

/// A deployment and its jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRecord {
    /// `DEP-…`.
    pub id: String,
    /// `oob`, `baseline`, …
    pub kind: String,
    /// The stored state (`running`, `completed`, `halted`, …; the
    /// deployment's status when it has no rollout).
    pub state: String,
    /// Created.
    pub created_at: Timestamp,
    /// When its state was last written (none: it has no rollout).
    pub state_at: Option<Timestamp>,
    /// Jobs, one per host.
    pub jobs: Vec<JobRecord>,
}

/// A job's outcome at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No outcome yet (pending or in flight).
    InProgress,
    /// Not run.
    Skipped,
    /// Applied and verified (and not rolled back).
    Succeeded,
    /// Apply failed; not (yet) rolled back.
    Failed,
    /// Rolled back.
    RolledBack,
    /// The rollback failed.
    RollbackFailed,
}

/// The outcome of job `j` at `t` (see the module docs).
pub fn outcome(j: &JobRecord, t: Timestamp) -> Outcome {
    if j.finished_at.is_none_or(|f| f > t) || j.state == JobState::Rebooting {
        return Outcome::InProgress;
    }
    if j.state == JobState::Skipped {
        return Outcome::Skipped;
    }
    if j.rollback_at.is_some_and(|r| r <= t) {
        match j.state {
            JobState::RolledBack => return Outcome::RolledBack,
            JobState::RollbackFailed => return Outcome::RollbackFailed,
            _ => {}
        }
    }
    if j.failed {
        Outcome::Failed
    } else {
        Outcome::Succeeded
    }
}

/// Job durations (lease → result), in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Durations {
    /// Jobs with a stored result.
    pub count: u64,
    /// Median (seconds; the mean of the two middle values for an even count).
    pub median_secs: f64,
    /// 90th percentile, nearest rank (seconds).
    pub p90_secs: f64,
}

fn durations(v: &mut [i64]) -> Durations {
    if v.is_empty() {
        return Durations::default();
    }
    v.sort_unstable();
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0
    };
    let rank = (0.9 * n as f64).ceil() as usize;
    Durations {
        count: n as u64,
        median_secs: median,
        p90_secs: v[rank.clamp(1, n) - 1] as f64,
    }
}

/// Job outcomes of a set of jobs, with their rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcomes {
    /// Jobs (hosts) in the set.
    pub jobs: u64,
    /// Jobs that ran (an outcome other than skipped).
    pub ran: u64,
    /// Succeeded, and every finding it targeted closed.
    pub succeeded: u64,
    /// Reported success, but a targeted finding is still open (see the
    /// module docs): not a success.
    pub not_remediated: u64,
    /// Failed, not rolled back (also while a rollback is out).
    pub failed: u64,
    /// Rolled back.
    pub rolled_back: u64,
    /// Rollback failed: a human must look.
    pub rollback_failed: u64,
    /// Skipped.
    pub skipped: u64,
    /// No outcome yet.
    pub in_progress: u64,
    /// Jobs whose apply failed, whatever came after.
    pub failures: u64,
    /// Of the failures, rolled back.
    pub failures_rolled_back: u64,
    /// succeeded ÷ ran, percent (null: nothing ran).
    pub success_pct: Option<f64>,
    /// rolled back ÷ ran, percent (null: nothing ran).
    pub rollback_pct: Option<f64>,
    /// failures rolled back ÷ failures, percent (null: no failure).
    pub failures_rolled_back_pct: Option<f64>,
    /// Lease → result of the apply jobs.
    pub duration: Durations,
}

fn rate(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| (num as f64 * 1000.0 / den as f64).round() / 10.0)
}

#[derive(Default)]
struct Tally {
    o: Outcomes,
    secs: Vec<i64>,
}

impl Tally {
    fn add(&mut self, j: &JobRecord, t: Timestamp, not_remediated: bool) {
        let o = &mut self.o;
        o.jobs += 1;
        let out = outcome(j, t);
        match out {
            Outcome::InProgress => o.in_progress += 1,
            Outcome::Skipped => o.skipped += 1,
            Outcome::Succeeded if not_remediated => o.not_remediated += 1,
            Outcome::Succeeded => o.succeeded += 1,
            Outcome::Failed => o.failed += 1,
            Outcome::RolledBack => o.rolled_back += 1,
            Outcome::RollbackFailed => o.rollback_failed += 1,
        }
        if !matches!(out, Outcome::InProgress | Outcome::Skipped) {
            o.ran += 1;
            if j.failed {
                o.failures += 1;
                if out == Outcome::RolledBack {
                    o.failures_rolled_back += 1;
                }
            }
        }
        if let (Some(l), Some(r)) = (j.leased_at, j.result_at.filter(|r| *r <= t))
            && l <= r
        {
            self.secs.push(r.duration_since(l).as_secs());
        }
    }

    fn finish(mut self) -> Outcomes {
        let o = &mut self.o;
        o.success_pct = rate(o.succeeded, o.ran);
        o.rollback_pct = rate(o.rolled_back, o.ran);
        o.failures_rolled_back_pct = rate(o.failures_rolled_back, o.failures);
        o.duration = durations(&mut self.secs);
        self.o
    }
}

/// One deployment's line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeploymentLine {
    /// `DEP-…`.
    pub id: String,
    /// `oob`, `baseline`, …
    pub kind: String,
    /// State at the date (see the module docs).
    pub state: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// First job leased by the date (RFC 3339).
    pub started_at: Option<String>,
    /// When its last job ended, if every job had ended by the date.
    pub finished_at: Option<String>,
    /// Its jobs' outcomes.
    #[serde(flatten)]
    pub outcomes: Outcomes,
    /// Findings patched by its jobs (see the module docs).
    pub patched_findings: u64,
    /// Their time to patch: first seen → the job's success.
    pub time_to_patch: Stats,
}

/// One ISO week's line: jobs that finished in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WeekLine {
    /// `YYYY-Www`.
    pub week: String,
    /// Their outcomes.
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

/// The deployments report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Deployments {
    /// As of.
    pub as_of: String,
    /// Every job of every deployment created by the date.
    pub all: Outcomes,
    /// Every finding patched through a job, first seen → the job's success.
    pub time_to_patch: Stats,
    /// Per deployment, oldest first.
    pub deployments: Vec<DeploymentLine>,
    /// Per ISO week in which jobs finished, oldest first.
    pub by_week: Vec<WeekLine>,
}

/// The ISO week of `t` (UTC), as `YYYY-Www`.
pub fn iso_week(t: Timestamp) -> String {
    let w = t.to_zoned(jiff::tz::TimeZone::UTC).date().iso_week_date();
    format!("{:04}-W{:02}", w.year(), w.week())
}

/// The deployments report at `as_of`.
pub fn deployments(h: &History, as_of: Timestamp) -> Deployments {
    let mut deps: Vec<&DeploymentRecord> = h
        .deployments
        .iter()
        .filter(|d| d.created_at <= as_of)
        .collect();
    deps.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    // The findings a succeeded job could have patched, by (asset, package):
    // only the pairs such jobs touch are indexed, in one pass over findings.
    let asset_ix: HashMap<&str, usize> = h
        .assets
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.as_str(), i))
        .collect();
    let mut by_host_pkg: HashMap<(usize, &str), Vec<usize>> = HashMap::new();
    for j in deps.iter().flat_map(|d| d.jobs.iter()) {
        if outcome(j, as_of) != Outcome::Succeeded {
            continue;
        }
        if let Some(&a) = asset_ix.get(j.host.as_str()) {
            for p in &j.packages {
                by_host_pkg.entry((a, p.as_str())).or_default();
            }
        }
    }
    if !by_host_pkg.is_empty() {
        for (i, f) in h.findings.iter().enumerate() {
            if let Some(v) = by_host_pkg.get_mut(&(f.asset, f.package.as_str())) {
                v.push(i);
            }
        }
    }
    let mut all = Tally::default();
    let mut weeks: BTreeMap<String, Tally> = BTreeMap::new();
    let mut ttp_all = Vec::new();
    let mut lines = Vec::new();
    for d in deps {
        let mut tally = Tally::default();
        let mut ttp = Vec::new();
        // A finding is counted once per deployment even if two jobs qualify.
        let mut counted = BTreeSet::new();
        for j in &d.jobs {
            let nr = outcome(j, as_of) == Outcome::Succeeded
                && asset_ix.get(j.host.as_str()).is_some_and(|&a| {
                    let mine: Vec<Target<'_>> = j
                        .packages
                        .iter()
                        .flat_map(|p| {
                            by_host_pkg
                                .get(&(a, p.as_str()))
                                .map(Vec::as_slice)
                                .unwrap_or_default()
                        })
                        .map(|&i| Target::of(&h.findings[i]))
                        .collect();
                    retest(&j.packages, j.leased_at, &mine, as_of)
                        .iter()
                        .any(|v| !v.closed)
                });
            tally.add(j, as_of, nr);
            all.add(j, as_of, nr);
            if let Some(f) = j.finished_at.filter(|f| *f <= as_of) {
                weeks.entry(iso_week(f)).or_default().add(j, as_of, nr);
            }
            if outcome(j, as_of) != Outcome::Succeeded {
                continue;
            }
            let (Some(leased), Some(result), Some(&a)) =
                (j.leased_at, j.result_at, asset_ix.get(j.host.as_str()))
            else {
                continue;
            };
            for p in &j.packages {
                for &i in by_host_pkg
                    .get(&(a, p.as_str()))
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    let f = &h.findings[i];
                    let fixed = f.first_seen <= result
                        && f.resolved_at.is_some_and(|r| r >= leased && r <= as_of);
                    if fixed && counted.insert(i) {
                        let secs = result.duration_since(f.first_seen).as_secs();
                        ttp.push(secs);
                        ttp_all.push(secs);
                    }
                }
            }
        }
        let started = d
            .jobs
            .iter()
            .filter_map(|j| j.leased_at)
            .filter(|l| *l <= as_of)
            .min();
        let ends: Vec<Option<Timestamp>> = d
            .jobs
            .iter()
            .map(|j| match outcome(j, as_of) {
                Outcome::InProgress => None,
                // A rollback still out has not ended; nor has a job whose
                // rollback ended only after the date.
                _ if j.state == JobState::RollingBack => None,
                Outcome::Succeeded | Outcome::Failed
                    if matches!(j.state, JobState::RolledBack | JobState::RollbackFailed) =>
                {
                    None
                }
                Outcome::RolledBack | Outcome::RollbackFailed => j.rollback_at,
                _ => j.finished_at,
            })
            .collect();
        let finished = if !ends.is_empty() && ends.iter().all(Option::is_some) {
            ends.into_iter().flatten().max()
        } else {
            None
        };
        let state = match d.state_at {
            None => d.state.clone(),
            Some(at) if at <= as_of => d.state.clone(),
            Some(_) if started.is_some() => "running".into(),
            Some(_) => "draft".into(),
        };
        lines.push(DeploymentLine {
            id: d.id.clone(),
            kind: d.kind.clone(),
            state,
            created_at: d.created_at.to_string(),
            started_at: started.map(|t| t.to_string()),
            finished_at: finished.map(|t| t.to_string()),
            outcomes: tally.finish(),
            patched_findings: ttp.len() as u64,
            time_to_patch: stats(&mut ttp),
        });
    }
    Deployments {
        as_of: as_of.to_string(),
        all: all.finish(),
        time_to_patch: stats(&mut ttp_all),
        deployments: lines,
        by_week: weeks
            .into_iter()
            .map(|(week, t)| WeekLine {
                week,
                outcomes: t.finish(),
            })
            .collect(),
    }
}

/// A finding as the re-test sees it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Advisory id.
    pub advisory: &'a str,
    /// Its CVEs.
    pub cves: &'a [String],
    /// Binary package.
    pub package: &'a str,
    /// First detected.
    pub first_seen: Timestamp,
    /// Resolved, if it was.
    pub resolved_at: Option<Timestamp>,
    /// The advisory names a fixed version (only those are targeted).
    pub fixable: bool,
}

impl<'a> Target<'a> {
    /// From a report finding.
    pub fn of(f: &'a super::FindingRecord) -> Self {
        Target {
            advisory: &f.advisory,
            cves: &f.cves,
            package: &f.package,
            first_seen: f.first_seen,
            resolved_at: f.resolved_at,
            fixable: f.fixable,
        }
    }
}

/// One targeted CVE of a job and whether it is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CveVerdict {
    /// The CVE (the advisory id when the advisory names none).
    pub cve: String,
    /// Advisories naming it among the targeted findings.
    pub advisories: Vec<String>,
    /// Binary packages of those findings.
    pub packages: Vec<String>,
    /// Every targeted finding naming it was resolved by the date.
    pub closed: bool,
    /// When the last of them was resolved (closed only).
    pub closed_at: Option<Timestamp>,
}

/// The re-test of a job pinning `pins`, leased at `leased_at`, over its
/// host's findings (any of them: the targeted ones are chosen here), at `t`;
/// sorted by CVE. See the module docs for the rules.
pub fn retest(
    pins: &[String],
    leased_at: Option<Timestamp>,
    findings: &[Target<'_>],
    t: Timestamp,
) -> Vec<CveVerdict> {
    let at = leased_at.unwrap_or(t);
    let mut by_cve: BTreeMap<String, CveVerdict> = BTreeMap::new();
    for f in findings {
        let targeted = f.fixable
            && pins.iter().any(|p| p == f.package)
            && f.first_seen <= at
            && f.resolved_at.is_none_or(|r| r >= at);
        if !targeted {
            continue;
        }
        let closed_at = f.resolved_at.filter(|r| *r <= t);
        let own = [f.advisory.to_owned()];
        let names: &[String] = if f.cves.is_empty() { &own } else { f.cves };
        for c in names {
            let v = by_cve.entry(c.clone()).or_insert_with(|| CveVerdict {
                cve: c.clone(),
                advisories: vec![],
                packages: vec![],
                closed: true,
                closed_at: None,
            });
            if !v.advisories.iter().any(|a| a == f.advisory) {
                v.advisories.push(f.advisory.to_owned());
                v.advisories.sort();
            }
            if !v.packages.iter().any(|p| p == f.package) {
                v.packages.push(f.package.to_owned());
                v.packages.sort();
            }
            match closed_at {
                Some(r) if v.closed => v.closed_at = Some(v.closed_at.map_or(r, |x| x.max(r))),
                Some(_) => {}
                None => {
                    v.closed = false;
                    v.closed_at = None;
                }
            }
        }
    }
    by_cve.into_values().collect()
}

#[cfg(test)]
mod retest_tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn targeted_cves_are_closed_only_when_every_finding_naming_them_is() {
        let cves_a = vec!["CVE-1".to_string(), "CVE-2".to_string()];
        let cves_b = vec!["CVE-2".to_string()];
        let f = [
            // Pinned, open at the lease, resolved after: closed.
            Target {
                advisory: "A",
                cves: &cves_a,
                package: "libssl3",
                first_seen: ts("2026-01-01T00:00:00Z"),
                resolved_at: Some(ts("2026-01-02T01:00:00Z")),
                fixable: true,
            },
            // Pinned, still open: CVE-2 stays open.
            Target {
                advisory: "B",
                cves: &cves_b,
                package: "openssl",
                first_seen: ts("2026-01-01T00:00:00Z"),
                resolved_at: None,
                fixable: true,
            },
            // Not pinned: not targeted.
            Target {
                advisory: "C",
                cves: &[],
                package: "curl",
                first_seen: ts("2026-01-01T00:00:00Z"),
                resolved_at: None,
                fixable: true,
            },
            // Pinned but resolved before the lease: not targeted.
            Target {
                advisory: "D",
                cves: &[],
                package: "libssl3",
                first_seen: ts("2026-01-01T00:00:00Z"),
                resolved_at: Some(ts("2026-01-01T12:00:00Z")),
                fixable: true,
            },
            // Pinned but first seen after the lease: not targeted.
            Target {
                advisory: "E",
                cves: &[],
                package: "libssl3",
                first_seen: ts("2026-01-03T00:00:00Z"),
                resolved_at: None,
                fixable: true,
            },
            // Pinned, open, but its advisory names no fix: not targeted.
            Target {
                advisory: "F",
                cves: &[],
                package: "openssl",
                first_seen: ts("2026-01-01T00:00:00Z"),
                resolved_at: None,
                fixable: false,
            },
        ];
        let pins = vec!["libssl3".to_string(), "openssl".to_string()];
        let v = retest(
            &pins,
            Some(ts("2026-01-02T00:00:00Z")),
            &f,
            ts("2026-01-05T00:00:00Z"),
        );
        let got: Vec<(&str, bool)> = v.iter().map(|v| (v.cve.as_str(), v.closed)).collect();
        assert_eq!(got, vec![("CVE-1", true), ("CVE-2", false)]);
        assert_eq!(v[0].closed_at, Some(ts("2026-01-02T01:00:00Z")));
        assert_eq!(v[1].advisories, vec!["A", "B"]);
        // Before the resolution, CVE-1 is open too.
        let early = retest(
            &pins,
            Some(ts("2026-01-02T00:00:00Z")),
            &f,
            ts("2026-01-02T00:30:00Z"),
        );
        assert!(early.iter().all(|v| !v.closed));
    }
}
