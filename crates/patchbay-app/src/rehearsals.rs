//! Rehearsals on the server side (issue 18, ADR 0018, `docs/rehearsal.md`):
//! the rehearsal gate of rings that require one, and on-demand rehearsals of
//! a deployment (`patchbay deploy rehearse DEP`).
//!
//! # The gate
//! A ring with `require_rehearsal` holds its applies. When the state machine
//! leases a job of such a ring, the driver does not hand the apply to the
//! agent: it records the lease as *held* ([`crate::rehearsal_gate::Gate::hold`]) and gives every
//! host of the ring a `rehearse` job (`DEP/rehearse/gate/HOST`, the host's
//! exact pins). A held apply is released — leased to the agent, with the
//! deadline the state machine gave it — once **every** host of its ring has
//! reported its rehearsal and its own host's passed. A host whose rehearsal
//! failed (or was refused) never gets its apply: its job is reported to the
//! state machine as failed (`rehearsal failed: STEP: MESSAGE`), a pre-flight
//! failure like any other, so the ring's error budget decides whether the
//! ring halts (design notes, "Counting failures"); its rollback, if the
//! policy orders one, has nothing to undo and is answered at once instead of
//! being sent. A rehearsal counts against its job's run timeout (the state
//! machine's deadline runs from the lease).
//!
//! The gate ([`crate::rehearsal_gate`]) lives in the stored rollout
//! (`StoredRollout`),
//! written in the driver's step transaction with the jobs it leases; the
//! rehearsals' results are agent job rows like every other job's, per host
//! per deployment.

use crate::rehearsal_gate::run_key;
use crate::{App, AppError, Caller, RequestCtx};
use patchbay_core::auth::Action;
use patchbay_core::job::{Job, JobKind};
use patchbay_proto::api::RehearsalsOut;
use serde_json::json;

impl App {
    /// Runs a rehearsal now on every host of deployment `id` (its exact
    /// pins), whatever its state: `rehearse` jobs `DEP/rehearse/N/HOST`.
    /// Read-only on the hosts; audited (`deployment.rehearse`).
    pub async fn deploy_rehearse(
        &self,
        caller: &Caller,
        id: &str,
        ctx: &RequestCtx,
    ) -> Result<RehearsalsOut, AppError> {
        self.require(caller, Action::WriteAssets, ctx).await?;
        let now = self.now();
        let mut tx = self.change(caller, Action::WriteAssets, ctx).await?;
        let row = tx
            .lock_rollout(id, false)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no deployment {id}")))?;
        let mut stored = crate::deployments::stored_of(&row)?;
        stored.gate.runs += 1;
        let n = stored.gate.runs;
        let mut hosts = Vec::new();
        for ring in &stored.rollout.rings {
            for j in &ring.jobs {
                let job = Job {
                    deployment: id.to_owned(),
                    key: run_key(id, n, &j.spec.host),
                    asset: j.spec.host.clone(),
                    not_before: now,
                    deadline: now + j.spec.run_timeout,
                    kind: JobKind::Rehearse {
                        packages: stored.pins.get(&j.spec.host).cloned().unwrap_or_default(),
                    },
                    checks: vec![],
                };
                self.lease_job(&mut tx, job, now).await?;
                hosts.push(j.spec.host.clone());
            }
        }
        tx.audit(
            "deployment.rehearse",
            &format!("deployment:{id}"),
            json!({"run": n, "hosts": hosts}),
        )
        .await?;
        tx.put_rollout(&crate::deployments::rollout_row(&stored, now)?)
            .await?;
        tx.commit().await?;
        self.job_bell.notify_waiters();
        let mut out = self.deploy_rehearsals(caller, id, ctx).await?;
        out.run = Some(n);
        Ok(out)
    }

    /// Every rehearsal of deployment `id` (gate and on demand), newest run
    /// first, with its result when reported.
    pub async fn deploy_rehearsals(
        &self,
        caller: &Caller,
        id: &str,
        ctx: &RequestCtx,
    ) -> Result<RehearsalsOut, AppError> {
        self.require(caller, Action::ReadInventory, ctx).await?;
        let mut tx = self.store.read().await?;
        if tx.rollout(id).await?.is_none() {
            return Err(AppError::not_found(format!("no deployment {id}")));
        }
        let rehearsals = crate::rehearsal_gate::rehearsals_of(tx.jobs_of(id).await?);
        Ok(RehearsalsOut {
            deployment: id.to_owned(),
            run: None,
            rehearsals,
        })
    }
}
