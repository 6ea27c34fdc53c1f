//! The governance review report (issue 18, item 9; docs/governance.md): the
//! reports' history ([`App::history`]) plus the ring approvals the rollout
//! engine stored, computed for a period by
//! `patchbay_core::report::governance` (pure; the period is an argument).
//! Rendering (JSON, CSV, HTML with SVG charts) is `patchbay-render`'s.

use crate::{App, AppError, Caller, RequestCtx};
use jiff::Timestamp;
use patchbay_core::canary::Verdict;
use patchbay_core::report::governance::{Approval, Governance, governance};

impl App {
    /// The governance review of `[from, to)`.
    pub async fn governance(
        &self,
        caller: &Caller,
        from: Timestamp,
        to: Timestamp,
        ctx: &RequestCtx,
    ) -> Result<Governance, AppError> {
        if from >= to {
            return Err(AppError::invalid(format!(
                "from: the period's start ({from}) must be before its end ({to})"
            )));
        }
        let h = self.history(caller, ctx).await?;
        let approvals = self.approvals().await?;
        governance(&h, &approvals, from, to)
            .ok_or_else(|| AppError::invalid("from: the period is empty"))
    }

    /// Every ring approval the rollout engine stored: approved when its
    /// `approval` gate passed; asked for at the ring's gate decision before
    /// it (the soak or health gate that made it ready), else when its jobs
    /// ended.
    async fn approvals(&self) -> Result<Vec<Approval>, AppError> {
        let mut tx = self.store.read().await?;
        let mut out = Vec::new();
        for row in tx.list_rollouts().await? {
            let stored: crate::deployments::StoredRollout = serde_json::from_value(row.state)
                .map_err(|e| {
                    AppError::new(
                        patchbay_proto::error::ErrorCode::Internal,
                        format!("stored rollout {} does not decode: {e}", row.deployment),
                    )
                })?;
            for ring in &stored.rollout.rings {
                let Some(by) = &ring.approved_by else {
                    continue;
                };
                let Some(i) = ring
                    .gates
                    .iter()
                    .position(|g| g.gate == "approval" && g.verdict == Verdict::Pass)
                else {
                    continue;
                };
                let approved_at = ring.gates[i].at;
                let requested_at = i
                    .checked_sub(1)
                    .map(|p| ring.gates[p].at)
                    .or(ring.done_at)
                    .unwrap_or(approved_at)
                    .min(approved_at);
                out.push(Approval {
                    deployment: row.deployment.clone(),
                    ring: ring.spec.name.clone(),
                    requested_at,
                    approved_at,
                    by: by.clone(),
                });
            }
        }
        Ok(out)
    }
}
