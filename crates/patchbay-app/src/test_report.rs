//! A deployment's published test report (issue 18, item 7;
//! docs/test-results.md): the stored rollout (gate decisions, each host's
//! job), its rehearsals, its apply results (privilege checks after the real
//! apply), the re-test of its hosts' targeted findings and the backup
//! verifications of its snapshots, handed to the pure
//! `patchbay_core::report::test_report::build` with the time passed in.
//! Rendering (JUnit XML, HTML, JSON) is `patchbay-render`'s.

use crate::{App, AppError, Caller, RequestCtx};
use patchbay_core::auth::Action;
use patchbay_core::report::test_report::{
    BackupIn, GateIn, HostIn, Input, RehearsalIn, ScriptIn, TestReport, build,
};
use patchbay_proto::agent::{JobResult, PrivilegeFinding};
use patchbay_proto::error::ErrorCode;
use std::collections::BTreeMap;

/// `PATH: FINDING BEFORE -> AFTER (PACKAGE)`.
pub fn privilege_line(p: &PrivilegeFinding) -> String {
    format!(
        "{}: {} {} -> {}{}",
        p.path,
        p.finding,
        p.before.as_deref().unwrap_or("(new)"),
        p.after,
        p.package
            .as_deref()
            .map(|k| format!(" ({k})"))
            .unwrap_or_default()
    )
}

/// The report's counts and links, for the change record.
pub fn summary_of(r: &TestReport) -> patchbay_proto::api::TestReportSummary {
    patchbay_proto::api::TestReportSummary {
        tests: r.summary.tests,
        passed: r.summary.passed,
        failures: r.summary.failures,
        skipped: r.summary.skipped,
        failed: r.failures(),
        api: format!("/api/v1/deployments/{}/test-report", r.deployment),
        page: format!("/ui/deployments/{}/test-report", r.deployment),
    }
}

impl App {
    /// The counts and links of deployment `id`'s test report (the change
    /// record shows them).
    pub async fn test_report_summary(
        &self,
        caller: &Caller,
        id: &str,
        ctx: &RequestCtx,
    ) -> Result<patchbay_proto::api::TestReportSummary, AppError> {
        Ok(summary_of(&self.test_report(caller, id, ctx).await?))
    }

