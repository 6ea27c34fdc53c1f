//! A deployment's published test report (issue 18, item 7;
//! docs/test-results.md): every check Patchbay ran for it, as test cases.
//! Pure: the deployment's stored facts and the generation time are
//! arguments; nothing reads a store or a clock. Renderers (JUnit XML, HTML)
//! are `patchbay-render`'s (`test_report`).
//!
//! Suites, in this order (each only when it has a case):
//!
//! - **`gates`** — one case per ring × gate decision (`RING: GATE`): a pass
//!   passes, a fail fails with the gate's reason, an inconclusive verdict is
//!   skipped with its reason; a ring with no decision yet has one skipped
//!   case `RING: gates` ("not reached");
//! - **`rehearsal`** — one case per host: passed; failed with the failing
//!   step (or the first failing package script: `PACKAGE SCRIPT exited N`)
//!   and the script's output as the excerpt; skipped when none was run or it
//!   has not reported. Notes: the mode (and why a simulation), conflicts,
//!   refusals, privilege findings, and "staging differs from production: N
//!   packages" for a staging ring beyond its tolerance;
//! - **`apply`** — one case per host: its job succeeded; failed (also rolled
//!   back or rollback failed) with the job's error; skipped when it did not
//!   run (skipped, pending or still in flight, with the state);
//! - **`privilege`** — one case per host whose job ran: passed with no
//!   privilege change after the real apply; failed naming each (`PATH:
//!   FINDING BEFORE -> AFTER`); skipped when the job did not run;
//! - **`retest`** — one case per host: passed when its job succeeded and
//!   every targeted CVE is closed (notes list them); failed "not remediated"
//!   naming the CVEs still open; skipped when the job did not succeed;
//! - **`backup`** — one case per backup verification
//!   (`HOST: SNAPSHOT`): verified passes, failed fails with the hook's
//!   excerpt, pending is skipped.
//!
//! `summary` counts every case: `tests = passed + failures + skipped`.

use crate::canary::Verdict;
use crate::rollout::JobState;
use jiff::Timestamp;
use serde::Serialize;

/// A ring's gate decision.
#[derive(Debug, Clone, PartialEq)]
pub struct GateIn {
    /// The ring.
    pub ring: String,
    /// `success_rate`, `health`, `budget`, `soak`, `approval`, …
    pub gate: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Why.
    pub reason: String,
}

/// A package script that failed in a rehearsal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptIn {
    /// Package.
    pub package: String,
    /// `postinst`, …
    pub script: String,
    /// Exit status.
    pub exit: Option<i32>,
    /// Its output's end.
    pub output: String,
}

/// A host's latest rehearsal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RehearsalIn {
    /// `None`: not reported yet; `Some(true)`: passed.
    pub passed: Option<bool>,
    /// `overlay` or `simulation`.
    pub mode: String,
    /// Why a simulation.
    pub mode_reason: Option<String>,
    /// The failing step (`rehearse.apply`).
    pub step: Option<String>,
    /// Its message.
    pub message: Option<String>,
    /// Failed package scripts.
    pub scripts: Vec<ScriptIn>,
    /// Conflicts, `PACKAGE conflicts WITH`.
    pub conflicts: Vec<String>,
    /// Refused changes, each with its reason.
    pub refused: Vec<String>,
    /// Privilege findings, `PATH: FINDING BEFORE -> AFTER`.
    pub privilege: Vec<String>,
}

/// A backup verification of one host's snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupIn {
    /// The snapshot's identity.
    pub snapshot: String,
    /// `verified`, `failed` or `pending`.
    pub verdict: String,
    /// The hook's output excerpt.
    pub excerpt: String,
}

/// One host of the deployment and what was checked on it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostIn {
    /// The host.
    pub host: String,
    /// Its ring.
    pub ring: String,
    /// Its apply job's state.
    pub state: JobState,
    /// The job's error.
    pub error: Option<String>,
    /// Privilege findings after the real apply.
    pub privilege: Vec<String>,
    /// Its latest rehearsal, when one was asked for.
    pub rehearsal: Option<RehearsalIn>,
    /// The staging note of its ring ("staging differs from production: N
    /// packages").
    pub staging: Option<String>,
    /// Re-test: each targeted CVE and whether it is closed.
    pub retest: Vec<(String, bool)>,
    /// Backup verifications of its snapshots.
    pub backups: Vec<BackupIn>,
}

