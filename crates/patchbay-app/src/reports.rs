//! Reports as of a date, as data: [`App::history`] gathers what they are
//! recomputed from (assets, findings, exceptions, and the deployments with
//! their jobs' outcomes from the `rollouts` and `agent_jobs` tables),
//! [`App::report`] computes one (`patchbay_core::report`).
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
    /// The history the reports recompute from.
    pub async fn history(&self, caller: &Caller, ctx: &RequestCtx) -> Result<History, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut snap = self.snapshot().await?;
        let (policy, _) = snap.policy_in_force().await?;
        let rows = snap.assets().await?;
        let mut index = std::collections::HashMap::new();
        let assets: Vec<AssetRecord> = rows
            .iter()
            .enumerate()
            .map(|(i, a)| {
                index.insert(a.name.clone(), i);
                AssetRecord {
                    name: a.name.clone(),
                    owner: a.attrs.owner.clone(),
                    groups: crate::ranking::groups_of(&policy, a),
                    managed: a.has_agent,
                    created_at: a.created_at,
                    // The stored time, or this replica's later one not yet stored.
                    last_seen: if a.has_agent {
                        self.last_seen(a.id, a.last_seen_at)
                    } else {
                        Some(self.last_seen(a.id, a.last_seen_at).unwrap_or(a.updated_at))
                    },
                }
            })
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
    pub async fn report(
        &self,
        caller: &Caller,
        kind: &str,
        as_of: Option<Timestamp>,
        ctx: &RequestCtx,
    ) -> Result<Report, AppError> {
        let unknown = || {
            AppError::invalid(format!(
                "kind: unknown report {kind:?} (compliance, ttp, sla, coverage or deployments)"
            ))
        };
        if !KINDS.contains(&kind) {
            return Err(unknown());
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
