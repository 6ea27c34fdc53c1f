//! Reports as of a date, as data: [`App::history`] gathers what they are
//! recomputed from (assets, findings, exceptions, and the deployments with
//! their jobs' outcomes from the `rollouts` and `agent_jobs` tables),
//! [`App::report`] computes one (`patchbay_core::report`) — except the
//! compliance report as of now, counted from the projection of open findings
//! and one aggregate of the resolved ones (`crate::projection`, ADR 0023;
//! [`App::compliance_reference`] computes it from the history, for the test
//! that compares the two and the bench).
//! Rendering them (JSON, CSV, HTML with SVG charts) is `patchbay-render`'s
//! work, called by the server's report endpoint and the evidence bundle.

use crate::{App, AppError, Caller, RequestCtx};
use jiff::Timestamp;
use patchbay_core::auth::Action;
use patchbay_core::report::{AssetRecord, DeploymentRecord, History, JobRecord, Report};
use patchbay_core::rollout::JobState;
use std::collections::HashMap;

pub use patchbay_core::report::KINDS;

impl App {
    /// The assets as the reports read them, with their policy groups.
    fn asset_records(
        &self,
        policy: &patchbay_core::policy::Policy,
        rows: &[patchbay_store::AssetRow],
    ) -> Vec<AssetRecord> {
        rows.iter()
            .map(|a| AssetRecord {
                name: a.name.clone(),
                owner: a.attrs.owner.clone(),
                groups: crate::ranking::groups_of(policy, a),
                managed: a.has_agent,
                created_at: a.created_at,
                // The stored time, or this replica's later one not yet stored.
                last_seen: if a.has_agent {
                    self.last_seen(a.id, a.last_seen_at)
                } else {
                    Some(self.last_seen(a.id, a.last_seen_at).unwrap_or(a.updated_at))
                },
            })
            .collect()
    }

    /// The history the reports recompute from.
    pub async fn history(&self, caller: &Caller, ctx: &RequestCtx) -> Result<History, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut snap = self.snapshot().await?;
        let (policy, _) = snap.policy_in_force().await?;
        let rows = snap.assets().await?;
        let assets = self.asset_records(&policy, &rows);
        let index: HashMap<String, usize> = rows
            .iter()
            .enumerate()
            .map(|(i, a)| (a.name.clone(), i))
            .collect();
        let findings = snap.finding_records(&policy, &rows, &index).await?;
        let exceptions = snap.exceptions().await?;
        let deployments = deployment_records(snap.tx()).await?;
        Ok(History {
            assets,
            findings,
            exceptions,
            deployments,
        })
    }

    /// One report as of a date (now by default, to the second), as data.
    /// The compliance report as of now is counted from the projection of
    /// open findings and one aggregate of the resolved ones
    /// ([`crate::projection`], issue 14, item 6), not from a full history;
    /// the same as [`App::compliance_reference`] gives.
    pub async fn report(
        &self,
        caller: &Caller,
        kind: &str,
        as_of: Option<Timestamp>,
        ctx: &RequestCtx,
    ) -> Result<Report, AppError> {
        self.report_by(caller, kind, as_of, ctx, true).await
    }

    /// The compliance report as of now computed from a full history (every
    /// finding, open and resolved, read and ranked: `App::history`), as
    /// [`App::report`] computes it for a past date — for the test that
    /// compares it with the projection's and the bench's baseline.
    pub async fn compliance_reference(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<Report, AppError> {
        self.report_by(caller, "compliance", None, ctx, false).await
    }

    async fn report_by(
        &self,
        caller: &Caller,
        kind: &str,
        as_of: Option<Timestamp>,
        ctx: &RequestCtx,
        projection: bool,
    ) -> Result<Report, AppError> {
        let unknown = || {
            AppError::invalid(format!(
                "kind: unknown report {kind:?} (compliance, ttp, sla, coverage or deployments)"
            ))
        };
        if !KINDS.contains(&kind) {
            return Err(unknown());
        }
        if projection && kind == "compliance" && as_of.is_none() {
            return Ok(Report::Compliance(self.compliance_now(caller, ctx).await?));
        }
        let h = self.history(caller, ctx).await?;
        let now = as_of.is_none();
        let as_of = as_of.unwrap_or_else(|| self.now());
        let report = Report::compute(kind, &h, as_of.round(jiff::Unit::Second).unwrap_or(as_of))
            .ok_or_else(unknown)?;
        // Coverage as of now counts what discovery sees (shadows, ghosts);
        // the past is not kept (each re-scan replaces its source's view).
        Ok(match report {
            Report::Coverage(c) if now => {
                let (shadows, ghosts) = self.discovery_counts().await?;
                Report::Coverage(c.with_discovery(shadows, ghosts))
            }
            r => r,
        })
    }

    /// The compliance report as of now through the projection of open
    /// findings (its lock taken before the snapshot is opened, as for the
    /// worklist): per asset, [`crate::projection::OpenFindings::
    /// compliance_counts`], aggregated by `patchbay_core::report::
    /// compliance_of` as the history's report is.
    async fn compliance_now(
        &self,
        caller: &Caller,
        ctx: &RequestCtx,
    ) -> Result<patchbay_core::report::Compliance, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut open = self.open_findings.lock().await;
        let mut snap = self.snapshot().await?;
        let now = self.now();
        let as_of = now.round(jiff::Unit::Second).unwrap_or(now);
        let (policy, _) = snap.policy_in_force().await?;
        let rows = snap.assets().await?;
        let assets = self.asset_records(&policy, &rows);
        let report_assets: Vec<crate::projection::ReportAsset<'_>> = rows
            .iter()
            .zip(&assets)
            .map(|(row, a)| crate::projection::ReportAsset {
                row,
                groups: &a.groups,
            })
            .collect();
        let counts = open
            .compliance_counts(&mut snap, &policy, &report_assets, as_of)
            .await?;
        drop(snap);
        drop(open);
        let assessed: Vec<bool> = counts.iter().map(|c| c.open() + c.patched > 0).collect();
        Ok(patchbay_core::report::compliance_of(
            &assets, &counts, &assessed, as_of,
        ))
    }
}