/// The deployment's facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// `DEP-…`.
    pub deployment: String,
    /// Its state (`completed`, `halted`, …).
    pub state: String,
    /// Rings in order.
    pub rings: Vec<String>,
    /// Gate decisions, in order.
    pub gates: Vec<GateIn>,
    /// Hosts in ring order.
    pub hosts: Vec<HostIn>,
}

/// A case's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It passed.
    Passed,
    /// It failed.
    Failed,
    /// It did not run.
    Skipped,
}

/// One test case: a host (or ring) × check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Case {
    /// `HOST` or `RING: GATE`.
    pub name: String,
    /// The host, for host cases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The ring.
    pub ring: String,
    /// Result.
    pub status: Status,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Output of the failing tool (a script's, a hook's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
    /// What else people should know (mode, findings reported, CVEs closed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Every case.
    pub tests: usize,
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failures: usize,
    /// Not run.
    pub skipped: usize,
}

impl Counts {
    fn add(&mut self, s: Status) {
        self.tests += 1;
        match s {
            Status::Passed => self.passed += 1,
            Status::Failed => self.failures += 1,
            Status::Skipped => self.skipped += 1,
        }
    }
}

/// One kind of check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suite {
    /// `gates`, `rehearsal`, `apply`, `privilege`, `retest`, `backup`.
    pub name: String,
    /// Its counts.
    pub counts: Counts,
    /// Its cases.
    pub cases: Vec<Case>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestReport {
    /// `DEP-…`.
    pub deployment: String,
    /// The deployment's state when generated.
    pub state: String,
    /// When generated.
    pub generated_at: Timestamp,
    /// Every case's counts.
    pub summary: Counts,
    /// Suites in order.
    pub suites: Vec<Suite>,
}

impl TestReport {
    /// The failed cases, `SUITE HOST-OR-NAME`.
    pub fn failures(&self) -> Vec<String> {
        self.suites
            .iter()
            .flat_map(|s| {
                s.cases
                    .iter()
                    .filter(|c| c.status == Status::Failed)
                    .map(move |c| format!("{} {}", s.name, c.name))
            })
            .collect()
    }
}

fn case(name: String, host: Option<&str>, ring: &str, status: Status) -> Case {
    Case {
        name,
        host: host.map(str::to_owned),
        ring: ring.to_owned(),
        status,
        message: None,
        excerpt: None,
        notes: vec![],
    }
}