    /// The test report of deployment `id`, as at now.
    pub async fn test_report(
        &self,
        caller: &Caller,
        id: &str,
        ctx: &RequestCtx,
    ) -> Result<TestReport, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut tx = self.store.read().await?;
        self.test_report_in(&mut tx, id.trim(), None, self.now())
            .await
    }

    /// The test report of deployment `id` read through `tx` (a read, or the
    /// rollout driver's step before it commits: then `state` is the stored
    /// rollout the step is about to store).
    pub(crate) async fn test_report_in(
        &self,
        tx: &mut Box<dyn patchbay_store::Tx>,
        id: &str,
        state: Option<&serde_json::Value>,
        now: jiff::Timestamp,
    ) -> Result<TestReport, AppError> {
        let dep = tx
            .list_deployments()
            .await?
            .into_iter()
            .find(|d| d.id == id)
            .ok_or_else(|| AppError::not_found(format!("no deployment {id}")))?;
        let state = match state {
            Some(s) => s.clone(),
            None => {
                tx.rollout(id)
                    .await?
                    .ok_or_else(|| AppError::not_found(format!("deployment {id} has no rollout")))?
                    .state
            }
        };
        let stored: StoredView = serde_json::from_value(state).map_err(|e| {
            AppError::new(
                ErrorCode::Internal,
                format!("stored rollout {id} does not decode: {e}"),
            )
        })?;
        let jobs = tx.jobs_of(id).await?;
        let backups = tx.backup_verifications_of(id).await?;
        // The deployment's hosts' findings only, in batched reads (the
        // driver computes this in its step: never the fleet's).
        let ids: Vec<i64> = tx
            .assets_by_names(&dep.assets)
            .await?
            .into_iter()
            .map(|a| a.id)
            .collect();
        let rows = tx.findings_of_assets(&ids).await?;
        let e = crate::snapshot::Enrichment::read(self, tx, &rows).await?;
        let findings: Vec<_> = rows.into_iter().map(|r| e.finding_out(r)).collect();
        let rehearsals = crate::rehearsal_gate::rehearsals_of(jobs.clone());
        let leased: BTreeMap<&str, jiff::Timestamp> =
            jobs.iter().map(|j| (j.key.as_str(), j.leased_at)).collect();
        let results: BTreeMap<&str, JobResult> = jobs
            .iter()
            .filter_map(|j| {
                let r = j.result.clone()?;
                Some((j.key.as_str(), serde_json::from_value(r).ok()?))
            })
            .collect();
        // The newest rehearsal of each host (the list is newest run first).
        let mut latest: BTreeMap<&str, &patchbay_proto::api::RehearsalOut> = BTreeMap::new();
        for r in &rehearsals {
            latest.entry(r.host.as_str()).or_insert(r);
        }
        let staging: BTreeMap<&str, &str> = stored
            .fidelity
            .iter()
            .filter_map(|f| Some((f.ring.as_str(), f.note.as_deref()?)))
            .collect();
        let mut gates = Vec::new();
        let mut hosts = Vec::new();
        for ring in &stored.rollout.rings {
            for g in &ring.gates {
                gates.push(GateIn {
                    ring: ring.spec.name.clone(),
                    gate: g.gate.clone(),
                    verdict: g.verdict,
                    reason: g.reason.clone(),
                });
            }
            for j in &ring.jobs {
                let host = j.spec.host.as_str();
                let pins: Vec<String> = stored
                    .pins
                    .get(host)
                    .into_iter()
                    .flatten()
                    .map(|p| p.name.clone())
                    .collect();
                let retest = retest_of(
                    host,
                    &pins,
                    leased.get(j.spec.key.as_str()).copied(),
                    &findings,
                    now,
                );
                let rehearsal = latest.get(host).map(|r| {
                    let found = r.rehearsal.as_ref();
                    RehearsalIn {
                        passed: match r.status.as_str() {
                            "passed" => Some(true),
                            "failed" => Some(false),
                            _ => None,
                        },
                        mode: found
                            .map(|f| f.mode.as_str().to_owned())
                            .unwrap_or_default(),
                        mode_reason: found.and_then(|f| f.mode_reason.clone()),
                        step: r.step.clone(),
                        message: r.message.clone(),
                        scripts: found
                            .map(|f| {
                                f.scripts
                                    .iter()
                                    .map(|s| ScriptIn {
                                        package: s.package.clone(),
                                        script: s.script.clone(),
                                        exit: s.exit,
                                        output: s.output.clone(),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        conflicts: found
                            .map(|f| {
                                f.conflicts
                                    .iter()
                                    .map(|c| format!("{} {} {}", c.package, c.relation, c.with))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        refused: found.map(|f| f.refused.clone()).unwrap_or_default(),
                        privilege: found
                            .map(|f| f.privilege.iter().map(privilege_line).collect())
                            .unwrap_or_default(),
                    }
                });
                hosts.push(HostIn {
                    host: host.to_owned(),
                    ring: ring.spec.name.clone(),
                    state: j.state,
                    error: j.error.clone(),
                    privilege: results
                        .get(j.spec.key.as_str())
                        .map(|r| r.privilege.iter().map(privilege_line).collect())
                        .unwrap_or_default(),
                    rehearsal,
                    staging: staging.get(ring.spec.name.as_str()).map(|s| s.to_string()),
                    retest,
                    backups: backups
                        .iter()
                        .filter(|b| b.host == host && b.ring == ring.spec.name)
                        .map(|b| BackupIn {
                            snapshot: b.snapshot.clone(),
                            verdict: b.verdict.clone(),
                            excerpt: b.excerpt.clone(),
                        })
                        .collect(),
                });
            }
        }
        let state = serde_json::to_value(stored.rollout.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Ok(build(
            &Input {
                deployment: id.to_owned(),
                state,
                rings: stored
                    .rollout
                    .rings
                    .iter()
                    .map(|r| r.spec.name.clone())
                    .collect(),
                gates,
                hosts,
            },
            now,
        ))
    }
}

impl App {
    /// In a rollout step's change that settled the deployment (final
    /// state, every job ended; `state`: the stored rollout it stores), raises `deployment.test_report` —
    /// the report's counts, its failed cases (at most 20) and its API path,
    /// not the report — audited with the step, so webhooks, the SIEM sink
    /// and email contacts get it through the outbox like every event.
    pub(crate) async fn announce_test_report(
        &self,
        tx: &mut crate::change::Change<'_>,
        id: &str,
        state: &serde_json::Value,
        now: jiff::Timestamp,
    ) -> Result<(), AppError> {
        let r = self.test_report_in(tx, id, Some(state), now).await?;
        let failed: Vec<String> = r.failures().into_iter().take(20).collect();
        let s = r.summary;
        tx.audit(
            "deployment.test_report",
            &format!("deployment:{id}"),
            serde_json::json!({
                "message": format!(
                    "{id} {}: test report: {} test(s), {} passed, {} failed, {} not run",
                    r.state, s.tests, s.passed, s.failures, s.skipped
                ),
                "state": r.state,
                "tests": s.tests,
                "passed": s.passed,
                "failures": s.failures,
                "skipped": s.skipped,
                "failed": failed,
                "report": format!("/api/v1/deployments/{id}/test-report"),
            }),
        )
        .await?;
        Ok(())
    }
}

/// What the report reads of a stored rollout (the rest is ignored).
#[derive(serde::Deserialize)]
struct StoredView {
    rollout: patchbay_core::rollout::Rollout,
    #[serde(default)]
    pins: BTreeMap<String, Vec<patchbay_core::job::PackagePin>>,
    #[serde(default)]
    fidelity: Vec<patchbay_proto::api::RingFidelityOut>,
}

/// The re-test of `host` (`patchbay_core::report::deployments::retest`,
/// as the change record computes it): each targeted CVE and whether it is
/// closed.
fn retest_of(
    host: &str,
    pins: &[String],
    leased: Option<jiff::Timestamp>,
    findings: &[patchbay_proto::api::FindingOut],
    now: jiff::Timestamp,
) -> Vec<(String, bool)> {
    use patchbay_core::report::deployments::{Target, retest};
    let parse = |s: &str| s.parse::<jiff::Timestamp>().ok();
    let mine: Vec<Target<'_>> = findings
        .iter()
        .filter(|f| f.asset == host)
        .filter_map(|f| {
            Some(Target {
                advisory: &f.advisory,
                cves: &f.cves,
                package: &f.package,
                first_seen: parse(&f.first_seen)?,
                resolved_at: f.resolved_at.as_deref().and_then(parse),
                fixable: f.fixed_version.is_some(),
            })
        })
        .collect();
    retest(pins, leased, &mine, now)
        .into_iter()
        .map(|v| (v.cve, v.closed))
        .collect()
}