/// Every deployment with its jobs: the state the rollout engine stored per
/// job, and the lease and result times of its apply and rollback jobs from
/// `agent_jobs` (three queries, whatever the number of deployments). A
/// rollback that ended without a result (no report by its deadline) is dated
/// by the rollout's last write, when the engine marked it.
async fn deployment_records(
    tx: &mut Box<dyn patchbay_store::Tx>,
) -> Result<Vec<DeploymentRecord>, AppError> {
    let mut rollouts: HashMap<String, patchbay_store::RolloutRow> = tx
        .list_rollouts()
        .await?
        .into_iter()
        .map(|r| (r.deployment.clone(), r))
        .collect();
    let times: HashMap<String, patchbay_store::AgentJobTimes> = tx
        .agent_job_times()
        .await?
        .into_iter()
        .map(|j| (j.key.clone(), j))
        .collect();
    let mut out = Vec::new();
    for d in tx.list_deployments().await? {
        let Some(row) = rollouts.remove(&d.id) else {
            out.push(DeploymentRecord {
                id: d.id,
                kind: d.kind,
                state: d.status,
                created_at: d.created_at,
                state_at: None,
                jobs: vec![],
            });
            continue;
        };
        let stored: crate::deployments::StoredRollout =
            serde_json::from_value(row.state).map_err(|e| {
                AppError::new(
                    patchbay_proto::error::ErrorCode::Internal,
                    format!("stored rollout {} does not decode: {e}", row.deployment),
                )
            })?;
        let mut jobs = Vec::new();
        for ring in &stored.rollout.rings {
            for j in &ring.jobs {
                let apply = times.get(&j.spec.key);
                let rollback = times.get(&format!("{}/rollback", j.spec.key));
                let rollback_at = match j.state {
                    JobState::RolledBack | JobState::RollbackFailed => {
                        Some(rollback.and_then(|r| r.result_at).unwrap_or(row.updated_at))
                    }
                    _ => None,
                };
                jobs.push(JobRecord {
                    host: j.spec.host.clone(),
                    packages: stored
                        .pins
                        .get(&j.spec.host)
                        .map(|ps| ps.iter().map(|p| p.name.clone()).collect())
                        .unwrap_or_default(),
                    state: j.state,
                    failed: j.failed,
                    leased_at: apply.map(|r| r.leased_at),
                    result_at: apply.and_then(|r| r.result_at),
                    finished_at: j.finished_at,
                    rollback_at,
                });
            }
        }
        out.push(DeploymentRecord {
            id: d.id,
            kind: d.kind,
            state: row.status,
            created_at: d.created_at,
            state_at: Some(row.updated_at),
            jobs,
        });
    }
    Ok(out)
}