fn state_name(s: JobState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Builds the report of `input` as at `now`.
pub fn build(input: &Input, now: Timestamp) -> TestReport {
    let mut suites: Vec<Suite> = Vec::new();
    let mut push = |name: &str, cases: Vec<Case>| {
        if cases.is_empty() {
            return;
        }
        let mut counts = Counts::default();
        for c in &cases {
            counts.add(c.status);
        }
        suites.push(Suite {
            name: name.to_owned(),
            counts,
            cases,
        });
    };

    // Gates.
    let mut gates = Vec::new();
    for ring in &input.rings {
        let mine: Vec<&GateIn> = input.gates.iter().filter(|g| &g.ring == ring).collect();
        if mine.is_empty() {
            let mut c = case(format!("{ring}: gates"), None, ring, Status::Skipped);
            c.message = Some("not reached".into());
            gates.push(c);
        }
        for g in mine {
            let status = match g.verdict {
                Verdict::Pass => Status::Passed,
                Verdict::Fail => Status::Failed,
                Verdict::Inconclusive => Status::Skipped,
            };
            let mut c = case(format!("{ring}: {}", g.gate), None, ring, status);
            match status {
                Status::Passed => c.notes.push(g.reason.clone()),
                Status::Failed => c.message = Some(g.reason.clone()),
                Status::Skipped => c.message = Some(format!("inconclusive: {}", g.reason)),
            }
            gates.push(c);
        }
    }
    push("gates", gates);

    // Rehearsals.
    let mut rehearsals = Vec::new();
    for h in &input.hosts {
        let Some(r) = &h.rehearsal else {
            continue;
        };
        let status = match r.passed {
            None => Status::Skipped,
            Some(true) => Status::Passed,
            Some(false) => Status::Failed,
        };
        let mut c = case(h.host.clone(), Some(&h.host), &h.ring, status);
        if r.passed.is_none() {
            c.message = Some("not reported yet".into());
        } else {
            c.notes.push(match &r.mode_reason {
                Some(why) => format!("mode: {} ({why})", r.mode),
                None => format!("mode: {}", r.mode),
            });
        }
        if status == Status::Failed {
            let script = r.scripts.first();
            c.message = Some(match (&r.step, &r.message, script) {
                (_, _, Some(s)) => format!(
                    "{} {} exited {}",
                    s.package,
                    s.script,
                    s.exit
                        .map_or_else(|| "abnormally".to_owned(), |e| e.to_string())
                ),
                (Some(step), Some(m), None) => format!("{step}: {m}"),
                (None, Some(m), None) => m.clone(),
                (Some(step), None, None) => step.clone(),
                (None, None, None) => "failed".into(),
            });
            if let Some(s) = script {
                c.excerpt = Some(s.output.clone());
            } else if let (Some(_), Some(m)) = (&r.step, &r.message) {
                c.excerpt = Some(m.clone());
            }
        }
        c.notes
            .extend(r.conflicts.iter().map(|x| format!("conflict: {x}")));
        c.notes
            .extend(r.refused.iter().map(|x| format!("refused: {x}")));
        c.notes
            .extend(r.privilege.iter().map(|x| format!("privilege: {x}")));
        if let Some(n) = &h.staging {
            c.notes.push(n.clone());
        }
        rehearsals.push(c);
    }
    push("rehearsal", rehearsals);

    // Applies, their privilege checks and re-tests.
    let mut applies = Vec::new();
    let mut privilege = Vec::new();
    let mut retests = Vec::new();
    for h in &input.hosts {
        let state = state_name(h.state);
        let ran = matches!(
            h.state,
            JobState::Succeeded
                | JobState::Failed
                | JobState::RolledBack
                | JobState::RollbackFailed
                | JobState::RollingBack
        );
        let status = match h.state {
            JobState::Succeeded => Status::Passed,
            JobState::Failed
            | JobState::RolledBack
            | JobState::RollbackFailed
            | JobState::RollingBack => Status::Failed,
            _ => Status::Skipped,
        };
        let mut a = case(h.host.clone(), Some(&h.host), &h.ring, status);
        match status {
            Status::Passed => a.notes.push(state.clone()),
            Status::Failed => {
                a.message = Some(match &h.error {
                    Some(e) => format!("{state}: {e}"),
                    None => state.clone(),
                })
            }
            Status::Skipped => {
                a.message = Some(match &h.error {
                    Some(e) => format!("not run ({state}): {e}"),
                    None => format!("not run ({state})"),
                })
            }
        }
        applies.push(a);

        let mut p = case(h.host.clone(), Some(&h.host), &h.ring, Status::Skipped);
        // A job that failed before applying (a failed rehearsal under the
        // gate) changed nothing: its privilege check did not run either.
        if ran && (h.state != JobState::Failed || !h.privilege.is_empty() || h.error.is_none()) {
            if h.privilege.is_empty() {
                p.status = Status::Passed;
            } else {
                p.status = Status::Failed;
                p.message = Some(format!(
                    "{} privilege change(s) after the apply",
                    h.privilege.len()
                ));
                p.excerpt = Some(h.privilege.join("\n"));
            }
        } else {
            p.message = Some(format!("the apply did not run ({state})"));
        }
        privilege.push(p);

        let mut r = case(h.host.clone(), Some(&h.host), &h.ring, Status::Skipped);
        if h.state == JobState::Succeeded {
            let open: Vec<&str> = h
                .retest
                .iter()
                .filter(|(_, closed)| !closed)
                .map(|(c, _)| c.as_str())
                .collect();
            let closed: Vec<&str> = h
                .retest
                .iter()
                .filter(|(_, closed)| *closed)
                .map(|(c, _)| c.as_str())
                .collect();
            if open.is_empty() {
                r.status = Status::Passed;
                r.notes.push(if closed.is_empty() {
                    "no targeted finding".to_owned()
                } else {
                    format!("closed: {}", closed.join(", "))
                });
            } else {
                r.status = Status::Failed;
                r.message = Some(format!("not remediated: {} still open", open.join(", ")));
                if !closed.is_empty() {
                    r.notes.push(format!("closed: {}", closed.join(", ")));
                }
            }
        } else {
            r.message = Some(format!("the job did not succeed ({state})"));
        }
        retests.push(r);
    }
    push("apply", applies);
    push("privilege", privilege);
    push("retest", retests);

    // Backup verifications.
    let mut backups = Vec::new();
    for h in &input.hosts {
        for b in &h.backups {
            let status = match b.verdict.as_str() {
                "verified" => Status::Passed,
                "failed" => Status::Failed,
                _ => Status::Skipped,
            };
            let mut c = case(
                format!("{}: {}", h.host, b.snapshot),
                Some(&h.host),
                &h.ring,
                status,
            );
            match status {
                Status::Passed => {}
                Status::Failed => {
                    c.message = Some("the snapshot did not verify".into());
                    c.excerpt = Some(b.excerpt.clone());
                }
                Status::Skipped => c.message = Some(format!("{} (not reported)", b.verdict)),
            }
            backups.push(c);
        }
    }
    push("backup", backups);

    let mut summary = Counts::default();
    for s in &suites {
        summary.tests += s.counts.tests;
        summary.passed += s.counts.passed;
        summary.failures += s.counts.failures;
        summary.skipped += s.counts.skipped;
    }
    TestReport {
        deployment: input.deployment.clone(),
        state: input.state.clone(),
        generated_at: now,
        summary,
        suites,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, state: JobState) -> HostIn {
        HostIn {
            host: name.into(),
            ring: "r1".into(),
            state,
            error: None,
            privilege: vec![],
            rehearsal: None,
            staging: None,
            retest: vec![],
            backups: vec![],
        }
    }

    #[test]
    fn cases_counts_and_named_failures() {
        let mut h1 = host("h1", JobState::Succeeded);
        h1.rehearsal = Some(RehearsalIn {
            passed: Some(true),
            mode: "overlay".into(),
            ..Default::default()
        });
        h1.retest = vec![("CVE-1".into(), true)];
        let mut h2 = host("h2", JobState::Failed);
        h2.error = Some("rehearsal failed: rehearse.apply: postinst".into());
        h2.rehearsal = Some(RehearsalIn {
            passed: Some(false),
            mode: "overlay".into(),
            step: Some("rehearse.apply".into()),
            message: Some("postinst".into()),
            scripts: vec![ScriptIn {
                package: "pb-demo".into(),
                script: "postinst".into(),
                exit: Some(1),
                output: "boom".into(),
            }],
            ..Default::default()
        });
        h2.staging = Some("staging differs from production: 3 packages".into());
        let mut h3 = host("h3", JobState::Succeeded);
        h3.retest = vec![("CVE-1".into(), false)];
        h3.privilege = vec!["/usr/bin/x: new_setuid -> 4755 root:root".into()];
        h3.backups = vec![BackupIn {
            snapshot: "snap-1".into(),
            verdict: "failed".into(),
            excerpt: "tar: Unexpected EOF".into(),
        }];
        let input = Input {
            deployment: "DEP-1".into(),
            state: "halted".into(),
            rings: vec!["r1".into(), "r2".into()],
            gates: vec![GateIn {
                ring: "r1".into(),
                gate: "success_rate".into(),
                verdict: Verdict::Fail,
                reason: "1 of 3 failed".into(),
            }],
            hosts: vec![h1, h2, h3],
        };
        let r = build(&input, Timestamp::UNIX_EPOCH);
        let names: Vec<&str> = r.suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "gates",
                "rehearsal",
                "apply",
                "privilege",
                "retest",
                "backup"
            ]
        );
        // gates 2 (1 fail, 1 skipped), rehearsal 2 (1 pass, 1 fail),
        // apply 3 (2 pass, 1 fail), privilege 3 (1 pass, 1 fail, 1 skipped),
        // retest 3 (1 pass, 1 fail, 1 skipped), backup 1 (fail).
        assert_eq!(
            r.summary,
            Counts {
                tests: 14,
                passed: 5,
                failures: 6,
                skipped: 3
            }
        );
        assert_eq!(
            r.failures(),
            [
                "gates r1: success_rate",
                "rehearsal h2",
                "apply h2",
                "privilege h3",
                "retest h3",
                "backup h3: snap-1"
            ]
        );
        let reh = &r.suites[1].cases[1];
        assert_eq!(reh.message.as_deref(), Some("pb-demo postinst exited 1"));
        assert_eq!(reh.excerpt.as_deref(), Some("boom"));
        assert!(
            reh.notes
                .contains(&"staging differs from production: 3 packages".into())
        );
        assert_eq!(
            r.suites[4].cases[2].message.as_deref(),
            Some("not remediated: CVE-1 still open")
        );
    }
}
